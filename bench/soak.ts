/**
 * `npm run soak`: steady load on every provider type with faults mixed in, for a few minutes.
 * Samples the gateway's RSS and event-loop delay (its own /metrics) every 10 s and fails
 * (exit 1) when RSS grows more than 10 % after the warm-up minute or any request is unanswered
 * (a connection error or timeout). Not part of `npm test`.
 *
 * Options: --minutes M (3), --connections N (20)
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import autocannon from 'autocannon';
import {
  ROOT,
  numberOption,
  rssMb,
  startGateway,
  startSimulators,
  writeGatewayConfig,
  type Proc,
} from './lib';

const args = process.argv.slice(2);
const option = (name: string, fallback: number): number => numberOption(args, name, fallback);
const MINUTES = option('minutes', 3);
const CONNECTIONS = option('connections', 20);
const PORTS = { methodcall: 20081, dynRest: 20082, dynSoap: 20083, gateway: 20080 };

/** Mostly fresh ids (canceled), plus the simulators' scripted faults and repeats (replayed). */
let next = 1_000_000;
function body(): string {
  const n = next++;
  const pick = n % 20;
  if (pick === 0) return JSON.stringify({ target: 'warehouse', taskId: '1017' }); // not_found
  if (pick === 1) return JSON.stringify({ target: 'warehouse', taskId: '1045' }); // conflict
  if (pick === 2) return JSON.stringify({ target: 'dns', taskId: '404' }); // not_found
  if (pick === 3) return JSON.stringify({ target: 'dns', taskId: '2011' }); // re-login
  if (pick === 4) return JSON.stringify({ target: 'dns-soap', taskId: '777' }); // GetJob polling
  if (pick === 5) return JSON.stringify({ target: 'dns-failover', taskId: '503' }); // fallback
  if (pick === 6) return JSON.stringify({ target: 'warehouse', taskId: 'bad' }); // 400
  const target = ['warehouse', 'dns', 'dns-soap'][n % 3]!;
  return JSON.stringify({ target, taskId: String(n) });
}

async function loopDelayMs(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${PORTS.gateway}/metrics`)).text();
  return Number(/^nodejs_eventloop_lag_p99_seconds (\S+)$/m.exec(text)?.[1] ?? NaN) * 1000;
}

async function main(): Promise<void> {
  const procs: Proc[] = [];
  process.on('exit', () => {
    for (const p of procs) p.child.kill('SIGTERM');
  });
  procs.push(...(await startSimulators(PORTS)));
  const file = writeGatewayConfig('soak', PORTS);
  // The image's NODE_OPTIONS (bench/lib.ts), ready at the first 200 from /readyz.
  const gateway = await startGateway(file, PORTS.gateway);
  procs.push(gateway);
  const pid = gateway.child.pid!;

  const samples: { second: number; rssMb: number; loopDelayMs: number }[] = [];
  const started = Date.now();
  const sampler = setInterval(() => {
    void loopDelayMs().then((delay) => {
      const sample = {
        second: Math.round((Date.now() - started) / 1000),
        rssMb: Math.round(rssMb(pid)),
        loopDelayMs: Number(delay.toFixed(1)),
      };
      samples.push(sample);
      process.stderr.write(`${JSON.stringify(sample)}\n`);
    });
  }, 10_000);
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    autocannon(
      {
        url: `http://127.0.0.1:${PORTS.gateway}/cancel`,
        connections: CONNECTIONS,
        duration: MINUTES * 60,
        timeout: 30,
        requests: [
          {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            setupRequest: (req) => ({ ...req, body: body() }),
          },
        ],
      },
      (err, r) => {
        if (err !== null) reject(new Error(err.message));
        else resolve(r);
      },
    );
  });
  clearInterval(sampler);

  const afterWarmup = samples.find((s) => s.second >= 60) ?? samples[0];
  const last = samples.at(-1);
  const growth =
    afterWarmup === undefined || last === undefined
      ? 0
      : (last.rssMb - afterWarmup.rssMb) / afterWarmup.rssMb;
  const unanswered = result.errors + result.timeouts;
  const lines = [
    `soak: ${MINUTES} min, ${CONNECTIONS} connections, ${Math.round(result.requests.average)} req/s, ${result.requests.total} requests, ${unanswered} unanswered`,
    `RSS after warm-up ${afterWarmup?.rssMb ?? '?'} MB, at the end ${last?.rssMb ?? '?'} MB (${(growth * 100).toFixed(1)} %); event-loop delay p99 max ${Math.max(...samples.map((s) => s.loopDelayMs))} ms`,
    '',
    '| second | RSS MB | event-loop p99 ms |',
    '| ---: | ---: | ---: |',
    ...samples.map((s) => `| ${s.second} | ${s.rssMb} | ${s.loopDelayMs} |`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  writeFileSync(
    path.join(ROOT, 'bench', 'results', `soak-${stamp}.json`),
    `${JSON.stringify({ minutes: MINUTES, connections: CONNECTIONS, requests: result.requests, unanswered, samples }, null, 2)}\n`,
  );
  if (unanswered > 0 || growth > 0.1) {
    process.stderr.write(
      `soak FAILED: ${unanswered} unanswered, RSS growth ${(growth * 100).toFixed(1)} %\n`,
    );
    process.exit(1);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(
      `soak failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
