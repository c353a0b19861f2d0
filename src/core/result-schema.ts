import { z } from 'zod';
import { ERROR_CODES } from './error-codes';
import { OUTCOME_HTTP_STATUS } from './outcome';
import { PROTOCOLS } from './protocols';

/**
 * The unified result as a zod schema. `/openapi.json` is generated from it, and the
 * test suite checks every answer against it, so the document cannot drift from what is sent.
 */
const Outcome = z.enum(Object.keys(OUTCOME_HTTP_STATUS) as [keyof typeof OUTCOME_HTTP_STATUS]);
const ErrorCode = z.enum(Object.keys(ERROR_CODES) as [keyof typeof ERROR_CODES]);
const Protocol = z.enum(PROTOCOLS);

export const UnifiedTaskSchema = z
  .strictObject({
    id: z.string(),
    name: z.string().optional(),
    zone: z.string().optional(),
    customer: z.string().optional(),
    status: z.string().optional().describe("The upstream's own task status."),
    stepCount: z.int().optional(),
    totalSteps: z.int().optional(),
    blocking: z.boolean().optional(),
    message: z.string().optional(),
    createdAt: z.iso.datetime().optional(),
    modifiedAt: z.iso.datetime().optional(),
  })
  .describe('The task as the upstream reported it (Dyn only).');

export const UnifiedResultSchema = z
  .strictObject({
    ok: z.boolean().describe('True exactly when outcome is canceled (a cancel) or found (a read).'),
    outcome: Outcome,
    retryable: z.boolean().describe('Whether the same request may succeed later.'),
    requestId: z.string(),
    target: z.string().optional(),
    provider: z.string().optional().describe('The provider that gave the final answer.'),
    protocol: Protocol.optional(),
    taskId: z.string().optional(),
    task: UnifiedTaskSchema.optional(),
    error: z
      .strictObject({
        code: ErrorCode,
        message: z.string(),
        upstream: z
          .strictObject({ code: z.string().optional(), message: z.string().optional() })
          .optional()
          .describe("The upstream's own code and text."),
        details: z.array(z.strictObject({ path: z.string(), message: z.string() })).optional(),
      })
      .optional(),
    attempts: z
      .array(
        z.strictObject({
          provider: z.string(),
          outcome: Outcome,
          durationMs: z.int().nonnegative(),
          errorCode: ErrorCode.optional(),
        }),
      )
      .optional(),
    durationMs: z.int().nonnegative().optional(),
    replayed: z.boolean().optional(),
  })
  .describe('The one answer shape of every cancel, every task read and every error.');

export const BatchResultSchema = z.strictObject({
  requestId: z.string(),
  results: z.array(UnifiedResultSchema).describe('One result per item, in the order sent.'),
  summary: z.partialRecord(Outcome, z.int()).describe('How many items ended in each outcome.'),
  durationMs: z.int().nonnegative(),
});

export const ReadyzSchema = z.strictObject({
  status: z.enum(['ready', 'draining']),
  configVersion: z.string().describe("First 12 hex digits of the applied config file's SHA-256."),
  providers: z.record(
    z.string(),
    z.strictObject({
      circuit: z.enum(['closed', 'half-open', 'open']),
      protocol: Protocol,
    }),
  ),
  state: z
    .enum(['ok', 'degraded'])
    .describe('degraded: the shared store (redis) fails; cancels still work, without replay.'),
  lastReloadError: z
    .strictObject({ at: z.iso.datetime(), problems: z.array(z.string()) })
    .optional()
    .describe('Present while the config file on disk is invalid; the last good config runs.'),
});

export const RoutesSchema = z.strictObject({
  configVersion: z.string(),
  routes: z.array(
    z.strictObject({
      target: z.string(),
      timeoutMs: z.int(),
      chain: z.array(
        z.strictObject({
          provider: z.string(),
          protocol: Protocol,
          circuit: z.enum(['closed', 'half-open', 'open']),
        }),
      ),
    }),
  ),
});
