import {
  INVALID_TRACEID,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  trace,
} from '@opentelemetry/api';
import {
  DEFAULT_SERVICE_NAME,
  SPAN_ATTRIBUTE_NAMES,
  createTracing,
  extractContext,
  injectHeaders,
  spanAttributes,
  startClientSpan,
  startServerSpan,
  traceIdOf,
  type Tracing,
} from '../../src/observability/tracing';
import { soapOperationOf } from '../../src/providers/dyn/soap-http';
import { closedPort } from '../helpers/net';
import { startOtlpReceiver, type OtlpReceiver } from '../helpers/otlp-receiver';

const CALLER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';
const CALLER_HEADERS = {
  traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01`,
  tracestate: 'vendor=opaque',
};

// The SDK reads the OTEL_* variables from process.env, so each test sets them there (jest gives
// each test file its own copy of process.env) and passes process.env, as main.ts does.
const saved = { ...process.env };
function useEnv(vars: Record<string, string>): NodeJS.ProcessEnv {
  const others = Object.entries(saved).filter(([key]) => !key.startsWith('OTEL_'));
  process.env = { ...Object.fromEntries(others), ...vars };
  return process.env;
}

let receiver: OtlpReceiver;
const opened: Tracing[] = [];
function tracingWith(vars: Record<string, string>): Tracing {
  const tracing = createTracing(useEnv(vars));
  opened.push(tracing);
  return tracing;
}

beforeEach(async () => {
  receiver = await startOtlpReceiver();
});
afterEach(async () => {
  await Promise.all(opened.splice(0).map((t) => t.shutdown()));
  await receiver.close();
  process.env = { ...saved };
});

describe('export over OTLP/HTTP', () => {
  it('sends server and client spans with the service name, parent-child links and attributes', async () => {
    const tracing = tracingWith({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });
    expect(tracing.enabled).toBe(true);

    const server = tracing.tracer.startSpan(
      'POST /cancel',
      {
        kind: SpanKind.SERVER,
        attributes: spanAttributes({
          target: 'wh',
          provider: 'wh-main',
          protocol: 'methodcall',
          httpMethod: 'POST',
          httpRoute: '/cancel',
        }),
      },
      ROOT_CONTEXT,
    );
    const client = tracing.tracer.startSpan(
      'methodcall cancel',
      {
        kind: SpanKind.CLIENT,
        attributes: spanAttributes({
          operation: 'cancel',
          serverAddress: '127.0.0.1',
          serverPort: 18081,
        }),
      },
      trace.setSpan(ROOT_CONTEXT, server),
    );
    client.setAttributes(spanAttributes({ httpStatus: 200 }));
    client.end();
    server.setAttributes(spanAttributes({ outcome: 'canceled', httpStatus: 200 }));
    server.setStatus({ code: SpanStatusCode.OK });
    server.end();
    await tracing.shutdown();

    const spans = await receiver.waitForSpans(2);
    expect(spans).toHaveLength(2);
    expect(receiver.exports[0]?.contentType).toBe('application/json');
    const got = Object.fromEntries(spans.map((s) => [s.name, s]));
    const serverSpan = got['POST /cancel']!;
    const clientSpan = got['methodcall cancel']!;
    expect(serverSpan.serviceName).toBe(DEFAULT_SERVICE_NAME);
    expect(serverSpan.resource['telemetry.sdk.language']).toBe('nodejs');
    expect(serverSpan.parentSpanId).toBeUndefined();
    expect(clientSpan.traceId).toBe(serverSpan.traceId);
    expect(clientSpan.parentSpanId).toBe(serverSpan.spanId);
    expect(serverSpan.traceId).toBe(traceIdOf(server));
    expect(serverSpan.kind).toBe(2);
    expect(clientSpan.kind).toBe(3);
    expect(serverSpan.attributes).toEqual({
      'cancel.target': 'wh',
      'cancel.provider': 'wh-main',
      'cancel.protocol': 'methodcall',
      'cancel.outcome': 'canceled',
      'http.request.method': 'POST',
      'http.route': '/cancel',
      'http.response.status_code': 200,
    });
    expect(serverSpan.status.code).toBe(1);
    expect(clientSpan.attributes).toEqual({
      'cancel.upstream.operation': 'cancel',
      'server.address': '127.0.0.1',
      'server.port': 18081,
      'http.response.status_code': 200,
    });
  });

  it('honours the traces endpoint, service name, resource attributes, headers and compression', async () => {
    const tracing = tracingWith({
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: receiver.tracesUrl,
      OTEL_SERVICE_NAME: 'gateway-eu',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=test,service.namespace=ops',
      OTEL_EXPORTER_OTLP_HEADERS: 'x-collector-tenant=ops',
      OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip',
    });
    expect(tracing.enabled).toBe(true);
    tracing.tracer.startSpan('one', {}, ROOT_CONTEXT).end();
    await tracing.shutdown();

    const [span] = await receiver.waitForSpans(1);
    expect(span?.serviceName).toBe('gateway-eu');
    expect(span?.resource).toMatchObject({
      'deployment.environment.name': 'test',
      'service.namespace': 'ops',
    });
    expect(receiver.exports[0]?.headers['x-collector-tenant']).toBe('ops');
    expect(receiver.exports[0]?.contentEncoding).toBe('gzip');
  });

  it('continues the caller’s traceparent and tracestate, and passes them on upstream', async () => {
    const tracing = tracingWith({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });
    const parent = extractContext(CALLER_HEADERS);
    const span = tracing.tracer.startSpan('POST /cancel', { kind: SpanKind.SERVER }, parent);
    expect(traceIdOf(span)).toBe(CALLER_TRACE);

    const upstream = injectHeaders(trace.setSpan(parent, span), { 'content-type': 'text/xml' });
    expect(upstream).toEqual({
      'content-type': 'text/xml',
      traceparent: `00-${CALLER_TRACE}-${span.spanContext().spanId}-01`,
      tracestate: 'vendor=opaque',
    });
    span.end();
    await tracing.shutdown();

    const [received] = await receiver.waitForSpans(1);
    expect(received?.traceId).toBe(CALLER_TRACE);
    expect(received?.parentSpanId).toBe(CALLER_SPAN);
  });

  it('starts a new trace when the caller’s traceparent is absent or malformed', async () => {
    const tracing = tracingWith({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });
    for (const headers of [{}, { traceparent: 'not-a-traceparent' }, { traceparent: '00-zz-01' }]) {
      tracing.tracer.startSpan('POST /cancel', {}, extractContext(headers)).end();
    }
    await tracing.shutdown();

    const spans = await receiver.waitForSpans(3);
    expect(spans.map((s) => s.parentSpanId)).toEqual([undefined, undefined, undefined]);
    expect(new Set(spans.map((s) => s.traceId)).size).toBe(3);
    expect(spans.map((s) => s.traceId)).not.toContain(CALLER_TRACE);
  });

  it('honours OTEL_TRACES_SAMPLER: always_off exports nothing but still propagates', async () => {
    const tracing = tracingWith({
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_TRACES_SAMPLER: 'always_off',
    });
    const parent = extractContext(CALLER_HEADERS);
    const span = tracing.tracer.startSpan('POST /cancel', {}, parent);
    expect(span.isRecording()).toBe(false);
    expect(injectHeaders(trace.setSpan(parent, span), {}).traceparent).toMatch(
      new RegExp(`^00-${CALLER_TRACE}-[0-9a-f]{16}-00$`),
    );
    span.end();
    await tracing.shutdown();
    expect(receiver.exports).toEqual([]);
  });

  it('shuts down without failing when the collector is unreachable, and reports why', async () => {
    const errors: unknown[] = [];
    const tracing = createTracing(
      useEnv({
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${await closedPort()}`,
        OTEL_EXPORTER_OTLP_TIMEOUT: '500',
      }),
      { onError: (error) => errors.push(error) },
    );
    expect(tracing.enabled).toBe(true);
    tracing.tracer.startSpan('lost', {}, ROOT_CONTEXT).end();
    await expect(tracing.shutdown()).resolves.toBeUndefined();
    expect(String(errors[0])).toMatch(/ECONNREFUSED/);
  });
});

describe('without an OTLP endpoint', () => {
  it.each([
    ['no endpoint variable', {}],
    ['OTEL_SDK_DISABLED=true', { OTEL_SDK_DISABLED: 'true' }],
    ['OTEL_TRACES_EXPORTER=none', { OTEL_TRACES_EXPORTER: 'none' }],
  ])('exports nothing: %s', async (_label, vars: Record<string, string>) => {
    const endpoint =
      Object.keys(vars).length === 0 ? {} : { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url };
    const tracing = tracingWith({ OTEL_SERVICE_NAME: 'quiet', ...endpoint, ...vars });
    expect(tracing.enabled).toBe(false);
    const span = tracing.tracer.startSpan('POST /cancel', {}, ROOT_CONTEXT);
    expect(span.isRecording()).toBe(false);
    expect(traceIdOf(span)).toBeUndefined();
    expect(injectHeaders(trace.setSpan(ROOT_CONTEXT, span), {})).toEqual({});
    span.end();
    await tracing.shutdown();
    expect(receiver.exports).toEqual([]);
  });

  it('still carries the caller’s trace id to the log line and upstream', () => {
    const tracing = tracingWith({});
    const parent = extractContext(CALLER_HEADERS);
    const span = tracing.tracer.startSpan('POST /cancel', {}, parent);
    expect(traceIdOf(span)).toBe(CALLER_TRACE);
    expect(injectHeaders(trace.setSpan(parent, span), {})).toEqual(CALLER_HEADERS);
  });
});

describe('spanAttributes', () => {
  it('names each field from the fixed list and leaves absent ones out', () => {
    expect(spanAttributes({})).toEqual({});
    expect(spanAttributes({ target: 'wh', batchIndex: 0, code: 'UPSTREAM_TIMEOUT' })).toEqual({
      'cancel.target': 'wh',
      'cancel.batch.index': 0,
      'cancel.code': 'UPSTREAM_TIMEOUT',
    });
    const names = Object.values(SPAN_ATTRIBUTE_NAMES);
    expect(new Set(names).size).toBe(names.length);
  });
});

describe('server spans and the client spans under them', () => {
  it('gives the spans started inside run() the server span as parent, and nothing outside', async () => {
    const tracing = tracingWith({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });
    const server = startServerSpan(tracing.tracer, 'POST /cancel', extractContext(CALLER_HEADERS), {
      httpRoute: '/cancel',
    });
    expect(server.traceId).toBe(CALLER_TRACE);
    const headers = await server.run(async () => {
      await new Promise<void>((resolve) => setImmediate(resolve));
      const client = startClientSpan(() => ({
        name: 'POST cancel',
        fields: { operation: 'cancel' },
      }));
      client?.end({ httpStatus: 200 }, false);
      return client?.headers;
    });
    expect(
      startClientSpan(() => ({ name: 'POST logout', fields: { operation: 'logout' } })),
    ).toBeUndefined();
    server.end({ outcome: 'timeout', code: 'UPSTREAM_TIMEOUT', httpStatus: 504 }, true);
    server.end({ outcome: 'canceled' }, false);
    await tracing.shutdown();

    const spans = await receiver.waitForSpans(2);
    expect(spans).toHaveLength(2);
    const serverSpan = spans.find((s) => s.name === 'POST /cancel');
    const clientSpan = spans.find((s) => s.name === 'POST cancel');
    expect(serverSpan).toMatchObject({
      parentSpanId: CALLER_SPAN,
      kind: 2,
      status: { code: 2, message: 'UPSTREAM_TIMEOUT' },
      attributes: {
        'http.route': '/cancel',
        'cancel.outcome': 'timeout',
        'cancel.code': 'UPSTREAM_TIMEOUT',
        'error.type': 'UPSTREAM_TIMEOUT',
        'http.response.status_code': 504,
      },
    });
    expect(clientSpan).toMatchObject({ parentSpanId: serverSpan?.spanId, kind: 3 });
    expect(headers).toEqual({
      traceparent: `00-${CALLER_TRACE}-${clientSpan?.spanId}-01`,
      tracestate: 'vendor=opaque',
    });
  });

  it('puts a batch item under its batch', async () => {
    const tracing = tracingWith({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });
    const batch = startServerSpan(tracing.tracer, 'POST /cancel/batch', ROOT_CONTEXT, {});
    const item = batch.child('cancel batch item', { batchIndex: 3 });
    expect(item.traceId).toBe(batch.traceId);
    item.end({ outcome: 'canceled' }, false);
    batch.end({ httpStatus: 200 }, false);
    await tracing.shutdown();
    const spans = await receiver.waitForSpans(2);
    const batchSpan = spans.find((s) => s.name === 'POST /cancel/batch');
    expect(spans.find((s) => s.name === 'cancel batch item')).toMatchObject({
      parentSpanId: batchSpan?.spanId,
      attributes: { 'cancel.batch.index': 3, 'cancel.outcome': 'canceled' },
    });
  });

  it('parents a client span on the request trace it is handed, without any async context', async () => {
    const tracing = tracingWith({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });
    const server = startServerSpan(tracing.tracer, 'POST /cancel', ROOT_CONTEXT, {});
    expect(server.recording).toBe(true);
    const client = startClientSpan(
      () => ({ name: 'GET poll', fields: { operation: 'poll' } }),
      server.trace,
    );
    client?.end({ httpStatus: 200 }, false);
    server.end({ outcome: 'canceled' }, false);
    await tracing.shutdown();

    const spans = await receiver.waitForSpans(2);
    const serverSpan = spans.find((s) => s.name === 'POST /cancel');
    const clientSpan = spans.find((s) => s.name === 'GET poll');
    expect(clientSpan).toMatchObject({
      traceId: server.traceId,
      parentSpanId: serverSpan?.spanId,
      kind: 3,
      attributes: { 'cancel.upstream.operation': 'poll', 'http.response.status_code': 200 },
    });
    expect(client?.headers).toEqual({
      traceparent: `00-${server.traceId}-${clientSpan?.spanId}-01`,
    });
  });

  it('with tracing off, continues a caller’s trace unchanged, and enters no async context', () => {
    const tracing = tracingWith({});
    const describeCall = jest.fn(() => ({ name: 'POST cancel', fields: {} }));
    const traced = startServerSpan(
      tracing.tracer,
      'POST /cancel',
      extractContext(CALLER_HEADERS),
      {},
    );
    expect(traced.recording).toBe(false);
    expect(traced.traceId).toBe(CALLER_TRACE);
    // Handed down, the trace gives the upstream the caller's own traceparent and tracestate.
    expect(startClientSpan(describeCall, traced.trace)?.headers).toEqual(CALLER_HEADERS);
    // Nothing records: run() enters no async context, so a call not handed the trace has none.
    expect(traced.run(() => startClientSpan(describeCall))).toBeUndefined();
    expect(describeCall).not.toHaveBeenCalled();

    const unsampled = `00-${CALLER_TRACE}-${CALLER_SPAN}-00`;
    const notSampled = startServerSpan(
      tracing.tracer,
      'POST /cancel',
      extractContext({ traceparent: unsampled }),
      {},
    );
    expect(startClientSpan(describeCall, notSampled.trace)?.headers).toEqual({
      traceparent: unsampled,
    });
  });

  it('with tracing off and no caller’s trace, starts a new one: random W3C ids, not sampled', () => {
    const tracing = tracingWith({});
    const fresh = startServerSpan(tracing.tracer, 'POST /cancel', extractContext({}), {});
    const malformed = startServerSpan(
      tracing.tracer,
      'POST /cancel',
      extractContext({ traceparent: '00-zz-01' }),
      {},
    );
    expect(fresh.recording).toBe(false);
    for (const id of [fresh.traceId, malformed.traceId]) {
      expect(id).toMatch(/^[0-9a-f]{32}$/);
      expect(id).not.toBe(INVALID_TRACEID);
    }
    expect(malformed.traceId).not.toBe(fresh.traceId);

    const headers = startClientSpan(
      () => ({ name: 'POST cancel', fields: {} }),
      fresh.trace,
    )?.headers;
    expect(headers).toEqual({
      traceparent: expect.stringMatching(new RegExp(`^00-${fresh.traceId}-[0-9a-f]{16}-00$`)),
    });
    // The upstream reads it back as the same trace, with the sampled flag off.
    const upstream = trace.getSpanContext(extractContext(headers ?? {}));
    expect(upstream).toMatchObject({ traceId: fresh.traceId, traceFlags: TraceFlags.NONE });
    expect(upstream?.spanId).toBe(fresh.span.spanContext().spanId);
    // A batch item's span is in its batch's trace.
    expect(fresh.child('cancel batch item', { batchIndex: 0 }).traceId).toBe(fresh.traceId);
  });

  it('with a caller that did not sample, exports nothing and keeps the flag off upstream', async () => {
    const tracing = tracingWith({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });
    const caller = `00-${CALLER_TRACE}-${CALLER_SPAN}-00`;
    const server = startServerSpan(
      tracing.tracer,
      'POST /cancel',
      extractContext({ traceparent: caller }),
      {},
    );
    expect(server.recording).toBe(false);
    expect(server.run(() => startClientSpan(() => ({ name: 'x', fields: {} })))).toBeUndefined();
    const headers = startClientSpan(
      () => ({ name: 'POST cancel', fields: {} }),
      server.trace,
    )?.headers;
    expect(headers?.traceparent).toMatch(new RegExp(`^00-${CALLER_TRACE}-[0-9a-f]{16}-00$`));
    server.end({ outcome: 'canceled' }, false);
    await tracing.shutdown();
    expect(receiver.exports).toEqual([]);
  });
});

describe('soapOperationOf', () => {
  const envelope = (element: string): string =>
    `<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><tns:${element} xmlns:tns="urn:x"><token>t</token></tns:${element}></soap:Body></soap:Envelope>`;
  const DYN_ACTION = '"https://api2.dynect.net/SOAP/"';

  it.each([
    ['SessionLoginRequest', 'login'],
    ['SessionLogoutRequest', 'logout'],
    ['CancelTaskRequest', 'cancel'],
    ['GetJobRequest', 'poll'],
    ['GetOneTaskRequest', 'read'],
    ['GetOneTask', 'read'],
  ])('names %s by the body element (Dyn’s SOAPAction is the same for all)', (element, op) => {
    expect(soapOperationOf(DYN_ACTION, envelope(element))).toBe(op);
  });

  it('prefers a SOAPAction that names the operation, and knows no other operation', () => {
    expect(soapOperationOf('"urn:dyn#GetJob"', envelope('CancelTaskRequest'))).toBe('poll');
    expect(soapOperationOf(undefined, envelope('DeleteZoneRequest'))).toBeUndefined();
    expect(soapOperationOf(DYN_ACTION, '<html>not soap</html>')).toBeUndefined();
  });
});
