import { ExponentialBackoff, type IBackoff } from 'cockatiel';
import type { ProviderOutcome } from '../core/provider-outcome';
import { sleep, type Clock } from './clock';
import type { Policy } from './policy';

/** How often, and how far apart, an attempt is repeated. */
export interface RetryOptions {
  /** Attempts in all, the first included. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

/**
 * Retried on the same provider only when the cancel certainly did not happen: refused/reset
 * before an answer, 503, `SERVICE_UNAVAILABLE`. A 429 is not retried here: its Retry-After
 * outlasts any request deadline, so the route's fallback is the better next step.
 */
export function isRetryable(outcome: ProviderOutcome): boolean {
  return outcome.outcome === 'unavailable' && outcome.notSent === true;
}

/**
 * Repeats `isRetryable` outcomes with cockatiel's jittered exponential backoff, waiting on
 * `clock`. A retry the deadline cannot hold is not started, and a wait the deadline cuts short
 * returns the upstream's last answer rather than a timeout the gateway made up.
 */
export function retryPolicy(options: RetryOptions, clock: Clock): Policy {
  const backoffFactory = new ExponentialBackoff({
    initialDelay: options.baseDelayMs,
    maxDelay: options.maxDelayMs,
  });
  return {
    async execute(next, ctx) {
      const { deadline } = ctx;
      let backoff: IBackoff<unknown> | undefined;
      for (let n = 1; ; n++) {
        const outcome = await next(ctx);
        if (n >= options.attempts || !isRetryable(outcome) || deadline.signal.aborted)
          return outcome;
        backoff = backoff === undefined ? backoffFactory.next() : backoff.next(undefined);
        if (clock.now() + backoff.duration >= deadline.at) return outcome;
        await sleep(clock, backoff.duration, deadline.signal);
        if (hasFired(deadline.signal)) return outcome;
      }
    },
  };
}

/** Read through a call, so the compiler does not carry an earlier check of `aborted` across awaits. */
function hasFired(signal: AbortSignal): boolean {
  return signal.aborted;
}
