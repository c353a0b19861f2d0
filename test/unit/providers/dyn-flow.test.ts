import type { Confirmation, ProviderOutcome } from '../../../src/core/provider-outcome';
import {
  createDynFlow,
  type DynFlow,
  SESSION_BUSY_PAUSE_MS,
  SESSION_BUSY_TRIES,
  type DynExchange,
} from '../../../src/providers/dyn/flow';
import type { DynClassification } from '../../../src/providers/dyn/mapping';
import { createSessionPool, type SessionTransport } from '../../../src/providers/dyn/session';
import type { CallContext } from '../../../src/providers/provider';
import { deadlineIn } from '../../../src/resilience/deadline';
import { createRateLimiter, createSlidingWindow } from '../../../src/resilience/rate-limit';
import { createFakeClock, settle, type FakeClock } from '../../helpers/fake-clock';
import { captureLogger, type LogCapture } from '../../helpers/gateway';

/** The cancel flow against a scripted exchange, on a fake clock: no sockets, no real time. */

const BUSY: DynClassification = {
  kind: 'session_busy',
  detail: {
    info: 'token: This session already has a job running',
    errCd: 'OPERATION_FAILED',
    lvl: 'ERROR',
  },
};
const canceled = (id = '42'): DynClassification => ({
  kind: 'outcome',
  outcome: { outcome: 'canceled', task: { id, status: 'canceled' } },
});

let clock: FakeClock;
let logs: LogCapture;
let logins: number;
let logouts: string[];
const sent: { op: 'cancel' | 'read' | 'poll'; id: string; token: string }[] = [];

function transport(): SessionTransport {
  return {
    login: () => Promise.resolve({ ok: true, token: `s${String(++logins)}` }),
    logout: (token) => {
      logouts.push(token);
      return Promise.resolve();
    },
  };
}

const found = (id = '42', status = 'running'): DynClassification => ({
  kind: 'outcome',
  outcome: { outcome: 'found', task: { id, status } },
});

/** A flow whose exchange answers from the scripts, one answer per call, in order. */
function flowOf(
  cancels: DynClassification[],
  polls: DynClassification[] = [],
  maxSessions = 4,
  reads: DynClassification[] = [],
  maxParkedJobs = 0,
): DynFlow {
  const exchange: DynExchange = {
    cancel: (taskId, token) => {
      sent.push({ op: 'cancel', id: taskId, token });
      return Promise.resolve(cancels.shift() ?? canceled(taskId));
    },
    read: (taskId, token) => {
      sent.push({ op: 'read', id: taskId, token });
      return Promise.resolve(reads.shift() ?? found(taskId));
    },
    poll: (jobId, _taskId, token) => {
      sent.push({ op: 'poll', id: jobId, token });
      return Promise.resolve(polls.shift() ?? canceled());
    },
  };
  return createDynFlow({
    sessions: createSessionPool(transport(), {
      maxSessions,
      loginBackoffMs: 60_000,
      loginTimeoutMs: 10_000,
      clock,
    }),
    limiter: createRateLimiter(createSlidingWindow(1_000, clock)),
    exchange,
    jobPollIntervalMs: 100,
    jobTimeoutMs: 10_000,
    clock,
    ...(maxParkedJobs > 0 ? { keepJobSessions: { max: maxParkedJobs, ms: 60_000 } } : {}),
  });
}

/** The cancel of a flow built by `flowOf`. */
function canceller(
  cancels: DynClassification[],
  polls: DynClassification[] = [],
  maxSessions = 4,
): (taskId: string, ctx: CallContext) => Promise<ProviderOutcome> {
  const flow = flowOf(cancels, polls, maxSessions);
  return (taskId, ctx) => flow.cancel(taskId, ctx);
}

function context(ms = 5_000): CallContext {
  const { logger, logs: captured } = captureLogger();
  logs = captured;
  return { signal: deadlineIn(ms, clock).signal, log: logger, requestId: 'r-1' };
}

beforeEach(() => {
  clock = createFakeClock();
  logins = 0;
  logouts = [];
  sent.length = 0;
});

describe('a busy Dyn session', () => {
  it('sends the cancel on another session and keeps the busy one', async () => {
    const cancel = canceller([BUSY]);
    const outcome = await cancel('42', context());
    expect(outcome).toEqual({ outcome: 'canceled', task: { id: '42', status: 'canceled' } });
    expect(sent.map((s) => s.token)).toEqual(['s1', 's2']);
    expect(logouts).toEqual([]);
  });

  it(`answers UPSTREAM_BUSY, not sent, after ${SESSION_BUSY_TRIES} busy sessions`, async () => {
    const cancel = canceller([BUSY, BUSY, BUSY, BUSY]);
    const outcome = await cancel('42', context());
    expect(outcome).toEqual({
      outcome: 'unavailable',
      notSent: true,
      error: {
        code: 'UPSTREAM_BUSY',
        message: expect.stringContaining('busy') as string,
        upstream: {
          code: 'OPERATION_FAILED',
          message: 'token: This session already has a job running',
        },
      },
    });
    expect(sent).toHaveLength(SESSION_BUSY_TRIES);
    expect(logouts).toEqual([]);
  });

  it('waits on the clock for the only session, then sends again', async () => {
    const cancel = canceller([BUSY], [], 1);
    let outcome: ProviderOutcome | undefined;
    void cancel('42', context()).then((o) => (outcome = o));
    await settle();
    expect(sent).toHaveLength(1);
    await clock.advance(SESSION_BUSY_PAUSE_MS - 1);
    expect(outcome).toBeUndefined();
    await clock.advance(1);
    expect(outcome?.outcome).toBe('canceled');
    expect(sent.map((s) => s.token)).toEqual(['s1', 's1']);
    expect(logins).toBe(1);
  });

  it('answers UPSTREAM_BUSY when the deadline passes while it waits for a session', async () => {
    const cancel = canceller([BUSY], [], 1);
    let outcome: ProviderOutcome | undefined;
    void cancel('42', context(500)).then((o) => (outcome = o));
    await clock.advance(500);
    expect(outcome).toMatchObject({
      outcome: 'unavailable',
      notSent: true,
      error: { code: 'UPSTREAM_BUSY' },
    });
    expect(sent).toHaveLength(1);
  });
});

describe('job polling', () => {
  const job = (jobId: string): DynClassification => ({ kind: 'incomplete', jobId });

  it('follows a poll that points at another job', async () => {
    const cancel = canceller([job('1')], [job('2')]);
    const pending = cancel('42', context());
    await clock.advance(200);
    expect((await pending).outcome).toBe('canceled');
    expect(sent.filter((s) => s.op === 'poll').map((s) => s.id)).toEqual(['1', '2']);
  });

  it('keeps polling while the session reports its job still running', async () => {
    const cancel = canceller([job('1')], [BUSY]);
    const pending = cancel('42', context());
    await clock.advance(200);
    expect((await pending).outcome).toBe('canceled');
    expect(sent.filter((s) => s.op === 'poll')).toHaveLength(2);
  });

  it('answers JOB_NOT_CONFIRMED for an unusable poll answer and logs the session out', async () => {
    const unusable: DynClassification = {
      kind: 'outcome',
      outcome: {
        outcome: 'upstream_error',
        error: { code: 'UPSTREAM_BAD_RESPONSE', message: 'not JSON' },
      },
    };
    const cancel = canceller([job('7')], [unusable]);
    const pending = cancel('42', context());
    await clock.advance(100);
    const outcome = await pending;
    expect(outcome).toMatchObject({
      outcome: 'timeout',
      error: { code: 'JOB_NOT_CONFIRMED', upstream: { code: 'UPSTREAM_BAD_RESPONSE' } },
    });
    expect(outcome.error?.message).toMatch(/job 7.*unknown/);
    await settle();
    expect(logouts).toEqual(['s1']);
  });
});

it('drops a task that is not the requested one, keeps the outcome, and warns', async () => {
  const cancel = canceller([canceled('999')]);
  const outcome = await cancel('42', context());
  expect(outcome).toEqual({ outcome: 'canceled' });
  expect(logs.lines()).toContainEqual(
    expect.objectContaining({
      level: 'warn',
      taskId: '42',
      answeredTaskId: '999',
      msg: 'Dyn answered about another task; its task is dropped',
    }),
  );
});

describe('a task read', () => {
  const job = (jobId: string): DynClassification => ({ kind: 'incomplete', jobId });

  it('shares the session flow: busy session → another one, expired → one re-login', async () => {
    const expired: DynClassification = {
      kind: 'auth_expired',
      detail: { info: 'login: Bad or expired credentials', errCd: 'INVALID_DATA' },
    };
    const flow = flowOf([], [], 4, [BUSY, expired]);
    expect(await flow.read('42', context())).toEqual({
      outcome: 'found',
      task: { id: '42', status: 'running' },
    });
    expect(sent.map((s) => `${s.op}@${s.token}`)).toEqual(['read@s1', 'read@s2', 'read@s3']);
    expect(logins).toBe(3);
  });

  it('polls a read Dyn took as a job, and times out plainly (no pending) when it never ends', async () => {
    const running = Array.from({ length: 200 }, () => job('9'));
    const flow = flowOf([], running, 4, [job('9')]);
    const pending = flow.read('42', context(1_000));
    await clock.advance(1_000);
    const outcome = await pending;
    expect(outcome).toMatchObject({ outcome: 'timeout', error: { code: 'UPSTREAM_TIMEOUT' } });
    expect(outcome.pending).toBeUndefined();
    await settle();
    // The job may still run on that session: it is logged out, not reused.
    expect(logouts).toEqual(['s1']);
  });

  it('answers upstream_error for a read answered about another task, and warns', async () => {
    const flow = flowOf([], [], 4, [found('999')]);
    expect(await flow.read('42', context())).toMatchObject({
      outcome: 'upstream_error',
      error: { code: 'UPSTREAM_BAD_RESPONSE' },
    });
    expect(logs.lines()).toContainEqual(
      expect.objectContaining({ level: 'warn', answeredTaskId: '999' }),
    );
  });
});

describe('confirming a cancel that timed out', () => {
  const job = (jobId: string): DynClassification => ({ kind: 'incomplete', jobId });
  const stillRunning = (n: number): DynClassification[] =>
    Array.from({ length: n }, () => job('5'));

  it('a cancel whose job outlives the deadline carries pending { jobId } and keeps the session', async () => {
    const flow = flowOf([job('5')], stillRunning(200), 4, [], 1);
    const answer = flow.cancel('42', context(1_000));
    await clock.advance(1_000);
    const outcome = await answer;
    expect(outcome).toMatchObject({
      outcome: 'timeout',
      error: { code: 'JOB_NOT_CONFIRMED' },
      pending: { jobId: '5' },
    });
    await settle();
    expect(logouts).toEqual([]);
    expect(flow.parkedJobs()).toBe(1);
  });

  it('polls the kept job on its own session until it finishes: canceled, no read', async () => {
    const polls = stillRunning(10);
    const flow = flowOf([job('5')], polls, 4, [], 1);
    const answer = flow.cancel('42', context(500));
    await clock.advance(500);
    await answer;
    polls.length = 2; // the job now finishes after two more polls
    let confirmed: Confirmation | undefined;
    void flow.confirm('42', { jobId: '5' }, context(5_000)).then((c) => (confirmed = c));
    await clock.advance(300);
    expect(confirmed).toEqual({
      state: 'canceled',
      task: { id: '42', status: 'canceled' },
      outcome: { outcome: 'canceled', task: { id: '42', status: 'canceled' } },
    });
    const afterTimeout = sent.slice(sent.findIndex((s) => s.op === 'poll'));
    expect(afterTimeout.every((s) => s.op === 'poll' && s.token === 's1')).toBe(true);
    expect(flow.parkedJobs()).toBe(0);
  });

  it('a job still running at the end of a confirmation is kept again: unknown, no read', async () => {
    const flow = flowOf([job('5')], stillRunning(400), 4, [], 1);
    const answer = flow.cancel('42', context(500));
    await clock.advance(500);
    await answer;
    const confirming = flow.confirm('42', { jobId: '5' }, context(1_000));
    await clock.advance(1_000);
    expect((await confirming).state).toBe('unknown');
    expect(sent.some((s) => s.op === 'read')).toBe(false);
    expect(flow.parkedJobs()).toBe(1);
  });

  it('without a kept job (another replica, or no room) it reads the task: pending', async () => {
    const flow = flowOf([], [], 4, [found('42', 'running')]);
    const confirmation = await flow.confirm('42', { jobId: '77' }, context());
    expect(confirmation).toMatchObject({ state: 'pending', task: { status: 'running' } });
    expect(sent.map((s) => s.op)).toEqual(['read']);
  });

  it('a lost job leads to a read of the task', async () => {
    const lost: DynClassification = {
      kind: 'outcome',
      outcome: {
        outcome: 'timeout',
        error: { code: 'JOB_NOT_CONFIRMED', message: 'Dyn no longer knows job 5' },
      },
    };
    const polls = stillRunning(10);
    const flow = flowOf([job('5')], polls, 4, [found('42', 'canceled')], 1);
    const answer = flow.cancel('42', context(500));
    await clock.advance(500);
    await answer;
    polls.splice(0, polls.length, lost);
    const confirming = flow.confirm('42', { jobId: '5' }, context(5_000));
    await clock.advance(100);
    expect((await confirming).state).toBe('canceled');
    expect(sent.at(-1)?.op).toBe('read');
  });

  it('a kept session is logged out once its time is up', async () => {
    const flow = flowOf([job('5')], stillRunning(200), 4, [], 1);
    const answer = flow.cancel('42', context(500));
    await clock.advance(500);
    await answer;
    await clock.advance(60_000 - 1);
    expect(logouts).toEqual([]);
    await clock.advance(1);
    await settle();
    expect(logouts).toEqual(['s1']);
    expect(flow.parkedJobs()).toBe(0);
  });

  it('with no room to keep a session it is logged out at once', async () => {
    const flow = flowOf([job('5')], stillRunning(200), 4, [], 0);
    const answer = flow.cancel('42', context(500));
    await clock.advance(500);
    expect((await answer).pending).toEqual({ jobId: '5' });
    await settle();
    expect(logouts).toEqual(['s1']);
  });

  it('a kept session is logged out when the provider closes', async () => {
    const flow = flowOf([job('5')], stillRunning(200), 4, [], 1);
    const answer = flow.cancel('42', context(500));
    await clock.advance(500);
    await answer;
    flow.close();
    await settle();
    expect(logouts).toEqual(['s1']);
    expect(flow.parkedJobs()).toBe(0);
  });

  it('a plain timeout of the cancel itself carries pending without a job', async () => {
    const cut: DynClassification = {
      kind: 'outcome',
      outcome: { outcome: 'timeout', error: { code: 'UPSTREAM_TIMEOUT', message: 'deadline' } },
    };
    const flow = flowOf([cut]);
    expect((await flow.cancel('42', context())).pending).toEqual({});
  });
});
