import { z } from 'zod';
import {
  BatchEnvelopeSchema,
  CancelRequestSchema,
  describeValue,
  expecting,
  issueMessage,
  toProblems,
} from '../../../src/core/request';
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

/** The one problem of `body`, as `path: message`. */
function problemOf(body: unknown, schema: z.ZodType = CancelRequestSchema): string[] {
  const result = schema.safeParse(body);
  if (result.success) throw new Error('expected the body to be invalid');
  return toProblems(result.error).map((p) => `${p.path}: ${p.message}`);
}

describe('CancelRequest: messages say what was expected and what came', () => {
  it.each([
    ['a boolean', true, 'boolean'],
    ['null', null, 'null'],
    ['a fraction', 1.5, '1.5'],
    ['an object', {}, 'object'],
    ['an array', [], 'array'],
  ])('taskId as %s is a wrong type, not a missing value', (_name, taskId, got) => {
    expect(problemOf({ target: 'dns', taskId })).toEqual([
      `taskId: expected a string or an integer, got ${got}`,
    ]);
  });

  it.each([
    // invalid_format (regex) on the string branch
    [
      '0123',
      'taskId: expected a positive integer without sign, spaces or leading zeros, got "0123"',
    ],
    ['', 'taskId: expected a positive integer without sign, spaces or leading zeros, got ""'],
    // too_big on a string
    ['123456789012345678901', 'taskId: expected at most 20 digits, got 21'],
    // too_small on a number
    [0, 'taskId: expected a positive integer, got 0'],
    [-5, 'taskId: expected a positive integer, got -5'],
    // too_big on a number: once, though two checks fail
    [
      2 ** 60,
      `taskId: expected at most ${Number.MAX_SAFE_INTEGER} as a JSON number (send a larger id as a string), got ${2 ** 60}`,
    ],
  ])('taskId %p', (taskId, expected) => {
    expect(problemOf({ target: 'dns', taskId })).toEqual([expected]);
  });

  it('says "is required" only for an absent key', () => {
    expect(problemOf({})).toEqual(['target: is required', 'taskId: is required']);
    expect(problemOf({ target: 'dns', taskId: null })).not.toContain('taskId: is required');
  });

  it('names the type of a wrong target and quotes a wrong name', () => {
    expect(problemOf({ target: 42, taskId: '1' })).toEqual([
      'target: expected a string, got number',
    ]);
    expect(problemOf({ target: 'DNS', taskId: '1' })).toEqual([
      'target: expected a route name (lower-case letters, digits, "-" or "_"; at most 63), got "DNS"',
    ]);
  });

  it('gives the length of a reason that is too long, and the type of one that is no string', () => {
    expect(problemOf({ target: 'dns', taskId: '1', reason: 'r'.repeat(201) })).toEqual([
      'reason: expected at most 200 characters, got 201',
    ]);
    expect(problemOf({ target: 'dns', taskId: '1', reason: false })).toEqual([
      'reason: expected a string, got boolean',
    ]);
  });

  it('lists unknown fields (unrecognized_keys)', () => {
    expect(problemOf({ target: 'dns', taskId: '1', force: true, priority: 1 })).toEqual([
      '(body): unknown field(s): force, priority',
    ]);
  });

  it.each([
    [[], 'array'],
    ['x', '"x"'],
    [1, '1'],
    [null, 'null'],
  ])('says what came instead of an object: %p', (body, got) => {
    expect(problemOf(body)).toEqual([`(body): must be a JSON object, got ${got}`]);
  });

  it('reports a batch envelope the same way', () => {
    expect(problemOf({}, BatchEnvelopeSchema)).toEqual(['items: is required']);
    expect(problemOf({ items: 'x' }, BatchEnvelopeSchema)).toEqual([
      'items: expected a list, got "x"',
    ]);
    // zod also runs the length check on the empty string; only the type error is reported.
    expect(problemOf({ items: '' }, BatchEnvelopeSchema)).toEqual([
      'items: expected a list, got ""',
    ]);
    expect(problemOf({ items: [] }, BatchEnvelopeSchema)).toEqual([
      'items: must hold at least one item',
    ]);
    expect(
      problemOf({ items: Array.from({ length: 101 }, () => ({})) }, BatchEnvelopeSchema),
    ).toEqual(['items: must hold at most 100 items, got 101']);
  });
});

describe('issueMessage: every zod issue kind', () => {
  function message(schema: z.ZodType, value: unknown): string | undefined {
    const result = schema.safeParse(value, { error: issueMessage });
    return result.error?.issues[0]?.message;
  }

  it.each([
    ['invalid_type: absent', z.object({ a: z.string() }), {}, 'is required'],
    ['invalid_type: boolean', z.number(), true, 'expected a number, got boolean'],
    ['invalid_type: string', z.number(), 'ten', 'expected a number, got "ten"'],
    ['invalid_type: fraction', z.int(), 3000.5, 'expected an integer, got 3000.5'],
    [
      'invalid_type: number for a string is not echoed',
      z.string(),
      123456,
      'expected a string, got number',
    ],
    ['invalid_type: null', z.array(z.string()), null, 'expected a list, got null'],
    ['invalid_type: array', z.object({}), [1], 'expected an object, got array'],
    ['invalid_type: object', z.boolean(), {}, 'expected a boolean, got object'],
    ['too_small: number', z.number().min(1), 0, 'expected at least 1, got 0'],
    ['too_small: exclusive', z.number().positive(), 0, 'expected more than 0, got 0'],
    ['too_big: number', z.number().max(10), 11, 'expected at most 10, got 11'],
    ['too_big: exclusive', z.number().lt(10), 10, 'expected less than 10, got 10'],
    ['too_small: string', z.string().min(16), 'short', 'expected at least 16 characters, got 5'],
    ['too_small: exact', z.string().length(2), 'abc', 'expected exactly 2 characters, got 3'],
    ['too_big: list', z.array(z.number()).max(1), [1, 2], 'expected at most 1 item, got 2'],
    [
      'invalid_format: regex',
      z.string().regex(/^a+$/),
      'b',
      'expected a string matching /^a+$/, got "b"',
    ],
    ['invalid_format: url', z.url(), 'nope', 'expected a valid url, got "nope"'],
    ['not_multiple_of', z.number().multipleOf(5), 7, 'expected a multiple of 5, got 7'],
    ['unrecognized_keys', z.strictObject({}), { x: 1, y: 2 }, 'unknown key(s): x, y'],
    [
      'invalid_value: enum',
      z.enum(['memory', 'redis']),
      'mongo',
      'expected one of "memory", "redis", got "mongo"',
    ],
    ['invalid_value: literal', z.literal('x'), 'y', 'expected "x", got "y"'],
    [
      'invalid_union',
      z.union([z.string(), z.boolean()]),
      1,
      'expected a string or a boolean, got 1',
    ],
    [
      'invalid_union: absent',
      z.object({ a: z.union([z.string(), z.number()]) }),
      {},
      'is required',
    ],
    [
      'invalid_union: a discriminator',
      z.discriminatedUnion('type', [
        z.object({ type: z.literal('a') }),
        z.object({ type: z.literal('b') }),
      ]),
      { type: 'c' },
      'expected one of "a", "b", got "c"',
    ],
    [
      'invalid_union: no discriminator',
      z.discriminatedUnion('type', [z.object({ type: z.literal('a') })]),
      {},
      'is required',
    ],
    [
      'invalid_key',
      z.record(z.string().regex(/^[a-z]+$/, 'a name must be lower-case'), z.number()),
      { Bad: 1 },
      'a name must be lower-case',
    ],
    [
      'custom: without a message',
      z.string().refine((s) => s === 'ok'),
      'no',
      'is not valid, got "no"',
    ],
    [
      'custom: with a message',
      z.string().refine((s) => s === 'ok', 'must be ok'),
      'no',
      'must be ok',
    ],
  ])('%s', (_name, schema, value, expected) => {
    expect(message(schema, value)).toBe(expected);
  });

  it('expecting() names the rule and quotes the value, or says the value is absent', () => {
    const schema = z.object({
      host: z.string().refine(() => false, { error: expecting('a host') }),
    });
    expect(message(schema, { host: '127.0.0.999' })).toBe('expected a host, got "127.0.0.999"');
    expect(message(z.object({ a: z.string({ error: expecting('text') }) }), {})).toBe(
      'is required',
    );
  });

  it('describes a long string by its length rather than quoting it', () => {
    expect(describeValue('x'.repeat(61))).toBe('61 characters');
    expect(describeValue('x'.repeat(60))).toBe(JSON.stringify('x'.repeat(60)));
    expect(describeValue(5, true)).toBe('number');
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
