import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import { gatewayFailure } from '../core/result';
import type { Logger } from '../observability/logger';
import { requestIdOf } from './request-id';
import { respond } from './respond';

/** Unknown paths: 404 in the unified shape. */
export const notFound: RequestHandler = (req, res) => {
  respond(res, {
    body: gatewayFailure(
      requestIdOf(res),
      'invalid_request',
      'NOT_FOUND',
      `no such endpoint: ${req.method} ${req.path}`,
    ),
  });
};

/** Known path, wrong method: 405 with `Allow`. */
export function methodNotAllowed(allow: string): RequestHandler {
  return (req, res) => {
    res.setHeader('Allow', allow);
    respond(res, {
      body: gatewayFailure(
        requestIdOf(res),
        'invalid_request',
        'METHOD_NOT_ALLOWED',
        `${req.method} is not allowed here; use ${allow}`,
      ),
    });
  };
}

/**
 * The one place a thrown error becomes a response. Express's default page is HTML with a stack
 * trace; this answers the unified JSON shape and logs the stack instead.
 */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    const status = (err as { status?: unknown }).status;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      // Framework-level client errors (a malformed URL, say) are the caller's, not bugs.
      if (!res.headersSent) {
        respond(res, {
          body: gatewayFailure(
            requestIdOf(res),
            'invalid_request',
            'INVALID_REQUEST',
            'the request could not be understood',
          ),
        });
      }
      return;
    }
    internalError(logger, err, req.method, req.path, res);
  };
}

/** A bug: logged with its stack; the caller gets 500 in the unified shape, never the stack. */
function internalError(
  logger: Logger,
  err: unknown,
  method: string,
  path: string,
  res: Response,
): void {
  const requestId = requestIdOf(res);
  logger.error({ err, requestId, method, path }, 'unhandled error');
  if (res.headersSent) {
    res.destroy();
    return;
  }
  respond(res, {
    body: gatewayFailure(
      requestId,
      'internal_error',
      'INTERNAL_ERROR',
      'internal error; it has been logged',
    ),
  });
}
