import { failed, type ProviderOutcome } from '../../core/provider-outcome';
import { sleep, type Clock } from '../../resilience/clock';
import { scopedTimeout } from '../../resilience/deadline';
import type { CallContext } from '../provider';
import type { DynClassification } from './mapping';
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
  poll(jobId: string, token: string, ctx: CallContext): Promise<DynClassification>;
}

export interface DynFlowOptions {
  sessions: SessionPool;
  bucket: RateLimiter;
  exchange: DynExchange;
  jobPollIntervalMs: number;
  jobTimeoutMs: number;
  /** Time for the 429 back-off and job polling. */
  clock: Clock;
}

/**
 * One cancel against Dyn, whatever the transport: our rate limit and the upstream's 429 back-off,
 * a session of its own, one re-login and one retry on a session error, and job polling when Dyn
 * accepted the cancel as a job (the cancel itself is never sent twice after that).
 */
export function createDynCanceller(
  options: DynFlowOptions,
): (taskId: string, ctx: CallContext) => Promise<ProviderOutcome> {
  const { sessions, bucket, exchange, clock } = options;
  let backoffUntil = 0;

  async function pollJob(
    jobId: string,
    lease: SessionLease,
    ctx: CallContext,
  ): Promise<ProviderOutcome> {
    const scope = scopedTimeout(ctx.signal, options.jobTimeoutMs, clock);
    const pollCtx: CallContext = { ...ctx, signal: scope.signal };
    try {
      const signal: AbortSignal = scope.signal;
      while (!signal.aborted) {
        await sleep(clock, options.jobPollIntervalMs, signal);
        if (isAborted(signal) || !(await bucket.take(signal))) break;
        const result = await exchange.poll(jobId, lease.token, pollCtx);
        if (result.kind === 'incomplete') continue;
        if (result.kind === 'auth_expired') {
          // Job ids live only as long as their session: nothing can confirm this one now.
          lease.invalidate();
          return jobNotConfirmed(jobId, 'the session ended while polling');
        }
        const outcome = result.outcome;
        if (outcome.outcome === 'timeout') break;
        // A lost poll says nothing about the job; ask again until the job deadline.
        if (outcome.outcome === 'unavailable' || outcome.outcome === 'rate_limited') continue;
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

  return async function cancel(taskId, ctx) {
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
    for (let attempt = 1; ; attempt++) {
      const acquired = await sessions.acquire(ctx.signal);
      if (!acquired.ok) return acquired.outcome;
      const lease = acquired.lease;
      const result = await exchange.cancel(taskId, lease.token, ctx);
      if (result.kind === 'auth_expired') {
        lease.invalidate();
        ctx.log.info(
          { attempt, info: result.detail.info },
          'Dyn session rejected; logging in again',
        );
        if (attempt === 1 && (await bucket.take(ctx.signal))) continue;
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
      }
      if (result.kind === 'incomplete') {
        ctx.log.debug({ jobId: result.jobId }, 'Dyn accepted the cancel as a job; polling');
        return pollJob(result.jobId, lease, ctx);
      }
      const outcome = result.outcome;
      if (outcome.outcome === 'timeout') lease.invalidate(true);
      else lease.release();
      if (outcome.outcome === 'rate_limited' && outcome.retryAfterSeconds !== undefined) {
        backoffUntil = clock.now() + outcome.retryAfterSeconds * 1000;
      }
      return outcome;
    }
  };
}

function jobNotConfirmed(jobId: string, why: string): ProviderOutcome {
  return failed(
    'timeout',
    'JOB_NOT_CONFIRMED',
    `Dyn accepted the cancel as job ${jobId} but ${why}; whether the cancel completed is unknown`,
    { upstream: { code: 'JOB_INCOMPLETE', message: `job ${jobId}` } },
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
