import type { UnifiedResult } from '../../../src/core/result';
import type { UnifiedTask } from '../../../src/core/task';
import { createMemoryStore } from '../../../src/state/memory-store';
import type { IdempotencyEntry, Remembered } from '../../../src/state/store';

const DYN_TASK: UnifiedTask = {
  id: '1000123',
  name: 'ProvisionZone',
  zone: 'example.com',
  customer: 'demo',
  status: 'canceled',
  stepCount: 1,
  totalSteps: 3,
  blocking: true,
  message: 'quote " backslash \\ café ✓ 😀',
  createdAt: '2017-07-14T02:40:00.000Z',
  modifiedAt: '2017-07-14T02:40:50.000Z',
};

const cancel = (id: string): Remembered => ({ kind: 'canceled', provider: 'p', task: { id } });

describe('the memory store', () => {
  it('replays a remembered Dyn cancel exactly, field order included', async () => {
    const store = createMemoryStore(10);
    const value: Remembered = {
      kind: 'canceled',
      provider: 'dns-soap',
      protocol: 'dyn-soap',
      task: DYN_TASK,
    };
    await store.rememberOutcome('dns-soap:1000123', value, 60);
    const back = await store.getOutcome('dns-soap:1000123');
    expect(back).toStrictEqual(value);
    expect(JSON.stringify(back)).toBe(JSON.stringify(value));
    expect(back).not.toBe(value);
  });

  it('keeps what was stored, whatever the caller does to its object afterwards', async () => {
    const store = createMemoryStore(10);
    const value = { kind: 'canceled', task: { ...DYN_TASK } } satisfies Remembered;
    await store.rememberOutcome('k', value, 60);
    value.task.status = 'changed';
    const first = await store.getOutcome('k');
    if (first?.kind === 'canceled' && first.task !== undefined) first.task.status = 'changed too';
    expect(await store.getOutcome('k')).toMatchObject({ task: { status: 'canceled' } });
  });

  it('forgets an outcome after its TTL, and not before', async () => {
    let clock = 1_000_000;
    const store = createMemoryStore(10, () => clock);
    await store.rememberOutcome('t:1', cancel('1'), 10);
    await store.rememberOutcome('t:2', { kind: 'timeout', at: '2026-11-23T00:00:00.000Z' }, 20);
    clock += 9_999;
    expect(await store.getOutcome('t:1')).toStrictEqual(cancel('1'));
    clock += 1;
    expect(await store.getOutcome('t:1')).toBeUndefined();
    expect(await store.getOutcome('t:2')).toStrictEqual({
      kind: 'timeout',
      at: '2026-11-23T00:00:00.000Z',
    });
    clock += 10_000;
    expect(await store.getOutcome('t:2')).toBeUndefined();
  });

  it('keeps at most maxEntries, dropping the least recently used', async () => {
    const store = createMemoryStore(3);
    for (const id of ['1', '2', '3']) await store.rememberOutcome(`t:${id}`, cancel(id), 60);
    // Reading t:1 makes t:2 the least recently used.
    expect(await store.getOutcome('t:1')).toBeDefined();
    await store.rememberOutcome('t:4', cancel('4'), 60);
    expect(await store.getOutcome('t:2')).toBeUndefined();
    expect(await store.getOutcome('t:1')).toStrictEqual(cancel('1'));
    // Writing t:3 again makes it the newest: t:4 is dropped next, then t:1.
    await store.rememberOutcome('t:3', cancel('3b'), 60);
    await store.rememberOutcome('t:5', cancel('5'), 60);
    expect(await store.getOutcome('t:4')).toBeUndefined();
    expect(await store.getOutcome('t:3')).toStrictEqual(cancel('3b'));
    expect(await store.getOutcome('t:5')).toStrictEqual(cancel('5'));
    expect(await store.getOutcome('t:1')).toStrictEqual(cancel('1'));
  });

  it('keeps in-flight idempotency keys out of the bound: load evicts neither them nor by them', async () => {
    const store = createMemoryStore(2);
    await store.rememberOutcome('t:1', cancel('1'), 60);
    const first = await store.claimIdempotencyKey('k1', 'f', 60_000);
    expect(first).toMatchObject({ claimed: true });
    for (const id of ['2', '3', '4']) await store.rememberOutcome(`t:${id}`, cancel(id), 60);
    // Three outcomes later the key is still held: a second request with it must not run.
    expect(await store.claimIdempotencyKey('k1', 'f', 60_000)).toMatchObject({
      claimed: false,
      entry: { state: 'in-flight', fingerprint: 'f' },
    });
    expect(await store.getOutcome('t:4')).toStrictEqual(cancel('4'));
    if ('lease' in first) await first.lease.release();
    expect(await store.claimIdempotencyKey('k1', 'f', 60_000)).toMatchObject({ claimed: true });
  });

  it('shares the bound between outcomes and completed idempotency keys', async () => {
    const store = createMemoryStore(2);
    await store.rememberOutcome('t:1', cancel('1'), 60);
    const done: IdempotencyEntry = {
      state: 'done',
      fingerprint: 'f',
      body: { ok: true, outcome: 'canceled', retryable: false, requestId: 'r' },
    };
    await store.completeIdempotencyKey('k1', done, 60);
    await store.completeIdempotencyKey('k2', done, 60);
    expect(await store.getOutcome('t:1')).toBeUndefined();
    // An idempotency key and an outcome of the same name are different entries.
    await store.rememberOutcome('k2', cancel('2'), 60);
    expect(await store.claimIdempotencyKey('k2', 'g', 60_000)).toMatchObject({ claimed: false });
  });

  it('claims an idempotency key once, then gives back its entry until released', async () => {
    const store = createMemoryStore(10);
    const body: UnifiedResult = {
      ok: true,
      outcome: 'canceled',
      retryable: false,
      requestId: 'r',
      target: 't',
      taskId: '1',
      attempts: [],
    };
    const done: IdempotencyEntry = { state: 'done', fingerprint: 'f1', body };
    const first = await store.claimIdempotencyKey('k', 'f1', 30_000);
    if (!('lease' in first)) throw new Error('not claimed');
    expect(await store.claimIdempotencyKey('k', 'f2', 30_000)).toStrictEqual({
      claimed: false,
      entry: { state: 'in-flight', fingerprint: 'f1', token: first.lease.token },
    });
    await store.completeIdempotencyKey('k', done, 30, first.lease);
    expect(await store.claimIdempotencyKey('k', 'f1', 30_000)).toStrictEqual({
      claimed: false,
      entry: done,
    });
    // A key released while in flight is free again at once.
    const other = await store.claimIdempotencyKey('k2', 'f1', 30_000);
    if (!('lease' in other)) throw new Error('not claimed');
    await other.lease.release();
    const again = await store.claimIdempotencyKey('k2', 'f3', 30_000);
    expect(again).toMatchObject({ claimed: true });
    if ('lease' in again) await again.lease.release();
  });

  it('lets an in-flight claim lapse after its lease, unless renewed', async () => {
    let clock = 0;
    const store = createMemoryStore(10, () => clock);
    const first = await store.claimIdempotencyKey('k', 'f1', 5_000);
    if (!('lease' in first)) throw new Error('not claimed');
    clock += 4_000;
    expect(await first.lease.renew()).toBe(true);
    clock += 4_999;
    expect(await store.claimIdempotencyKey('k', 'f2', 5_000)).toMatchObject({ claimed: false });
    clock += 1;
    const second = await store.claimIdempotencyKey('k', 'f2', 5_000);
    expect(second).toMatchObject({ claimed: true });
    // The lapsed holder can neither renew nor free the new holder's key.
    expect(await first.lease.renew()).toBe(false);
    await first.lease.release();
    expect(await store.claimIdempotencyKey('k', 'f3', 5_000)).toMatchObject({ claimed: false });
    if ('lease' in second) await second.lease.release();
  });

  it('reports itself as a healthy memory store with no shared token buckets', async () => {
    const store = createMemoryStore(1);
    expect(store.kind).toBe('memory');
    expect(store.health()).toBe('ok');
    expect(await store.takeSlot('b', 10, 1000)).toBeUndefined();
    await expect(store.close()).resolves.toBeUndefined();
  });
});
