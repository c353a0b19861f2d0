import type { LoadedConfig } from '../config/load';
import type { ProviderConfig } from '../config/schema';
import type { CircuitState } from '../core/circuit';
import type { ProviderOutcome } from '../core/provider-outcome';
import type { Provider, ProviderDeps } from '../providers/provider';
import { createProvider } from '../providers/registry';
import { breakerPolicy } from '../resilience/breaker';
import { bulkheadPolicy } from '../resilience/bulkhead';
import {
  composePolicies,
  type Attempt,
  type Policy,
  type PolicyContext,
} from '../resilience/policy';
import { createRateLimiter, createTokenBucket, rateLimitPolicy } from '../resilience/rate-limit';
import { retryPolicy } from '../resilience/retry';
import { attemptTimeoutPolicy } from '../resilience/timeout';

/** A live provider with its policies. */
export interface ProviderRuntime {
  name: string;
  config: ProviderConfig;
  provider: Provider;
  /** Runs one cancel through this provider's policies; resolves with the last attempt's outcome. */
  run(attempt: Attempt, ctx: PolicyContext): Promise<ProviderOutcome>;
  /** The circuit breaker's state, for `/readyz`, `/routes` and metrics. */
  circuitState(): CircuitState;
}

/** A live route: target → provider chain. */
export interface RouteRuntime {
  target: string;
  chain: readonly ProviderRuntime[];
  timeoutMs: number;
}

/** Everything built from one config; immutable once built, replaced whole on reload. */
export interface Runtime {
  loaded: LoadedConfig;
  routes: ReadonlyMap<string, RouteRuntime>;
  providers: ReadonlyMap<string, ProviderRuntime>;
  /** Marks a request in flight on this runtime; call the returned function when it ends. */
  acquire(): () => void;
  /** Waits for in-flight requests (at most `graceMs`), then closes every provider. */
  close(graceMs: number): Promise<void>;
}

/**
 * The policies around one provider, outermost first: rate limit (unless the provider keeps its
 * own, as Dyn does, whose polls and re-logins count against the same account limit), bulkhead,
 * circuit breaker, retries, and the per-attempt timeout. The request deadline bounds all of it.
 */
function providerRuntime(
  name: string,
  cfg: ProviderConfig,
  provider: Provider,
  deps: ProviderDeps,
): ProviderRuntime {
  const { clock, logger } = deps;
  const breaker = breakerPolicy(cfg.circuitBreaker, clock, (state) => {
    logger[state === 'open' ? 'warn' : 'info'](
      { provider: name, circuit: state },
      `circuit ${state}`,
    );
  });
  const policies: Policy[] = [];
  if (provider.ownsRateLimit !== true && cfg.rateLimit !== undefined) {
    const { perSecond } = cfg.rateLimit;
    policies.push(
      rateLimitPolicy(
        createRateLimiter(createTokenBucket(perSecond, Math.max(1, Math.ceil(perSecond)), clock)),
      ),
    );
  }
  policies.push(
    bulkheadPolicy({ maxConcurrent: cfg.maxConcurrent, maxQueue: cfg.maxQueue }),
    breaker,
    retryPolicy(cfg.retry, clock),
    attemptTimeoutPolicy(cfg.timeoutMs),
  );
  const run = composePolicies(policies, clock);
  return { name, config: cfg, provider, run, circuitState: () => breaker.state() };
}

/** Builds providers and routes from a validated config; throws only for a provider that cannot start. */
export async function buildRuntime(loaded: LoadedConfig, deps: ProviderDeps): Promise<Runtime> {
  const { config } = loaded;
  const providers = new Map<string, ProviderRuntime>();
  try {
    for (const [name, cfg] of Object.entries(config.providers)) {
      const provider = await createProvider(name, cfg, deps);
      providers.set(name, providerRuntime(name, cfg, provider, deps));
    }
  } catch (err) {
    await Promise.allSettled([...providers.values()].map((p) => p.provider.close()));
    throw err;
  }
  const routes = new Map<string, RouteRuntime>();
  for (const [target, route] of Object.entries(config.routes)) {
    const chain = [route.provider, ...route.fallback].map((name) => {
      const found = providers.get(name);
      if (found === undefined) throw new Error(`route ${target}: unknown provider ${name}`);
      return found;
    });
    routes.set(target, { target, chain, timeoutMs: route.timeoutMs });
  }

  let inFlight = 0;
  let idle: (() => void) | undefined;
  let closing: Promise<void> | undefined;
  return {
    loaded,
    routes,
    providers,
    acquire() {
      inFlight++;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        inFlight--;
        if (inFlight === 0) idle?.();
      };
    },
    close(graceMs) {
      closing ??= (async () => {
        if (inFlight > 0) {
          await new Promise<void>((resolve) => {
            idle = resolve;
            deps.clock.setTimer(resolve, graceMs);
          });
        }
        const entries = [...providers.values()];
        const results = await Promise.allSettled(entries.map((p) => p.provider.close()));
        results.forEach((r, i) => {
          if (r.status === 'rejected') {
            deps.logger.warn(
              { err: r.reason as unknown, provider: entries[i]?.name },
              'provider close failed',
            );
          }
        });
      })();
      return closing;
    },
  };
}
