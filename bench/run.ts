/**
 * `npm run bench`: what the gateway adds on top of its upstreams, measured side by side.
 *
 *   A        the methodcall simulator directly (the upstream's own cost)
 *   B        a bare node:http + undici forwarder (bench/baseline.ts: what "any proxy" costs)
 *   C-*      the gateway (built, `node dist/main.js`) per provider type
 *   D        /cancel/batch with 100 items, against 100 single requests
 *
 * Every process runs on this machine's loopback and shares its cores with the load generator
 * (autocannon, in this process). Scenarios alternate over rounds; warm-up is excluded. Results go
 * to bench/results/<time>.json and, as a table, to stdout (copy it into bench/README.md).
 *
 * Options: --duration S (10), --warmup S (3), --connections N (50), --rounds N (2),
 *          --only a,b,c-methodcall,... , --soak-minutes M (0: off; RSS over time, C-methodcall),
 *          --profile (V8 CPU profile of the gateway), --node-flags "..." (gateway's Node flags)
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import {
  GATEWAY_NODE_FLAGS,
  PORTS,
  ROOT,
  cpuSeconds,
  numberOption,
  rssMb,
  start,
  startSimulators,
  writeGatewayConfig,
  type Proc,
} from './lib';

const args = process.argv.slice(2);
const option = (name: string, fallback: number): number => numberOption(args, name, fallback);
const DURATION = option('duration', 10);
const WARMUP = option('warmup', 3);
const CONNECTIONS = option('connections', 50);
const ROUNDS = option('rounds', 2);
const SOAK_MINUTES = option('soak-minutes', 0);
const onlyAt = args.indexOf('--only');
const ONLY = onlyAt >= 0 ? new Set((args[onlyAt + 1] ?? '').split(',')) : undefined;

let nextTaskId = 100_000;
const cancelBody = (target: string): string =>
  JSON.stringify({ target, taskId: String(nextTaskId++) });
const methodcallXml = (): string =>
  `<?xml version="1.0" encoding="UTF-8"?><methodcall><name>cancel_task</name><params><task_id>${nextTaskId++}</task_id></params></methodcall>`;

interface Scenario {
  id: string;
  label: string;
  url: string;
  /** The process whose CPU and RSS are measured. */
  measured: () => Proc;
  /** The upstream simulator behind it (its CPU is reported too: all processes share the cores). */
  upstream?: () => Proc;
  contentType: string;
  body: () => string;
  connections?: number;
  /** Upstream cancels per HTTP request (100 for a batch). */
  itemsPerRequest?: number;
}

interface Measurement {
  scenario: string;
  round: number;
  requestsPerSecond: number;
  itemsPerSecond: number;
  latencyP50: number;
  latencyP99: number;
  latencyMax: number;
  errors: number;
  non2xx: number;
  cpuMsPerRequest: number;
  cpuMsPerItem: number;
  /** CPU of the upstream simulator and of the load generator (this process), per request. */
  upstreamCpuMsPerRequest: number;
  loadCpuMsPerRequest: number;
  peakRssMb: number;
}

function fire(s: Scenario, seconds: number): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: s.url,
        connections: s.connections ?? CONNECTIONS,
        duration: seconds,
        timeout: 30,
        requests: [
          {
            method: 'POST',
            headers: { 'content-type': s.contentType },
            setupRequest: (req) => ({ ...req, body: s.body() }),
          },
        ],
      },
      (err, result) => {
        if (err !== null) reject(new Error(err.message));
        else resolve(result);
      },
    );
  });
}

async function measure(s: Scenario, round: number): Promise<Measurement> {
  await fire(s, WARMUP);
  const pid = s.measured().child.pid!;
  const upstreamPid = s.upstream?.().child.pid;
  const cpuBefore = cpuSeconds(pid);
  const upstreamBefore = upstreamPid === undefined ? 0 : cpuSeconds(upstreamPid);
  const loadBefore = process.cpuUsage();
  let peak = rssMb(pid);
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssMb(pid));
  }, 250);
  const result = await fire(s, DURATION);
  clearInterval(sampler);
  peak = Math.max(peak, rssMb(pid));
  const cpu = cpuSeconds(pid) - cpuBefore;
  const upstreamCpu = upstreamPid === undefined ? 0 : cpuSeconds(upstreamPid) - upstreamBefore;
  const load = process.cpuUsage(loadBefore);
  const loadCpu = (load.user + load.system) / 1e6;
  const perRequest = (seconds: number): number =>
    total === 0 ? 0 : Number(((seconds * 1000) / total).toFixed(3));
  const total = result.requests.total;
  const items = s.itemsPerRequest ?? 1;
  return {
    scenario: s.id,
    round,
    requestsPerSecond: Math.round(result.requests.average),
    itemsPerSecond: Math.round(result.requests.average * items),
    latencyP50: result.latency.p50,
    latencyP99: result.latency.p99,
    latencyMax: result.latency.max,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
    cpuMsPerRequest: perRequest(cpu),
    cpuMsPerItem: total === 0 ? 0 : Number(((cpu * 1000) / (total * items)).toFixed(4)),
    upstreamCpuMsPerRequest: perRequest(upstreamCpu),
    loadCpuMsPerRequest: perRequest(loadCpu),
    peakRssMb: Math.round(peak),
  };
}

function gatewayConfig(): string {
  // --max-entries N: the outcome memory's bound (state.maxEntries); default the gateway's own.
  const at = args.indexOf('--max-entries');
  return writeGatewayConfig(
    'bench',
    PORTS,
    at >= 0 ? { state: { maxEntries: Number(args[at + 1]) } } : {},
  );
}

/** Spawn → first 200 from /readyz, with all three provider types configured. */
async function timeToReady(configFile: string): Promise<number> {
  const started = performance.now();
  const child = spawn(process.execPath, ['dist/main.js', '--config', configFile], {
    cwd: ROOT,
    stdio: 'ignore',
    env: { ...process.env, PORT: String(PORTS.gateway + 100) },
  });
  try {
    for (;;) {
      try {
        const res = await fetch(`http://127.0.0.1:${PORTS.gateway + 100}/readyz`);
        if (res.status === 200) return Math.round(performance.now() - started);
      } catch {
        // not listening yet
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  } finally {
    child.kill('SIGTERM');
  }
}

/** The median; for an even count (the default two rounds) the mean of the middle two. */
function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const upper = sorted[mid] ?? 0;
  const middle = sorted.length % 2 === 1 ? upper : ((sorted[mid - 1] ?? upper) + upper) / 2;
  return Number(middle.toFixed(3));
}

async function main(): Promise<void> {
  const procs: Proc[] = [];
  const stopAll = (): void => {
    for (const p of procs) p.child.kill('SIGTERM');
  };
  process.on('exit', stopAll);
  try {
    const [methodcallSim, dynRestSim, dynSoapSim] = await startSimulators(PORTS);
    procs.push(methodcallSim, dynRestSim, dynSoapSim);
    const baseline = await start(
      'baseline',
      [
        '--import',
        'tsx',
        'bench/baseline.ts',
        `http://127.0.0.1:${PORTS.methodcall}/api/v2/task`,
        String(PORTS.baseline),
      ],
      /listening/,
    );
    procs.push(baseline);
    const configFile = gatewayConfig();
    const readyMs = await timeToReady(configFile);
    // --profile: a V8 CPU profile of the gateway, written to bench/results/profile/ at exit.
    const profile = args.includes('--profile')
      ? ['--cpu-prof', `--cpu-prof-dir=${path.join(ROOT, 'bench', 'results', 'profile')}`]
      : [];
    // --node-flags "...": extra V8/Node flags for the gateway (e.g. --max-old-space-size=128).
    const flagsAt = args.indexOf('--node-flags');
    // Default: the production image's NODE_OPTIONS (Dockerfile), so the figures are what ships.
    const nodeFlags = (flagsAt >= 0 ? (args[flagsAt + 1] ?? '') : GATEWAY_NODE_FLAGS)
      .split(' ')
      .filter(Boolean);
    const gateway = await start(
      'gateway',
      [...profile, ...nodeFlags, 'dist/main.js', '--config', configFile],
      /gateway listening/,
    );
    procs.push(gateway);
    const g = `http://127.0.0.1:${PORTS.gateway}`;
    const json = 'application/json';
    const scenarios: Scenario[] = [
      {
        id: 'a',
        label: 'A  methodcall simulator directly',
        url: `http://127.0.0.1:${PORTS.methodcall}/api/v2/task`,
        measured: () => methodcallSim,
        contentType: 'application/xml',
        body: methodcallXml,
      },
      {
        id: 'b',
        label: 'B  bare node:http + undici forwarder',
        url: `http://127.0.0.1:${PORTS.baseline}/cancel`,
        measured: () => baseline,
        upstream: () => methodcallSim,
        contentType: json,
        body: () => cancelBody('warehouse'),
      },
      {
        id: 'c-methodcall',
        label: 'C  gateway, methodcall',
        url: `${g}/cancel`,
        measured: () => gateway,
        upstream: () => methodcallSim,
        contentType: json,
        body: () => cancelBody('warehouse'),
      },
      {
        id: 'c-dyn-rest',
        label: 'C  gateway, dyn-rest',
        url: `${g}/cancel`,
        measured: () => gateway,
        upstream: () => dynRestSim,
        contentType: json,
        body: () => cancelBody('dns'),
      },
      {
        id: 'c-dyn-soap',
        label: 'C  gateway, dyn-soap',
        url: `${g}/cancel`,
        measured: () => gateway,
        upstream: () => dynSoapSim,
        contentType: json,
        body: () => cancelBody('dns-soap'),
      },
      {
        id: 'd-batch',
        label: 'D  gateway, /cancel/batch × 100 (methodcall)',
        url: `${g}/cancel/batch`,
        measured: () => gateway,
        upstream: () => methodcallSim,
        contentType: json,
        connections: 4,
        itemsPerRequest: 100,
        body: () =>
          JSON.stringify({
            items: Array.from({ length: 100 }, () => ({
              target: 'warehouse',
              taskId: String(nextTaskId++),
            })),
          }),
      },
      {
        id: 'd-single',
        label: 'D  gateway, 100 single requests (methodcall)',
        url: `${g}/cancel`,
        measured: () => gateway,
        upstream: () => methodcallSim,
        contentType: json,
        connections: 4 * 16,
        body: () => cancelBody('warehouse'),
      },
    ].filter((s) => ONLY === undefined || ONLY.has(s.id));

    const results: Measurement[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      // Alternate the order between rounds so drift (thermal, GC) does not favour one scenario.
      const order = round % 2 === 1 ? scenarios : [...scenarios].reverse();
      for (const s of order) {
        const m = await measure(s, round);
        results.push(m);
        process.stderr.write(`${s.id} round ${round}: ${JSON.stringify(m)}\n`);
      }
    }

    let soak: { minute: number; rssMb: number; requestsPerSecond: number }[] = [];
    if (SOAK_MINUTES > 0) {
      const s = scenarios.find((x) => x.id === 'c-methodcall') ?? scenarios[0]!;
      for (let minute = 1; minute <= SOAK_MINUTES; minute++) {
        const r = await fire(s, 60);
        soak = [
          ...soak,
          {
            minute,
            rssMb: Math.round(rssMb(gateway.child.pid!)),
            requestsPerSecond: Math.round(r.requests.average),
          },
        ];
        process.stderr.write(`soak minute ${minute}: ${JSON.stringify(soak.at(-1))}\n`);
      }
    }

    const by = (id: string) => results.filter((r) => r.scenario === id);
    const summary = scenarios.map((s) => {
      const rs = by(s.id);
      return {
        id: s.id,
        label: s.label,
        requestsPerSecond: median(rs.map((r) => r.requestsPerSecond)),
        itemsPerSecond: median(rs.map((r) => r.itemsPerSecond)),
        latencyP50: median(rs.map((r) => r.latencyP50)),
        latencyP99: median(rs.map((r) => r.latencyP99)),
        latencyMax: Math.max(...rs.map((r) => r.latencyMax)),
        cpuMsPerRequest: median(rs.map((r) => r.cpuMsPerRequest)),
        upstreamCpuMsPerRequest: median(rs.map((r) => r.upstreamCpuMsPerRequest)),
        loadCpuMsPerRequest: median(rs.map((r) => r.loadCpuMsPerRequest)),
        peakRssMb: Math.max(...rs.map((r) => r.peakRssMb)),
        errors: rs.reduce((n, r) => n + r.errors + r.non2xx, 0),
      };
    });
    const b = summary.find((x) => x.id === 'b');
    const a = summary.find((x) => x.id === 'a');
    const machine = {
      cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown'}`,
      memoryGb: Math.round(os.totalmem() / 1024 ** 3),
      node: process.version,
      os: `${os.type()} ${os.release()}`,
    };
    const lines = [
      `Machine: ${machine.cpus}, ${machine.memoryGb} GB, ${machine.os}, Node ${machine.node}.`,
      `${CONNECTIONS} connections, ${DURATION} s per run after ${WARMUP} s warm-up, ${ROUNDS} rounds (median). Start to /readyz 200: ${readyMs} ms.`,
      '',
      '| scenario | req/s | items/s | p50 ms | p99 ms | max ms | CPU ms/req | upstream CPU ms/req | load gen CPU ms/req | peak RSS MB | vs A | vs B | errors |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...summary.map(
        (r) =>
          `| ${r.label} | ${r.requestsPerSecond} | ${r.itemsPerSecond} | ${r.latencyP50} | ${r.latencyP99} | ${r.latencyMax} | ${r.cpuMsPerRequest} | ${r.upstreamCpuMsPerRequest || ''} | ${r.loadCpuMsPerRequest} | ${r.peakRssMb} | ${a === undefined ? '' : `${Math.round((100 * r.itemsPerSecond) / a.itemsPerSecond)}%`} | ${b === undefined ? '' : `${Math.round((100 * r.itemsPerSecond) / b.itemsPerSecond)}%`} | ${r.errors} |`,
      ),
    ];
    if (soak.length > 0) {
      lines.push('', '| soak minute | RSS MB | req/s |', '| ---: | ---: | ---: |');
      for (const s of soak) lines.push(`| ${s.minute} | ${s.rssMb} | ${s.requestsPerSecond} |`);
    }
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const out = path.join(ROOT, 'bench', 'results', `${stamp}.json`);
    writeFileSync(
      out,
      `${JSON.stringify({ machine, options: { DURATION, WARMUP, CONNECTIONS, ROUNDS }, readyMs, results, summary, soak }, null, 2)}\n`,
    );
    process.stdout.write(`${lines.join('\n')}\n\nraw results: ${path.relative(ROOT, out)}\n`);
  } finally {
    stopAll();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(
      `bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
