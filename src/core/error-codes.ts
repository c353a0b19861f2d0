/**
 * The stable `error.code` vocabulary. Callers may branch on these; never rename one.
 * Each code names the outcome it belongs to so the table doubles as documentation.
 */
export const ERROR_CODES = {
  // invalid_request (400, or 404/405 for unknown paths and methods)
  INVALID_REQUEST: 'invalid_request',
  MALFORMED_JSON: 'invalid_request',
  UNSUPPORTED_MEDIA_TYPE: 'invalid_request',
  TASK_ID_OUT_OF_RANGE: 'invalid_request',
  NOT_FOUND: 'invalid_request',
  METHOD_NOT_ALLOWED: 'invalid_request',
  IDEMPOTENCY_KEY_REUSED: 'invalid_request',
  // routing and access
  UNKNOWN_TARGET: 'unknown_target',
  PAYLOAD_TOO_LARGE: 'payload_too_large',
  UNAUTHORIZED: 'unauthorized',
  FORBIDDEN: 'forbidden',
  // business answers of the upstream
  TASK_NOT_FOUND: 'not_found',
  GONE_AFTER_TIMEOUT: 'not_found',
  TASK_AT_PORT: 'conflict',
  TASK_NOT_CANCELABLE: 'conflict',
  TASK_ALREADY_FINISHED: 'conflict',
  TASK_BLOCKED: 'conflict',
  IDEMPOTENCY_KEY_IN_FLIGHT: 'conflict',
  UPSTREAM_REJECTED: 'rejected',
  // capacity and health
  RATE_LIMITED: 'rate_limited',
  UPSTREAM_RATE_LIMITED: 'rate_limited',
  UPSTREAM_UNAVAILABLE: 'unavailable',
  UPSTREAM_UNREACHABLE: 'unavailable',
  CIRCUIT_OPEN: 'unavailable',
  BULKHEAD_FULL: 'unavailable',
  DRAINING: 'unavailable',
  UPSTREAM_BUSY: 'unavailable',
  // unusable answers
  UPSTREAM_BAD_RESPONSE: 'upstream_error',
  UPSTREAM_RESPONSE_TOO_LARGE: 'upstream_error',
  UPSTREAM_FAULT: 'upstream_error',
  UPSTREAM_INTERNAL_ERROR: 'upstream_error',
  UPSTREAM_AUTH_FAILED: 'upstream_error',
  // deadlines
  UPSTREAM_TIMEOUT: 'timeout',
  JOB_NOT_CONFIRMED: 'timeout',
  // operations a protocol does not have (reading a task over methodcall)
  OPERATION_NOT_SUPPORTED: 'not_supported',
  // bugs
  INTERNAL_ERROR: 'internal_error',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;
