import { Redis, type Result } from 'ioredis';
import type { Answer } from '../core/result';
import type { Logger } from '../observability/logger';
import { newToken, selfRenewingLease } from './lease';
import { createMemoryStore } from './memory-store';
import type { IdempotencyEntry, Lease, LeaseClaim, Remembered, StateStore } from './store';

/** Default bound of every Redis call: a slow Redis must not slow cancels down. */
const DEFAULT_TIMEOUT_MS = 250;
/**
 * Fast failures in a row (refused or closed connection, error replies) that open the breaker. A
 * call that times out opens it at once: one /cancel makes several store calls in a row, and each
 * waiting its full timeout would make a hung Redis cost a request a multiple of `timeoutMs`.
 */
const FAILURES_TO_OPEN = 5;
/**
 * While the breaker is open, Redis is asked (`PING`) whether it answers again: once at opening
 * (it queues behind the slow command, so a Redis that was only slow closes the breaker as soon as
 * it catches up), then after a pause of this long, doubling after each failed probe…
 */
const FIRST_PROBE_PAUSE_MS = 100;
/** …up to this pause between probes. */
const PROBE_EVERY_MS = 1_000;
/** ioredis's documented rejection of a command that got no reply within `commandTimeout`. */
const TIMED_OUT = 'Command timed out';
/** Confirmed cancels kept in the process too, so repeats replay while Redis is away. */
const LOCAL_CANCELS = 10_000;

/**
 * A sliding window shared by every replica, in one atomic script: a list of the times of the last
 * `limit` calls. KEYS[1] the list; ARGV: limit, window ms. Returns 0 when a slot was taken (its
 * time appended), else the milliseconds until the oldest of the last `limit` leaves the window.
 * Redis `TIME` is used, so replicas' clocks do not matter; a list left longer by a larger limit
 * before a reload is trimmed.
 */
const TAKE_SLOT = `
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = redis.call('LLEN', KEYS[1])
if n >= limit then
  local oldest = tonumber(redis.call('LINDEX', KEYS[1], -limit))
  local wait = oldest + window - now
  if wait > 0 then return math.ceil(wait) end
  redis.call('LTRIM', KEYS[1], n - limit + 1, -1)
end
redis.call('RPUSH', KEYS[1], now)
redis.call('PEXPIRE', KEYS[1], math.ceil(window) + 1000)
return 0
`;

/** True when the JSON text in `o` is an outcome of the kind ARGV names (Lua helper). */
const KIND_IS = `
local function kind_is(o, kind)
  if not o then return false end
  local ok, v = pcall(cjson.decode, o)
  return ok and type(v) == 'table' and v.kind == kind
end
`;

/**
 * The start of a flight. KEYS: outcome, flight lease, waiters' mark. ARGV: token, lease ms,
 * attempt trace JSON, its TTL in seconds, answer TTL ms. Returns { outcome or nil, 1 when
 * claimed, holder token or nil }: a confirmed cancel is returned unclaimed; a claim writes the
 * trace unless an outcome is there; a refused claim marks the holder's flight as awaited, so
 * only awaited flights publish their answer (most have no waiter: no key is written for them).
 */
const BEGIN_FLIGHT = `${KIND_IS}
local o = redis.call('GET', KEYS[1])
if kind_is(o, 'canceled') then return { o, 0, false } end
if redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2], 'NX') then
  if not o then redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4]) end
  return { o or false, 1, false }
end
local holder = redis.call('GET', KEYS[2])
if holder then redis.call('SET', KEYS[3], holder, 'PX', ARGV[5]) end
return { o or false, 0, holder or false }
`;

/**
 * The end of a flight. KEYS: flight lease, result, outcome, waiters' mark. ARGV: token ('' without
 * a lease), answer JSON, its TTL ms, change ('remember', 'clear' or 'keep'), outcome JSON, its
 * TTL s. The answer (when awaited) is written before the lease goes, so a waiter that sees no
 * lease and no answer knows the owner died.
 */
const FINISH_FLIGHT = `${KIND_IS}
if ARGV[1] ~= '' and redis.call('GET', KEYS[4]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  redis.call('DEL', KEYS[4])
end
if ARGV[4] == 'remember' then
  redis.call('SET', KEYS[3], ARGV[5], 'EX', ARGV[6])
elseif ARGV[4] == 'clear' and kind_is(redis.call('GET', KEYS[3]), 'attempt') then
  redis.call('DEL', KEYS[3])
end
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`;

/** KEYS: flight lease, result. ARGV: token. Returns { answer JSON or nil, 1 while held }. */
const PEEK_FLIGHT = `
local held = 0
if redis.call('GET', KEYS[1]) == ARGV[1] then held = 1 end
return { redis.call('GET', KEYS[2]) or false, held }
`;

/** KEYS: the key. ARGV: value, TTL ms. Returns { 1 when set } or { 0, the value holding it }. */
const CLAIM = `
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return { 1 } end
return { 0, redis.call('GET', KEYS[1]) }
`;

/** KEYS: the key. ARGV: the holder's value, TTL ms. 1 when renewed, 0 when no longer held. */
const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`;

/** KEYS: the key. ARGV: the holder's value. Compare-and-delete. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/**
 * Removes a remembered attempt or timeout in one step, and only the one whose `at` is ARGV[1]:
 * never a confirmed cancel, nor an attempt or timeout written since the caller looked (another
 * replica's). KEYS[1] the outcome.
 */
const FORGET_UNSURE = `
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local ok, r = pcall(cjson.decode, v)
if not ok or type(r) ~= 'table' or r.kind == 'canceled' or r.at ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
`;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    takeSlot(key: string, limit: string, windowMs: string): Result<number, Context>;
    beginFlight(
      outcome: string,
      lease: string,
      awaited: string,
      token: string,
      leaseMs: string,
      trace: string,
      traceSeconds: string,
      resultMs: string,
    ): Result<[string | null, number, string | null], Context>;
    finishFlight(
      lease: string,
      result: string,
      outcome: string,
      awaited: string,
      token: string,
      answer: string,
      resultMs: string,
      change: string,
      remembered: string,
      rememberSeconds: string,
    ): Result<number, Context>;
    peekFlight(
      lease: string,
      result: string,
      token: string,
    ): Result<[string | null, number], Context>;
    claimKey(key: string, value: string, ttlMs: string): Result<[number, string?], Context>;
    renewKey(key: string, value: string, ttlMs: string): Result<number, Context>;
    releaseKey(key: string, value: string): Result<number, Context>;
    forgetUnsure(key: string, at: string): Result<number, Context>;
  }
}

export interface RedisStoreOptions {
  url: string;
  /** Key namespace, e.g. `cancel-gateway:` */
  prefix?: string;
  /** Bound of every call (`state.timeoutMs`). */
  timeoutMs?: number;
  logger: Logger;
  /** Counted on every failed call (`gateway_state_store_errors_total`). */
  onError?: (operation: string) => void;
  /** Told when the store turns degraded or recovers. */
  onHealthChange?: (health: 'ok' | 'degraded') => void;
  /** Milliseconds, for the local memory of confirmed cancels. */
  now?: () => number;
}

/**
 * The shared store: outcome memory, flights, leases, idempotency keys and account-wide rate-limit windows
 * in Redis, keys namespaced and TTL'd; every multi-step change is one Lua script, so it is
 * atomic and costs one round trip. Every call is bounded by `timeoutMs` and never throws: on
 * failure the gateway runs degraded (logged once per state change). A call that times out, or
 * `FAILURES_TO_OPEN` fast failures in a row, open a breaker that stops calling Redis (every call
 * answers degraded at once), so a hung Redis costs one request at most one timeout however many
 * store calls it makes; a background `PING` closes it again once Redis answers.
 */
export async function createRedisStore(options: RedisStoreOptions): Promise<StateStore> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const redis = new Redis(options.url, {
    keyPrefix: options.prefix ?? 'cancel-gateway:',
    commandTimeout: timeoutMs,
    connectTimeout: 1_000,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    lazyConnect: false,
    // Reconnect forever, at most every 2 s: Redis coming back ends degraded mode by itself.
    retryStrategy: (times) => Math.min(100 * times, 2_000),
    scripts: {
      takeSlot: { numberOfKeys: 1, lua: TAKE_SLOT },
      beginFlight: { numberOfKeys: 3, lua: BEGIN_FLIGHT },
      finishFlight: { numberOfKeys: 4, lua: FINISH_FLIGHT },
      peekFlight: { numberOfKeys: 2, lua: PEEK_FLIGHT },
      claimKey: { numberOfKeys: 1, lua: CLAIM },
      renewKey: { numberOfKeys: 1, lua: RENEW },
      releaseKey: { numberOfKeys: 1, lua: RELEASE },
      forgetUnsure: { numberOfKeys: 1, lua: FORGET_UNSURE },
    },
  });
  const local = createMemoryStore(LOCAL_CANCELS, options.now);
  let closed = false;
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

  // The breaker: while open no call is sent (each answers degraded at once); only the probe's
  // PING goes to Redis, one at a time, and its answer closes the breaker. Calls sent before it
  // opened still end on their own (answer or timeout) and never close it.
  let open = false;
  // Read through a function after an await: the state may have changed meanwhile.
  const breakerOpen = (): boolean => open && !closed;
  let failuresInRow = 0;
  let probing = false;
  let probePause = FIRST_PROBE_PAUSE_MS;
  let probeTimer: NodeJS.Timeout | undefined;
  const closeBreaker = (): void => {
    clearTimeout(probeTimer);
    probeTimer = undefined;
    open = false;
    failuresInRow = 0;
    setHealth('ok');
    options.logger.info('state store (redis) breaker closed');
  };
  const probeOnce = async (): Promise<void> => {
    if (!open || probing || closed) return;
    probing = true;
    let answered = true;
    try {
      await redis.ping();
    } catch {
      answered = false;
      options.onError?.('probe');
    } finally {
      probing = false;
    }
    if (!breakerOpen()) return;
    if (answered) {
      closeBreaker();
      return;
    }
    // A probe is sent only after the last one ended: a hung Redis never piles PINGs up.
    clearTimeout(probeTimer);
    probeTimer = setTimeout(() => void probeOnce(), probePause);
    probeTimer.unref();
    probePause = Math.min(probePause * 2, PROBE_EVERY_MS);
  };
  const openBreaker = (why: Record<string, unknown>): void => {
    if (open) return;
    open = true;
    probePause = FIRST_PROBE_PAUSE_MS;
    options.logger.warn(
      { ...why, probeEveryMs: PROBE_EVERY_MS },
      'state store (redis) breaker open: not calling redis until it answers a probe',
    );
    void probeOnce();
  };

  // Connection errors are reported through `health`; without a listener ioredis would log them.
  redis.on('error', (err) => {
    setHealth('degraded', err);
  });
  redis.on('ready', () => {
    if (!open) setHealth('ok');
    else void probeOnce();
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

  /** One bounded call: its result, or undefined (counted, degraded) when Redis fails. */
  async function call<T>(operation: string, run: () => Promise<T>): Promise<T | undefined> {
    // Not another Redis failure: not counted, and the probe alone decides when to call again.
    if (open) return undefined;
    try {
      const result = await run();
      // A late answer to a call sent before the breaker opened does not close it: the probe does.
      if (!breakerOpen()) {
        failuresInRow = 0;
        setHealth('ok');
      }
      return result;
    } catch (err) {
      options.onError?.(operation);
      setHealth('degraded', err);
      // A timeout has already cost its request the whole budget: the next call of the same
      // request (and of every other) must not wait again, so one is enough to open.
      if (err instanceof Error && err.message === TIMED_OUT) {
        openBreaker({ reason: 'timeout', operation, timeoutMs });
      } else if (++failuresInRow >= FAILURES_TO_OPEN) {
        openBreaker({ reason: 'failures', failures: FAILURES_TO_OPEN });
      }
      return undefined;
    }
  }
  const parse = (text: string | null | undefined): unknown =>
    text === null || text === undefined ? undefined : (JSON.parse(text) as unknown);

  /** Ways to end a lease early, without the compare-and-delete (a script already freed it). */
  const stops = new WeakMap<Lease, () => void>();
  /** A lease on `key` held while its value is `value`. */
  function leaseOn(key: string, value: string, token: string, ttlMs: number): Lease {
    let stopped = false;
    const lease = selfRenewingLease(token, ttlMs, {
      async renew() {
        if (stopped) return false;
        const renewed = await call('renew_lease', () => redis.renewKey(key, value, String(ttlMs)));
        // Unknown (Redis failing) counts as still held: the next renewal tries again.
        return renewed !== 0;
      },
      async release() {
        if (stopped) return;
        await call('release_lease', () => redis.releaseKey(key, value));
      },
    });
    stops.set(lease, () => {
      stopped = true;
      void lease.release();
    });
    return lease;
  }
  const stop = (lease: Lease | undefined): void => {
    if (lease !== undefined) stops.get(lease)?.();
  };

  async function claim(key: string, value: string, ttlMs: number) {
    return call('claim_lease', () => redis.claimKey(key, value, String(ttlMs)));
  }

  const isCanceled = (r: Remembered | undefined): r is Extract<Remembered, { kind: 'canceled' }> =>
    r?.kind === 'canceled';
  const keepLocally = async (key: string, value: Remembered, ttlSeconds: number): Promise<void> => {
    if (isCanceled(value)) await local.rememberOutcome(key, value, ttlSeconds);
  };

  const store: StateStore = {
    kind: 'redis',
    async getOutcome(key) {
      const mine = await local.getOutcome(key);
      if (mine !== undefined) return mine;
      return parse(await call('get_outcome', () => redis.get(`o:${key}`))) as
        Remembered | undefined;
    },
    async rememberOutcome(key, value, ttlSeconds) {
      await keepLocally(key, value, ttlSeconds);
      await call('remember_outcome', () =>
        redis.set(`o:${key}`, JSON.stringify(value), 'EX', ttlSeconds),
      );
    },
    async forgetOutcome(key, at) {
      await local.forgetOutcome(key, at);
      await call('forget_outcome', () => redis.forgetUnsure(`o:${key}`, at));
    },
    async beginFlight(key, at, timings) {
      const mine = await local.getOutcome(key);
      if (isCanceled(mine)) return { replay: mine };
      const token = newToken();
      const trace: Remembered = { kind: 'attempt', at };
      const started = await call('begin_flight', () =>
        redis.beginFlight(
          `o:${key}`,
          `f:${key}`,
          `w:${key}`,
          token,
          String(timings.leaseMs),
          JSON.stringify(trace),
          String(timings.rememberSeconds),
          String(timings.resultMs),
        ),
      );
      if (started === undefined) return { unavailable: true };
      const [outcome, claimed, holder] = started;
      const remembered = parse(outcome) as Remembered | undefined;
      // Not copied into the local memory: its remaining TTL is not known here, and a copy with a
      // fresh one would replay it past `rememberSeconds`. The local memory keeps what this
      // replica confirmed itself.
      if (isCanceled(remembered)) return { replay: remembered };
      if (claimed !== 1) return { heldBy: holder ?? undefined };
      return {
        owner: leaseOn(`f:${key}`, token, token, timings.leaseMs),
        ...(remembered === undefined ? {} : { remembered }),
      };
    },
    async finishFlight(key, owner, answer, change, timings) {
      if ('remember' in change) await keepLocally(key, change.remember, timings.rememberSeconds);
      stop(owner);
      const token = owner?.token ?? '';
      const mode = 'remember' in change ? 'remember' : 'clearTrace' in change ? 'clear' : 'keep';
      await call('finish_flight', () =>
        redis.finishFlight(
          `f:${key}`,
          `r:${key}:${token}`,
          `o:${key}`,
          `w:${key}`,
          token,
          JSON.stringify(answer),
          String(timings.resultMs),
          mode,
          'remember' in change ? JSON.stringify(change.remember) : '',
          String(timings.rememberSeconds),
        ),
      );
    },
    async peekFlight(key, token) {
      const seen = await call('peek_flight', () =>
        redis.peekFlight(`f:${key}`, `r:${key}:${token}`, token),
      );
      if (seen === undefined) return undefined;
      const result = parse(seen[0]) as Answer | undefined;
      return { ...(result === undefined ? {} : { result }), held: seen[1] === 1 };
    },
    async claimLease(key, ttlMs): Promise<LeaseClaim> {
      const token = newToken();
      const claimed = await claim(`l:${key}`, token, ttlMs);
      if (claimed === undefined) return { unavailable: true };
      if (claimed[0] !== 1) return { heldBy: claimed[1] };
      return { lease: leaseOn(`l:${key}`, token, token, ttlMs) };
    },
    async claimIdempotencyKey(key, fingerprint, leaseMs) {
      const token = newToken();
      const value = JSON.stringify({
        state: 'in-flight',
        fingerprint,
        token,
      } satisfies IdempotencyEntry);
      const claimed = await claim(`i:${key}`, value, leaseMs);
      if (claimed === undefined) return { unavailable: true };
      if (claimed[0] === 1) {
        // The in-flight entry is the lease: it expires unless renewed; completing replaces it.
        return { claimed: true, lease: leaseOn(`i:${key}`, value, token, leaseMs) };
      }
      const entry = parse(claimed[1]) as IdempotencyEntry | undefined;
      // Gone between the two steps of the script cannot happen; answer as degraded if it did.
      return entry === undefined ? { unavailable: true } : { claimed: false, entry };
    },
    async completeIdempotencyKey(key, entry, ttlSeconds, lease) {
      stop(lease);
      await call('complete_key', () =>
        redis.set(`i:${key}`, JSON.stringify(entry), 'EX', ttlSeconds),
      );
    },
    async takeSlot(window, limit, windowMs) {
      const wait = await call('take_slot', () =>
        redis.takeSlot(`rw:${window}`, String(limit), String(windowMs)),
      );
      return typeof wait === 'number' ? wait : undefined;
    },
    health: () => health,
    async close() {
      clearTimeout(probeTimer);
      // Once only: a second disconnect would arm ioredis's socket timer again, on a closed socket.
      if (closed) return;
      closed = true;
      redis.disconnect();
      await Promise.resolve();
    },
  };
  return store;
}
