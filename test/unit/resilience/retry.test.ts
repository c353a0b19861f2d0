import { failed, type ProviderOutcome } from '../../../src/core/provider-outcome';
import { deadlineIn, type Deadline } from '../../../src/resilience/deadline';
import type { PolicyContext } from '../../../src/resilience/policy';
import { isRetryable, retryPolicy } from '../../../src/resilience/retry';
import { createFakeClock, settle, type FakeClock } from '../../helpers/fake-clock';

const ok: ProviderOutcome = { outcome: 'canceled' };
const refused = failed('unavailable', 'UPSTREAM_UNREACHABLE', 'ECONNREFUSED', { notSent: true });

let clock: FakeClock;
beforeEach(() => {
  clock = createFakeClock();
});

function ctxOf(deadline: Deadline): PolicyContext {
  return { deadline, onAttempt: () => undefined };
}

/** A `next` step answering with `answers` in turn (the last one repeats). */
function answering(...answers: ProviderOutcome[]) {
  return jest.fn(() => Promise.resolve(answers.shift() ?? refused));
}

/** The jittered delays are fractional milliseconds: their sums on the clock round a little. */
const EPSILON = 1e-6;

/** Time between consecutive attempts. */
function gapsOf(at: readonly number[]): number[] {
  return at.slice(1).map((t, i) => t - (at[i] ?? 0));
}

describe('isRetryable', () => {
  it('retries only an unavailable upstream that certainly got nothing', () => {
    expect(isRetryable(refused)).toBe(true);
    expect(isRetryable(failed('unavailable', 'UPSTREAM_UNAVAILABLE', '503'))).toBe(false);
    expect(isRetryable(failed('timeout', 'UPSTREAM_TIMEOUT', 'x', { notSent: true }))).toBe(false);
    expect(isRetryable(failed('rate_limited', 'UPSTREAM_RATE_LIMITED', '429'))).toBe(false);
    expect(isRetryable(failed('upstream_error', 'UPSTREAM_INTERNAL_ERROR', '500'))).toBe(false);
    expect(isRetryable(ok)).toBe(false);
  });
});

describe('retryPolicy', () => {
  const fast = { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 };

  it('repeats a retryable outcome up to attempts, waiting on the clock between them', async () => {
    const at: number[] = [];
    const answers = [refused, refused, refused, ok];
    const next = jest.fn(() => {
      at.push(clock.now());
      return Promise.resolve(answers.shift() ?? ok);
    });
    const run = retryPolicy(fast, clock).execute(next, ctxOf(deadlineIn(10_000, clock)));
    await settle();
    expect(next).toHaveBeenCalledTimes(1);
    expect(clock.pendingTimers()).toBe(2);
    await clock.advance(1_000);
    expect(await run).toBe(refused);
    expect(at).toHaveLength(3);
    for (const gap of gapsOf(at)) {
      expect(gap).toBeGreaterThanOrEqual(0);
      expect(gap).toBeLessThanOrEqual(fast.maxDelayMs + EPSILON);
    }
  });

  it('stops at the first outcome that is not retryable', async () => {
    const answer = failed('upstream_error', 'UPSTREAM_INTERNAL_ERROR', '500');
    const next = answering(refused, answer, ok);
    const run = retryPolicy(fast, clock).execute(next, ctxOf(deadlineIn(10_000, clock)));
    await clock.advance(5);
    expect(await run).toBe(answer);
    expect(next).toHaveBeenCalledTimes(2);
  });

  it('never waits with attempts: 1', async () => {
    const next = answering(refused, ok);
    expect(
      await retryPolicy({ ...fast, attempts: 1 }, clock).execute(
        next,
        ctxOf(deadlineIn(10_000, clock)),
      ),
    ).toBe(refused);
    expect(clock.pendingTimers()).toBe(1);
  });

  it('does not start a retry the deadline cannot hold', async () => {
    const next = answering(refused, ok);
    const deadline = deadlineIn(0, clock);
    expect(await retryPolicy(fast, clock).execute(next, ctxOf(deadline))).toBe(refused);
    expect(next).toHaveBeenCalledTimes(1);
  });

  it('returns the upstream answer when the deadline fires during the attempt', async () => {
    const deadline = deadlineIn(100, clock);
    const next = jest.fn(
      (ctx: PolicyContext) =>
        new Promise<ProviderOutcome>((resolve) => {
          ctx.deadline.signal.addEventListener('abort', () => {
            resolve(refused);
          });
        }),
    );
    const run = retryPolicy(fast, clock).execute(next, ctxOf(deadline));
    await clock.advance(100);
    expect(await run).toBe(refused);
    expect(next).toHaveBeenCalledTimes(1);
  });

  it("returns the upstream's last answer, not a timeout, when the deadline cuts the wait", async () => {
    const controller = new AbortController();
    const deadline: Deadline = {
      signal: controller.signal,
      at: clock.now() + 60_000,
      narrow: () => () => undefined,
      dispose: () => undefined,
    };
    const next = answering(refused, ok);
    const run = retryPolicy({ attempts: 3, baseDelayMs: 1_000, maxDelayMs: 1_000 }, clock).execute(
      next,
      ctxOf(deadline),
    );
    await clock.advance(0);
    controller.abort();
    expect(await run).toBe(refused);
    expect(next).toHaveBeenCalledTimes(1);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('keeps its waits within maxDelayMs however many retries', async () => {
    const at: number[] = [];
    const next = jest.fn(() => {
      at.push(clock.now());
      return Promise.resolve(refused);
    });
    const run = retryPolicy({ attempts: 8, baseDelayMs: 50, maxDelayMs: 80 }, clock).execute(
      next,
      ctxOf(deadlineIn(10_000, clock)),
    );
    await clock.advance(10_000);
    expect(await run).toBe(refused);
    expect(at).toHaveLength(8);
    for (const gap of gapsOf(at)) expect(gap).toBeLessThanOrEqual(80 + EPSILON);
  });
});
