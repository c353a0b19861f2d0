import { failed, type ProviderOutcome } from '../../core/provider-outcome';
import { sleep, type Clock } from '../../resilience/clock';
import { scopedTimeout } from '../../resilience/deadline';
import type { CallContext } from '../provider';
import { jobNotConfirmed, type DynClassification, type DynMessage } from './mapping';
import type { DynRestProviderConfig, DynSoapProviderConfig } from '../../config/schema';
import {
  createRateLimiter,
  createTokenBucket,
  defaultCapacity,
  rateLimited,
  type RateLimiter,
} from '../../resilience/rate-limit';
import type { Provider, ProviderDeps } from '../provider';
import {
  createSessionPool,
  type SessionLease,
  type SessionPool,
  type SessionTransport,
} from './session';

/** One login may take this long; it is not tied to any one request's deadline. */
const LOGIN_TIMEOUT_MS = 10_000;

const DYN_TASK_ID = /^[1-9][0-9]{0,19}$/;

/** Dyn takes any positive task id the gateway accepts; re-checked before it reaches a URL. */
export function dynTaskIdProblem(taskId: string): string | undefined {
  return DYN_TASK_ID.test(taskId) ? undefined : 'must be a positive integer of at most 20 digits';
}

/**
 * `Retry-After` in seconds, from delta-seconds or an HTTP date. An HTTP date is wall time, so it
 * is read against `Date.now()`: the injected clock's scale is monotonic and means nothing next to it.
 */
export function parseRetryAfter(header: string | undefined, now = Date.now()): number | undefined {
  if (header === undefined) return undefined;
  if (/^\s*\d+\s*$/.test(header)) return Number(header);
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}

/** The two calls a transport makes for a cancel; everything else is shared. */
export interface DynExchange {
  cancel(taskId: string, token: string, ctx: CallContext): Promise<DynClassification>;
  /** Polls the job that accepted the cancel of `taskId`. */
  poll(jobId: string, taskId: string, token: string, ctx: CallContext): Promise<DynClassification>;
}

export interface DynFlowOptions {
  sessions: SessionPool;
  bucket: RateLimiter;
  exchange: DynExchange;
  jobPollIntervalMs: number;
  jobTimeoutMs: number;
  /** Time for the 429 back-off, job polling and busy sessions. */
  clock: Clock;
}

/**
 * A session Dyn called busy ("This session already has a job running") is set aside this long
 * before it is used again: the first step of Dyn's own client's back-off.
 */
export const SESSION_BUSY_PAUSE_MS = 1_000;

/** Sessions one cancel tries when Dyn calls them busy, before it answers `UPSTREAM_BUSY`. */
export const SESSION_BUSY_TRIES = 3;

/**
 * One cancel against Dyn, whatever the transport: our rate limit and the upstream's 429 back-off,
 * a session of its own, one re-login and one retry on a session error, another session (or a wait
 * for one) when Dyn calls a session busy, and job polling when Dyn accepted the cancel as a job
 * (the cancel itself is never sent twice after that).
 */
export function createDynCanceller(
  options: DynFlowOptions,
): (taskId: string, ctx: CallContext) => Promise<ProviderOutcome> {
  const { sessions, bucket, exchange, clock } = options;
  let backoffUntil = 0;

  async function pollJob(
    firstJobId: string,
    taskId: string,
    lease: SessionLease,
    ctx: CallContext,
  ): Promise<ProviderOutcome> {
    let jobId = firstJobId;
    const scope = scopedTimeout(ctx.signal, options.jobTimeoutMs, clock);
    const pollCtx: CallContext = { ...ctx, signal: scope.signal };
    try {
      const signal: AbortSignal = scope.signal;
      while (!signal.aborted) {
        await sleep(clock, options.jobPollIntervalMs, signal);
        if (isAborted(signal) || !(await bucket.take(signal))) break;
        const result = await exchange.poll(jobId, taskId, lease.token, pollCtx);
        switch (result.kind) {
          case 'incomplete':
            // A poll answered with a 307 may point at another job path: follow it.
            jobId = result.jobId;
            continue;
          case 'session_busy':
            // The session's one job is still running: that is this job.
            continue;
          case 'auth_expired':
            // Job ids live only as long as their session: nothing can confirm this one now.
            lease.invalidate();
            return jobNotConfirmed(jobId, 'the session ended while polling', {
              code: result.detail.errCd ?? 'UNKNOWN',
              ...(result.detail.info === undefined ? {} : { message: result.detail.info }),
            });
          case 'outcome':
            break;
        }
        const outcome = result.outcome;
        if (outcome.error?.code === 'JOB_NOT_CONFIRMED') {
          lease.invalidate(true);
          return outcome;
        }
        if (outcome.outcome === 'timeout') break;
        // A lost poll says nothing about the job; ask again until the job deadline.
        if (outcome.outcome === 'unavailable' || outcome.outcome === 'rate_limited') continue;
        if (outcome.outcome === 'upstream_error') {
          // An answer that cannot be read confirms nothing; the job may still run on this session.
          lease.invalidate(true);
          return jobNotConfirmed(
            jobId,
            `a poll was answered with something unusable (${outcome.error?.message ?? 'no detail'})`,
            outcome.error?.upstream ?? { code: outcome.error?.code ?? 'UNKNOWN' },
          );
        }
        lease.release();
        return outcome;
      }
      // The job may still be running on this session: do not hand the session to another request.
      lease.invalidate(true);
      return jobNotConfirmed(jobId, 'no final status before the deadline');
    } finally {
      scope.dispose();
    }
  }

  async function cancelOnce(taskId: string, ctx: CallContext): Promise<ProviderOutcome> {
    const now = clock.now();
    if (backoffUntil > now) {
      return failed(
        'rate_limited',
        'UPSTREAM_RATE_LIMITED',
        'Dyn rate limit: backing off after an HTTP 429',
        {
          retryAfterSeconds: Math.ceil((backoffUntil - now) / 1000),
          notSent: true,
        },
      );
    }
    const waitMs = await bucket.tryTake();
    if (waitMs > 0) return rateLimited(waitMs);
    let relogged = false;
    let busy: DynMessage | undefined;
    let busyTries = 0;
    for (;;) {
      const acquired = await sessions.acquire(ctx.signal);
      if (!acquired.ok) {
        // Waiting for a session that is not busy ran into the deadline: Dyn is busy, not slow.
        return busy !== undefined && ctx.signal.aborted ? stillBusy(busy) : acquired.outcome;
      }
      const lease = acquired.lease;
      const result = await exchange.cancel(taskId, lease.token, ctx);
      switch (result.kind) {
        case 'session_busy':
          // The session is alive and runs another job: keep it, try another (or wait for one).
          lease.setAside(SESSION_BUSY_PAUSE_MS);
          busy = result.detail;
          busyTries++;
          ctx.log.info({ busyTries, info: busy.info }, 'Dyn session busy; trying another session');
          if (busyTries >= SESSION_BUSY_TRIES || !(await bucket.take(ctx.signal)))
            return stillBusy(busy);
          continue;
        case 'auth_expired':
          lease.invalidate();
          ctx.log.info({ info: result.detail.info }, 'Dyn session rejected; logging in again');
          if (!relogged && (await bucket.take(ctx.signal))) {
            relogged = true;
            continue;
          }
          return failed(
            'upstream_error',
            'UPSTREAM_AUTH_FAILED',
            'Dyn rejected a freshly opened session',
            {
              upstream: {
                code: result.detail.errCd ?? 'UNKNOWN',
                ...(result.detail.info === undefined ? {} : { message: result.detail.info }),
              },
            },
          );
        case 'incomplete':
          ctx.log.debug({ jobId: result.jobId }, 'Dyn accepted the cancel as a job; polling');
          return pollJob(result.jobId, taskId, lease, ctx);
        case 'outcome': {
          const outcome = result.outcome;
          if (outcome.outcome === 'timeout') lease.invalidate(true);
          else lease.release();
          if (outcome.outcome === 'rate_limited' && outcome.retryAfterSeconds !== undefined) {
            backoffUntil = clock.now() + outcome.retryAfterSeconds * 1000;
          }
          return outcome;
        }
      }
    }
  }

  return async function cancel(taskId, ctx) {
    const outcome = await cancelOnce(taskId, ctx);
    const named = outcome.task?.id;
    if (named === undefined || named === taskId) return outcome;
    // The answer is about another task: its outcome stands, its task is not the caller's.
    ctx.log.warn(
      { taskId, answeredTaskId: named, outcome: outcome.outcome },
      'Dyn answered about another task; its task is dropped',
    );
    const kept: ProviderOutcome = { ...outcome };
    delete kept.task;
    return kept;
  };
}

function stillBusy(detail: DynMessage): ProviderOutcome {
  return failed(
    'unavailable',
    'UPSTREAM_BUSY',
    'every Dyn session tried was busy with another job; the cancel was not run',
    {
      upstream: {
        code: detail.errCd ?? 'OPERATION_FAILED',
        ...(detail.info === undefined ? {} : { message: detail.info }),
      },
      notSent: true,
    },
  );
}

/** Read through a call so that the compiler does not assume an earlier check still holds. */
function isAborted(signal: AbortSignal): boolean {
  return signal.aborted;
}

/**
 * A Dyn provider from its two transport halves (sessions and the cancel/poll exchange): the
 * session pool, rate limit and cancel flow are the same for REST and SOAP.
 */
export function assembleDynProvider(
  name: string,
  cfg: DynRestProviderConfig | DynSoapProviderConfig,
  deps: ProviderDeps,
  parts: {
    sessions: SessionTransport;
    exchange: DynExchange;
    close(): Promise<void>;
  },
): Provider {
  const sessions = createSessionPool(parts.sessions, {
    maxSessions: cfg.maxSessions,
    loginBackoffMs: cfg.loginBackoffMs,
    loginTimeoutMs: LOGIN_TIMEOUT_MS,
    clock: deps.clock,
  });
  const { perSecond, scope } = cfg.rateLimit;
  const capacity = defaultCapacity(perSecond);
  const { store } = deps;
  // `scope: account`: one bucket per Dyn account for every replica (and for REST and SOAP
  // providers of the same account), in the shared store; per process when it is memory or down.
  const shared =
    scope === 'account' && store.kind === 'redis'
      ? () => store.takeToken(`dyn:${cfg.customerName}:${cfg.userName}`, perSecond, capacity)
      : undefined;
  const bucket = createRateLimiter(createTokenBucket(perSecond, capacity, deps.clock), shared);
  const canceller = createDynCanceller({
    sessions,
    bucket,
    exchange: parts.exchange,
    jobPollIntervalMs: cfg.jobPollIntervalMs,
    jobTimeoutMs: cfg.jobTimeoutMs,
    clock: deps.clock,
  });
  return {
    name,
    protocol: cfg.type,
    ownsRateLimit: true,
    checkTaskId: dynTaskIdProblem,
    cancel: (taskId, ctx) => canceller(taskId, ctx),
    async close() {
      await sessions.close();
      await parts.close();
    },
  };
}
