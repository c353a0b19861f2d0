import type { ProviderOutcome } from '../../../src/core/provider-outcome';
import { deadlineIn } from '../../../src/resilience/deadline';
import {
  createRateLimiter,
  createTokenBucket,
  defaultCapacity,
  rateLimitPolicy,
} from '../../../src/resilience/rate-limit';
import { createFakeClock, type FakeClock } from '../../helpers/fake-clock';

const ok: ProviderOutcome = { outcome: 'canceled' };
let clock: FakeClock;
beforeEach(() => {
  clock = createFakeClock();
});

describe('createTokenBucket', () => {
  it('allows a burst of capacity, then says how long until the next token', () => {
    const bucket = createTokenBucket(2, 3, clock);
    expect([bucket.tryTake(), bucket.tryTake(), bucket.tryTake()]).toEqual([0, 0, 0]);
    expect(bucket.tryTake()).toBe(500);
  });

  it('refills at perSecond as the clock moves, never past capacity', async () => {
    const bucket = createTokenBucket(2, 2, clock);
    bucket.tryTake();
    bucket.tryTake();
    await clock.advance(250);
    expect(bucket.tryTake()).toBe(250);
    await clock.advance(250);
    expect(bucket.tryTake()).toBe(0);
    await clock.advance(60_000);
    expect([bucket.tryTake(), bucket.tryTake(), bucket.tryTake()]).toEqual([0, 0, 500]);
  });

  it('defaultCapacity is one second of tokens, at least one', () => {
    expect(defaultCapacity(0.01)).toBe(1);
    expect(defaultCapacity(2.5)).toBe(3);
  });
});

describe('createRateLimiter', () => {
  it('answers from the shared bucket while it answers, from the local one while it cannot', async () => {
    let remote: number | undefined = 700;
    const limiter = createRateLimiter(createTokenBucket(1, 1, clock), () =>
      Promise.resolve(remote),
    );
    expect(await limiter.tryTake()).toBe(700);
    remote = undefined;
    expect(await limiter.tryTake()).toBe(0);
    expect(await limiter.tryTake()).toBe(1_000);
  });

  it('take waits on the clock until a token comes', async () => {
    const limiter = createRateLimiter(createTokenBucket(1, 1, clock));
    expect(await limiter.take(new AbortController().signal)).toBe(true);
    let taken: boolean | undefined;
    void limiter.take(new AbortController().signal).then((t) => (taken = t));
    await clock.advance(999);
    expect(taken).toBeUndefined();
    await clock.advance(1);
    expect(taken).toBe(true);
  });

  it('take gives up with false when the signal aborts first', async () => {
    const limiter = createRateLimiter(createTokenBucket(0.1, 1, clock));
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
  it('runs the rest while a token is there, then refuses with RATE_LIMITED and Retry-After, sending nothing', async () => {
    const policy = rateLimitPolicy(createRateLimiter(createTokenBucket(0.25, 1, clock)));
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

  it('asks for at least one second when the token is nearly there', async () => {
    const policy = rateLimitPolicy(createRateLimiter(createTokenBucket(10, 1, clock)));
    const ctx = { deadline: deadlineIn(1_000, clock), onAttempt: () => undefined };
    await policy.execute(() => Promise.resolve(ok), ctx);
    const refused = await policy.execute(() => Promise.resolve(ok), ctx);
    expect(refused.retryAfterSeconds).toBe(1);
    ctx.deadline.dispose();
  });
});
