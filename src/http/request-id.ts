import { randomUUID } from 'node:crypto';
import type { RequestHandler, Response } from 'express';

/** A caller's `X-Request-Id` is echoed and logged only when it matches this. */
export const SAFE_ID = /^[A-Za-z0-9._:@-]{1,128}$/;

/** The caller's `X-Request-Id` when it is safe to echo and log, else a fresh UUID. */
export function requestIdFrom(header: string | string[] | undefined): string {
  if (typeof header === 'string' && SAFE_ID.test(header)) return header;
  return randomUUID();
}

/** Middleware for every endpoint: the request id, echoed as `X-Request-Id`. */
export const assignRequestId: RequestHandler = (req, res, next) => {
  const requestId = requestIdFrom(req.headers['x-request-id']);
  res.locals.requestId = requestId;
  res.setHeader('X-Request-Id', requestId);
  next();
};

/** This request's id; a fresh one if `assignRequestId` has not run (an error before routing). */
export function requestIdOf(res: Response): string {
  const id: unknown = res.locals.requestId;
  if (typeof id === 'string') return id;
  const fresh = randomUUID();
  res.locals.requestId = fresh;
  return fresh;
}
