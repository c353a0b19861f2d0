import type { ProviderOutcome } from '../../../src/core/provider-outcome';
import { deadlineIn } from '../../../src/resilience/deadline';
import {
  createRateLimiter,
  createRateWindows,
  createSlidingWindow,
  JITTER_GUARD_MS,
  rateLimitPolicy,
  windowOf,
  type SlidingWindow,
} from '../../../src/resilience/rate-limit';
import { createFakeClock, type FakeClock } from '../../helpers/fake-clock';

const ok: ProviderOutcome = { outcome: 'canceled' };
let clock: FakeClock;
beforeEach(() => {
  clock = createFakeClock();
});

describe('createSlidingWindow', () => {
  it('allows the limit at once, then says how long until the oldest call leaves the window', async () => {
    const window = createSlidingWindow(3, clock);
    expect([window.tryTake(), window.tryTake()]).toEqual([0, 0]);
    await clock.advance(400);
    expect(window.tryTake()).toBe(0);
    expect(window.tryTake()).toBe(600 + JITTER_GUARD_MS);
    await clock.advance(600 + JITTER_GUARD_MS);
    // The first two left together; the third's slot is still taken.
    expect([window.tryTake(), window.tryTake(), window.tryTake()]).toEqual([0, 0, 400]);
  });

  it('never lets more than the limit into any window, whatever the spacing of the calls', async () => {
    const window = createSlidingWindow(5, clock);
    const taken: number[] = [];
    const windowMs = 1000 + JITTER_GUARD_MS;
    // One try every 50 ms for ten windows: a token bucket of 5/s with a burst of 5 lets 6 to 10
    // into a sliding second here.
    for (let t = 0; t < 10 * windowMs; t += 50) {
      if (window.tryTake() === 0) taken.push(clock.now());
      await clock.advance(50);
    }
    for (let i = 5; i < taken.length; i++) {
      expect((taken[i] ?? 0) - (taken[i - 5] ?? 0)).toBeGreaterThanOrEqual(windowMs);
    }
    // And the rate holds on average: 5 per window (a window without the guard lets 55 through).
    expect(taken).toHaveLength(50);
  });

  it('windowOf: a whole number of calls, at least one, per the time they take at the rate, plus the guard', () => {
    expect(JITTER_GUARD_MS).toBeGreaterThan(0);
    expect(windowOf(5)).toEqual({ limit: 5, windowMs: 1000 + JITTER_GUARD_MS });
    expect(windowOf(0.25)).toEqual({ limit: 1, windowMs: 4000 + JITTER_GUARD_MS });
    expect(windowOf(2.5)).toEqual({ limit: 3, windowMs: 1200 + JITTER_GUARD_MS });
  });

  it('holds the call after the limit until the guard has passed, too: jitter cannot squeeze in one more', async () => {
    const window = createSlidingWindow(5, clock);
    // The first at 0, four more spread over the second.
    expect(window.tryTake()).toBe(0);
    for (let i = 0; i < 4; i++) {
      await clock.advance(200);
      expect(window.tryTake()).toBe(0);
    }
    // At 1000 the first has left a plain second, not the guarded window.
    await clock.advance(200);
    expect(window.tryTake()).toBe(JITTER_GUARD_MS);
    await clock.advance(JITTER_GUARD_MS - 1);
    expect(window.tryTake()).toBe(1);
    await clock.advance(1);
    expect(clock.now()).toBe(1000 + JITTER_GUARD_MS);
    expect(window.tryTake()).toBe(0);
    // The next waits until the second call (at 200) has left its guarded window too.
    expect(window.tryTake()).toBe(200 + 1000 + JITTER_GUARD_MS - clock.now());
  });
});

/** Takes from `window` until it refuses; returns how many it let through. */
function drain(window: SlidingWindow): number {
  let taken = 0;
  while (window.tryTake() === 0) taken++;
  return taken;
}

describe('createRateWindows: a window outlives the instances that use it', () => {
  it('gives a second holder of the same key the same calls, so together they stay at the limit', async () => {
    const windows = createRateWindows(clock);
    const old = windows.acquire('dns', 5);
    expect([old.window.tryTake(), old.window.tryTake(), old.window.tryTake()]).toEqual([0, 0, 0]);
    await clock.advance(300);
    // The rebuilt instance: only what the last second left, and the retiring one shares it.
    const rebuilt = windows.acquire('dns', 5);
    expect(drain(rebuilt.window)).toBe(2);
    expect(old.window.tryTake()).toBe(700 + JITTER_GUARD_MS);
    old.release();
    await clock.advance(700 + JITTER_GUARD_MS);
    expect(drain(rebuilt.window)).toBe(3);
    // Other keys have their own window.
    expect(drain(windows.acquire('wh', 5).window)).toBe(5);
  });

  it('goes on at a lower limit with the latest calls: the window holds the new limit at once', async () => {
    const windows = createRateWindows(clock);
    const old = windows.acquire('dns', 5);
    for (let i = 0; i < 4; i++) {
      expect(old.window.tryTake()).toBe(0);
      await clock.advance(100);
    }
    // Calls at 0, 100, 200 and 300; now 400. At 2/s the latest two (200, 300) fill the window.
    const rebuilt = windows.acquire('dns', 2);
    expect(rebuilt.window.tryTake()).toBe(800 + JITTER_GUARD_MS);
    expect(old.window.tryTake()).toBe(800 + JITTER_GUARD_MS);
    old.release();
    await clock.advance(800 + JITTER_GUARD_MS);
    expect(drain(rebuilt.window)).toBe(1);
    await clock.advance(100);
    expect(drain(rebuilt.window)).toBe(1);
  });

  it('goes on at a higher limit counting the calls already made', () => {
    const windows = createRateWindows(clock);
    const old = windows.acquire('wh', 2);
    expect(drain(old.window)).toBe(2);
    const rebuilt = windows.acquire('wh', 5);
    expect(drain(rebuilt.window)).toBe(3);
    expect(old.window.tryTake()).toBeGreaterThan(0);
  });

  it("falls back to the remaining holder's rate, calls kept, when the newest leaves first (a failed reload)", async () => {
    const windows = createRateWindows(clock);
    const serving = windows.acquire('wh', 5);
    expect(drain(serving.window)).toBe(5);
    const failed = windows.acquire('wh', 1);
    failed.release();
    failed.release();
    // Back at 5/s with all five calls of this second still counted (none were dropped at 1/s).
    expect(serving.window.tryTake()).toBe(1000 + JITTER_GUARD_MS);
    await clock.advance(1000 + JITTER_GUARD_MS);
    expect(drain(serving.window)).toBe(5);
  });

  it('keeps a released window while its calls still count, then drops it', async () => {
    const windows = createRateWindows(clock);
    const removed = windows.acquire('old', 5);
    expect(drain(removed.window)).toBe(5);
    removed.release();
    expect(windows.size()).toBe(1);
    // Removed and added again within the second: the calls of that second still count.
    await clock.advance(500);
    const again = windows.acquire('old', 5);
    expect(again.window.tryTake()).toBe(500 + JITTER_GUARD_MS);
    again.release();
    // A second after them the calls still count, for the guard's length.
    await clock.advance(500);
    expect(windows.size()).toBe(1);
    await clock.advance(JITTER_GUARD_MS);
    expect(windows.size()).toBe(0);
    // A key held by no one and acquired anew starts empty.
    expect(drain(windows.acquire('old', 5).window)).toBe(5);
  });

  it('drops the windows of providers removed for good, however many came and went', async () => {
    const windows = createRateWindows(clock);
    const kept = windows.acquire('kept', 5);
    kept.window.tryTake();
    for (let i = 0; i < 100; i++) {
      const lease = windows.acquire(`gone-${i}`, 5);
      lease.window.tryTake();
      lease.release();
      await clock.advance(1000 + JITTER_GUARD_MS);
    }
    // Only the one held is left; each gone window was dropped once its window passed.
    expect(windows.size()).toBe(1);
    kept.release();
    expect(windows.size()).toBe(0);
  });
});

describe('createRateLimiter', () => {
  it('answers from the shared window while it answers, from the local one while it cannot', async () => {
    let remote: number | undefined = 700;
    const limiter = createRateLimiter(createSlidingWindow(1, clock), () => Promise.resolve(remote));
    expect(await limiter.tryTake()).toBe(700);
    remote = undefined;
    expect(await limiter.tryTake()).toBe(0);
    expect(await limiter.tryTake()).toBe(1_000 + JITTER_GUARD_MS);
  });

  it('take waits on the clock until a slot is free', async () => {
    const limiter = createRateLimiter(createSlidingWindow(1, clock));
    expect(await limiter.take(new AbortController().signal)).toBe(true);
    let taken: boolean | undefined;
    void limiter.take(new AbortController().signal).then((t) => (taken = t));
    await clock.advance(999 + JITTER_GUARD_MS);
    expect(taken).toBeUndefined();
    await clock.advance(1);
    expect(taken).toBe(true);
  });

  it('take gives up with false when the signal aborts first', async () => {
    const limiter = createRateLimiter(createSlidingWindow(0.1, clock));
    await limiter.tryTake();
    const controller = new AbortController();
    const taken = limiter.take(controller.signal);
    await clock.advance(100);
    controller.abort();
    expect(await taken).toBe(false);
    expect(clock.pendingTimers()).toBe(0);
  });
});

describe('rateLimitPolicy', () => {
  it('runs the rest while a slot is free, then refuses with RATE_LIMITED and Retry-After, sending nothing', async () => {
    const policy = rateLimitPolicy(createRateLimiter(createSlidingWindow(0.25, clock)));
    const deadline = deadlineIn(1_000, clock);
    const ctx = { deadline, onAttempt: () => undefined };
    const next = jest.fn(() => Promise.resolve(ok));
    expect(await policy.execute(next, ctx)).toBe(ok);
    await clock.advance(1_500);
    expect(await policy.execute(next, ctx)).toEqual({
      outcome: 'rate_limited',
      error: { code: 'RATE_LIMITED', message: expect.stringMatching(/rateLimitPerSecond/) },
      retryAfterSeconds: 3,
      notSent: true,
    });
    expect(next).toHaveBeenCalledTimes(1);
    deadline.dispose();
  });

  it('asks for at least one second when a slot is nearly free', async () => {
    const policy = rateLimitPolicy(createRateLimiter(createSlidingWindow(10, clock)));
    const ctx = { deadline: deadlineIn(1_000, clock), onAttempt: () => undefined };
    for (let i = 0; i < 10; i++) await policy.execute(() => Promise.resolve(ok), ctx);
    await clock.advance(900);
    const refused = await policy.execute(() => Promise.resolve(ok), ctx);
    expect(refused.retryAfterSeconds).toBe(1);
    ctx.deadline.dispose();
  });
});
