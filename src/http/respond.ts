import type { ServerResponse } from 'node:http';
import type { HttpAnswer } from '../core/result';

/** Writes a unified answer: status, JSON body, `Retry-After` where known. */
export function sendAnswer(res: ServerResponse, answer: HttpAnswer): void {
  if (answer.retryAfterSeconds !== undefined) {
    res.setHeader('Retry-After', String(Math.max(1, Math.ceil(answer.retryAfterSeconds))));
  }
  if (answer.headers !== undefined) {
    for (const [name, value] of Object.entries(answer.headers)) res.setHeader(name, value);
  }
  const payload = JSON.stringify(answer.body);
  res.statusCode = answer.status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(payload));
  res.end(payload);
}
