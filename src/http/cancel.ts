import type { Request, RequestHandler, Response } from 'express';
import { BatchEnvelopeSchema, CancelRequestSchema, toProblems } from '../core/request';
import { gatewayFailure, type Answer, type UnifiedResult } from '../core/result';
import { extractContext, startServerSpan, type ServerSpan } from '../observability/tracing';
import { deadlineIn, type Deadline } from '../resilience/deadline';
import { dispatchCancel } from '../routing/dispatch';
import type { Caller } from './auth';
import { jsonBody } from './body';
import type { ActiveConfig, HttpContext } from './context';
import { withIdempotencyKey, type CancelResult } from './idempotency';
import { requestIdOf } from './request-id';
import { respond, respondJson, statusOf } from './respond';

/** Items of one batch run at most this many at a time, so one batch cannot fill a bulkhead. */
const BATCH_CONCURRENCY = 16;

/** The server span of one `/cancel/batch` item, under the batch's `POST /cancel/batch`. */
const ITEM_SPAN = 'cancel batch item';

/** What a cancel request carries from its first middleware to its answer. */
interface CancelScope {
  requestId: string;
  /** On the context's clock. */
  startedMs: number;
  /** The config this request started on; it finishes on it even if a reload swaps it. */
  active: ActiveConfig;
  caller: Caller | undefined;
  /** The request's server span (`POST /cancel` or `POST /cancel/batch`). */
  span: ServerSpan;
}

function scopeOf(res: Response): CancelScope {
  const scope = res.locals.cancelScope as CancelScope | undefined;
  if (scope === undefined) throw new Error('internal: cancel scope missing (admit did not run)');
  return scope;
}

/** An answer's time split into the gateway's own and the upstream's (the sum of the attempts). */
interface TimeSplit {
  gatewayMs: number;
  upstreamMs: number;
}

function splitOf(elapsedMs: number, attempts: readonly { durationMs: number }[]): TimeSplit {
  const upstreamMs = attempts.reduce((sum, a) => sum + a.durationMs, 0);
  return { gatewayMs: Math.max(0, elapsedMs - upstreamMs), upstreamMs };
}

/**
 * The one log line, the metrics and the end of the server span of one answered cancel (or batch
 * item). `elapsedMs` is unrounded, on the context's clock.
 */
function record(
  ctx: HttpContext,
  scope: CancelScope,
  span: ServerSpan,
  answer: Answer,
  status: number,
  elapsedMs: number,
  reason: string | undefined,
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
    operation: 'cancel',
  });
  metrics.cancelDuration.observe(
    { target, outcome: b.outcome, operation: 'cancel' },
    elapsedMs / 1000,
  );
  const split = splitOf(elapsedMs, b.attempts ?? []);
  metrics.cancelGatewayTime.observe({ target, operation: 'cancel' }, split.gatewayMs / 1000);
  metrics.cancelUpstreamTime.observe({ target, operation: 'cancel' }, split.upstreamMs / 1000);
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
        ...(span === scope.span ? { httpStatus: status } : {}),
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
    'cancel',
  );
}

/** One cancel from an already-parsed body: validation, authorization, single-flight, dispatch. */
async function cancelOne(
  ctx: HttpContext,
  scope: CancelScope,
  requestId: string,
  input: unknown,
  within?: Deadline,
): Promise<CancelResult> {
  const parsed = CancelRequestSchema.safeParse(input);
  if (!parsed.success) {
    const details = toProblems(parsed.error);
    const message = `invalid request: ${details.map((d) => `${d.path}: ${d.message}`).join('; ')}`;
    return {
      answer: {
        body: gatewayFailure(requestId, 'invalid_request', 'INVALID_REQUEST', message, {
          details,
        }),
      },
    };
  }
  const { target, taskId, reason } = parsed.data;
  const withReason = reason === undefined ? {} : { reason };
  const caller = scope.caller;
  if (caller !== undefined && !caller.allows(target)) {
    ctx.metrics.authFailures.inc({ reason: 'forbidden' });
    const message = `caller "${caller.id}" may not cancel on target "${target}"`;
    return {
      ...withReason,
      answer: {
        body: gatewayFailure(requestId, 'forbidden', 'FORBIDDEN', message, { target, taskId }),
      },
    };
  }
  const { metrics } = ctx;
  // A replica waiting on another's call for the same task waits at most the caller's own time.
  const waitMs =
    within === undefined
      ? scope.active.runtime.routes.get(target)?.timeoutMs
      : within.at - ctx.clock.now();
  const answer = await ctx.replay.run(
    target,
    taskId,
    requestId,
    () =>
      dispatchCancel(
        scope.active.runtime,
        { requestId, target, taskId },
        {
          log: ctx.logger,
          clock: ctx.clock,
          ...(within === undefined ? {} : { within }),
          onAttempt: (entry, outcome, durationMs) => {
            metrics.upstreamRequests.inc({
              provider: entry.name,
              protocol: entry.provider.protocol,
              result: outcome.outcome,
            });
            if (outcome.error?.code === 'UPSTREAM_AUTH_FAILED') {
              metrics.upstreamAuthFailures.inc({ provider: entry.name });
            }
            metrics.upstreamDuration.observe(
              { provider: entry.name, operation: 'cancel' },
              durationMs / 1000,
            );
          },
        },
      ),
    waitMs === undefined ? {} : { waitMs },
  );
  return { answer, ...withReason };
}

/**
 * `Server-Timing`: the answer's time split into the gateway's own and the upstream's (the sum of
 * the attempts), as Kong's proxy and upstream latency headers split it.
 */
function serverTiming(elapsedMs: number, attempts: readonly { durationMs: number }[]): string {
  const { gatewayMs, upstreamMs } = splitOf(elapsedMs, attempts);
  return `gateway;dur=${gatewayMs.toFixed(1)}, upstream;dur=${upstreamMs.toFixed(1)}`;
}

/** How a refusal before the handler (draining, auth, body) is answered. */
type Refuse = (res: Response, answer: Answer) => void;

/**
 * First middleware of both cancel endpoints, before the body is read: pins the config the
 * request runs on (counted in flight until the response closes), starts the request's server
 * span (continuing the caller's `traceparent`), refuses while draining and without a valid key.
 */
function admit(ctx: HttpContext, route: string, refuse: Refuse): RequestHandler {
  const name = `POST ${route}`;
  const fields = { httpMethod: 'POST', httpRoute: route };
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
    const scope: CancelScope = { requestId, startedMs, active, caller: undefined, span };
    res.locals.cancelScope = scope;
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

/** `POST /cancel`: middleware chain (admit, body) and handler; every answer is logged. */
export function cancelRoute(ctx: HttpContext): RequestHandler[] {
  const finish = (res: Response, result: CancelResult): void => {
    const scope = scopeOf(res);
    const elapsedMs = ctx.clock.now() - scope.startedMs;
    result.answer.body.durationMs = Math.round(elapsedMs);
    // The drain's cut-off answered this caller already: the line is still logged, once.
    if (res.headersSent) {
      const status = statusOf(result.answer.body);
      record(ctx, scope, scope.span, result.answer, status, elapsedMs, result.reason);
      return;
    }
    res.setHeader('Server-Timing', serverTiming(elapsedMs, result.answer.body.attempts ?? []));
    const status = respond(res, result.answer);
    record(ctx, scope, scope.span, result.answer, status, elapsedMs, result.reason);
  };
  const refuse: Refuse = (res, answer) => {
    finish(res, { answer });
  };
  const handle: RequestHandler = async (req: Request, res) => {
    const scope = scopeOf(res);
    const body: unknown = req.body;
    // Upstream calls made for this request find its span in the async context.
    const result = await scope.span.run(() =>
      withIdempotencyKey(
        ctx.store,
        scope.active.runtime,
        req.headers['idempotency-key'],
        scope.caller?.id ?? 'anonymous',
        scope.requestId,
        body,
        () => cancelOne(ctx, scope, scope.requestId, body),
      ),
    );
    finish(res, result);
  };
  return [
    admit(ctx, '/cancel', refuse),
    jsonBody((res) => scopeOf(res).active.runtime.loaded.config.server.bodyLimitBytes, refuse),
    handle,
  ];
}

/**
 * `POST /cancel/batch`: items in order, one deadline, a summary by outcome; each item logged.
 * The batch has its server span, and each item a server span under it.
 */
export function batchRoute(ctx: HttpContext): RequestHandler[] {
  const answered = (res: Response, status: number): void => {
    scopeOf(res).span.end({ httpStatus: status }, status >= 500);
  };
  const refuse: Refuse = (res, answer) => {
    answered(res, respond(res, answer));
  };
  const handle: RequestHandler = async (req: Request, res) => {
    const scope = scopeOf(res);
    const { requestId } = scope;
    const envelope = BatchEnvelopeSchema.safeParse(req.body);
    if (!envelope.success) {
      const details = toProblems(envelope.error);
      const message = `invalid batch: ${details.map((d) => `${d.path}: ${d.message}`).join('; ')}`;
      const status = respond(res, {
        body: gatewayFailure(requestId, 'invalid_request', 'INVALID_REQUEST', message, {
          details,
        }),
      });
      answered(res, status);
      return;
    }
    const items = envelope.data.items;
    const { server } = scope.active.runtime.loaded.config;
    const deadline = deadlineIn(server.requestTimeoutMs, ctx.clock);
    const results = new Array<UnifiedResult>(items.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < items.length; i = next++) {
        const itemStarted = ctx.clock.now();
        const itemId = `${requestId}.${i}`;
        const span = scope.span.child(ITEM_SPAN, { batchIndex: i });
        const { answer, reason } = await span.run(() =>
          cancelOne(ctx, scope, itemId, items[i], deadline),
        );
        const elapsedMs = ctx.clock.now() - itemStarted;
        answer.body.durationMs = Math.round(elapsedMs);
        results[i] = answer.body;
        record(ctx, scope, span, answer, statusOf(answer.body), elapsedMs, reason);
      }
    };
    try {
      await Promise.all(
        Array.from({ length: Math.min(BATCH_CONCURRENCY, items.length) }, () => worker()),
      );
    } finally {
      deadline.dispose();
    }
    const summary: Record<string, number> = {};
    for (const r of results) summary[r.outcome] = (summary[r.outcome] ?? 0) + 1;
    respondJson(res, 200, {
      requestId,
      results,
      summary,
      durationMs: Math.round(ctx.clock.now() - scope.startedMs),
    });
    answered(res, 200);
  };
  return [
    admit(ctx, '/cancel/batch', refuse),
    jsonBody((res) => scopeOf(res).active.runtime.loaded.config.server.batchBodyLimitBytes, refuse),
    handle,
  ];
}
