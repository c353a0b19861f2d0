import { Redis } from 'ioredis';
import type { Logger } from '../observability/logger';
import type { IdempotencyEntry, Remembered, StateStore } from './store';

/** Every Redis call gives up after this: a slow Redis must not slow cancels down. */
const COMMAND_TIMEOUT_MS = 250;

/**
 * A token bucket shared by every replica, in one atomic script. KEYS[1] the bucket hash;
 * ARGV: rate per second, capacity, now (ms). Returns 0 when a token was taken, else the
 * milliseconds until one is free. Redis `TIME` is used, so replicas' clocks do not matter.
 */
const TAKE_TOKEN = `
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate / 1000)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity * 1000 / rate) + 1000)
return wait
`;

export interface RedisStoreOptions {
  url: string;
  /** Key namespace, e.g. `cancel-gateway:` */
  prefix?: string;
  logger: Logger;
  /** Counted on every failed call (`gateway_state_store_errors_total`). */
  onError?: (operation: string) => void;
  /** Told when the store turns degraded or recovers. */
  onHealthChange?: (health: 'ok' | 'degraded') => void;
}

/**
 * The shared store: outcome memory, idempotency keys and account-wide buckets in Redis, keys
 * namespaced and TTL'd. Claims are atomic (`SET NX`). Every call has a short timeout and never
 * throws: on failure the gateway runs degraded (logged once per state change).
 */
export async function createRedisStore(options: RedisStoreOptions): Promise<StateStore> {
  const prefix = options.prefix ?? 'cancel-gateway:';
  const redis = new Redis(options.url, {
    commandTimeout: COMMAND_TIMEOUT_MS,
    connectTimeout: 1_000,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    lazyConnect: false,
    // Reconnect forever, at most every 2 s: Redis coming back ends degraded mode by itself.
    retryStrategy: (times) => Math.min(100 * times, 2_000),
  });
  let health: 'ok' | 'degraded' = 'ok';
  const setHealth = (next: 'ok' | 'degraded', detail?: unknown): void => {
    if (next === health) return;
    health = next;
    if (next === 'degraded') {
      options.logger.warn(
        { err: detail },
        'state store (redis) unavailable: serving without replay, with per-process rate limits',
      );
    } else {
      options.logger.info('state store (redis) available again');
    }
    options.onHealthChange?.(next);
  };
  // Connection errors are reported through `health`; without a listener ioredis would log them.
  redis.on('error', (err) => {
    setHealth('degraded', err);
  });
  redis.on('ready', () => {
    setHealth('ok');
  });
  // Start once connected, or after the connect timeout degraded: a Redis that is down at start
  // must not stop the gateway from serving.
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 1_500);
    redis.once('ready', () => {
      clearTimeout(timer);
      resolve();
    });
  });

  async function call<T>(operation: string, run: () => Promise<T>): Promise<T | undefined> {
    try {
      const result = await run();
      setHealth('ok');
      return result;
    } catch (err) {
      options.onError?.(operation);
      setHealth('degraded', err);
      return undefined;
    }
  }
  const parse = (text: string | null | undefined): unknown =>
    text === null || text === undefined ? undefined : (JSON.parse(text) as unknown);

  async function claim(
    key: string,
    fingerprint: string,
    inFlightSeconds: number,
    again: boolean,
  ): Promise<
    { claimed: true } | { claimed: false; entry: IdempotencyEntry } | { unavailable: true }
  > {
    const entry: IdempotencyEntry = { state: 'in-flight', fingerprint };
    const claimed = await call('claim_key', () =>
      redis.set(`${prefix}i:${key}`, JSON.stringify(entry), 'EX', inFlightSeconds, 'NX'),
    );
    if (claimed === undefined) return { unavailable: true };
    if (claimed === 'OK') return { claimed: true };
    const existing = parse(await call('read_key', () => redis.get(`${prefix}i:${key}`))) as
      IdempotencyEntry | undefined;
    if (existing !== undefined) return { claimed: false, entry: existing };
    // Expired between the two calls: the key is free again; try once more.
    return again ? claim(key, fingerprint, inFlightSeconds, false) : { unavailable: true };
  }

  return {
    kind: 'redis',
    async getOutcome(key) {
      return parse(await call('get_outcome', () => redis.get(`${prefix}o:${key}`))) as
        Remembered | undefined;
    },
    async rememberOutcome(key, value, ttlSeconds) {
      await call('remember_outcome', () =>
        redis.set(`${prefix}o:${key}`, JSON.stringify(value), 'EX', ttlSeconds),
      );
    },
    claimIdempotencyKey: (key, fingerprint, inFlightSeconds) =>
      claim(key, fingerprint, inFlightSeconds, true),
    async completeIdempotencyKey(key, entry, ttlSeconds) {
      await call('complete_key', () =>
        redis.set(`${prefix}i:${key}`, JSON.stringify(entry), 'EX', ttlSeconds),
      );
    },
    async releaseIdempotencyKey(key) {
      await call('release_key', () => redis.del(`${prefix}i:${key}`));
    },
    async takeToken(bucket, perSecond, capacity) {
      const wait = await call('take_token', () =>
        redis.eval(TAKE_TOKEN, 1, `${prefix}rl:${bucket}`, String(perSecond), String(capacity)),
      );
      return typeof wait === 'number' ? wait : undefined;
    },
    health: () => health,
    async close() {
      redis.disconnect();
      await Promise.resolve();
    },
  };
}
