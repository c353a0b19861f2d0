import { failed, type ProviderOutcome } from '../../../src/core/provider-outcome';
import { breakerPolicy } from '../../../src/resilience/breaker';
import { bulkheadPolicy } from '../../../src/resilience/bulkhead';
import { deadlineIn } from '../../../src/resilience/deadline';
import { composePolicies, type Policy, type PolicyContext } from '../../../src/resilience/policy';
import {
  createRateLimiter,
  createSlidingWindow,
  rateLimitPolicy,
} from '../../../src/resilience/rate-limit';
import { retryPolicy } from '../../../src/resilience/retry';
import { attemptTimeoutPolicy } from '../../../src/resilience/timeout';
import { createFakeClock, type FakeClock } from '../../helpers/fake-clock';

const ok: ProviderOutcome = { outcome: 'canceled' };
const refused = failed('unavailable', 'UPSTREAM_UNREACHABLE', 'ECONNREFUSED', { notSent: true });

let clock: FakeClock;
beforeEach(() => {
  clock = createFakeClock();
});

/** A policy that logs when it is entered and left. */
function tracing(name: string, log: string[]): Policy {
  return {
    async execute(next, ctx) {
      log.push(`${name}>`);
      const outcome = await next(ctx);
      log.push(`<${name}`);
      return outcome;
    },
  };
}

function recording(ms: number) {
  const attempts: [ProviderOutcome, number][] = [];
  const ctx: PolicyContext = {
    deadline: deadlineIn(ms, clock),
    onAttempt: (outcome, durationMs) => attempts.push([outcome, durationMs]),
  };
  return { ctx, attempts };
}

describe('composePolicies', () => {
  it('runs the policies outermost first around the attempt', async () => {
    const log: string[] = [];
    const run = composePolicies([tracing('a', log), tracing('b', log), tracing('c', log)], clock);
    const { ctx } = recording(1_000);
    const outcome = await run(() => {
      log.push('attempt');
      return Promise.resolve(ok);
    }, ctx);
    expect(outcome).toBe(ok);
    expect(log).toEqual(['a>', 'b>', 'c>', 'attempt', '<c', '<b', '<a']);
  });

  it("hands the attempt the deadline's signal, and runs it once with no policies", async () => {
    const { ctx, attempts } = recording(1_000);
    const seen: AbortSignal[] = [];
    await composePolicies([], clock)((signal) => {
      seen.push(signal);
      return Promise.resolve(ok);
    }, ctx);
    expect(seen).toEqual([ctx.deadline.signal]);
    expect(attempts).toEqual([[ok, 0]]);
  });

  it('reports every attempt through onAttempt with its duration on the clock', async () => {
    const { ctx, attempts } = recording(10_000);
    const run = composePolicies(
      [retryPolicy({ attempts: 3, baseDelayMs: 1, maxDelayMs: 5 }, clock)],
      clock,
    );
    const answers = [refused, refused, ok];
    const durations = [30, 40, 50];
    const pending = run(
      () =>
        new Promise((resolve) => {
          const outcome = answers.shift() ?? ok;
          clock.setTimer(() => {
            resolve(outcome);
          }, durations.shift() ?? 0);
        }),
      ctx,
    );
    await clock.advance(1_000);
    expect(await pending).toBe(ok);
    expect(attempts.map(([o]) => o)).toEqual([refused, refused, ok]);
    // The jittered retry waits are fractional milliseconds, so the clock's sums round a little.
    attempts.forEach(([, durationMs], i) => {
      expect(durationMs).toBeCloseTo([30, 40, 50][i] ?? NaN, 6);
    });
  });

  it('reports no attempt when a policy answers by itself', async () => {
    const { ctx, attempts } = recording(1_000);
    const refuse: Policy = { execute: () => Promise.resolve(refused) };
    const attempt = jest.fn(() => Promise.resolve(ok));
    expect(await composePolicies([refuse], clock)(attempt, ctx)).toBe(refused);
    expect(attempt).not.toHaveBeenCalled();
    expect(attempts).toEqual([]);
  });

  it('keeps the whole chain within the request deadline', async () => {
    const policies = [
      rateLimitPolicy(createRateLimiter(createSlidingWindow(100, clock))),
      bulkheadPolicy({ maxConcurrent: 2, maxQueue: 2 }),
      breakerPolicy({ failureThreshold: 100, resetAfterMs: 30_000 }, clock),
      retryPolicy({ attempts: 1_000, baseDelayMs: 10, maxDelayMs: 20 }, clock),
      attemptTimeoutPolicy(5_000),
    ];
    const run = composePolicies(policies, clock);
    const { ctx, attempts } = recording(300);
    const started: number[] = [];
    let settledAt: number | undefined;
    void run((signal) => {
      started.push(clock.now());
      return new Promise((resolve) => {
        const cancel = clock.setTimer(() => {
          resolve(refused);
        }, 40);
        signal.addEventListener('abort', () => {
          cancel();
          resolve(failed('timeout', 'UPSTREAM_TIMEOUT', 'cut by the deadline'));
        });
      });
    }, ctx).then(() => (settledAt = clock.now()));
    await clock.advance(10_000);
    expect(settledAt).toBeDefined();
    expect(settledAt).toBeLessThanOrEqual(300);
    expect(started.length).toBeGreaterThan(1);
    expect(started.every((t) => t < 300)).toBe(true);
    expect(attempts).toHaveLength(started.length);
  });

  it('cuts an attempt at its own timeout, inside the request deadline', async () => {
    const run = composePolicies(
      [
        retryPolicy({ attempts: 3, baseDelayMs: 1, maxDelayMs: 5 }, clock),
        attemptTimeoutPolicy(100),
      ],
      clock,
    );
    const { ctx, attempts } = recording(10_000);
    const pending = run(
      (signal) =>
        new Promise((resolve) => {
          signal.addEventListener('abort', () => {
            resolve(failed('timeout', 'UPSTREAM_TIMEOUT', 'attempt timed out'));
          });
        }),
      ctx,
    );
    await clock.advance(100);
    expect((await pending).outcome).toBe('timeout');
    expect(attempts).toHaveLength(1);
    expect(attempts[0]?.[1]).toBe(100);
  });
});
