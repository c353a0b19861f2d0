import {
  startMethodcallSimulator,
  type MethodcallSimulator,
} from '../../src/simulators/methodcall';
import { postJson, startTestGateway, type TestGateway } from '../helpers/gateway';
import { closedPort } from '../helpers/net';
import { expectUnifiedShape } from '../helpers/shape';

let sim: MethodcallSimulator;
let other: MethodcallSimulator;
let gateway: TestGateway;

beforeAll(async () => {
  sim = await startMethodcallSimulator();
  other = await startMethodcallSimulator();
  const down = await closedPort();
  // This suite tests the protocol mapping; retries and the breaker have their own suite.
  const plain = { retry: { attempts: 1 }, circuitBreaker: { failureThreshold: 1000 } };
  gateway = await startTestGateway({
    server: { requestTimeoutMs: 5000 },
    providers: {
      wh: {
        type: 'methodcall',
        url: sim.taskUrl,
        timeoutMs: 4000,
        maxResponseBytes: 65536,
        ...plain,
      },
      'wh-other': { type: 'methodcall', url: other.taskUrl, ...plain },
      'wh-short': { type: 'methodcall', url: sim.taskUrl, timeoutMs: 200, ...plain },
      'wh-down': { type: 'methodcall', url: `http://127.0.0.1:${down}/api/v2/task`, ...plain },
    },
    routes: {
      warehouse: { provider: 'wh' },
      'warehouse-fast': { provider: 'wh', timeoutMs: 300 },
      'warehouse-down': { provider: 'wh-down' },
      'warehouse-failover': { provider: 'wh-down', fallback: ['wh'] },
      'warehouse-pair': { provider: 'wh', fallback: ['wh-other'] },
      'warehouse-short-pair': { provider: 'wh-short', fallback: ['wh-other'] },
    },
  });
});

afterAll(async () => {
  await gateway.close();
  await sim.close();
  await other.close();
});

beforeEach(() => {
  sim.reset();
  other.reset();
});

const cancel = (target: string, taskId: string | number, headers: Record<string, string> = {}) =>
  postJson(`${gateway.url}/cancel`, { target, taskId }, headers);

describe('canceled', () => {
  it('answers 200 ok:true after <params/>, having sent the documented body', async () => {
    const res = await cancel('warehouse', '123004', { 'x-request-id': 'req-canceled-1' });
    expect(res.status).toBe(200);
    expectUnifiedShape(res.body, res.status);
    expect(res.body).toMatchObject({
      ok: true,
      outcome: 'canceled',
      retryable: false,
      requestId: 'req-canceled-1',
      target: 'warehouse',
      provider: 'wh',
      protocol: 'methodcall',
      taskId: '123004',
    });
    expect(res.body.error).toBeUndefined();
    expect(res.body.attempts).toEqual([
      { provider: 'wh', outcome: 'canceled', durationMs: expect.any(Number) },
    ]);
    expect(typeof res.body.durationMs).toBe('number');
    expect(sim.calls).toHaveLength(1);
    const call = sim.calls[0]!;
    expect(call.method).toBe('POST');
    expect(call.path).toBe('/api/v2/task');
    expect(call.headers['content-type']).toBe('application/xml');
    expect(call.headers['x-request-id']).toBe('req-canceled-1');
    expect(call.body).toBe(
      '<?xml version="1.0" encoding="UTF-8"?><methodcall><name>cancel_task</name><params><task_id>123004</task_id></params></methodcall>',
    );
  });

  it('accepts an integer taskId and a non-empty <params>', async () => {
    sim.setBehaviour(77, { kind: 'ok-verbose' });
    const res = await cancel('warehouse', 77);
    expect(res.status).toBe(200);
    expect(res.body.taskId).toBe('77');
  });

  it('accepts the largest documented id, 2147483647', async () => {
    const res = await cancel('warehouse', '2147483647');
    expect(res.status).toBe(200);
  });
});

describe('not_found', () => {
  it('maps fault 1017 to 404 with the upstream code and text', async () => {
    sim.setBehaviour(1017, { kind: 'fault', code: 1017 });
    const res = await cancel('warehouse', '1017');
    expect(res.status).toBe(404);
    expectUnifiedShape(res.body, res.status);
    expect(res.body).toMatchObject({
      ok: false,
      outcome: 'not_found',
      retryable: false,
      error: {
        code: 'TASK_NOT_FOUND',
        upstream: { code: '1017', message: 'The specified task does not exist.' },
      },
    });
  });

  it('replays a confirmed cancel instead of asking the upstream, which forgot the task', async () => {
    expect((await cancel('warehouse', '555')).status).toBe(200);
    const again = await cancel('warehouse', '555');
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ outcome: 'canceled', replayed: true, attempts: [] });
    expect(sim.calls).toHaveLength(1);
  });

  it('answers not_found for a task the upstream canceled without us', async () => {
    sim.setBehaviour(556, { kind: 'fault', code: 1017 });
    const res = await cancel('warehouse', '556');
    expect(res.status).toBe(404);
    expect(res.body.replayed).toBeUndefined();
  });
});

describe('conflict', () => {
  it('maps fault 1045 (selected by a port) to a retryable 409', async () => {
    sim.setBehaviour(1045, { kind: 'fault', code: 1045 });
    const res = await cancel('warehouse', '1045');
    expect(res.status).toBe(409);
    expectUnifiedShape(res.body, res.status);
    expect(res.body).toMatchObject({
      outcome: 'conflict',
      retryable: true,
      error: { code: 'TASK_AT_PORT', upstream: { code: '1045' } },
    });
  });
});

describe('rejected', () => {
  it.each([1012, 1040])('maps fault %s to 422', async (code) => {
    sim.setBehaviour(code, { kind: 'fault', code });
    const res = await cancel('warehouse', String(code));
    expect(res.status).toBe(422);
    expectUnifiedShape(res.body, res.status);
    expect(res.body).toMatchObject({
      outcome: 'rejected',
      retryable: false,
      error: { code: 'UPSTREAM_REJECTED', upstream: { code: String(code) } },
    });
  });
});

describe('upstream_error', () => {
  it('maps another 1xxx fault to 502 carrying its code', async () => {
    sim.setBehaviour(1009, { kind: 'fault', code: 1009 });
    const res = await cancel('warehouse', '1009');
    expect(res.status).toBe(502);
    expect(res.body).toMatchObject({
      outcome: 'upstream_error',
      error: { code: 'UPSTREAM_FAULT', upstream: { code: '1009' } },
    });
  });

  it('maps a non-1xxx fault to 502 "internal error of the upstream"', async () => {
    sim.setBehaviour(42, { kind: 'fault', code: 42 });
    const res = await cancel('warehouse', '42');
    expect(res.status).toBe(502);
    expect(res.body.error.code).toBe('UPSTREAM_INTERNAL_ERROR');
    expect(res.body.error.message).toContain('internal error of the upstream');
  });

  it.each([
    ['malformed XML', { kind: 'malformed' } as const],
    ['truncated XML', { kind: 'truncated' } as const],
    ['an empty body', { kind: 'empty' } as const],
    ['a JSON body', { kind: 'wrong-content-type' } as const],
    ['a DOCTYPE entity bomb', { kind: 'doctype-bomb' } as const],
    ['an XXE attempt', { kind: 'xxe' } as const],
    ['a deeply nested document', { kind: 'deep-nesting' } as const],
  ])('maps %s with HTTP 200 to 502 UPSTREAM_BAD_RESPONSE', async (_name, behaviour) => {
    sim.setBehaviour(31, behaviour);
    const res = await cancel('warehouse', '31');
    expect(res.status).toBe(502);
    expectUnifiedShape(res.body, res.status);
    expect(res.body.error.code).toBe('UPSTREAM_BAD_RESPONSE');
    expect(JSON.stringify(res.body)).not.toContain('root:');
  });

  it('refuses a 10 MB answer without buffering it', async () => {
    sim.setBehaviour(32, { kind: 'oversized', bytes: 10 * 1024 * 1024 });
    const res = await cancel('warehouse', '32');
    expect(res.status).toBe(502);
    expect(res.body.error.code).toBe('UPSTREAM_RESPONSE_TOO_LARGE');
  });

  it('maps a connection dropped in the middle of the answer to 502', async () => {
    sim.setBehaviour(33, { kind: 'destroy-mid' });
    const res = await cancel('warehouse', '33');
    expect(res.status).toBe(502);
    expect(res.body.error.message).toContain('unknown');
  });
});

describe('unavailable', () => {
  it('maps HTTP 500 with a garbage body to 503', async () => {
    sim.setBehaviour(50, { kind: 'http500' });
    const res = await cancel('warehouse', '50');
    expect(res.status).toBe(503);
    expectUnifiedShape(res.body, res.status);
    expect(res.body).toMatchObject({
      outcome: 'unavailable',
      retryable: true,
      error: { code: 'UPSTREAM_UNAVAILABLE', upstream: { code: 'HTTP 500' } },
    });
  });

  it('maps HTTP 503 to 503', async () => {
    sim.setBehaviour(53, { kind: 'http503' });
    expect((await cancel('warehouse', '53')).status).toBe(503);
  });

  it('maps a refused connection to 503 UPSTREAM_UNREACHABLE', async () => {
    const res = await cancel('warehouse-down', '1');
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({
      outcome: 'unavailable',
      retryable: true,
      error: { code: 'UPSTREAM_UNREACHABLE' },
    });
    expect(res.body.error.message).toContain('ECONNREFUSED');
  });

  it('maps a connection destroyed before any answer to 503', async () => {
    sim.setBehaviour(34, { kind: 'destroy' });
    const res = await cancel('warehouse', '34');
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('UPSTREAM_UNREACHABLE');
  });
});

describe('timeout', () => {
  it('answers 504 at the route deadline, saying the outcome is unknown', async () => {
    sim.setBehaviour(60, { kind: 'slow', delayMs: 20_000 });
    const started = Date.now();
    const res = await cancel('warehouse-fast', '60');
    expect(res.status).toBe(504);
    expectUnifiedShape(res.body, res.status);
    expect(res.body).toMatchObject({
      outcome: 'timeout',
      retryable: true,
      error: { code: 'UPSTREAM_TIMEOUT' },
    });
    expect(res.body.error.message).toMatch(/unknown/);
    // Generous bound: the point is that the 20 s upstream did not hold the answer.
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(sim.calls).toHaveLength(1);
  });

  it('keeps serving after a timeout', async () => {
    const res = await cancel('warehouse', '61');
    expect(res.status).toBe(200);
  });
});

describe('fallback', () => {
  it('tries the next provider after unavailable and lists both attempts', async () => {
    const res = await cancel('warehouse-failover', '70');
    expect(res.status).toBe(200);
    expect(res.body.provider).toBe('wh');
    expect(res.body.attempts).toEqual([
      {
        provider: 'wh-down',
        outcome: 'unavailable',
        durationMs: expect.any(Number),
        errorCode: 'UPSTREAM_UNREACHABLE',
      },
      { provider: 'wh', outcome: 'canceled', durationMs: expect.any(Number) },
    ]);
  });

  it('does not fall back after a business answer', async () => {
    sim.setBehaviour(71, { kind: 'fault', code: 1017 });
    const res = await cancel('warehouse-pair', '71');
    expect(res.status).toBe(404);
    expect(res.body.attempts).toHaveLength(1);
    expect(other.calls).toHaveLength(0);
  });

  it('does not fall back after a timeout, whose cancel may have happened', async () => {
    sim.setBehaviour(72, { kind: 'slow', delayMs: 20_000 });
    const res = await cancel('warehouse-short-pair', '72');
    expect(res.status).toBe(504);
    expect(res.body.attempts).toEqual([
      {
        provider: 'wh-short',
        outcome: 'timeout',
        durationMs: expect.any(Number),
        errorCode: 'UPSTREAM_TIMEOUT',
      },
    ]);
    expect(other.calls).toHaveLength(0);
  });

  it('falls back after HTTP 503 from the first provider', async () => {
    sim.setBehaviour(73, { kind: 'http503' });
    const res = await cancel('warehouse-pair', '73');
    expect(res.status).toBe(200);
    expect(res.body.provider).toBe('wh-other');
    expect(res.body.attempts.map((a: { outcome: string }) => a.outcome)).toEqual([
      'unavailable',
      'canceled',
    ]);
  });
});

describe('invalid_request: provider narrowing', () => {
  it('refuses a taskId above 2147483647 for a methodcall target without calling it', async () => {
    const res = await cancel('warehouse', '2147483648');
    expect(res.status).toBe(400);
    expectUnifiedShape(res.body, res.status);
    expect(res.body).toMatchObject({
      outcome: 'invalid_request',
      error: { code: 'TASK_ID_OUT_OF_RANGE', details: [{ path: 'taskId' }] },
    });
    expect(sim.calls).toHaveLength(0);
  });
});

describe('unknown_target', () => {
  it('answers 422 for a target with no route, calling nothing', async () => {
    const res = await cancel('no-such-target', '1');
    expect(res.status).toBe(422);
    expectUnifiedShape(res.body, res.status);
    expect(res.body).toMatchObject({
      outcome: 'unknown_target',
      error: { code: 'UNKNOWN_TARGET' },
    });
    expect(sim.calls).toHaveLength(0);
  });
});
