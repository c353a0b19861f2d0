import { z } from 'zod';
import type { ProblemDetail } from './result';

/** Route and provider names. */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Longest decimal task id accepted: 20 digits covers every unsigned 64-bit id. */
export const MAX_TASK_ID_DIGITS = 20;

const TASK_ID_PATTERN = /^[1-9][0-9]*$/;

/** Longest string quoted back in a message; a longer one is described by its length. */
const MAX_QUOTED = 60;

type RawIssue = z.core.$ZodRawIssue;

const TYPE_NAMES: Readonly<Record<string, string>> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'a boolean',
  array: 'a list',
  tuple: 'a list',
  object: 'an object',
  record: 'an object',
  null: 'null',
};

function plural(count: number, unit: string): string {
  return `${count} ${unit}${count === 1 ? '' : 's'}`;
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

/**
 * What came, for a message: a short string quoted, a number as written, anything else by its
 * type. `hideNumber` keeps a number out of the text where a string was expected: that string may
 * be a password written as digits.
 */
export function describeValue(value: unknown, hideNumber = false): string {
  if (typeof value === 'string') {
    return value.length <= MAX_QUOTED ? JSON.stringify(value) : plural(value.length, 'character');
  }
  if (typeof value === 'number' && !hideNumber) return String(value);
  return typeOf(value);
}

function lengthOf(value: unknown): number | undefined {
  if (typeof value === 'string' || Array.isArray(value)) return value.length;
  if (value instanceof Set) return value.size;
  return undefined;
}

/** "expected at least 3 characters, got 1" for a length; "expected at least 1, got 0" for a number. */
function bound(
  issue: RawIssue & { code: 'too_small' | 'too_big' },
  limit: number | bigint,
): string {
  const small = issue.code === 'too_small';
  const length = lengthOf(issue.input);
  const unit = issue.origin === 'string' ? 'character' : 'item';
  if (length !== undefined && issue.origin !== 'number' && issue.origin !== 'int') {
    const word = issue.exact === true ? 'exactly' : small ? 'at least' : 'at most';
    return `expected ${word} ${plural(Number(limit), unit)}, got ${length}`;
  }
  const inclusive = issue.inclusive !== false;
  const word = small ? (inclusive ? 'at least' : 'more than') : inclusive ? 'at most' : 'less than';
  return `expected ${word} ${String(limit)}, got ${describeValue(issue.input)}`;
}

function alternatives(issue: RawIssue & { code: 'invalid_union' }): string | undefined {
  const { options } = issue;
  if (Array.isArray(options) && options.length > 0) {
    return `one of ${options.map((o) => JSON.stringify(o)).join(', ')}`;
  }
  const expected = issue.errors.map((branch) => {
    const first = branch[0];
    return first?.code === 'invalid_type' ? TYPE_NAMES[first.expected] : undefined;
  });
  if (expected.length === 0 || expected.some((e) => e === undefined)) return undefined;
  return [...new Set(expected)].join(' or ');
}

/**
 * A zod error map (`error` on a schema, a check or a `safeParse` call) that says what was
 * expected and what came, and "is required" only for a value that is absent. zod hands an error
 * map the input even when the final issue leaves it out (without `reportInput`), so the messages
 * need no guessing from zod's own text.
 */
export function issueMessage(issue: RawIssue): string | undefined {
  const { input } = issue;
  switch (issue.code) {
    case 'invalid_type':
      if (input === undefined) return 'is required';
      return `expected ${TYPE_NAMES[issue.expected] ?? issue.expected}, got ${describeValue(input, issue.expected === 'string')}`;
    case 'too_small':
      return bound(issue, issue.minimum);
    case 'too_big':
      return bound(issue, issue.maximum);
    case 'invalid_format':
      return issue.format === 'regex' && issue.pattern !== undefined
        ? `expected a string matching ${issue.pattern}, got ${describeValue(input)}`
        : `expected a valid ${issue.format}, got ${describeValue(input)}`;
    case 'not_multiple_of':
      return `expected a multiple of ${issue.divisor}, got ${describeValue(input)}`;
    case 'unrecognized_keys':
      return `unknown key(s): ${issue.keys.join(', ')}`;
    case 'invalid_union': {
      // A discriminated union reports at the discriminator with the whole object as input.
      const value =
        issue.discriminator !== undefined && input !== null && typeof input === 'object'
          ? (input as Record<string, unknown>)[issue.discriminator]
          : input;
      if (value === undefined) return 'is required';
      const expected = alternatives(issue);
      return expected === undefined
        ? `matches none of the accepted forms, got ${describeValue(value)}`
        : `expected ${expected}, got ${describeValue(value)}`;
    }
    case 'invalid_key':
    case 'invalid_element':
      // The key's own schema said what is wrong with it; the key is the last part of the path.
      return (
        issue.issues[0]?.message ??
        `is not a valid ${issue.code === 'invalid_key' ? 'key' : 'element'}`
      );
    case 'invalid_value':
      return issue.values.length === 1
        ? `expected ${JSON.stringify(issue.values[0])}, got ${describeValue(input)}`
        : `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${describeValue(input)}`;
    case 'custom':
      return `is not valid, got ${describeValue(input)}`;
  }
}

/**
 * An error map for a rule zod cannot name by itself: `expected <what>, got <value>`, or "is
 * required" when the value is absent. Only for values that are no secret: they are quoted.
 */
export function expecting(what: string): z.core.$ZodErrorMap {
  return (issue) =>
    issue.input === undefined
      ? 'is required'
      : `expected ${what}, got ${describeValue(issue.input)}`;
}

const withMessages = { error: issueMessage };

/** A safe JSON integer beyond this loses digits, so larger ids must come as strings. */
function unsafeInteger(issue: RawIssue): string | undefined {
  if (issue.code !== 'too_big') return issueMessage(issue);
  return `expected at most ${Number.MAX_SAFE_INTEGER} as a JSON number (send a larger id as a string), got ${describeValue(issue.input)}`;
}

/**
 * A task id: a positive decimal integer with no sign, spaces or leading zeros, given as a string
 * or as a JSON integer. Normalised to its decimal string.
 */
export const TaskIdSchema = z
  .union(
    [
      z
        .string(withMessages)
        .max(MAX_TASK_ID_DIGITS, {
          error: (issue) =>
            `expected at most ${MAX_TASK_ID_DIGITS} digits, got ${lengthOf(issue.input) ?? 0}`,
        })
        .regex(TASK_ID_PATTERN, {
          error: expecting('a positive integer without sign, spaces or leading zeros'),
        }),
      z
        .number(withMessages)
        .int({ error: unsafeInteger })
        .positive({ error: expecting('a positive integer') })
        .max(Number.MAX_SAFE_INTEGER, { error: unsafeInteger }),
    ],
    // Both branches failed on the type (a boolean, null, 1.5, an object): name both.
    { error: expecting('a string or an integer') },
  )
  .transform((value) => String(value))
  .describe('Upstream task id: a positive decimal integer, as a string or an integer.');

/** The logical target: a route name. */
export const TargetSchema = z
  .string(withMessages)
  .regex(NAME_PATTERN, {
    error: expecting('a route name (lower-case letters, digits, "-" or "_"; at most 63)'),
  })
  .describe('Logical target: a route name from the gateway config.');

/** Errors of a request body as a whole: it is not an object, or it has extra fields. */
const bodyMessage: z.core.$ZodErrorMap = (issue) => {
  if (issue.code === 'invalid_type' && issue.input !== undefined) {
    return `must be a JSON object, got ${describeValue(issue.input)}`;
  }
  if (issue.code === 'unrecognized_keys') return `unknown field(s): ${issue.keys.join(', ')}`;
  return issueMessage(issue);
};

/** The body of `POST /cancel`; any other field is an error. */
export const CancelRequestSchema = z
  .strictObject(
    {
      target: TargetSchema,
      taskId: TaskIdSchema,
      reason: z
        .string(withMessages)
        .max(200, withMessages)
        .optional()
        .describe('Free text for the logs; never sent upstream.'),
    },
    { error: bodyMessage },
  )
  .describe('One cancel.');

/** A valid cancel, its task id normalised. */
export type CancelRequest = z.output<typeof CancelRequestSchema>;

/** Most items one `POST /cancel/batch` may carry. */
export const MAX_BATCH_ITEMS = 100;

/**
 * The envelope of `POST /cancel/batch`. Items are validated one by one with
 * `CancelRequestSchema`, so one bad item fails alone, in its own result.
 */
export const BatchEnvelopeSchema = z
  .strictObject(
    {
      items: z
        .array(z.unknown(), withMessages)
        .min(1, 'must hold at least one item')
        .max(MAX_BATCH_ITEMS, {
          error: (issue) =>
            `must hold at most ${MAX_BATCH_ITEMS} items, got ${lengthOf(issue.input) ?? 0}`,
        }),
    },
    { error: bodyMessage },
  )
  .describe('Up to 100 cancels, answered in order.');

/** The batch body as documented: the envelope with each item's own schema. */
export const BatchRequestSchema = z
  .strictObject({
    items: z.array(CancelRequestSchema).min(1).max(MAX_BATCH_ITEMS),
  })
  .describe('Up to 100 cancels, answered in order; an invalid item fails alone.');

/**
 * Turns zod issues into `error.details` entries with dotted paths, one per path: zod runs length
 * checks even on a value of the wrong type, and the type error already says what is wrong.
 */
export function toProblems(error: z.ZodError): ProblemDetail[] {
  const seen = new Set<string>();
  return error.issues.flatMap((issue) => {
    const path = issue.path.length === 0 ? '(body)' : issue.path.map(String).join('.');
    if (seen.has(path)) return [];
    seen.add(path);
    return [{ path, message: issue.message }];
  });
}
