import type { RequestHandler, Response } from 'express';
import type { z } from 'zod';
import { toProblems } from '../core/request';
import { gatewayFailure, type Answer, type UnifiedResult } from '../core/result';
import type { RequestOperation } from '../observability/metrics';
import { extractContext, startServerSpan, type ServerSpan } from '../observability/tracing';
import type { Clock } from '../resilience/clock';
import type { DispatchOperation, DispatchOptions } from '../routing/dispatch';
import type { Caller } from './auth';
import type { ActiveConfig, HttpContext } from './context';
import { requestIdOf } from './request-id';
import { respond, statusOf } from './respond';

/** One answer's work (a request's, or one batch item's): its span and its upstream time. */
export interface Work {
  /** Its server span (`POST /cancel`, `GET /tasks/{target}/{taskId}`, `cancel batch item`). */
  readonly span: ServerSpan;
  /**
   * Milliseconds of the upstream attempts made for this answer (`attemptMetrics` adds them). An
   * answer replayed from memory or an `Idempotency-Key`, or shared with a concurrent duplicate
   * that made the call, made none here: its `attempts` are another request's.
   */
  upstreamMs: number;
}

/**
 * What a request to a task endpoint (`/cancel`, `/cancel/batch`, `GET /tasks/...`) carries from
 * its first middleware to its answer.
 */
export interface RequestScope extends Work {
  requestId: string;
  /** On `clock`, the context's. */
  startedMs: number;
  clock: Clock;
  /** The config this request started on; it finishes on it even if a reload swaps it. */
  active: ActiveConfig;
  caller: Caller | undefined;
}

/** The scope `admit` gave this response, or undefined off the task endpoints. */
export function findScope(res: Response): RequestScope | undefined {
  return res.locals.requestScope as RequestScope | undefined;
}

/** The scope `admit` gave this response. */
export function scopeOf(res: Response): RequestScope {
  const scope = findScope(res);
  if (scope === undefined) throw new Error('internal: request scope missing (admit did not run)');
  return scope;
}

/**
 * `Server-Timing`: the answer's time split into the gateway's own and the upstream's (the time
 * of the upstream attempts it made itself), as Kong's proxy and upstream latency headers split it.
 */
export function serverTiming(elapsedMs: number, upstreamMs: number): string {
  const gatewayMs = Math.max(0, elapsedMs - upstreamMs);
  return `gateway;dur=${gatewayMs.toFixed(1)}, upstream;dur=${upstreamMs.toFixed(1)}`;
}

/** `Server-Timing` of a task endpoint's answer as of now (an answer its handler never wrote). */
export function serverTimingNow(scope: RequestScope): string {
  return serverTiming(scope.clock.now() - scope.startedMs, scope.upstreamMs);
}

/**
 * The one log line (its message is the operation: `cancel` or `get`), the metrics and the end of
 * the server span of one answered request (or batch item). `elapsedMs` is unrounded, on the
 * context's clock.
 */
export function record(
  ctx: HttpContext,
  scope: RequestScope,
  work: Work,
  answer: Answer,
  status: number,
  elapsedMs: number,
  operation: RequestOperation,
  reason?: string,
): void {
  const b: UnifiedResult = answer.body;
  const durationMs = Math.round(elapsedMs);
  // Label values only from the config and fixed vocabularies: never caller text.
  const known = b.target !== undefined && scope.active.runtime.routes.has(b.target);
  const target = known && b.target !== undefined ? b.target : '(none)';
  const { metrics } = ctx;
  metrics.cancelRequests.inc({
    target,
    provider: b.provider ?? '(none)',
    outcome: b.outcome,
    operation,
  });
  metrics.cancelDuration.observe({ target, outcome: b.outcome, operation }, elapsedMs / 1000);
  const { span, upstreamMs } = work;
  metrics.cancelGatewayTime.observe(
    { target, operation },
    Math.max(0, elapsedMs - upstreamMs) / 1000,
  );
  metrics.cancelUpstreamTime.observe({ target, operation }, upstreamMs / 1000);
  if (span.recording) {
    // Only configured names reach the span, as for the labels above.
    const provider =
      b.provider === undefined ? undefined : scope.active.runtime.providers.get(b.provider);
    span.end(
      {
        ...(known && b.target !== undefined ? { target: b.target } : {}),
        ...(provider === undefined
          ? {}
          : { provider: provider.name, protocol: provider.provider.protocol }),
        outcome: b.outcome,
        ...(b.error === undefined ? {} : { code: b.error.code }),
        // A batch item's status is only that of its result: the HTTP answer is the batch's 200.
        ...(work === scope ? { httpStatus: status } : {}),
      },
      status >= 500,
    );
  } else {
    span.end();
  }
  ctx.logger[status >= 500 ? 'warn' : 'info'](
    {
      requestId: b.requestId,
      traceId: span.traceId,
      caller: scope.caller?.id ?? 'anonymous',
      target: b.target,
      provider: b.provider,
      taskId: b.taskId,
      outcome: b.outcome,
      status,
      durationMs,
      attempts: b.attempts ?? [],
      errorCode: b.error?.code,
      reason,
    },
    operation,
  );
}

/**
 * How one request's answer is written and recorded: `durationMs`, `Server-Timing`, the answer,
 * then `record`. An answer the drain's cut-off already gave is still recorded, once.
 */
export function finisher(
  ctx: HttpContext,
  operation: RequestOperation,
): (res: Response, answer: Answer, reason?: string) => void {
  return (res, answer, reason) => {
    const scope = scopeOf(res);
    const elapsedMs = ctx.clock.now() - scope.startedMs;
    answer.body.durationMs = Math.round(elapsedMs);
    if (res.headersSent) {
      record(ctx, scope, scope, answer, statusOf(answer.body), elapsedMs, operation, reason);
      return;
    }
    res.setHeader('Server-Timing', serverTiming(elapsedMs, scope.upstreamMs));
    const status = respond(res, answer);
    record(ctx, scope, scope, answer, status, elapsedMs, operation, reason);
  };
}

/** How a refusal before the handler (draining, auth, body) is answered. */
export type Refuse = (res: Response, answer: Answer) => void;

/**
 * First middleware of the task endpoints, before a body is read: pins the config the request
 * runs on (counted in flight until the response closes), starts the request's server span
 * `<method> <route>` (continuing the caller's `traceparent`), refuses while draining and without
 * a valid key.
 */
export function admit(
  ctx: HttpContext,
  method: 'GET' | 'POST',
  route: string,
  refuse: Refuse,
): RequestHandler {
  const name = `${method} ${route}`;
  const fields = { httpMethod: method, httpRoute: route };
  return (req, res, next) => {
    const startedMs = ctx.clock.now();
    const requestId = requestIdOf(res);
    const active = ctx.active();
    res.once('close', active.runtime.acquire());
    const span = startServerSpan(ctx.tracing.tracer, name, extractContext(req.headers), fields);
    // An answer written past the handlers (an internal error) still ends the span; a caller
    // gone before its answer leaves that to the handler, which still records the outcome.
    if (span.recording) {
      res.once('close', () => {
        if (res.writableFinished) span.end({ httpStatus: res.statusCode }, res.statusCode >= 500);
      });
    }
    const scope: RequestScope = {
      requestId,
      startedMs,
      clock: ctx.clock,
      active,
      caller: undefined,
      span,
      upstreamMs: 0,
    };
    res.locals.requestScope = scope;
    if (ctx.isDraining()) {
      refuse(res, {
        body: gatewayFailure(
          requestId,
          'unavailable',
          'DRAINING',
          'the gateway is shutting down; retry on another instance',
        ),
        retryAfterSeconds: 1,
      });
      return;
    }
    const auth = active.auth.authenticate(req.headers);
    if (!auth.ok) {
      ctx.metrics.authFailures.inc({ reason: auth.reason });
      refuse(res, {
        body: gatewayFailure(requestId, 'unauthorized', 'UNAUTHORIZED', auth.message),
      });
      return;
    }
    scope.caller = auth.caller;
    next();
  };
}

/** 400 `INVALID_REQUEST` listing each problem of `error` (`what`: "request", "batch"). */
export function invalidRequest(requestId: string, error: z.ZodError, what: string): Answer {
  const details = toProblems(error);
  const message = `invalid ${what}: ${details.map((d) => `${d.path}: ${d.message}`).join('; ')}`;
  return {
    body: gatewayFailure(requestId, 'invalid_request', 'INVALID_REQUEST', message, { details }),
  };
}

/**
 * 403 `FORBIDDEN` when the scope's caller may not use `target` (counted), else undefined.
 * `action` completes "caller … may not": `cancel on`, `read tasks on`.
 */
export function forbidden(
  ctx: HttpContext,
  scope: RequestScope,
  requestId: string,
  target: string,
  taskId: string,
  action: string,
): Answer | undefined {
  const { caller } = scope;
  if (caller === undefined || caller.allows(target)) return undefined;
  ctx.metrics.authFailures.inc({ reason: 'forbidden' });
  const message = `caller "${caller.id}" may not ${action} target "${target}"`;
  return { body: gatewayFailure(requestId, 'forbidden', 'FORBIDDEN', message, { target, taskId }) };
}

/**
 * The metrics of every upstream attempt of a dispatch: results by provider and protocol, refused
 * credentials, and the attempt's time labelled with `operation` (`cancel` or `read`); the time
 * is also added to `work`'s upstream time. Only a dispatch this request runs itself reports
 * attempts: a replayed or shared answer adds nothing.
 */
export function attemptMetrics(
  ctx: HttpContext,
  operation: DispatchOperation,
  work: Work,
): NonNullable<DispatchOptions['onAttempt']> {
  const { metrics } = ctx;
  return (entry, outcome, durationMs) => {
    // Whole milliseconds, as `attempts` shows them: the header adds up with the body.
    work.upstreamMs += Math.round(durationMs);
    metrics.upstreamRequests.inc({
      provider: entry.name,
      protocol: entry.provider.protocol,
      result: outcome.outcome,
    });
    if (outcome.error?.code === 'UPSTREAM_AUTH_FAILED') {
      metrics.upstreamAuthFailures.inc({ provider: entry.name });
    }
    metrics.upstreamDuration.observe({ provider: entry.name, operation }, durationMs / 1000);
  };
}
