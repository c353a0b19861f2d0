import type { UnifiedResult } from '../core/result';
import type { UnifiedTask } from '../core/task';

/** What the gateway remembers about one `(target, taskId)`. */
export type Remembered =
  /**
   * A confirmed cancel: repeats replay it without calling the upstream. Only what the key does
   * not already say is kept (the store may hold tens of thousands of these).
   */
  | { kind: 'canceled'; provider?: string; protocol?: string; task?: UnifiedTask }
  /** Our attempt ended in an ambiguous timeout: a later "does not exist" means we canceled it. */
  | { kind: 'timeout'; at: string };

/** A stored `Idempotency-Key` entry. */
export type IdempotencyEntry =
  | { state: 'in-flight'; fingerprint: string }
  | {
      state: 'done';
      fingerprint: string;
      body: UnifiedResult;
      retryAfterSeconds?: number;
    };

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
   * Claims an idempotency key atomically: `claimed` when this request owns it now (marked
   * in-flight for `inFlightSeconds`), else the entry that holds it. `unavailable` when degraded.
   */
  claimIdempotencyKey(
    key: string,
    fingerprint: string,
    inFlightSeconds: number,
  ): Promise<
    { claimed: true } | { claimed: false; entry: IdempotencyEntry } | { unavailable: true }
  >;
  completeIdempotencyKey(key: string, entry: IdempotencyEntry, ttlSeconds: number): Promise<void>;
  releaseIdempotencyKey(key: string): Promise<void>;
  /**
   * Takes one token from a bucket shared by every replica: 0 when taken, else the milliseconds
   * until one is free; undefined when the store cannot answer (use a local bucket then).
   */
  takeToken(bucket: string, perSecond: number, capacity: number): Promise<number | undefined>;
  /** `ok`, or `degraded` while the backing store fails. */
  health(): 'ok' | 'degraded';
  close(): Promise<void>;
}
