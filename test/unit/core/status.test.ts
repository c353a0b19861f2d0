import { ERROR_CODES } from '../../../src/core/error-codes';
import {
  ERROR_CODE_HTTP_STATUS,
  OUTCOME_HTTP_STATUS,
  httpStatusOf,
} from '../../../src/core/outcome';

describe('the one outcome → HTTP status table', () => {
  it('answers each outcome with its own status when the code has none of its own', () => {
    for (const [outcome, status] of Object.entries(OUTCOME_HTTP_STATUS)) {
      expect(httpStatusOf(outcome as keyof typeof OUTCOME_HTTP_STATUS)).toBe(status);
    }
    expect(httpStatusOf('not_found', 'TASK_NOT_FOUND')).toBe(404);
    expect(httpStatusOf('invalid_request', 'MALFORMED_JSON')).toBe(400);
  });

  it('lets only unknown paths, wrong methods and a reused Idempotency-Key differ', () => {
    expect(httpStatusOf('invalid_request', 'NOT_FOUND')).toBe(404);
    expect(httpStatusOf('invalid_request', 'METHOD_NOT_ALLOWED')).toBe(405);
    expect(httpStatusOf('invalid_request', 'IDEMPOTENCY_KEY_REUSED')).toBe(422);
    expect(Object.keys(ERROR_CODE_HTTP_STATUS).sort()).toEqual([
      'IDEMPOTENCY_KEY_REUSED',
      'METHOD_NOT_ALLOWED',
      'NOT_FOUND',
    ]);
  });

  it('derives every other error code status from the outcome it belongs to', () => {
    for (const [code, outcome] of Object.entries(ERROR_CODES)) {
      if (code in ERROR_CODE_HTTP_STATUS) continue;
      expect(httpStatusOf(outcome, code as keyof typeof ERROR_CODES)).toBe(
        OUTCOME_HTTP_STATUS[outcome],
      );
    }
  });
});
