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
  const store =
    kind === 'memory'
      ? createMemoryStore(1000)
      : await createRedisStore({
          url: redis.url,
          prefix: `test-${namespace}:`,
          logger,
          onError: (operation) => errors.push(operation),
          ...extra,
        });
  opened.push(store);
  return { store, logs, errors };
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
    await store.forgetOutcome('t:3');
    expect(await store.getOutcome('t:3')).toBeUndefined();
    // Forgetting never removes a confirmed cancel (one may have been written since a look).
    await store.rememberOutcome('t:3', { kind: 'canceled', provider: 'p' }, 60);
    await store.forgetOutcome('t:3');
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

  it('bounds every call by its timeout, opens a breaker, and closes it once Redis answers', async () => {
    const { store, logs, errors } = await open('redis', { timeoutMs: 100 });
    await store.rememberOutcome('t:9', { kind: 'canceled', provider: 'p' }, 60);
    redis.pause();
    try {
      const durations: number[] = [];
      for (let i = 0; i < 8; i++) {
        const started = performance.now();
        expect(await store.getOutcome(`t:${10 + i}`)).toBeUndefined();
        durations.push(performance.now() - started);
      }
      // Each failed call waited about its timeout; once open, the breaker answers at once.
      expect(errors.filter((e) => e === 'get_outcome')).toHaveLength(5);
      expect(Math.max(...durations)).toBeLessThan(1_000);
      expect(store.health()).toBe('degraded');
      await logs.waitFor((l) => String(l.msg).includes('breaker open'));
      // A cancel confirmed here is still replayed from the process's own memory.
      expect(await store.beginFlight('t:9', 'now', timings)).toStrictEqual({
        replay: { kind: 'canceled', provider: 'p' },
      });
      expect(await store.beginFlight('t:20', 'now', timings)).toStrictEqual({
        unavailable: true,
      });
    } finally {
      redis.resume();
    }
    await logs.waitFor((l) => l.msg === 'state store (redis) available again');
    expect(store.health()).toBe('ok');
    const started = await store.beginFlight('t:21', 'now', timings);
    expect(started).toHaveProperty('owner');
    if ('owner' in started) leases.push(started.owner);
  });
});
