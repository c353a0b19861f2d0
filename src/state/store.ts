import type { UnifiedResult } from '../core/result';
import type { UnifiedTask } from '../core/task';
import { decodeOutcome, encodeOutcome } from './outcome-codec';

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

/**
 * The same text as one contiguous string. V8 builds a `JSON.stringify` result (or a template
 * literal) as a tree of pieces: a 300-character Dyn task is five pieces and four joins, which kept
 * for hours in the store cost ~150 bytes and four objects more per entry than the text itself.
 */
function flat(text: string): string {
  return Buffer.from(text, 'utf8').toString('utf8');
}

/**
 * The per-process store: a Map kept in insertion order as an LRU (a read moves the key to the
 * end), bounded by `maxEntries`, with lazy TTL expiry. Each entry is one flat string,
 * `<expiry in ms> <JSON>` (no entry object, no boxed number): a remembered Dyn cancel costs about
 * 330 bytes of heap, key included (see outcome-codec.ts).
 */
export function createMemoryStore(maxEntries: number, now: () => number = Date.now): StateStore {
  const map = new Map<string, string>();
  const read = (key: string): string | undefined => {
    const entry = map.get(key);
    if (entry === undefined) return undefined;
    const space = entry.indexOf(' ');
    if (Number(entry.slice(0, space)) <= now()) {
      map.delete(key);
      return undefined;
    }
    map.delete(key);
    map.set(key, entry);
    return entry.slice(space + 1);
  };
  const write = (key: string, json: string, ttlSeconds: number): void => {
    map.delete(key);
    map.set(key, flat(`${String(now() + ttlSeconds * 1000)} ${json}`));
    while (map.size > maxEntries) {
      const oldest = map.keys().next();
      if (oldest.done === true) break;
      map.delete(oldest.value);
    }
  };
  const readEntry = (key: string): IdempotencyEntry | undefined => {
    const json = read(`i:${key}`);
    return json === undefined ? undefined : (JSON.parse(json) as IdempotencyEntry);
  };
  return {
    kind: 'memory',
    getOutcome(key) {
      const json = read(`o:${key}`);
      return Promise.resolve(json === undefined ? undefined : decodeOutcome(json));
    },
    rememberOutcome(key, value, ttlSeconds) {
      write(`o:${key}`, encodeOutcome(value), ttlSeconds);
      return Promise.resolve();
    },
    claimIdempotencyKey(key, fingerprint, inFlightSeconds) {
      const existing = readEntry(key);
      if (existing !== undefined) return Promise.resolve({ claimed: false, entry: existing });
      const entry: IdempotencyEntry = { state: 'in-flight', fingerprint };
      write(`i:${key}`, JSON.stringify(entry), inFlightSeconds);
      return Promise.resolve({ claimed: true });
    },
    completeIdempotencyKey(key, entry, ttlSeconds) {
      write(`i:${key}`, JSON.stringify(entry), ttlSeconds);
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
