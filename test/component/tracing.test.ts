import type { RecordedCall } from '../../src/simulators/http-util';
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
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver';

const PASSWORD = 'tracing-sim-password';
const CALLER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';
const CALLER = {
  traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01`,
  tracestate: 'vendor=opaque',
};
const OPS = { authorization: `Bearer ${OPS_KEY}` };
const SERVER = 2;
const CLIENT = 3;
const ERROR = 2;

let receiver: OtlpReceiver;
let mc: MethodcallSimulator;
let rest: DynRestSimulator;
let soap: DynSoapSimulator;
let gateway: TestGateway | undefined;

// The gateway reads the OTEL_* variables from process.env, as main.ts runs it: each test sets them
// there before starting its gateway, and they are restored after it.
const saved = { ...process.env };
function useEnv(vars: Record<string, string>): void {
  const others = Object.entries(saved).filter(([key]) => !key.startsWith('OTEL_'));
  process.env = { ...Object.fromEntries(others), ...vars };
}

async function start(vars: Record<string, string>): Promise<TestGateway> {
  useEnv(vars);
  const down = await closedPort();
  const account = {
    customerName: 'acme',
    userName: 'api-user',
    password: '${DYN_PASSWORD}',
    jobPollIntervalMs: 10,
    jobTimeoutMs: 2000,
    rateLimitPerSecond: 10_000,
  };
  gateway = await startTestGateway(
    {
      server: { requestTimeoutMs: 5000 },
      auth: twoCallerAuth(),
      providers: {
        wh: { type: 'methodcall', url: mc.taskUrl, retry: { attempts: 1 } },
        'wh-down': {
          type: 'methodcall',
          url: `http://127.0.0.1:${down}/task`,
          retry: { attempts: 1 },
        },
        'dns-rest': { type: 'dyn-rest', baseUrl: rest.baseUrl, ...account },
        'dns-soap': {
          type: 'dyn-soap',
          wsdl: 'wsdl/dynect.wsdl',
          endpoint: soap.endpoint,
          ...account,
        },
      },
      routes: {
        warehouse: { provider: 'wh' },
        'warehouse-down': { provider: 'wh-down' },
        'dns-rest': { provider: 'dns-rest' },
        'dns-soap': { provider: 'dns-soap' },
      },
    },
    { DYN_PASSWORD: PASSWORD, WAREHOUSE_KEY },
  );
  return gateway;
}

/** Stops the gateway (its drain exports the spans still queued) and returns what arrived. */
async function exported(): Promise<ReceivedSpan[]> {
  await gateway?.close();
  gateway = undefined;
  return receiver.spans;
}

beforeEach(async () => {
  receiver = await startOtlpReceiver();
  mc = await startMethodcallSimulator();
  rest = await startDynRestSimulator({ password: PASSWORD });
  soap = await startDynSoapSimulator({ password: PASSWORD });
});

afterEach(async () => {
  await gateway?.close();
  gateway = undefined;
  await Promise.all([receiver.close(), mc.close(), rest.close(), soap.close()]);
  process.env = { ...saved };
});

const enabled = (): Record<string, string> => ({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });

function named(spans: readonly ReceivedSpan[], name: string): ReceivedSpan[] {
  return spans.filter((s) => s.name === name);
}
function one(spans: readonly ReceivedSpan[], name: string): ReceivedSpan {
  const found = named(spans, name);
  expect(found.map((s) => s.name)).toEqual([name]);
  return found[0]!;
}
function portOf(url: string): number {
  return Number(new URL(url).port);
}
/** The span id a recorded upstream request names as its parent in `traceparent`. */
function parentIn(call: RecordedCall): string | undefined {
  const header = call.headers.traceparent;
  return typeof header === 'string' ? header.split('-')[2] : undefined;
}

/**
 * Every recorded upstream request of the request's trace carries the traceparent of exactly one
 * exported client span under `server`, and the caller's tracestate when there was one.
 */
function expectEachCallTraced(
  calls: readonly RecordedCall[],
  spans: readonly ReceivedSpan[],
  server: ReceivedSpan,
  tracestate?: string,
): ReceivedSpan[] {
  return calls.map((call) => {
    expect(call.headers.traceparent).toMatch(new RegExp(`^00-${server.traceId}-[0-9a-f]{16}-01$`));
    expect(call.headers.tracestate).toBe(tracestate);
    const client = spans.find((s) => s.spanId === parentIn(call));
    expect(client).toMatchObject({ kind: CLIENT, parentSpanId: server.spanId });
    return client!;
  });
}

describe('with an OTLP endpoint', () => {
  it('continues the caller’s trace: server span for /cancel, a client span per call, traceparent upstream, traceId in the log', async () => {
    const gw = await start(enabled());
    const res = await postJson(
      `${gw.url}/cancel`,
      { target: 'warehouse', taskId: 7 },
      {
        ...CALLER,
        ...OPS,
      },
    );
    expect(res.status).toBe(200);
    const [line] = gw.logs.cancels();
    expect(line?.traceId).toBe(CALLER_TRACE);

    const spans = await exported();
    const server = one(spans, 'POST /cancel');
    expect(server).toMatchObject({
      traceId: CALLER_TRACE,
      parentSpanId: CALLER_SPAN,
      kind: SERVER,
      serviceName: 'cancel-gateway',
    });
    expect(server.attributes).toEqual({
      'cancel.target': 'warehouse',
      'cancel.provider': 'wh',
      'cancel.protocol': 'methodcall',
      'cancel.outcome': 'canceled',
      'http.request.method': 'POST',
      'http.route': '/cancel',
      'http.response.status_code': 200,
    });
    expect(server.status.code).not.toBe(ERROR);
    const client = one(spans, 'POST cancel');
    expect(client).toMatchObject({ traceId: CALLER_TRACE, parentSpanId: server.spanId });
    expect(client.attributes).toEqual({
      'cancel.upstream.operation': 'cancel',
      'http.request.method': 'POST',
      'server.address': '127.0.0.1',
      'server.port': portOf(mc.taskUrl),
      'http.response.status_code': 200,
    });
    expect(expectEachCallTraced(mc.calls, spans, server, CALLER.tracestate)).toEqual([client]);
  });

  it('Dyn REST: login, cancel and job polls are children of the request’s new trace; the logout at close has none', async () => {
    rest.setBehaviour(31, { kind: 'redirect-job', polls: 1 });
    const gw = await start(enabled());
    const res = await postJson(`${gw.url}/cancel`, { target: 'dns-rest', taskId: 31 }, OPS);
    expect(res.status).toBe(200);
    const traced = [...rest.calls];
    expect(traced.map((c) => c.method)).toEqual(['POST', 'DELETE', 'GET', 'GET']);

    const spans = await exported();
    const server = one(spans, 'POST /cancel');
    expect(server.parentSpanId).toBeUndefined();
    expect(server.attributes).toMatchObject({
      'cancel.provider': 'dns-rest',
      'cancel.protocol': 'dyn-rest',
      'cancel.outcome': 'canceled',
    });
    expect(gw.logs.cancels()[0]?.traceId).toBe(server.traceId);
    const clients = expectEachCallTraced(traced, spans, server);
    expect(clients.map((s) => s.name)).toEqual([
      'POST login',
      'DELETE cancel',
      'GET poll',
      'GET poll',
    ]);
    expect(clients.map((s) => s.attributes['cancel.upstream.operation'])).toEqual([
      'login',
      'cancel',
      'poll',
      'poll',
    ]);
    expect(clients[1]?.attributes).toMatchObject({
      'server.port': portOf(rest.baseUrl),
      'http.response.status_code': 307,
    });
    // The session's logout at shutdown belongs to no request: no span, no traceparent.
    const logouts = rest.callsTo('DELETE', '/REST/Session');
    expect(logouts).toHaveLength(1);
    expect(logouts[0]?.headers.traceparent).toBeUndefined();
    expect(spans.filter((s) => s.attributes['cancel.upstream.operation'] === 'logout')).toEqual([]);
    expect(spans).toHaveLength(5);
  });

  it('Dyn SOAP: node-soap’s requests carry the traceparent, each call named by its operation', async () => {
    soap.setBehaviour(41, { kind: 'incomplete-job', polls: 1 });
    const gw = await start(enabled());
    const res = await postJson(
      `${gw.url}/cancel`,
      { target: 'dns-soap', taskId: 41 },
      {
        ...CALLER,
        ...OPS,
      },
    );
    expect(res.status).toBe(200);
    const traced = [...soap.calls];
    expect(traced.map((c) => c.operation)).toEqual([
      'SessionLoginRequest',
      'CancelTaskRequest',
      'GetJobRequest',
      'GetJobRequest',
    ]);

    const spans = await exported();
    const server = one(spans, 'POST /cancel');
    expect(server).toMatchObject({ traceId: CALLER_TRACE, parentSpanId: CALLER_SPAN });
    expect(server.attributes).toMatchObject({
      'cancel.provider': 'dns-soap',
      'cancel.protocol': 'dyn-soap',
    });
    const clients = expectEachCallTraced(traced, spans, server, CALLER.tracestate);
    expect(clients.map((s) => s.name)).toEqual([
      'POST login',
      'POST cancel',
      'POST poll',
      'POST poll',
    ]);
    expect(clients[0]?.attributes).toMatchObject({
      'cancel.upstream.operation': 'login',
      'server.address': '127.0.0.1',
      'server.port': portOf(soap.endpoint),
      'http.response.status_code': 200,
    });
    const logouts = soap.callsTo('SessionLogout');
    expect(logouts).toHaveLength(1);
    expect(logouts[0]?.headers.traceparent).toBeUndefined();
  });

  it('batch: a span for the request, a server span per item under it, client spans under their item', async () => {
    const gw = await start(enabled());
    const items = [
      { target: 'warehouse', taskId: 1 },
      { target: 'dns-rest', taskId: 2 },
      { target: 'no-such-target', taskId: 3 },
    ];
    const res = await postJson(`${gw.url}/cancel/batch`, { items }, { ...CALLER, ...OPS });
    expect(res.status).toBe(200);
    const lines = gw.logs.cancels();
    expect(lines).toHaveLength(3);
    expect(lines.map((l) => l.traceId)).toEqual([CALLER_TRACE, CALLER_TRACE, CALLER_TRACE]);

    const spans = await exported();
    const batch = one(spans, 'POST /cancel/batch');
    expect(batch).toMatchObject({ traceId: CALLER_TRACE, parentSpanId: CALLER_SPAN, kind: SERVER });
    expect(batch.attributes).toEqual({
      'http.request.method': 'POST',
      'http.route': '/cancel/batch',
      'http.response.status_code': 200,
    });
    const byIndex = named(spans, 'cancel batch item').sort(
      (a, b) =>
        Number(a.attributes['cancel.batch.index']) - Number(b.attributes['cancel.batch.index']),
    );
    expect(byIndex.map((s) => [s.kind, s.parentSpanId])).toEqual([
      [SERVER, batch.spanId],
      [SERVER, batch.spanId],
      [SERVER, batch.spanId],
    ]);
    const [first, second, third] = byIndex;
    expect(first?.attributes).toEqual({
      'cancel.batch.index': 0,
      'cancel.target': 'warehouse',
      'cancel.provider': 'wh',
      'cancel.protocol': 'methodcall',
      'cancel.outcome': 'canceled',
    });
    expect(second?.attributes).toMatchObject({
      'cancel.batch.index': 1,
      'cancel.protocol': 'dyn-rest',
    });
    // Caller text is never an attribute: an unknown target leaves `cancel.target` out.
    expect(third?.attributes).toEqual({
      'cancel.batch.index': 2,
      'cancel.outcome': 'unknown_target',
      'cancel.code': 'UNKNOWN_TARGET',
    });
    expect(receiver.bodies.join('\n')).not.toContain('no-such-target');
    expect(
      expectEachCallTraced(mc.calls, spans, first!, CALLER.tracestate).map((s) => s.name),
    ).toEqual(['POST cancel']);
    const restTraced = rest.calls.filter((c) => c.headers.traceparent !== undefined);
    expect(
      expectEachCallTraced(restTraced, spans, second!, CALLER.tracestate).map((s) => s.name),
    ).toEqual(['POST login', 'DELETE cancel']);
  });

  it('marks a 5xx outcome as an error, on the server span and the failed client span', async () => {
    const gw = await start(enabled());
    const res = await postJson(`${gw.url}/cancel`, { target: 'warehouse-down', taskId: 5 }, OPS);
    expect(res.status).toBe(503);

    const spans = await exported();
    const server = one(spans, 'POST /cancel');
    expect(server.status).toMatchObject({ code: ERROR, message: 'UPSTREAM_UNREACHABLE' });
    expect(server.attributes).toMatchObject({
      'cancel.outcome': 'unavailable',
      'cancel.code': 'UPSTREAM_UNREACHABLE',
      'error.type': 'UPSTREAM_UNREACHABLE',
      'http.response.status_code': 503,
    });
    const clients = named(spans, 'POST cancel');
    expect(clients.length).toBeGreaterThan(0);
    for (const client of clients) {
      expect(client.parentSpanId).toBe(server.spanId);
      expect(client.status.code).toBe(ERROR);
      expect(client.attributes['error.type']).toBe('ECONNREFUSED');
      expect(client.attributes['http.response.status_code']).toBeUndefined();
    }
  });

  it('ends the span of a request refused before its handler (401), with its status', async () => {
    const gw = await start(enabled());
    const res = await postJson(`${gw.url}/cancel`, { target: 'warehouse', taskId: 9 }, CALLER);
    expect(res.status).toBe(401);
    expect(gw.logs.cancels()[0]?.traceId).toBe(CALLER_TRACE);
    const server = one(await exported(), 'POST /cancel');
    expect(server.attributes).toMatchObject({
      'cancel.outcome': 'unauthorized',
      'http.response.status_code': 401,
    });
    expect(server.status.code).not.toBe(ERROR);
    expect(mc.calls).toEqual([]);
  });

  it('never exports a password, session token or API key', async () => {
    const gw = await start(enabled());
    const bearer = { ...CALLER, ...OPS };
    const byKey = { ...CALLER, 'x-api-key': WAREHOUSE_KEY };
    expect(
      (await postJson(`${gw.url}/cancel`, { target: 'dns-rest', taskId: 51 }, bearer)).status,
    ).toBe(200);
    expect(
      (await postJson(`${gw.url}/cancel`, { target: 'dns-soap', taskId: 52 }, bearer)).status,
    ).toBe(200);
    expect(
      (await postJson(`${gw.url}/cancel`, { target: 'warehouse', taskId: 53 }, byKey)).status,
    ).toBe(200);
    const tokens = [
      ...rest.calls.map((c) => c.headers['auth-token']),
      ...soap.calls.map((c) => c.args.token),
    ].filter((t): t is string => typeof t === 'string' && t !== '');
    expect(tokens.length).toBeGreaterThan(0);

    const spans = await exported();
    expect(spans.length).toBeGreaterThanOrEqual(3 + 2 + 2 + 1);
    const everything = receiver.bodies.join('\n');
    for (const secret of [PASSWORD, OPS_KEY, WAREHOUSE_KEY, ...tokens]) {
      expect(everything).not.toContain(secret);
    }
  });

  it('honours OTEL_TRACES_SAMPLER: always_off exports nothing, the trace still goes upstream', async () => {
    const gw = await start({ ...enabled(), OTEL_TRACES_SAMPLER: 'always_off' });
    const res = await postJson(
      `${gw.url}/cancel`,
      { target: 'warehouse', taskId: 8 },
      {
        ...CALLER,
        ...OPS,
      },
    );
    expect(res.status).toBe(200);
    expect(mc.calls[0]?.headers.traceparent).toMatch(
      new RegExp(`^00-${CALLER_TRACE}-[0-9a-f]{16}-00$`),
    );
    expect(await exported()).toEqual([]);
    expect(receiver.exports).toEqual([]);
  });
});

describe('without an OTLP endpoint (or with the SDK disabled)', () => {
  /** The trace id a `traceparent` names. */
  const traceOf = (header: unknown): string | undefined =>
    typeof header === 'string' ? header.split('-')[1] : undefined;
  const NEW_TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/;

  it.each([
    ['no OTEL_* variable', () => ({})],
    [
      'OTEL_SDK_DISABLED=true',
      () => ({ ...enabled(), OTEL_SDK_DISABLED: 'true', OTEL_SERVICE_NAME: 'quiet' }),
    ],
  ])(
    '%s: exports nothing, passes a caller’s trace on unchanged, starts one otherwise',
    async (_label, vars) => {
      const gw = await start(vars());
      expect(
        (
          await postJson(
            `${gw.url}/cancel`,
            { target: 'warehouse', taskId: 61 },
            { ...CALLER, ...OPS },
          )
        ).status,
      ).toBe(200);
      expect(
        (
          await postJson(
            `${gw.url}/cancel`,
            { target: 'dns-rest', taskId: 62 },
            { ...CALLER, ...OPS },
          )
        ).status,
      ).toBe(200);
      expect(
        (await postJson(`${gw.url}/cancel`, { target: 'warehouse', taskId: 63 }, OPS)).status,
      ).toBe(200);
      expect(
        (await postJson(`${gw.url}/cancel`, { target: 'warehouse', taskId: 64 }, OPS)).status,
      ).toBe(200);
      // Propagation only: the upstream sees the caller's own traceparent and tracestate; without
      // one, a traceparent of a new, unsampled trace, one per request.
      const [traced, fresh, other] = mc.calls;
      expect([traced?.headers.traceparent, traced?.headers.tracestate]).toEqual([
        CALLER.traceparent,
        CALLER.tracestate,
      ]);
      for (const call of [fresh, other]) {
        expect(call?.headers.traceparent).toMatch(NEW_TRACEPARENT);
        expect(call?.headers.tracestate).toBeUndefined();
      }
      const newTrace = traceOf(fresh?.headers.traceparent);
      expect(traceOf(other?.headers.traceparent)).not.toBe(newTrace);
      // The Dyn login made for the request carries its trace as well as the cancel.
      const restCalls = rest.calls.filter(
        (c) => c.path.startsWith('/REST/Task') || c.method === 'POST',
      );
      expect(restCalls.map((c) => [c.method, c.headers.traceparent])).toEqual([
        ['POST', CALLER.traceparent],
        ['DELETE', CALLER.traceparent],
      ]);
      expect(gw.logs.cancels().map((l) => l.traceId)).toEqual([
        CALLER_TRACE,
        CALLER_TRACE,
        newTrace,
        traceOf(other?.headers.traceparent),
      ]);
      expect(await exported()).toEqual([]);
      expect(receiver.exports).toEqual([]);
    },
  );

  it('Dyn SOAP and task reads: every call made for a request carries its new trace, and so do the log lines', async () => {
    const gw = await start({});
    soap.setBehaviour(71, { kind: 'incomplete-job', polls: 1 });
    expect(
      (await postJson(`${gw.url}/cancel`, { target: 'dns-soap', taskId: 71 }, OPS)).status,
    ).toBe(200);
    const read = await fetch(`${gw.url}/tasks/dns-rest/72`, { headers: OPS });
    expect(read.status).toBe(200);

    const soapCalls = soap.calls.filter((c) => c.operation !== 'SessionLogoutRequest');
    expect(soapCalls.map((c) => c.operation)).toEqual([
      'SessionLoginRequest',
      'CancelTaskRequest',
      'GetJobRequest',
      'GetJobRequest',
    ]);
    const cancelTrace = traceOf(soapCalls[0]?.headers.traceparent);
    for (const call of soapCalls) expect(call.headers.traceparent).toMatch(NEW_TRACEPARENT);
    expect(new Set(soapCalls.map((c) => traceOf(c.headers.traceparent)))).toEqual(
      new Set([cancelTrace]),
    );
    expect(gw.logs.cancels().map((l) => l.traceId)).toEqual([cancelTrace]);

    const restCalls = rest.calls.filter((c) => c.method !== 'DELETE');
    expect(restCalls.map((c) => c.method)).toEqual(['POST', 'GET']);
    const readTrace = traceOf(restCalls[0]?.headers.traceparent);
    expect(restCalls.map((c) => c.headers.traceparent)).toEqual([
      expect.stringMatching(NEW_TRACEPARENT),
      restCalls[0]?.headers.traceparent,
    ]);
    expect(readTrace).not.toBe(cancelTrace);
    expect(
      gw.logs
        .lines()
        .filter((l) => l.msg === 'get')
        .map((l) => l.traceId),
    ).toEqual([readTrace]);
  });

  it('batch: the items are in the batch’s new trace, each item’s calls carry it', async () => {
    const gw = await start({});
    const items = [
      { target: 'warehouse', taskId: 81 },
      { target: 'warehouse', taskId: 82 },
    ];
    expect((await postJson(`${gw.url}/cancel/batch`, { items }, OPS)).status).toBe(200);
    const traces = mc.calls.map((c) => traceOf(c.headers.traceparent));
    expect(mc.calls.map((c) => c.headers.traceparent)).toEqual([
      expect.stringMatching(NEW_TRACEPARENT),
      expect.stringMatching(NEW_TRACEPARENT),
    ]);
    expect(traces[1]).toBe(traces[0]);
    expect(gw.logs.cancels().map((l) => l.traceId)).toEqual([traces[0], traces[0]]);
  });
});
