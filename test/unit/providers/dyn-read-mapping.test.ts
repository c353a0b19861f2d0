import type { ProviderOutcome } from '../../../src/core/provider-outcome';
import {
  classifyJobPoll,
  classifyRead,
  confirmationOfJob,
  confirmationOfRead,
  readEnvelope,
  type DynClassification,
} from '../../../src/providers/dyn/mapping';

/** The task read of Dyn's "Get One Task" page, field by field as documented (REST). */
const task = (status: string, id = '39120953') => ({
  task_id: id,
  name: 'ProvisionZone',
  customer_name: 'acme',
  zone_name: 'example.com',
  status,
  step_count: 1,
  total_steps: 3,
  blocking: 'Y',
  message: '',
  debug: '',
  created_ts: 1500000000,
  modified_ts: 1500000042,
  args: [{ name: 'zone', value: 'example.com' }],
});
const success = (data: unknown) => ({ status: 'success', data, job_id: 4342199438, msgs: [] });
const failure = (errCd: string | null, info: string, job_id: number | null = 1) => ({
  status: 'failure',
  data: {},
  job_id,
  msgs: [{ INFO: info, SOURCE: 'BLL', ERR_CD: errCd, LVL: 'ERROR' }],
});

const read = (status: number, body: unknown, retryAfter?: number): DynClassification =>
  classifyRead(status, readEnvelope(body), retryAfter);
const outcomeOf = (c: DynClassification): ProviderOutcome => {
  if (c.kind !== 'outcome') throw new Error(`expected an outcome, got ${c.kind}`);
  return c.outcome;
};

describe('Dyn task read classification', () => {
  it.each(['ready', 'running', 'waiting', 'complete', 'failed', 'canceled', 'stalled'])(
    'a task in status %s → found, with the unified task and its Dyn status',
    (status) => {
      expect(outcomeOf(read(200, success(task(status))))).toEqual({
        outcome: 'found',
        task: {
          id: '39120953',
          name: 'ProvisionZone',
          zone: 'example.com',
          customer: 'acme',
          status,
          stepCount: 1,
          totalSteps: 3,
          blocking: true,
          message: '',
          createdAt: '2017-07-14T02:40:00.000Z',
          modifiedAt: '2017-07-14T02:40:42.000Z',
        },
      });
    },
  );

  it('a success without a task → upstream_error, never found without a task', () => {
    expect(outcomeOf(read(200, success(null)))).toMatchObject({
      outcome: 'upstream_error',
      error: { code: 'UPSTREAM_BAD_RESPONSE' },
    });
  });

  it('NOT_FOUND (HTTP 404, also array-wrapped) → not_found TASK_NOT_FOUND', () => {
    const body = failure('NOT_FOUND', 'task: No such task');
    for (const shape of [body, [body]]) {
      expect(outcomeOf(read(404, shape))).toEqual({
        outcome: 'not_found',
        error: {
          code: 'TASK_NOT_FOUND',
          message: 'Dyn says the task does not exist',
          upstream: { code: 'NOT_FOUND', message: 'task: No such task' },
        },
      });
    }
  });

  it('an expired session (the 2011 capture) → re-login, as for cancels', () => {
    const c = read(400, failure('INVALID_DATA', 'login: Bad or expired credentials'));
    expect(c).toEqual({
      kind: 'auth_expired',
      detail: {
        info: 'login: Bad or expired credentials',
        errCd: 'INVALID_DATA',
        lvl: 'ERROR',
        source: 'BLL',
      },
    });
  });

  it('"This session already has a job running" → another session', () => {
    const c = read(400, {
      ...failure('OPERATION_FAILED', 'token: This session already has a job running'),
      status: 'running',
    });
    expect(c.kind).toBe('session_busy');
  });

  it('HTTP 429 without a body → rate_limited for 60 s, not sent', () => {
    expect(outcomeOf(classifyRead(429, undefined))).toMatchObject({
      outcome: 'rate_limited',
      retryAfterSeconds: 60,
      notSent: true,
      error: { code: 'UPSTREAM_RATE_LIMITED' },
    });
  });

  it('SERVICE_UNAVAILABLE and an HTML 503 → unavailable, not sent', () => {
    expect(
      outcomeOf(read(400, failure('SERVICE_UNAVAILABLE', 'service: unavailable'))),
    ).toMatchObject({ outcome: 'unavailable', notSent: true });
    expect(outcomeOf(classifyRead(503, undefined))).toMatchObject({
      outcome: 'unavailable',
      notSent: true,
    });
  });

  it('an unknown code, or none, → upstream_error UPSTREAM_FAULT', () => {
    expect(outcomeOf(read(400, failure('SOMETHING_NEW', 'task: new')))).toMatchObject({
      outcome: 'upstream_error',
      error: { code: 'UPSTREAM_FAULT', upstream: { code: 'SOMETHING_NEW' } },
    });
    expect(outcomeOf(read(400, failure(null, 'task: ???')))).toMatchObject({
      outcome: 'upstream_error',
      error: { code: 'UPSTREAM_FAULT', upstream: { code: 'UNKNOWN' } },
    });
  });

  it('ILLEGAL_OPERATION is no conflict for a read: nothing was to be canceled', () => {
    expect(
      outcomeOf(read(400, failure('ILLEGAL_OPERATION', 'zone: Operation blocked by current task')))
        .outcome,
    ).toBe('upstream_error');
  });

  it('200 + incomplete → poll the job; without a job id → a plain timeout (nothing to poll)', () => {
    expect(read(200, { status: 'incomplete', data: null, job_id: 966935380 })).toEqual({
      kind: 'incomplete',
      jobId: '966935380',
    });
    expect(outcomeOf(read(200, { status: 'incomplete', data: null, job_id: null }))).toMatchObject({
      outcome: 'timeout',
      error: { code: 'UPSTREAM_TIMEOUT' },
    });
  });

  it('a read job Dyn no longer knows → a plain timeout, not JOB_NOT_CONFIRMED', () => {
    const c = classifyJobPoll(
      '7',
      404,
      readEnvelope(failure('NOT_FOUND', 'job: No such job')),
      undefined,
      '42',
      'read',
    );
    expect(outcomeOf(c)).toMatchObject({
      outcome: 'timeout',
      error: { code: 'UPSTREAM_TIMEOUT', message: expect.stringMatching(/job 7/) as string },
    });
  });

  it("a read job's final answer is the read's own answer", () => {
    const c = classifyJobPoll(
      '7',
      200,
      readEnvelope(success(task('running'))),
      undefined,
      '39120953',
      'read',
    );
    expect(outcomeOf(c)).toMatchObject({ outcome: 'found', task: { status: 'running' } });
  });
});

describe('confirming a timed-out cancel', () => {
  const found = (status: string): ProviderOutcome => ({
    outcome: 'found',
    task: { id: '42', status },
  });

  it.each([
    ['canceled', 'canceled'],
    ['cancelled', 'canceled'],
    ['complete', 'finished'],
    ['failed', 'finished'],
    ['running', 'pending'],
    ['waiting', 'pending'],
    ['stalled', 'pending'],
  ])('a read showing %s → %s', (status, state) => {
    expect(confirmationOfRead(found(status)).state).toBe(state);
  });

  it('a canceled task is remembered as a canceled outcome with the task', () => {
    expect(confirmationOfRead(found('canceled'))).toEqual({
      state: 'canceled',
      task: { id: '42', status: 'canceled' },
      outcome: { outcome: 'canceled', task: { id: '42', status: 'canceled' } },
    });
  });

  it('not_found → gone; a failed read → unknown with its Retry-After', () => {
    expect(confirmationOfRead({ outcome: 'not_found' }).state).toBe('gone');
    expect(confirmationOfRead({ outcome: 'rate_limited', retryAfterSeconds: 60 })).toMatchObject({
      state: 'unknown',
      retryAfterSeconds: 60,
    });
    expect(confirmationOfRead({ outcome: 'unavailable' }).state).toBe('unknown');
  });

  it("a job's success settles canceled; a refusal leaves it to a read", () => {
    expect(confirmationOfJob({ outcome: 'canceled' })).toEqual({
      state: 'canceled',
      outcome: { outcome: 'canceled' },
    });
    expect(
      confirmationOfJob({
        outcome: 'conflict',
        error: { code: 'TASK_ALREADY_FINISHED', message: 'already canceled' },
        task: { id: '42', status: 'canceled' },
      })?.state,
    ).toBe('canceled');
    expect(
      confirmationOfJob({
        outcome: 'conflict',
        error: { code: 'TASK_ALREADY_FINISHED', message: 'already complete' },
        task: { id: '42', status: 'complete' },
      }),
    ).toBeUndefined();
    expect(
      confirmationOfJob({
        outcome: 'timeout',
        error: { code: 'JOB_NOT_CONFIRMED', message: 'lost' },
      }),
    ).toBeUndefined();
  });
});
