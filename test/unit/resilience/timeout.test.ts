import type { ProviderOutcome } from '../../../src/core/provider-outcome';
import { deadlineIn } from '../../../src/resilience/deadline';
import type { PolicyContext } from '../../../src/resilience/policy';
import { attemptTimeoutPolicy } from '../../../src/resilience/timeout';
import { createFakeClock, type FakeClock } from '../../helpers/fake-clock';

const ok: ProviderOutcome = { outcome: 'canceled' };
let clock: FakeClock;
beforeEach(() => {
  clock = createFakeClock();
});

/** A `next` step that ends with `timeout` when its signal fires. */
const untilAborted = (ctx: PolicyContext): Promise<ProviderOutcome> =>
  new Promise((resolve) => {
    ctx.deadline.signal.addEventListener('abort', () => {
      resolve({ outcome: 'timeout', error: { code: 'UPSTREAM_TIMEOUT', message: 'cut' } });
    });
  });

describe('attemptTimeoutPolicy', () => {
  it('ends an attempt after timeoutMs through the request deadline', async () => {
    const ctx: PolicyContext = { deadline: deadlineIn(1_000, clock), onAttempt: () => undefined };
    const run = attemptTimeoutPolicy(100).execute(untilAborted, ctx);
    await clock.advance(99);
    expect(ctx.deadline.signal.aborted).toBe(false);
    await clock.advance(1);
    expect((await run).outcome).toBe('timeout');
    expect(clock.now()).toBe(100);
  });

  it('restores the request deadline once the attempt is over', async () => {
    const ctx: PolicyContext = { deadline: deadlineIn(1_000, clock), onAttempt: () => undefined };
    const policy = attemptTimeoutPolicy(100);
    expect(await policy.execute(() => Promise.resolve(ok), ctx)).toBe(ok);
    await clock.advance(999);
    expect(ctx.deadline.signal.aborted).toBe(false);
    await clock.advance(1);
    expect(ctx.deadline.signal.aborted).toBe(true);
  });

  it('gives each attempt its own timeoutMs', async () => {
    const ctx: PolicyContext = { deadline: deadlineIn(1_000, clock), onAttempt: () => undefined };
    const policy = attemptTimeoutPolicy(100);
    const slow = (): Promise<ProviderOutcome> =>
      new Promise((resolve) =>
        clock.setTimer(() => {
          resolve(ok);
        }, 80),
      );
    const first = policy.execute(slow, ctx);
    await clock.advance(80);
    expect(await first).toBe(ok);
    const second = policy.execute(slow, ctx);
    await clock.advance(80);
    expect(await second).toBe(ok);
    expect(ctx.deadline.signal.aborted).toBe(false);
  });

  it('leaves a shorter request deadline as it is', async () => {
    const ctx: PolicyContext = { deadline: deadlineIn(50, clock), onAttempt: () => undefined };
    const run = attemptTimeoutPolicy(100).execute(untilAborted, ctx);
    await clock.advance(50);
    expect((await run).outcome).toBe('timeout');
  });
});
