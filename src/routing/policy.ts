import {
  BrokenCircuitError,
  BulkheadRejectedError,
  CircuitState as CockatielState,
  ConsecutiveBreaker,
  ExponentialBackoff,
  bulkhead,
  circuitBreaker,
  handleWhenResult,
  type IBackoff,
} from 'cockatiel';
import type { ProviderConfig } from '../config/schema';
import { failed, type ProviderOutcome } from '../core/provider-outcome';
import { createTokenBucket, type TokenBucket } from '../resilience/token-bucket';
import { delay, type Deadline } from './deadline';

/** Default per-attempt timeout by provider type. */
export const DEFAULT_ATTEMPT_TIMEOUT_MS: Record<ProviderConfig['type'], number> = {
  methodcall: 5_000,
  'dyn-rest': 15_000,
  'dyn-soap': 15_000,
};

/** Defaults of the resilience options, with the reason for each in the README. */
export const POLICY_DEFAULTS = {
  maxConcurrent: 32,
  maxQueue: 64,
  retry: { attempts: 2, baseDelayMs: 100, maxDelayMs: 1_000 },
  circuitBreaker: { failureThreshold: 5, resetAfterMs: 30_000 },
} as const;

/** Reports one finished attempt (for `attempts` and metrics). */
export type AttemptListener = (outcome: ProviderOutcome, durationMs: number) => void;

/** Circuit state as `/readyz`, `/routes` and the `gateway_circuit_state` gauge show it. */
export type CircuitState = 'closed' | 'half-open' | 'open';

/**
 * Resilience around one provider, outermost first: rate limit (unless the provider keeps its own,
 * as Dyn does, whose polls and re-logins count too), bulkhead, circuit breaker, retries, and the
 * per-attempt timeout. The request deadline bounds all of it.
 */
export interface ProviderPolicy {
  /** Runs `attempt` one or more times within `deadline`; resolves with the last outcome. */
  execute(
    attempt: (signal: AbortSignal) => Promise<ProviderOutcome>,
    deadline: Deadline,
    onAttempt: AttemptListener,
  ): Promise<ProviderOutcome>;
  circuitState(): CircuitState;
}

export interface PolicyOptions {
  /** The provider enforces `rateLimitPerSecond` itself. */
  ownsRateLimit: boolean;
  /** Told when the circuit changes state (for logs). */
  onCircuitChange?: (state: CircuitState) => void;
}

/** Outcomes that say the upstream is unwell; business answers never count. */
const BREAKER_FAILURES = new Set(['unavailable', 'timeout', 'upstream_error']);
/** Refusals the gateway made itself: they say nothing about the upstream's health. */
const LOCAL_CODES = new Set(['BULKHEAD_FULL', 'CIRCUIT_OPEN', 'RATE_LIMITED', 'DRAINING']);

/** Whether an outcome counts toward opening the circuit. */
export function isUpstreamFailure(outcome: ProviderOutcome): boolean {
  if (!BREAKER_FAILURES.has(outcome.outcome)) return false;
  if (outcome.error !== undefined && LOCAL_CODES.has(outcome.error.code)) return false;
  // A wait for a local resource (a free Dyn session) that ran out: nothing reached the upstream.
  return !(outcome.outcome === 'timeout' && outcome.notSent === true);
}

/**
 * Retried on the same provider only when the cancel certainly did not happen (contract §6):
 * refused/reset before an answer, 503, `SERVICE_UNAVAILABLE`. A 429 is not retried here: its
 * Retry-After outlasts any request deadline, so the route's fallback is the better next step.
 */
export function isRetryable(outcome: ProviderOutcome): boolean {
  return outcome.outcome === 'unavailable' && outcome.notSent === true;
}

function stateOf(state: CockatielState): CircuitState {
  switch (state) {
    case CockatielState.Closed:
      return 'closed';
    case CockatielState.HalfOpen:
      return 'half-open';
    default:
      return 'open';
  }
}

/** Resolves when `signal` aborts; the listener is removed by `dispose`. */
function aborted(signal: AbortSignal): { promise: Promise<void>; dispose(): void } {
  let onAbort: () => void = () => undefined;
  const promise = new Promise<void>((resolve) => {
    onAbort = resolve;
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  return {
    promise,
    dispose: () => {
      signal.removeEventListener('abort', onAbort);
    },
  };
}

export function createPolicy(cfg: ProviderConfig, options: PolicyOptions): ProviderPolicy {
  const timeoutMs = cfg.timeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS[cfg.type];
  const retry = { ...POLICY_DEFAULTS.retry, ...cfg.retry };
  const breakerCfg = { ...POLICY_DEFAULTS.circuitBreaker, ...cfg.circuitBreaker };
  const perSecond =
    cfg.rateLimitPerSecond ?? ('rateLimit' in cfg ? cfg.rateLimit?.perSecond : undefined);
  const bucket: TokenBucket | undefined =
    options.ownsRateLimit || perSecond === undefined ? undefined : createTokenBucket(perSecond);
  const bulk = bulkhead(
    cfg.maxConcurrent ?? POLICY_DEFAULTS.maxConcurrent,
    cfg.maxQueue ?? POLICY_DEFAULTS.maxQueue,
  );
  const breaker = circuitBreaker(
    handleWhenResult((r) => isUpstreamFailure(r as ProviderOutcome)),
    {
      halfOpenAfter: breakerCfg.resetAfterMs,
      breaker: new ConsecutiveBreaker(breakerCfg.failureThreshold),
    },
  );
  let openedAt = 0;
  breaker.onBreak(() => {
    openedAt = Date.now();
  });
  breaker.onStateChange((state) => options.onCircuitChange?.(stateOf(state)));
  const backoffFactory = new ExponentialBackoff({
    initialDelay: retry.baseDelayMs,
    maxDelay: retry.maxDelayMs,
  });

  /** One attempt, bounded by `timeoutMs` and the deadline (narrowed to it for the attempt). */
  async function once(
    attempt: (signal: AbortSignal) => Promise<ProviderOutcome>,
    deadline: Deadline,
    onAttempt: AttemptListener,
  ): Promise<ProviderOutcome> {
    const started = performance.now();
    const restore = deadline.narrow(timeoutMs);
    try {
      const outcome = await attempt(deadline.signal);
      onAttempt(outcome, performance.now() - started);
      return outcome;
    } finally {
      restore();
    }
  }

  /** Attempts with jittered exponential backoff; a retry that cannot finish in time is not started. */
  async function withRetries(
    attempt: (signal: AbortSignal) => Promise<ProviderOutcome>,
    deadline: Deadline,
    onAttempt: AttemptListener,
  ): Promise<ProviderOutcome> {
    let backoff: IBackoff<unknown> | undefined;
    for (let n = 1; ; n++) {
      const outcome = await once(attempt, deadline, onAttempt);
      if (n >= retry.attempts || !isRetryable(outcome) || deadline.signal.aborted) return outcome;
      backoff = backoff === undefined ? backoffFactory.next() : backoff.next(undefined);
      if (performance.now() + backoff.duration >= deadline.at) return outcome;
      await delay(backoff.duration, deadline.signal);
      // The wait ends early when the deadline fires: keep the upstream's answer, not a timeout.
      if (hasFired(deadline.signal)) return outcome;
    }
  }

  return {
    async execute(attempt, requestDeadline, onAttempt) {
      const deadline = requestDeadline.signal;
      if (bucket !== undefined) {
        const waitMs = bucket.tryTake();
        if (waitMs > 0) {
          return failed(
            'rate_limited',
            'RATE_LIMITED',
            "the provider's rate limit (rateLimitPerSecond) holds",
            { retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)), notSent: true },
          );
        }
      }
      // With a free slot the attempt starts now and ends by itself at the deadline; only a
      // queued request needs to watch the deadline to leave the queue.
      const queued = bulk.executionSlots <= 0;
      const gone = queued ? aborted(deadline) : undefined;
      const progress = { started: false };
      try {
        const run = bulk.execute(() => {
          progress.started = true;
          return breaker.execute(() => withRetries(attempt, requestDeadline, onAttempt));
        }, deadline);
        if (gone === undefined) return await run;
        // A request still queued at its deadline leaves; the queue entry is dropped when reached.
        run.catch(() => undefined);
        const first = await Promise.race([run, gone.promise.then(() => undefined)]);
        if (first !== undefined) return first;
        // The deadline fired. A running attempt sees it too and ends with its own outcome.
        if (progress.started) return await run;
        return failed(
          'timeout',
          'UPSTREAM_TIMEOUT',
          'the deadline passed while waiting for a free slot; the cancel was not sent',
          { notSent: true },
        );
      } catch (err) {
        if (err instanceof BulkheadRejectedError) {
          return failed(
            'unavailable',
            'BULKHEAD_FULL',
            'too many cancels in flight for this provider (maxConcurrent + maxQueue); not sent',
            { notSent: true, retryAfterSeconds: 1 },
          );
        }
        if (err instanceof BrokenCircuitError) {
          const left = breakerCfg.resetAfterMs - (Date.now() - openedAt);
          return failed(
            'unavailable',
            'CIRCUIT_OPEN',
            'the circuit breaker is open after repeated upstream failures; not sent',
            { notSent: true, retryAfterSeconds: Math.max(1, Math.ceil(left / 1000)) },
          );
        }
        if (deadline.aborted) {
          return failed('timeout', 'UPSTREAM_TIMEOUT', 'the deadline passed before the attempt', {
            notSent: true,
          });
        }
        throw err;
      } finally {
        gone?.dispose();
      }
    },
    circuitState: () => stateOf(breaker.state),
  };
}

/** Read through a call, so the compiler does not carry an earlier check of `aborted` across awaits. */
function hasFired(signal: AbortSignal): boolean {
  return signal.aborted;
}
