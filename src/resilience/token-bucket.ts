import { delay } from '../routing/deadline';

/** A token bucket: `perSecond` refill, bursts up to `capacity`. */
export interface TokenBucket {
  /** Takes a token now: 0 on success, else the milliseconds until one is available. */
  tryTake(): number;
}

export function createTokenBucket(
  perSecond: number,
  capacity = Math.max(1, Math.ceil(perSecond)),
  now: () => number = () => performance.now(),
): TokenBucket {
  let tokens = capacity;
  let last = now();
  const refill = (): void => {
    const t = now();
    tokens = Math.min(capacity, tokens + ((t - last) / 1000) * perSecond);
    last = t;
  };
  const tryTake = (): number => {
    refill();
    if (tokens >= 1) {
      tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - tokens) / perSecond) * 1000);
  };
  return { tryTake };
}

/** A rate limit that may live outside the process (an account-wide bucket in Redis). */
export interface RateLimiter {
  /** Takes a token now: 0 on success, else the milliseconds until one is available. */
  tryTake(): Promise<number>;
  /** Waits for a token; resolves false when the signal aborts first. */
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
        await delay(waitMs, signal);
      }
    },
  };
}
