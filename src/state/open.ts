import type { GatewayConfig } from '../config/schema';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import { createMemoryStore } from './memory-store';
import { createRedisStore } from './redis-store';
import { createCancelMemory, type CancelMemory, type TimeoutHook } from './replay';
import type { StateStore } from './store';

/** The shared state of one gateway: it outlives reloads (`state.*` applies at restart). */
export interface GatewayState {
  store: StateStore;
  replay: CancelMemory;
}

export interface OpenStateOptions {
  logger: Logger;
  metrics: Metrics;
  /** Monotonic milliseconds (the gateway's clock), for TTLs kept in the process and waits. */
  now: () => number;
  /** Told of each remembered timeout that its provider can confirm later (the reconciler). */
  onTimeout?: TimeoutHook;
}

/** Opens the configured store (memory or Redis) and the cancel memory on top of it. */
export async function openState(
  cfg: GatewayConfig['state'],
  options: OpenStateOptions,
): Promise<GatewayState> {
  const { logger, metrics, now, onTimeout } = options;
  const store =
    cfg.store === 'memory' || cfg.redisUrl === undefined
      ? // TTLs are differences of time, so the monotonic clock serves (and tests can move it).
        createMemoryStore(cfg.maxEntries, now)
      : await createRedisStore({
          url: cfg.redisUrl,
          timeoutMs: cfg.timeoutMs,
          now,
          logger,
          onError: (operation) => {
            metrics.stateStoreErrors.inc({ operation });
          },
        });
  const replay = createCancelMemory(store, cfg.rememberSeconds, {
    now,
    ...(onTimeout === undefined ? {} : { onTimeout }),
  });
  return { store, replay };
}
