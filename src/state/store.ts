import type { Answer, UnifiedResult } from '../core/result';
import type { UnifiedTask } from '../core/task';

/** What the gateway remembers about one `(target, taskId)`. */
export type Remembered =
  /**
   * A confirmed cancel: repeats replay it without calling the upstream. Only what the key does
   * not already say is kept (the store may hold tens of thousands of these).
   */
  | { kind: 'canceled'; provider?: string; protocol?: string; task?: UnifiedTask }
  /** Our attempt ended in an ambiguous timeout: a later "does not exist" means we canceled it. */
  | { kind: 'timeout'; at: string }
  /**
   * Written before a cancel is sent and replaced by its outcome: found still in place, the
   * attempt never finished (its replica died mid-call), which later answers treat as a timeout.
   */
  | { kind: 'attempt'; at: string };

/** A stored `Idempotency-Key` entry. */
export type IdempotencyEntry =
  | { state: 'in-flight'; fingerprint: string; token?: string }
  | {
      state: 'done';
      fingerprint: string;
      body: UnifiedResult;
      retryAfterSeconds?: number;
    };

/**
 * A claim on a key that expires unless renewed: it renews itself (every third of its TTL, on an
 * unref'd timer) until `release()`, so a holder that dies frees the key within the TTL.
 */
export interface Lease {
  /** Random per claim: only its holder can renew or release it. */
  readonly token: string;
  /** Extends the lease by its TTL now: false when it is no longer held (expired, taken over). */
  renew(): Promise<boolean>;
  /** Stops the renewals and frees the key, if still held by this claim (compare-and-delete). */
  release(): Promise<void>;
}

/** A lease claimed, refused (held by another claim, whose token is given), or not answerable. */
export type LeaseClaim = { lease: Lease } | { heldBy: string | undefined } | { unavailable: true };

/**
 * The start of one cancel's flight across replicas: a confirmed cancel to replay, the lease of
 * the owner of the upstream call, the token of another owner to wait for, or no shared answer
 * (the store is down: per-process single-flight only).
 */
export type FlightStart =
  | { replay: Extract<Remembered, { kind: 'canceled' }> }
  | { owner: Lease; remembered?: Remembered }
  | { heldBy: string | undefined }
  | { unavailable: true };

/** What the owner of a flight leaves in the outcome memory when its call has answered. */
export type OutcomeChange =
  /** Remember this (a confirmed cancel, an ambiguous timeout). */
  | { remember: Remembered }
  /** Remove the attempt trace this flight wrote (the upstream gave a final non-cancel answer). */
  | { clearTrace: true }
  /** Leave what is there (an earlier timeout stays meaningful). */
  | { keep: true };

/** What a waiter sees of another replica's flight. */
export interface FlightView {
  /** The owner's published answer, once it has one. */
  result?: Answer;
  /** True while the owner's lease is still held. */
  held: boolean;
}

/** How long a flight's lease lives without renewal, and how long its answer stays readable. */
export interface FlightTimings {
  leaseMs: number;
  resultMs: number;
  /** TTL of the attempt trace and of remembered outcomes. */
  rememberSeconds: number;
}

/**
 * Shared state behind one small interface: `memory` (per process) or `redis` (every replica).
 * Every method resolves even when the backing store fails: the gateway then runs degraded
 * (no replay, per-process limits) rather than failing a cancel.
 */
export interface StateStore {
  readonly kind: 'memory' | 'redis';
  getOutcome(key: string): Promise<Remembered | undefined>;
  rememberOutcome(key: string, value: Remembered, ttlSeconds: number): Promise<void>;
  /**
   * Removes the remembered attempt or timeout whose `at` is `at` (one a later read showed did not
   * cancel), in one step; anything else stays: a confirmed cancel, or an attempt or timeout
   * written since the caller looked.
   */
  forgetOutcome(key: string, at: string): Promise<void>;
  /**
   * In one step: a remembered confirmed cancel (to replay), else a claim of the key's flight
   * lease, which also writes the attempt trace (`at`) unless an outcome is already remembered.
   */
  beginFlight(key: string, at: string, timings: FlightTimings): Promise<FlightStart>;
  /**
   * Publishes the owner's answer for the flight's waiters (for `timings.resultMs`), applies the
   * outcome change and releases the lease, in one step. Without a lease (degraded) only the
   * outcome change is applied.
   */
  finishFlight(
    key: string,
    owner: Lease | undefined,
    answer: Answer,
    change: OutcomeChange,
    timings: FlightTimings,
  ): Promise<void>;
  /** What another owner's flight (by its token) shows now; undefined when the store fails. */
  peekFlight(key: string, token: string): Promise<FlightView | undefined>;
  /** A generic lease on `key` (e.g. background work that must run once across replicas). */
  claimLease(key: string, ttlMs: number): Promise<LeaseClaim>;
  /**
   * Claims an idempotency key atomically: `claimed` when this request owns it now (in-flight,
   * held by a lease of `leaseMs` that renews itself until released or completed), else the
   * entry that holds it. `unavailable` when degraded.
   */
  claimIdempotencyKey(
    key: string,
    fingerprint: string,
    leaseMs: number,
  ): Promise<
    | { claimed: true; lease: Lease }
    | { claimed: false; entry: IdempotencyEntry }
    | { unavailable: true }
  >;
  /** Stores the final entry of a key; its in-flight `lease` (if given) stops renewing. */
  completeIdempotencyKey(
    key: string,
    entry: IdempotencyEntry,
    ttlSeconds: number,
    lease?: Lease,
  ): Promise<void>;
  /**
   * Takes a slot of a sliding window shared by every replica (at most `limit` within any
   * `windowMs`): 0 when taken, else the milliseconds until one is free; undefined when the store
   * cannot answer (use a local window then).
   */
  takeSlot(window: string, limit: number, windowMs: number): Promise<number | undefined>;
  /** `ok`, or `degraded` while the backing store fails. */
  health(): 'ok' | 'degraded';
  close(): Promise<void>;
}
