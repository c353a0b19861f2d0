import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import { gatewayFailure } from '../core/result';
import type { Logger } from '../observability/logger';
import { requestIdOf } from './request-id';
import { respond } from './respond';
import { findScope, serverTimingNow } from './scope';

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
        setServerTiming(res);
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

/** A task endpoint's answer has `Server-Timing` whoever writes it (contract §4: always). */
function setServerTiming(res: Response): void {
  const scope = findScope(res);
  if (scope !== undefined) res.setHeader('Server-Timing', serverTimingNow(scope));
}

/**
 * A bug: logged with its stack (and the request's trace id, on a task endpoint); the caller gets
 * 500 in the unified shape, never the stack.
 */
function internalError(
  logger: Logger,
  err: unknown,
  method: string,
  path: string,
  res: Response,
): void {
  const requestId = requestIdOf(res);
  const traceId = findScope(res)?.span.traceId;
  logger.error({ err, requestId, traceId, method, path }, 'unhandled error');
  if (res.headersSent) {
    res.destroy();
    return;
  }
  setServerTiming(res);
  respond(res, {
    body: gatewayFailure(
      requestId,
      'internal_error',
      'INTERNAL_ERROR',
      'internal error; it has been logged',
    ),
  });
}
