import { failed, type ProviderOutcome } from '../core/provider-outcome';
import { sleep, type Clock } from './clock';
import type { Policy } from './policy';

/** A token bucket: `perSecond` refill, bursts up to `capacity`, on one clock. */
export interface TokenBucket {
  /** Takes a token now: 0 on success, else the milliseconds until one is available. */
  tryTake(): number;
  /** The clock the bucket refills on; a limiter waits on the same one. */
  readonly clock: Clock;
}

/** The burst a bucket allows when the config names none: one second's worth, at least one. */
export function defaultCapacity(perSecond: number): number {
  return Math.max(1, Math.ceil(perSecond));
}

/** A bucket that starts full. */
export function createTokenBucket(perSecond: number, capacity: number, clock: Clock): TokenBucket {
  let tokens = capacity;
  let last = clock.now();
  return {
    clock,
    tryTake() {
      const t = clock.now();
      tokens = Math.min(capacity, tokens + ((t - last) / 1000) * perSecond);
      last = t;
      if (tokens >= 1) {
        tokens -= 1;
        return 0;
      }
      return Math.ceil(((1 - tokens) / perSecond) * 1000);
    },
  };
}

/** A rate limit that may live outside the process (an account-wide bucket in Redis). */
export interface RateLimiter {
  /** Takes a token now: 0 on success, else the milliseconds until one is available. */
  tryTake(): Promise<number>;
  /** Waits for a token on the bucket's clock; resolves false when the signal aborts first. */
  take(signal: AbortSignal): Promise<boolean>;
}

/**
 * `shared` answers from a bucket every replica uses; while it cannot answer (undefined: the
 * store is down), the local bucket holds instead, so the limit degrades to per-process.
 */
export function createRateLimiter(
  local: TokenBucket,
  shared?: () => Promise<number | undefined>,
): RateLimiter {
  const tryTake = async (): Promise<number> => {
    const remote = shared === undefined ? undefined : await shared();
    return remote ?? local.tryTake();
  };
  return {
    tryTake,
    async take(signal) {
      for (;;) {
        const waitMs = await tryTake();
        if (waitMs === 0) return true;
        if (signal.aborted) return false;
        await sleep(local.clock, waitMs, signal);
      }
    },
  };
}

/** The refusal while the gateway's own limit holds; `waitMs` until the next token. */
export function rateLimited(waitMs: number): ProviderOutcome {
  return failed(
    'rate_limited',
    'RATE_LIMITED',
    "the provider's rate limit (rateLimitPerSecond) holds",
    { retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)), notSent: true },
  );
}

/**
 * Refuses at once while the limiter has no token: a caller told when to come back does better
 * than one held in a queue until its deadline.
 */
export function rateLimitPolicy(limiter: RateLimiter): Policy {
  return {
    async execute(next, ctx) {
      const waitMs = await limiter.tryTake();
      return waitMs > 0 ? rateLimited(waitMs) : next(ctx);
    },
  };
}
