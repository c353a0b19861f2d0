import { z } from 'zod';
import type { ProblemDetail } from './result';

/** Route and provider names. */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Longest decimal task id accepted: 20 digits covers every unsigned 64-bit id. */
export const MAX_TASK_ID_DIGITS = 20;

const TASK_ID_PATTERN = /^[1-9][0-9]*$/;

/**
 * A task id: a positive decimal integer with no sign, spaces or leading zeros, given as a string
 * or as a JSON integer. Normalised to its decimal string.
 */
export const TaskIdSchema = z
  .union([
    z
      .string()
      .max(MAX_TASK_ID_DIGITS, `must have at most ${MAX_TASK_ID_DIGITS} digits`)
      .regex(TASK_ID_PATTERN, 'must be a positive integer without sign, spaces or leading zeros'),
    z
      .number()
      .int('must be an integer')
      .positive('must be a positive integer')
      .max(Number.MAX_SAFE_INTEGER, 'is too large for a JSON number; send it as a string'),
  ])
  .transform((value) => String(value))
  .describe('Upstream task id: a positive decimal integer, as a string or an integer.');

export const TargetSchema = z
  .string()
  .regex(NAME_PATTERN, 'must be a route name: lower-case letters, digits, "-" or "_", at most 63')
  .describe('Logical target: a route name from the gateway config.');

/** The body of `POST /cancel`; any other field is an error. */
export const CancelRequestSchema = z
  .strictObject({
    target: TargetSchema,
    taskId: TaskIdSchema,
    reason: z
      .string()
      .max(200, 'must be at most 200 characters')
      .optional()
      .describe('Free text for the logs; never sent upstream.'),
  })
  .describe('One cancel.');

export type CancelRequest = z.output<typeof CancelRequestSchema>;

/** Most items one `POST /cancel/batch` may carry. */
export const MAX_BATCH_ITEMS = 100;

/**
 * The envelope of `POST /cancel/batch`. Items are validated one by one with
 * `CancelRequestSchema`, so one bad item fails alone, in its own result.
 */
export const BatchEnvelopeSchema = z
  .strictObject({
    items: z
      .array(z.unknown())
      .min(1, 'must hold at least one item')
      .max(MAX_BATCH_ITEMS, `must hold at most ${MAX_BATCH_ITEMS} items`),
  })
  .describe('Up to 100 cancels, answered in order.');

/** The batch body as documented: the envelope with each item's own schema. */
export const BatchRequestSchema = z
  .strictObject({
    items: z.array(CancelRequestSchema).min(1).max(MAX_BATCH_ITEMS),
  })
  .describe('Up to 100 cancels, answered in order; an invalid item fails alone.');

/** Turns zod issues into `error.details` entries with dotted paths. */
export function toProblems(error: z.ZodError): ProblemDetail[] {
  return error.issues.map((issue) => {
    const path = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      return {
        path: path === '' ? '(body)' : path,
        message: `unknown field(s): ${issue.keys.join(', ')}`,
      };
    }
    if (issue.code === 'invalid_type') {
      // zod reports a missing key as "received undefined" (the input itself is not kept).
      if (issue.input === undefined && /received undefined$/.test(issue.message)) {
        return { path: path === '' ? '(body)' : path, message: 'is required' };
      }
      if (path === '') return { path: '(body)', message: `must be a JSON ${issue.expected}` };
    }
    if (issue.code === 'invalid_union') {
      if (issue.input === undefined) return { path, message: 'is required' };
      // Report the branch that matched the value's type ("must have at most 20 digits"), not
      // "expected number" for a string.
      const branch = issue.errors.find((issues) => issues.every((i) => i.code !== 'invalid_type'));
      return {
        path,
        message:
          branch?.[0]?.message ??
          'must be a positive integer (string or number) without sign, spaces or leading zeros',
      };
    }
    return { path: path === '' ? '(body)' : path, message: issue.message };
  });
}
