/**
 * Replicas sharing one Redis, probed the way their failures happen (docs/operations.md, shared
 * state): the same cancel raced on two replicas, a replica killed with SIGKILL mid-load, Redis
 * frozen with SIGSTOP under load, and an `Idempotency-Key` whose owner was killed.
 *
 *   npm run build && node --import tsx bench/replicas.ts      (the built gateway, as the image)
 *   node --import tsx bench/replicas.ts --src                  (src/ through tsx, no build)
 *
 * Options: --tasks N (race: tasks per protocol, 100), --connections N (SIGSTOP load, 50),
 *          --stop-seconds S (how long Redis is frozen, 3), --src.
 * Needs `redis-server` on PATH. The simulators run in this process (their recorded calls count
 * what reached the upstream); gateways and Redis are child processes on fixed loopback ports.
 * Prints one table; takes about a minute.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { startDynRestSimulator } from '../src/simulators/dyn-rest';
import { startDynSoapSimulator } from '../src/simulators/dyn-soap';
import { startMethodcallSimulator } from '../src/simulators/methodcall';
import { GATEWAY_NODE_FLAGS, numberOption, start, stop, type Proc } from './lib';

const args = process.argv.slice(2);
const TASKS = numberOption(args, 'tasks', 100);
const CONNECTIONS = numberOption(args, 'connections', 50);
const STOP_SECONDS = numberOption(args, 'stop-seconds', 3);
const FROM_SOURCE = args.includes('--src');
const REDIS_PORT = 19379;
const GATEWAY_PORTS = [19180, 19181, 19182, 19183];

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Reply {
  status: number;
  body: { outcome?: string; replayed?: boolean; error?: { code?: string } };
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${url}/cancel`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Reply['body'] };
}

async function startRedis(): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    ['--port', String(REDIS_PORT), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.on('error', reject);
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('Ready to accept connections')) resolve();
    });
    child.once('exit', (code) => {
      reject(new Error(`redis-server exited (${String(code)}):\n${out}`));
    });
  });
  child.stdout.resume();
  return child;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? Number.NaN;
}

async function main(): Promise<void> {
  const redis = await startRedis();
  const mc = await startMethodcallSimulator();
  const dynAccount = { customerName: 'acme', userName: 'api-user', password: 'sim-password' };
  const rest = await startDynRestSimulator(dynAccount);
  const soap = await startDynSoapSimulator(dynAccount);
  const room = { maxConcurrent: 256, maxQueue: 1024 };
  const dyn = { ...dynAccount, maxSessions: 32, rateLimitPerSecond: 100_000, ...room };
  const configFile = path.join(os.tmpdir(), `cancel-gateway-replicas-${process.pid}.yaml`);
  writeFileSync(
    configFile,
    stringify({
      server: { host: '127.0.0.1', port: 0 },
      providers: {
        mc: { type: 'methodcall', url: mc.taskUrl, ...room },
        rest: { type: 'dyn-rest', baseUrl: rest.baseUrl, ...dyn },
        soap: { type: 'dyn-soap', wsdl: 'wsdl/dynect.wsdl', endpoint: soap.endpoint, ...dyn },
      },
      routes: { mc: { provider: 'mc' }, rest: { provider: 'rest' }, soap: { provider: 'soap' } },
      state: { store: 'redis', redisUrl: `redis://127.0.0.1:${REDIS_PORT}` },
    }),
  );
  const entry = FROM_SOURCE ? ['--import', 'tsx', 'src/main.ts'] : ['dist/main.js'];
  const gateway = (index: number): Promise<Proc> => {
    const port = GATEWAY_PORTS[index] ?? 0;
    return start(
      `gateway-${index}`,
      [...entry, '--config', configFile],
      { url: `http://127.0.0.1:${port}/readyz` },
      { env: { PORT: String(port), LOG_LEVEL: 'warn', NODE_OPTIONS: GATEWAY_NODE_FLAGS } },
    );
  };
  const urlOf = (index: number): string => `http://127.0.0.1:${GATEWAY_PORTS[index] ?? 0}`;
  const procs: Proc[] = await Promise.all([gateway(0), gateway(1), gateway(2)]);
  const [a, b] = [urlOf(0), urlOf(1)];
  const rows: [string, string][] = [];
  try {
    // 1. The same cancel sent at once to two replicas.
    const counts: Record<string, (id: number) => number> = {
      mc: (id) => mc.calls.filter((c) => c.taskId === String(id)).length,
      rest: (id) => rest.callsTo('DELETE', `/REST/Task/${id}/`).length,
      soap: (id) => soap.callsTo('CancelTask').filter((c) => c.args.task_id === String(id)).length,
    };
    for (const [index, target] of ['mc', 'rest', 'soap'].entries()) {
      const ids = Array.from({ length: TASKS }, (_, i) => 1_000_000 * (index + 1) + i);
      const answers: Reply[] = [];
      for (let i = 0; i < ids.length; i += 25) {
        const batch = ids.slice(i, i + 25);
        answers.push(
          ...(await Promise.all(
            batch.flatMap((taskId) => [post(a, { target, taskId }), post(b, { target, taskId })]),
          )),
        );
      }
      const count = counts[target] ?? (() => 0);
      const calls = ids.map(count);
      const twice = calls.filter((n) => n > 1).length;
      const canceled = answers.filter((r) => r.body.outcome === 'canceled').length;
      rows.push([
        `race ×2 replicas, ${target}: upstream cancels per task`,
        `max ${Math.max(...calls)}, >1 for ${((100 * twice) / ids.length).toFixed(0)} % of ` +
          `${ids.length} tasks; callers canceled ${canceled}/${answers.length}`,
      ]);
    }

    // 2. kill -9 of a replica mid-load; what was reset is re-sent to the survivor.
    const victim = urlOf(2);
    for (let id = 5_000_000; id < 5_000_060; id++) {
      mc.setBehaviour(id, { kind: 'hold' });
      rest.setBehaviour(id, { kind: 'hold' });
    }
    const sent = Array.from({ length: 60 }, (_, i) => {
      const taskId = 5_000_000 + i;
      const target = i % 2 === 0 ? 'mc' : 'rest';
      return post(victim, { target, taskId }).then(
        (r): { target: string; taskId: number; reply: Reply | undefined } => ({
          target,
          taskId,
          reply: r,
        }),
        () => ({ target, taskId, reply: undefined }),
      );
    });
    const reached = (): number =>
      Array.from({ length: 60 }, (_, i) => 5_000_000 + i).filter(
        (id) => (counts[id % 2 === 0 ? 'mc' : 'rest'] ?? (() => 0))(id) > 0,
      ).length;
    while (reached() < 60) await sleep(20);
    procs[2]?.child.kill('SIGKILL');
    const killedAt = performance.now();
    mc.releaseHeld();
    rest.releaseHeld();
    for (let id = 5_000_000; id < 5_000_060; id++) {
      mc.setBehaviour(id, { kind: 'fault', code: 1017 });
      rest.setBehaviour(id, { kind: 'ok' });
    }
    const lost = (await Promise.all(sent)).filter((s) => s.reply === undefined);
    const resent = await Promise.all(
      lost.map((s) => post(b, { target: s.target, taskId: s.taskId })),
    );
    const resentSeconds = (performance.now() - killedAt) / 1000;
    const tally = new Map<string, number>();
    for (const r of resent) {
      const what = r.body.error?.code ?? r.body.outcome ?? String(r.status);
      tally.set(what, (tally.get(what) ?? 0) + 1);
    }
    rows.push([
      'kill -9 mid-call: reset / re-sent answers',
      `${lost.length} reset (all reached the upstream); re-sent to the survivor: ` +
        [...tally].map(([k, v]) => `${v} ${k}`).join(', ') +
        `; all answered ${resentSeconds.toFixed(1)} s after the kill`,
    ]);

    // 3. Redis frozen (SIGSTOP) under load.
    let next = 7_000_000;
    let phase: 'before' | 'stopped' | 'after' = 'before';
    const lat: Record<string, number[]> = { before: [], stopped: [], after: [] };
    const failed: Record<string, number> = { before: 0, stopped: 0, after: 0 };
    let running = true;
    const worker = async (url: string): Promise<void> => {
      while (running) {
        const at = phase;
        const started = performance.now();
        const r = await post(url, { target: 'mc', taskId: next++ }).catch(() => undefined);
        (lat[at] ?? []).push(performance.now() - started);
        if (r?.status !== 200) failed[at] = (failed[at] ?? 0) + 1;
      }
    };
    const load = Array.from({ length: CONNECTIONS }, (_, i) => worker(i % 2 === 0 ? a : b));
    await sleep(STOP_SECONDS * 1000);
    redis.kill('SIGSTOP');
    phase = 'stopped';
    await sleep(STOP_SECONDS * 1000);
    redis.kill('SIGCONT');
    const resumedAt = performance.now();
    phase = 'after';
    let okAgainMs = Number.NaN;
    for (;;) {
      const states = await Promise.all(
        [a, b].map(
          async (url) => ((await (await fetch(`${url}/readyz`)).json()) as { state: string }).state,
        ),
      );
      if (states.every((s) => s === 'ok')) {
        okAgainMs = performance.now() - resumedAt;
        break;
      }
      await sleep(50);
    }
    await sleep(1_000);
    running = false;
    await Promise.all(load);
    for (const at of ['before', 'stopped'] as const) {
      const sorted = [...(lat[at] ?? [])].sort((x, y) => x - y);
      rows.push([
        `Redis ${at === 'before' ? 'answering' : `SIGSTOP ${STOP_SECONDS} s`}, ${CONNECTIONS} connections`,
        `p50 ${percentile(sorted, 0.5).toFixed(1)} ms, p99 ${percentile(sorted, 0.99).toFixed(1)} ms, ` +
          `${(sorted.length / STOP_SECONDS).toFixed(0)} req/s, non-200: ${failed[at] ?? 0}`,
      ]);
    }
    rows.push([
      'Redis resumed: /readyz state ok on both after',
      `${(okAgainMs / 1000).toFixed(1)} s`,
    ]);

    // 4. An Idempotency-Key whose owner is killed.
    const ownerProc = await gateway(3);
    procs.push(ownerProc);
    const owner = urlOf(3);
    mc.setBehaviour(8_000_000, { kind: 'hold' });
    const calls = mc.calls.length;
    const held = post(
      owner,
      { target: 'mc', taskId: 8_000_000 },
      { 'idempotency-key': 'bench-key' },
    ).catch(() => undefined);
    await mc.waitForCalls(calls + 1);
    ownerProc.child.kill('SIGKILL');
    const killed = performance.now();
    await held;
    mc.releaseHeld();
    mc.setBehaviour(8_000_000, { kind: 'fault', code: 1017 });
    let keyed = await post(
      b,
      { target: 'mc', taskId: 8_000_000 },
      { 'idempotency-key': 'bench-key' },
    );
    while (keyed.body.error?.code === 'IDEMPOTENCY_KEY_IN_FLIGHT') {
      await sleep(100);
      keyed = await post(
        b,
        { target: 'mc', taskId: 8_000_000 },
        { 'idempotency-key': 'bench-key' },
      );
    }
    rows.push([
      'kill -9 of an Idempotency-Key owner: key free after',
      `${((performance.now() - killed) / 1000).toFixed(1)} s (then ${keyed.status} ` +
        `${keyed.body.error?.code ?? keyed.body.outcome ?? ''})`,
    ]);
  } finally {
    await Promise.all(procs.map((p) => stop(p, 5_000)));
    redis.kill('SIGCONT');
    redis.kill('SIGKILL');
    await Promise.all([mc.close(), rest.close(), soap.close()]);
  }
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log(`\n${'probe'.padEnd(width)} | measured`);
  console.log(`${'-'.repeat(width)}-|-${'-'.repeat(40)}`);
  for (const [k, v] of rows) console.log(`${k.padEnd(width)} | ${v}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
