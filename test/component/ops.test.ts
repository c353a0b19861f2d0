import { BatchResultSchema, RoutesSchema } from '../../src/core/result-schema';
import {
  startMethodcallSimulator,
  type MethodcallSimulator,
} from '../../src/simulators/methodcall';
import {
  postJson,
  startTestGateway,
  type TestGateway,
  OPS_KEY,
  twoCallerAuth,
  WAREHOUSE_KEY,
} from '../helpers/gateway';
import { expectUnifiedShape } from '../helpers/shape';

let sim: MethodcallSimulator;
let open: TestGateway;
let secured: TestGateway;

beforeAll(async () => {
  sim = await startMethodcallSimulator();
  const providers = {
    wh: { type: 'methodcall', url: sim.taskUrl, retry: { attempts: 1 } },
    'wh-2': { type: 'methodcall', url: sim.taskUrl },
  };
  const routes = {
    warehouse: { provider: 'wh', fallback: ['wh-2'] },
    'warehouse-west': { provider: 'wh-2' },
  };
  open = await startTestGateway({ providers, routes });
  secured = await startTestGateway(
    {
      providers,
      routes,
      auth: twoCallerAuth(),
    },
    { WAREHOUSE_KEY },
  );
});

afterAll(async () => {
  await open.close();
  await secured.close();
  await sim.close();
});

beforeEach(() => {
  sim.reset();
});

describe('auth', () => {
  const cancel = (headers: Record<string, string>, target = 'warehouse', taskId = 1) =>
    postJson(`${secured.url}/cancel`, { target, taskId }, headers);

  it('answers 401 without a key, sending nothing', async () => {
    const res = await cancel({});
    expect(res.status).toBe(401);
    expectUnifiedShape(res.body, 401);
    expect(res.body).toMatchObject({ outcome: 'unauthorized', error: { code: 'UNAUTHORIZED' } });
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(sim.calls).toHaveLength(0);
  });

  it('answers 401 for an unknown key', async () => {
    const res = await cancel({ authorization: 'Bearer not-a-configured-key-at-all' });
    expect(res.status).toBe(401);
    expect(res.body.error.message).toBe('unknown API key');
    expect(sim.calls).toHaveLength(0);
  });

  it('answers 403 for a known key on a target it may not use', async () => {
    const res = await cancel({ 'x-api-key': WAREHOUSE_KEY }, 'warehouse-west');
    expect(res.status).toBe(403);
    expectUnifiedShape(res.body, 403);
    expect(res.body).toMatchObject({ outcome: 'forbidden', error: { code: 'FORBIDDEN' } });
    expect(sim.calls).toHaveLength(0);
  });

  it('accepts a sha256-configured key as Bearer and an env key as X-API-Key', async () => {
    expect(
      (await cancel({ authorization: `Bearer ${OPS_KEY}` }, 'warehouse-west', 10)).status,
    ).toBe(200);
    expect((await cancel({ 'x-api-key': WAREHOUSE_KEY }, 'warehouse', 11)).status).toBe(200);
    const lines = secured.logs.cancels().filter((l) => l.outcome === 'canceled');
    expect(lines.map((l) => l.caller)).toEqual(expect.arrayContaining(['ops', 'warehouse-team']));
    for (const raw of secured.logs.raw) {
      expect(raw).not.toContain(OPS_KEY);
      expect(raw).not.toContain(WAREHOUSE_KEY);
    }
  });

  it('keeps /healthz, /readyz, /metrics and /openapi.json open; /routes needs a key', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics', '/openapi.json']) {
      expect((await fetch(`${secured.url}${path}`)).status).toBe(200);
    }
    expect((await fetch(`${secured.url}/routes`)).status).toBe(401);
    const mine = await fetch(`${secured.url}/routes`, { headers: { 'x-api-key': WAREHOUSE_KEY } });
    expect(mine.status).toBe(200);
    const body = RoutesSchema.parse(await mine.json());
    // A key sees only the targets it may use.
    expect(body.routes.map((r) => r.target)).toEqual(['warehouse']);
  });

  it('counts refusals in gateway_auth_failures_total', async () => {
    await cancel({});
    const text = await (await fetch(`${secured.url}/metrics`)).text();
    expect(text).toMatch(/^gateway_auth_failures_total\{reason="missing"\} [1-9]/m);
  });
});

describe('GET /routes', () => {
  it('lists each target with its chain, protocol and circuit state, and no secret', async () => {
    const res = await fetch(`${open.url}/routes`);
    expect(res.status).toBe(200);
    const body = RoutesSchema.parse(await res.json());
    expect(body.routes).toEqual([
      {
        target: 'warehouse',
        timeoutMs: 15000,
        chain: [
          { provider: 'wh', protocol: 'methodcall', circuit: 'closed' },
          { provider: 'wh-2', protocol: 'methodcall', circuit: 'closed' },
        ],
      },
      {
        target: 'warehouse-west',
        timeoutMs: 15000,
        chain: [{ provider: 'wh-2', protocol: 'methodcall', circuit: 'closed' }],
      },
    ]);
    expect(JSON.stringify(body)).not.toContain(sim.taskUrl);
  });
});

describe('GET /metrics', () => {
  it('exposes the contract series, incremented by cancels, with bounded labels', async () => {
    sim.setBehaviour(404, { kind: 'fault', code: 1017 });
    await postJson(`${open.url}/cancel`, { target: 'warehouse', taskId: 20 });
    await postJson(`${open.url}/cancel`, { target: 'warehouse', taskId: 404 });
    await postJson(`${open.url}/cancel`, { target: 'no-such-target', taskId: 21 });
    const res = await fetch(`${open.url}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    for (const name of [
      'gateway_cancel_requests_total',
      'gateway_cancel_duration_seconds',
      'gateway_cancel_gateway_seconds',
      'gateway_cancel_upstream_seconds',
      'gateway_upstream_requests_total',
      'gateway_upstream_duration_seconds',
      'gateway_circuit_state',
      'gateway_config_reloads_total',
      'process_cpu_seconds_total',
      'nodejs_eventloop_lag_seconds',
    ]) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    expect(text).toMatch(
      /^gateway_cancel_requests_total\{target="warehouse",provider="wh",outcome="canceled",operation="cancel"\} [1-9]/m,
    );
    expect(text).toMatch(
      /^gateway_cancel_requests_total\{target="warehouse",provider="wh",outcome="not_found",operation="cancel"\} [1-9]/m,
    );
    expect(text).toMatch(
      /^gateway_upstream_requests_total\{provider="wh",protocol="methodcall",result="canceled"\} [1-9]/m,
    );
    expect(text).toMatch(
      /^gateway_cancel_duration_seconds_count\{target="warehouse",outcome="canceled",operation="cancel"\} [1-9]/m,
    );
    // The Server-Timing split, observed for each answer.
    expect(text).toMatch(
      /^gateway_cancel_gateway_seconds_count\{target="warehouse",operation="cancel"\} [1-9]/m,
    );
    expect(text).toMatch(
      /^gateway_cancel_upstream_seconds_count\{target="warehouse",operation="cancel"\} [1-9]/m,
    );
    expect(text).toMatch(
      /^gateway_upstream_duration_seconds_count\{provider="wh",operation="cancel"\} [1-9]/m,
    );
    expect(text).toMatch(/^gateway_circuit_state\{provider="wh"\} 0$/m);
    // Caller text never becomes a label value: unknown targets and task ids are not series.
    const ours = text.split('\n').filter((l) => l.startsWith('gateway_'));
    expect(ours.join('\n')).not.toContain('no-such-target');
    expect(ours.join('\n')).not.toMatch(/taskId|="20"|="404"/);
    expect(text).toMatch(/target="\(none\)",provider="\(none\)",outcome="unknown_target"/);
  });
});

describe('POST /cancel/batch', () => {
  const batch = (body: unknown, url = open.url, headers: Record<string, string> = {}) =>
    postJson(`${url}/cancel/batch`, body, headers);

  it('answers every item in order with its own result, and a summary', async () => {
    sim.setBehaviour(2, { kind: 'fault', code: 1017 });
    sim.setBehaviour(3, { kind: 'fault', code: 1045 });
    const res = await batch(
      {
        items: [
          { target: 'warehouse', taskId: 1 },
          { target: 'warehouse', taskId: '2' },
          { target: 'warehouse-west', taskId: 3 },
          { target: 'nope', taskId: 4 },
          { target: 'warehouse', taskId: 'x' },
          { target: 'warehouse', taskId: 6, reason: 'batch test' },
        ],
      },
      open.url,
      { 'x-request-id': 'batch-1' },
    );
    expect(res.status).toBe(200);
    const body = BatchResultSchema.parse(res.body);
    expect(body.requestId).toBe('batch-1');
    expect(body.results.map((r) => r.outcome)).toEqual([
      'canceled',
      'not_found',
      'conflict',
      'unknown_target',
      'invalid_request',
      'canceled',
    ]);
    expect(body.results.map((r) => r.requestId)).toEqual(
      [0, 1, 2, 3, 4, 5].map((i) => `batch-1.${i}`),
    );
    expect(body.results.map((r) => r.taskId)).toEqual(['1', '2', '3', '4', undefined, '6']);
    expect(body.summary).toEqual({
      canceled: 2,
      not_found: 1,
      conflict: 1,
      unknown_target: 1,
      invalid_request: 1,
    });
    expect(sim.calls.map((c) => c.taskId).sort()).toEqual(['1', '2', '3', '6']);
    const itemLines = open.logs.cancels().filter((l) => String(l.requestId).startsWith('batch-1.'));
    expect(itemLines).toHaveLength(6);
  });

  it('runs items concurrently', async () => {
    for (const id of [31, 32, 33]) sim.setBehaviour(id, { kind: 'hold' });
    const pending = batch({
      items: [31, 32, 33].map((taskId) => ({ target: 'warehouse-west', taskId })),
    });
    await sim.waitForCalls(3);
    sim.releaseHeld();
    const res = await pending;
    expect(res.body.summary).toEqual({ canceled: 3 });
  });

  it.each([
    [{}, 'items: is required'],
    [{ items: [] }, 'items: must hold at least one item'],
    [{ items: Array.from({ length: 101 }, () => ({ target: 'warehouse', taskId: 1 })) }, '100'],
    [{ items: [], extra: 1 }, 'unknown field'],
    [[{ target: 'warehouse', taskId: 1 }], '(body): must be a JSON object'],
  ])('refuses an invalid envelope %# with 400', async (body, message) => {
    const res = await batch(body);
    expect(res.status).toBe(400);
    expectUnifiedShape(res.body, 400);
    expect(res.body.error.code).toBe('INVALID_REQUEST');
    expect(res.body.error.message).toContain(message);
    expect(sim.calls).toHaveLength(0);
  });

  it('applies auth to the whole batch and target rights per item', async () => {
    expect((await batch({ items: [{ target: 'warehouse', taskId: 1 }] }, secured.url)).status).toBe(
      401,
    );
    const res = await batch(
      {
        items: [
          { target: 'warehouse', taskId: 41 },
          { target: 'warehouse-west', taskId: 42 },
        ],
      },
      secured.url,
      { 'x-api-key': WAREHOUSE_KEY },
    );
    expect(res.status).toBe(200);
    expect(res.body.results.map((r: { outcome: string }) => r.outcome)).toEqual([
      'canceled',
      'forbidden',
    ]);
    expect(sim.calls.map((c) => c.taskId)).toEqual(['41']);
  });
});
