import type { ProviderOutcome } from '../../../src/core/provider-outcome';
import {
  createDynCanceller,
  SESSION_BUSY_PAUSE_MS,
  SESSION_BUSY_TRIES,
  type DynExchange,
} from '../../../src/providers/dyn/flow';
import type { DynClassification } from '../../../src/providers/dyn/mapping';
import { createSessionPool, type SessionTransport } from '../../../src/providers/dyn/session';
import type { CallContext } from '../../../src/providers/provider';
import { deadlineIn } from '../../../src/resilience/deadline';
import { createRateLimiter, createTokenBucket } from '../../../src/resilience/rate-limit';
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
const sent: { op: 'cancel' | 'poll'; id: string; token: string }[] = [];

function transport(): SessionTransport {
  return {
    login: () => Promise.resolve({ ok: true, token: `s${String(++logins)}` }),
    logout: (token) => {
      logouts.push(token);
      return Promise.resolve();
    },
  };
}

/** A canceller whose exchange answers from the scripts, one answer per call, in order. */
function canceller(
  cancels: DynClassification[],
  polls: DynClassification[] = [],
  maxSessions = 4,
): (taskId: string, ctx: CallContext) => Promise<ProviderOutcome> {
  const exchange: DynExchange = {
    cancel: (taskId, token) => {
      sent.push({ op: 'cancel', id: taskId, token });
      return Promise.resolve(cancels.shift() ?? canceled(taskId));
    },
    poll: (jobId, _taskId, token) => {
      sent.push({ op: 'poll', id: jobId, token });
      return Promise.resolve(polls.shift() ?? canceled());
    },
  };
  return createDynCanceller({
    sessions: createSessionPool(transport(), {
      maxSessions,
      loginBackoffMs: 60_000,
      loginTimeoutMs: 10_000,
      clock,
    }),
    bucket: createRateLimiter(createTokenBucket(1_000, 1_000, clock)),
    exchange,
    jobPollIntervalMs: 100,
    jobTimeoutMs: 10_000,
    clock,
  });
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
