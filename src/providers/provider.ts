import type { ProviderType } from '../config/schema';
import type { ProviderOutcome } from '../core/provider-outcome';
import type { Logger } from '../observability/logger';

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
  readonly protocol: ProviderType;
  /**
   * True when the provider applies `rateLimitPerSecond` itself (Dyn: polls and re-logins count
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
