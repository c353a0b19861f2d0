import { Redis } from 'ioredis';
import type { Answer } from '../../../src/core/result';
import { createMemoryStore } from '../../../src/state/memory-store';
import { createRedisStore } from '../../../src/state/redis-store';
import type { FlightTimings, Lease, StateStore } from '../../../src/state/store';
import { captureLogger } from '../../helpers/gateway';
import { startRedis, type RedisServer } from '../../helpers/redis';

/** The lease and flight parts of the store interface, against both stores. */

const timings: FlightTimings = { leaseMs: 5_000, resultMs: 60_000, rememberSeconds: 3600 };

const answer: Answer = {
  body: {
    ok: false,
    outcome: 'not_found',
    retryable: false,
    requestId: 'owner-1',
    target: 't',
    taskId: '1',
    error: { code: 'TASK_NOT_FOUND', message: 'gone' },
    attempts: [{ provider: 'p', outcome: 'not_found', durationMs: 3 }],
  },
};

let redis: RedisServer;
const opened: StateStore[] = [];
const leases: Lease[] = [];

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.stop();
});
afterEach(async () => {
  for (const lease of leases.splice(0)) await lease.release();
  for (const store of opened.splice(0)) await store.close();
});

/** A fresh store of `kind`; redis stores of one test share one key namespace. */
let namespace = 0;
async function open(kind: 'memory' | 'redis', extra: { timeoutMs?: number } = {}) {
  const { logger, logs } = captureLogger();
  const errors: string[] = [];
  const errorWaiters: { operation: string; resolve: () => void }[] = [];
  const store =
    kind === 'memory'
      ? createMemoryStore(1000)
      : await createRedisStore({
          url: redis.url,
          prefix: `test-${namespace}:`,
          logger,
          onError: (operation) => {
            errors.push(operation);
            for (const w of errorWaiters.filter((x) => x.operation === operation)) {
              errorWaiters.splice(errorWaiters.indexOf(w), 1);
              w.resolve();
            }
          },
          ...extra,
        });
  opened.push(store);
  /** Resolves at the next failure of `operation` counted from now. */
  const nextError = (operation: string): Promise<void> =>
    new Promise((resolve) => errorWaiters.push({ operation, resolve }));
  return { store, logs, errors, nextError };
}

function leaseOf(claim: object): Lease {
  if (!('lease' in claim)) throw new Error(`not claimed: ${JSON.stringify(claim)}`);
  const lease = claim.lease as Lease;
  leases.push(lease);
  return lease;
}

describe.each(['memory', 'redis'] as const)('the %s store', (kind) => {
  beforeEach(() => {
    namespace++;
  });

  it('grants a lease once, names its holder to others, and frees it on release', async () => {
    const { store } = await open(kind);
    const first = leaseOf(await store.claimLease('job', 5_000));
    expect(await store.claimLease('job', 5_000)).toStrictEqual({ heldBy: first.token });
    expect(await first.renew()).toBe(true);
    await first.release();
    expect(await first.renew()).toBe(false);
    const second = leaseOf(await store.claimLease('job', 5_000));
    expect(second.token).not.toBe(first.token);
  });

  it('records an attempt when a flight is claimed, and the owner’s answer for its waiters', async () => {
    const { store } = await open(kind);
    const started = await store.beginFlight('t:1', '2026-01-01T00:00:00.000Z', timings);
    if (!('owner' in started)) throw new Error('not the owner');
    leases.push(started.owner);
    expect(started.remembered).toBeUndefined();
    expect(await store.getOutcome('t:1')).toStrictEqual({
      kind: 'attempt',
      at: '2026-01-01T00:00:00.000Z',
    });
    const other = await store.beginFlight('t:1', 'later', timings);
    expect(other).toStrictEqual({ heldBy: started.owner.token });
    expect(await store.peekFlight('t:1', started.owner.token)).toStrictEqual({ held: true });

    await store.finishFlight('t:1', started.owner, answer, { clearTrace: true }, timings);
    expect(await store.peekFlight('t:1', started.owner.token)).toStrictEqual({
      result: answer,
      held: false,
    });
    // A final answer other than a cancel removes the trace.
    expect(await store.getOutcome('t:1')).toBeUndefined();
  });

  it('replays a confirmed cancel instead of claiming, and keeps an earlier unsure outcome', async () => {
    const { store } = await open(kind);
    await store.rememberOutcome('t:2', { kind: 'canceled', provider: 'p' }, 60);
    expect(await store.beginFlight('t:2', 'now', timings)).toStrictEqual({
      replay: { kind: 'canceled', provider: 'p' },
    });
    await store.rememberOutcome('t:3', { kind: 'timeout', at: 'earlier' }, 60);
    const started = await store.beginFlight('t:3', 'now', timings);
    if (!('owner' in started)) throw new Error('not the owner');
    expect(started.remembered).toStrictEqual({ kind: 'timeout', at: 'earlier' });
    await store.finishFlight('t:3', started.owner, answer, { keep: true }, timings);
    expect(await store.getOutcome('t:3')).toStrictEqual({ kind: 'timeout', at: 'earlier' });
    // Only the timeout that was followed is forgotten, not one remembered since (a newer repeat).
    await store.forgetOutcome('t:3', 'later');
    expect(await store.getOutcome('t:3')).toStrictEqual({ kind: 'timeout', at: 'earlier' });
    await store.forgetOutcome('t:3', 'earlier');
    expect(await store.getOutcome('t:3')).toBeUndefined();
    // Forgetting never removes a confirmed cancel (one may have been written since a look).
    await store.rememberOutcome('t:3', { kind: 'canceled', provider: 'p' }, 60);
    await store.forgetOutcome('t:3', 'earlier');
    expect(await store.getOutcome('t:3')).toStrictEqual({ kind: 'canceled', provider: 'p' });
  });
});

describe('the redis store', () => {
  beforeEach(() => {
    namespace++;
  });

  it('frees the lease of a holder that stopped (its process died) within the TTL', async () => {
    const dying = await open('redis');
    const { store } = await open('redis');
    const held = leaseOf(await dying.store.claimLease('job', 400));
    expect(await store.claimLease('job', 400)).toStrictEqual({ heldBy: held.token });
    // Past several renewals the lease is still held while its holder lives…
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(await store.claimLease('job', 400)).toStrictEqual({ heldBy: held.token });
    // …and free once it stops renewing.
    await dying.store.close();
    const started = performance.now();
    let claim = await store.claimLease('job', 400);
    while ('heldBy' in claim) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      claim = await store.claimLease('job', 400);
    }
    leaseOf(claim);
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it('shares one sliding window between replicas: never more than the limit within it', async () => {
    const one = await open('redis');
    const two = await open('redis');
    expect(await one.store.takeSlot('acct', 2, 60_000)).toBe(0);
    expect(await two.store.takeSlot('acct', 2, 60_000)).toBe(0);
    const wait = await one.store.takeSlot('acct', 2, 60_000);
    expect(wait).toBeGreaterThan(59_000);
    expect(wait).toBeLessThanOrEqual(60_000);
    // A refusal takes nothing: a larger limit (a reload) finds two calls, not three.
    expect(await two.store.takeSlot('acct', 3, 60_000)).toBe(0);
    expect(await two.store.takeSlot('acct', 3, 60_000)).toBeGreaterThan(59_000);
    // A smaller one counts the last calls only, and refuses.
    expect(await one.store.takeSlot('acct', 1, 60_000)).toBeGreaterThan(59_000);
    // A short window frees its slot once the oldest call left it (Redis time).
    expect(await one.store.takeSlot('short', 1, 200)).toBe(0);
    const left = (await two.store.takeSlot('short', 1, 200)) ?? 0;
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThanOrEqual(200);
    await new Promise((resolve) => setTimeout(resolve, left + 5));
    expect(await two.store.takeSlot('short', 1, 200)).toBe(0);
  });

  it('publishes only awaited answers: a flight nobody waited for leaves no key behind', async () => {
    const { store } = await open('redis');
    const started = await store.beginFlight('t:5', 'now', timings);
    if (!('owner' in started)) throw new Error('not the owner');
    await store.finishFlight('t:5', started.owner, answer, { clearTrace: true }, timings);
    expect(await store.peekFlight('t:5', started.owner.token)).toStrictEqual({ held: false });
    const client = new Redis(redis.url);
    try {
      expect(await client.keys(`test-${namespace}:*`)).toEqual([]);
    } finally {
      await client.quit();
    }
  });

  const breakerOpened = (l: Record<string, unknown>): boolean =>
    String(l.msg).includes('breaker open');

  it('opens the breaker at the first call that times out: later calls never wait, a probe closes it', async () => {
    const { store, logs, errors, nextError } = await open('redis', { timeoutMs: 100 });
    await store.rememberOutcome('t:9', { kind: 'canceled', provider: 'p' }, 60);
    redis.pause();
    try {
      const first = performance.now();
      expect(await store.getOutcome('t:10')).toBeUndefined();
      // The one call that waited: its full timeout.
      expect(performance.now() - first).toBeGreaterThanOrEqual(95);
      // Every later call of any kind answers degraded without being sent, so none can wait:
      // one request's several calls cost one timeout in all, even the first request's.
      for (let i = 1; i < 8; i++) expect(await store.getOutcome(`t:${10 + i}`)).toBeUndefined();
      expect(await store.beginFlight('t:20', 'now', timings)).toStrictEqual({ unavailable: true });
      expect(await store.claimIdempotencyKey('k', 'f', 5_000)).toStrictEqual({
        unavailable: true,
      });
      expect(await store.takeSlot('acct', 5, 1_000)).toBeUndefined();
      expect(errors.filter((e) => e !== 'probe')).toEqual(['get_outcome']);
      expect(store.health()).toBe('degraded');
      const opened = logs.lines().filter(breakerOpened);
      expect(opened).toHaveLength(1);
      expect(opened[0]).toMatchObject({ reason: 'timeout', operation: 'get_outcome' });
      // A cancel confirmed here is still replayed from the process's own memory.
      expect(await store.beginFlight('t:9', 'now', timings)).toStrictEqual({
        replay: { kind: 'canceled', provider: 'p' },
      });
      // The probe keeps asking while Redis hangs (and nothing else is sent meanwhile).
      await nextError('probe');
      await nextError('probe');
      expect(errors.filter((e) => e !== 'probe')).toEqual(['get_outcome']);
    } finally {
      redis.resume();
    }
    await logs.waitFor((l) => l.msg === 'state store (redis) breaker closed');
    await logs.waitFor((l) => l.msg === 'state store (redis) available again');
    expect(store.health()).toBe('ok');
    expect(logs.lines().filter(breakerOpened)).toHaveLength(1);
    const started = await store.beginFlight('t:21', 'now', timings);
    expect(started).toHaveProperty('owner');
    if ('owner' in started) leases.push(started.owner);
  });

  it('lets a flight whose finish failed fast lapse within its lease: waiters elsewhere take over', async () => {
    const short: FlightTimings = { ...timings, leaseMs: 600 };
    const owner = await open('redis', { timeoutMs: 100 });
    const { store: other } = await open('redis');
    const started = await owner.store.beginFlight('t:30', 'first', short);
    if (!('owner' in started)) throw new Error('not the owner');
    // Another replica waits for it (its claim marks the flight as awaited).
    expect(await other.beginFlight('t:30', 'second', short)).toStrictEqual({
      heldBy: started.owner.token,
    });
    redis.pause();
    try {
      await owner.store.getOutcome('t:31');
      await owner.logs.waitFor(breakerOpened);
      // Not sent: the answer is never published and the lease is not renewed any more.
      await owner.store.finishFlight('t:30', started.owner, answer, { clearTrace: true }, short);
    } finally {
      redis.resume();
    }
    const finished = performance.now();
    let view = await other.peekFlight('t:30', started.owner.token);
    while (view?.held !== false) {
      expect(view?.result).toBeUndefined();
      await new Promise((resolve) => setTimeout(resolve, 25));
      view = await other.peekFlight('t:30', started.owner.token);
    }
    expect(view).toStrictEqual({ held: false });
    // Within the lease (as for an owner that died), not later.
    expect(performance.now() - finished).toBeLessThan(short.leaseMs + 1_500);
    // The waiter takes over and finds the attempt the finish could not clear.
    const again = await other.beginFlight('t:30', 'third', short);
    if (!('owner' in again)) throw new Error('not taken over');
    leases.push(again.owner);
    expect(again.remembered).toStrictEqual({ kind: 'attempt', at: 'first' });
  });

  it('opens the breaker after 5 fast failures in a row (Redis down), and closes it when Redis is back', async () => {
    const { store, logs, errors } = await open('redis', { timeoutMs: 100 });
    await redis.kill();
    try {
      await logs.waitFor((l) => String(l.msg).includes('unavailable'));
      // Refused at once (no connection): not a hang, so one failure does not open the breaker.
      for (let i = 0; i < 8; i++) expect(await store.getOutcome(`t:${40 + i}`)).toBeUndefined();
      expect(errors.filter((e) => e === 'get_outcome')).toHaveLength(5);
      expect(logs.lines().filter(breakerOpened)).toEqual([
        expect.objectContaining({ reason: 'failures', failures: 5 }),
      ]);
    } finally {
      await redis.restart();
    }
    await logs.waitFor((l) => l.msg === 'state store (redis) breaker closed');
    expect(store.health()).toBe('ok');
    expect(await store.claimLease('job-after', 5_000)).toHaveProperty('lease');
  });
});
