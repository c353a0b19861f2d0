import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Response } from 'express';
import type { ErrorCode } from '../core/error-codes';
import { httpStatusOf } from '../core/outcome';
import { gatewayFailure, type Answer, type UnifiedResult } from '../core/result';

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
  // The drain answers a request it cut off; the handler's own answer may come after that.
  if (res.headersSent) return status;
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
  if (res.headersSent) return;
  res.status(status).json(body);
}

/**
 * The drain's answer to a request still unanswered when its grace ended: 504 `timeout`, since
 * the request may have reached its upstream (a 503 would say the cancel did not happen). Plain
 * `node:http`, as the drain sees the server's responses; the body is the unified shape, the
 * connection closes. Returns false when the request was answered already.
 */
export function respondCutOff(res: ServerResponse): boolean {
  if (res.headersSent || res.writableEnded) return false;
  const header = res.getHeader('X-Request-Id');
  const body = gatewayFailure(
    typeof header === 'string' ? header : randomUUID(),
    'timeout',
    'UPSTREAM_TIMEOUT',
    'the gateway shut down before this request was answered (server.shutdownGraceMs passed); ' +
      'whether a cancel it carried happened is unknown: repeat the request',
  );
  const text = JSON.stringify(body);
  res.writeHead(statusOf(body), {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    Connection: 'close',
  });
  res.end(text);
  return true;
}
