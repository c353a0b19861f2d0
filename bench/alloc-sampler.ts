/**
 * Preload for the gateway (`node --import tsx --import ./bench/alloc-sampler.ts dist/main.js …`,
 * or `bench/gc-trace.ts` with ALLOC_PROFILE set): V8's sampling heap profiler, counting objects
 * the GC has already collected too, so the profile shows where every byte was allocated.
 * Written to ALLOC_PROFILE on SIGUSR2; read it with `bench/alloc-top.ts`.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const session = new Session();
session.connect();
session.post('HeapProfiler.enable');
session.post('HeapProfiler.startSampling', {
  samplingInterval: 16_384,
  includeObjectsCollectedByMajorGC: true,
  includeObjectsCollectedByMinorGC: true,
});
process.on('SIGUSR2', () => {
  session.post('HeapProfiler.stopSampling', (err, result) => {
    if (err !== null) throw err;
    writeFileSync(process.env.ALLOC_PROFILE ?? 'alloc.heapprofile', JSON.stringify(result.profile));
    process.stderr.write('alloc profile written\n');
  });
});
