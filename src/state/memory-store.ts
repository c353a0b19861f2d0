import type { Answer } from '../core/result';
import { newToken, selfRenewingLease } from './lease';
import type { IdempotencyEntry, Lease, Remembered, StateStore } from './store';

/** Published flight answers kept at most (see `results`). */
const MAX_RESULTS = 1024;

/** One stored value: its JSON text (as the Redis store keeps it) and when it expires. */
interface Entry {
  expiresAt: number;
  json: string;
}

/** One held lease: its owner token and when it expires unless renewed. */
interface Held {
  token: string;
  expiresAt: number;
}

/**
 * The per-process store: a Map kept in insertion order as an LRU (a read moves the key to the
 * end), bounded by `maxEntries`, with lazy TTL expiry. Values are kept as JSON text, so a caller
 * can never change what was stored through an object it still holds. Leases live apart from the
 * LRU (they are bounded by the requests in flight, and must not be evicted by load).
 */
export function createMemoryStore(maxEntries: number, now: () => number = Date.now): StateStore {
  const map = new Map<string, Entry>();
  const leases = new Map<string, Held>();
  // Idempotency keys still in flight are leases too: apart from the LRU, so load cannot evict one
  // and let its request run twice.
  const inFlightKeys = new Map<string, Entry>();
  // Published answers, apart from the LRU: in one process duplicates share a promise instead,
  // so these serve only stores shared by several cancel memories; bounded, oldest dropped.
  const results = new Map<string, Entry>();
  const read = (key: string): unknown => {
    const entry = map.get(key);
    if (entry === undefined) return undefined;
    map.delete(key);
    if (entry.expiresAt <= now()) return undefined;
    map.set(key, entry);
    return JSON.parse(entry.json);
  };
  const put = (key: string, json: string, ttlMs: number): void => {
    map.delete(key);
    map.set(key, { expiresAt: now() + ttlMs, json });
    while (map.size > maxEntries) {
      const oldest = map.keys().next();
      if (oldest.done === true) break;
      map.delete(oldest.value);
    }
  };
  const write = (key: string, value: unknown, ttlSeconds: number): void => {
    put(key, JSON.stringify(value), ttlSeconds * 1000);
  };
  const holderOf = (key: string): string | undefined => {
    const held = leases.get(key);
    if (held === undefined) return undefined;
    if (held.expiresAt > now()) return held.token;
    leases.delete(key);
    return undefined;
  };
  /** Claims `key` for `ttlMs`: the lease, or the token of the claim that holds it. */
  const claim = (key: string, ttlMs: number): { lease: Lease } | { heldBy: string } => {
    const holder = holderOf(key);
    if (holder !== undefined) return { heldBy: holder };
    const token = newToken();
    leases.set(key, { token, expiresAt: now() + ttlMs });
    const lease = selfRenewingLease(token, ttlMs, {
      renew() {
        if (holderOf(key) !== token) return Promise.resolve(false);
        leases.set(key, { token, expiresAt: now() + ttlMs });
        return Promise.resolve(true);
      },
      release() {
        if (holderOf(key) === token) leases.delete(key);
        return Promise.resolve();
      },
    });
    return { lease };
  };
  const outcome = (key: string): Remembered | undefined =>
    read(`o:${key}`) as Remembered | undefined;

  return {
    kind: 'memory',
    getOutcome(key) {
      return Promise.resolve(outcome(key));
    },
    rememberOutcome(key, value, ttlSeconds) {
      write(`o:${key}`, value, ttlSeconds);
      return Promise.resolve();
    },
    forgetOutcome(key, at) {
      const remembered = outcome(key);
      if (remembered !== undefined && remembered.kind !== 'canceled' && remembered.at === at) {
        map.delete(`o:${key}`);
      }
      return Promise.resolve();
    },
    beginFlight(key, at, timings) {
      const remembered = outcome(key);
      if (remembered?.kind === 'canceled') return Promise.resolve({ replay: remembered });
      const claimed = claim(`f:${key}`, timings.leaseMs);
      if (!('lease' in claimed)) return Promise.resolve(claimed);
      if (remembered === undefined) {
        write(`o:${key}`, { kind: 'attempt', at } satisfies Remembered, timings.rememberSeconds);
      }
      return Promise.resolve({
        owner: claimed.lease,
        ...(remembered === undefined ? {} : { remembered }),
      });
    },
    async finishFlight(key, owner, answer, change, timings) {
      if (owner !== undefined) {
        results.set(`${key}:${owner.token}`, {
          expiresAt: now() + timings.resultMs,
          json: JSON.stringify(answer),
        });
        const oldest = results.keys().next();
        if (results.size > MAX_RESULTS && oldest.done !== true) results.delete(oldest.value);
      }
      if ('remember' in change) {
        write(`o:${key}`, change.remember, timings.rememberSeconds);
      } else if ('clearTrace' in change && outcome(key)?.kind === 'attempt') {
        map.delete(`o:${key}`);
      }
      await owner?.release();
    },
    peekFlight(key, token) {
      const published = results.get(`${key}:${token}`);
      const result =
        published === undefined || published.expiresAt <= now()
          ? undefined
          : (JSON.parse(published.json) as Answer);
      const held = holderOf(`f:${key}`) === token;
      return Promise.resolve({ ...(result === undefined ? {} : { result }), held });
    },
    claimLease(key, ttlMs) {
      return Promise.resolve(claim(`l:${key}`, ttlMs));
    },
    claimIdempotencyKey(key, fingerprint, leaseMs) {
      const done = read(`i:${key}`) as IdempotencyEntry | undefined;
      if (done !== undefined) return Promise.resolve({ claimed: false, entry: done });
      const running = inFlightKeys.get(key);
      if (running !== undefined && running.expiresAt > now()) {
        return Promise.resolve({
          claimed: false,
          entry: JSON.parse(running.json) as IdempotencyEntry,
        });
      }
      const token = newToken();
      const json = JSON.stringify({
        state: 'in-flight',
        fingerprint,
        token,
      } satisfies IdempotencyEntry);
      const ours = (): boolean => {
        const entry = inFlightKeys.get(key);
        return entry !== undefined && entry.json === json && entry.expiresAt > now();
      };
      inFlightKeys.set(key, { json, expiresAt: now() + leaseMs });
      // The in-flight entry is the lease: it expires unless renewed; completing stores the answer
      // in the LRU and releases it.
      const lease = selfRenewingLease(token, leaseMs, {
        renew() {
          if (!ours()) return Promise.resolve(false);
          inFlightKeys.set(key, { json, expiresAt: now() + leaseMs });
          return Promise.resolve(true);
        },
        release() {
          if (ours()) inFlightKeys.delete(key);
          return Promise.resolve();
        },
      });
      return Promise.resolve({ claimed: true, lease });
    },
    async completeIdempotencyKey(key, entry, ttlSeconds, lease) {
      write(`i:${key}`, entry, ttlSeconds);
      // No longer in flight: the release finds the final entry and leaves it.
      await lease?.release();
    },
    // Per process, the providers' own windows already are the limit.
    takeSlot: () => Promise.resolve(undefined),
    health: () => 'ok',
    close: () => Promise.resolve(),
  };
}
