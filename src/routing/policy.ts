import type { ProviderConfig } from '../config/schema';
import type { ProviderOutcome } from '../core/provider-outcome';
import { scopedTimeout } from './deadline';

/** Default per-attempt timeout by provider type. */
export const DEFAULT_ATTEMPT_TIMEOUT_MS: Record<ProviderConfig['type'], number> = {
  methodcall: 5_000,
  'dyn-rest': 15_000,
  'dyn-soap': 15_000,
};

/** Reports one finished attempt (for `attempts` and metrics). */
export type AttemptListener = (outcome: ProviderOutcome, durationMs: number) => void;

/** Circuit state as `/readyz` and `/routes` show it. */
export type CircuitState = 'closed' | 'half-open' | 'open';

/**
 * Resilience around one provider: the seam where the per-attempt timeout lives today and where
 * bulkhead, rate limit, circuit breaker and retries plug in.
 */
export interface ProviderPolicy {
  /** Runs `attempt` one or more times within `deadline`; resolves with the last outcome. */
  execute(
    attempt: (signal: AbortSignal) => Promise<ProviderOutcome>,
    deadline: AbortSignal,
    onAttempt: AttemptListener,
  ): Promise<ProviderOutcome>;
  circuitState(): CircuitState;
}

/** The policy of the foundation: one attempt, bounded by the provider's `timeoutMs`. */
export function createPolicy(cfg: ProviderConfig): ProviderPolicy {
  const timeoutMs = cfg.timeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS[cfg.type];
  return {
    async execute(attempt, deadline, onAttempt) {
      const scope = scopedTimeout(deadline, timeoutMs);
      const started = performance.now();
      try {
        const outcome = await attempt(scope.signal);
        onAttempt(outcome, performance.now() - started);
        return outcome;
      } finally {
        scope.dispose();
      }
    },
    circuitState: () => 'closed',
  };
}
