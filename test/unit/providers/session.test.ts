import { failed } from '../../../src/core/provider-outcome';
import {
  createSessionPool,
  type AcquireResult,
  type SessionLease,
  type SessionPool,
  type SessionTransport,
} from '../../../src/providers/dyn/session';
import { deadlineIn } from '../../../src/resilience/deadline';
import { createFakeClock, settle, type FakeClock } from '../../helpers/fake-clock';

type LoginAnswer = Awaited<ReturnType<SessionTransport['login']>>;

const BACKOFF_MS = 60_000;
const LOGIN_TIMEOUT_MS = 10_000;
const badPassword = failed('upstream_error', 'UPSTREAM_AUTH_FAILED', 'login refused');

/** Sessions in memory: each login waits until the test answers it. */
function memoryTransport() {
  const logins: { signal: AbortSignal; answer(a: LoginAnswer): void; fail(e: Error): void }[] = [];
  const logouts: { token: string; signal: AbortSignal }[] = [];
  let hangLogouts = false;
  const transport: SessionTransport = {
    login: (signal) =>
      new Promise<LoginAnswer>((resolve, reject) => {
        logins.push({ signal, answer: resolve, fail: reject });
      }),
    logout(token, signal) {
      logouts.push({ token, signal });
      if (!hangLogouts) return Promise.resolve();
      return new Promise((resolve) => {
        signal.addEventListener('abort', () => {
          resolve();
        });
      });
    },
  };
  /** Answers login `n` (0-based) with a session. */
  const grant = (n: number, token: string): void => {
    logins[n]?.answer({ ok: true, token });
  };
  const refuse = (n: number, badCredentials: boolean): void => {
    logins[n]?.answer({ ok: false, outcome: badPassword, badCredentials });
  };
  const hang = (): void => {
    hangLogouts = true;
  };
  return { transport, logins, logouts, grant, refuse, hang };
}

let clock: FakeClock;
let t: ReturnType<typeof memoryTransport>;
let pool: SessionPool;

function start(maxSessions: number): void {
  pool = createSessionPool(t.transport, {
    maxSessions,
    loginBackoffMs: BACKOFF_MS,
    loginTimeoutMs: LOGIN_TIMEOUT_MS,
    clock,
  });
}

const never = (): AbortSignal => new AbortController().signal;

function leaseOf(result: AcquireResult | undefined): SessionLease {
  if (result?.ok !== true) throw new Error(`no lease: ${JSON.stringify(result)}`);
  return result.lease;
}

/** Acquires and records the result when it comes. */
function acquiring(signal = never()): { result: AcquireResult | undefined } {
  const box: { result: AcquireResult | undefined } = { result: undefined };
  void pool.acquire(signal).then((r) => (box.result = r));
  return box;
}

beforeEach(() => {
  clock = createFakeClock();
  t = memoryTransport();
});

describe('session pool', () => {
  it('logs in one at a time, growing to maxSessions, then serves waiters from returned sessions', async () => {
    start(3);
    const waiting = [acquiring(), acquiring(), acquiring(), acquiring()];
    await settle();
    expect(t.logins).toHaveLength(1);
    for (const [n, token] of ['s1', 's2', 's3'].entries()) {
      t.grant(n, token);
      await settle();
      expect(leaseOf(waiting[n]?.result).token).toBe(token);
      expect(t.logins).toHaveLength(Math.min(n + 2, 3));
    }
    expect(pool.size()).toBe(3);
    expect(waiting[3]?.result).toBeUndefined();
    leaseOf(waiting[1]?.result).release();
    await settle();
    expect(leaseOf(waiting[3]?.result).token).toBe('s2');
    expect(t.logins).toHaveLength(3);
  });

  it('reuses an idle session without logging in', async () => {
    start(2);
    const first = acquiring();
    await settle();
    t.grant(0, 's1');
    await settle();
    leaseOf(first.result).release();
    const again = leaseOf(await pool.acquire(never()));
    expect(again.token).toBe('s1');
    expect(t.logins).toHaveLength(1);
  });

  it('serves waiters in the order they came', async () => {
    start(1);
    const holder = acquiring();
    const served: string[] = [];
    for (const id of ['b', 'c', 'd']) {
      void pool.acquire(never()).then((r) => {
        served.push(id);
        // Each holds the session briefly and hands it on.
        queueMicrotask(() => {
          leaseOf(r).release();
        });
      });
    }
    await settle();
    t.grant(0, 's1');
    await settle();
    leaseOf(holder.result).release();
    await settle();
    expect(served).toEqual(['b', 'c', 'd']);
    expect(t.logins).toHaveLength(1);
    expect(pool.size()).toBe(1);
  });

  it('lets a waiter leave at its deadline; the session it missed stays in the pool', async () => {
    start(1);
    const holder = acquiring();
    await settle();
    t.grant(0, 's1');
    await settle();
    const deadline = deadlineIn(100, clock);
    const waiter = acquiring(deadline.signal);
    await clock.advance(99);
    expect(waiter.result).toBeUndefined();
    await clock.advance(1);
    expect(waiter.result).toEqual({
      ok: false,
      outcome: {
        outcome: 'timeout',
        error: { code: 'UPSTREAM_TIMEOUT', message: expect.stringMatching(/not sent/) },
        notSent: true,
      },
    });
    leaseOf(holder.result).release();
    expect(pool.size()).toBe(1);
    expect(leaseOf(await pool.acquire(never())).token).toBe('s1');
    expect(t.logins).toHaveLength(1);
  });

  it('remembers refused credentials for loginBackoffMs, then tries again', async () => {
    start(2);
    const waiting = [acquiring(), acquiring()];
    await settle();
    t.refuse(0, true);
    await settle();
    // A refused login answers everyone waiting for it: they would only repeat it.
    for (const w of waiting) expect(w.result).toEqual({ ok: false, outcome: badPassword });
    await clock.advance(BACKOFF_MS - 1);
    expect(await pool.acquire(never())).toEqual({ ok: false, outcome: badPassword });
    expect(t.logins).toHaveLength(1);
    await clock.advance(1);
    const retried = acquiring();
    await settle();
    expect(t.logins).toHaveLength(2);
    t.grant(1, 's1');
    await settle();
    expect(leaseOf(retried.result).token).toBe('s1');
  });

  it('does not hold a login failure other than refused credentials against the next request', async () => {
    start(1);
    const first = acquiring();
    await settle();
    t.refuse(0, false);
    await settle();
    expect(first.result).toEqual({ ok: false, outcome: badPassword });
    acquiring();
    await settle();
    expect(t.logins).toHaveLength(2);
  });

  it('answers waiters with UPSTREAM_BAD_RESPONSE when the transport throws', async () => {
    start(1);
    const first = acquiring();
    await settle();
    t.logins[0]?.fail(new Error('bug'));
    await settle();
    expect(first.result).toMatchObject({
      ok: false,
      outcome: { outcome: 'upstream_error', error: { code: 'UPSTREAM_BAD_RESPONSE' } },
    });
  });

  it('gives a login loginTimeoutMs on the clock, whatever the request deadline', async () => {
    start(1);
    acquiring(deadlineIn(50, clock).signal);
    await settle();
    const login = t.logins[0];
    await clock.advance(LOGIN_TIMEOUT_MS - 1);
    expect(login?.signal.aborted).toBe(false);
    await clock.advance(1);
    expect(login?.signal.aborted).toBe(true);
  });

  it('invalidate drops the session, logging it out only when asked', async () => {
    start(1);
    const first = acquiring();
    await settle();
    t.grant(0, 's1');
    await settle();
    const lease = leaseOf(first.result);
    lease.invalidate();
    lease.release();
    expect(pool.size()).toBe(0);
    expect(t.logouts).toEqual([]);
    const second = acquiring();
    await settle();
    expect(t.logins).toHaveLength(2);
    t.grant(1, 's2');
    await settle();
    leaseOf(second.result).invalidate(true);
    await settle();
    expect(t.logouts.map((l) => l.token)).toEqual(['s2']);
    expect(pool.size()).toBe(0);
  });

  it('setAside keeps a busy session out of use for its pause, counted, then serves it again', async () => {
    start(1);
    const first = acquiring();
    await settle();
    t.grant(0, 's1');
    await settle();
    leaseOf(first.result).setAside(1_000);
    expect(pool.size()).toBe(1);
    const waiting = acquiring();
    await settle();
    // The pool is full with the busy session: no login, and the waiter waits for it.
    expect(t.logins).toHaveLength(1);
    expect(waiting.result).toBeUndefined();
    await clock.advance(999);
    expect(waiting.result).toBeUndefined();
    await clock.advance(1);
    expect(leaseOf(waiting.result).token).toBe('s1');
    expect(t.logouts).toEqual([]);
  });

  it('setAside leaves room below maxSessions for a new login', async () => {
    start(2);
    const first = acquiring();
    await settle();
    t.grant(0, 's1');
    await settle();
    leaseOf(first.result).setAside(1_000);
    const next = acquiring();
    await settle();
    expect(t.logins).toHaveLength(2);
    t.grant(1, 's2');
    await settle();
    expect(leaseOf(next.result).token).toBe('s2');
    expect(pool.size()).toBe(2);
  });

  it('close logs out a set-aside session at once and cancels its timer', async () => {
    start(2);
    const first = acquiring();
    await settle();
    t.grant(0, 's1');
    await settle();
    const lease = leaseOf(first.result);
    lease.setAside(1_000);
    lease.release(); // a lease ends once
    await pool.close();
    expect(t.logouts.map((l) => l.token)).toEqual(['s1']);
    expect(clock.pendingTimers()).toBe(0);
    await clock.advance(1_000);
    expect(t.logouts).toHaveLength(1);
    expect(pool.size()).toBe(0);
  });

  it('close logs out idle sessions at once and leased ones when they come back', async () => {
    start(2);
    const a = acquiring();
    const b = acquiring();
    await settle();
    t.grant(0, 's1');
    await settle();
    t.grant(1, 's2');
    await settle();
    leaseOf(a.result).release();
    await pool.close();
    expect(t.logouts.map((l) => l.token)).toEqual(['s1']);
    expect(await pool.acquire(never())).toMatchObject({
      ok: false,
      outcome: { outcome: 'unavailable', error: { code: 'DRAINING' } },
    });
    leaseOf(b.result).release();
    await settle();
    expect(t.logouts.map((l) => l.token)).toEqual(['s1', 's2']);
    await pool.close();
    expect(t.logouts).toHaveLength(2);
  });

  it('close aborts a login in flight and logs out a session that still arrives', async () => {
    start(1);
    acquiring();
    await settle();
    await pool.close();
    expect(t.logins[0]?.signal.aborted).toBe(true);
    t.grant(0, 'late');
    await settle();
    expect(t.logouts.map((l) => l.token)).toEqual(['late']);
  });

  it('gives up on a hung logout after five seconds on the clock', async () => {
    start(1);
    const first = acquiring();
    await settle();
    t.grant(0, 's1');
    await settle();
    leaseOf(first.result).release();
    t.hang();
    let closed = false;
    void pool.close().then(() => (closed = true));
    await clock.advance(4_999);
    expect(closed).toBe(false);
    await clock.advance(1);
    expect(closed).toBe(true);
    expect(t.logouts[0]?.signal.aborted).toBe(true);
    expect(clock.pendingTimers()).toBe(0);
  });
});
