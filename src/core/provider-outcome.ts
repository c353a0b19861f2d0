import type { ErrorCode } from './error-codes';
import type { OkOutcome, ProviderOutcomeKind } from './outcome';
import type { UnifiedTask } from './task';

/** The raw code and text the upstream gave, for `error.upstream`. */
export interface UpstreamDetail {
  code?: string;
  message?: string;
}

/**
 * What a later confirmation of an ambiguous cancel needs: the upstream job that accepted it, when
 * there was one. Present only on a cancel `timeout` whose cancel may have reached the upstream.
 */
export interface PendingCancel {
  jobId?: string;
}

/** What a provider reports for one upstream call: a value, never a throw. */
export interface ProviderOutcome {
  outcome: ProviderOutcomeKind;
  /** Present for every outcome except `canceled` and `found`. */
  error?: { code: ErrorCode; message: string; upstream?: UpstreamDetail };
  task?: UnifiedTask;
  /** Overrides the outcome's default `retryable` (methodcall 1045 is a retryable conflict). */
  retryable?: boolean;
  /** Seconds the caller should wait, when known (`Retry-After`). */
  retryAfterSeconds?: number;
  /** True when the cancel certainly did not reach the upstream, so a retry cannot double-apply it. */
  notSent?: boolean;
  /** Set on a cancel that timed out after it may have reached the upstream: what to confirm. */
  pending?: PendingCancel;
}

/**
 * What a confirmation of a timed-out cancel found upstream:
 * - `canceled`: the task is canceled (the earlier cancel, or its job, went through);
 * - `pending`: the task exists and is not final, and no job of ours is still running for it;
 * - `finished`: the task ended on its own (`complete`, `failed`): no cancel can apply any more;
 * - `gone`: the upstream no longer knows the task (the earlier cancel probably removed it);
 * - `unknown`: nothing settled yet (our job still runs, the upstream failed, rate limit);
 * - `unsupported`: nothing can confirm it (no such provider any more, or one without confirmation).
 */
export type ConfirmState = 'canceled' | 'pending' | 'finished' | 'gone' | 'unknown' | 'unsupported';

/** One confirmation attempt of a timed-out cancel, with the upstream answer it rests on. */
export interface Confirmation {
  state: ConfirmState;
  /** The task as the upstream showed it last, when it did. */
  task?: UnifiedTask;
  /** The upstream answer behind the state; for `canceled` the one to remember and replay. */
  outcome: ProviderOutcome;
  /** For `unknown`: ask again no sooner than this (seconds), when the upstream said so. */
  retryAfterSeconds?: number;
  /**
   * For `pending`: the task was read while the cancel may still be applied (no job of it was
   * seen to end: its session was not kept, or Dyn gave no job id), so the read may show the
   * task as it was before the cancel. It settles nothing; it is asked again.
   */
  cancelMayApply?: true;
}

/** Builds a failed outcome; keeps call sites to one line. */
export function failed(
  outcome: Exclude<ProviderOutcomeKind, OkOutcome>,
  code: ErrorCode,
  message: string,
  extra: Omit<ProviderOutcome, 'outcome' | 'error'> & { upstream?: UpstreamDetail } = {},
): ProviderOutcome {
  const { upstream, ...rest } = extra;
  return {
    outcome,
    error: upstream === undefined ? { code, message } : { code, message, upstream },
    ...rest,
  };
}
