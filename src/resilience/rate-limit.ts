import { failed, type ProviderOutcome } from '../core/provider-outcome';
import { sleep, type Clock } from './clock';
import type { Policy } from './policy';

/**
 * A sliding-window limit: at most `limit` takes within any `windowMs`, on one clock. Unlike a
 * token bucket (a burst, then refills, so up to twice the rate fits into a sliding second), no
 * window of that length ever holds more: what an upstream counting "5 requests per second"
 * sees.
 */
export interface SlidingWindow {
  /** Takes a slot now: 0 on success, else the milliseconds until one is free. */
  tryTake(): number;
  /** The clock the window slides on; a limiter waits on the same one. */
  readonly clock: Clock;
}

/** What a rate of `perSecond` allows: `limit` calls (a whole number, at least one) per `windowMs`. */
export interface WindowSize {
  limit: number;
  windowMs: number;
}

/**
 * Added to every window. A window lets its next calls go the moment its oldest ones leave it, so
 * the calls of two windows are sent just over a window apart; the upstream counts them as they
 * arrive, and a few milliseconds of network jitter would put more than the limit into one of its
 * seconds. The guard keeps them at least this much further apart, at the cost of a rate at
 * saturation of `limit` per `windowMs + JITTER_GUARD_MS` (4.5/s for 5/s).
 */
export const JITTER_GUARD_MS = 100;

/**
 * The window of a rate: `ceil(perSecond)` calls per the time they take at that rate, so 5/s is 5
 * per second and 0.25/s is 1 per 4 s, each window longer by `JITTER_GUARD_MS`.
 */
export function windowOf(perSecond: number): WindowSize {
  const limit = Math.max(1, Math.ceil(perSecond));
  return { limit, windowMs: (limit * 1000) / perSecond + JITTER_GUARD_MS };
}

/**
 * The times of the latest takes, oldest first, at most `capacity` of them: a ring, so that a take
 * costs the same at 100 000/s as at 5/s.
 */
class TakeTimes {
  private ring: number[] = [];
  /** Where the oldest is once the ring is full (0 until then). */
  private start = 0;

  constructor(private capacity: number) {}

  /** The `n`-th latest take (1: the latest), or undefined when fewer were kept. */
  latest(n: number): number | undefined {
    const size = this.ring.length;
    if (n < 1 || n > size) return undefined;
    return this.ring[(this.start + size - n) % size];
  }

  push(t: number): void {
    if (this.ring.length < this.capacity) {
      this.ring.push(t);
      return;
    }
    this.ring[this.start] = t;
    this.start = (this.start + 1) % this.capacity;
  }

  /** Keeps the latest `capacity` takes. */
  resize(capacity: number): void {
    if (capacity === this.capacity) return;
    const kept = Math.min(capacity, this.ring.length);
    const ordered: number[] = [];
    for (let n = kept; n >= 1; n--) ordered.push(this.latest(n) ?? 0);
    this.ring = ordered;
    this.start = 0;
    this.capacity = capacity;
  }
}

/** A sliding window whose rate can change while it keeps its recent takes. */
class Window implements SlidingWindow {
  private size: WindowSize;
  private readonly times: TakeTimes;

  constructor(
    perSecond: number,
    readonly clock: Clock,
  ) {
    this.size = windowOf(perSecond);
    this.times = new TakeTimes(this.size.limit);
  }

  tryTake(): number {
    const t = this.clock.now();
    const { limit, windowMs } = this.size;
    // The take `limit` places back must have left the window for one more to fit.
    const bound = this.times.latest(limit);
    if (bound !== undefined) {
      const waitMs = bound + windowMs - t;
      if (waitMs > 0) return Math.ceil(waitMs);
    }
    this.times.push(t);
    return 0;
  }

  /**
   * Applies a new rate to the takes so far; keeps the latest `keep` of them (at least the new
   * limit), so that a rate going back up still sees the calls the higher limit counted.
   */
  setRate(perSecond: number, keep: number): void {
    this.size = windowOf(perSecond);
    this.times.resize(Math.max(keep, this.size.limit));
  }

  /** No take of the last `windowMs` is left: a fresh window would behave the same. */
  idle(): boolean {
    const latest = this.times.latest(1);
    return latest === undefined || latest + this.size.windowMs <= this.clock.now();
  }
}

/** A window that starts empty: a ring of the last `limit` take times. */
export function createSlidingWindow(perSecond: number, clock: Clock): SlidingWindow {
  return new Window(perSecond, clock);
}

/** One holder's use of a window from `RateWindows`. */
export interface WindowLease {
  /** The window, shared with every other holder of the same key. */
  readonly window: SlidingWindow;
  /** The holder is done with it (its provider closed); calling it again does nothing. */
  release(): void;
}

/**
 * The per-process rate-limit windows, one per key, for the gateway's lifetime: a provider that a
 * reload rebuilds takes the window of its predecessor, which still counts the calls of the last
 * second (and which the retiring predecessor goes on using), so no reload lets more than the
 * limit into any second. The newest holder's rate applies to every holder.
 */
export interface RateWindows {
  /** The window of `key` at `perSecond`: the one its holders share, else a new one. */
  acquire(key: string, perSecond: number): WindowLease;
  /** The windows kept: those held, and those released whose calls still count. */
  size(): number;
}

interface Held {
  window: Window;
  /** Holders in the order they came; the last one's rate applies. */
  rates: Map<object, number>;
}

/**
 * Windows live while a holder uses them, and after the last release until their last call has
 * left the window (a provider removed and added again at once still finds its calls); those are
 * dropped at the next acquire or release, so windows of providers removed for good do not pile up.
 */
export function createRateWindows(clock: Clock): RateWindows {
  const windows = new Map<string, Held>();
  const sweep = (): void => {
    for (const [key, held] of windows) {
      if (held.rates.size === 0 && held.window.idle()) windows.delete(key);
    }
  };
  /** The newest holder's rate, keeping as many takes as the highest limit still in use counts. */
  const apply = (held: Held): void => {
    const rates = [...held.rates.values()];
    const newest = rates.at(-1);
    if (newest === undefined) return;
    held.window.setRate(newest, Math.max(...rates.map((r) => windowOf(r).limit)));
  };
  return {
    acquire(key, perSecond) {
      sweep();
      let held = windows.get(key);
      if (held === undefined) {
        held = { window: new Window(perSecond, clock), rates: new Map() };
        windows.set(key, held);
      }
      const holder = {};
      const entry = held;
      entry.rates.set(holder, perSecond);
      apply(entry);
      return {
        window: entry.window,
        release() {
          if (!entry.rates.delete(holder)) return;
          apply(entry);
          sweep();
        },
      };
    },
    size() {
      sweep();
      return windows.size;
    },
  };
}

/** A rate limit that may live outside the process (an account-wide window in Redis). */
export interface RateLimiter {
  /** Takes a slot now: 0 on success, else the milliseconds until one is free. */
  tryTake(): Promise<number>;
  /** Waits for a slot on the window's clock; resolves false when the signal aborts first. */
  take(signal: AbortSignal): Promise<boolean>;
}

/**
 * `shared` answers from a window every replica uses; while it cannot answer (undefined: the
 * store is down), the local window holds instead, so the limit degrades to per-process.
 */
export function createRateLimiter(
  local: SlidingWindow,
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

/** The refusal while the gateway's own limit holds; `waitMs` until the next slot. */
export function rateLimited(waitMs: number): ProviderOutcome {
  return failed(
    'rate_limited',
    'RATE_LIMITED',
    "the provider's rate limit (rateLimitPerSecond) holds",
    { retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)), notSent: true },
  );
}

/**
 * Refuses at once while the limiter has no free slot: a caller told when to come back does better
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
