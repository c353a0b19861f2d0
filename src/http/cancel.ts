import type { Request, RequestHandler, Response } from 'express';
import { BatchEnvelopeSchema, CancelRequestSchema } from '../core/request';
import type { UnifiedResult } from '../core/result';
import { deadlineIn, type Deadline } from '../resilience/deadline';
import { dispatchCancel } from '../routing/dispatch';
import { jsonBody } from './body';
import type { HttpContext } from './context';
import { withIdempotencyKey, type CancelResult } from './idempotency';
import { respond, respondJson, statusOf } from './respond';
import {
  admit,
  attemptMetrics,
  finisher,
  forbidden,
  invalidRequest,
  record,
  scopeOf,
  type Refuse,
  type RequestScope,
  type Work,
} from './scope';

/** Items of one batch run at most this many at a time, so one batch cannot fill a bulkhead. */
const BATCH_CONCURRENCY = 16;

/** The server span of one `/cancel/batch` item, under the batch's `POST /cancel/batch`. */
const ITEM_SPAN = 'cancel batch item';

/**
 * One cancel from an already-parsed body: validation, authorization, single-flight, dispatch.
 * `work` is the request's, or the batch item's: its span's trace goes upstream, and the attempts
 * made add to its upstream time.
 */
async function cancelOne(
  ctx: HttpContext,
  scope: RequestScope,
  work: Work,
  requestId: string,
  input: unknown,
  within?: Deadline,
): Promise<CancelResult> {
  const parsed = CancelRequestSchema.safeParse(input);
  if (!parsed.success) return { answer: invalidRequest(requestId, parsed.error, 'request') };
  const { target, taskId, reason } = parsed.data;
  const withReason = reason === undefined ? {} : { reason };
  const refused = forbidden(ctx, scope, requestId, target, taskId, 'cancel on');
  if (refused !== undefined) return { ...withReason, answer: refused };
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
          onAttempt: attemptMetrics(ctx, 'cancel', work),
          trace: work.span.trace,
        },
      ),
    waitMs === undefined ? {} : { waitMs },
  );
  return { answer, ...withReason };
}

/** `POST /cancel`: middleware chain (admit, body) and handler; every answer is logged. */
export function cancelRoute(ctx: HttpContext): RequestHandler[] {
  const finish = finisher(ctx, 'cancel');
  const refuse: Refuse = (res, answer) => {
    finish(res, answer);
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
        () => cancelOne(ctx, scope, scope, scope.requestId, body),
      ),
    );
    finish(res, result.answer, result.reason);
  };
  return [
    admit(ctx, 'POST', '/cancel', refuse),
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
      answered(res, respond(res, invalidRequest(requestId, envelope.error, 'batch')));
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
        const item: Work = { span: scope.span.child(ITEM_SPAN, { batchIndex: i }), upstreamMs: 0 };
        const { answer, reason } = await item.span.run(() =>
          cancelOne(ctx, scope, item, itemId, items[i], deadline),
        );
        const elapsedMs = ctx.clock.now() - itemStarted;
        answer.body.durationMs = Math.round(elapsedMs);
        results[i] = answer.body;
        record(ctx, scope, item, answer, statusOf(answer.body), elapsedMs, 'cancel', reason);
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
    admit(ctx, 'POST', '/cancel/batch', refuse),
    jsonBody((res) => scopeOf(res).active.runtime.loaded.config.server.batchBodyLimitBytes, refuse),
    handle,
  ];
}
