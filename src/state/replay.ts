import { setTimeout as sleep } from 'node:timers/promises';
import {
  gatewayFailure,
  type Answer,
  type PendingConfirmation,
  type UnifiedResult,
} from '../core/result';
import type { UnifiedTask } from '../core/task';
import { LEASE_MS } from './lease';
import type { FlightTimings, Lease, OutcomeChange, Remembered, StateStore } from './store';

/** How long an owner's answer stays readable for waiters and late-comers. */
const RESULT_MS = 60_000;
/** Waiters poll the owner's flight: first after this, then twice as long each time, up to… */
const FIRST_POLL_MS = 10;
/** …this, so an answer reaches a waiter at most this late. */
const MAX_POLL_MS = 50;
/** Failed reads of another replica's flight in a row before a waiter calls the upstream itself. */
const PEEK_FAILURES = 3;
/** Take-overs of one cancel before it runs without a shared claim (owners dying repeatedly). */
const MAX_ROUNDS = 5;

/** Per-call limits of {@link CancelMemory.run}. */
export interface RunOptions {
  /**
   * The caller's own remaining time: how long it may wait for another replica's call of the same
   * cancel; past it the caller gets `timeout` (the other call goes on). Without it a caller waits
   * as long as the owner's call runs (bounded by the owner's deadline and its lease).
   */
  waitMs?: number;
}

/**
 * Makes repeated cancels of one `(target, taskId)` safe and cheap:
 * - concurrent duplicates share one upstream call: in this process directly, across replicas
 *   through the store's flight lease (its owner calls, the others wait for its published answer);
 *   each answer carries its caller's own `requestId`;
 * - a confirmed cancel is remembered for `rememberSeconds` and replayed (`replayed: true`,
 *   no upstream call, `attempts` empty);
 * - an attempt leaves a trace before it is sent, replaced by its outcome; an ambiguous timeout
 *   of ours is remembered as such. After either, a later "does not exist" says what most likely
 *   happened (`not_found` with `GONE_AFTER_TIMEOUT`), and a later "already finished" whose task
 *   is canceled is the confirmation of that earlier cancel: `canceled`, remembered as confirmed.
 */
export interface CancelMemory {
  run(
    target: string,
    taskId: string,
    requestId: string,
    call: () => Promise<Answer>,
    options?: RunOptions,
  ): Promise<Answer>;
  /**
   * Remembers a cancel a background confirmation found applied, as a confirmed cancel answered
   * by the upstream is remembered: repeats replay it (`replayed: true`, with the task).
   */
  rememberConfirmed(target: string, taskId: string, confirmed: ConfirmedCancel): Promise<void>;
  /**
   * Forgets the remembered timeout of `(target, taskId)` remembered at `rememberedAt` once the
   * upstream showed it changed nothing; a confirmed cancel, or a newer timeout or attempt, stays.
   */
  forgetUnsure(target: string, taskId: string, rememberedAt: string): Promise<void>;
}

/** What a confirmed cancel keeps beyond its key. */
export interface ConfirmedCancel {
  provider?: string;
  protocol?: string;
  task?: UnifiedTask;
}

/**
 * Told when the owner of a cancel's call got an ambiguous timeout that its provider can confirm
 * later (`Answer.pending`), once that timeout is remembered; `requestId` is the owner's request,
 * `rememberedAt` the remembered timeout's `at` (what `forgetUnsure` removes, and nothing newer).
 */
export type TimeoutHook = (
  target: string,
  taskId: string,
  pending: PendingConfirmation,
  requestId: string,
  rememberedAt: string,
) => void;

/** Tuning of {@link createCancelMemory}; the defaults are the documented ones. */
export interface CancelMemoryOptions {
  /** Milliseconds on a monotonic clock, for waiters' limits. */
  now?: () => number;
  /** Lease of a flight's owner (renewed while its call runs). */
  leaseMs?: number;
  /** Called by the flight's owner only, so a timeout shared by several callers is told once. */
  onTimeout?: TimeoutHook;
}

/** Task states that mean "canceled" (Dyn's spelling and the British one). */
const CANCELED_STATES = new Set(['canceled', 'cancelled']);

/**
 * True when the upstream says the task already ended canceled: after a timeout of ours, that is
 * our own cancel having happened, not a conflict.
 */
function alreadyCanceled(body: UnifiedResult): boolean {
  const status = body.task?.status?.toLowerCase();
  return (
    body.outcome === 'conflict' &&
    body.error?.code === 'TASK_ALREADY_FINISHED' &&
    status !== undefined &&
    CANCELED_STATES.has(status)
  );
}

/** What a remembered confirmed cancel keeps: only what its key does not already say. */
function confirmedOf(fields: ConfirmedCancel): Remembered {
  const kept: Remembered = { kind: 'canceled' };
  if (fields.provider !== undefined) kept.provider = fields.provider;
  if (fields.protocol !== undefined) kept.protocol = fields.protocol;
  if (fields.task !== undefined) kept.task = fields.task;
  return kept;
}

/** A conflict answer turned into the confirmed cancel it is (same call, same attempts). */
function asCanceled(answer: Answer): Answer {
  const { error: _conflict, ...rest } = answer.body;
  return { body: { ...rest, ok: true, outcome: 'canceled', retryable: false } };
}

/** The answer as another caller sees it: same result, its own request id. */
function forCaller(answer: Answer, requestId: string): Answer {
  if (answer.body.requestId === requestId) return answer;
  return { ...answer, body: { ...answer.body, requestId } };
}

/** An earlier attempt of ours whose outcome is unknown: a timeout, or one that never finished. */
type Unsure = Extract<Remembered, { kind: 'timeout' | 'attempt' }>;

const isUnsure = (r: Remembered | undefined): r is Unsure =>
  r?.kind === 'timeout' || r?.kind === 'attempt';

function goneMessage(earlier: Unsure): string {
  const what =
    earlier.kind === 'timeout'
      ? `timed out at ${earlier.at}`
      : `was sent at ${earlier.at} and its answer never came back (its gateway stopped, or the shared store failed)`;
  return (
    `the upstream says the task does not exist; an earlier cancel through this gateway ` +
    `${what} and most likely canceled it`
  );
}

function replayOf(
  remembered: Extract<Remembered, { kind: 'canceled' }>,
  target: string,
  taskId: string,
  requestId: string,
): Answer {
  return {
    body: {
      ok: true,
      outcome: 'canceled',
      retryable: false,
      requestId,
      target,
      ...(remembered.provider === undefined ? {} : { provider: remembered.provider }),
      ...(remembered.protocol === undefined ? {} : { protocol: remembered.protocol }),
      taskId,
      ...(remembered.task === undefined ? {} : { task: remembered.task }),
      attempts: [],
      replayed: true,
    },
  };
}

/** What a waiter learned of another owner's flight. */
type Waited =
  | { kind: 'answer'; answer: Answer }
  | { kind: 'gone' }
  | { kind: 'late' }
  | { kind: 'unavailable' };

/** The answer of a duplicate whose deadline passed while another call of its cancel ran. */
function lateAnswer(requestId: string, target: string, taskId: string, who: string): Answer {
  return {
    body: gatewayFailure(
      requestId,
      'timeout',
      'UPSTREAM_TIMEOUT',
      `${who} is still canceling this task and has not answered within this request’s ` +
        'deadline; whether the cancel happened is not known yet',
      { target, taskId },
    ),
  };
}

/** `promise`'s value, or undefined once `ms` pass first (the timer never holds the process). */
function withinMs<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  if (ms <= 0) return Promise.resolve(undefined);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => {
      resolve(undefined);
    }, ms);
    timer.unref();
  });
  return Promise.race([promise, late]).finally(() => {
    clearTimeout(timer);
  });
}

/** The cancel memory of one gateway on `store`; confirmed cancels live `rememberSeconds`. */
export function createCancelMemory(
  store: StateStore,
  rememberSeconds: number,
  options: CancelMemoryOptions = {},
): CancelMemory {
  const now = options.now ?? (() => performance.now());
  const timings: FlightTimings = {
    leaseMs: options.leaseMs ?? LEASE_MS,
    resultMs: RESULT_MS,
    rememberSeconds,
  };
  const inFlight = new Map<string, Promise<Answer>>();

  /** The owner's part: call, read the answer against what was remembered, publish, release. */
  async function own(
    key: string,
    target: string,
    taskId: string,
    lease: Lease | undefined,
    remembered: Remembered | undefined,
    call: () => Promise<Answer>,
  ): Promise<Answer> {
    let answer: Answer;
    try {
      answer = await call();
    } catch (err) {
      // Whether it reached the upstream is unknown: the attempt trace stays.
      await lease?.release();
      throw err;
    }
    if (isUnsure(remembered) && alreadyCanceled(answer.body)) answer = asCanceled(answer);
    const { body } = answer;
    let change: OutcomeChange;
    let timedOutAt: string | undefined;
    if (body.outcome === 'canceled') {
      change = { remember: confirmedOf(body) };
    } else if (answer.ambiguous === true) {
      timedOutAt = new Date().toISOString();
      change = { remember: { kind: 'timeout', at: timedOutAt } };
    } else if (isUnsure(remembered)) {
      if (body.outcome === 'not_found') {
        const upstream = body.error?.upstream;
        body.error = {
          code: 'GONE_AFTER_TIMEOUT',
          message: goneMessage(remembered),
          ...(upstream === undefined ? {} : { upstream }),
        };
      }
      change = { keep: true };
    } else {
      // The trace is ours only when this flight holds the lease (it wrote it).
      change = lease === undefined ? { keep: true } : { clearTrace: true };
    }
    await store.finishFlight(key, lease, answer, change, timings);
    // After the timeout is remembered, so that what a confirmation finds replaces it.
    if (timedOutAt !== undefined && answer.pending !== undefined) {
      try {
        options.onTimeout?.(target, taskId, answer.pending, body.requestId, timedOutAt);
      } catch {
        // A confirmation that cannot be scheduled leaves the timeout as it is: the caller's
        // answer must not depend on it.
      }
    }
    return answer;
  }

  /** Polls another owner's flight until its answer, its end without one, or our limit. */
  async function waitFor(key: string, token: string, until: number | undefined): Promise<Waited> {
    let delay = FIRST_POLL_MS;
    let failures = 0;
    for (;;) {
      const view = await store.peekFlight(key, token);
      // One failed read (a slow command) is not a dead store: calling the upstream ourselves
      // would send the cancel twice. A slow read opens the store's breaker, so the next reads
      // would fail at once: pause first, which lets its probe close it when Redis was only slow.
      if (view === undefined && ++failures >= PEEK_FAILURES) return { kind: 'unavailable' };
      if (view === undefined) {
        const left = until === undefined ? MAX_POLL_MS : until - now();
        if (left <= 0) return { kind: 'late' };
        await sleep(Math.min(MAX_POLL_MS, left));
        continue;
      }
      failures = 0;
      if (view.result !== undefined) return { kind: 'answer', answer: view.result };
      if (!view.held) return { kind: 'gone' };
      const left = until === undefined ? delay : until - now();
      if (left <= 0) return { kind: 'late' };
      await sleep(Math.min(delay, left));
      delay = Math.min(delay * 2, MAX_POLL_MS);
    }
  }

  async function flight(
    key: string,
    target: string,
    taskId: string,
    requestId: string,
    call: () => Promise<Answer>,
    waitMs: number | undefined,
  ): Promise<Answer> {
    const until = waitMs === undefined ? undefined : now() + waitMs;
    for (let round = 1; round <= MAX_ROUNDS; round++) {
      const start = await store.beginFlight(key, new Date().toISOString(), timings);
      if ('replay' in start) return replayOf(start.replay, target, taskId, requestId);
      // Degraded: per-process single-flight only, nothing known of earlier attempts.
      if ('unavailable' in start) return own(key, target, taskId, undefined, undefined, call);
      if ('owner' in start) return own(key, target, taskId, start.owner, start.remembered, call);
      // The holder's lease just expired between the claim and its read: claim again.
      if (start.heldBy === undefined) continue;
      const waited = await waitFor(key, start.heldBy, until);
      switch (waited.kind) {
        case 'answer':
          return waited.answer;
        case 'unavailable':
          // The store failed while another replica's cancel of this task runs: call it too, but
          // as after an attempt of ours, so "already canceled" or "gone" answers say what they mean.
          return own(
            key,
            target,
            taskId,
            undefined,
            { kind: 'attempt', at: new Date().toISOString() },
            call,
          );
        case 'late':
          return lateAnswer(requestId, target, taskId, 'another gateway replica');
        case 'gone':
          // Its owner died (lease expired without an answer): take over.
          continue;
      }
    }
    return own(key, target, taskId, undefined, undefined, call);
  }

  return {
    async rememberConfirmed(target, taskId, confirmed) {
      await store.rememberOutcome(`${target}:${taskId}`, confirmedOf(confirmed), rememberSeconds);
    },
    async forgetUnsure(target, taskId, rememberedAt) {
      const key = `${target}:${taskId}`;
      // The store checks and removes in one step: a confirmed cancel is never removed, nor a
      // timeout or attempt remembered since (another replica's repeat, whose job may still run).
      await store.forgetOutcome(key, rememberedAt);
    },
    async run(target, taskId, requestId, call, runOptions = {}) {
      const key = `${target}:${taskId}`;
      const shared = inFlight.get(key);
      if (shared !== undefined) {
        const { waitMs } = runOptions;
        if (waitMs === undefined) return forCaller(await shared, requestId);
        // A duplicate joins the running call, but waits no longer than its own deadline.
        const answer = await withinMs(shared, waitMs);
        return answer === undefined
          ? lateAnswer(requestId, target, taskId, 'this gateway')
          : forCaller(answer, requestId);
      }
      const running = flight(key, target, taskId, requestId, call, runOptions.waitMs);
      inFlight.set(key, running);
      try {
        return forCaller(await running, requestId);
      } finally {
        inFlight.delete(key);
      }
    },
  };
}
