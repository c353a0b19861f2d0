/** Every outcome a caller can see, and the HTTP status each one answers with. */
export const OUTCOME_HTTP_STATUS = {
  canceled: 200,
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
  internal_error: 500,
} as const satisfies Record<string, number>;

export type Outcome = keyof typeof OUTCOME_HTTP_STATUS;

/** Outcomes a provider can produce for one upstream call. */
export type ProviderOutcomeKind = Extract<
  Outcome,
  | 'canceled'
  | 'not_found'
  | 'conflict'
  | 'rejected'
  | 'rate_limited'
  | 'unavailable'
  | 'timeout'
  | 'upstream_error'
>;

/** Outcomes after which a caller may retry the same request (contract §4). */
const RETRYABLE: ReadonlySet<Outcome> = new Set<Outcome>([
  'rate_limited',
  'unavailable',
  'timeout',
]);

export function isRetryableOutcome(outcome: Outcome): boolean {
  return RETRYABLE.has(outcome);
}

/** Outcomes after which the next provider of a route's chain is tried (contract §6). */
export function allowsFallback(outcome: Outcome): boolean {
  return outcome === 'unavailable' || outcome === 'rate_limited';
}
