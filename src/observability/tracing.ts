import type { IncomingHttpHeaders } from 'node:http';
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
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
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
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
 * request's context reaches the upstream calls through this module's own context manager
 * (`ServerSpan.run`, `startClientSpan`).
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
 * The async context of the request an upstream call is made for. One AsyncLocalStorage-based
 * manager for the process (the way OpenTelemetry JS propagates context in Node), owned here and
 * not registered as the API's global manager: the SDK never needs an active context (every span
 * is started with an explicit one), and a global registration would leak between the gateways a
 * test process runs. Until the first `ServerSpan.run` with a valid trace, its AsyncLocalStorage
 * is never entered, so a gateway without tracing and without traced callers pays nothing for it.
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

/** The tracer of the gateway a request runs on, beside the request's span in its context. */
const TRACER_KEY = createContextKey('cancel-gateway tracer');

/** A server span (a `/cancel`, a batch, one batch item) and the context its work runs in. */
export interface ServerSpan {
  readonly span: Span;
  /** False for a no-op or unsampled span: its attributes would go nowhere, so skip building them. */
  readonly recording: boolean;
  /** For the log line: the span's trace id, undefined outside any trace. */
  readonly traceId: string | undefined;
  /**
   * Runs `fn` with this span as the active one: the upstream calls it makes (`startClientSpan`)
   * become children of the span and carry its `traceparent`.
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
 * With tracing off the tracer is the API's no-op one: the span then only carries the caller's
 * span context, if any, so the caller's trace id still reaches the log line and the upstream.
 */
export function startServerSpan(
  tracer: Tracer,
  name: string,
  parent: Context,
  fields: SpanFields,
): ServerSpan {
  const span = tracer.startSpan(name, { kind: SpanKind.SERVER }, parent);
  const recording = span.isRecording();
  if (recording) span.setAttributes(spanAttributes(fields));
  const traceId = traceIdOf(span);
  // Outside any trace there is nothing to propagate: no context is entered at all.
  const context =
    traceId === undefined ? undefined : trace.setSpan(parent, span).setValue(TRACER_KEY, tracer);
  let ended = false;
  return {
    span,
    recording,
    traceId,
    run: (fn) => (context === undefined ? fn() : requestContext.with(context, fn)),
    child: (childName, childFields) =>
      startServerSpan(tracer, childName, context ?? parent, childFields),
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
  readonly span: Span;
  /** `traceparent` (and the caller's `tracestate`) naming this span as the upstream's parent. */
  readonly headers: TraceHeaders;
  /** Sets the final attributes and ends the span; `failed` sets the error status. */
  end(fields: SpanFields, failed: boolean): void;
}

/**
 * A client span under the active request's server span (see `ServerSpan.run`), or undefined
 * outside any traced request: a call made at shutdown (the logouts of `close()`) or in a gateway
 * that neither traces nor was called with a trace context has no span and sends no traceparent.
 * `describe` is called only when there is a span to start.
 */
export function startClientSpan(
  describe: () => { name: string; fields: SpanFields },
): ClientSpan | undefined {
  const active = requestContext.active();
  const tracer = active.getValue(TRACER_KEY) as Tracer | undefined;
  if (tracer === undefined) return undefined;
  const { name, fields } = describe();
  const span = tracer.startSpan(name, { kind: SpanKind.CLIENT }, active);
  const recording = span.isRecording();
  if (recording) span.setAttributes(spanAttributes(fields));
  return {
    span,
    headers: injectHeaders(trace.setSpan(active, span), {}),
    end(endFields, failed) {
      if (recording) {
        span.setAttributes(spanAttributes(endFields));
        if (failed) {
          span.setStatus({ code: SpanStatusCode.ERROR, message: endFields.errorType ?? '' });
        }
      }
      span.end();
    },
  };
}
