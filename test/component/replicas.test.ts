import { startDynRestSimulator, type DynRestSimulator } from '../../src/simulators/dyn-rest';
import { startDynSoapSimulator, type DynSoapSimulator } from '../../src/simulators/dyn-soap';
import {
  startMethodcallSimulator,
  type MethodcallSimulator,
} from '../../src/simulators/methodcall';
import { spawnGateway, type ChildGateway } from '../helpers/child';
import { postJson, writeConfig } from '../helpers/gateway';
import { startRedis, type RedisServer } from '../helpers/redis';

/**
 * Replicas as deployed: gateway processes sharing one real redis-server, the upstreams' simulators
 * in this process (so their recorded calls count what reached the upstream).
 */

let redis: RedisServer;
let mc: MethodcallSimulator;
let rest: DynRestSimulator;
let soap: DynSoapSimulator;
let configFile: string;
let a: ChildGateway;
let b: ChildGateway;
const extra: ChildGateway[] = [];

const dynAccount = { customerName: 'acme', userName: 'api-user', password: 'sim-password' };

beforeAll(async () => {
  [redis, mc, rest, soap] = await Promise.all([
    startRedis(),
    startMethodcallSimulator(),
    startDynRestSimulator(),
    startDynSoapSimulator(),
  ]);
  configFile = writeConfig({
    server: { host: '127.0.0.1', port: 0 },
    providers: {
      mc: { type: 'methodcall', url: mc.taskUrl, retry: { attempts: 1 } },
      rest: {
        type: 'dyn-rest',
        baseUrl: rest.baseUrl,
        ...dynAccount,
        maxSessions: 4,
        // The Dyn default (a few per second) would refuse part of the race: not what is tested.
        rateLimitPerSecond: 1000,
      },
      soap: {
        type: 'dyn-soap',
        wsdl: 'wsdl/dynect.wsdl',
        endpoint: soap.endpoint,
        ...dynAccount,
        maxSessions: 4,
        rateLimitPerSecond: 1000,
      },
    },
    routes: { mc: { provider: 'mc' }, rest: { provider: 'rest' }, soap: { provider: 'soap' } },
    state: { store: 'redis', redisUrl: redis.url },
  });
  [a, b] = await Promise.all([spawnGateway(configFile), spawnGateway(configFile)]);
}, 60_000);

afterAll(async () => {
  for (const gw of [a, b, ...extra]) {
    if (gw.child.exitCode === null && gw.child.signalCode === null) gw.child.kill('SIGTERM');
  }
  await Promise.all([a, b, ...extra].map((gw) => gw.exited));
  await Promise.all([redis.stop(), mc.close(), rest.close(), soap.close()]);
});

const cancel = (gw: ChildGateway, target: string, taskId: number, headers = {}) =>
  postJson(`${gw.url}/cancel`, { target, taskId }, headers);

/** The gateways' default `state.timeoutMs`: the bound of one Redis call. */
const STATE_TIMEOUT_MS = 250;

/** Store calls of `gw` that failed so far, by operation (`gateway_state_store_errors_total`). */
async function storeErrors(gw: ChildGateway): Promise<Record<string, number>> {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  const counts: Record<string, number> = {};
  for (const m of text.matchAll(
    /^gateway_state_store_errors_total\{operation="([^"]+)"\} (\d+)$/gm,
  )) {
    counts[m[1] ?? ''] = Number(m[2]);
  }
  return counts;
}

/** `gw`'s first log line matching `predicate` among those logged from now on. */
function nextLine(
  gw: ChildGateway,
  predicate: (line: Record<string, unknown>) => boolean,
): Promise<Record<string, unknown>> {
  const seen = new Set(gw.lines);
  return gw.waitForLine((l) => !seen.has(l) && predicate(l));
}

/** The gateway's own share of an answer's time, from its `Server-Timing` header. */
function gatewayMs(headers: Headers): number {
  const dur = /gateway;dur=([\d.]+)/.exec(headers.get('server-timing') ?? '')?.[1];
  if (dur === undefined)
    throw new Error(`no Server-Timing: ${String(headers.get('server-timing'))}`);
  return Number(dur);
}

/** Upstream cancels of one task, as each simulator recorded them. */
const upstreamCancels: Record<string, (taskId: number) => number> = {
  mc: (id) => mc.calls.filter((c) => c.taskId === String(id)).length,
  rest: (id) => rest.callsTo('DELETE', `/REST/Task/${id}/`).length,
  soap: (id) => soap.callsTo('CancelTask').filter((c) => c.args.task_id === String(id)).length,
};

describe('two replicas on one Redis', () => {
  it.each(['mc', 'rest', 'soap'])(
    'make one upstream cancel per task raced on both (%s); every caller gets canceled',
    async (target) => {
      const base = { mc: 100, rest: 200, soap: 300 }[target] ?? 0;
      const ids = Array.from({ length: 8 }, (_, i) => base + i);
      for (const id of ids) {
        // Slow enough that the two requests of a task overlap at the upstream.
        const slow = { kind: 'slow', delayMs: 300 } as const;
        if (target === 'mc') mc.setBehaviour(id, slow);
        else if (target === 'rest') rest.setBehaviour(id, slow);
        else soap.setBehaviour(id, slow);
      }
      const answers = await Promise.all(
        ids.flatMap((id) => [
          cancel(a, target, id, { 'x-request-id': `a-${id}` }),
          cancel(b, target, id, { 'x-request-id': `b-${id}` }),
        ]),
      );
      const count = upstreamCancels[target];
      if (count === undefined) throw new Error(target);
      expect(ids.map(count)).toEqual(ids.map(() => 1));
      expect(answers.map((r) => `${r.status} ${r.body.outcome}`)).toEqual(
        answers.map(() => '200 canceled'),
      );
      // Most second requests shared the first one's call while it ran (not a later replay).
      expect(answers.filter((r) => r.body.replayed === undefined).length).toBeGreaterThan(
        ids.length,
      );
      expect(answers.map((r) => r.body.requestId)).toEqual(
        ids.flatMap((id) => [`a-${id}`, `b-${id}`]),
      );
    },
    20_000,
  );

  it('free the claim and the Idempotency-Key of an owner killed mid-call within 10 s', async () => {
    const owner = await spawnGateway(configFile);
    extra.push(owner);
    mc.setBehaviour(400, { kind: 'hold' });
    rest.setBehaviour(401, { kind: 'hold' });
    const before = { mc: upstreamCancels.mc?.(400), rest: upstreamCancels.rest?.(401) };
    const mcCalls = mc.calls.length;
    const lost = [
      cancel(owner, 'mc', 400, { 'idempotency-key': 'key-400' }).catch((err: unknown) => err),
      cancel(owner, 'rest', 401).catch((err: unknown) => err),
    ];
    await mc.waitForCalls(mcCalls + 1);
    await rest.waitUntil(() => upstreamCancels.rest?.(401) === 1);
    owner.child.kill('SIGKILL');
    await owner.exited;
    const killedAt = performance.now();
    // The upstreams carry out the cancels the dead owner sent; their repeats now find them done.
    mc.releaseHeld();
    rest.releaseHeld();
    mc.setBehaviour(400, { kind: 'fault', code: 1017 });
    rest.setBehaviour(401, { kind: 'ok' });
    for (const err of await Promise.all(lost)) expect(err).toMatchObject({ name: 'TypeError' });

    // Without a key, a repeat waits for the dead owner's claim to lapse, then takes over.
    const [mcRepeat, restRepeat] = await Promise.all([
      cancel(b, 'mc', 400),
      cancel(b, 'rest', 401, { 'x-request-id': 'rest-repeat' }),
    ]);
    expect(performance.now() - killedAt).toBeLessThan(10_000);
    expect(mcRepeat.status).toBe(404);
    expect(mcRepeat.body).toMatchObject({
      outcome: 'not_found',
      error: { code: 'GONE_AFTER_TIMEOUT', upstream: { code: '1017' } },
    });
    // Dyn says "already canceled": that is the dead owner's cancel, confirmed.
    expect(restRepeat.status).toBe(200);
    expect(restRepeat.body).toMatchObject({
      outcome: 'canceled',
      requestId: 'rest-repeat',
      task: { status: 'canceled' },
    });
    expect(upstreamCancels.mc?.(400)).toBe((before.mc ?? 0) + 2);
    expect(upstreamCancels.rest?.(401)).toBe((before.rest ?? 0) + 2);

    // The key is free again within 10 s of the kill.
    let keyed = await cancel(b, 'mc', 400, { 'idempotency-key': 'key-400' });
    while (keyed.body.error?.code === 'IDEMPOTENCY_KEY_IN_FLIGHT') {
      await new Promise((resolve) => setTimeout(resolve, 200));
      keyed = await cancel(b, 'mc', 400, { 'idempotency-key': 'key-400' });
    }
    expect(performance.now() - killedAt).toBeLessThan(10_000);
    expect(keyed.body).toMatchObject({
      outcome: 'not_found',
      error: { code: 'GONE_AFTER_TIMEOUT' },
    });
  }, 30_000);

  it('keep serving at full speed while Redis hangs, and close the breaker when it answers', async () => {
    const latencies: number[] = [];
    const statuses = new Map<number, number>();
    let next = 10_000;
    let running = true;
    const worker = async (gw: ChildGateway): Promise<void> => {
      while (running) {
        const started = performance.now();
        const res = await cancel(gw, 'mc', next++);
        latencies.push(performance.now() - started);
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      }
    };
    const load = [a, b].flatMap((gw) => Array.from({ length: 4 }, () => worker(gw)));
    await new Promise((resolve) => setTimeout(resolve, 300));
    redis.pause();
    try {
      await Promise.all(
        [a, b].map((gw) => gw.waitForLine((l) => String(l.msg).includes('breaker open'))),
      );
      const ready = (await (await fetch(`${a.url}/readyz`)).json()) as { state: string };
      expect(ready.state).toBe('degraded');
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    } finally {
      redis.resume();
    }
    await Promise.all(
      [a, b].map((gw) => gw.waitForLine((l) => l.msg === 'state store (redis) available again')),
    );
    running = false;
    await Promise.all(load);
    expect([...statuses.keys()]).toEqual([200]);
    latencies.sort((x, y) => x - y);
    const p99 = latencies[Math.floor(latencies.length * 0.99)] ?? Infinity;
    expect(p99).toBeLessThan(1_000);
    for (const gw of [a, b]) {
      const ready = (await (await fetch(`${gw.url}/readyz`)).json()) as { state: string };
      expect(ready.state).toBe('ok');
    }
  }, 20_000);

  it('cost a request at most one store timeout once Redis hangs, from the very first request on', async () => {
    // Warm: the connection is up and the scripts are loaded, so a failure below is the hang.
    expect((await cancel(a, 'mc', 20_000)).status).toBe(200);
    const keyed = { 'idempotency-key': 'hang-20001' };
    expect((await cancel(a, 'mc', 20_001, keyed)).body.outcome).toBe('canceled');
    const before = await storeErrors(a);
    const opened = nextLine(a, (l) => String(l.msg).includes('breaker open'));
    const closedAgain = nextLine(a, (l) => l.msg === 'state store (redis) breaker closed');
    // Awaited below; a failed assertion before must not leave them unhandled when the gateway exits.
    for (const line of [opened, closedAgain]) line.catch(() => undefined);
    redis.pause();
    const answers: Awaited<ReturnType<typeof cancel>>[] = [];
    try {
      // One at a time, as at low load, where a breaker needing several failures opened only
      // after the first requests had each waited out two to three calls (claim, begin, finish).
      for (let i = 0; i < 6; i++) {
        const headers = i % 2 === 0 ? { 'idempotency-key': `hang-${20_010 + i}` } : {};
        answers.push(await cancel(a, 'mc', 20_010 + i, headers));
      }
      const after = await storeErrors(a);
      const waited = Object.fromEntries(
        Object.entries(after)
          .filter(([operation]) => operation !== 'probe')
          .map(([operation, n]) => [operation, n - (before[operation] ?? 0)])
          .filter(([, n]) => n !== 0),
      );
      // Exactly one store call waited (the first request's first call, its Idempotency-Key
      // claim): every later one, of that request and the next, answered at once.
      expect(waited).toStrictEqual({ claim_lease: 1 });
      expect(await opened).toMatchObject({ reason: 'timeout', operation: 'claim_lease' });
    } finally {
      redis.resume();
    }
    expect(answers.map((r) => `${r.status} ${r.body.outcome}`)).toEqual(
      answers.map(() => '200 canceled'),
    );
    // The gateway's own time (the upstream's excluded): one timeout at most, with a generous
    // allowance for a loaded machine (the count above is the exact check).
    for (const r of answers) expect(gatewayMs(r.headers)).toBeLessThan(3 * STATE_TIMEOUT_MS);
    await closedAgain;
    // Idempotency-Keys are de-duplicated again: the key used before the hang replays.
    const replay = await cancel(a, 'mc', 20_001, keyed);
    expect(replay.body).toMatchObject({ outcome: 'canceled', replayed: true });
  }, 20_000);
});
