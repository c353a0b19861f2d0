/**
 * `npm run bench`: what the gateway adds on top of its upstreams, measured side by side.
 *
 *   A        the methodcall simulator directly (the upstream's own cost)
 *   B        a bare node:http + undici forwarder (bench/baseline.ts: what "any proxy" costs)
 *   E        a bare Express 5 + undici forwarder (bench/baseline-express.ts: the ceiling of the
 *            stack the gateway is built on; the targets are ratios to it)
 *   C-*      the gateway (built, `node dist/main.js`, the image's NODE_OPTIONS) per provider type
 *   D        /cancel/batch with 100 items, against 100 single requests
 *   open-*   E and the gateway per provider type at a fixed request rate (bench/open-loop.ts)
 *
 * Every process runs on this machine's loopback and shares its cores with the load generators
 * (autocannon and the open-loop generator, in this process). Scenarios alternate over rounds;
 * warm-up is excluded. The targets (docs/performance.md) are checked and printed PASS/MISS;
 * results go to bench/results/<time>.json and, as tables, to stdout.
 *
 * Options: --duration S (10), --warmup S (3), --connections N (50), --rounds N (2),
 *          --open-rate R (500), --open-seconds S (10), --open-warmup S (2),
 *          --only a,b,e,c-methodcall,...,open-e,open-dyn-soap,open-b (open-b only when named),
 *          --soak-minutes M (0: off; RSS over time, C-methodcall),
 *          --profile (V8 CPU profile of the gateway, summarised at the end),
 *          --node-flags "..." (NODE_OPTIONS of the gateway and the baselines; default the image's),
 *          --max-entries N (state.maxEntries), --strict (exit 3 when a target is missed),
 *          --tracing (the gateway exports its spans over OTLP/HTTP to bench/otlp-sink.ts; other
 *          OTEL_* variables of this shell, e.g. OTEL_TRACES_SAMPLER, are passed on; without it
 *          every OTEL_* variable is dropped, so tracing is off),
 *          --traceparent (every closed- and open-loop request carries a caller's `traceparent`, a
 *          new trace id each: with tracing off this measures passing the caller's trace on)
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
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
  startGateway,
  startSimulators,
  stop,
  stringOption,
  writeGatewayConfig,
  type Proc,
} from './lib';
import { openLoop, type OpenLoopResult } from './open-loop';
import type { SinkStats } from './otlp-sink';
import { summarise, type CpuProfile } from './profile-top';

const args = process.argv.slice(2);
const option = (name: string, fallback: number): number => numberOption(args, name, fallback);
const DURATION = option('duration', 10);
const WARMUP = option('warmup', 3);
const CONNECTIONS = option('connections', 50);
const ROUNDS = option('rounds', 2);
const OPEN_RATE = option('open-rate', 500);
const OPEN_SECONDS = option('open-seconds', 10);
const OPEN_WARMUP = option('open-warmup', 2);
const SOAK_MINUTES = option('soak-minutes', 0);
const onlyAt = args.indexOf('--only');
const ONLY = onlyAt >= 0 ? new Set((args[onlyAt + 1] ?? '').split(',')) : undefined;
const PROFILE = args.includes('--profile');
const STRICT = args.includes('--strict');
/** NODE_OPTIONS of the gateway and of both baselines: the image's unless --node-flags says. */
const NODE_FLAGS = stringOption(args, 'node-flags', GATEWAY_NODE_FLAGS);
const PROFILE_DIR = path.join(ROOT, 'bench', 'results', 'profile');
const TRACING = args.includes('--tracing');
const TRACEPARENT = args.includes('--traceparent');
if (!TRACING) {
  // "Tracing off" must be off whatever this shell exports.
  for (const name of Object.keys(process.env)) {
    if (name.startsWith('OTEL_')) Reflect.deleteProperty(process.env, name);
  }
}
/** The gateway's extra environment: the sink as its OTLP endpoint with --tracing. */
const GATEWAY_ENV: Record<string, string> = TRACING
  ? { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${PORTS.otlpSink}` }
  : {};

/** The published targets (docs/performance.md). */
const TARGETS = {
  ratioOfE: { 'c-methodcall': 0.75, 'c-dyn-rest': 0.55, 'c-dyn-soap': 0.35 } as Record<
    string,
    number
  >,
  p99TimesE: 3,
  openAddedP99Ms: 1.5,
  peakRssMb: 150,
  readyMs: 1000,
};
const PROTOCOLS = ['methodcall', 'dyn-rest', 'dyn-soap'] as const;

let nextTaskId = 100_000;
// A random prefix and a counter: a distinct, valid trace id per request at no cost to the load.
const TRACE_PREFIX = randomBytes(8).toString('hex');
let nextTrace = 1;
const traceparent = (): string =>
  `00-${TRACE_PREFIX}${(nextTrace++).toString(16).padStart(16, '0')}-00f067aa0ba902b7-01`;
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
  /** false: runs only when named in --only. */
  byDefault?: false;
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

interface OpenMeasurement extends OpenLoopResult {
  scenario: string;
  round: number;
  cpuMsPerRequest: number;
  peakRssMb: number;
}

/** Requests each process answered (warm-ups included), for the profile's µs per request. */
const answered = new Map<Proc, number>();

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
            setupRequest: (req) =>
              TRACEPARENT
                ? {
                    ...req,
                    body: s.body(),
                    headers: { ...req.headers, traceparent: traceparent() },
                  }
                : { ...req, body: s.body() },
          },
        ],
      },
      (err, result) => {
        if (err !== null) reject(new Error(err.message));
        else {
          const p = s.measured();
          answered.set(p, (answered.get(p) ?? 0) + result.requests.total);
          resolve(result);
        }
      },
    );
  });
}

/** Peak RSS of `pid` while `work` runs, sampled every 250 ms. */
async function withPeakRss<T>(pid: number, work: () => Promise<T>): Promise<[T, number]> {
  let peak = rssMb(pid);
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssMb(pid));
  }, 250);
  try {
    const result = await work();
    return [result, Math.round(Math.max(peak, rssMb(pid)))];
  } finally {
    clearInterval(sampler);
  }
}

async function measure(s: Scenario, round: number): Promise<Measurement> {
  await fire(s, WARMUP);
  const pid = s.measured().child.pid!;
  const upstreamPid = s.upstream?.().child.pid;
  const cpuBefore = cpuSeconds(pid);
  const upstreamBefore = upstreamPid === undefined ? 0 : cpuSeconds(upstreamPid);
  const loadBefore = process.cpuUsage();
  const [result, peakRssMb] = await withPeakRss(pid, () => fire(s, DURATION));
  const cpu = cpuSeconds(pid) - cpuBefore;
  const upstreamCpu = upstreamPid === undefined ? 0 : cpuSeconds(upstreamPid) - upstreamBefore;
  const load = process.cpuUsage(loadBefore);
  const loadCpu = (load.user + load.system) / 1e6;
  const total = result.requests.total;
  const perRequest = (seconds: number): number =>
    total === 0 ? 0 : Number(((seconds * 1000) / total).toFixed(3));
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
    peakRssMb,
  };
}

async function measureOpen(s: Scenario, round: number): Promise<OpenMeasurement> {
  const run = async (seconds: number): Promise<OpenLoopResult> => {
    const r = await openLoop({
      url: s.url,
      rate: OPEN_RATE,
      seconds,
      contentType: s.contentType,
      body: s.body,
      ...(TRACEPARENT ? { traceparent } : {}),
    });
    answered.set(s.measured(), (answered.get(s.measured()) ?? 0) + r.answered);
    return r;
  };
  await run(OPEN_WARMUP);
  const pid = s.measured().child.pid!;
  const cpuBefore = cpuSeconds(pid);
  const [result, peakRssMb] = await withPeakRss(pid, () => run(OPEN_SECONDS));
  const cpu = cpuSeconds(pid) - cpuBefore;
  return {
    scenario: s.id,
    round,
    ...result,
    cpuMsPerRequest:
      result.answered === 0 ? 0 : Number(((cpu * 1000) / result.answered).toFixed(3)),
    peakRssMb,
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

/** Spawn → first 200 from /readyz, with all three provider types configured and the image's flags. */
async function timeToReady(configFile: string): Promise<number> {
  const started = performance.now();
  const probe = await startGateway(configFile, PORTS.gateway + 100, {
    name: 'ready-probe',
    nodeOptions: NODE_FLAGS,
    env: GATEWAY_ENV,
  });
  const ms = Math.round(performance.now() - started);
  await stop(probe);
  return ms;
}

/** The median; for an even count (the default two rounds) the mean of the middle two. */
function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const upper = sorted[mid] ?? 0;
  const middle = sorted.length % 2 === 1 ? upper : ((sorted[mid - 1] ?? upper) + upper) / 2;
  return Number(middle.toFixed(3));
}

/**
 * The commit measured, whether the tree had changes on top of it (read-only git), and when
 * dist/main.js was built: `npm run bench` builds first; a direct run measures whatever dist/ holds.
 */
function treeState(): {
  commit: string;
  uncommittedFiles: number;
  distBuiltAt: string;
  label: string;
} {
  const git = (...gitArgs: string[]): string => {
    try {
      return execFileSync('git', gitArgs, {
        cwd: ROOT,
        encoding: 'utf8',
        env: { ...process.env, GIT_OPTIONAL_LOCKS: '0' },
      }).trim();
    } catch {
      return '';
    }
  };
  const commit = git('rev-parse', '--short', 'HEAD') || 'unknown';
  const changed = git('status', '--porcelain').split('\n').filter(Boolean).length;
  const distBuiltAt = statSync(path.join(ROOT, 'dist', 'main.js')).mtime.toISOString();
  const label = `${changed === 0 ? commit : `${commit} + ${changed} uncommitted file(s)`}, dist built ${distBuiltAt}`;
  return { commit, uncommittedFiles: changed, distBuiltAt, label };
}

interface Target {
  target: string;
  limit: string;
  measured: string;
  result: 'PASS' | 'MISS' | 'n/a';
}

function check(target: string, limit: string, measured: string | undefined, ok: boolean): Target {
  return measured === undefined
    ? { target, limit, measured: 'not run', result: 'n/a' }
    : { target, limit, measured, result: ok ? 'PASS' : 'MISS' };
}

/** Stops the gateway (its drain exports the spans still queued), then reads the sink's counts. */
async function sinkStats(gateway: Proc): Promise<SinkStats> {
  await stop(gateway);
  const res = await fetch(`http://127.0.0.1:${PORTS.otlpSink}/stats`);
  return (await res.json()) as SinkStats;
}

async function main(): Promise<void> {
  const procs: Proc[] = [];
  const stopAll = (): void => {
    for (const p of procs) p.child.kill('SIGTERM');
  };
  process.on('exit', stopAll);
  const tree = treeState();
  const benchStarted = Date.now();
  try {
    const [methodcallSim, dynRestSim, dynSoapSim] = await startSimulators(PORTS);
    procs.push(methodcallSim, dynRestSim, dynSoapSim);
    const upstreamTask = `http://127.0.0.1:${PORTS.methodcall}/api/v2/task`;
    const heap = { env: { NODE_OPTIONS: NODE_FLAGS } };
    const baseline = await start(
      'baseline',
      ['--import', 'tsx', 'bench/baseline.ts', upstreamTask, String(PORTS.baseline)],
      /listening/,
      heap,
    );
    procs.push(baseline);
    const baselineExpress = await start(
      'baseline-express',
      ['--import', 'tsx', 'bench/baseline-express.ts', upstreamTask, String(PORTS.baselineExpress)],
      /listening/,
      heap,
    );
    procs.push(baselineExpress);
    if (TRACING) {
      procs.push(
        await start(
          'otlp-sink',
          ['--import', 'tsx', 'bench/otlp-sink.ts', String(PORTS.otlpSink)],
          /listening/,
        ),
      );
    }
    const configFile = gatewayConfig();
    const readyMs: number[] = [];
    for (let i = 0; i < 3; i++) readyMs.push(await timeToReady(configFile));
    // --profile: a V8 CPU profile of the gateway, written to bench/results/profile/ at its exit.
    const gateway = await startGateway(configFile, PORTS.gateway, {
      nodeOptions: NODE_FLAGS,
      cliFlags: PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : [],
      env: GATEWAY_ENV,
    });
    procs.push(gateway);
    const g = `http://127.0.0.1:${PORTS.gateway}`;
    const json = 'application/json';
    const forwarder = (
      id: string,
      label: string,
      port: number,
      proc: Proc,
      extra: Partial<Scenario> = {},
    ): Scenario => ({
      id,
      label,
      url: `http://127.0.0.1:${port}/cancel`,
      measured: () => proc,
      upstream: () => methodcallSim,
      contentType: json,
      body: () => cancelBody('warehouse'),
      ...extra,
    });
    const gatewayOn = (
      id: string,
      label: string,
      target: string,
      sim: Proc,
      extra: Partial<Scenario> = {},
    ): Scenario => ({
      id,
      label,
      url: `${g}/cancel`,
      measured: () => gateway,
      upstream: () => sim,
      contentType: json,
      body: () => cancelBody(target),
      ...extra,
    });
    const selected = (s: Scenario): boolean =>
      ONLY === undefined ? s.byDefault !== false : ONLY.has(s.id);
    const B_LABEL = 'B  bare node:http + undici forwarder';
    const E_LABEL = 'E  bare Express 5 + undici forwarder';
    const scenarios: Scenario[] = [
      {
        id: 'a',
        label: 'A  methodcall simulator directly',
        url: upstreamTask,
        measured: () => methodcallSim,
        contentType: 'application/xml',
        body: methodcallXml,
      },
      forwarder('b', B_LABEL, PORTS.baseline, baseline),
      forwarder('e', E_LABEL, PORTS.baselineExpress, baselineExpress),
      gatewayOn('c-methodcall', 'C  gateway, methodcall', 'warehouse', methodcallSim),
      gatewayOn('c-dyn-rest', 'C  gateway, dyn-rest', 'dns', dynRestSim),
      gatewayOn('c-dyn-soap', 'C  gateway, dyn-soap', 'dns-soap', dynSoapSim),
      gatewayOn(
        'd-batch',
        'D  gateway, /cancel/batch × 100 (methodcall)',
        'warehouse',
        methodcallSim,
        {
          url: `${g}/cancel/batch`,
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
      ),
      gatewayOn(
        'd-single',
        'D  gateway, 100 single requests (methodcall)',
        'warehouse',
        methodcallSim,
        {
          connections: 4 * 16,
        },
      ),
    ].filter(selected);
    const openScenarios: Scenario[] = [
      forwarder('open-b', B_LABEL, PORTS.baseline, baseline, { byDefault: false }),
      forwarder('open-e', E_LABEL, PORTS.baselineExpress, baselineExpress),
      gatewayOn('open-methodcall', 'gateway, methodcall', 'warehouse', methodcallSim),
      gatewayOn('open-dyn-rest', 'gateway, dyn-rest', 'dns', dynRestSim),
      gatewayOn('open-dyn-soap', 'gateway, dyn-soap', 'dns-soap', dynSoapSim),
    ].filter(selected);

    const results: Measurement[] = [];
    const openResults: OpenMeasurement[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      // Alternate the order between rounds so drift (thermal, GC) does not favour one scenario.
      const order = round % 2 === 1 ? scenarios : [...scenarios].reverse();
      for (const s of order) {
        const m = await measure(s, round);
        results.push(m);
        process.stderr.write(`${s.id} round ${round}: ${JSON.stringify(m)}\n`);
      }
      const openOrder = round % 2 === 1 ? openScenarios : [...openScenarios].reverse();
      for (const s of openOrder) {
        const m = await measureOpen(s, round);
        openResults.push(m);
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

    const summary = scenarios.map((s) => {
      const rs = results.filter((r) => r.scenario === s.id);
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
    const openSummary = openScenarios.map((s) => {
      const rs = openResults.filter((r) => r.scenario === s.id);
      return {
        id: s.id,
        label: s.label,
        rate: OPEN_RATE,
        scheduled: rs.reduce((n, r) => n + r.scheduled, 0),
        latencyP50: median(rs.map((r) => r.latencyP50)),
        latencyP99: median(rs.map((r) => r.latencyP99)),
        latencyMax: Math.max(...rs.map((r) => r.latencyMax)),
        sendLagP99: median(rs.map((r) => r.sendLagP99)),
        cpuMsPerRequest: median(rs.map((r) => r.cpuMsPerRequest)),
        peakRssMb: Math.max(...rs.map((r) => r.peakRssMb)),
        errors: rs.reduce((n, r) => n + r.errors + r.non2xx, 0),
      };
    });
    const find = (id: string) => summary.find((x) => x.id === id);
    const findOpen = (id: string) => openSummary.find((x) => x.id === id);
    const a = find('a');
    const b = find('b');
    const e = find('e');
    const openE = findOpen('open-e');
    const ratio = (r: { itemsPerSecond: number }, base: { itemsPerSecond: number } | undefined) =>
      base === undefined ? '' : `${Math.round((100 * r.itemsPerSecond) / base.itemsPerSecond)}%`;

    const targets: Target[] = [];
    for (const p of PROTOCOLS) {
      const c = find(`c-${p}`);
      const want = TARGETS.ratioOfE[`c-${p}`]!;
      const share =
        c === undefined || e === undefined ? undefined : c.requestsPerSecond / e.requestsPerSecond;
      targets.push(
        check(
          `${p} req/s, 50 connections`,
          `≥ ${Math.round(want * 100)} % of E`,
          share === undefined || c === undefined || e === undefined
            ? undefined
            : `${(share * 100).toFixed(1)} % (${c.requestsPerSecond} / ${e.requestsPerSecond})`,
          share !== undefined && share >= want,
        ),
      );
    }
    for (const p of PROTOCOLS) {
      const c = find(`c-${p}`);
      const limit = e === undefined ? undefined : TARGETS.p99TimesE * e.latencyP99;
      targets.push(
        check(
          `${p} p99, 50 connections`,
          `≤ ${TARGETS.p99TimesE} × E's p99${limit === undefined ? '' : ` (${limit} ms)`}`,
          c === undefined || limit === undefined ? undefined : `${c.latencyP99} ms`,
          c !== undefined && limit !== undefined && c.latencyP99 <= limit,
        ),
      );
    }
    for (const p of PROTOCOLS) {
      const o = findOpen(`open-${p}`);
      const added =
        o === undefined || openE === undefined ? undefined : o.latencyP99 - openE.latencyP99;
      targets.push(
        check(
          `${p} added p99, open loop ${OPEN_RATE}/s`,
          `≤ ${TARGETS.openAddedP99Ms} ms over E's p99`,
          added === undefined || o === undefined || openE === undefined
            ? undefined
            : `${added.toFixed(2)} ms (${o.latencyP99} − ${openE.latencyP99})`,
          added !== undefined && added <= TARGETS.openAddedP99Ms,
        ),
      );
    }
    const gatewayRows = [
      ...summary.filter((r) => /^[cd]-/.test(r.id)),
      ...openSummary.filter((r) => /^open-(methodcall|dyn)/.test(r.id)),
    ];
    const peakRss =
      gatewayRows.length === 0 ? undefined : Math.max(...gatewayRows.map((r) => r.peakRssMb));
    targets.push(
      check(
        'gateway peak RSS under load, image heap flags',
        `≤ ${TARGETS.peakRssMb} MB`,
        peakRss === undefined ? undefined : `${peakRss} MB`,
        peakRss !== undefined && peakRss <= TARGETS.peakRssMb,
      ),
    );
    const slowestReady = Math.max(...readyMs);
    targets.push(
      check(
        'start to /readyz 200 (slowest of 3)',
        `≤ ${TARGETS.readyMs} ms`,
        `${slowestReady} ms (${readyMs.join(', ')})`,
        slowestReady <= TARGETS.readyMs,
      ),
    );
    const gatewayErrors = gatewayRows.reduce((n, r) => n + r.errors, 0);
    targets.push(
      check(
        'no errors or non-2xx answers from the gateway',
        '0',
        gatewayRows.length === 0 ? undefined : String(gatewayErrors),
        gatewayErrors === 0,
      ),
    );

    // Stopping the gateway flushes its last spans; the sink then holds everything exported.
    const tracing = TRACING ? await sinkStats(gateway) : undefined;
    const machine = {
      cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown'}`,
      memoryGb: Math.round(os.totalmem() / 1024 ** 3),
      node: process.version,
      os: `${os.type()} ${os.release()}`,
    };
    const lines = [
      `Machine: ${machine.cpus}, ${machine.memoryGb} GB, ${machine.os}, Node ${machine.node}.`,
      `Tree: ${tree.label}. NODE_OPTIONS of the gateway and the baselines: ${NODE_FLAGS || '(none)'}.`,
      `Tracing: ${
        tracing === undefined
          ? 'off (no OTEL_* variable)'
          : `on, OTLP/HTTP to bench/otlp-sink.ts (${tracing.spans} spans in ${tracing.exports} exports, ${tracing.refused} refused)`
      }; ${TRACEPARENT ? 'every request carries a traceparent' : 'no caller traceparent'}.`,
      `Closed loop: ${CONNECTIONS} connections, ${DURATION} s per run after ${WARMUP} s warm-up. Open loop: ${OPEN_RATE} req/s, ${OPEN_SECONDS} s after ${OPEN_WARMUP} s. ${ROUNDS} round(s) (median). Start to /readyz 200: ${readyMs.join(', ')} ms.`,
      '',
      '| scenario | req/s | items/s | p50 ms | p99 ms | max ms | CPU ms/req | upstream CPU ms/req | load gen CPU ms/req | peak RSS MB | vs A | vs B | vs E | errors |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...summary.map(
        (r) =>
          `| ${r.label} | ${r.requestsPerSecond} | ${r.itemsPerSecond} | ${r.latencyP50} | ${r.latencyP99} | ${r.latencyMax} | ${r.cpuMsPerRequest} | ${r.upstreamCpuMsPerRequest || ''} | ${r.loadCpuMsPerRequest} | ${r.peakRssMb} | ${ratio(r, a)} | ${ratio(r, b)} | ${ratio(r, e)} | ${r.errors} |`,
      ),
    ];
    if (openSummary.length > 0) {
      lines.push(
        '',
        `| open loop, ${OPEN_RATE} req/s | requests | p50 ms | p99 ms | max ms | added p99 ms (vs E) | CPU ms/req | peak RSS MB | generator lag p99 ms | errors |`,
        '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
        ...openSummary.map(
          (r) =>
            `| ${r.label} | ${r.scheduled} | ${r.latencyP50} | ${r.latencyP99} | ${r.latencyMax} | ${openE === undefined || r.id === 'open-e' ? '' : (r.latencyP99 - openE.latencyP99).toFixed(2)} | ${r.cpuMsPerRequest} | ${r.peakRssMb} | ${r.sendLagP99} | ${r.errors} |`,
        ),
      );
    }
    lines.push(
      '',
      '| target | limit | measured | result |',
      '| --- | --- | --- | --- |',
      ...targets.map((t) => `| ${t.target} | ${t.limit} | ${t.measured} | **${t.result}** |`),
    );
    if (soak.length > 0) {
      lines.push('', '| soak minute | RSS MB | req/s |', '| ---: | ---: | ---: |');
      for (const s of soak) lines.push(`| ${s.minute} | ${s.rssMb} | ${s.requestsPerSecond} |`);
    }
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const out = path.join(ROOT, 'bench', 'results', `${stamp}.json`);
    const options = {
      DURATION,
      WARMUP,
      CONNECTIONS,
      ROUNDS,
      OPEN_RATE,
      OPEN_SECONDS,
      OPEN_WARMUP,
      NODE_FLAGS,
      ONLY: ONLY === undefined ? undefined : [...ONLY],
      TRACING,
      TRACEPARENT,
    };
    const report = {
      machine,
      tree,
      options,
      readyMs,
      results,
      summary,
      openResults,
      openSummary,
      targets,
      soak,
      tracing,
    };
    writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(`${lines.join('\n')}\n\nraw results: ${path.relative(ROOT, out)}\n`);

    if (PROFILE) {
      // The profile is written when the gateway exits, so stop it cleanly and wait for it.
      await stop(gateway);
      const written = readdirSync(PROFILE_DIR)
        .filter((f) => f.endsWith('.cpuprofile'))
        .map((f) => path.join(PROFILE_DIR, f))
        .filter((f) => statSync(f).mtimeMs >= benchStarted)
        .sort((x, y) => statSync(y).mtimeMs - statSync(x).mtimeMs);
      const file = written[0];
      if (file === undefined) throw new Error(`no .cpuprofile written to ${PROFILE_DIR}`);
      const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
      process.stdout.write(
        `\nCPU profile of the gateway (whole run, warm-ups included): ${path.relative(ROOT, file)}\n` +
          summarise(profile, 30, answered.get(gateway)),
      );
    }
    if (STRICT && targets.some((t) => t.result === 'MISS')) {
      process.stderr.write('bench: a target was missed (--strict)\n');
      process.exitCode = 3;
    }
    process.stderr.write(`bench took ${Math.round((Date.now() - benchStarted) / 1000)} s\n`);
  } finally {
    stopAll();
  }
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (err: unknown) => {
    process.stderr.write(
      `bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
