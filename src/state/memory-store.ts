import type { IdempotencyEntry, Remembered, StateStore } from './store';

/** One stored value: its JSON text (as the Redis store keeps it) and when it expires. */
interface Entry {
  expiresAt: number;
  json: string;
}

/**
 * The per-process store: a Map kept in insertion order as an LRU (a read moves the key to the
 * end), bounded by `maxEntries`, with lazy TTL expiry. Values are kept as JSON text, so a caller
 * can never change what was stored through an object it still holds.
 */
export function createMemoryStore(maxEntries: number, now: () => number = Date.now): StateStore {
  const map = new Map<string, Entry>();
  const read = (key: string): unknown => {
    const entry = map.get(key);
    if (entry === undefined) return undefined;
    map.delete(key);
    if (entry.expiresAt <= now()) return undefined;
    map.set(key, entry);
    return JSON.parse(entry.json);
  };
  const write = (key: string, value: Remembered | IdempotencyEntry, ttlSeconds: number): void => {
    map.delete(key);
    map.set(key, { expiresAt: now() + ttlSeconds * 1000, json: JSON.stringify(value) });
    while (map.size > maxEntries) {
      const oldest = map.keys().next();
      if (oldest.done === true) break;
      map.delete(oldest.value);
    }
  };
  return {
    kind: 'memory',
    getOutcome(key) {
      return Promise.resolve(read(`o:${key}`) as Remembered | undefined);
    },
    rememberOutcome(key, value, ttlSeconds) {
      write(`o:${key}`, value, ttlSeconds);
      return Promise.resolve();
    },
    claimIdempotencyKey(key, fingerprint, inFlightSeconds) {
      const existing = read(`i:${key}`) as IdempotencyEntry | undefined;
      if (existing !== undefined) return Promise.resolve({ claimed: false, entry: existing });
      write(`i:${key}`, { state: 'in-flight', fingerprint }, inFlightSeconds);
      return Promise.resolve({ claimed: true });
    },
    completeIdempotencyKey(key, entry, ttlSeconds) {
      write(`i:${key}`, entry, ttlSeconds);
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
