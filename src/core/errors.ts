import type { ErrorCode } from './error-codes';

/**
 * Thrown only for conditions that are not an upstream's answer: bad configuration, bugs,
 * a request the gateway itself refuses. Expected outcomes are values, not throws.
 */
export class GatewayError extends Error {
  override readonly name = 'GatewayError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
