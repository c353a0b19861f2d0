import type { ErrorCode } from './error-codes';
import type { ProviderOutcomeKind } from './outcome';
import type { UnifiedTask } from './task';

/** The raw code and text the upstream gave, for `error.upstream`. */
export interface UpstreamDetail {
  code?: string;
  message?: string;
}

/** What a provider reports for one upstream call: a value, never a throw. */
export interface ProviderOutcome {
  outcome: ProviderOutcomeKind;
  /** Present for every outcome except `canceled`. */
  error?: { code: ErrorCode; message: string; upstream?: UpstreamDetail };
  task?: UnifiedTask;
  /** Overrides the outcome's default `retryable` (methodcall 1045 is a retryable conflict). */
  retryable?: boolean;
  /** Seconds the caller should wait, when known (`Retry-After`). */
  retryAfterSeconds?: number;
  /** True when the cancel certainly did not reach the upstream, so a retry cannot double-apply it. */
  notSent?: boolean;
}

/** Builds a failed outcome; keeps call sites to one line. */
export function failed(
  outcome: Exclude<ProviderOutcomeKind, 'canceled'>,
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
