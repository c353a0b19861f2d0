import { failed, type ProviderOutcome } from '../core/provider-outcome';

/** Socket errors that prove the request never reached the upstream's application. */
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** Errors where the connection died before any answer: treated as not applied, so a retry is safe. */
const RESET_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'ECONNABORTED',
]);

/** Certificate and handshake failures: a trust or client-certificate setup problem, not a blip. */
const TLS_CODE = /^(ERR_SSL_|ERR_TLS_|UNABLE_TO_|CERT_|SELF_SIGNED|DEPTH_ZERO|HOSTNAME_MISMATCH)/;

/** undici errors whose message says what the proxy answered (never a credential). */
const PROXY_MESSAGE_CODES = new Set(['UND_ERR_ABORTED', 'UND_ERR_INVALID_ARG']);

/** The first `code` on an error or its causes (undici wraps socket errors). */
export function errorCode(err: unknown): string | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 4 && current !== null && typeof current === 'object'; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * Classifies a transport failure that happened before any response arrived.
 * A fired deadline is a `timeout` (the cancel may or may not have happened).
 */
export function classifyTransportError(
  err: unknown,
  signal: AbortSignal,
  what: string,
): ProviderOutcome {
  if (signal.aborted) {
    return failed(
      'timeout',
      'UPSTREAM_TIMEOUT',
      `no answer from ${what} before the deadline; whether the cancel happened is unknown`,
    );
  }
  const code = errorCode(err);
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return failed(
      'timeout',
      'UPSTREAM_TIMEOUT',
      `${what} did not answer in time; whether the cancel happened is unknown`,
    );
  }
  if (code !== undefined && NOT_SENT_CODES.has(code)) {
    return failed('unavailable', 'UPSTREAM_UNREACHABLE', `${what} is unreachable (${code})`, {
      notSent: true,
    });
  }
  if (code !== undefined && RESET_CODES.has(code)) {
    return failed(
      'unavailable',
      'UPSTREAM_UNREACHABLE',
      `${what} closed the connection before answering (${code})`,
      { notSent: true },
    );
  }
  if (code !== undefined && TLS_CODE.test(code)) {
    return failed(
      'upstream_error',
      'UPSTREAM_BAD_RESPONSE',
      `TLS with ${what} failed (${code}): check the provider's tls settings (caFile, certFile, keyFile)`,
    );
  }
  const detail =
    code !== undefined && PROXY_MESSAGE_CODES.has(code) && err instanceof Error
      ? `: ${err.message}`
      : '';
  return failed(
    'upstream_error',
    'UPSTREAM_BAD_RESPONSE',
    `request to ${what} failed (${code ?? 'unknown error'})${detail}`,
  );
}
