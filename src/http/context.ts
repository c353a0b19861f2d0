import type { Metrics } from '../observability/metrics';
import type { Logger } from '../observability/logger';
import type { Tracing } from '../observability/tracing';
import type { Clock } from '../resilience/clock';
import type { Runtime } from '../routing/runtime';
import type { CancelMemory } from '../state/replay';
import type { StateStore } from '../state/store';
import type { Auth } from './auth';

/** What one applied config gives the HTTP layer; replaced whole by a reload. */
export interface ActiveConfig {
  runtime: Runtime;
  /** API-key auth of this config (disabled when it has no `auth`). */
  auth: Auth;
}

/** A failed reload, shown by `/readyz` while the file on disk stays broken. */
export interface ReloadError {
  at: string;
  problems: string[];
}

/** What the HTTP layer needs from the running gateway. */
export interface HttpContext {
  /** The config new requests start on. */
  active(): ActiveConfig;
  /** True once shutdown has begun. */
  isDraining(): boolean;
  lastReloadError(): ReloadError | undefined;
  logger: Logger;
  metrics: Metrics;
  clock: Clock;
  /** Shared state: outcome memory, idempotency keys. */
  store: StateStore;
  replay: CancelMemory;
  /** Server spans of `/cancel` and batch items. */
  tracing: Tracing;
}
