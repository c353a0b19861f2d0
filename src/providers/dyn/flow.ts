import {
  failed,
  type Confirmation,
  type PendingCancel,
  type ProviderOutcome,
} from '../../core/provider-outcome';
import { sleep, type Clock } from '../../resilience/clock';
import { scopedTimeout } from '../../resilience/deadline';
import type { CallContext } from '../provider';
import {
  confirmationOfJob,
  confirmationOfRead,
  unfinishedJob,
  type DynClassification,
  type DynMessage,
  type DynOperation,
} from './mapping';
import type { DynRestProviderConfig, DynSoapProviderConfig } from '../../config/schema';
import {
  createRateLimiter,
  rateLimited,
  windowOf,
  type RateLimiter,
} from '../../resilience/rate-limit';
import { rateWindowKey, type Provider, type ProviderDeps } from '../provider';
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

/** The calls a transport makes for a cancel or a read; everything else is shared. */
export interface DynExchange {
  cancel(taskId: string, token: string, ctx: CallContext): Promise<DynClassification>;
  /** Reads the task: REST `GET /Task/<id>/`, SOAP `GetOneTask`. */
  read(taskId: string, token: string, ctx: CallContext): Promise<DynClassification>;
  /** Polls the job that accepted the cancel (or the read) of `taskId`. */
  poll(
    jobId: string,
    taskId: string,
    token: string,
    ctx: CallContext,
    operation: DynOperation,
  ): Promise<DynClassification>;
}

export interface DynFlowOptions {
  sessions: SessionPool;
  limiter: RateLimiter;
  exchange: DynExchange;
  jobPollIntervalMs: number;
  jobTimeoutMs: number;
  /** Time for the 429 back-off, job polling and busy sessions. */
  clock: Clock;
  /**
   * Sessions of cancel jobs that outlived their deadline, kept for `confirm` to poll: at most
   * `max` at once (each counts towards `maxSessions`), each for `ms`. Absent: none are kept.
   */
  keepJobSessions?: { max: number; ms: number };
}

/**
 * A session Dyn called busy ("This session already has a job running") is set aside this long
 * before it is used again: the first step of Dyn's own client's back-off.
 */
export const SESSION_BUSY_PAUSE_MS = 1_000;

/** Sessions one cancel tries when Dyn calls them busy, before it answers `UPSTREAM_BUSY`. */
export const SESSION_BUSY_TRIES = 3;

/** The Dyn flow of one provider: cancels, reads, and confirmations of timed-out cancels. */
export interface DynFlow {
  cancel(taskId: string, ctx: CallContext): Promise<ProviderOutcome>;
  read(taskId: string, ctx: CallContext): Promise<ProviderOutcome>;
  confirm(taskId: string, pending: PendingCancel, ctx: CallContext): Promise<Confirmation>;
  /** Jobs whose session is kept for a confirmation right now. */
  parkedJobs(): number;
  /** Logs out the sessions kept for confirmations; later timeouts keep none. */
  close(): void;
}

interface ParkedJob {
  taskId: string;
  lease: SessionLease;
  expire(): void;
}

/**
 * One Dyn provider's calls, whatever the transport: our rate limit and the upstream's 429
 * back-off, a session of its own per call, one re-login and one retry on a session error, another
 * session (or a wait for one) when Dyn calls a session busy, and job polling when Dyn took the
 * call as a job (a cancel is never sent twice after that). A cancel and a read share all of it;
 * only their classification differs.
 */
export function createDynFlow(options: DynFlowOptions): DynFlow {
  const { sessions, limiter, exchange, clock } = options;
  const maxParked = options.keepJobSessions?.max ?? 0;
  const parkedJobMs = options.keepJobSessions?.ms ?? 0;
  const parked = new Map<string, ParkedJob>();
  let closed = false;
  let backoffUntil = 0;

  /** Keeps the session a still-running cancel job lives on, for `confirm`; false when full. */
  function park(jobId: string, taskId: string, lease: SessionLease): boolean {
    if (closed || parked.size >= maxParked) return false;
    const expire = clock.setTimer(() => {
      if (parked.get(jobId)?.lease !== lease) return;
      parked.delete(jobId);
      lease.invalidate(true);
    }, parkedJobMs);
    parked.set(jobId, { taskId, lease, expire });
    return true;
  }

  function unpark(jobId: string, taskId: string): SessionLease | undefined {
    const job = parked.get(jobId);
    if (job?.taskId !== taskId) return undefined;
    parked.delete(jobId);
    job.expire();
    return job.lease;
  }

  const isParked = (lease: SessionLease): boolean =>
    [...parked.values()].some((job) => job.lease === lease);

  /**
   * Polls a job on the session it runs on until it ends, Dyn loses it, or the deadline: `ctx`'s,
   * and `jobTimeoutMs` unless `bounded` is false (a confirmation has its own budget).
   */
  async function pollJob(
    operation: DynOperation,
    firstJobId: string,
    taskId: string,
    lease: SessionLease,
    ctx: CallContext,
    bounded = true,
  ): Promise<ProviderOutcome> {
    let jobId = firstJobId;
    const scope = bounded ? scopedTimeout(ctx.signal, options.jobTimeoutMs, clock) : undefined;
    const pollCtx: CallContext = scope === undefined ? ctx : { ...ctx, signal: scope.signal };
    // A cancel's job left unconfirmed carries what a later confirmation needs.
    const unconfirmed = (outcome: ProviderOutcome): ProviderOutcome =>
      operation === 'cancel' ? { ...outcome, pending: { jobId } } : outcome;
    try {
      const signal: AbortSignal = pollCtx.signal;
      while (!signal.aborted) {
        await sleep(clock, options.jobPollIntervalMs, signal);
        if (isAborted(signal) || !(await limiter.take(signal))) break;
        const result = await exchange.poll(jobId, taskId, lease.token, pollCtx, operation);
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
            return unconfirmed(
              unfinishedJob(operation, jobId, 'the session ended while polling', {
                code: result.detail.errCd ?? 'UNKNOWN',
                ...(result.detail.info === undefined ? {} : { message: result.detail.info }),
              }),
            );
          case 'outcome':
            break;
        }
        const outcome = result.outcome;
        // The deadline cut the poll: the job may still run (below). Any other timeout is the
        // mapping's verdict on the job itself (unknown to Dyn, nothing to poll).
        if (outcome.outcome === 'timeout') {
          if (isAborted(signal)) break;
          lease.invalidate(true);
          return unconfirmed(outcome);
        }
        // A lost poll says nothing about the job; ask again until the job deadline.
        if (outcome.outcome === 'unavailable' || outcome.outcome === 'rate_limited') continue;
        if (outcome.outcome === 'upstream_error') {
          // An answer that cannot be read confirms nothing; the job may still run on this session.
          lease.invalidate(true);
          return unconfirmed(
            unfinishedJob(
              operation,
              jobId,
              `a poll was answered with something unusable (${outcome.error?.message ?? 'no detail'})`,
              outcome.error?.upstream ?? { code: outcome.error?.code ?? 'UNKNOWN' },
            ),
          );
        }
        lease.release();
        return outcome;
      }
      // The job may still be running on this session: never hand the session to another call.
      // A cancel's job keeps it for a confirmation where there is room; otherwise log it out.
      if (operation !== 'cancel' || !park(jobId, taskId, lease)) lease.invalidate(true);
      return unconfirmed(unfinishedJob(operation, jobId, 'no final status before the deadline'));
    } finally {
      scope?.dispose();
    }
  }

  /**
   * One call of `operation` through a session. `waitForToken`: wait for the rate limit rather
   * than refuse at once (background confirmations).
   */
  async function callOnce(
    operation: DynOperation,
    taskId: string,
    ctx: CallContext,
    waitForToken = false,
  ): Promise<ProviderOutcome> {
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
    if (waitForToken) {
      if (!(await limiter.take(ctx.signal))) return rateLimited(SESSION_BUSY_PAUSE_MS);
    } else {
      const waitMs = await limiter.tryTake();
      if (waitMs > 0) return rateLimited(waitMs);
    }
    let relogged = false;
    let busy: DynMessage | undefined;
    let busyTries = 0;
    for (;;) {
      const acquired = await sessions.acquire(ctx.signal, ctx.trace);
      if (!acquired.ok) {
        // Waiting for a session that is not busy ran into the deadline: Dyn is busy, not slow.
        return busy !== undefined && ctx.signal.aborted ? stillBusy(busy) : acquired.outcome;
      }
      const lease = acquired.lease;
      const result = await (operation === 'cancel'
        ? exchange.cancel(taskId, lease.token, ctx)
        : exchange.read(taskId, lease.token, ctx));
      switch (result.kind) {
        case 'session_busy':
          // The session is alive and runs another job: keep it, try another (or wait for one).
          lease.setAside(SESSION_BUSY_PAUSE_MS);
          busy = result.detail;
          busyTries++;
          ctx.log.info({ busyTries, info: busy.info }, 'Dyn session busy; trying another session');
          if (busyTries >= SESSION_BUSY_TRIES || !(await limiter.take(ctx.signal)))
            return stillBusy(busy);
          continue;
        case 'auth_expired':
          lease.invalidate();
          ctx.log.info({ info: result.detail.info }, 'Dyn session rejected; logging in again');
          if (!relogged && (await limiter.take(ctx.signal))) {
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
          ctx.log.debug({ jobId: result.jobId, operation }, 'Dyn took the call as a job; polling');
          return pollJob(operation, result.jobId, taskId, lease, ctx);
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

  /** A cancel's answer about another task keeps its outcome; its task is not the caller's. */
  function ownCancel(taskId: string, outcome: ProviderOutcome, ctx: CallContext): ProviderOutcome {
    const named = outcome.task?.id;
    let kept = outcome;
    if (named !== undefined && named !== taskId) {
      ctx.log.warn(
        { taskId, answeredTaskId: named, outcome: outcome.outcome },
        'Dyn answered about another task; its task is dropped',
      );
      kept = { ...outcome };
      delete kept.task;
    }
    // A timeout after the cancel may have reached Dyn can be confirmed later, job or not.
    if (kept.outcome === 'timeout' && kept.notSent !== true && kept.pending === undefined)
      kept = { ...kept, pending: {} };
    return kept;
  }

  /** A read's answer must be about the requested task: `found` names no other. */
  function ownRead(taskId: string, outcome: ProviderOutcome, ctx: CallContext): ProviderOutcome {
    const named = outcome.task?.id;
    if (named === undefined || named === taskId) return outcome;
    ctx.log.warn(
      { taskId, answeredTaskId: named, outcome: outcome.outcome },
      'Dyn answered a task read about another task',
    );
    return failed(
      'upstream_error',
      'UPSTREAM_BAD_RESPONSE',
      `Dyn answered the read of task ${taskId} with task ${named}`,
    );
  }

  return {
    async cancel(taskId, ctx) {
      return ownCancel(taskId, await callOnce('cancel', taskId, ctx), ctx);
    },
    async read(taskId, ctx) {
      return ownRead(taskId, await callOnce('read', taskId, ctx), ctx);
    },
    async confirm(taskId, pending, ctx) {
      const { jobId } = pending;
      const lease = jobId === undefined ? undefined : unpark(jobId, taskId);
      let jobEnded = false;
      if (lease !== undefined && jobId !== undefined) {
        const polled = await pollJob('cancel', jobId, taskId, lease, ctx, false);
        const final = ownCancel(taskId, polled, ctx);
        // Still running (kept again): a read would show the task as it was before the cancel.
        if (isParked(lease)) return { state: 'unknown', outcome: final };
        const settled = confirmationOfJob(final);
        if (settled !== undefined) return settled;
        // The job ended without applying the cancel, or was lost: the task's own state tells.
        jobEnded = true;
      }
      const read = ownRead(taskId, await callOnce('read', taskId, ctx, true), ctx);
      const found = confirmationOfRead(read);
      // Without a job seen to end, a task still pending may yet be canceled by it (a DELETE
      // still being processed, a job on a session that was not kept).
      return found.state === 'pending' && !jobEnded ? { ...found, cancelMayApply: true } : found;
    },
    parkedJobs: () => parked.size,
    close() {
      closed = true;
      for (const job of parked.values()) {
        job.expire();
        job.lease.invalidate(true);
      }
      parked.clear();
    },
  };
}

function stillBusy(detail: DynMessage): ProviderOutcome {
  return failed(
    'unavailable',
    'UPSTREAM_BUSY',
    'every Dyn session tried was busy with another job; the request was not run',
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
 * A Dyn provider from its two transport halves (sessions and the cancel/read/poll exchange): the
 * session pool, rate limit and flow are the same for REST and SOAP.
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
  const { limit, windowMs } = windowOf(perSecond);
  const { store } = deps;
  // `scope: account`: one window per Dyn account for every replica (and for REST and SOAP
  // providers of the same account), in the shared store; per process when it is memory or down.
  const shared =
    scope === 'account' && store.kind === 'redis'
      ? () => store.takeSlot(`dyn:${cfg.customerName}:${cfg.userName}`, limit, windowMs)
      : undefined;
  // The process's window of this provider and account outlives the instance: one rebuilt by a
  // reload, and this one while it retires, draw from the same calls of the last second.
  const local = deps.rateWindows.acquire(rateWindowKey(name, cfg), perSecond);
  const limiter = createRateLimiter(local.window, shared);
  const flow = createDynFlow({
    sessions,
    limiter,
    exchange: parts.exchange,
    jobPollIntervalMs: cfg.jobPollIntervalMs,
    jobTimeoutMs: cfg.jobTimeoutMs,
    clock: deps.clock,
    // Job ids live only as long as their session: keep a few for confirmations, never all
    // (one session always stays free for new calls).
    ...(deps.keepJobSessionsMs !== undefined && deps.keepJobSessionsMs > 0
      ? { keepJobSessions: { max: cfg.maxSessions - 1, ms: deps.keepJobSessionsMs } }
      : {}),
  });
  return {
    name,
    protocol: cfg.type,
    ownsRateLimit: true,
    checkTaskId: dynTaskIdProblem,
    cancel: (taskId, ctx) => flow.cancel(taskId, ctx),
    read: (taskId, ctx) => flow.read(taskId, ctx),
    confirm: (taskId, pending, ctx) => flow.confirm(taskId, pending, ctx),
    async close() {
      try {
        flow.close();
        await sessions.close();
        await parts.close();
      } finally {
        local.release();
      }
    },
  };
}
