/**
 * What an entered AsyncLocalStorage costs every promise of the process, on the Node that runs
 * this: why the gateway enters none for a request whose span records nothing
 * (docs/performance.md, "Tracing cost"). A "request" here is 100 awaited async calls.
 *
 *   node --import tsx bench/async-context-cost.ts [requests]   # default 20000
 *
 * Prints CPU µs per request: never entered; entered once before (on Node 20 and 22 that alone
 * turns on a promise hook for the whole process); run inside a context.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

const REQUESTS = Number(process.argv[2] ?? 20_000);

async function leaf(i: number): Promise<number> {
  await Promise.resolve();
  return i;
}

async function request(): Promise<number> {
  let sum = 0;
  for (let i = 0; i < 100; i++) sum += await leaf(i);
  return sum;
}

async function requests(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await request();
}

/** CPU µs per request of `n` requests run by `run`, after a warm-up of the same. */
async function measure(run: (n: number) => Promise<void>): Promise<number> {
  await run(Math.ceil(REQUESTS / 10));
  const before = process.cpuUsage();
  await run(REQUESTS);
  const used = process.cpuUsage(before);
  return (used.user + used.system) / REQUESTS;
}

async function main(): Promise<void> {
  const storage = new AsyncLocalStorage<{ request: number }>();
  const never = await measure(requests);
  storage.run({ request: 0 }, () => undefined);
  const enteredBefore = await measure(requests);
  const inside = await measure((n) => storage.run({ request: 1 }, () => requests(n)));
  process.stdout.write(
    `Node ${process.version}, CPU µs per request of 100 awaits: never entered ${never.toFixed(1)}, ` +
      `entered once before ${enteredBefore.toFixed(1)}, inside a context ${inside.toFixed(1)}\n`,
  );
}

void main();
