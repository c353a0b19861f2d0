import type { LoadedConfig } from '../config/load';
import { compileAuth, type Auth } from '../http/auth';
import type { ProviderConfig } from '../config/schema';
import type { Logger } from '../observability/logger';
import type { Provider } from '../providers/provider';
import { createProvider, type ProviderDeps } from '../providers/registry';
import { createPolicy, type ProviderPolicy } from './policy';

/** A live provider with its policies. */
export interface ProviderRuntime {
  name: string;
  config: ProviderConfig;
  provider: Provider;
  policy: ProviderPolicy;
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
  /** API-key auth of this config (disabled when it has no `auth`). */
  auth: Auth;
  /** Marks a request in flight on this runtime; call the returned function when it ends. */
  acquire(): () => void;
  /** Waits for in-flight requests (at most `graceMs`), then closes every provider. */
  close(graceMs?: number): Promise<void>;
}

/** Builds providers and routes from a validated config; throws only for a provider that cannot start. */
export async function buildRuntime(
  loaded: LoadedConfig,
  deps: ProviderDeps & { logger: Logger },
): Promise<Runtime> {
  const { config } = loaded;
  const providers = new Map<string, ProviderRuntime>();
  try {
    for (const [name, cfg] of Object.entries(config.providers)) {
      const provider = await createProvider(name, cfg, deps);
      const policy = createPolicy(cfg, {
        ownsRateLimit: provider.ownsRateLimit === true,
        onCircuitChange: (state) => {
          const level = state === 'open' ? 'warn' : 'info';
          deps.logger[level]({ provider: name, circuit: state }, `circuit ${state}`);
        },
      });
      providers.set(name, { name, config: cfg, provider, policy });
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
    routes.set(target, {
      target,
      chain,
      timeoutMs: route.timeoutMs ?? config.server.requestTimeoutMs,
    });
  }

  let inFlight = 0;
  let idle: (() => void) | undefined;
  let closing: Promise<void> | undefined;
  return {
    loaded,
    routes,
    providers,
    auth: compileAuth(config.auth),
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
    close(graceMs = 30_000) {
      closing ??= (async () => {
        if (inFlight > 0) {
          await new Promise<void>((resolve) => {
            idle = resolve;
            setTimeout(resolve, graceMs).unref();
          });
        }
        const results = await Promise.allSettled(
          [...providers.values()].map((p) => p.provider.close()),
        );
        results.forEach((r, i) => {
          if (r.status === 'rejected') {
            deps.logger.warn(
              { err: r.reason as unknown, provider: [...providers.keys()][i] },
              'provider close failed',
            );
          }
        });
      })();
      return closing;
    },
  };
}
