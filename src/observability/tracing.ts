import type { IncomingHttpHeaders } from 'node:http';
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  createContextKey,
  defaultTextMapGetter,
  defaultTextMapSetter,
  isSpanContextValid,
  trace,
} from '@opentelemetry/api';
import type { Attributes, Context, Span, Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import {
  defaultResource,
  detectResources,
  envDetector,
  resourceFromAttributes,
} from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  RandomIdGenerator,
} from '@opentelemetry/sdk-trace-base';
import {
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_REQUEST_RESEND_COUNT,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_SERVICE_NAME,
} from '@opentelemetry/semantic-conventions';
import type { ErrorCode } from '../core/error-codes';
import type { Outcome } from '../core/outcome';
import type { Protocol } from '../core/protocols';

/** `service.name` when `OTEL_SERVICE_NAME` (or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`) is unset. */
export const DEFAULT_SERVICE_NAME = 'cancel-gateway';

/** The instrumentation scope every gateway span is created under. */
export const TRACER_NAME = 'cancel-gateway';

/** What the gateway traces with: one per gateway, passed down rather than registered globally. */
export interface Tracing {
  /** Starts the gateway's spans; a no-op tracer when `enabled` is false. */
  readonly tracer: Tracer;
  /** True when spans are exported (an OTLP endpoint is configured). */
  readonly enabled: boolean;
  /**
   * Exports the spans still queued, then stops. Never rejects: a collector that cannot be reached
   * (the SDK gives up after `OTEL_EXPORTER_OTLP_TIMEOUT`, 10 s by default) loses those spans and
   * the failure goes to `onError`.
   */
  shutdown(): Promise<void>;
}

/** Where `createTracing` reports what it cannot throw. */
export interface TracingOptions {
  /** The final export failed during `shutdown()` (the spans still queued are lost). */
  onError?: (error: unknown) => void;
}

/**
 * Exports over OTLP/HTTP (JSON) only when `OTEL_EXPORTER_OTLP_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set in `env` (and neither `OTEL_SDK_DISABLED=true` nor
 * `OTEL_TRACES_EXPORTER=none` says otherwise). The SDK reads the other standard variables
 * (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_BSP_*`,
 * `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS|TIMEOUT|COMPRESSION`) from `process.env` itself, so `env`
 * must be `process.env` (tests set it there too). Nothing is registered globally: no tracer
 * provider, context manager or propagator. Spans get their parent context explicitly, and the
 * request's trace reaches its upstream calls in their call context (`RequestTrace`), or through
 * this module's own context manager for a recording request (`ServerSpan.run`).
 */
export function createTracing(env: NodeJS.ProcessEnv, options: TracingOptions = {}): Tracing {
  if (!exportConfigured(env)) {
    // The API's own tracer: a no-op while no SDK is registered globally (the gateway registers
    // none). Its spans still carry the parent's span context, so propagation keeps working.
    return {
      tracer: trace.getTracer(TRACER_NAME),
      enabled: false,
      shutdown: () => Promise.resolve(),
    };
  }
  const resource = defaultResource()
    .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: DEFAULT_SERVICE_NAME }))
    .merge(detectResources({ detectors: [envDetector] }));
  const provider = new BasicTracerProvider({
    resource,
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  return {
    tracer: provider.getTracer(TRACER_NAME),
    enabled: true,
    shutdown: () =>
      provider.shutdown().catch((error: unknown) => {
        options.onError?.(error);
      }),
  };
}

function exportConfigured(env: NodeJS.ProcessEnv): boolean {
  const set = (name: string): boolean => (env[name]?.trim() ?? '') !== '';
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false;
  if (env.OTEL_TRACES_EXPORTER?.trim().toLowerCase() === 'none') return false;
  return set('OTEL_EXPORTER_OTLP_ENDPOINT') || set('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
}

// Stateless: one instance serves every gateway in the process.
const w3c = new W3CTraceContextPropagator();

/** The caller's W3C `traceparent`/`tracestate` as a parent context; the root context without them. */
export function extractContext(headers: IncomingHttpHeaders): Context {
  return w3c.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
}

/** The W3C Trace Context headers `injectHeaders` adds. */
export interface TraceHeaders {
  traceparent?: string;
  tracestate?: string;
}

/**
 * Adds `traceparent` (and `tracestate`) for the span in `context` to `headers` and returns them;
 * adds nothing when `context` holds no valid span context.
 */
export function injectHeaders<H extends Record<string, string>>(
  context: Context,
  headers: H,
): H & TraceHeaders {
  w3c.inject(context, headers, defaultTextMapSetter);
  return headers;
}

/** The span's trace id (32 hex digits), or undefined for a span outside any trace. */
export function traceIdOf(span: Span): string | undefined {
  const spanContext = span.spanContext();
  return isSpanContextValid(spanContext) ? spanContext.traceId : undefined;
}

/** The facts a gateway span may carry: values from the config and fixed vocabularies only. */
export interface SpanFields {
  target?: string;
  provider?: string;
  protocol?: Protocol;
  outcome?: Outcome;
  code?: ErrorCode;
  /** The upstream call: `login`, `cancel`, `poll`, `logout` or `read`. */
  operation?: 'login' | 'cancel' | 'poll' | 'logout' | 'read';
  /** Position of the item in a `/cancel/batch` request. */
  batchIndex?: number;
  httpMethod?: string;
  /** An upstream request sent again after its pooled connection closed under it (1). */
  resendCount?: number;
  httpRoute?: string;
  httpStatus?: number;
  serverAddress?: string;
  serverPort?: number;
  errorType?: string;
}

/**
 * The only attribute names the gateway sets (OpenTelemetry's semantic conventions where one
 * exists, `cancel.*` otherwise). Spans get attributes through `spanAttributes` alone, so no
 * credential, session token, header or request body can reach a span.
 */
export const SPAN_ATTRIBUTE_NAMES = {
  target: 'cancel.target',
  provider: 'cancel.provider',
  protocol: 'cancel.protocol',
  outcome: 'cancel.outcome',
  code: 'cancel.code',
  operation: 'cancel.upstream.operation',
  batchIndex: 'cancel.batch.index',
  httpMethod: ATTR_HTTP_REQUEST_METHOD,
  resendCount: ATTR_HTTP_REQUEST_RESEND_COUNT,
  httpRoute: ATTR_HTTP_ROUTE,
  httpStatus: ATTR_HTTP_RESPONSE_STATUS_CODE,
  serverAddress: ATTR_SERVER_ADDRESS,
  serverPort: ATTR_SERVER_PORT,
  errorType: ATTR_ERROR_TYPE,
} as const satisfies Record<keyof SpanFields, string>;

/** Span attributes for `fields`, named from `SPAN_ATTRIBUTE_NAMES`; absent fields are left out. */
export function spanAttributes(fields: SpanFields): Attributes {
  const attributes: Attributes = {};
  for (const [field, name] of Object.entries(SPAN_ATTRIBUTE_NAMES)) {
    const value = fields[field as keyof SpanFields];
    if (value !== undefined) attributes[name] = value;
  }
  return attributes;
}

/**
 * The trace of the request (or batch item) an upstream call is made for, handed down explicitly
 * in the call's context (`CallContext.trace`, `ExchangeRequest.trace`). Made only by
 * `startServerSpan`; its fields are for this module.
 */
export class RequestTrace {
  #headers: TraceHeaders | undefined;

  /** @internal `context` holds the server span; `recording` is that span's `isRecording()`. */
  constructor(
    readonly context: Context,
    readonly tracer: Tracer,
    readonly recording: boolean,
  ) {}

  /**
   * `traceparent` (and `tracestate`) naming the server span itself: what an upstream call of a
   * request that records nothing sends, since no client span of its would exist anywhere.
   * Built on first use, once per request.
   */
  get headers(): Readonly<TraceHeaders> {
    this.#headers ??= injectHeaders(this.context, {});
    return this.#headers;
  }
}

/**
 * The async context of a recording request, for the upstream calls that do not carry its
 * `RequestTrace` explicitly. One AsyncLocalStorage-based manager for the process (the way
 * OpenTelemetry JS propagates context in Node), owned here and not registered as the API's global
 * manager: the SDK never needs an active context (every span is started with an explicit one),
 * and a global registration would leak between the gateways a test process runs. It is entered
 * only by a request whose span records: on Node 20 and 22 an AsyncLocalStorage, once entered,
 * makes every promise of the process run a hook (about 0.25 µs each, +15 % CPU per cancel), which
 * tracing off must not pay; Node 24's AsyncLocalStorage costs next to nothing.
 */
const requestContext = new AsyncLocalStorageContextManager().enable();

/**
 * Runs `fn` outside any request's trace: background work started while serving a request (the
 * confirmation of a timed-out cancel) must not make its upstream calls children of a span that
 * has ended, nor send that request's `traceparent` for minutes.
 */
export function detached<T>(fn: () => T): T {
  return requestContext.with(ROOT_CONTEXT, fn);
}

/** The `RequestTrace` of a recording request, beside its span in the async context. */
const TRACE_KEY = createContextKey('cancel-gateway request trace');

/** New W3C ids for a trace the gateway starts with tracing off (the SDK's own generator). */
const ids = new RandomIdGenerator();

/** A server span (a `/cancel`, a batch, one batch item) and the context its work runs in. */
export interface ServerSpan {
  readonly span: Span;
  /** False for a no-op or unsampled span: its attributes would go nowhere, so skip building them. */
  readonly recording: boolean;
  /** For the log line: the span's trace id (the caller's, or one the gateway started). */
  readonly traceId: string;
  /** What the request's upstream calls continue: pass it down in their call context. */
  readonly trace: RequestTrace;
  /**
   * Runs `fn` as this span's work. A recording span is made the active one, so an upstream call
   * that does not carry `trace` still becomes its child; otherwise `fn` just runs.
   */
  run<T>(fn: () => T): T;
  /** Starts a server span under this one (a batch item under its batch). */
  child(name: string, fields: SpanFields): ServerSpan;
  /**
   * Sets the final attributes and ends the span; `failed` (a 5xx outcome) sets the error status
   * with the code as `error.type`. Only the first call counts.
   */
  end(fields?: SpanFields, failed?: boolean): void;
}

/**
 * Starts a server span under `parent` (the caller's `extractContext`, or a batch's context).
 * With tracing off the tracer is the API's no-op one: its span carries the caller's span context
 * (flags and `tracestate` included), so the caller's trace reaches the log line and the upstream
 * unchanged; without a caller's trace the span gets new random ids, not sampled (nothing records
 * it), so every request still has a trace id for its log line and a `traceparent` upstream.
 */
export function startServerSpan(
  tracer: Tracer,
  name: string,
  parent: Context,
  fields: SpanFields,
): ServerSpan {
  let span = tracer.startSpan(name, { kind: SpanKind.SERVER }, parent);
  if (!isSpanContextValid(span.spanContext())) {
    span = trace.wrapSpanContext({
      traceId: ids.generateTraceId(),
      spanId: ids.generateSpanId(),
      traceFlags: TraceFlags.NONE,
    });
  }
  const recording = span.isRecording();
  if (recording) span.setAttributes(spanAttributes(fields));
  const context = trace.setSpan(parent, span);
  const requestTrace = new RequestTrace(context, tracer, recording);
  let ended = false;
  return {
    span,
    recording,
    traceId: span.spanContext().traceId,
    trace: requestTrace,
    run: (fn) =>
      recording ? requestContext.with(context.setValue(TRACE_KEY, requestTrace), fn) : fn(),
    child: (childName, childFields) => startServerSpan(tracer, childName, context, childFields),
    end(endFields = {}, failed = false) {
      if (ended) return;
      ended = true;
      if (recording) {
        span.setAttributes(
          spanAttributes(
            failed ? { errorType: endFields.code ?? 'error', ...endFields } : endFields,
          ),
        );
        if (failed) span.setStatus({ code: SpanStatusCode.ERROR, message: endFields.code ?? '' });
      }
      span.end();
    },
  };
}

/** The client span of one upstream call and the headers that continue its trace upstream. */
export interface ClientSpan {
  /** `traceparent` (and the caller's `tracestate`) naming this span as the upstream's parent. */
  readonly headers: Readonly<TraceHeaders>;
  /** Sets the final attributes and ends the span; `failed` sets the error status. */
  end(fields: SpanFields, failed: boolean): void;
}

const noEnd = (): void => {
  // A request that records nothing has no client span to end.
};

/**
 * The client span of an upstream call made for `requestTrace` (or, without it, for the recording
 * request active in the async context), or undefined outside any request: a call made at
 * shutdown (the logouts of `close()`) or by a background confirmation has no span and sends no
 * traceparent. A request that records nothing (tracing off, or not sampled) gets no client span:
 * the upstream is sent the request's own `traceparent`. `describe` is called only when there is a
 * span to start.
 */
export function startClientSpan(
  describe: () => { name: string; fields: SpanFields },
  requestTrace?: RequestTrace,
): ClientSpan | undefined {
  const request =
    requestTrace ?? (requestContext.active().getValue(TRACE_KEY) as RequestTrace | undefined);
  if (request === undefined) return undefined;
  if (!request.recording) return { headers: request.headers, end: noEnd };
  const { name, fields } = describe();
  const span = request.tracer.startSpan(
    name,
    { kind: SpanKind.CLIENT, attributes: spanAttributes(fields) },
    request.context,
  );
  return {
    headers: injectHeaders(trace.setSpan(request.context, span), {}),
    end(endFields, failed) {
      span.setAttributes(spanAttributes(endFields));
      if (failed) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: endFields.errorType ?? '' });
      }
      span.end();
    },
  };
}
