import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import type { UnifiedTask } from '../../../src/core/task';
import {
  decodeOutcome,
  encodeOutcome,
  TASK_FIELDS,
  TASK_FIELDS_COMPLETE,
} from '../../../src/state/outcome-codec';
import { createMemoryStore, type Remembered } from '../../../src/state/store';

const DYN_TASK: UnifiedTask = {
  id: '1000123',
  name: 'ProvisionZone',
  zone: 'example.com',
  customer: 'demo',
  status: 'canceled',
  stepCount: 1,
  totalSteps: 3,
  blocking: true,
  message: '',
  createdAt: '2017-07-14T02:40:00.000Z',
  modifiedAt: '2017-07-14T02:40:50.000Z',
};

const oddText = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme' }),
  fc.constantFrom('', ' ', 'null', '[', '"', '\\', '\u0000', '\ud800', 'café ✓ 😀'),
);
const task: fc.Arbitrary<UnifiedTask> = fc.record(
  {
    id: oddText,
    name: oddText,
    zone: oddText,
    customer: oddText,
    status: oddText,
    stepCount: fc.integer(),
    totalSteps: fc.integer(),
    blocking: fc.boolean(),
    message: oddText,
    createdAt: oddText,
    modifiedAt: oddText,
  },
  { requiredKeys: ['id'], noNullPrototype: true },
);
const remembered: fc.Arbitrary<Remembered> = fc.oneof(
  fc.record(
    {
      kind: fc.constant('canceled' as const),
      provider: oddText,
      protocol: oddText,
      task,
    },
    { requiredKeys: ['kind'], noNullPrototype: true },
  ),
  fc.record({ kind: fc.constant('timeout' as const), at: oddText }, { noNullPrototype: true }),
);

describe('remembered outcomes as rows', () => {
  it('lists every field of the unified task (a compile-time check)', () => {
    expect(TASK_FIELDS_COMPLETE).toBe(true);
    expect(TASK_FIELDS).toHaveLength(new Set(TASK_FIELDS).size);
  });

  it('decodes exactly what it encoded, field order included, for any value', () => {
    fc.assert(
      fc.property(remembered, (value) => {
        const back = decodeOutcome(encodeOutcome(value));
        expect(back).toStrictEqual(value);
        expect(JSON.stringify(back.kind === 'canceled' ? back.task : back)).toBe(
          JSON.stringify(value.kind === 'canceled' ? value.task : value),
        );
      }),
      { numRuns: 2000 },
    );
  });

  it('keeps a Dyn cancel in under 60 % of its JSON', () => {
    const value: Remembered = {
      kind: 'canceled',
      provider: 'dns-soap',
      protocol: 'dyn-soap',
      task: DYN_TASK,
    };
    expect(encodeOutcome(value).length).toBeLessThan(0.6 * JSON.stringify(value).length);
  });
});

describe('the memory store', () => {
  it('answers what was stored, forgets it after its TTL, and keeps the newest maxEntries', async () => {
    let clock = 1_000_000;
    const store = createMemoryStore(3, () => clock);
    const cancel = (id: string): Remembered => ({
      kind: 'canceled',
      provider: 'p',
      task: { id },
    });
    await store.rememberOutcome('t:1', cancel('1'), 10);
    await store.rememberOutcome('t:2', { kind: 'timeout', at: '2026-11-23T00:00:00.000Z' }, 20);
    expect(await store.getOutcome('t:1')).toStrictEqual(cancel('1'));
    expect(await store.getOutcome('t:2')).toStrictEqual({
      kind: 'timeout',
      at: '2026-11-23T00:00:00.000Z',
    });
    clock += 10_000;
    expect(await store.getOutcome('t:1')).toBeUndefined();
    expect(await store.getOutcome('t:2')).toBeDefined();
    // t:2 was read last; three more push out everything older than the newest three.
    for (const id of ['3', '4', '5']) await store.rememberOutcome(`t:${id}`, cancel(id), 60);
    expect(await store.getOutcome('t:2')).toBeUndefined();
    expect(await store.getOutcome('t:3')).toStrictEqual(cancel('3'));
  });

  it('claims an idempotency key once, then gives back its entry until released', async () => {
    const store = createMemoryStore(10);
    expect(await store.claimIdempotencyKey('k', 'f1', 30)).toStrictEqual({ claimed: true });
    expect(await store.claimIdempotencyKey('k', 'f2', 30)).toStrictEqual({
      claimed: false,
      entry: { state: 'in-flight', fingerprint: 'f1' },
    });
    await store.completeIdempotencyKey(
      'k',
      {
        state: 'done',
        fingerprint: 'f1',
        status: 200,
        body: {
          ok: true,
          outcome: 'canceled',
          retryable: false,
          requestId: 'r',
          target: 't',
          taskId: '1',
          attempts: [],
        },
      },
      30,
    );
    expect(await store.claimIdempotencyKey('k', 'f1', 30)).toMatchObject({
      claimed: false,
      entry: { state: 'done', status: 200, body: { requestId: 'r' } },
    });
    await store.releaseIdempotencyKey('k');
    expect(await store.claimIdempotencyKey('k', 'f3', 30)).toStrictEqual({ claimed: true });
  });

  it('holds a remembered Dyn cancel in about 330 bytes of heap, key included', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const N = 20_000;
    gc();
    const before = process.memoryUsage().heapUsed;
    const store = createMemoryStore(N);
    for (let i = 0; i < N; i++) {
      const id = String(10_000_000 + i);
      await store.rememberOutcome(
        `dns-soap:${id}`,
        { kind: 'canceled', provider: 'dns-soap', protocol: 'dyn-soap', task: { ...DYN_TASK, id } },
        86_400,
      );
    }
    gc();
    const perEntry = (process.memoryUsage().heapUsed - before) / N;
    // As JSON objects (each a tree of string pieces plus an entry object) this was ~660 bytes.
    expect(perEntry).toBeLessThan(420);
    expect(await store.getOutcome(`dns-soap:${String(10_000_000 + N - 1)}`)).toMatchObject({
      task: { id: String(10_000_000 + N - 1), createdAt: DYN_TASK.createdAt },
    });
  });
});
