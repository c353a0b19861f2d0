import type { Request, RequestHandler, Response } from 'express';
import { BatchEnvelopeSchema, CancelRequestSchema, toProblems } from '../core/request';
import { gatewayFailure, type Answer, type UnifiedResult } from '../core/result';
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

/** What a cancel request carries from its first middleware to its answer. */
interface CancelScope {
  requestId: string;
  /** On the context's clock. */
  startedMs: number;
  /** The config this request started on; it finishes on it even if a reload swaps it. */
  active: ActiveConfig;
  caller: Caller | undefined;
}

function scopeOf(res: Response): CancelScope {
  const scope = res.locals.cancelScope as CancelScope | undefined;
  if (scope === undefined) throw new Error('internal: cancel scope missing (admit did not run)');
  return scope;
}

/** The one log line and the metrics of one answered cancel (or batch item). */
function record(
  ctx: HttpContext,
  scope: CancelScope,
  answer: Answer,
  status: number,
  durationMs: number,
  reason: string | undefined,
): void {
  const b: UnifiedResult = answer.body;
  // Label values only from the config and fixed vocabularies: never caller text.
  const known = b.target !== undefined && scope.active.runtime.routes.has(b.target);
  const target = known && b.target !== undefined ? b.target : '(none)';
  ctx.metrics.cancelRequests.inc({ target, provider: b.provider ?? '(none)', outcome: b.outcome });
  ctx.metrics.cancelDuration.observe({ target, outcome: b.outcome }, durationMs / 1000);
  ctx.logger[status >= 500 ? 'warn' : 'info'](
    {
      requestId: b.requestId,
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
  const answer = await ctx.replay.run(target, taskId, requestId, () =>
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
  );
  return { answer, ...withReason };
}

/**
 * `Server-Timing`: the answer's time split into the gateway's own and the upstream's (the sum of
 * the attempts), as Kong's proxy and upstream latency headers split it.
 */
function serverTiming(elapsedMs: number, attempts: readonly { durationMs: number }[]): string {
  const upstreamMs = attempts.reduce((sum, a) => sum + a.durationMs, 0);
  const gatewayMs = Math.max(0, elapsedMs - upstreamMs);
  return `gateway;dur=${gatewayMs.toFixed(1)}, upstream;dur=${upstreamMs.toFixed(1)}`;
}

/** How a refusal before the handler (draining, auth, body) is answered. */
type Refuse = (res: Response, answer: Answer) => void;

/**
 * First middleware of both cancel endpoints, before the body is read: pins the config the
 * request runs on (counted in flight until the response closes), refuses while draining and
 * without a valid key.
 */
function admit(ctx: HttpContext, refuse: Refuse): RequestHandler {
  return (req, res, next) => {
    const startedMs = ctx.clock.now();
    const requestId = requestIdOf(res);
    const active = ctx.active();
    res.once('close', active.runtime.acquire());
    const scope: CancelScope = { requestId, startedMs, active, caller: undefined };
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
    const durationMs = Math.round(elapsedMs);
    result.answer.body.durationMs = durationMs;
    res.setHeader('Server-Timing', serverTiming(elapsedMs, result.answer.body.attempts ?? []));
    const status = respond(res, result.answer);
    record(ctx, scope, result.answer, status, durationMs, result.reason);
  };
  const refuse: Refuse = (res, answer) => {
    finish(res, { answer });
  };
  const handle: RequestHandler = async (req: Request, res) => {
    const scope = scopeOf(res);
    const body: unknown = req.body;
    const result = await withIdempotencyKey(
      ctx.store,
      scope.active.runtime,
      req.headers['idempotency-key'],
      scope.caller?.id ?? 'anonymous',
      scope.requestId,
      body,
      () => cancelOne(ctx, scope, scope.requestId, body),
    );
    finish(res, result);
  };
  return [
    admit(ctx, refuse),
    jsonBody((res) => scopeOf(res).active.runtime.loaded.config.server.bodyLimitBytes, refuse),
    handle,
  ];
}

/** `POST /cancel/batch`: items in order, one deadline, a summary by outcome; each item logged. */
export function batchRoute(ctx: HttpContext): RequestHandler[] {
  const refuse: Refuse = (res, answer) => {
    respond(res, answer);
  };
  const handle: RequestHandler = async (req: Request, res) => {
    const scope = scopeOf(res);
    const { requestId } = scope;
    const envelope = BatchEnvelopeSchema.safeParse(req.body);
    if (!envelope.success) {
      const details = toProblems(envelope.error);
      const message = `invalid batch: ${details.map((d) => `${d.path}: ${d.message}`).join('; ')}`;
      respond(res, {
        body: gatewayFailure(requestId, 'invalid_request', 'INVALID_REQUEST', message, {
          details,
        }),
      });
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
        const { answer, reason } = await cancelOne(ctx, scope, itemId, items[i], deadline);
        const durationMs = Math.round(ctx.clock.now() - itemStarted);
        answer.body.durationMs = durationMs;
        results[i] = answer.body;
        record(ctx, scope, answer, statusOf(answer.body), durationMs, reason);
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
  };
  return [
    admit(ctx, refuse),
    jsonBody((res) => scopeOf(res).active.runtime.loaded.config.server.batchBodyLimitBytes, refuse),
    handle,
  ];
}
