import type { RequestHandler } from 'express';
import { z } from 'zod';
import { TargetSchema, TaskIdSchema } from '../core/request';
import type { Answer } from '../core/result';
import { dispatchRead } from '../routing/dispatch';
import type { HttpContext } from './context';
import {
  admit,
  attemptMetrics,
  finisher,
  forbidden,
  invalidRequest,
  scopeOf,
  type Refuse,
  type RequestScope,
} from './scope';

/** The task read's path as Express matches it. */
export const TASKS_PATH = '/tasks/:target/:taskId';

/** The same path as OpenAPI and the server span name it (`http.route`). */
export const TASKS_ROUTE = '/tasks/{target}/{taskId}';

/**
 * The path's parameters, with the rules and messages of the `/cancel` body's fields: a path
 * segment is always text, so only the string form of a task id can arrive.
 */
const TaskPathSchema = z.strictObject({ target: TargetSchema, taskId: TaskIdSchema });

/**
 * One read: validation, authorization, dispatch. Never through the cancels' single-flight or
 * memory: a read must neither wait on a cancel nor be answered from (or stored as) one.
 */
async function readOne(ctx: HttpContext, scope: RequestScope, params: unknown): Promise<Answer> {
  const { requestId } = scope;
  const parsed = TaskPathSchema.safeParse(params);
  if (!parsed.success) return invalidRequest(requestId, parsed.error, 'request');
  const { target, taskId } = parsed.data;
  const refused = forbidden(ctx, scope, requestId, target, taskId, 'read tasks on');
  if (refused !== undefined) return refused;
  return dispatchRead(
    scope.active.runtime,
    { requestId, target, taskId },
    {
      log: ctx.logger,
      clock: ctx.clock,
      onAttempt: attemptMetrics(ctx, 'read', scope),
      trace: scope.span.trace,
    },
  );
}

/** `GET /tasks/{target}/{taskId}`: admit and handler; every answer is logged as `get`. */
export function tasksRoute(ctx: HttpContext): RequestHandler[] {
  const finish = finisher(ctx, 'get');
  const refuse: Refuse = (res, answer) => {
    finish(res, answer);
  };
  const handle: RequestHandler = async (req, res) => {
    const scope = scopeOf(res);
    // Upstream calls made for this request find its span in the async context.
    const answer = await scope.span.run(() => readOne(ctx, scope, req.params));
    finish(res, answer);
  };
  return [admit(ctx, 'GET', TASKS_ROUTE, refuse), handle];
}
