/**
 * `node --import tsx bench/gc-trace.ts <target> [seconds] [node flags…]` (after `npm run build`):
 * the gateway under 50 connections of `POST /cancel` on one target (warehouse | dns | dns-soap)
 * with `--trace-gc`, summarised: req/s, CPU ms per request, peak RSS, how many scavenges and
 * mark-compacts and the time spent in each. Node flags default to the image's NODE_OPTIONS.
 */
import autocannon from 'autocannon';
import {
  GATEWAY_NODE_FLAGS,
  PORTS,
  cpuSeconds,
  rssMb,
  startGateway,
  startSimulators,
  writeGatewayConfig,
  type Proc,
} from './lib';

const [target = 'warehouse', secondsArg = '8', ...flagArgs] = process.argv.slice(2);
// ALLOC_PROFILE=<file>: also a sampling allocation profile of the gateway (bench/alloc-sampler.ts).
const sampler =
  process.env.ALLOC_PROFILE === undefined
    ? []
    : ['--import', 'tsx', '--import', './bench/alloc-sampler.ts'];
const flags = [...(flagArgs.length > 0 ? flagArgs : GATEWAY_NODE_FLAGS.split(' ')), ...sampler];

async function main(): Promise<void> {
  const procs: Proc[] = [];
  try {
    procs.push(...(await startSimulators(PORTS)));
    const config = writeGatewayConfig('gc-trace', PORTS);
    // The flags go on the command line (NODE_OPTIONS refuses --trace-gc), in place of the image's.
    const gateway = await startGateway(config, PORTS.gateway, {
      nodeOptions: '',
      cliFlags: [...flags, '--trace-gc'],
      stdout: 'pipe',
    });
    procs.push(gateway);
    const lines: string[] = [];
    let measuring = false;
    let partial = '';
    gateway.child.stdout?.on('data', (chunk: Buffer) => {
      const text = partial + chunk.toString();
      const parts = text.split('\n');
      partial = parts.pop() ?? '';
      if (measuring) for (const l of parts) if (/: (Scavenge|Mark-Compact)/.test(l)) lines.push(l);
    });
    let id = 1_000_000;
    const fire = (seconds: number): Promise<autocannon.Result> =>
      new Promise((resolve, reject) => {
        autocannon(
          {
            url: `http://127.0.0.1:${PORTS.gateway}/cancel`,
            connections: 50,
            duration: seconds,
            requests: [
              {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                setupRequest: (req) => ({
                  ...req,
                  body: JSON.stringify({ target, taskId: String(id++) }),
                }),
              },
            ],
          },
          (err, result) => {
            if (err !== null) reject(new Error(err.message));
            else resolve(result);
          },
        );
      });
    await fire(2);
    measuring = true;
    let peakRssMb = 0;
    const sampler = setInterval(() => {
      peakRssMb = Math.max(peakRssMb, Math.round(rssMb(gateway.child.pid ?? 0)));
    }, 250);
    const cpuBefore = cpuSeconds(gateway.child.pid ?? 0);
    const result = await fire(Number(secondsArg));
    const cpuMsPerRequest = Number(
      (((cpuSeconds(gateway.child.pid ?? 0) - cpuBefore) * 1000) / result.requests.total).toFixed(
        3,
      ),
    );
    clearInterval(sampler);
    measuring = false;
    if (process.env.ALLOC_PROFILE !== undefined) {
      const written = new Promise<void>((resolve) => {
        gateway.child.stderr?.on('data', (c: Buffer) => {
          if (c.toString().includes('alloc profile written')) resolve();
        });
      });
      gateway.child.kill('SIGUSR2');
      await written;
    }
    const sum = (kind: string): { count: number; ms: number } => {
      const mine = lines.filter((l) => l.includes(kind));
      // "… ms: Scavenge 40.1 (52.3) -> 38.2 (52.3) MB, pooled: 0 MB, 1.23 / 0.00 ms …"
      const ms = mine.reduce(
        (n, l) => n + Number(/MB, (?:pooled: [\d.]+ MB, )?([\d.]+) \//.exec(l)?.[1] ?? 0),
        0,
      );
      return { count: mine.length, ms: Math.round(ms) };
    };
    const scavenge = sum('Scavenge');
    const markCompact = sum('Mark-Compact');
    process.stdout.write(
      `${JSON.stringify({ target, flags, requestsPerSecond: Math.round(result.requests.average), p99: result.latency.p99, cpuMsPerRequest, peakRssMb, requests: result.requests.total, scavenge, markCompact })}\n${lines.slice(-3).join('\n')}\n`,
    );
  } finally {
    for (const p of procs) p.child.kill('SIGTERM');
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${String(err)}\n`);
    process.exit(1);
  },
);
