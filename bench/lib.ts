/** Process helpers shared by the benchmark (run.ts), the soak (soak.ts) and gc-trace.ts. */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';

export const ROOT = path.join(__dirname, '..');

export const PORTS = {
  methodcall: 19081,
  dynRest: 19082,
  dynSoap: 19083,
  baseline: 19090,
  baselineExpress: 19091,
  /** bench/otlp-sink.ts, the collector of `--tracing`. */
  otlpSink: 19095,
  gateway: 19080,
};
export const DEMO = { customerName: 'demo', userName: 'demo-api', password: 'demo-password' };
export const CLK_TCK = 100;
/** The heap settings the Dockerfile ships (NODE_OPTIONS): RSS stays under 150 MB at full load. */
export const GATEWAY_NODE_FLAGS = '--max-old-space-size=128 --max-semi-space-size=8';
/** How long a process may take to come up before the bench gives up (it must stop by itself). */
const START_TIMEOUT_MS = 30_000;

/** A process the bench started, with the tail of what it wrote (for the error when it dies). */
export interface Proc {
  name: string;
  child: ChildProcess;
  /** The last few KB of its stdout and stderr. */
  tail: () => string;
}

/** How `start` knows the process is up: a line it prints, or a URL that answers 200. */
export type Ready = RegExp | { url: string };

/** Extra settings for `start`. */
export interface StartOptions {
  /** Environment on top of the bench's own (LOG_LEVEL and the demo Dyn password are set). */
  env?: Record<string, string>;
  /** A file descriptor for its stdout instead of a pipe this process reads (ready must be a URL). */
  stdoutFd?: number;
}

/**
 * Spawns `node <command…>` from the repository root and resolves once it is ready. Its output is
 * drained (the gateway logs a line per request) and only a short tail kept; it rejects when the
 * process exits first or is not ready within 30 s.
 */
export function start(
  name: string,
  command: string[],
  ready: Ready,
  options: StartOptions = {},
): Promise<Proc> {
  const child = spawn(process.execPath, command, {
    cwd: ROOT,
    stdio: ['ignore', options.stdoutFd ?? 'pipe', 'pipe'],
    env: {
      ...process.env,
      LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
      DEMO_DYN_PASSWORD: DEMO.password,
      ...options.env,
    },
  });
  let seen = '';
  const keep = (chunk: Buffer): void => {
    seen = (seen + chunk.toString()).slice(-8192);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const proc: Proc = { name, child, tail: () => seen };
  return new Promise<Proc>((resolve, reject) => {
    let settled = false;
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      child.kill('SIGKILL');
      reject(new Error(`${name} ${why}:\n${seen}`));
    };
    const timer = setTimeout(() => {
      fail(`not ready within ${START_TIMEOUT_MS} ms`);
    }, START_TIMEOUT_MS);
    const done = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(proc);
    };
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      fail(`exited (${String(code ?? signal)})`);
    });
    if (ready instanceof RegExp) {
      const onData = (): void => {
        if (ready.test(seen)) {
          child.stdout?.off('data', onData);
          done();
        }
      };
      child.stdout?.on('data', onData);
    } else {
      void untilStatus(ready.url, 200, () => settled).then((ok) => {
        if (ok) done();
      });
    }
  });
}

/** Polls `url` every 5 ms until it answers `status`; false when `stop()` turns true first. */
export async function untilStatus(
  url: string,
  status: number,
  stop: () => boolean,
): Promise<boolean> {
  while (!stop()) {
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.status === status) return true;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return false;
}

/** SIGTERM, then the exit (SIGKILL after `graceMs`): a CPU profile is written at a clean exit. */
export function stop(proc: Proc, graceMs = 15_000): Promise<void> {
  const { child } = proc;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/**
 * The gateway from `dist/`, run the way the image runs it: `node dist/main.js` with the heap
 * flags in NODE_OPTIONS (the Dockerfile's), ready when `/readyz` answers 200. `cliFlags` go on the
 * command line (flags NODE_OPTIONS refuses, such as --trace-gc). Its log (stdout) goes to
 * /dev/null, or to the file BENCH_GATEWAY_LOG names, not through a pipe this process drains: in
 * production another process reads the log, and draining it here would take CPU from the load
 * generator. `stdout: 'pipe'` keeps the pipe (gc-trace reads --trace-gc from it). `env` adds
 * variables (the `OTEL_*` ones of `--tracing`).
 */
export async function startGateway(
  configFile: string,
  port: number,
  options: {
    nodeOptions?: string;
    cliFlags?: string[];
    name?: string;
    stdout?: 'pipe';
    env?: Record<string, string>;
  } = {},
): Promise<Proc> {
  const fd =
    options.stdout === 'pipe'
      ? undefined
      : openSync(process.env.BENCH_GATEWAY_LOG ?? '/dev/null', 'a');
  try {
    return await start(
      options.name ?? 'gateway',
      [...(options.cliFlags ?? []), 'dist/main.js', '--config', configFile],
      { url: `http://127.0.0.1:${port}/readyz` },
      {
        env: {
          ...options.env,
          NODE_OPTIONS: options.nodeOptions ?? GATEWAY_NODE_FLAGS,
          PORT: String(port),
        },
        ...(fd === undefined ? {} : { stdoutFd: fd }),
      },
    );
  } finally {
    // The child holds its own copy of the descriptor.
    if (fd !== undefined) closeSync(fd);
  }
}

/** The three simulators (methodcall, dyn-rest, dyn-soap) as processes, in that order. */
export async function startSimulators(
  ports: Pick<GatewayPorts, 'methodcall' | 'dynRest' | 'dynSoap'>,
): Promise<[Proc, Proc, Proc]> {
  const sim = (kind: string, port: number): Promise<Proc> =>
    start(`sim-${kind}`, ['dist/simulators/run.js', kind, '--port', String(port)], /listening/);
  return [
    await sim('methodcall', ports.methodcall),
    await sim('dyn-rest', ports.dynRest),
    await sim('dyn-soap', ports.dynSoap),
  ];
}

/** `--name N` from the command line, else `fallback`. */
export function numberOption(args: readonly string[], name: string, fallback: number): number {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? Number(args[at + 1]) : fallback;
}

/** `--name VALUE` from the command line, else `fallback`. */
export function stringOption(args: readonly string[], name: string, fallback: string): string {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? (args[at + 1] ?? fallback) : fallback;
}

/** utime + stime of a process, in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** Resident set size of a process, in MB. */
export function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

/** Where the gateway under test listens and finds its three simulators. */
export interface GatewayPorts {
  gateway: number;
  methodcall: number;
  dynRest: number;
  dynSoap: number;
}

/**
 * The gateway config of the benchmark and the soak: one provider of each type on the simulators,
 * routes `warehouse`, `dns`, `dns-soap` and `dns-failover` (REST, then SOAP). The Dyn rate limit is
 * lifted and the bulkheads sized for the load generator; everything else keeps its default.
 */
export function writeGatewayConfig(
  name: string,
  ports: GatewayPorts,
  extra: Record<string, unknown> = {},
): string {
  const dyn = { ...DEMO, maxSessions: 64, rateLimitPerSecond: 100_000, jobPollIntervalMs: 50 };
  const room = { maxConcurrent: 256, maxQueue: 1024 };
  const file = path.join(os.tmpdir(), `cancel-gateway-${name}-${process.pid}.yaml`);
  const local = (port: number, rest: string): string => `http://127.0.0.1:${port}${rest}`;
  writeFileSync(
    file,
    stringify({
      server: { host: '127.0.0.1', port: ports.gateway, bodyLimitBytes: 16384 },
      ...extra,
      providers: {
        wh: { type: 'methodcall', url: local(ports.methodcall, '/api/v2/task'), ...room },
        'dns-rest': { type: 'dyn-rest', baseUrl: local(ports.dynRest, '/REST'), ...dyn, ...room },
        'dns-soap': { type: 'dyn-soap', endpoint: local(ports.dynSoap, '/SOAP/'), ...dyn, ...room },
      },
      routes: {
        warehouse: { provider: 'wh' },
        dns: { provider: 'dns-rest' },
        'dns-soap': { provider: 'dns-soap' },
        'dns-failover': { provider: 'dns-rest', fallback: ['dns-soap'] },
      },
    }),
  );
  return file;
}
