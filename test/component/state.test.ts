import { startDynRestSimulator } from '../../src/simulators/dyn-rest';
import {
  startMethodcallSimulator,
  type MethodcallSimulator,
} from '../../src/simulators/methodcall';
import { spawnGateway } from '../helpers/child';
import { createFakeClock, type FakeClock } from '../helpers/fake-clock';
import { postJson, startTestGateway, writeConfig, type TestGateway } from '../helpers/gateway';
import { startRedis, type RedisServer } from '../helpers/redis';
import { expectUnifiedShape } from '../helpers/shape';

let sim: MethodcallSimulator;
const gateways: TestGateway[] = [];

beforeEach(async () => {
  sim = await startMethodcallSimulator();
});

afterEach(async () => {
  for (const gw of gateways.splice(0)) await gw.close();
  await sim.close();
});

async function gatewayWith(
  state: Record<string, unknown> = {},
  clock?: FakeClock,
): Promise<TestGateway> {
  const gw = await startTestGateway(
    {
      providers: { wh: { type: 'methodcall', url: sim.taskUrl, retry: { attempts: 1 } } },
      routes: {
        warehouse: { provider: 'wh' },
        'warehouse-fast': { provider: 'wh', timeoutMs: 200 },
      },
      state,
    },
    {},
    undefined,
    clock === undefined ? {} : { clock },
  );
  gateways.push(gw);
  return gw;
}

async function cancel(
  gw: TestGateway,
  taskId: number | string,
  headers: Record<string, string> = {},
  target = 'warehouse',
  extra: Record<string, unknown> = {},
) {
  const res = await postJson(`${gw.url}/cancel`, { target, taskId, ...extra }, headers);
  if (res.body.error?.code !== 'IDEMPOTENCY_KEY_REUSED') expectUnifiedShape(res.body, res.status);
  return res;
}

describe('per process (memory store)', () => {
  it('makes concurrent duplicates share one upstream call, each with its own requestId', async () => {
    const gw = await gatewayWith();
    sim.setBehaviour(1, { kind: 'hold' });
    const pending = ['a', 'b', 'c'].map((id) => cancel(gw, 1, { 'x-request-id': `dup-${id}` }));
    await sim.waitForCalls(1);
    // Every duplicate has reached the gateway once the third answer can be observed; release.
    sim.releaseHeld();
    const results = await Promise.all(pending);
    expect(sim.calls).toHaveLength(1);
    expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(results.map((r) => r.body.requestId)).toEqual(['dup-a', 'dup-b', 'dup-c']);
    expect(new Set(results.map((r) => JSON.stringify(r.body.attempts))).size).toBe(1);
  });

  it('replays a confirmed cancel without calling the upstream, marked replayed', async () => {
    const gw = await gatewayWith();
    const first = await cancel(gw, 2);
    expect(first.body.replayed).toBeUndefined();
    const again = await cancel(gw, '2', { 'x-request-id': 'replay-2' });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({
      ok: true,
      outcome: 'canceled',
      replayed: true,
      requestId: 'replay-2',
      provider: 'wh',
      taskId: '2',
      attempts: [],
    });
    expect(sim.calls).toHaveLength(1);
  });

  it('says GONE_AFTER_TIMEOUT when a task vanished after our own ambiguous timeout', async () => {
    const gw = await gatewayWith();
    sim.setBehaviour(3, { kind: 'slow', delayMs: 2_000 });
    const timedOut = await cancel(gw, 3, {}, 'warehouse-fast');
    expect(timedOut.status).toBe(504);
    sim.setBehaviour(3, { kind: 'fault', code: 1017 });
    const later = await cancel(gw, 3, {}, 'warehouse-fast');
    expect(later.status).toBe(404);
    expect(later.body).toMatchObject({
      outcome: 'not_found',
      error: { code: 'GONE_AFTER_TIMEOUT', upstream: { code: '1017' } },
    });
    expect(later.body.error.message).toMatch(/timed out/);
  });

  it('does not call a vanished task GONE_AFTER_TIMEOUT without an earlier timeout', async () => {
    const gw = await gatewayWith();
    sim.setBehaviour(4, { kind: 'fault', code: 1017 });
    expect((await cancel(gw, 4)).body.error.code).toBe('TASK_NOT_FOUND');
  });

  it('forgets after state.rememberSeconds', async () => {
    const clock = createFakeClock();
    const gw = await gatewayWith({ rememberSeconds: 1 }, clock);
    await cancel(gw, 5);
    await clock.advance(999);
    expect((await cancel(gw, 5)).body.replayed).toBe(true);
    expect(sim.calls).toHaveLength(1);
    await clock.advance(1);
    expect((await cancel(gw, 5)).status).toBe(404); // asked again: the upstream forgot the task
    expect(sim.calls).toHaveLength(2);
  });
});

describe('Idempotency-Key', () => {
  it('replays the stored response for the same key and body, without calling again', async () => {
    const gw = await gatewayWith();
    sim.setBehaviour(10, { kind: 'fault', code: 1017 });
    const first = await cancel(gw, 10, { 'idempotency-key': 'k-10' });
    expect(first.status).toBe(404);
    const again = await cancel(gw, '10', { 'idempotency-key': 'k-10', 'x-request-id': 'again-10' });
    expect(again.status).toBe(404);
    expect(again.body).toMatchObject({
      outcome: 'not_found',
      replayed: true,
      requestId: 'again-10',
      error: { code: 'TASK_NOT_FOUND' },
    });
    expect(sim.calls).toHaveLength(1);
  });

  it('answers 422 IDEMPOTENCY_KEY_REUSED for the same key with another body', async () => {
    const gw = await gatewayWith();
    await cancel(gw, 11, { 'idempotency-key': 'k-11' });
    const reused = await cancel(gw, 12, { 'idempotency-key': 'k-11' });
    expect(reused.status).toBe(422);
    expect(reused.body).toMatchObject({
      ok: false,
      outcome: 'invalid_request',
      error: { code: 'IDEMPOTENCY_KEY_REUSED' },
    });
    expect(sim.calls.map((c) => c.taskId)).toEqual(['11']);
  });

  it('answers 409 IDEMPOTENCY_KEY_IN_FLIGHT while the first is still running', async () => {
    const gw = await gatewayWith();
    sim.setBehaviour(13, { kind: 'hold' });
    const first = cancel(gw, 13, { 'idempotency-key': 'k-13' });
    await sim.waitForCalls(1);
    const second = await cancel(gw, 13, { 'idempotency-key': 'k-13' });
    expect(second.status).toBe(409);
    expect(second.body).toMatchObject({
      outcome: 'conflict',
      retryable: true,
      error: { code: 'IDEMPOTENCY_KEY_IN_FLIGHT' },
    });
    sim.releaseHeld();
    expect((await first).status).toBe(200);
  });

  it('does not store a retryable answer: a retry with the key really retries', async () => {
    const gw = await gatewayWith();
    sim.setBehaviour(14, { kind: 'http503' });
    expect((await cancel(gw, 14, { 'idempotency-key': 'k-14' })).status).toBe(503);
    sim.setBehaviour(14, { kind: 'ok' });
    const retried = await cancel(gw, 14, { 'idempotency-key': 'k-14' });
    expect(retried.status).toBe(200);
    expect(retried.body.replayed).toBeUndefined();
    expect(sim.calls).toHaveLength(2);
  });

  it('treats taskId 15 and "15" as the same body', async () => {
    const gw = await gatewayWith();
    sim.setBehaviour(15, { kind: 'fault', code: 1045 });
    await cancel(gw, 15, { 'idempotency-key': 'k-15' });
    const again = await cancel(gw, '15', { 'idempotency-key': 'k-15' });
    expect(again.status).not.toBe(422);
  });

  it('refuses a malformed key with 400', async () => {
    const gw = await gatewayWith();
    const res = await cancel(gw, 16, { 'idempotency-key': 'x'.repeat(256) });
    expect(res.status).toBe(400);
    expect(res.body.error.details[0].path).toBe('(headers).idempotency-key');
    expect(sim.calls).toHaveLength(0);
  });
});

describe('shared state (redis)', () => {
  let redis: RedisServer;

  beforeEach(async () => {
    redis = await startRedis();
  });

  afterEach(async () => {
    await redis.stop();
  });

  it('lets two gateways replay each other’s cancels and Idempotency-Keys', async () => {
    const state = { store: 'redis', redisUrl: redis.url };
    const a = await gatewayWith(state);
    const b = await gatewayWith(state);
    expect((await cancel(a, 20)).status).toBe(200);
    const onB = await cancel(b, 20);
    expect(onB.body).toMatchObject({ outcome: 'canceled', replayed: true });
    sim.setBehaviour(21, { kind: 'fault', code: 1017 });
    expect((await cancel(a, 21, { 'idempotency-key': 'shared-21' })).status).toBe(404);
    const keyOnB = await cancel(b, 21, { 'idempotency-key': 'shared-21' });
    expect(keyOnB.body).toMatchObject({ outcome: 'not_found', replayed: true });
    const reusedOnB = await cancel(b, 22, { 'idempotency-key': 'shared-21' });
    expect(reusedOnB.status).toBe(422);
    expect(sim.calls.map((c) => c.taskId)).toEqual(['20', '21']);
    const ready = (await (await fetch(`${a.url}/readyz`)).json()) as { state: string };
    expect(ready.state).toBe('ok');
  });

  it('keeps serving when Redis dies (degraded, counted), and recovers when it is back', async () => {
    const gw = await gatewayWith({ store: 'redis', redisUrl: redis.url });
    expect((await cancel(gw, 30)).status).toBe(200);
    await redis.kill();
    for (const id of [31, 32, 33]) expect((await cancel(gw, id)).status).toBe(200);
    const ready = (await (await fetch(`${gw.url}/readyz`)).json()) as { state: string };
    expect(ready.state).toBe('degraded');
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/^gateway_state_store_errors_total\{operation="begin_flight"\} [1-9]/m);
    expect(
      gw.logs.lines().filter((l) => String(l.msg).startsWith('state store (redis) unavailable')),
    ).toHaveLength(1);

    await redis.restart();
    await gw.logs.waitFor((l) => l.msg === 'state store (redis) available again');
    expect((await cancel(gw, 34)).status).toBe(200);
    const back = (await (await fetch(`${gw.url}/readyz`)).json()) as { state: string };
    expect(back.state).toBe('ok');
  });

  it('holds one Dyn account limit across two gateway processes, which replay each other', async () => {
    const dyn = await startDynRestSimulator();
    const file = writeConfig({
      server: { host: '127.0.0.1', port: 0 },
      providers: {
        dns: {
          type: 'dyn-rest',
          baseUrl: dyn.baseUrl,
          customerName: 'acme',
          userName: 'api-user',
          password: 'sim-password',
          maxSessions: 8,
          rateLimit: { perSecond: 5, scope: 'account' },
        },
      },
      routes: { dns: { provider: 'dns' } },
      state: { store: 'redis', redisUrl: redis.url },
    });
    const one = await spawnGateway(file);
    const two = await spawnGateway(file);
    try {
      const started = performance.now();
      const ids = Array.from({ length: 20 }, (_, i) => i + 1);
      const answers = await Promise.all([
        ...ids.map((id) => postJson(`${one.url}/cancel`, { target: 'dns', taskId: 1000 + id })),
        ...ids.map((id) => postJson(`${two.url}/cancel`, { target: 'dns', taskId: 2000 + id })),
      ]);
      const elapsedSeconds = (performance.now() - started) / 1000;
      const sent = dyn.callsTo('DELETE', '/REST/Task/').length;
      const canceled = answers.filter((a) => a.body.outcome === 'canceled').length;
      const limited = answers.filter((a) => a.body.error?.code === 'RATE_LIMITED').length;
      expect(canceled + limited).toBe(40);
      expect(canceled).toBe(sent);
      // One bucket of 5 (+5/s) for both processes together; two separate ones would allow twice.
      expect(sent).toBeGreaterThanOrEqual(1);
      expect(sent).toBeLessThanOrEqual(5 + Math.ceil(5 * elapsedSeconds));
      // The processes also replay each other's confirmed cancels.
      const done = answers.findIndex((a) => a.body.outcome === 'canceled');
      const doneTaskId = String(answers[done]?.body.taskId);
      const other = done < ids.length ? two : one;
      const before = dyn.callsTo('DELETE', '/REST/Task/').length;
      const replay = await postJson(`${other.url}/cancel`, { target: 'dns', taskId: doneTaskId });
      expect(replay.body).toMatchObject({
        outcome: 'canceled',
        replayed: true,
        taskId: doneTaskId,
      });
      expect(dyn.callsTo('DELETE', '/REST/Task/').length).toBe(before);
    } finally {
      one.child.kill('SIGTERM');
      two.child.kill('SIGTERM');
      await Promise.all([one.exited, two.exited]);
      await dyn.close();
    }
  });
});
