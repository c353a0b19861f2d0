import type { Request, RequestHandler, Response } from 'express';
import { CancelRequestSchema, toProblems } from '../core/request';
import { gatewayFailure, statusOf, type HttpAnswer } from '../core/result';
import type { Logger } from '../observability/logger';
import { dispatchCancel } from '../routing/dispatch';
import type { Runtime } from '../routing/runtime';
import { readJsonBody } from './body';
import { sendAnswer } from './respond';

/** What the HTTP layer needs from the running gateway. */
export interface GatewayState {
  /** The runtime requests start on; replaced atomically by a reload. */
  runtime(): Runtime;
  /** True once shutdown has begun. */
  isDraining(): boolean;
  logger: Logger;
}

/** `POST /cancel` (contract §4). */
export function cancelHandler(state: GatewayState): RequestHandler {
  return async (req: Request, res: Response) => {
    const started = performance.now();
    const requestId = res.locals.requestId as string;
    const runtime = state.runtime();
    const release = runtime.acquire();
    let reason: string | undefined;
    try {
      let answer: HttpAnswer;
      if (state.isDraining()) {
        answer = {
          status: statusOf('unavailable'),
          body: gatewayFailure(
            requestId,
            'unavailable',
            'DRAINING',
            'the gateway is shutting down; retry on another instance',
          ),
          retryAfterSeconds: 1,
          headers: { Connection: 'close' },
        };
      } else {
        const body = await readJsonBody(req, runtime.loaded.config.server.bodyLimitBytes);
        if (!body.ok) {
          answer = bodyFailure(requestId, body.kind, body.message);
        } else {
          const parsed = CancelRequestSchema.safeParse(body.value);
          if (!parsed.success) {
            const details = toProblems(parsed.error);
            answer = {
              status: statusOf('invalid_request'),
              body: gatewayFailure(
                requestId,
                'invalid_request',
                'INVALID_REQUEST',
                `invalid request: ${details.map((d) => `${d.path} ${d.message}`).join('; ')}`,
                { details },
              ),
            };
          } else {
            reason = parsed.data.reason;
            answer = await dispatchCancel(
              runtime,
              { requestId, target: parsed.data.target, taskId: parsed.data.taskId },
              state.logger,
            );
          }
        }
      }
      const durationMs = Math.round(performance.now() - started);
      answer.body.durationMs = durationMs;
      sendAnswer(res, answer);
      const b = answer.body;
      state.logger[answer.status >= 500 ? 'warn' : 'info'](
        {
          requestId,
          caller: 'anonymous',
          target: b.target,
          provider: b.provider,
          taskId: b.taskId,
          outcome: b.outcome,
          status: answer.status,
          durationMs,
          attempts: b.attempts ?? [],
          errorCode: b.error?.code,
          reason,
        },
        'cancel',
      );
    } finally {
      release();
    }
  };
}

function bodyFailure(
  requestId: string,
  kind: 'media_type' | 'too_large' | 'malformed' | 'aborted',
  message: string,
): HttpAnswer {
  switch (kind) {
    case 'too_large':
      return {
        status: statusOf('payload_too_large'),
        body: gatewayFailure(requestId, 'payload_too_large', 'PAYLOAD_TOO_LARGE', message),
        // The rest of the body is not read; closing is cheaper than draining it.
        headers: { Connection: 'close' },
      };
    case 'media_type':
      return {
        status: statusOf('invalid_request'),
        body: gatewayFailure(requestId, 'invalid_request', 'UNSUPPORTED_MEDIA_TYPE', message, {
          details: [{ path: '(headers).content-type', message: 'must be application/json' }],
        }),
      };
    case 'malformed':
    case 'aborted':
      return {
        status: statusOf('invalid_request'),
        body: gatewayFailure(requestId, 'invalid_request', 'MALFORMED_JSON', message, {
          details: [{ path: '(body)', message }],
        }),
      };
  }
}
