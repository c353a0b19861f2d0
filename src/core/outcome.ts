import type { ErrorCode } from './error-codes';

/** Every outcome a caller can see, and the HTTP status each one answers with. */
export const OUTCOME_HTTP_STATUS = {
  canceled: 200,
  found: 200,
  not_found: 404,
  conflict: 409,
  rejected: 422,
  invalid_request: 400,
  unknown_target: 422,
  payload_too_large: 413,
  unauthorized: 401,
  forbidden: 403,
  rate_limited: 429,
  unavailable: 503,
  upstream_error: 502,
  timeout: 504,
  not_supported: 501,
  internal_error: 500,
} as const satisfies Record<string, number>;

export type Outcome = keyof typeof OUTCOME_HTTP_STATUS;

/**
 * The few error codes whose status is not their outcome's: unknown paths and methods are
 * `invalid_request` but answer 404/405 as HTTP says, and a reused Idempotency-Key answers 422.
 */
export const ERROR_CODE_HTTP_STATUS = {
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  IDEMPOTENCY_KEY_REUSED: 422,
} as const satisfies Partial<Record<ErrorCode, number>>;

/** The HTTP status of an answer: its error code's own status, else its outcome's. */
export function httpStatusOf(outcome: Outcome, code?: ErrorCode): number {
  if (code !== undefined && code in ERROR_CODE_HTTP_STATUS) {
    return ERROR_CODE_HTTP_STATUS[code as keyof typeof ERROR_CODE_HTTP_STATUS];
  }
  return OUTCOME_HTTP_STATUS[outcome];
}

/** Outcomes a provider can produce for one upstream call (`found` only for a read). */
export type ProviderOutcomeKind = Extract<
  Outcome,
  | 'canceled'
  | 'found'
  | 'not_found'
  | 'conflict'
  | 'rejected'
  | 'rate_limited'
  | 'unavailable'
  | 'timeout'
  | 'upstream_error'
>;

/** The outcomes that answer `ok: true`: the cancel happened, or the read found the task. */
export type OkOutcome = Extract<Outcome, 'canceled' | 'found'>;

/** True for `canceled` and `found`; every other outcome answers `ok: false`. */
export function isOkOutcome(outcome: Outcome): outcome is OkOutcome {
  return outcome === 'canceled' || outcome === 'found';
}

/** Outcomes after which a caller may retry the same request. */
const RETRYABLE: ReadonlySet<Outcome> = new Set<Outcome>([
  'rate_limited',
  'unavailable',
  'timeout',
]);

/** Whether `retryable` defaults to true for this outcome. */
export function isRetryableOutcome(outcome: Outcome): boolean {
  return RETRYABLE.has(outcome);
}

/** Outcomes after which the next provider of a route's chain is tried. */
export function allowsFallback(outcome: Outcome): boolean {
  return outcome === 'unavailable' || outcome === 'rate_limited';
}
