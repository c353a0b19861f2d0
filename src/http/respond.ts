import type { Response } from 'express';
import type { ErrorCode } from '../core/error-codes';
import { httpStatusOf } from '../core/outcome';
import type { Answer, UnifiedResult } from '../core/result';

/** Headers that belong to an error code wherever it is answered. */
const CODE_HEADERS: Partial<Record<ErrorCode, Readonly<Record<string, string>>>> = {
  // Draining: the caller should reconnect (to another instance), not reuse this connection.
  DRAINING: { Connection: 'close' },
  // The rest of an oversized body is not read; closing is cheaper than draining it.
  PAYLOAD_TOO_LARGE: { Connection: 'close' },
  UNAUTHORIZED: { 'WWW-Authenticate': 'Bearer realm="cancel-gateway"' },
};

/** The HTTP status of a unified result: the one outcome→status table, read in one place. */
export function statusOf(body: UnifiedResult): number {
  return httpStatusOf(body.outcome, body.error?.code);
}

/**
 * Writes an answer: status from the outcome table, `Retry-After` where known, the error code's
 * own headers, the unified JSON body. Returns the status (for the log line).
 */
export function respond(res: Response, answer: Answer): number {
  const status = statusOf(answer.body);
  if (answer.retryAfterSeconds !== undefined) {
    res.setHeader('Retry-After', String(Math.max(1, Math.ceil(answer.retryAfterSeconds))));
  }
  const code = answer.body.error?.code;
  const headers = code === undefined ? undefined : CODE_HEADERS[code];
  if (headers !== undefined) res.set(headers);
  res.status(status).json(answer.body);
  return status;
}

/** Writes a JSON document that is not a unified result (batch envelopes, probes, listings). */
export function respondJson(res: Response, status: number, body: unknown): void {
  res.status(status).json(body);
}
