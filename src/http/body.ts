import type { IncomingMessage } from 'node:http';
import type { RequestHandler, Response } from 'express';
import { gatewayFailure, type Answer } from '../core/result';
import { requestIdOf } from './request-id';

type BodyFailureKind = 'media_type' | 'too_large' | 'malformed' | 'aborted';

export type BodyResult =
  { ok: true; value: unknown } | { ok: false; kind: BodyFailureKind; message: string };

/** True for `application/json` and `application/*+json`, with no charset other than UTF-8. */
export function isJsonContentType(header: string | undefined): boolean {
  if (header === undefined) return false;
  if (header === 'application/json') return true;
  const [type = '', ...params] = header.toLowerCase().split(';');
  const media = type.trim();
  if (media !== 'application/json' && !/^application\/[a-z0-9.+-]+\+json$/.test(media))
    return false;
  return params.every((p) => {
    const [key, value] = p.split('=').map((s) => s.trim());
    return key !== 'charset' || value === 'utf-8' || value === 'utf8' || value === '"utf-8"';
  });
}

/**
 * Reads and parses a JSON request body up to `limitBytes`. Oversized bodies are refused from
 * Content-Length before reading, or as soon as the running total passes the limit.
 */
export function readJsonBody(req: IncomingMessage, limitBytes: number): Promise<BodyResult> {
  if (!isJsonContentType(req.headers['content-type'])) {
    return Promise.resolve({
      ok: false,
      kind: 'media_type',
      message: 'Content-Type must be application/json (UTF-8)',
    });
  }
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limitBytes) {
    return Promise.resolve(tooLarge(limitBytes));
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (result: BodyResult): void => {
      if (settled) return;
      settled = true;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
      resolve(result);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limitBytes) {
        finish(tooLarge(limitBytes));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      const text = Buffer.concat(chunks, size).toString('utf8');
      if (text.trim() === '') {
        finish({ ok: false, kind: 'malformed', message: 'the request body is empty' });
        return;
      }
      try {
        finish({ ok: true, value: JSON.parse(text) as unknown });
      } catch {
        finish({ ok: false, kind: 'malformed', message: 'the request body is not valid JSON' });
      }
    };
    const onError = (): void => {
      finish({ ok: false, kind: 'aborted', message: 'the request body could not be read' });
    };
    const onAborted = onError;
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
}

function tooLarge(limitBytes: number): BodyResult {
  return {
    ok: false,
    kind: 'too_large',
    message: `the request body is larger than ${limitBytes} bytes`,
  };
}

/** The unified answer for a body that could not be read as JSON. */
function bodyFailure(requestId: string, kind: BodyFailureKind, message: string): Answer {
  switch (kind) {
    case 'too_large':
      return {
        body: gatewayFailure(requestId, 'payload_too_large', 'PAYLOAD_TOO_LARGE', message),
      };
    case 'media_type':
      return {
        body: gatewayFailure(requestId, 'invalid_request', 'UNSUPPORTED_MEDIA_TYPE', message, {
          details: [{ path: '(headers).content-type', message: 'must be application/json' }],
        }),
      };
    case 'malformed':
    case 'aborted':
      return {
        body: gatewayFailure(requestId, 'invalid_request', 'MALFORMED_JSON', message, {
          details: [{ path: '(body)', message }],
        }),
      };
  }
}

/**
 * Express middleware: reads the JSON body into `req.body` (limit read per request, so a reload
 * applies at once), or hands the failure to `refuse`. Ours rather than `express.json()`:
 * body-parser reads an oversized body to its end before reporting 413 (a client can make the
 * gateway read gigabytes), and parses an empty body as `{}`; this refuses from Content-Length
 * before reading, stops at the limit, and calls an empty body what it is.
 */
export function jsonBody(
  limitOf: (res: Response) => number,
  refuse: (res: Response, answer: Answer) => void,
): RequestHandler {
  return async (req, res, next) => {
    const result = await readJsonBody(req, limitOf(res));
    if (result.ok) {
      req.body = result.value;
      next();
      return;
    }
    refuse(res, bodyFailure(requestIdOf(res), result.kind, result.message));
  };
}
