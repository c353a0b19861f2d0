import type { ServerResponse } from 'node:http';
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { gatewayFailure } from '../core/result';
import type { Logger } from '../observability/logger';
import { requestIdFrom } from './request-id';
import { sendAnswer } from './respond';

function requestIdOf(
  locals: Record<string, unknown>,
  header: string | string[] | undefined,
): string {
  const id = locals.requestId;
  return typeof id === 'string' ? id : requestIdFrom(header);
}

/** Unknown paths: 404 in the unified shape (contract §7). */
export const notFound: RequestHandler = (req, res) => {
  const requestId = requestIdOf(res.locals, req.headers['x-request-id']);
  sendAnswer(res, {
    status: 404,
    body: gatewayFailure(
      requestId,
      'invalid_request',
      'NOT_FOUND',
      `no such endpoint: ${req.method} ${req.path}`,
    ),
  });
};

/** Known path, wrong method: 405 with `Allow`. */
export function methodNotAllowed(allow: string): RequestHandler {
  return (req, res) => {
    const requestId = requestIdOf(res.locals, req.headers['x-request-id']);
    sendAnswer(res, {
      status: 405,
      body: gatewayFailure(
        requestId,
        'invalid_request',
        'METHOD_NOT_ALLOWED',
        `${req.method} is not allowed here; use ${allow}`,
      ),
      headers: { Allow: allow },
    });
  };
}

/**
 * The one place a thrown error becomes a response. Express's default page is HTML with a stack
 * trace; this answers the unified JSON shape and logs the stack instead.
 */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    const requestId = requestIdOf(res.locals, req.headers['x-request-id']);
    const status = (err as { status?: unknown }).status;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      // Framework-level client errors (a malformed URL, say) are the caller's, not bugs.
      if (!res.headersSent) {
        sendAnswer(res, {
          status: 400,
          body: gatewayFailure(
            requestId,
            'invalid_request',
            'INVALID_REQUEST',
            'the request could not be understood',
          ),
        });
      }
      return;
    }
    internalError(logger, err, requestId, req.method, req.path, res);
  };
}

/** A bug: logged with its stack; the caller gets 500 in the unified shape, never the stack. */
export function internalError(
  logger: Logger,
  err: unknown,
  requestId: string,
  method: string | undefined,
  path: string | undefined,
  res: ServerResponse,
): void {
  logger.error({ err, requestId, method, path }, 'unhandled error');
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendAnswer(res, {
    status: 500,
    body: gatewayFailure(
      requestId,
      'internal_error',
      'INTERNAL_ERROR',
      'internal error; it has been logged',
    ),
  });
}
