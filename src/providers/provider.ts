import type { Tracer } from '@opentelemetry/api';
import type { ProviderConfig } from '../config/schema';
import type { Protocol } from '../core/protocols';
import type { Confirmation, PendingCancel, ProviderOutcome } from '../core/provider-outcome';
import type { Logger } from '../observability/logger';
import type { RequestTrace } from '../observability/tracing';
import type { Clock } from '../resilience/clock';
import type { RateWindows } from '../resilience/rate-limit';
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
  /**
   * The per-process rate-limit windows, one set for the gateway's lifetime: a provider rebuilt
   * by a reload draws from its predecessor's window (`rateWindowKey`).
   */
  rateWindows: RateWindows;
  /** Sent as `User-Agent` on every upstream call: `cancel-gateway/<version>`. */
  userAgent: string;
  /** `HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY` (either case) are read from here. */
  env: Readonly<Record<string, string | undefined>>;
  /** Client spans of upstream calls (a no-op tracer when tracing is off). */
  tracer: Tracer;
  /**
   * How long the session of a Dyn job that outlived its cancel's deadline is kept, so that a
   * background confirmation can still poll that job (job ids live only as long as their
   * session): `state.reconcileSeconds`. Absent or 0: the session is logged out at once, and a
   * confirmation reads the task instead.
   */
  keepJobSessionsMs?: number;
}

/**
 * Which rate-limit window a provider draws from: its name and the upstream its calls count
 * against (Dyn: the account and the API's origin; methodcall: the URL's origin). Instances of one
 * provider with the same key, before and after a reload, share one window.
 */
export function rateWindowKey(name: string, cfg: ProviderConfig): string {
  switch (cfg.type) {
    case 'methodcall':
      return JSON.stringify([name, cfg.type, originOf(cfg.url)]);
    case 'dyn-rest':
      return JSON.stringify([name, 'dyn', cfg.customerName, cfg.userName, originOf(cfg.baseUrl)]);
    case 'dyn-soap':
      // Without `endpoint` the WSDL's address applies, which the config does not show.
      return JSON.stringify([
        name,
        'dyn',
        cfg.customerName,
        cfg.userName,
        cfg.endpoint === undefined ? '' : originOf(cfg.endpoint),
      ]);
    default: {
      const unreachable: never = cfg;
      throw new Error(`unknown provider type ${JSON.stringify(unreachable)}`);
    }
  }
}

/** A validated URL's origin (scheme, host, port): paths of one API count together. */
function originOf(url: string): string {
  return URL.canParse(url) ? new URL(url).origin : url;
}

/** What a provider gets with each call. */
export interface CallContext {
  /** Aborted when the attempt's or the request's deadline passes. */
  signal: AbortSignal;
  /** Child logger bound to the request. */
  log: Logger;
  /** Sent upstream where the protocol allows a header. */
  requestId: string;
  /**
   * The request's trace: every upstream call made for it sends its `traceparent` (passed on as
   * `ExchangeRequest.trace`). Absent for work outside any request (background confirmations).
   */
  trace?: RequestTrace;
}

/** Translates one cancel (and, where the protocol has one, a task read) into one upstream protocol. */
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
  /**
   * Reads the task's current state: `found` with the task, `not_found`, or a failure outcome;
   * nothing is canceled. Absent where the protocol has no published read (methodcall): the
   * dispatcher then answers `not_supported` without calling the upstream.
   */
  read?(taskId: string, ctx: CallContext): Promise<ProviderOutcome>;
  /**
   * Settles a cancel of this provider that ended in a `timeout` carrying `pending`: polls the
   * upstream job that accepted it while that job exists, then reads the task. Never cancels, never
   * throws for an upstream answer; waits for the provider's rate limit rather than exceed it.
   */
  confirm?(taskId: string, pending: PendingCancel, ctx: CallContext): Promise<Confirmation>;
  /** Logs out sessions and closes sockets. */
  close(): Promise<void>;
}
