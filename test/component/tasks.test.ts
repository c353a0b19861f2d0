import { httpStatusOf, isOkOutcome } from '../../src/core/outcome';
import { UnifiedResultSchema } from '../../src/core/result-schema';
import type { DynTaskStatus } from '../../src/simulators/dyn-backend';
import { startDynRestSimulator, type DynRestSimulator } from '../../src/simulators/dyn-rest';
import { startDynSoapSimulator, type DynSoapSimulator } from '../../src/simulators/dyn-soap';
import {
  startMethodcallSimulator,
  type MethodcallSimulator,
} from '../../src/simulators/methodcall';
import {
  OPS_KEY,
  WAREHOUSE_KEY,
  postJson,
  startTestGateway,
  twoCallerAuth,
  type TestGateway,
} from '../helpers/gateway';
import { closedPort } from '../helpers/net';
import { startOtlpReceiver } from '../helpers/otlp-receiver';

/**
 * `GET /tasks/{target}/{taskId}` through HTTP: a real gateway in front of the Dyn REST, Dyn SOAP
 * and methodcall simulators on loopback.
 */

let rest: DynRestSimulator;
let soap: DynSoapSimulator;
let mc: MethodcallSimulator;
let gw: TestGateway;
let keyed: TestGateway;
let seq = 0;

const ACCOUNT = {
  customerName: 'acme',
  userName: 'api-user',
  password: 'sim-password',
  rateLimitPerSecond: 10_000,
  retry: { attempts: 1 },
  circuitBreaker: { failureThreshold: 1000 },
};
const PLAIN = { retry: { attempts: 1 }, circuitBreaker: { failureThreshold: 1000 } };

const CALLER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';
const TRACEPARENT = `00-${CALLER_TRACE}-${CALLER_SPAN}-01`;

/** The gateway's routes and providers against the simulators; `down` is a closed port. */
function routing(down: number): Record<string, unknown> {
  return {
    providers: {
      'dns-rest': { type: 'dyn-rest', baseUrl: rest.baseUrl, ...ACCOUNT },
      'dns-soap': { type: 'dyn-soap', endpoint: soap.endpoint, ...ACCOUNT },
      // A 429 makes a Dyn provider back off for its Retry-After: this one takes it for the others.
      'dns-rest-429': { type: 'dyn-rest', baseUrl: rest.baseUrl, ...ACCOUNT },
      'dns-down': { type: 'dyn-rest', baseUrl: `http://127.0.0.1:${down}/REST`, ...ACCOUNT },
      warehouse: { type: 'methodcall', url: mc.taskUrl, ...PLAIN },
    },
    routes: {
      rest: { provider: 'dns-rest', timeoutMs: 3000 },
      soap: { provider: 'dns-soap', timeoutMs: 3000 },
      'rest-429': { provider: 'dns-rest-429', timeoutMs: 3000 },
      down: { provider: 'dns-down', timeoutMs: 3000 },
      // One second: long enough for any read on loopback, short enough to wait for a timeout.
      'rest-short': { provider: 'dns-rest', timeoutMs: 1000 },
      'rest-then-soap': { provider: 'dns-rest', fallback: ['dns-soap'], timeoutMs: 3000 },
      warehouse: { provider: 'warehouse', timeoutMs: 1000 },
      'warehouse-then-rest': { provider: 'warehouse', fallback: ['dns-rest'], timeoutMs: 3000 },
    },
    // Nothing settles a timed-out cancel behind the tests' back.
    state: { reconcileSeconds: 0 },
  };
}

beforeAll(async () => {
  rest = await startDynRestSimulator();
  soap = await startDynSoapSimulator();
  mc = await startMethodcallSimulator();
  const down = await closedPort();
  gw = await startTestGateway(routing(down));
  keyed = await startTestGateway({ ...routing(down), auth: twoCallerAuth() }, { WAREHOUSE_KEY });
});

afterAll(async () => {
  await Promise.all([gw.close(), keyed.close()]);
  await Promise.all([rest.close(), soap.close(), mc.close()]);
});

afterEach(() => {
  rest.releaseHeld();
  soap.releaseHeld();
  mc.releaseHeld();
});

/** A task id no other test uses, so the simulators' per-task scripts never cross. */
const nextTask = (): string => String(70_000 + ++seq);

interface Reply {
  status: number;
  headers: Headers;
  body: Record<string, any>;
}

async function getTask(
  target: string,
  taskId: string,
  headers: Record<string, string> = {},
  base = gw.url,
): Promise<Reply> {
  const res = await fetch(`${base}/tasks/${target}/${taskId}`, { headers });
  const body = (await res.json()) as Record<string, any>;
  // Every answer is the unified shape, `ok` exactly for the ok outcomes, its status the table's.
  const result = UnifiedResultSchema.parse(body);
  expect(result.ok).toBe(isOkOutcome(result.outcome));
  expect(httpStatusOf(result.outcome, result.error?.code)).toBe(res.status);
  return { status: res.status, headers: res.headers, body };
}

/** Reads and cancels of one task the REST simulator saw. */
function restCalls(taskId: string): { reads: number; cancels: number } {
  return {
    reads: rest.callsTo('GET', `/REST/Task/${taskId}/`).length,
    cancels: rest.callsTo('DELETE', `/REST/Task/${taskId}/`).length,
  };
}

/** Reads and cancels of one task the SOAP simulator saw. */
function soapCalls(taskId: string): { reads: number; cancels: number } {
  const of = (op: string): number =>
    soap.callsTo(op).filter((c) => c.args.task_id === taskId).length;
  return { reads: of('GetOneTask'), cancels: of('CancelTask') };
}

const SIMULATORS = {
  rest: { target: 'rest', provider: 'dns-rest', protocol: 'dyn-rest', calls: restCalls },
  soap: { target: 'soap', provider: 'dns-soap', protocol: 'dyn-soap', calls: soapCalls },
} as const;

function script(which: keyof typeof SIMULATORS, taskId: string, behaviour: object): void {
  const sim = which === 'rest' ? rest : soap;
  sim.setBehaviour(taskId, behaviour as Parameters<typeof sim.setBehaviour>[1]);
}

const STATUSES: DynTaskStatus[] = ['ready', 'running', 'waiting', 'complete', 'canceled', 'failed'];

describe.each(['rest', 'soap'] as const)('a read over Dyn %s', (which) => {
  const { target, provider, protocol, calls } = SIMULATORS[which];

  it.each(STATUSES)('finds a task in status %s: 200, ok, the task, nothing canceled', async (s) => {
    const taskId = nextTask();
    script(which, taskId, { kind: 'status', status: s });
    const res = await getTask(target, taskId, { 'x-request-id': `read-${taskId}` });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      ok: true,
      outcome: 'found',
      retryable: false,
      requestId: `read-${taskId}`,
      target,
      provider,
      protocol,
      taskId,
      task: { id: taskId, status: s, name: 'ProvisionZone', zone: 'example.com', blocking: true },
      attempts: [{ provider, outcome: 'found', durationMs: expect.any(Number) }],
    });
    expect(res.body.error).toBeUndefined();
    expect(res.body.replayed).toBeUndefined();
    expect(res.headers.get('x-request-id')).toBe(`read-${taskId}`);
    expect(res.headers.get('server-timing')).toMatch(/^gateway;dur=\d+\.\d, upstream;dur=\d+\.\d$/);
    expect(calls(taskId)).toEqual({ reads: 1, cancels: 0 });
  });

  it.each([
    ['not-found', 404, 'not_found', 'TASK_NOT_FOUND'],
    ['invalid-data', 422, 'rejected', 'UPSTREAM_REJECTED'],
    ['malformed', 502, 'upstream_error', 'UPSTREAM_BAD_RESPONSE'],
    ['permission-denied', 502, 'upstream_error', 'UPSTREAM_AUTH_FAILED'],
    ['unavailable', 503, 'unavailable', 'UPSTREAM_UNAVAILABLE'],
  ] as const)('answers Dyn’s %s with %i %s', async (kind, status, outcome, code) => {
    const taskId = nextTask();
    script(which, taskId, { kind });
    const res = await getTask(target, taskId);
    expect(res.status).toBe(status);
    expect(res.body).toMatchObject({
      ok: false,
      outcome,
      retryable: outcome === 'unavailable',
      provider,
      error: { code },
    });
    expect(res.body.task).toBeUndefined();
    expect(res.headers.get('server-timing')).toMatch(/^gateway;dur=/);
    expect(calls(taskId).cancels).toBe(0);
  });

  it('shows a task canceled once a cancel went through', async () => {
    const taskId = nextTask();
    const cancel = await postJson(`${gw.url}/cancel`, { target, taskId });
    expect(cancel.body.outcome).toBe('canceled');
    const res = await getTask(target, taskId);
    expect(res.body).toMatchObject({ outcome: 'found', task: { status: 'canceled' } });
    expect(res.body.replayed).toBeUndefined();
    expect(calls(taskId)).toEqual({ reads: 1, cancels: 1 });
  });
});

describe('failures of a read', () => {
  it('answers 429 rate_limited with Dyn’s Retry-After', async () => {
    const taskId = nextTask();
    rest.setBehaviour(taskId, { kind: 'rate-limited', retryAfterSeconds: 7 });
    const res = await getTask('rest-429', taskId);
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('7');
    expect(res.body).toMatchObject({
      outcome: 'rate_limited',
      retryable: true,
      error: { code: 'UPSTREAM_RATE_LIMITED' },
    });
  });

  it('answers 503 unavailable when the upstream refuses connections', async () => {
    const res = await getTask('down', nextTask());
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({
      outcome: 'unavailable',
      retryable: true,
      provider: 'dns-down',
      error: { code: 'UPSTREAM_UNREACHABLE' },
    });
  });

  it('answers 504 timeout at the route’s deadline for a slow read', async () => {
    const taskId = nextTask();
    rest.setBehaviour(taskId, { kind: 'slow', delayMs: 30_000 });
    const res = await getTask('rest-short', taskId);
    expect(res.status).toBe(504);
    expect(res.body).toMatchObject({
      outcome: 'timeout',
      retryable: true,
      provider: 'dns-rest',
      error: { code: 'UPSTREAM_TIMEOUT' },
    });
    expect(restCalls(taskId)).toEqual({ reads: 1, cancels: 0 });
  });

  it('falls back to the next provider after unavailable, listing every attempt', async () => {
    const taskId = nextTask();
    rest.setBehaviour(taskId, { kind: 'unavailable' });
    const res = await getTask('rest-then-soap', taskId);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      outcome: 'found',
      provider: 'dns-soap',
      protocol: 'dyn-soap',
      task: { id: taskId, status: 'running' },
      attempts: [
        { provider: 'dns-rest', outcome: 'unavailable', errorCode: 'UPSTREAM_UNAVAILABLE' },
        { provider: 'dns-soap', outcome: 'found' },
      ],
    });
    expect(restCalls(taskId)).toEqual({ reads: 1, cancels: 0 });
    expect(soapCalls(taskId)).toEqual({ reads: 1, cancels: 0 });
  });
});

describe('a route that cannot read', () => {
  it.each(['warehouse', 'warehouse-then-rest'])(
    '%s: 501 not_supported, no attempt, nothing sent anywhere',
    async (target) => {
      const taskId = nextTask();
      const res = await getTask(target, taskId);
      expect(res.status).toBe(501);
      expect(res.body).toMatchObject({
        ok: false,
        outcome: 'not_supported',
        retryable: false,
        target,
        provider: 'warehouse',
        protocol: 'methodcall',
        taskId,
        attempts: [],
        error: { code: 'OPERATION_NOT_SUPPORTED' },
      });
      expect(mc.calls).toHaveLength(0);
      expect(restCalls(taskId)).toEqual({ reads: 0, cancels: 0 });
    },
  );

  it('still checks the task id against the provider first', async () => {
    const res = await getTask('warehouse', '99999999999');
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('TASK_ID_OUT_OF_RANGE');
    expect(mc.calls).toHaveLength(0);
  });
});

describe('validation: the rules and messages of /cancel', () => {
  it.each([
    ['012', 'taskId'],
    ['-5', 'taskId'],
    ['1.5', 'taskId'],
    ['12%203', 'taskId'],
    ['1'.repeat(21), 'taskId'],
  ])('answers 400 for taskId %s, naming it as /cancel does', async (raw, path) => {
    const res = await getTask('rest', raw);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({
      outcome: 'invalid_request',
      error: { code: 'INVALID_REQUEST' },
    });
    expect(res.body.error.details.map((d: { path: string }) => d.path)).toEqual([path]);
    const cancel = await postJson(`${gw.url}/cancel`, {
      target: 'rest',
      taskId: decodeURIComponent(raw),
    });
    expect(res.body.error.details).toEqual(cancel.body.error.details);
    expect(res.body.error.message).toBe(cancel.body.error.message);
    expect(rest.calls.filter((c) => c.path.startsWith(`/REST/Task/${raw}`))).toEqual([]);
  });

  it('answers 400 for a target that is no route name, naming target', async () => {
    const res = await getTask('Not_A_Route', '1');
    expect(res.status).toBe(400);
    expect(res.body.error.details).toEqual([
      { path: 'target', message: expect.stringMatching(/^expected a route name/) },
    ]);
  });

  it('answers 422 unknown_target for a target no route has', async () => {
    const res = await getTask('no-such-route', '1');
    expect(res.status).toBe(422);
    expect(res.body).toMatchObject({
      outcome: 'unknown_target',
      target: 'no-such-route',
      taskId: '1',
      error: { code: 'UNKNOWN_TARGET' },
    });
  });

  it.each(['POST', 'PUT', 'DELETE', 'PATCH'])('answers %s with 405 and Allow: GET', async (m) => {
    const res = await fetch(`${gw.url}/tasks/rest/1`, { method: m });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET');
    expect(((await res.json()) as Record<string, any>).error.code).toBe('METHOD_NOT_ALLOWED');
    expect(restCalls('1')).toEqual({ reads: 0, cancels: 0 });
  });

  it('answers a path without a task id with 404 NOT_FOUND', async () => {
    const res = await fetch(`${gw.url}/tasks/rest`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as Record<string, any>).error.code).toBe('NOT_FOUND');
  });
});

describe('auth', () => {
  it('answers 401 without a key, sending nothing', async () => {
    const taskId = nextTask();
    const res = await getTask('rest', taskId, {}, keyed.url);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="cancel-gateway"');
    expect(res.body.error.code).toBe('UNAUTHORIZED');
    expect(restCalls(taskId)).toEqual({ reads: 0, cancels: 0 });
  });

  it('answers 403 for a key not allowed on the target, sending nothing', async () => {
    const taskId = nextTask();
    const res = await getTask('rest', taskId, { 'x-api-key': WAREHOUSE_KEY }, keyed.url);
    expect(res.status).toBe(403);
    expect(res.body).toMatchObject({
      outcome: 'forbidden',
      target: 'rest',
      taskId,
      error: {
        code: 'FORBIDDEN',
        message: 'caller "warehouse-team" may not read tasks on target "rest"',
      },
    });
    expect(restCalls(taskId)).toEqual({ reads: 0, cancels: 0 });
  });

  it('reads with a key allowed on the target', async () => {
    const taskId = nextTask();
    const res = await getTask('rest', taskId, { authorization: `Bearer ${OPS_KEY}` }, keyed.url);
    expect(res.status).toBe(200);
    expect(res.body.outcome).toBe('found');
    const line = keyed.logs.lines().find((l) => l.msg === 'get' && l.taskId === taskId);
    expect(line).toMatchObject({ caller: 'ops', outcome: 'found', status: 200 });
  });
});

describe('a read is not a cancel', () => {
  it('after a timed-out cancel: answered by Dyn, not replayed, and the timeout still stands', async () => {
    const taskId = nextTask();
    rest.setBehaviour(taskId, { kind: 'hold' });
    const cancel = await postJson(`${gw.url}/cancel`, { target: 'rest-short', taskId });
    expect(cancel.status).toBe(504);
    // The held cancel goes through on Dyn after the gateway gave up; reads are no longer held.
    rest.releaseHeld();
    rest.setBehaviour(taskId, { kind: 'ok' });
    for (const n of [1, 2]) {
      const res = await getTask('rest-short', taskId);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ outcome: 'found', task: { status: 'canceled' } });
      expect(res.body.replayed).toBeUndefined();
      expect(res.body.attempts).toHaveLength(1);
      expect(restCalls(taskId)).toEqual({ reads: n, cancels: 1 });
    }
    // Had a read settled the timeout, this repeat would be replayed without calling Dyn; had it
    // cleared it, Dyn's "already canceled" would be a conflict.
    const repeat = await postJson(`${gw.url}/cancel`, { target: 'rest-short', taskId });
    expect(repeat.body).toMatchObject({ outcome: 'canceled' });
    expect(repeat.body.replayed).toBeUndefined();
    expect(restCalls(taskId)).toEqual({ reads: 2, cancels: 2 });
  });

  it.each(['cancel first', 'read first'])(
    'never shares a single-flight slot with a concurrent cancel of the task (%s)',
    async (order) => {
      const taskId = nextTask();
      rest.setBehaviour(taskId, { kind: 'hold' });
      const path = `/REST/Task/${taskId}/`;
      const startCancel = (): Promise<Awaited<ReturnType<typeof postJson>>> =>
        postJson(`${gw.url}/cancel`, { target: 'rest', taskId });
      const startRead = (): Promise<Reply> => getTask('rest', taskId);
      let cancel: Promise<Awaited<ReturnType<typeof postJson>>>;
      let read: Promise<Reply>;
      if (order === 'cancel first') {
        cancel = startCancel();
        await rest.waitUntil((all) => all.some((c) => c.method === 'DELETE' && c.path === path));
        read = startRead();
      } else {
        read = startRead();
        await rest.waitUntil((all) => all.some((c) => c.method === 'GET' && c.path === path));
        cancel = startCancel();
      }
      await rest.waitUntil(
        (all) =>
          all.some((c) => c.method === 'DELETE' && c.path === path) &&
          all.some((c) => c.method === 'GET' && c.path === path),
      );
      rest.releaseHeld();
      const [c, r] = await Promise.all([cancel, read]);
      expect(c.body.outcome).toBe('canceled');
      expect(r.body.outcome).toBe('found');
      expect(r.body.replayed).toBeUndefined();
      expect(restCalls(taskId)).toEqual({ reads: 1, cancels: 1 });
    },
  );
});

describe('observability', () => {
  it('logs one `get` line per read with the cancel line’s fields, and no cancel line', async () => {
    const taskId = nextTask();
    const res = await getTask('rest', taskId, {
      'x-request-id': 'read-log-1',
      traceparent: TRACEPARENT,
    });
    expect(res.status).toBe(200);
    const lines = gw.logs.lines().filter((l) => l.requestId === 'read-log-1');
    expect(lines.filter((l) => l.msg === 'get')).toEqual([
      expect.objectContaining({
        level: 'info',
        msg: 'get',
        requestId: 'read-log-1',
        traceId: CALLER_TRACE,
        caller: 'anonymous',
        target: 'rest',
        provider: 'dns-rest',
        taskId,
        outcome: 'found',
        status: 200,
        durationMs: expect.any(Number),
        attempts: [{ provider: 'dns-rest', outcome: 'found', durationMs: expect.any(Number) }],
      }),
    ]);
    expect(gw.logs.cancels().filter((l) => l.requestId === 'read-log-1')).toEqual([]);
    // The caller's trace reaches Dyn.
    const [call] = rest.callsTo('GET', `/REST/Task/${taskId}/`);
    expect(call?.headers.traceparent).toMatch(new RegExp(`^00-${CALLER_TRACE}-[0-9a-f]{16}-01$`));
  });

  it('never logs the Dyn password or a session token, at any level', async () => {
    await getTask('rest', nextTask());
    await getTask('soap', nextTask());
    const tokens = [
      ...rest.calls.map((c) => c.headers['auth-token']),
      ...soap.calls.map((c) => c.args.token),
    ].filter((t): t is string => typeof t === 'string' && t.length > 20);
    expect(tokens.length).toBeGreaterThan(0);
    const text = [...gw.logs.raw, ...keyed.logs.raw].join('\n');
    for (const secret of [ACCOUNT.password, ...tokens]) expect(text).not.toContain(secret);
  });

  it('logs failures as warnings with their error code', async () => {
    const taskId = nextTask();
    rest.setBehaviour(taskId, { kind: 'malformed' });
    await getTask('rest', taskId);
    const line = gw.logs.lines().find((l) => l.msg === 'get' && l.taskId === taskId);
    expect(line).toMatchObject({
      level: 'warn',
      outcome: 'upstream_error',
      status: 502,
      errorCode: 'UPSTREAM_BAD_RESPONSE',
    });
  });

  it('counts reads as operation="get" and their upstream time as operation="read"', async () => {
    const metrics = async (): Promise<string> => (await fetch(`${gw.url}/metrics`)).text();
    const value = (text: string, series: string): number => {
      const escaped = series.replace(/[{}"]/g, '\\$&');
      const match = new RegExp(`^${escaped} (\\S+)$`, 'm').exec(text);
      return match === null ? 0 : Number(match[1]);
    };
    const found =
      'gateway_cancel_requests_total{target="rest",provider="dns-rest",outcome="found",operation="get"}';
    const unsupported =
      'gateway_cancel_requests_total{target="warehouse",provider="warehouse",outcome="not_supported",operation="get"}';
    const duration =
      'gateway_cancel_duration_seconds_count{target="rest",outcome="found",operation="get"}';
    const own = 'gateway_cancel_gateway_seconds_count{target="rest",operation="get"}';
    const upstream = 'gateway_cancel_upstream_seconds_count{target="rest",operation="get"}';
    const attempt = 'gateway_upstream_duration_seconds_count{provider="dns-rest",operation="read"}';
    const asCancel =
      'gateway_cancel_requests_total{target="rest",provider="dns-rest",outcome="found",operation="cancel"}';
    const series = [found, unsupported, duration, own, upstream, attempt, asCancel];
    const before = await metrics();
    await getTask('rest', nextTask());
    await getTask('rest', nextTask());
    await getTask('warehouse', nextTask());
    const after = await metrics();
    expect(series.map((s) => value(after, s) - value(before, s))).toEqual([2, 1, 2, 2, 2, 2, 0]);
  });
});

describe('tracing', () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
  });

  it('makes a server span GET /tasks/{target}/{taskId} continuing the caller’s trace', async () => {
    const receiver = await startOtlpReceiver();
    // The gateway reads OTEL_* from process.env, as main.ts runs it.
    process.env = { ...saved, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url };
    const traced = await startTestGateway(routing(await closedPort()));
    try {
      const taskId = nextTask();
      const res = await getTask('rest', taskId, { traceparent: TRACEPARENT }, traced.url);
      expect(res.status).toBe(200);
    } finally {
      // The drain exports the spans still queued.
      await traced.close();
      await receiver.close();
    }
    const servers = receiver.spans.filter((s) => s.kind === 2);
    expect(servers.map((s) => s.name)).toEqual(['GET /tasks/{target}/{taskId}']);
    const [server] = servers;
    expect(server).toMatchObject({ traceId: CALLER_TRACE, parentSpanId: CALLER_SPAN });
    expect(server?.attributes).toEqual({
      'cancel.target': 'rest',
      'cancel.provider': 'dns-rest',
      'cancel.protocol': 'dyn-rest',
      'cancel.outcome': 'found',
      'http.request.method': 'GET',
      'http.route': '/tasks/{target}/{taskId}',
      'http.response.status_code': 200,
    });
    const clients = receiver.spans.filter((s) => s.kind === 3);
    expect(clients.length).toBeGreaterThan(0);
    for (const client of clients) expect(client.traceId).toBe(CALLER_TRACE);
    expect(clients.map((s) => s.attributes['cancel.upstream.operation'])).toContain('read');
  });
});
