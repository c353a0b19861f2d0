import type { Confirmation } from '../core/provider-outcome';
import type { PendingConfirmation } from '../core/result';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import { detached } from '../observability/tracing';
import { sleep, type Clock } from '../resilience/clock';
import { LEASE_MS } from '../state/lease';
import type { CancelMemory } from '../state/replay';
import type { Lease, StateStore } from '../state/store';
import { confirmCancel } from './confirm';
import type { Runtime } from './runtime';

/** Confirmation attempts running at once per gateway (each holds one provider session or read). */
export const RECONCILE_CONCURRENCY = 4;
/** Timeouts followed at once per gateway; more are dropped (their timeout stays remembered). */
export const RECONCILE_MAX_QUEUE = 1_000;
/**
 * The first attempt comes this soon after the timeout: a Dyn job that outlived the caller's
 * deadline often ends within seconds, and a caller repeating the cancel a few seconds later
 * should find it settled.
 */
export const FIRST_ATTEMPT_MS = 1_000;
/** Later attempts back off twice as long each time, up to this. */
export const MAX_BACKOFF_MS = 30_000;

/**
 * How long a Dyn job's session is kept for the reconciler (`ProviderDeps.keepJobSessionsMs`):
 * the window plus the first attempt's delay. A session is kept just before its timeout is
 * scheduled, and each attempt keeps it again for as long; with exactly the window, the first
 * attempt of a window no longer than that delay would find the session gone and read the task,
 * which shows it as it was before the cancel while the job still runs.
 */
export function keptJobSessionMs(reconcileSeconds: number): number {
  return reconcileSeconds * 1000 + FIRST_ATTEMPT_MS;
}

/**
 * How one followed timeout ended: settled (`canceled`, `pending`, `finished`, `gone`), or not
 * (`expired`: the window ran out; `abandoned`: its provider is gone or cannot confirm; `dropped`:
 * the queue was full; `stopped`: the gateway shut down).
 */
export type ReconcileResult =
  'canceled' | 'pending' | 'finished' | 'gone' | 'expired' | 'abandoned' | 'dropped' | 'stopped';

export interface ReconcilerOptions {
  /** Where the once-across-replicas lease of each confirmation is claimed. */
  store: StateStore;
  /** The cancel memory whose remembered timeout a confirmation replaces or clears. */
  memory: CancelMemory;
  /** The runtime serving now: every attempt runs on the one current at its start (reloads). */
  runtime: () => Runtime;
  logger: Logger;
  metrics: Metrics;
  clock: Clock;
  /** How long after the timeout it is still confirmed (`state.reconcileSeconds`). */
  reconcileSeconds: number;
  /** Attempts at once; default RECONCILE_CONCURRENCY. */
  concurrency?: number;
  /** Timeouts followed at once; default RECONCILE_MAX_QUEUE. */
  maxQueue?: number;
  /** One confirmation attempt; default `confirmCancel` (tests may count or script attempts). */
  confirm?: typeof confirmCancel;
}

/** Background confirmation of the cancels that ended in an ambiguous timeout. */
export interface Reconciler {
  /**
   * Starts following one timed-out cancel; `requestId` is the request that timed out and
   * `rememberedAt` its remembered timeout's `at` (the one a `pending` settle forgets).
   */
  schedule(
    target: string,
    taskId: string,
    pending: PendingConfirmation,
    requestId: string,
    rememberedAt: string,
  ): void;
  /** Timeouts followed now (waiting for their next attempt or in one). */
  size(): number;
  /** Stops at once: attempts in progress are aborted; resolves when every one has ended. */
  stop(): Promise<void>;
}

interface Followed {
  key: string;
  target: string;
  taskId: string;
  pending: PendingConfirmation;
  requestId: string;
  /** The remembered timeout this follows (the newest one of this process). */
  rememberedAt: string;
  /** On the clock: when the timeout was scheduled, and when following it ends. */
  startedAt: number;
  until: number;
  attempts: number;
  last?: Confirmation;
  /** Bumped by each later timeout of the same cancel: an answer found before it may be stale. */
  generation: number;
}

/** Settled states of a confirmation and the result they end with. */
const SETTLED: Partial<Record<Confirmation['state'], ReconcileResult>> = {
  canceled: 'canceled',
  pending: 'pending',
  finished: 'finished',
  gone: 'gone',
  unsupported: 'abandoned',
};

/**
 * Follows each timed-out Dyn cancel for `reconcileSeconds`: attempts after 1 s, 2 s, 4 s … (at
 * most 30 s apart, never sooner than a `Retry-After` asks), each on the runtime current at its
 * start and holding it (`acquire`) so that a reload does not close the provider under it. What it
 * finds replaces the remembered timeout: a confirmed cancel is remembered as one (a repeat
 * replays it), a task still pending or ended on its own clears the timeout (a repeat cancels
 * normally), a task gone keeps it (a repeat answers `GONE_AFTER_TIMEOUT`). With a shared store
 * each timeout is followed by one replica only: the one that claims its lease.
 */
export function createReconciler(options: ReconcilerOptions): Reconciler {
  const { store, memory, logger, metrics, clock } = options;
  const windowMs = options.reconcileSeconds * 1000;
  const concurrency = options.concurrency ?? RECONCILE_CONCURRENCY;
  const maxQueue = options.maxQueue ?? RECONCILE_MAX_QUEUE;
  const confirm = options.confirm ?? confirmCancel;
  const followed = new Map<string, Followed>();
  const running = new Set<Promise<void>>();
  const stopping = new AbortController();
  /** Read through a call: the compiler must not assume an earlier check still holds. */
  const stopped = (): boolean => stopping.signal.aborted;
  let active = 0;
  const slotWaiters: (() => void)[] = [];

  /** Waits for an attempt slot; false once stopped. */
  async function takeSlot(): Promise<boolean> {
    while (active >= concurrency && !stopped()) {
      await new Promise<void>((resolve) => slotWaiters.push(resolve));
    }
    if (stopped()) return false;
    active++;
    return true;
  }

  function freeSlot(): void {
    active--;
    slotWaiters.shift()?.();
  }

  /** One attempt on the runtime current now; undefined when stopped before it could start. */
  async function attempt(item: Followed): Promise<Confirmation | undefined> {
    if (!(await takeSlot())) return undefined;
    const runtime = options.runtime();
    const release = runtime.acquire();
    try {
      item.attempts++;
      return await confirm(runtime, item.target, item.taskId, item.pending, {
        log: logger.child({ requestId: item.requestId }),
        clock,
        signal: stopping.signal,
        requestId: item.requestId,
      });
    } finally {
      release();
      freeSlot();
    }
  }

  /** Applies what the confirmation found to the cancel memory. */
  async function settle(item: Followed, result: ReconcileResult): Promise<void> {
    const { target, taskId, last } = item;
    if (result === 'canceled' && last !== undefined) {
      const task = last.task ?? last.outcome.task;
      const protocol = options.runtime().providers.get(item.pending.provider)?.provider.protocol;
      await memory.rememberConfirmed(target, taskId, {
        provider: item.pending.provider,
        ...(protocol === undefined ? {} : { protocol }),
        ...(task === undefined ? {} : { task }),
      });
    } else if (result === 'pending' || result === 'finished') {
      await memory.forgetUnsure(target, taskId, item.rememberedAt);
    }
    // `gone`: the remembered timeout stays, so a repeat answers GONE_AFTER_TIMEOUT.
  }

  function report(item: Followed, result: ReconcileResult): void {
    metrics.reconciliations.inc({ provider: item.pending.provider, result });
    if (result === 'stopped') return;
    const { last } = item;
    const status = last?.task?.status ?? last?.outcome.task?.status;
    const unsettled = result === 'expired' || result === 'abandoned';
    logger[unsettled ? 'warn' : 'info'](
      {
        requestId: item.requestId,
        target: item.target,
        provider: item.pending.provider,
        taskId: item.taskId,
        result,
        attempts: item.attempts,
        afterMs: Math.round(clock.now() - item.startedAt),
        ...(status === undefined ? {} : { taskStatus: status }),
        ...(unsettled && last?.outcome.error !== undefined
          ? { lastError: last.outcome.error.code }
          : {}),
      },
      'timeout settled',
    );
  }

  /** Attempts until settled, the window ends, or the gateway stops. */
  async function loop(item: Followed): Promise<ReconcileResult> {
    let backoff = FIRST_ATTEMPT_MS;
    let waitMs = FIRST_ATTEMPT_MS;
    for (;;) {
      await sleep(clock, Math.max(0, Math.min(waitMs, item.until - clock.now())), stopping.signal);
      if (stopped()) return 'stopped';
      let found: Confirmation | undefined;
      try {
        found = await attempt(item);
      } catch (err) {
        // confirmCancel rejects only on a bug: asking again would repeat it.
        logger.error(
          { err, requestId: item.requestId, target: item.target, taskId: item.taskId },
          'background confirmation failed',
        );
        return 'abandoned';
      }
      if (found === undefined || stopped()) return 'stopped';
      item.last = found;
      // A task read as pending while the cancel may still apply settles nothing: ask again.
      const settled = found.cancelMayApply === true ? undefined : SETTLED[found.state];
      if (settled !== undefined) return settled;
      if (clock.now() >= item.until) return 'expired';
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      waitMs = Math.max(backoff, (found.retryAfterSeconds ?? 0) * 1000);
    }
  }

  /** Follows one timeout once across replicas (its lease), to its end. */
  async function follow(item: Followed): Promise<void> {
    let lease: Lease | undefined;
    try {
      let claim = await store.claimLease(`reconcile:${item.key}`, LEASE_MS);
      // Another replica follows an earlier timeout of this task; this one's job may be newer, so
      // it is followed once that replica is done (what that one settles never removes it).
      while ('heldBy' in claim) {
        logger.debug(
          { requestId: item.requestId, target: item.target, taskId: item.taskId },
          'timeout already being confirmed by another replica; waiting for it',
        );
        if (clock.now() >= item.until) {
          report(item, 'expired');
          return;
        }
        await sleep(clock, Math.min(LEASE_MS, item.until - clock.now()), stopping.signal);
        if (stopped()) {
          report(item, 'stopped');
          return;
        }
        claim = await store.claimLease(`reconcile:${item.key}`, LEASE_MS);
      }
      // `unavailable`: the store is down; confirming here is better than not at all.
      if ('lease' in claim) lease = claim.lease;
      for (;;) {
        const generation = item.generation;
        const result = await loop(item);
        // A later timeout of this cancel (a retry whose job still runs) came in meanwhile: what
        // this attempt found may predate it, so it settles nothing; follow the newer one.
        if (result !== 'stopped' && item.generation !== generation) continue;
        if (result !== 'stopped') await settle(item, result);
        report(item, result);
        return;
      }
    } finally {
      if (followed.get(item.key) === item) followed.delete(item.key);
      await lease?.release();
    }
  }

  return {
    schedule(target, taskId, pending, requestId, rememberedAt) {
      if (stopped()) return;
      const key = `${target}:${taskId}`;
      const now = clock.now();
      const known = followed.get(key);
      if (known !== undefined) {
        // A later timeout of the same cancel: its job (if any) is the one to poll now.
        known.pending = pending;
        known.rememberedAt = rememberedAt;
        known.until = Math.max(known.until, now + windowMs);
        known.generation++;
        return;
      }
      if (followed.size >= maxQueue) {
        metrics.reconciliations.inc({ provider: pending.provider, result: 'dropped' });
        logger.warn(
          { requestId, target, taskId, provider: pending.provider, followed: followed.size },
          'too many timeouts being confirmed; this one is not (its timeout stays remembered)',
        );
        return;
      }
      const item: Followed = {
        key,
        target,
        taskId,
        pending,
        requestId,
        rememberedAt,
        startedAt: now,
        until: now + windowMs,
        attempts: 0,
        generation: 0,
      };
      followed.set(key, item);
      const done: Promise<void> = detached(() => follow(item))
        .catch((err: unknown) => {
          logger.error({ err, requestId, target, taskId }, 'background confirmation failed');
        })
        .finally(() => {
          running.delete(done);
        });
      running.add(done);
    },
    size: () => followed.size,
    async stop() {
      if (stopped()) return;
      const count = followed.size;
      stopping.abort(new DOMException('the gateway is shutting down', 'AbortError'));
      for (const wake of slotWaiters.splice(0)) wake();
      await Promise.allSettled([...running]);
      if (count > 0) logger.info({ stopped: count }, 'background confirmations stopped');
    },
  };
}
