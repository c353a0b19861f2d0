import type { CircuitState } from '../core/circuit';
import { failed, type ProviderOutcome } from '../core/provider-outcome';
import type { Clock } from './clock';
import type { Policy, PolicyContext } from './policy';

/** When the circuit opens, and how long it stays open before a probe. */
export interface BreakerOptions {
  /** Consecutive upstream failures that open the circuit. */
  failureThreshold: number;
  /** How long the circuit stays open before one request may probe the upstream. */
  resetAfterMs: number;
}

/** A circuit breaker policy; its state is read by `/readyz` and the metrics. */
export type BreakerPolicy = Policy & {
  /** The circuit as it stands now. */
  state(): CircuitState;
};

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

type Inner =
  | { value: 'closed' }
  | { value: 'open'; openedAt: number }
  | { value: 'half-open'; probeDone: Promise<void> };

/** Resolves when `signal` aborts or `other` settles, whichever is first; never rejects. */
function untilEither(signal: AbortSignal, other: Promise<void>): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  let onAbort: () => void = () => undefined;
  const gone = new Promise<void>((resolve) => {
    onAbort = resolve;
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([gone, other]).finally(() => {
    signal.removeEventListener('abort', onAbort);
  });
}

/**
 * Written here rather than taken from cockatiel: cockatiel's breaker reads `Date.now()` and takes
 * no clock, so its open time could not follow the injected one. It keeps cockatiel's rules:
 * `failureThreshold` consecutive upstream failures open it (any other outcome resets the count);
 * after `resetAfterMs` one request probes while the others wait for the probe; a good probe closes
 * it and a failed one opens it again. The breaker sees what the steps inside it end with (after
 * retries), one outcome per request.
 */
export function breakerPolicy(
  options: BreakerOptions,
  clock: Clock,
  onChange?: (state: CircuitState) => void,
): BreakerPolicy {
  let inner: Inner = { value: 'closed' };
  let failures = 0;

  const become = (next: Inner): void => {
    inner = next;
    onChange?.(next.value);
  };
  const open = (): void => {
    if (inner.value !== 'open') become({ value: 'open', openedAt: clock.now() });
  };
  /** Counts one finished request; true when it was an upstream failure. */
  const count = (outcome: ProviderOutcome): boolean => {
    if (!isUpstreamFailure(outcome)) {
      failures = 0;
      return false;
    }
    failures++;
    return true;
  };

  async function probe(
    next: (ctx: PolicyContext) => Promise<ProviderOutcome>,
    ctx: PolicyContext,
  ): Promise<ProviderOutcome> {
    let settle: () => void = () => undefined;
    become({
      value: 'half-open',
      probeDone: new Promise<void>((resolve) => {
        settle = resolve;
      }),
    });
    try {
      const outcome = await next(ctx);
      if (count(outcome)) open();
      else if (inner.value === 'half-open') become({ value: 'closed' });
      return outcome;
    } catch (err) {
      // Not an upstream answer, so it says nothing against the upstream (as in cockatiel).
      if (inner.value === 'half-open') become({ value: 'closed' });
      throw err;
    } finally {
      settle();
    }
  }

  async function execute(
    next: (ctx: PolicyContext) => Promise<ProviderOutcome>,
    ctx: PolicyContext,
  ): Promise<ProviderOutcome> {
    const state = inner;
    switch (state.value) {
      case 'closed': {
        const outcome = await next(ctx);
        if (count(outcome) && failures >= options.failureThreshold) open();
        return outcome;
      }
      case 'open': {
        const left = options.resetAfterMs - (clock.now() - state.openedAt);
        if (left > 0) {
          return failed(
            'unavailable',
            'CIRCUIT_OPEN',
            'the circuit breaker is open after repeated upstream failures; not sent',
            { notSent: true, retryAfterSeconds: Math.max(1, Math.ceil(left / 1000)) },
          );
        }
        return probe(next, ctx);
      }
      case 'half-open': {
        await untilEither(ctx.deadline.signal, state.probeDone);
        if (ctx.deadline.signal.aborted) {
          return failed('timeout', 'UPSTREAM_TIMEOUT', 'the deadline passed before the attempt', {
            notSent: true,
          });
        }
        return execute(next, ctx);
      }
    }
  }

  return { execute, state: () => inner.value };
}
