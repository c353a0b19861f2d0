import type { ErrorCode } from './error-codes';
import { isOkOutcome, isRetryableOutcome, type OkOutcome, type Outcome } from './outcome';
import type { PendingCancel, ProviderOutcome, UpstreamDetail } from './provider-outcome';
import type { UnifiedTask } from './task';

/** One validation problem, as listed in `error.details`. */
export interface ProblemDetail {
  path: string;
  message: string;
}

/** One upstream attempt, as listed in `attempts`. */
export interface AttemptRecord {
  provider: string;
  outcome: Outcome;
  durationMs: number;
  errorCode?: ErrorCode;
}

/** The one response shape of `/cancel`, of `GET /tasks/…` and of every error. */
export interface UnifiedResult {
  ok: boolean;
  outcome: Outcome;
  retryable: boolean;
  requestId: string;
  target?: string;
  provider?: string;
  protocol?: string;
  taskId?: string;
  task?: UnifiedTask;
  error?: {
    code: ErrorCode;
    message: string;
    upstream?: UpstreamDetail;
    details?: ProblemDetail[];
  };
  attempts?: AttemptRecord[];
  durationMs?: number;
  replayed?: boolean;
}

/**
 * A unified result plus what the HTTP layer needs beyond the body. No status: `http/respond.ts`
 * derives it from the outcome (and error code) through the table in `outcome.ts`.
 */
export interface Answer {
  body: UnifiedResult;
  /** Seconds the caller should wait before retrying (`Retry-After`), when known. */
  retryAfterSeconds?: number;
  /** A timeout after the cancel may have reached the upstream (not "not sent"). */
  ambiguous?: boolean;
  /**
   * Set with `ambiguous` when the provider that timed out can confirm the cancel later (Dyn):
   * which provider, and the upstream job that accepted the cancel when there was one.
   */
  pending?: PendingConfirmation;
}

/** A timed-out cancel that a background confirmation can settle. */
export interface PendingConfirmation extends PendingCancel {
  /** The provider whose cancel timed out; its `confirm` settles it. */
  provider: string;
}

/** A failure produced by the gateway itself, before or instead of an upstream call. */
export function gatewayFailure(
  requestId: string,
  outcome: Exclude<Outcome, OkOutcome>,
  code: ErrorCode,
  message: string,
  extra: Partial<UnifiedResult> & { details?: ProblemDetail[] } = {},
): UnifiedResult {
  const { details, ...rest } = extra;
  return {
    ok: false,
    outcome,
    retryable: isRetryableOutcome(outcome),
    requestId,
    ...rest,
    error: details === undefined ? { code, message } : { code, message, details },
  };
}

/** Copies a provider's answer into the unified shape. */
export function fromProviderOutcome(
  base: Pick<UnifiedResult, 'requestId' | 'target' | 'provider' | 'protocol' | 'taskId'>,
  answer: ProviderOutcome,
): UnifiedResult {
  const result: UnifiedResult = {
    ok: isOkOutcome(answer.outcome),
    outcome: answer.outcome,
    retryable: answer.retryable ?? isRetryableOutcome(answer.outcome),
    ...base,
  };
  if (answer.task !== undefined) result.task = answer.task;
  if (answer.error !== undefined) result.error = answer.error;
  return result;
}
