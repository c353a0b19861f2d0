import { CancelRequestSchema, toProblems } from '../../../src/core/request';
import { OUTCOME_HTTP_STATUS, isRetryableOutcome } from '../../../src/core/outcome';

function parse(body: unknown) {
  return CancelRequestSchema.safeParse(body);
}

describe('CancelRequest: taskId', () => {
  it.each([
    ['a decimal string', '39120953', '39120953'],
    ['a JSON integer', 39120953, '39120953'],
    ['the smallest id', '1', '1'],
    ['a 20-digit string', '12345678901234567890', '12345678901234567890'],
    ['the largest safe integer', Number.MAX_SAFE_INTEGER, String(Number.MAX_SAFE_INTEGER)],
  ])('accepts %s', (_name, taskId, normalised) => {
    const result = parse({ target: 'dns', taskId });
    expect(result.success).toBe(true);
    expect(result.data?.taskId).toBe(normalised);
  });

  it.each([
    ['zero', '0'],
    ['zero as a number', 0],
    ['a negative number', -5],
    ['a plus sign', '+5'],
    ['a minus sign', '-5'],
    ['a leading zero', '0123'],
    ['a leading space', ' 123'],
    ['a trailing space', '123 '],
    ['an inner space', '12 3'],
    ['a decimal point', '1.5'],
    ['a fractional number', 1.5],
    ['an exponent', '1e5'],
    ['hex', '0x10'],
    ['an empty string', ''],
    ['a path traversal', '1/../../x'],
    ['XML', '1<x/>'],
    ['a 21-digit string', '123456789012345678901'],
    ['an unsafe integer', 2 ** 60],
    ['a boolean', true],
    ['null', null],
    ['an array', ['1']],
    ['an object', { id: 1 }],
    ['unicode digits', '١٢٣'],
  ])('rejects %s', (_name, taskId) => {
    const result = parse({ target: 'dns', taskId });
    expect(result.success).toBe(false);
    const problems = toProblems(result.error!);
    expect(problems[0]?.path).toBe('taskId');
  });
});

describe('CancelRequest: other fields', () => {
  it('requires target and taskId, naming each', () => {
    const result = parse({});
    expect(result.success).toBe(false);
    const problems = toProblems(result.error!);
    expect(problems).toEqual(
      expect.arrayContaining([
        { path: 'target', message: 'is required' },
        { path: 'taskId', message: 'is required' },
      ]),
    );
  });

  it('rejects any extra field', () => {
    const result = parse({ target: 'dns', taskId: '1', priority: 1 });
    expect(result.success).toBe(false);
    expect(toProblems(result.error!)[0]?.message).toContain('priority');
  });

  it('rejects __proto__ smuggled through JSON.parse', () => {
    const body: unknown = JSON.parse('{"target":"dns","taskId":"1","__proto__":{"admin":true}}');
    expect(parse(body).success).toBe(false);
  });

  it('accepts a reason of 200 characters and rejects 201', () => {
    expect(parse({ target: 'dns', taskId: '1', reason: 'r'.repeat(200) }).success).toBe(true);
    const long = parse({ target: 'dns', taskId: '1', reason: 'r'.repeat(201) });
    expect(long.success).toBe(false);
    expect(toProblems(long.error!)[0]?.path).toBe('reason');
  });

  it.each(['', 'DNS', '-dns', 'a/b', 'x'.repeat(64), 42])('rejects target %p', (target) => {
    expect(parse({ target, taskId: '1' }).success).toBe(false);
  });

  it('rejects a body that is not an object', () => {
    for (const body of [[], 'x', 1, null]) expect(parse(body).success).toBe(false);
  });
});

describe('outcome table', () => {
  it('maps every outcome to its HTTP status', () => {
    expect(OUTCOME_HTTP_STATUS).toMatchObject({
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
    });
  });

  it('marks exactly rate_limited, unavailable and timeout as retryable by default', () => {
    const retryable = Object.keys(OUTCOME_HTTP_STATUS).filter((o) =>
      isRetryableOutcome(o as keyof typeof OUTCOME_HTTP_STATUS),
    );
    expect(retryable.sort()).toEqual(['rate_limited', 'timeout', 'unavailable']);
  });
});
