/** Process helpers shared by the benchmark (run.ts) and the soak (soak.ts). */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';

export const ROOT = path.join(__dirname, '..');

export const PORTS = {
  methodcall: 19081,
  dynRest: 19082,
  dynSoap: 19083,
  baseline: 19090,
  gateway: 19080,
};
export const DEMO = { customerName: 'demo', userName: 'demo-api', password: 'demo-password' };
export const CLK_TCK = 100;
/** The heap settings the Dockerfile ships (NODE_OPTIONS): RSS stays under 150 MB at full load. */
export const GATEWAY_NODE_FLAGS = '--max-old-space-size=128 --max-semi-space-size=8';

export interface Proc {
  name: string;
  child: ChildProcess;
}

export function start(name: string, command: string[], ready: RegExp): Promise<Proc> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, command, {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
        DEMO_DYN_PASSWORD: DEMO.password,
      },
    });
    let seen = '';
    const onData = (chunk: Buffer): void => {
      seen += chunk.toString();
      if (ready.test(seen)) {
        child.stdout.off('data', onData);
        // Keep draining stdout (the gateway logs a line per request) without keeping it.
        child.stdout.resume();
        resolve({ name, child });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (c: Buffer) => (seen += c.toString()));
    child.on('exit', (code) => {
      reject(new Error(`${name} exited (${String(code)}):\n${seen}`));
    });
  });
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

/** utime + stime of a process, in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

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
