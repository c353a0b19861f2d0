import { isOkOutcome, OUTCOME_HTTP_STATUS, type Outcome } from '../../src/core/outcome';

/** Asserts the unified result shape on any gateway answer. */
export function expectUnifiedShape(body: Record<string, unknown>, status: number): void {
  expect(typeof body.ok).toBe('boolean');
  expect(Object.keys(OUTCOME_HTTP_STATUS)).toContain(body.outcome);
  expect(typeof body.retryable).toBe('boolean');
  expect(typeof body.requestId).toBe('string');
  expect(body.ok).toBe(isOkOutcome(body.outcome as Outcome));
  if (body.ok !== true) {
    const error = body.error as { code?: unknown; message?: unknown };
    expect(error.code).toMatch(/^[A-Z][A-Z0-9_]+$/);
    expect(typeof error.message).toBe('string');
  }
  if (status !== 404 && status !== 405) {
    expect(status).toBe(OUTCOME_HTTP_STATUS[body.outcome as keyof typeof OUTCOME_HTTP_STATUS]);
  }
}
