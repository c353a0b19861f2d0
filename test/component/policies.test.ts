import {
  startMethodcallSimulator,
  type MethodcallSimulator,
} from '../../src/simulators/methodcall';
import { postJson, startTestGateway, type TestGateway } from '../helpers/gateway';
import { createFakeClock, settle, type FakeClock } from '../helpers/fake-clock';
import { closedPort } from '../helpers/net';
import { expectUnifiedShape } from '../helpers/shape';

let sim: MethodcallSimulator;
let gateway: TestGateway | undefined;

beforeEach(async () => {
  sim = await startMethodcallSimulator();
});

afterEach(async () => {
  await gateway?.close();
  gateway = undefined;
  await sim.close();
});

/** A gateway with one methodcall provider `wh` (options as given) and routes to it. */
async function start(
  options: Record<string, unknown>,
  url = sim.taskUrl,
  clock?: FakeClock,
): Promise<TestGateway> {
  gateway = await startTestGateway(
    {
      server: { requestTimeoutMs: 5000 },
      providers: { wh: { type: 'methodcall', url, ...options } },
      routes: {
        warehouse: { provider: 'wh' },
        'warehouse-short': { provider: 'wh', timeoutMs: 300 },
      },
    },
    {},
    undefined,
    clock === undefined ? {} : { clock },
  );
  return gateway;
}

async function cancel(taskId: number, target = 'warehouse') {
  if (gateway === undefined) throw new Error('no gateway');
  const res = await postJson(`${gateway.url}/cancel`, { target, taskId });
  expectUnifiedShape(res.body, res.status);
  return res;
}

async function metricsText(): Promise<string> {
  if (gateway === undefined) throw new Error('no gateway');
  return (await fetch(`${gateway.url}/metrics`)).text();
}

describe('bulkhead', () => {
  it('answers 503 BULKHEAD_FULL at once past maxConcurrent + maxQueue, sending nothing', async () => {
    await start({ maxConcurrent: 1, maxQueue: 0 });
    sim.setBehaviour(1, { kind: 'hold' });
    const first = cancel(1);
    await sim.waitForCalls(1);
    const second = await cancel(2);
    expect(second.status).toBe(503);
    expect(second.headers.get('retry-after')).toBe('1');
    expect(second.body).toMatchObject({
      outcome: 'unavailable',
      retryable: true,
      error: { code: 'BULKHEAD_FULL' },
    });
    expect(sim.calls).toHaveLength(1);
    sim.releaseHeld();
    expect((await first).status).toBe(200);
  });

  it('queues up to maxQueue and runs the queued request when a slot frees', async () => {
    await start({ maxConcurrent: 1, maxQueue: 1 });
    sim.setBehaviour(1, { kind: 'hold' });
    const first = cancel(1);
    await sim.waitForCalls(1);
    const queued = cancel(2);
    const third = await cancel(3);
    expect(third.body.error.code).toBe('BULKHEAD_FULL');
    expect(sim.calls).toHaveLength(1);
    sim.releaseHeld();
    expect((await first).status).toBe(200);
    expect((await queued).status).toBe(200);
    expect(sim.calls.map((c) => c.taskId)).toEqual(['1', '2']);
  });

  it('lets a queued request leave at its deadline with 504, the cancel not sent', async () => {
    await start({ maxConcurrent: 1, maxQueue: 5 });
    sim.setBehaviour(1, { kind: 'hold' });
    const first = cancel(1);
    await sim.waitForCalls(1);
    const queued = await cancel(2, 'warehouse-short');
    expect(queued.status).toBe(504);
    expect(queued.body.error.code).toBe('UPSTREAM_TIMEOUT');
    expect(queued.body.error.message).toMatch(/not sent/);
    sim.releaseHeld();
    expect((await first).status).toBe(200);
    expect(sim.calls.map((c) => c.taskId)).toEqual(['1']);
  });
});

describe('rate limit', () => {
  it('answers 429 RATE_LIMITED with Retry-After once rateLimitPerSecond is spent', async () => {
    await start({ rateLimitPerSecond: 0.01 });
    expect((await cancel(1)).status).toBe(200);
    const limited = await cancel(2);
    expect(limited.status).toBe(429);
    expect(limited.body).toMatchObject({
      outcome: 'rate_limited',
      error: { code: 'RATE_LIMITED' },
    });
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(sim.calls).toHaveLength(1);
  });
});

describe('retry', () => {
  const fast = { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 };

  it('retries a 503 up to retry.attempts, listing every attempt', async () => {
    await start({ retry: fast });
    sim.setBehaviour(1, { kind: 'http503' });
    const res = await cancel(1);
    expect(res.status).toBe(503);
    expect(sim.calls).toHaveLength(3);
    expect(res.body.attempts).toHaveLength(3);
    expect(res.body.attempts.every((a: { outcome: string }) => a.outcome === 'unavailable')).toBe(
      true,
    );
  });

  it('retries a refused connection up to retry.attempts', async () => {
    const port = await closedPort();
    await start({ retry: fast }, `http://127.0.0.1:${port}/api/v2/task`);
    const res = await cancel(1);
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('UPSTREAM_UNREACHABLE');
    expect(res.body.attempts).toHaveLength(3);
  });

  it('stops retrying as soon as an attempt succeeds', async () => {
    await start({ retry: fast });
    sim.setBehaviour(1, { kind: 'http503' });
    const pending = cancel(1);
    await sim.waitForCalls(1);
    sim.setBehaviour(1, { kind: 'ok' });
    const res = await pending;
    expect(res.status).toBe(200);
    expect(res.body.attempts.map((a: { outcome: string }) => a.outcome)).toEqual([
      'unavailable',
      'canceled',
    ]);
  });

  it('never retries after a timeout: the cancel may have happened', async () => {
    await start({ retry: fast, timeoutMs: 100 });
    sim.setBehaviour(1, { kind: 'slow', delayMs: 5_000 });
    const res = await cancel(1);
    expect(res.status).toBe(504);
    expect(sim.calls).toHaveLength(1);
    expect(res.body.attempts).toHaveLength(1);
  });

  it('never retries an HTTP 500 (processed or not is unknown) nor a business answer', async () => {
    await start({ retry: fast, circuitBreaker: { failureThreshold: 100 } });
    sim.setBehaviour(1, { kind: 'http500' });
    sim.setBehaviour(2, { kind: 'fault', code: 1017 });
    expect((await cancel(1)).body.attempts).toHaveLength(1);
    expect((await cancel(2)).body.attempts).toHaveLength(1);
    expect(sim.calls).toHaveLength(2);
  });

  it('does not start a retry the request deadline cannot hold', async () => {
    // On a fake clock: upstream calls take no time on it, so only the backoffs move it, and the
    // rule is checked whatever the machine's speed.
    const clock = createFakeClock();
    await start({ retry: { attempts: 10, baseDelayMs: 100, maxDelayMs: 200 } }, sim.taskUrl, clock);
    sim.setBehaviour(1, { kind: 'http503' });
    const state = { answered: false };
    const answer = cancel(1, 'warehouse-short').finally(() => {
      state.answered = true;
    });
    // The route's deadline is the timer at 300; one due earlier is a backoff: run it.
    while (!state.answered) {
      const next = clock.nextTimerAt();
      if (next !== undefined && next < 300) await clock.advance(next - clock.now());
      else await settle();
    }
    const res = await answer;
    // The upstream's own answer, not a timeout manufactured by waiting past the deadline.
    expect(res.body.outcome).toBe('unavailable');
    expect(clock.now()).toBeLessThan(300);
    // Backoffs of 100–200 ms: a second attempt always fits, a fourth never does.
    expect(res.body.attempts.length).toBeGreaterThanOrEqual(2);
    expect(res.body.attempts.length).toBeLessThanOrEqual(3);
    expect(sim.calls).toHaveLength(res.body.attempts.length);
  });
});

describe('circuit breaker', () => {
  const breaker = {
    retry: { attempts: 1 },
    circuitBreaker: { failureThreshold: 3, resetAfterMs: 100 },
  };

  it('opens after failureThreshold consecutive failures and answers CIRCUIT_OPEN without calling', async () => {
    await start(breaker);
    for (const id of [1, 2, 3]) sim.setBehaviour(id, { kind: 'http500' });
    for (const id of [1, 2, 3]) expect((await cancel(id)).status).toBe(503);
    const open = await cancel(4);
    expect(open.status).toBe(503);
    expect(open.body.error.code).toBe('CIRCUIT_OPEN');
    expect(Number(open.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(sim.calls).toHaveLength(3);
    const ready = (await (await fetch(`${gateway?.url ?? ''}/readyz`)).json()) as {
      providers: Record<string, { circuit: string }>;
    };
    expect(ready.providers.wh?.circuit).toBe('open');
    expect(await metricsText()).toMatch(/^gateway_circuit_state\{provider="wh"\} 2$/m);
    expect(gateway?.logs.lines().some((l) => l.msg === 'circuit open')).toBe(true);
  });

  it('goes half-open after resetAfterMs, and one good probe closes it', async () => {
    const clock = createFakeClock();
    await start(breaker, sim.taskUrl, clock);
    for (const id of [1, 2, 3]) sim.setBehaviour(id, { kind: 'http500' });
    for (const id of [1, 2, 3]) await cancel(id);
    expect((await cancel(4)).body.error.code).toBe('CIRCUIT_OPEN');
    // The breaker runs on the gateway's clock: move it past resetAfterMs.
    await clock.advance(99);
    expect((await cancel(5)).body.error.code).toBe('CIRCUIT_OPEN');
    await clock.advance(1);
    const probe = await cancel(5);
    expect(probe.status).toBe(200);
    expect(await metricsText()).toMatch(/^gateway_circuit_state\{provider="wh"\} 0$/m);
    expect((await cancel(6)).status).toBe(200);
    expect(sim.calls.map((c) => c.taskId)).toEqual(['1', '2', '3', '5', '6']);
  });

  it('opens again when the half-open probe fails', async () => {
    const clock = createFakeClock();
    await start(breaker, sim.taskUrl, clock);
    for (const id of [1, 2, 3, 5]) sim.setBehaviour(id, { kind: 'http500' });
    for (const id of [1, 2, 3]) await cancel(id);
    await clock.advance(100);
    expect((await cancel(5)).body.error.code).toBe('UPSTREAM_UNAVAILABLE');
    expect((await cancel(6)).body.error.code).toBe('CIRCUIT_OPEN');
    expect(sim.calls).toHaveLength(4);
  });

  it('never counts business refusals: not_found, conflict, rejected', async () => {
    await start(breaker);
    const faults = [1017, 1045, 1012, 1017, 1045, 1012];
    faults.forEach((code, i) => {
      sim.setBehaviour(i + 1, { kind: 'fault', code });
    });
    for (let i = 1; i <= faults.length; i++) expect((await cancel(i)).status).not.toBe(503);
    expect((await cancel(100)).status).toBe(200);
    expect(sim.calls).toHaveLength(faults.length + 1);
  });

  it('is reset by a success between failures (consecutive count)', async () => {
    await start(breaker);
    for (const id of [1, 2, 4, 5]) sim.setBehaviour(id, { kind: 'http500' });
    for (const id of [1, 2, 3, 4, 5]) await cancel(id);
    expect((await cancel(6)).status).toBe(200);
  });
});
