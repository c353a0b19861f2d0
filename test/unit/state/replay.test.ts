import type { ErrorCode } from '../../../src/core/error-codes';
import type { Answer, PendingConfirmation } from '../../../src/core/result';
import { Redis } from 'ioredis';
import { createMemoryStore } from '../../../src/state/memory-store';
import { createRedisStore } from '../../../src/state/redis-store';
import { createCancelMemory, type CancelMemory, type TimeoutHook } from '../../../src/state/replay';
import type { StateStore } from '../../../src/state/store';
import { captureLogger } from '../../helpers/gateway';
import { startRedis, type RedisServer } from '../../helpers/redis';

/** What replay.ts decides from an answer's outcome, error code and task status alone. */

const timedOut: Answer = {
  body: {
    ok: false,
    outcome: 'timeout',
    retryable: true,
    requestId: 'r-0',
    target: 'dns',
    provider: 'dns-rest',
    protocol: 'dyn-rest',
    taskId: '7',
    error: { code: 'JOB_NOT_CONFIRMED', message: 'accepted, not confirmed' },
    attempts: [{ provider: 'dns-rest', outcome: 'timeout', durationMs: 5 }],
  },
  ambiguous: true,
};

function finished(code: ErrorCode, status: string): Answer {
  return {
    body: {
      ok: false,
      outcome: 'conflict',
      retryable: false,
      requestId: 'r-1',
      target: 'dns',
      provider: 'dns-rest',
      protocol: 'dyn-rest',
      taskId: '7',
      task: { id: '7', status },
      error: {
        code,
        message: 'the upstream message text plays no part',
        upstream: { code: 'ILLEGAL_OPERATION' },
      },
      attempts: [{ provider: 'dns-rest', outcome: 'conflict', durationMs: 3, errorCode: code }],
    },
  };
}

let memory: CancelMemory;
let calls: number;
const run = (answer: Answer, requestId = 'r-1'): Promise<Answer> =>
  memory.run('dns', '7', requestId, () => {
    calls++;
    return Promise.resolve(answer);
  });

beforeEach(() => {
  memory = createCancelMemory(createMemoryStore(100), 3600);
  calls = 0;
});

describe('a duplicate joining a running call in this process', () => {
  it('waits no longer than its own deadline, and the running call goes on for its owner', async () => {
    let finish: (a: Answer) => void = () => undefined;
    const owner = memory.run(
      'dns',
      '7',
      'r-owner',
      () =>
        new Promise<Answer>((resolve) => {
          calls++;
          finish = resolve;
        }),
    );
    const late = await memory.run('dns', '7', 'r-late', () => Promise.resolve(timedOut), {
      waitMs: 20,
    });
    expect(late.body).toMatchObject({
      outcome: 'timeout',
      requestId: 'r-late',
      error: { code: 'UPSTREAM_TIMEOUT' },
    });
    finish(finished('TASK_ALREADY_FINISHED', 'complete'));
    expect((await owner).body).toMatchObject({ outcome: 'conflict', requestId: 'r-owner' });
    expect(calls).toBe(1);
  });
});

describe('a repeat after a timeout of ours', () => {
  it.each(['canceled', 'cancelled', 'CANCELED'])(
    'turns "already finished" with a %s task into canceled, remembered as confirmed',
    async (status) => {
      await run(timedOut, 'r-0');
      const answer = await run(finished('TASK_ALREADY_FINISHED', status));
      expect(answer.body).toEqual({
        ok: true,
        outcome: 'canceled',
        retryable: false,
        requestId: 'r-1',
        target: 'dns',
        provider: 'dns-rest',
        protocol: 'dyn-rest',
        taskId: '7',
        task: { id: '7', status },
        attempts: [
          {
            provider: 'dns-rest',
            outcome: 'conflict',
            durationMs: 3,
            errorCode: 'TASK_ALREADY_FINISHED',
          },
        ],
      });
      const again = await run(finished('TASK_ALREADY_FINISHED', status), 'r-2');
      expect(again.body).toMatchObject({ outcome: 'canceled', replayed: true, requestId: 'r-2' });
      // The timeout and the "already finished" reached the upstream; the replay did not.
      expect(calls).toBe(2);
    },
  );

  it('keeps a task that finished another way a conflict', async () => {
    await run(timedOut, 'r-0');
    const answer = await run(finished('TASK_ALREADY_FINISHED', 'complete'));
    expect(answer.body).toMatchObject({
      outcome: 'conflict',
      error: { code: 'TASK_ALREADY_FINISHED' },
    });
  });

  it('keeps any other conflict a conflict, whatever the task status says', async () => {
    await run(timedOut, 'r-0');
    for (const code of ['TASK_NOT_CANCELABLE', 'TASK_BLOCKED'] as const) {
      expect((await run(finished(code, 'canceled'))).body.outcome).toBe('conflict');
    }
  });
});

it('without an earlier timeout, "already canceled" stays a conflict', async () => {
  const answer = await run(finished('TASK_ALREADY_FINISHED', 'canceled'));
  expect(answer.body).toMatchObject({ outcome: 'conflict', ok: false });
  await run(finished('TASK_ALREADY_FINISHED', 'canceled'));
  expect(calls).toBe(2);
});

describe('timeouts a background confirmation can settle', () => {
  const pendingTimeout: Answer = { ...timedOut, pending: { provider: 'dns-rest', jobId: '42' } };
  let told: { target: string; taskId: string; pending: PendingConfirmation; requestId: string }[];
  let store: StateStore;
  /** What the store holds for the task when the hook is told. */
  let heldWhenTold: unknown[];

  beforeEach(() => {
    told = [];
    heldWhenTold = [];
    store = createMemoryStore(100);
    memory = createCancelMemory(store, 3600, {
      onTimeout: (target, taskId, pending, requestId) => {
        told.push({ target, taskId, pending, requestId });
        void store.getOutcome(`${target}:${taskId}`).then((o) => heldWhenTold.push(o));
      },
    });
  });

  it('tells the hook once per shared call, with the owner’s request id, once the timeout is remembered', async () => {
    const slow = (): Promise<Answer> =>
      new Promise((resolve) => {
        setImmediate(() => {
          resolve(pendingTimeout);
        });
      });
    const answers = await Promise.all([
      memory.run('dns', '7', 'r-a', slow),
      memory.run('dns', '7', 'r-b', slow),
    ]);
    expect(answers.map((a) => a.body.requestId)).toEqual(['r-a', 'r-b']);
    expect(told).toEqual([
      {
        target: 'dns',
        taskId: '7',
        pending: { provider: 'dns-rest', jobId: '42' },
        requestId: 'r-0',
      },
    ]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(heldWhenTold).toEqual([expect.objectContaining({ kind: 'timeout' })]);
  });

  it('is not told of a timeout with nothing to confirm, nor of other answers', async () => {
    await memory.run('dns', '7', 'r-1', () => Promise.resolve(timedOut));
    await memory.run('dns', '8', 'r-2', () =>
      Promise.resolve(finished('TASK_NOT_CANCELABLE', 'x')),
    );
    expect(told).toEqual([]);
  });

  it('answers the caller even when the hook throws', async () => {
    memory = createCancelMemory(store, 3600, {
      onTimeout: () => {
        throw new Error('the reconciler is broken');
      },
    });
    const answer = await memory.run('dns', '7', 'r-1', () => Promise.resolve(pendingTimeout));
    expect(answer.body.outcome).toBe('timeout');
  });

  it('rememberConfirmed: a repeat replays the confirmed cancel with its task, without a call', async () => {
    await memory.run('dns', '7', 'r-0', () => Promise.resolve(pendingTimeout));
    await memory.rememberConfirmed('dns', '7', {
      provider: 'dns-rest',
      protocol: 'dyn-rest',
      task: { id: '7', status: 'canceled' },
    });
    let called = false;
    const repeat = await memory.run('dns', '7', 'r-9', () => {
      called = true;
      return Promise.resolve(timedOut);
    });
    expect(called).toBe(false);
    expect(repeat.body).toEqual({
      ok: true,
      outcome: 'canceled',
      retryable: false,
      requestId: 'r-9',
      target: 'dns',
      provider: 'dns-rest',
      protocol: 'dyn-rest',
      taskId: '7',
      task: { id: '7', status: 'canceled' },
      attempts: [],
      replayed: true,
    });
  });

  it('forgetUnsure forgets the timeout it is told of, never a newer one or a confirmed cancel', async () => {
    await memory.run('dns', '7', 'r-0', () => Promise.resolve(pendingTimeout));
    const remembered = await store.getOutcome('dns:7');
    if (remembered?.kind !== 'timeout') throw new Error('no timeout remembered');
    await memory.forgetUnsure('dns', '7', 'an older one');
    expect(await store.getOutcome('dns:7')).toStrictEqual(remembered);
    await memory.forgetUnsure('dns', '7', remembered.at);
    expect(await store.getOutcome('dns:7')).toBeUndefined();
    await memory.rememberConfirmed('dns', '8', { provider: 'dns-rest' });
    await memory.forgetUnsure('dns', '8', remembered.at);
    expect(await store.getOutcome('dns:8')).toEqual({ kind: 'canceled', provider: 'dns-rest' });
  });
});

describe('across replicas (two processes’ memories on one Redis)', () => {
  let redis: RedisServer;
  const stores: StateStore[] = [];
  let prefix = 0;

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis.stop();
  });
  afterEach(async () => {
    for (const store of stores.splice(0)) await store.close();
  });

  async function replica(
    leaseMs = 5_000,
    onTimeout?: TimeoutHook,
  ): Promise<{ store: StateStore; memory: CancelMemory }> {
    const store = await createRedisStore({
      url: redis.url,
      prefix: `replay-${prefix}:`,
      logger: captureLogger().logger,
      // These tests are about the protocol between replicas, not a slow Redis: a loaded CI
      // machine must not turn a waiter into a second caller through a 250 ms command timeout.
      timeoutMs: 5_000,
    });
    stores.push(store);
    return {
      store,
      memory: createCancelMemory(store, 3600, {
        leaseMs,
        ...(onTimeout === undefined ? {} : { onTimeout }),
      }),
    };
  }
  beforeEach(() => {
    prefix++;
  });

  /**
   * Resolves once a replica waits on the flight of `key` (its refused claim left the waiter
   * mark): released earlier, the owner could finish first and the second caller would rightly
   * start a call of its own.
   */
  async function waiting(key: string): Promise<void> {
    const client = new Redis(redis.url, { keyPrefix: `replay-${prefix}:` });
    try {
      while ((await client.exists(`w:${key}`)) === 0) {
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      client.disconnect();
    }
  }

  const canceled = (requestId: string): Answer => ({
    body: {
      ok: true,
      outcome: 'canceled',
      retryable: false,
      requestId,
      target: 'dns',
      taskId: '7',
      attempts: [{ provider: 'dns-rest', outcome: 'canceled', durationMs: 1 }],
    },
  });
  const gone: Answer = {
    body: {
      ok: false,
      outcome: 'not_found',
      retryable: false,
      requestId: 'r-late',
      target: 'dns',
      taskId: '7',
      error: { code: 'TASK_NOT_FOUND', message: 'no such task', upstream: { code: 'NOT_FOUND' } },
      attempts: [{ provider: 'dns-rest', outcome: 'not_found', durationMs: 1 }],
    },
  };

  /** A call that answers when the test says so, and tells when it started. */
  function held(answer: Answer) {
    let release: () => void = () => undefined;
    let started: () => void = () => undefined;
    const running = new Promise<void>((resolve) => (started = resolve));
    const gate = new Promise<void>((resolve) => (release = resolve));
    let count = 0;
    const call = async (): Promise<Answer> => {
      count++;
      started();
      await gate;
      return answer;
    };
    return {
      call,
      running,
      release: () => {
        release();
      },
      calls: () => count,
    };
  }

  it('makes one upstream call for a cancel raced on two replicas; both callers get it', async () => {
    const a = await replica();
    const b = await replica();
    const upstream = held(canceled('r-a'));
    const first = a.memory.run('dns', '7', 'r-a', upstream.call);
    await upstream.running;
    const second = b.memory.run('dns', '7', 'r-b', upstream.call);
    await waiting('dns:7');
    upstream.release();
    const [one, two] = await Promise.all([first, second]);
    expect(upstream.calls()).toBe(1);
    expect(one.body).toMatchObject({ outcome: 'canceled', requestId: 'r-a' });
    expect(two.body).toMatchObject({ outcome: 'canceled', requestId: 'r-b' });
    expect(two.body.replayed).toBeUndefined();
    // Later repeats on either replica replay it.
    const again = await b.memory.run('dns', '7', 'r-c', upstream.call);
    expect(again.body).toMatchObject({ outcome: 'canceled', replayed: true, requestId: 'r-c' });
    expect(upstream.calls()).toBe(1);
  });

  it('lets a waiter take over from an owner that died, answering as after a timeout', async () => {
    const a = await replica(300);
    const b = await replica(300);
    const dying = held(canceled('r-a'));
    void a.memory.run('dns', '7', 'r-a', dying.call);
    await dying.running;
    // The owner's process dies mid-call: its lease is no longer renewed.
    await a.store.close();
    let calls = 0;
    const after = await b.memory.run('dns', '7', 'r-late', () => {
      calls++;
      return Promise.resolve(gone);
    });
    expect(calls).toBe(1);
    expect(after.body).toMatchObject({
      outcome: 'not_found',
      requestId: 'r-late',
      error: { code: 'GONE_AFTER_TIMEOUT', upstream: { code: 'NOT_FOUND' } },
    });
    expect(after.body.error?.message).toMatch(/its answer never came back/);
  });

  it('answers timeout to a waiter whose own deadline passes first; the owner goes on', async () => {
    const a = await replica();
    const b = await replica();
    const upstream = held(canceled('r-a'));
    const owner = a.memory.run('dns', '7', 'r-a', upstream.call);
    await upstream.running;
    const waiter = await b.memory.run('dns', '7', 'r-b', upstream.call, { waitMs: 100 });
    expect(waiter.body).toMatchObject({
      outcome: 'timeout',
      retryable: true,
      requestId: 'r-b',
      error: { code: 'UPSTREAM_TIMEOUT' },
    });
    upstream.release();
    expect((await owner).body.outcome).toBe('canceled');
    expect(upstream.calls()).toBe(1);
  });

  it('tells the hook of a timeout raced on two replicas once: on the owner', async () => {
    const told: string[] = [];
    const a = await replica(5_000, (_t, _id, _p, requestId) => told.push(`a ${requestId}`));
    const b = await replica(5_000, (_t, _id, _p, requestId) => told.push(`b ${requestId}`));
    const upstream = held({ ...timedOut, pending: { provider: 'dns-rest' } });
    const first = a.memory.run('dns', '7', 'r-a', upstream.call);
    await upstream.running;
    const second = b.memory.run('dns', '7', 'r-b', upstream.call);
    await waiting('dns:7');
    upstream.release();
    const answers = await Promise.all([first, second]);
    expect(answers.map((x) => x.body.outcome)).toEqual(['timeout', 'timeout']);
    expect(upstream.calls()).toBe(1);
    expect(told).toEqual(['a r-0']);
  });
});
