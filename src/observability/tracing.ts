import type { IncomingHttpHeaders } from 'node:http';
import {
  ROOT_CONTEXT,
  defaultTextMapGetter,
  defaultTextMapSetter,
  isSpanContextValid,
  trace,
} from '@opentelemetry/api';
import type { Attributes, Context, Span, Tracer } from '@opentelemetry/api';
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
 * provider, context manager or propagator, so contexts are passed explicitly.
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
  /** The upstream call: `login`, `cancel`, `poll` or `logout`. */
  operation?: 'login' | 'cancel' | 'poll' | 'logout';
  /** Position of the item in a `/cancel/batch` request. */
  batchIndex?: number;
  httpMethod?: string;
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
