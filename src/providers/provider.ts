import type { Tracer } from '@opentelemetry/api';
import type { Protocol } from '../core/protocols';
import type { ProviderOutcome } from '../core/provider-outcome';
import type { Logger } from '../observability/logger';
import type { Clock } from '../resilience/clock';
import type { StateStore } from '../state/store';

/** The edges a provider factory is given, so tests can aim providers at simulators and fake time. */
export interface ProviderDeps {
  logger: Logger;
  /** Relative paths in the config (a WSDL) resolve against this directory. */
  projectRoot: string;
  /** Shared state: account-wide rate limits (`rateLimit.scope: account`) live here. */
  store: StateStore;
  /** Time for rate limits, job polling and session back-off. */
  clock: Clock;
  /** Sent as `User-Agent` on every upstream call: `cancel-gateway/<version>`. */
  userAgent: string;
  /** `HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY` (either case) are read from here. */
  env: Readonly<Record<string, string | undefined>>;
  /** Client spans of upstream calls (a no-op tracer when tracing is off). */
  tracer: Tracer;
}

/** What a provider gets with each call. */
export interface CallContext {
  /** Aborted when the attempt's or the request's deadline passes. */
  signal: AbortSignal;
  /** Child logger bound to the request. */
  log: Logger;
  /** Sent upstream where the protocol allows a header. */
  requestId: string;
}

/** Translates one cancel into one upstream protocol. */
export interface Provider {
  readonly name: string;
  readonly protocol: Protocol;
  /**
   * True when the provider applies its `rateLimit` itself (Dyn: polls and re-logins count
   * against the same account limit); the policy layer then does not apply it a second time.
   */
  readonly ownsRateLimit?: boolean;
  /** A problem with this task id for this upstream (nothing is sent then), or undefined. */
  checkTaskId(taskId: string): string | undefined;
  /** Resolves with a classified outcome for every answer; never throws for an upstream answer. */
  cancel(taskId: string, ctx: CallContext): Promise<ProviderOutcome>;
  /** Logs out sessions and closes sockets. */
  close(): Promise<void>;
}
