import type { Dispatcher } from 'undici';
import { startClientSpan, type ClientSpan, type RequestTrace } from '../observability/tracing';
import { errorCode } from './transport-errors';

export type ResponseHeaders = Record<string, string | string[] | undefined>;

/** How one HTTP exchange with an upstream ended. */
export type Exchange =
  /** A complete answer, its body as UTF-8 text. */
  | { kind: 'answered'; status: number; headers: ResponseHeaders; text: string }
  /** The answer was (or said it would be) larger than the cap; its socket was dropped. */
  | { kind: 'too_large'; status: number }
  /** The connection ended in the middle of the answer's body. */
  | { kind: 'cut'; status: number; error: unknown }
  /** No answer: refused, reset, or the signal fired before the answer was complete. */
  | { kind: 'failed'; error: unknown };

/** What an upstream call is for: names its client span. */
export type UpstreamOperation = 'login' | 'cancel' | 'poll' | 'logout' | 'read';

export interface ExchangeRequest {
  /** What the call is for (names its client span); the SOAP client derives it from the body. */
  operation?: UpstreamOperation;
  /** `scheme://host[:port]` of the upstream; the dispatcher picks (or proxies) its connection. */
  origin: string;
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  headers: Record<string, string>;
  body: string | null;
  /** The deadline: when it fires the exchange ends at once and the socket is dropped. */
  signal: AbortSignal;
  /** Bodies larger than this are not read (the socket is dropped). */
  maxBytes: number;
  /**
   * The trace of the request the call is made for (its `CallContext.trace`): the call sends its
   * `traceparent`. Without it, a recording request active in the async context is continued.
   */
  trace?: RequestTrace;
}

class TooLarge extends Error {
  override readonly name = 'TooLarge';
}

/** Why the signal fired, as the Error undici's abort wants. */
function reasonOf(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error(String(reason));
}

/**
 * A pooled socket the server closed while it sat idle (Dyn's nginx closes idle keep-alive
 * connections; the close can cross a request just written): the request failed before any byte
 * of an answer came back, so it never reached the upstream's application.
 */
const CLOSED_UNDER_US = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET']);

/**
 * One request/response through an undici dispatcher, read into a string with a size cap. A request
 * whose connection closed before any byte of an answer arrived is sent once more at once, on
 * another connection: that is how a socket the server closed while idle shows, and the cancel
 * certainly did not run. A connection cut after the answer began is never retried.
 *
 * Made for a request, each request sent (the resend too) carries its `traceparent`/`tracestate`,
 * naming a client span of its own under the request's server span when that span records.
 */
export async function exchange(
  dispatcher: Dispatcher,
  request: ExchangeRequest,
): Promise<Exchange> {
  const first = await tracedExchange(dispatcher, request, 0);
  if (first.kind !== 'failed' || request.signal.aborted) return first;
  const code = errorCode(first.error);
  if (code === undefined || !CLOSED_UNDER_US.has(code)) return first;
  return tracedExchange(dispatcher, request, 1);
}

/** The origin's host and port for `server.address`/`server.port`, parsed once per origin. */
const servers = new Map<string, { address: string; port: number }>();
function serverOf(origin: string): { address: string; port: number } {
  let server = servers.get(origin);
  if (server === undefined) {
    const url = new URL(origin);
    const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
    // IPv6 literals keep their brackets in URL.hostname; semantic conventions want them bare.
    server = { address: url.hostname.replace(/^\[(.*)\]$/, '$1'), port };
    // Origins come from the config: a handful per gateway, so the map stays small.
    servers.set(origin, server);
  }
  return server;
}

/** `exchangeOnce` with the request's trace context (in a client span when it records), if any. */
async function tracedExchange(
  dispatcher: Dispatcher,
  request: ExchangeRequest,
  resend: number,
): Promise<Exchange> {
  const span = startClientSpan(() => {
    const server = serverOf(request.origin);
    return {
      name: `${request.method} ${request.operation ?? 'call'}`,
      fields: {
        ...(request.operation === undefined ? {} : { operation: request.operation }),
        httpMethod: request.method,
        serverAddress: server.address,
        serverPort: server.port,
        ...(resend > 0 ? { resendCount: resend } : {}),
      },
    };
  }, request.trace);
  if (span === undefined) return exchangeOnce(dispatcher, request);
  const result = await exchangeOnce(dispatcher, {
    ...request,
    headers: { ...request.headers, ...span.headers },
  });
  endClientSpan(span, result);
  return result;
}

/** A client span's status: an error for no answer, a cut or oversized one, or a 5xx. */
function endClientSpan(span: ClientSpan, result: Exchange): void {
  switch (result.kind) {
    case 'answered':
      span.end(
        {
          httpStatus: result.status,
          ...(result.status >= 500 ? { errorType: String(result.status) } : {}),
        },
        result.status >= 500,
      );
      return;
    case 'too_large':
      span.end({ httpStatus: result.status, errorType: 'response_too_large' }, true);
      return;
    case 'cut':
      span.end({ httpStatus: result.status, errorType: errorCode(result.error) ?? 'cut' }, true);
      return;
    case 'failed':
      span.end({ errorType: errorCode(result.error) ?? errorNameOf(result.error) }, true);
  }
}

/** An error's class name (`AbortError`, `TimeoutError`): never its message, which may hold data. */
function errorNameOf(error: unknown): string {
  return error instanceof Error ? error.name : 'error';
}

/**
 * One request/response through an undici pool, read into a string with a size cap.
 *
 * This is undici's `dispatch` with a handler that collects the body chunks itself: `request()`
 * would wrap every answer in a Readable stream and an async iterator only for this function to
 * read it whole, which was a tenth of the gateway's allocations per cancel. The semantics are
 * those of `request()` + reading the body: 1xx answers are skipped, a fired signal aborts the
 * exchange (and settles it at once, even while the request still waits for a pooled connection).
 */
function exchangeOnce(dispatcher: Dispatcher, request: ExchangeRequest): Promise<Exchange> {
  const { signal, maxBytes } = request;
  if (signal.aborted) return Promise.resolve({ kind: 'failed', error: reasonOf(signal) });
  return new Promise((resolve) => {
    let controller: Dispatcher.DispatchController | undefined;
    let status = 0;
    let headers: ResponseHeaders = {};
    let chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (result: Exchange): void => {
      if (settled) return;
      settled = true;
      chunks = [];
      signal.removeEventListener('abort', onAbort);
      resolve(result);
    };
    const fail = (error: unknown): void => {
      finish(status === 0 ? { kind: 'failed', error } : { kind: 'cut', status, error });
    };
    const tooLarge = (c: Dispatcher.DispatchController): void => {
      finish({ kind: 'too_large', status });
      c.abort(new TooLarge(`the answer is larger than ${maxBytes} bytes`));
    };
    function onAbort(): void {
      const reason = reasonOf(signal);
      fail(reason);
      controller?.abort(reason);
    }
    signal.addEventListener('abort', onAbort, { once: true });
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        // Still queued when the signal fired: the exchange has settled; never send it.
        if (settled) c.abort(reasonOf(signal));
      },
      onResponseStart(c, statusCode, responseHeaders) {
        if (statusCode < 200) return;
        status = statusCode;
        headers = responseHeaders;
        const declared = Number(responseHeaders['content-length']);
        if (Number.isFinite(declared) && declared > maxBytes) tooLarge(c);
      },
      onResponseData(c, chunk) {
        if (settled) return;
        size += chunk.length;
        if (size > maxBytes) {
          tooLarge(c);
          return;
        }
        chunks.push(chunk);
      },
      onResponseEnd() {
        if (settled) return;
        const text = Buffer.concat(chunks, size).toString('utf8');
        finish({ kind: 'answered', status, headers, text });
      },
      onResponseError(_c, error) {
        fail(error);
      },
    };
    dispatcher.dispatch(
      {
        origin: request.origin,
        method: request.method,
        path: request.path,
        headers: request.headers,
        body: request.body,
      },
      handler,
    );
  });
}
