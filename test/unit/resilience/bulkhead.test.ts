import { AsyncLocalStorage } from 'node:async_hooks';
import type { ProviderOutcome } from '../../../src/core/provider-outcome';
import { bulkheadPolicy } from '../../../src/resilience/bulkhead';
import { deadlineIn } from '../../../src/resilience/deadline';
import type { PolicyContext } from '../../../src/resilience/policy';
import { createFakeClock, type FakeClock } from '../../helpers/fake-clock';

const ok: ProviderOutcome = { outcome: 'canceled' };
let clock: FakeClock;
beforeEach(() => {
  clock = createFakeClock();
});

function ctxIn(ms: number): PolicyContext {
  return { deadline: deadlineIn(ms, clock), onAttempt: () => undefined };
}

/** A `next` step that runs until the test ends it (or its deadline fires: then `timeout`). */
function held() {
  const started: string[] = [];
  const enders = new Map<string, (o: ProviderOutcome) => void>();
  const step = (id: string) => (ctx: PolicyContext) =>
    new Promise<ProviderOutcome>((resolve) => {
      started.push(id);
      enders.set(id, resolve);
      ctx.deadline.signal.addEventListener('abort', () => {
        resolve({ outcome: 'timeout', error: { code: 'UPSTREAM_TIMEOUT', message: id } });
      });
    });
  const end = (id: string): void => {
    enders.get(id)?.(ok);
  };
  return { started, step, end };
}

describe('bulkheadPolicy', () => {
  it('runs a queued attempt in its own async context, not in that of the attempt that freed the slot', async () => {
    const policy = bulkheadPolicy({ maxConcurrent: 1, maxQueue: 1 });
    const request = new AsyncLocalStorage<string>();
    const h = held();
    const seen: (string | undefined)[] = [];
    const step = (id: string) => (ctx: PolicyContext) => {
      seen.push(request.getStore());
      return h.step(id)(ctx);
    };
    const first = request.run('a', () => policy.execute(step('a'), ctxIn(1_000)));
    const second = request.run('b', () => policy.execute(step('b'), ctxIn(1_000)));
    await clock.advance(0);
    expect(h.started).toEqual(['a']);
    request.run('a', () => {
      h.end('a');
    });
    await first;
    await clock.advance(0);
    expect(h.started).toEqual(['a', 'b']);
    h.end('b');
    await second;
    expect(seen).toEqual(['a', 'b']);
  });

  it('past maxConcurrent + maxQueue refuses at once with BULKHEAD_FULL, Retry-After 1, not sent', async () => {
    const policy = bulkheadPolicy({ maxConcurrent: 1, maxQueue: 0 });
    const h = held();
    const first = policy.execute(h.step('a'), ctxIn(1_000));
    const second = await policy.execute(h.step('b'), ctxIn(1_000));
    expect(second).toMatchObject({
      outcome: 'unavailable',
      error: { code: 'BULKHEAD_FULL' },
      retryAfterSeconds: 1,
      notSent: true,
    });
    expect(h.started).toEqual(['a']);
    h.end('a');
    expect(await first).toBe(ok);
  });

  it('queues up to maxQueue and runs the queued ones in order as slots free', async () => {
    const policy = bulkheadPolicy({ maxConcurrent: 1, maxQueue: 2 });
    const h = held();
    const runs = ['a', 'b', 'c'].map((id) => policy.execute(h.step(id), ctxIn(1_000)));
    await clock.advance(0);
    expect(h.started).toEqual(['a']);
    h.end('a');
    await clock.advance(0);
    expect(h.started).toEqual(['a', 'b']);
    h.end('b');
    await clock.advance(0);
    h.end('c');
    expect(await Promise.all(runs)).toEqual([ok, ok, ok]);
    expect(h.started).toEqual(['a', 'b', 'c']);
  });

  it('lets a request still queued at its deadline leave with UPSTREAM_TIMEOUT, never running it', async () => {
    const policy = bulkheadPolicy({ maxConcurrent: 1, maxQueue: 5 });
    const h = held();
    const first = policy.execute(h.step('a'), ctxIn(10_000));
    const queued = policy.execute(h.step('b'), ctxIn(300));
    await clock.advance(300);
    expect(await queued).toEqual({
      outcome: 'timeout',
      error: { code: 'UPSTREAM_TIMEOUT', message: expect.stringMatching(/not sent/) },
      notSent: true,
    });
    h.end('a');
    expect(await first).toBe(ok);
    await clock.advance(0);
    expect(h.started).toEqual(['a']);
  });

  it('leaves a running attempt alone at the deadline: it ends by itself with its own outcome', async () => {
    const policy = bulkheadPolicy({ maxConcurrent: 1, maxQueue: 1 });
    const h = held();
    const running = policy.execute(h.step('a'), ctxIn(200));
    await clock.advance(200);
    expect(await running).toEqual({
      outcome: 'timeout',
      error: { code: 'UPSTREAM_TIMEOUT', message: 'a' },
    });
  });

  it('answers a request whose deadline already passed without running it', async () => {
    const policy = bulkheadPolicy({ maxConcurrent: 1, maxQueue: 1 });
    const ctx = ctxIn(0);
    await clock.advance(0);
    const next = jest.fn(() => Promise.resolve(ok));
    expect(await policy.execute(next, ctx)).toMatchObject({
      outcome: 'timeout',
      error: { code: 'UPSTREAM_TIMEOUT' },
      notSent: true,
    });
    expect(next).not.toHaveBeenCalled();
  });
});
