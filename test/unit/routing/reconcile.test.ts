import type { Confirmation, ConfirmState } from '../../../src/core/provider-outcome';
import type { Answer, PendingConfirmation } from '../../../src/core/result';
import { createMetrics, type Metrics } from '../../../src/observability/metrics';
import type { ConfirmOptions } from '../../../src/routing/confirm';
import {
  createReconciler,
  FIRST_ATTEMPT_MS,
  keptJobSessionMs,
  type Reconciler,
  type ReconcilerOptions,
} from '../../../src/routing/reconcile';
import type { Runtime } from '../../../src/routing/runtime';
import { createMemoryStore } from '../../../src/state/memory-store';
import { createCancelMemory, type CancelMemory } from '../../../src/state/replay';
import type { StateStore } from '../../../src/state/store';
import { createFakeClock, settle, type FakeClock } from '../../helpers/fake-clock';
import { captureLogger, type LogCapture } from '../../helpers/gateway';

/** The reconciler's schedule, memory effects, limits and stop, on a fake clock. */

interface Call {
  runtime: Runtime;
  taskId: string;
  pending: PendingConfirmation;
  options: ConfirmOptions;
  at: number;
  pinsDuring: number;
}

/** A stand-in runtime: what the reconciler reads of one (providers, acquire). */
function fakeRuntime(providers: Record<string, string> = { 'dns-rest': 'dyn-rest' }) {
  const state = { pins: 0 };
  const runtime = {
    providers: new Map(
      Object.entries(providers).map(([name, protocol]) => [name, { name, provider: { protocol } }]),
    ),
    acquire() {
      state.pins++;
      let released = false;
      return () => {
        if (!released) state.pins--;
        released = true;
      };
    },
  } as unknown as Runtime;
  return { runtime, state };
}

const timedOut = (taskId: string): Answer => ({
  body: {
    ok: false,
    outcome: 'timeout',
    retryable: true,
    requestId: `r-${taskId}`,
    target: 'dns',
    provider: 'dns-rest',
    protocol: 'dyn-rest',
    taskId,
    error: { code: 'JOB_NOT_CONFIRMED', message: 'accepted, not confirmed' },
    attempts: [],
  },
  ambiguous: true,
  pending: { provider: 'dns-rest', jobId: '99' },
});

const notFound = (taskId: string): Answer => ({
  body: {
    ok: false,
    outcome: 'not_found',
    retryable: false,
    requestId: `r-${taskId}`,
    target: 'dns',
    provider: 'dns-rest',
    protocol: 'dyn-rest',
    taskId,
    error: { code: 'TASK_NOT_FOUND', message: 'task: No such task' },
    attempts: [],
  },
});

function confirmation(state: ConfirmState, extra: Partial<Confirmation> = {}): Confirmation {
  const task = { id: '7', status: state === 'canceled' ? 'canceled' : 'running' };
  return state === 'canceled'
    ? { state, task, outcome: { outcome: 'canceled', task }, ...extra }
    : {
        state,
        outcome: {
          outcome: 'unavailable',
          error: { code: 'UPSTREAM_UNAVAILABLE', message: 'x' },
        },
        ...extra,
      };
}

let clock: FakeClock;
let store: StateStore;
let memory: CancelMemory;
let metrics: Metrics;
let logs: LogCapture;
let calls: Call[];
let answers: (Confirmation | Promise<Confirmation>)[];
let current: ReturnType<typeof fakeRuntime>;
let reconciler: Reconciler;

function start(options: Partial<ReconcilerOptions> = {}): Reconciler {
  const captured = captureLogger();
  logs = captured.logs;
  reconciler = createReconciler({
    store,
    memory,
    runtime: () => current.runtime,
    logger: captured.logger,
    metrics,
    clock,
    reconcileSeconds: 120,
    confirm: (runtime, _target, taskId, pending, confirmOptions) => {
      calls.push({
        runtime,
        taskId,
        pending,
        options: confirmOptions,
        at: clock.now(),
        pinsDuring: current.state.pins,
      });
      return Promise.resolve(answers.shift() ?? confirmation('unknown'));
    },
    ...options,
  });
  return reconciler;
}

/** Runs a timed-out cancel through the memory, so a timeout is remembered, and schedules it. */
async function timeOut(taskId = '7'): Promise<void> {
  await memory.run('dns', taskId, `r-${taskId}`, () => Promise.resolve(timedOut(taskId)));
}

async function counted(result: string, provider = 'dns-rest'): Promise<number> {
  const { values } = await metrics.reconciliations.get();
  return (
    values.find((v) => v.labels.result === result && v.labels.provider === provider)?.value ?? 0
  );
}

/** Lets the reconciler's store calls and follow-ups run (they are not on the clock). */
async function drain(): Promise<void> {
  for (let i = 0; i < 5; i++) await settle();
}

beforeEach(() => {
  clock = createFakeClock();
  store = createMemoryStore(100);
  metrics = createMetrics();
  calls = [];
  answers = [];
  current = fakeRuntime();
  memory = createCancelMemory(store, 3600, {
    onTimeout: (target, taskId, pending, requestId, rememberedAt) => {
      reconciler.schedule(target, taskId, pending, requestId, rememberedAt);
    },
  });
});

afterEach(async () => {
  await reconciler.stop();
});

describe('schedule', () => {
  it('attempts 1 s after the timeout, then 2, 4, 8, 16, 30, 30 s apart, until the window ends: expired', async () => {
    start();
    await timeOut();
    await clock.advance(130_000);
    await drain();
    expect(calls.map((c) => c.at)).toEqual([
      1_000, 3_000, 7_000, 15_000, 31_000, 61_000, 91_000, 120_000,
    ]);
    expect(reconciler.size()).toBe(0);
    expect(await counted('expired')).toBe(1);
    const line = logs.lines().find((l) => l.msg === 'timeout settled');
    expect(line).toMatchObject({
      level: 'warn',
      result: 'expired',
      requestId: 'r-7',
      target: 'dns',
      provider: 'dns-rest',
      taskId: '7',
      attempts: 8,
      afterMs: 120_000,
      lastError: 'UPSTREAM_UNAVAILABLE',
    });
    // Given up: the timeout stays, so a later "does not exist" still says what most likely happened.
    const gone = await memory.run('dns', '7', 'r-8', () => Promise.resolve(notFound('7')));
    expect(gone.body.error?.code).toBe('GONE_AFTER_TIMEOUT');
  });

  it('waits at least as long as a Retry-After asks', async () => {
    start();
    answers = [confirmation('unknown', { retryAfterSeconds: 10 })];
    await timeOut();
    await clock.advance(12_000);
    expect(calls.map((c) => c.at)).toEqual([1_000, 11_000]);
  });

  it('passes the timed-out request id, the pending job and a stop signal; holds the runtime during each attempt', async () => {
    start();
    await timeOut();
    await clock.advance(FIRST_ATTEMPT_MS);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({
      taskId: '7',
      pending: { provider: 'dns-rest', jobId: '99' },
      options: { requestId: 'r-7' },
      pinsDuring: 1,
    });
    expect(calls[0]?.options.signal?.aborted).toBe(false);
    expect(current.state.pins).toBe(0);
  });

  it('runs each attempt on the runtime current at its start (reloads)', async () => {
    start();
    await timeOut();
    const first = current.runtime;
    await clock.advance(1_000);
    current = fakeRuntime();
    await clock.advance(2_000);
    expect(calls.map((c) => c.runtime)).toEqual([first, current.runtime]);
  });

  it('joins a later timeout of the same task: one confirmation, polling the newer job', async () => {
    start();
    await timeOut();
    reconciler.schedule('dns', '7', { provider: 'dns-rest', jobId: '100' }, 'r-again', 'later');
    expect(reconciler.size()).toBe(1);
    await clock.advance(1_000);
    expect(calls.map((c) => c.pending.jobId)).toEqual(['100']);
  });

  it('does not settle on an answer found while a later timeout of the task came in: it asks again', async () => {
    start();
    let answer: (c: Confirmation) => void = () => undefined;
    answers = [
      new Promise<Confirmation>((resolve) => {
        answer = resolve;
      }),
      confirmation('canceled'),
    ];
    await timeOut();
    await clock.advance(1_000);
    expect(calls).toHaveLength(1);
    // The retry's job starts while the first read is out; that read then shows the task pending.
    reconciler.schedule('dns', '7', { provider: 'dns-rest', jobId: '100' }, 'r-again', 'later');
    answer(confirmation('pending'));
    await drain();
    expect(await counted('pending')).toBe(0);
    await clock.advance(1_000);
    await drain();
    expect(calls.map((c) => c.pending.jobId)).toEqual(['99', '100']);
    expect(await counted('canceled')).toBe(1);
  });

  it('is told only of ambiguous timeouts with something to confirm', async () => {
    start();
    const withoutPending: Answer = { ...timedOut('8') };
    delete withoutPending.pending;
    await memory.run('dns', '8', 'r-8', () => Promise.resolve(withoutPending));
    expect(reconciler.size()).toBe(0);
  });
});

describe('what a confirmation leaves in the cancel memory', () => {
  it('canceled → a confirmed cancel: a repeat replays it with the task, without a call', async () => {
    start();
    answers = [confirmation('canceled')];
    await timeOut();
    await clock.advance(1_000);
    await drain();
    expect(await counted('canceled')).toBe(1);
    expect(logs.lines().find((l) => l.msg === 'timeout settled')).toMatchObject({
      level: 'info',
      result: 'canceled',
      attempts: 1,
      taskStatus: 'canceled',
    });
    let called = false;
    const repeat = await memory.run('dns', '7', 'r-2', () => {
      called = true;
      return Promise.resolve(notFound('7'));
    });
    expect(called).toBe(false);
    expect(repeat.body).toMatchObject({
      outcome: 'canceled',
      replayed: true,
      requestId: 'r-2',
      provider: 'dns-rest',
      protocol: 'dyn-rest',
      task: { id: '7', status: 'canceled' },
    });
  });

  it.each(['pending', 'finished'] as const)(
    '%s → the timeout is forgotten: a later "does not exist" is plain not_found',
    async (state) => {
      start();
      answers = [confirmation(state)];
      await timeOut();
      await clock.advance(1_000);
      await drain();
      expect(await store.getOutcome('dns:7')).toBeUndefined();
      const later = await memory.run('dns', '7', 'r-2', () => Promise.resolve(notFound('7')));
      expect(later.body.error?.code).toBe('TASK_NOT_FOUND');
    },
  );

  it('pending while the cancel may still apply settles nothing: asked again, then expired, the timeout kept', async () => {
    start({ reconcileSeconds: 5 });
    answers = [
      confirmation('pending', { cancelMayApply: true }),
      confirmation('pending', { cancelMayApply: true }),
      confirmation('pending', { cancelMayApply: true }),
    ];
    await timeOut();
    await clock.advance(1_000 + 2_000 + 4_000);
    await drain();
    expect(calls.map((c) => c.at)).toEqual([1_000, 3_000, 5_000]);
    expect(await counted('pending')).toBe(0);
    expect(await counted('expired')).toBe(1);
    expect(await store.getOutcome('dns:7')).toMatchObject({ kind: 'timeout' });
  });

  it('pending never removes a newer timeout remembered by another replica meanwhile', async () => {
    start();
    answers = [confirmation('pending')];
    await timeOut();
    // Another replica's repeat timed out too and remembered its own timeout.
    await store.rememberOutcome('dns:7', { kind: 'timeout', at: 'another replica' }, 60);
    await clock.advance(1_000);
    await drain();
    expect(await counted('pending')).toBe(1);
    expect(await store.getOutcome('dns:7')).toStrictEqual({
      kind: 'timeout',
      at: 'another replica',
    });
  });

  it('gone → the timeout stays', async () => {
    start();
    answers = [confirmation('gone')];
    await timeOut();
    await clock.advance(1_000);
    await drain();
    expect(await counted('gone')).toBe(1);
    expect(await store.getOutcome('dns:7')).toMatchObject({ kind: 'timeout' });
  });

  it('pending never clears a confirmed cancel remembered meanwhile', async () => {
    start();
    answers = [confirmation('pending')];
    await timeOut();
    await memory.rememberConfirmed('dns', '7', { provider: 'dns-rest' });
    await clock.advance(1_000);
    await drain();
    expect(await store.getOutcome('dns:7')).toMatchObject({ kind: 'canceled' });
  });

  it('unsupported (the provider is gone) → abandoned after one attempt', async () => {
    start();
    answers = [confirmation('unsupported')];
    await timeOut();
    await clock.advance(10_000);
    await drain();
    expect(calls).toHaveLength(1);
    expect(await counted('abandoned')).toBe(1);
  });
});

describe('limits', () => {
  it('runs at most `concurrency` attempts at once; the others wait for a slot', async () => {
    start({ concurrency: 2 });
    const gates: ((c: Confirmation) => void)[] = [];
    const held = (): Promise<Confirmation> =>
      new Promise((resolve) => {
        gates.push(resolve);
      });
    answers = [held(), held(), held()];
    for (const id of ['1', '2', '3']) await timeOut(id);
    await clock.advance(1_000);
    expect(calls.map((c) => c.taskId)).toEqual(['1', '2']);
    gates[0]?.(confirmation('gone'));
    await drain();
    expect(calls.map((c) => c.taskId)).toEqual(['1', '2', '3']);
    for (const gate of gates) gate(confirmation('gone'));
  });

  it('drops timeouts beyond `maxQueue` with a warning and a count', async () => {
    start({ maxQueue: 2 });
    for (const id of ['1', '2', '3']) await timeOut(id);
    expect(reconciler.size()).toBe(2);
    expect(await counted('dropped')).toBe(1);
    expect(logs.lines()).toContainEqual(
      expect.objectContaining({ level: 'warn', taskId: '3', followed: 2 }),
    );
  });

  it('waits while another replica holds the lease, then follows its own (newer) timeout', async () => {
    start();
    const other = await store.claimLease('reconcile:dns:7', 5_000);
    if (!('lease' in other)) throw new Error('not claimed');
    await timeOut();
    await clock.advance(10_000);
    await drain();
    expect(calls).toHaveLength(0);
    expect(reconciler.size()).toBe(1);
    await other.lease.release();
    answers = [confirmation('canceled')];
    await clock.advance(5_000);
    await drain();
    await clock.advance(1_000);
    await drain();
    expect(calls.map((c) => c.pending.jobId)).toEqual(['99']);
    expect(await counted('canceled')).toBe(1);
  });

  it('gives up waiting for another replica when the window ends', async () => {
    start({ reconcileSeconds: 10 });
    const other = await store.claimLease('reconcile:dns:7', 60_000);
    if (!('lease' in other)) throw new Error('not claimed');
    await timeOut();
    await clock.advance(10_000);
    await drain();
    expect(calls).toHaveLength(0);
    expect(reconciler.size()).toBe(0);
    expect(await counted('expired')).toBe(1);
    expect(await store.getOutcome('dns:7')).toMatchObject({ kind: 'timeout' });
    await other.lease.release();
  });

  it('holds the lease while following, and frees it at the end', async () => {
    start();
    answers = [confirmation('unknown'), confirmation('gone')];
    await timeOut();
    await clock.advance(1_000);
    expect(await store.claimLease('reconcile:dns:7', 5_000)).toMatchObject({
      heldBy: expect.any(String) as string,
    });
    await clock.advance(2_000);
    await drain();
    const after = await store.claimLease('reconcile:dns:7', 5_000);
    expect('lease' in after).toBe(true);
    if ('lease' in after) await after.lease.release();
  });

  it('keeps a job session a little longer than the window', () => {
    expect(keptJobSessionMs(300)).toBe(300_000 + FIRST_ATTEMPT_MS);
  });
});

describe('stop', () => {
  it('aborts an attempt in progress, ends waiting ones, and ignores later timeouts', async () => {
    start();
    let release: ((c: Confirmation) => void) | undefined;
    answers = [
      new Promise((resolve) => {
        release = resolve;
      }),
    ];
    await timeOut('1');
    await timeOut('2');
    await clock.advance(1_000);
    const signal = calls[0]?.options.signal;
    expect(signal?.aborted).toBe(false);
    const stopped = reconciler.stop();
    expect(signal?.aborted).toBe(true);
    // The aborted attempt answers (a provider answers `unknown` on its signal).
    release?.(confirmation('unknown'));
    await stopped;
    expect(reconciler.size()).toBe(0);
    expect(await counted('stopped')).toBe(2);
    expect(logs.lines()).toContainEqual(
      expect.objectContaining({ msg: 'background confirmations stopped', stopped: 2 }),
    );
    expect(logs.lines().filter((l) => l.msg === 'timeout settled')).toEqual([]);
    expect(current.state.pins).toBe(0);
    await timeOut('3');
    expect(reconciler.size()).toBe(0);
  });
});
