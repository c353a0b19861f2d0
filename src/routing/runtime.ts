import { isDeepStrictEqual } from 'node:util';
import type { LoadedConfig } from '../config/load';
import type { ProviderConfig } from '../config/schema';
import type { CircuitState } from '../core/circuit';
import type { ProviderOutcome } from '../core/provider-outcome';
import { rateWindowKey, type Provider, type ProviderDeps } from '../providers/provider';
import { createProvider, providerFilesDigest } from '../providers/registry';
import { breakerPolicy } from '../resilience/breaker';
import { bulkheadPolicy } from '../resilience/bulkhead';
import type { Deadline } from '../resilience/deadline';
import {
  composePolicies,
  type Attempt,
  type Policy,
  type PolicyContext,
} from '../resilience/policy';
import { createRateLimiter, rateLimitPolicy, type WindowLease } from '../resilience/rate-limit';
import { retryPolicy } from '../resilience/retry';
import { attemptTimeoutPolicy } from '../resilience/timeout';

/** Upstream calls cut off (their deadline fired early) get this long to hand their sessions back. */
const CUT_OFF_SETTLE_MS = 1_000;

/** One provider's `close()` (Dyn: logging its sessions out) is waited for at most this long. */
export const PROVIDER_CLOSE_MS = 2_000;

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
  /**
   * Waits for in-flight requests (at most `graceMs`), ends the calls still running as
   * `abortInFlight` does, then closes every provider still open, those of earlier runtimes still
   * retiring included; each close is waited for at most PROVIDER_CLOSE_MS.
   */
  close(graceMs: number): Promise<void>;
}

/** Starts a timer; the returned function cancels it. */
type Timer = (fn: () => void, ms: number) => () => void;

/** Real time, for waits about the process ending rather than about request deadlines. */
const realTimer: Timer = (fn, ms) => {
  const timer = setTimeout(fn, Math.max(0, ms));
  timer.unref();
  return () => {
    clearTimeout(timer);
  };
};

/**
 * What the runtimes built from one another share: the providers not yet closed, and who waits
 * for them to go idle. One per gateway.
 */
class Lineage {
  readonly live = new Set<LiveProvider>();
  private readonly watchers = new Set<() => void>();
  stopping = false;

  /** Re-checks every waiter; called whenever a request or a call ends. */
  changed(): void {
    for (const watcher of [...this.watchers]) watcher();
  }

  /** Resolves true once `test` holds (checked at every change), false after `ms`. */
  until(test: () => boolean, ms: number, timer: Timer): Promise<boolean> {
    if (test()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const finish = (held: boolean): void => {
        this.watchers.delete(check);
        cancel();
        resolve(held);
      };
      const check = (): void => {
        if (test()) finish(true);
      };
      const cancel = timer(() => {
        finish(false);
      }, ms);
      this.watchers.add(check);
    });
  }
}

/**
 * One provider with its policies, shared by every runtime that keeps it. It counts the requests
 * that may still use it (`pins`: requests that started on a runtime holding it; a request is
 * pinned before its route is known, since its body is read afterwards) and the calls running on
 * it, whose deadlines the cut-off fires.
 */
class LiveProvider implements ProviderRuntime {
  pins = 0;
  /** The calls in progress, each ended at once by the cut-off. */
  private readonly calls = new Set<AbortController>();
  /** Their requests' deadlines (a request has one call at a time here). */
  private readonly running = new Map<Deadline, number>();
  /** Set by the cut-off: a call that starts afterwards ends at once. */
  private cut = false;
  /** The longest deadline of any route that used it, in any config that held it. */
  longestDeadlineMs = 0;
  /** The files its settings name, as they were when it was built (`providerFilesDigest`). */
  filesDigest = '';
  private closing: Promise<void> | undefined;
  private readonly policies: (attempt: Attempt, ctx: PolicyContext) => Promise<ProviderOutcome>;
  private readonly breaker: ReturnType<typeof breakerPolicy>;
  /** Its rate-limit window (unless the provider keeps its own), released when it closes. */
  private readonly rateWindow: WindowLease | undefined;

  constructor(
    readonly name: string,
    readonly config: ProviderConfig,
    readonly provider: Provider,
    private readonly deps: ProviderDeps,
    private readonly lineage: Lineage,
  ) {
    const { clock, logger } = deps;
    this.breaker = breakerPolicy(config.circuitBreaker, clock, (state) => {
      logger[state === 'open' ? 'warn' : 'info'](
        { provider: name, circuit: state },
        `circuit ${state}`,
      );
    });
    // The process's window of this provider outlives the instance: one rebuilt by a reload, and
    // this one while it retires, draw from the same calls of the last second.
    this.rateWindow =
      provider.ownsRateLimit !== true && config.rateLimit !== undefined
        ? deps.rateWindows.acquire(rateWindowKey(name, config), config.rateLimit.perSecond)
        : undefined;
    this.policies = composePolicies(policiesOf(config, this.rateWindow, this.breaker, deps), clock);
  }

  /** Gives its rate-limit window back (the window stays while another instance holds it). */
  releaseRateWindow(): void {
    this.rateWindow?.release();
  }

  readonly run = async (attempt: Attempt, ctx: PolicyContext): Promise<ProviderOutcome> => {
    const { deadline } = ctx;
    const call = new AbortController();
    this.calls.add(call);
    this.running.set(deadline, (this.running.get(deadline) ?? 0) + 1);
    if (this.cut) this.end(call, deadline);
    // Each attempt sees the request's deadline and the cut-off as one signal.
    const guarded: Attempt = async (signal) => {
      if (signal.aborted || call.signal.aborted)
        return attempt(signal.aborted ? signal : call.signal);
      const onAbort = (): void => {
        call.abort(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        return await attempt(call.signal);
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    };
    try {
      return await this.policies(guarded, ctx);
    } finally {
      this.calls.delete(call);
      const left = (this.running.get(deadline) ?? 1) - 1;
      if (left > 0) this.running.set(deadline, left);
      else this.running.delete(deadline);
      this.lineage.changed();
    }
  };

  /** Ends one call now, and its request's deadline too, so that no retry or fallback follows. */
  private end(call: AbortController, deadline: Deadline): void {
    call.abort(new DOMException('the gateway is shutting down', 'TimeoutError'));
    deadline.narrow(0);
  }

  circuitState(): CircuitState {
    return this.breaker.state();
  }

  inFlight(): number {
    return this.calls.size;
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  /**
   * Ends every call in progress (and every later one) and returns how many. All are aborted
   * before any of them can hand its Dyn session back, so that no request still waiting for a
   * session gets one (and a login for it) during the shutdown.
   */
  cutOff(): number {
    this.cut = true;
    for (const call of this.calls)
      call.abort(new DOMException('the gateway is shutting down', 'TimeoutError'));
    for (const deadline of this.running.keys()) deadline.narrow(0);
    return this.calls.size;
  }

  /** No request can still reach it. */
  idle(): boolean {
    return this.pins === 0 && this.calls.size === 0;
  }

  /** Closes the provider once; the wait is bounded, the close itself goes on if it is slow. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.lineage.live.delete(this);
      // No call runs any more (cut off or ended), so none can take from the window after this.
      this.releaseRateWindow();
      const { logger } = this.deps;
      const closing = this.provider.close().then(
        () => true,
        (err: unknown) => {
          logger.warn({ err, provider: this.name }, 'provider close failed');
          return true;
        },
      );
      let cancel = (): void => undefined;
      const slow = new Promise<false>((resolve) => {
        cancel = realTimer(() => {
          resolve(false);
        }, PROVIDER_CLOSE_MS);
      });
      const done = await Promise.race([closing, slow]);
      cancel();
      if (!done) {
        logger.warn(
          { provider: this.name, waitedMs: PROVIDER_CLOSE_MS },
          'provider close is slow; not waiting for it (sessions not logged out yet expire at Dyn)',
        );
      }
    })();
    return this.closing;
  }

  /**
   * Closes it once no request may use it any more, at the latest after `capMs` (on the clock,
   * as the request deadlines that bound its calls); calls still running then are cut off.
   */
  async retire(capMs: number): Promise<void> {
    const { clock, logger } = this.deps;
    const started = clock.now();
    const idle = await this.lineage.until(
      () => this.idle() || this.lineage.stopping,
      capMs,
      (fn, ms) => clock.setTimer(fn, ms),
    );
    let cutOff = 0;
    if (!idle) {
      cutOff = this.cutOff();
      await this.lineage.until(() => this.calls.size === 0, CUT_OFF_SETTLE_MS, realTimer);
    }
    await this.close();
    logger.info(
      { provider: this.name, waitedMs: Math.round(clock.now() - started), cutOff },
      'retired provider closed',
    );
  }
}

/**
 * The policies around one provider, outermost first: rate limit (`rateWindow`: absent when the
 * provider keeps its own, as Dyn does, whose polls and re-logins count against the same account
 * limit), bulkhead, circuit breaker, retries, and the per-attempt timeout. The request deadline
 * bounds all of it.
 */
function policiesOf(
  cfg: ProviderConfig,
  rateWindow: WindowLease | undefined,
  breaker: Policy,
  deps: ProviderDeps,
): Policy[] {
  const { clock } = deps;
  const policies: Policy[] = [];
  if (rateWindow !== undefined) {
    policies.push(rateLimitPolicy(createRateLimiter(rateWindow.window)));
  }
  policies.push(
    bulkheadPolicy({ maxConcurrent: cfg.maxConcurrent, maxQueue: cfg.maxQueue }),
    breaker,
    retryPolicy(cfg.retry, clock),
    attemptTimeoutPolicy(cfg.timeoutMs),
  );
  return policies;
}

/** What a runtime keeps out of its public shape: its lineage and its providers. */
interface RuntimeParts {
  lineage: Lineage;
  entries: ReadonlyMap<string, LiveProvider>;
  /** `server.receiveTimeoutMs` of its config. */
  receiveTimeoutMs: number;
}

const partsOf = new WeakMap<Runtime, RuntimeParts>();

/**
 * Builds providers and routes from a validated config; throws only for a provider that cannot
 * start. With `previous` (the runtime serving now), a provider whose settings are deep-equal to
 * its namesake's is taken over as it is (sessions, rate-limit window, breaker); the others are built,
 * and draw from their namesake's rate-limit window (`deps.rateWindows`), now at the new rate.
 * Nothing else of `previous` changes until `handOver(previous, next)`.
 */
export async function buildRuntime(
  loaded: LoadedConfig,
  deps: ProviderDeps,
  previous?: Runtime,
): Promise<Runtime> {
  const { config } = loaded;
  const before = previous === undefined ? undefined : partsOf.get(previous);
  const lineage = before?.lineage ?? new Lineage();
  if (lineage.stopping) throw new Error('the gateway is stopping');
  const entries = new Map<string, LiveProvider>();
  const fresh: LiveProvider[] = [];
  const routes = new Map<string, RouteRuntime>();
  const uses: [LiveProvider, number][] = [];
  try {
    for (const [name, cfg] of Object.entries(config.providers)) {
      const old = before?.entries.get(name);
      const filesDigest = providerFilesDigest(cfg, deps.projectRoot);
      if (
        old !== undefined &&
        !old.closed &&
        isDeepStrictEqual(old.config, cfg) &&
        old.filesDigest === filesDigest
      ) {
        entries.set(name, old);
        continue;
      }
      const provider = await createProvider(name, cfg, deps);
      const entry = new LiveProvider(name, cfg, provider, deps, lineage);
      entry.filesDigest = filesDigest;
      fresh.push(entry);
      entries.set(name, entry);
    }
    for (const [target, route] of Object.entries(config.routes)) {
      const chain = [route.provider, ...route.fallback].map((name) => {
        const found = entries.get(name);
        if (found === undefined) throw new Error(`route ${target}: unknown provider ${name}`);
        uses.push([found, route.timeoutMs]);
        return found;
      });
      routes.set(target, { target, chain, timeoutMs: route.timeoutMs });
    }
  } catch (err) {
    // Their windows go back first: the instances still serving keep their own rate.
    for (const entry of fresh) entry.releaseRateWindow();
    await Promise.allSettled(fresh.map((p) => p.provider.close()));
    throw err;
  }
  for (const entry of fresh) lineage.live.add(entry);
  for (const [entry, timeoutMs] of uses) {
    entry.longestDeadlineMs = Math.max(entry.longestDeadlineMs, timeoutMs);
  }
  const all = [...entries.values()];

  let closing: Promise<void> | undefined;
  const runtime: Runtime = {
    loaded,
    routes,
    providers: entries,
    acquire() {
      for (const entry of all) entry.pins++;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        for (const entry of all) entry.pins--;
        lineage.changed();
      };
    },
    close(graceMs) {
      closing ??= (async () => {
        const open = (): LiveProvider[] => [...lineage.live];
        await lineage.until(() => open().every((e) => e.idle()), graceMs, realTimer);
        lineage.stopping = true;
        cutOffAll(lineage);
        await lineage.until(
          () => open().every((e) => e.inFlight() === 0),
          CUT_OFF_SETTLE_MS,
          realTimer,
        );
        await Promise.all(open().map((e) => e.close()));
        // Retirements still waiting for their requests see `stopping` and end.
        lineage.changed();
      })();
      return closing;
    },
  };
  partsOf.set(runtime, { lineage, entries, receiveTimeoutMs: config.server.receiveTimeoutMs });
  return runtime;
}

function cutOffAll(lineage: Lineage): number {
  let count = 0;
  for (const entry of lineage.live) count += entry.cutOff();
  return count;
}

/** Which providers of `next` were taken over from `previous` as they were, and which were built. */
/**
 * True when a file some provider of `runtime` was built from (a `tls` file, a WSDL) is no longer
 * what it read: a reload of an unchanged config file still rebuilds those providers.
 */
export function providerFilesChanged(runtime: Runtime, projectRoot: string): boolean {
  const parts = partsOf.get(runtime);
  if (parts === undefined) return false;
  return [...parts.entries.values()].some(
    (entry) => entry.filesDigest !== providerFilesDigest(entry.config, projectRoot),
  );
}

export function providerChanges(
  previous: Runtime,
  next: Runtime,
): { kept: string[]; rebuilt: string[]; retiring: string[] } {
  const kept: string[] = [];
  const rebuilt: string[] = [];
  for (const [name, entry] of next.providers) {
    const old = previous.providers.get(name);
    if (old === entry) kept.push(name);
    else if (old !== undefined) rebuilt.push(name);
  }
  const carried = new Set<ProviderRuntime>(next.providers.values());
  const retiring = [...previous.providers.values()]
    .filter((entry) => !carried.has(entry))
    .map((entry) => entry.name);
  return { kept, rebuilt, retiring };
}

/**
 * Called once `next` serves new requests: the providers of `previous` that `next` does not keep
 * are retired. Each closes (Dyn: logs its sessions out) as soon as no request that started on a
 * runtime holding it is left, and at the latest after the longest deadline of its routes plus
 * `server.receiveTimeoutMs` (a request admitted just before the swap may still be reading its
 * body); calls still running then are cut off. Resolves when they are closed.
 */
export async function handOver(previous: Runtime, next: Runtime): Promise<void> {
  const parts = partsOf.get(previous);
  if (parts === undefined) return;
  const carried = new Set<ProviderRuntime>(next.providers.values());
  const retiring = [...parts.entries.values()].filter((entry) => !carried.has(entry));
  await Promise.all(
    retiring.map((entry) => entry.retire(entry.longestDeadlineMs + parts.receiveTimeoutMs)),
  );
}

/**
 * The drain's cut-off: fires the deadline of every upstream call in progress on the providers of
 * `runtime` and of earlier runtimes still retiring (and of every call started afterwards), so
 * their requests are answered (timeout) now rather than cut without an answer. Returns how many
 * calls it ended.
 */
export function abortInFlight(runtime: Runtime): number {
  const parts = partsOf.get(runtime);
  return parts === undefined ? 0 : cutOffAll(parts.lineage);
}
