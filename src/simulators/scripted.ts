import type { DynBehaviour } from './dyn-backend';
import { startDynRestSimulator } from './dyn-rest';
import { startDynSoapSimulator } from './dyn-soap';
import { startMethodcallSimulator } from './methodcall';

/** The demo account of the Dyn simulators; config/demo.yaml and config/compose.yaml use it too. */
export const DEMO_DYN = {
  customerName: 'demo',
  userName: 'demo-api',
  password: 'demo-password',
} as const;

/** What a long-running simulator remembers at most (calls, tasks): bounded memory for days. */
export const SCRIPTED_MEMORY_LIMIT = 10_000;

export type SimulatorKind = 'methodcall' | 'dyn-rest' | 'dyn-soap';

export const DEFAULT_SIM_PORTS: Record<SimulatorKind, number> = {
  methodcall: 18081,
  'dyn-rest': 18082,
  'dyn-soap': 18083,
};

/** How long the demo's late jobs run: past the demo providers' `jobTimeoutMs` (5 s). */
const DEMO_LATE_JOB_MS = 8_000;

/**
 * The demo's task ids for reads and background confirmation, the same on both Dyn simulators:
 * `2020` is a task that already completed; the cancel of `1504` is accepted as a job that
 * finishes after the gateway gave up (the background confirmation then finds it canceled); the
 * cancel of `1505` is never applied (the task stays `running`: the confirmation finds it pending).
 */
function scriptReads(sim: { setBehaviour(taskId: number, behaviour: DynBehaviour): void }): void {
  sim.setBehaviour(2020, { kind: 'status', status: 'complete' });
  sim.setBehaviour(1504, { kind: 'late-job', afterMs: DEMO_LATE_JOB_MS });
  sim.setBehaviour(1505, { kind: 'stays-pending', afterMs: DEMO_LATE_JOB_MS });
}

/**
 * One simulator with the demo's scripted task ids (README, Quick start), as `npm run demo`, the
 * Docker image's simulator entry point and docker-compose run them.
 */
export async function startScriptedSimulator(
  kind: SimulatorKind,
  port: number,
  host: string,
): Promise<{ url: string; close(): Promise<void> }> {
  switch (kind) {
    case 'methodcall': {
      const sim = await startMethodcallSimulator({
        port,
        host,
        memoryLimit: SCRIPTED_MEMORY_LIMIT,
      });
      sim.setBehaviour(1017, { kind: 'fault', code: 1017 });
      sim.setBehaviour(1045, { kind: 'fault', code: 1045 });
      sim.setBehaviour(4242, { kind: 'slow', delayMs: 30_000 });
      return { url: sim.taskUrl, close: () => sim.close() };
    }
    case 'dyn-rest': {
      const sim = await startDynRestSimulator({
        port,
        host,
        ...DEMO_DYN,
        memoryLimit: SCRIPTED_MEMORY_LIMIT,
      });
      sim.setBehaviour(404, { kind: 'not-found' });
      sim.setBehaviour(307, { kind: 'redirect-job', polls: 2 });
      sim.setBehaviour(2011, { kind: 'token-expired-once' });
      // Status only, as every recorded Dyn 429: the gateway then backs off Dyn's documented 60 s.
      sim.setBehaviour(429, { kind: 'rate-limited' });
      // 503 on REST for task 503: the `dns-failover` route then cancels it over SOAP.
      sim.setBehaviour(503, { kind: 'unavailable' });
      scriptReads(sim);
      return { url: sim.baseUrl, close: () => sim.close() };
    }
    case 'dyn-soap': {
      const sim = await startDynSoapSimulator({
        port,
        host,
        ...DEMO_DYN,
        memoryLimit: SCRIPTED_MEMORY_LIMIT,
      });
      sim.setBehaviour(404, { kind: 'not-found' });
      sim.setBehaviour(777, { kind: 'incomplete-job', polls: 2 });
      scriptReads(sim);
      return { url: sim.endpoint, close: () => sim.close() };
    }
  }
}
