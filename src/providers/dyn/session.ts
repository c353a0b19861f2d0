import type { ProviderOutcome } from '../../core/provider-outcome';
import type { RequestTrace } from '../../observability/tracing';
import type { Clock } from '../../resilience/clock';
import { deadlineIn, scopedTimeout } from '../../resilience/deadline';

/** How one transport (REST or SOAP) opens and closes Dyn sessions. */
export interface SessionTransport {
  /**
   * Logs in; a failure comes back as an outcome, `badCredentials` when Dyn refused them. `trace`:
   * the request the login is made for (the first one waiting), whose trace it continues.
   */
  login(
    signal: AbortSignal,
    trace: RequestTrace | undefined,
  ): Promise<
    { ok: true; token: string } | { ok: false; outcome: ProviderOutcome; badCredentials: boolean }
  >;
  /** Logs out; errors are swallowed by the pool. */
  logout(token: string, signal: AbortSignal): Promise<void>;
}

/** A session held by one request; Dyn allows one running job per session. */
export interface SessionLease {
  readonly token: string;
  /** Gives the session back for reuse. */
  release(): void;
  /** Drops the session (expired or broken); it is not reused. `logout` when it may still live. */
  invalidate(logout?: boolean): void;
  /**
   * Gives the session back, but not for `ms`: Dyn said it is busy with a job. It is alive, so it
   * is kept (and still counts towards `maxSessions`) rather than dropped without a logout.
   */
  setAside(ms: number): void;
}

export type AcquireResult =
  { ok: true; lease: SessionLease } | { ok: false; outcome: ProviderOutcome };

export interface SessionPoolOptions {
  /** Most sessions open at once (each in-flight request holds one). */
  maxSessions: number;
  /** After Dyn refuses the credentials, no login is tried for this long. */
  loginBackoffMs: number;
  /** One login attempt may take this long; it is not tied to any one request's deadline. */
  loginTimeoutMs: number;
  /** Time for the login timeout, the refused-credentials back-off and logouts. */
  clock: Clock;
}

export interface SessionPool {
  /**
   * A session of its own for one request: idle, newly logged in, or after a wait. A login made
   * while it is the first waiting request continues its `trace`.
   */
  acquire(signal: AbortSignal, trace?: RequestTrace): Promise<AcquireResult>;
  /** Sessions open now (idle + leased + set aside); for tests and readiness. */
  size(): number;
  /** Logs out every session; leased ones are logged out as they come back. */
  close(): Promise<void>;
}

/** A logout gets this long, so a hung upstream cannot hold `close()` open. */
const LOGOUT_TIMEOUT_MS = 5_000;

interface Waiter {
  resolve(result: AcquireResult | undefined): void;
  signal: AbortSignal;
  trace: RequestTrace | undefined;
}

/**
 * Lazy, single-flight session pool. At most one login is in flight at a time, and a login's
 * session goes to the first waiting request, so a burst grows the pool one login at a time up to
 * `maxSessions` instead of hammering Dyn. A refused login is remembered for `loginBackoffMs`, so a
 * bad password cannot lock the account by repetition.
 */
export function createSessionPool(
  transport: SessionTransport,
  options: SessionPoolOptions,
): SessionPool {
  const { clock } = options;
  const idle: string[] = [];
  /** Busy sessions set aside, each with the timer that gives it back. */
  const resting = new Map<string, () => void>();
  let leased = 0;
  let loggingIn = false;
  let closed = false;
  let refused: { until: number; outcome: ProviderOutcome } | undefined;
  const waiters: Waiter[] = [];
  const closeController = new AbortController();

  /** Logs one session out within LOGOUT_TIMEOUT_MS; never rejects. */
  const logoutNow = async (token: string): Promise<void> => {
    const limit = deadlineIn(LOGOUT_TIMEOUT_MS, clock);
    try {
      await transport.logout(token, limit.signal);
    } catch {
      // Nobody waits on a logout's answer: the session is gone for the pool either way.
    } finally {
      limit.dispose();
    }
  };
  const logout = (token: string): void => {
    void logoutNow(token);
  };

  function lease(token: string): SessionLease {
    leased++;
    let done = false;
    const finish = (reuse: boolean, logoutDropped = false): void => {
      if (done) return;
      done = true;
      leased--;
      if (!reuse && logoutDropped) logout(token);
      if (closed) {
        if (reuse) logout(token);
        return;
      }
      if (reuse) give(token);
      else pump();
    };
    return {
      token,
      release: () => {
        finish(true);
      },
      invalidate: (logoutDropped = false) => {
        finish(false, logoutDropped);
      },
      setAside: (ms) => {
        if (done) return;
        done = true;
        leased--;
        if (closed) {
          logout(token);
          return;
        }
        const cancel = clock.setTimer(() => {
          resting.delete(token);
          if (closed) logout(token);
          else give(token);
        }, ms);
        resting.set(token, cancel);
        pump();
      },
    };
  }

  /** Hands a free session to the first live waiter, or parks it. */
  function give(token: string): void {
    for (let w = waiters.shift(); w !== undefined; w = waiters.shift()) {
      if (!w.signal.aborted) {
        w.resolve({ ok: true, lease: lease(token) });
        pump();
        return;
      }
      w.resolve(undefined);
    }
    idle.push(token);
  }

  /** Starts a login when requests wait and the pool has room. */
  function pump(): void {
    while (waiters.length > 0 && waiters[0]?.signal.aborted === true)
      waiters.shift()?.resolve(undefined);
    if (closed || loggingIn || waiters.length === 0) return;
    if (idle.length + leased + resting.size >= options.maxSessions) return;
    if (refused !== undefined && clock.now() < refused.until) {
      const outcome = refused.outcome;
      for (let w = waiters.shift(); w !== undefined; w = waiters.shift())
        w.resolve({ ok: false, outcome });
      return;
    }
    loggingIn = true;
    const limit = scopedTimeout(closeController.signal, options.loginTimeoutMs, clock);
    // The session goes to the first waiter: the login is part of that request's work.
    transport
      .login(limit.signal, waiters[0]?.trace)
      .finally(() => {
        limit.dispose();
      })
      .then(
        (result) => {
          loggingIn = false;
          if (result.ok) {
            refused = undefined;
            if (closed) logout(result.token);
            else give(result.token);
            return;
          }
          if (result.badCredentials)
            refused = { until: clock.now() + options.loginBackoffMs, outcome: result.outcome };
          // A failed login answers every request waiting right now: they would only repeat it.
          for (let w = waiters.shift(); w !== undefined; w = waiters.shift())
            w.resolve({ ok: false, outcome: result.outcome });
        },
        (err: unknown) => {
          loggingIn = false;
          // A transport that throws is a bug, not an answer: fail the waiters rather than loop.
          const outcome: ProviderOutcome = {
            outcome: 'upstream_error',
            error: {
              code: 'UPSTREAM_BAD_RESPONSE',
              message: `Dyn login failed: ${err instanceof Error ? err.message : String(err)}`,
            },
          };
          for (let w = waiters.shift(); w !== undefined; w = waiters.shift())
            w.resolve({ ok: false, outcome });
        },
      );
  }

  return {
    acquire(signal, trace) {
      if (closed)
        return Promise.resolve({
          ok: false,
          outcome: {
            outcome: 'unavailable',
            error: { code: 'DRAINING', message: 'the provider is closing' },
          },
        });
      const token = idle.pop();
      if (token !== undefined) return Promise.resolve({ ok: true, lease: lease(token) });
      if (refused !== undefined && clock.now() < refused.until)
        return Promise.resolve({ ok: false, outcome: refused.outcome });
      return new Promise<AcquireResult>((resolve) => {
        const onAbort = (): void => {
          const index = waiters.indexOf(waiter);
          if (index >= 0) waiters.splice(index, 1);
          resolve({
            ok: false,
            outcome: {
              outcome: 'timeout',
              error: {
                code: 'UPSTREAM_TIMEOUT',
                message: 'no Dyn session became free before the deadline; the cancel was not sent',
              },
              notSent: true,
            },
          });
        };
        const waiter: Waiter = {
          signal,
          trace,
          resolve: (result) => {
            signal.removeEventListener('abort', onAbort);
            if (result === undefined) onAbort();
            else resolve(result);
          },
        };
        waiters.push(waiter);
        signal.addEventListener('abort', onAbort, { once: true });
        pump();
      });
    },
    size: () => idle.length + leased + resting.size,
    async close() {
      if (closed) return;
      closed = true;
      closeController.abort();
      for (let w = waiters.shift(); w !== undefined; w = waiters.shift()) w.resolve(undefined);
      const tokens = idle.splice(0);
      for (const [token, cancel] of resting) {
        cancel();
        tokens.push(token);
      }
      resting.clear();
      await Promise.all(tokens.map(logoutNow));
    },
  };
}
