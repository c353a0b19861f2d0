import type { UnifiedResult } from '../core/result';
import type { UnifiedTask } from '../core/task';

/** What the gateway remembers about one `(target, taskId)` (contract §9). */
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
      status: number;
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

interface Entry {
  /** JSON: a string costs a fraction of the object graph it encodes (100k entries by default). */
  json: string;
  expiresAt: number;
}

/**
 * The per-process store: a Map kept in insertion order as an LRU (a read moves the key to the
 * end), bounded by `maxEntries`, with lazy TTL expiry.
 */
export function createMemoryStore(maxEntries: number, now: () => number = Date.now): StateStore {
  const map = new Map<string, Entry>();
  const get = (key: string): unknown => {
    const entry = map.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= now()) {
      map.delete(key);
      return undefined;
    }
    map.delete(key);
    map.set(key, entry);
    return JSON.parse(entry.json) as unknown;
  };
  const set = (key: string, value: unknown, ttlSeconds: number): void => {
    map.delete(key);
    map.set(key, { json: JSON.stringify(value), expiresAt: now() + ttlSeconds * 1000 });
    while (map.size > maxEntries) {
      const oldest = map.keys().next();
      if (oldest.done === true) break;
      map.delete(oldest.value);
    }
  };
  return {
    kind: 'memory',
    getOutcome: (key) => Promise.resolve(get(`o:${key}`) as Remembered | undefined),
    rememberOutcome(key, value, ttlSeconds) {
      set(`o:${key}`, value, ttlSeconds);
      return Promise.resolve();
    },
    claimIdempotencyKey(key, fingerprint, inFlightSeconds) {
      const existing = get(`i:${key}`) as IdempotencyEntry | undefined;
      if (existing !== undefined) return Promise.resolve({ claimed: false, entry: existing });
      set(
        `i:${key}`,
        { state: 'in-flight', fingerprint } satisfies IdempotencyEntry,
        inFlightSeconds,
      );
      return Promise.resolve({ claimed: true });
    },
    completeIdempotencyKey(key, entry, ttlSeconds) {
      set(`i:${key}`, entry, ttlSeconds);
      return Promise.resolve();
    },
    releaseIdempotencyKey(key) {
      map.delete(`i:${key}`);
      return Promise.resolve();
    },
    // Per process, the providers' own buckets already are the limit.
    takeToken: () => Promise.resolve(undefined),
    health: () => 'ok',
    close: () => Promise.resolve(),
  };
}
