import { xmlDepth } from '../../../src/providers/dyn/soap-http';
import {
  classifyCancel,
  classifyJobPoll,
  classifyLogin,
  primaryMessage,
  readEnvelope,
  toUnifiedTask,
} from '../../../src/providers/dyn/mapping';

// Real Dyn captures and fixtures from public client projects.
const EXPIRED_2011 = {
  status: 'failure',
  data: {},
  job_id: 21326025,
  msgs: [
    {
      INFO: 'login: Bad or expired credentials',
      SOURCE: 'BLL',
      ERR_CD: 'INVALID_DATA',
      LVL: 'ERROR',
    },
    {
      INFO: 'login: There was a problem with your credentials',
      SOURCE: 'BLL',
      ERR_CD: null,
      LVL: 'INFO',
    },
  ],
};
const MISSING_TOKEN_2015 = {
  status: 'failure',
  data: null,
  job_id: null,
  msgs: [
    {
      INFO: 'token: required field missing',
      SOURCE: 'API-A',
      ERR_CD: 'MISSING_DATA',
      LVL: 'ERROR',
    },
  ],
};
const INCOMPLETE_2014 = { status: 'incomplete', data: null, job_id: 966935380 };
const BLOCKED = {
  status: 'failure',
  data: {},
  job_id: 275545493,
  msgs: [
    {
      INFO: 'zone: Operation blocked by current task',
      SOURCE: 'BLL',
      ERR_CD: 'ILLEGAL_OPERATION',
      LVL: 'ERROR',
    },
    { INFO: 'task_name: ProvisionZone', SOURCE: 'BLL', ERR_CD: null, LVL: 'INFO' },
    { INFO: 'task_id: 39120953', SOURCE: 'BLL', ERR_CD: null, LVL: 'INFO' },
  ],
};
const TASK = {
  task_id: '39120953',
  name: 'ProvisionZone',
  customer_name: 'acme',
  zone_name: 'example.com',
  status: 'canceled',
  step_count: 1,
  total_steps: 3,
  blocking: 'Y',
  message: '',
  debug: '',
  created_ts: 1500000000,
  modified_ts: 1500000042,
  args: [{ name: 'zone', value: 'example.com' }],
};

const classify = (status: number, body: unknown, retryAfter?: number) =>
  classifyCancel(status, readEnvelope(body), retryAfter);

describe('Dyn task → unified task', () => {
  it('maps every documented field', () => {
    expect(toUnifiedTask(TASK)).toEqual({
      id: '39120953',
      name: 'ProvisionZone',
      zone: 'example.com',
      customer: 'acme',
      status: 'canceled',
      stepCount: 1,
      totalSteps: 3,
      blocking: true,
      message: '',
      createdAt: '2017-07-14T02:40:00.000Z',
      modifiedAt: '2017-07-14T02:40:42.000Z',
    });
  });

  it('takes a numeric task_id, "N" blocking and numeric strings (SOAP)', () => {
    expect(
      toUnifiedTask({
        task_id: 39120953,
        blocking: 'N',
        step_count: '2',
        created_ts: '1500000000',
      }),
    ).toEqual({
      id: '39120953',
      blocking: false,
      stepCount: 2,
      createdAt: '2017-07-14T02:40:00.000Z',
    });
  });

  it('is undefined for data that is not a task', () => {
    expect(toUnifiedTask({})).toBeUndefined();
    expect(toUnifiedTask(null)).toBeUndefined();
    expect(toUnifiedTask(['/REST/Task/1/'])).toBeUndefined();
  });
});

describe('Dyn envelope reading', () => {
  it('normalises REST upper-case and SOAP lower-case message keys', () => {
    const rest = readEnvelope(EXPIRED_2011);
    const soap = readEnvelope({
      status: 'failure',
      job_id: '5',
      msgs: [
        {
          source: 'BLL',
          lvl: 'ERROR',
          err_cd: 'INVALID_DATA',
          info: 'login: Bad or expired credentials',
        },
      ],
    });
    expect(rest?.msgs[0]).toEqual({
      source: 'BLL',
      lvl: 'ERROR',
      errCd: 'INVALID_DATA',
      info: 'login: Bad or expired credentials',
    });
    expect(soap?.msgs[0]).toEqual(rest?.msgs[0]);
    expect(rest?.jobId).toBe('21326025');
  });

  it('unwraps the legacy one-element array', () => {
    expect(readEnvelope([BLOCKED])?.status).toBe('failure');
  });

  it('keeps a missing ERR_CD key absent and a null one null', () => {
    const env = readEnvelope({
      status: 'failure',
      msgs: [
        { INFO: 'x', LVL: 'ERROR' },
        { INFO: 'y', ERR_CD: null, LVL: 'INFO' },
      ],
    });
    expect('errCd' in env!.msgs[0]!).toBe(false);
    expect(env!.msgs[1]!.errCd).toBeNull();
  });

  it('refuses things that are not envelopes', () => {
    for (const v of [null, 'x', 42, {}, { data: {} }, [1, 2]])
      expect(readEnvelope(v)).toBeUndefined();
  });

  it('picks the first ERROR message as the primary one, not an earlier INFO', () => {
    const env = readEnvelope({
      status: 'failure',
      msgs: [
        { INFO: 'task_id: 1', ERR_CD: null, LVL: 'INFO' },
        { INFO: 'zone: blocked', ERR_CD: 'ILLEGAL_OPERATION', LVL: 'ERROR' },
      ],
    });
    expect(primaryMessage(env!.msgs)?.info).toBe('zone: blocked');
  });
});

describe('Dyn cancel classification', () => {
  it('success with task data → canceled, keeping Dyn task status', () => {
    const r = classify(200, {
      status: 'success',
      data: { ...TASK, status: 'running' },
      job_id: 1,
      msgs: [],
    });
    expect(r).toEqual({
      kind: 'outcome',
      outcome: { outcome: 'canceled', task: expect.objectContaining({ status: 'running' }) },
    });
  });

  it('200 + incomplete (denominator #261 capture) → poll the job', () => {
    expect(classify(200, INCOMPLETE_2014)).toEqual({ kind: 'incomplete', jobId: '966935380' });
  });

  it('expired token (fog 2011 capture, HTTP 400) → re-login', () => {
    expect(classify(400, EXPIRED_2011).kind).toBe('auth_expired');
  });

  it.each(['login: inactivity logout', 'login: IP address does not match current session'])(
    '%s → re-login',
    (info) => {
      const body = {
        ...EXPIRED_2011,
        msgs: [{ INFO: info, SOURCE: 'BLL', ERR_CD: 'INVALID_DATA', LVL: 'ERROR' }],
      };
      expect(classify(400, body).kind).toBe('auth_expired');
    },
  );

  it('missing token (go-dynect 2015 capture, HTTP 404) → re-login', () => {
    expect(classify(404, MISSING_TOKEN_2015).kind).toBe('auth_expired');
  });

  // denominator's `running` fixture (HTTP 400) and the jclouds Dyn client's note that Dyn
  // "returns the following as a 200".
  it.each([
    [400, 'running'],
    [200, 'failure'],
  ])(
    '"This session already has a job running" (HTTP %i, %s) → session busy, not expired',
    (http, status) => {
      const busy = {
        INFO: 'token: This session already has a job running',
        SOURCE: 'API-B',
        ERR_CD: 'OPERATION_FAILED',
        LVL: 'ERROR',
      };
      const r = classify(http, { status, data: {}, job_id: 1, msgs: [busy] });
      expect(r).toEqual({
        kind: 'session_busy',
        detail: {
          info: busy.INFO,
          source: 'API-B',
          errCd: 'OPERATION_FAILED',
          lvl: 'ERROR',
        },
      });
    },
  );

  it('NOT_FOUND → not_found with ERR_CD and INFO upstream', () => {
    const r = classify(404, {
      status: 'failure',
      data: {},
      msgs: [{ INFO: 'task: No such task', SOURCE: 'BLL', ERR_CD: 'NOT_FOUND', LVL: 'ERROR' }],
    });
    expect(r).toEqual({
      kind: 'outcome',
      outcome: {
        outcome: 'not_found',
        error: {
          code: 'TASK_NOT_FOUND',
          message: expect.any(String),
          upstream: { code: 'NOT_FOUND', message: 'task: No such task' },
        },
      },
    });
  });

  it('"zone: Operation blocked by current task" → retryable conflict TASK_BLOCKED', () => {
    for (const body of [BLOCKED, [BLOCKED]]) {
      const r = classify(400, body);
      expect(r.kind === 'outcome' && r.outcome).toEqual({
        outcome: 'conflict',
        retryable: true,
        error: {
          code: 'TASK_BLOCKED',
          message: expect.stringContaining('task 39120953'),
          upstream: {
            code: 'ILLEGAL_OPERATION',
            message: 'zone: Operation blocked by current task',
          },
        },
      });
    }
  });

  it('ILLEGAL_OPERATION about anything else → final conflict TASK_NOT_CANCELABLE', () => {
    const r = classify(400, {
      status: 'failure',
      msgs: [
        { INFO: 'task: Task cannot be canceled now', ERR_CD: 'ILLEGAL_OPERATION', LVL: 'ERROR' },
      ],
    });
    expect(r.kind === 'outcome' && r.outcome).toMatchObject({
      outcome: 'conflict',
      error: { code: 'TASK_NOT_CANCELABLE', upstream: { code: 'ILLEGAL_OPERATION' } },
    });
    expect(r.kind === 'outcome' && r.outcome.retryable).toBeUndefined();
  });

  it.each([
    ['task: Task is already canceled', 'canceled'],
    ['task: Task is already cancelled', 'canceled'],
    ['task: Task is already complete', 'complete'],
    ['Task is already completed', 'complete'],
    ['task: Task is already failed', 'failed'],
  ])(
    '%p without task data → TASK_ALREADY_FINISHED, the stated state on the requested task',
    (info, state) => {
      const body = {
        status: 'failure',
        msgs: [{ INFO: info, ERR_CD: 'ILLEGAL_OPERATION', LVL: 'ERROR' }],
      };
      const r = classifyCancel(400, readEnvelope(body), undefined, '77');
      expect(r.kind === 'outcome' && r.outcome).toMatchObject({
        outcome: 'conflict',
        error: { code: 'TASK_ALREADY_FINISHED' },
        task: { id: '77', status: state },
      });
      // Without the requested id, there is no task to name: the code still says it.
      const anonymous = classify(400, body);
      expect(anonymous.kind === 'outcome' && anonymous.outcome.error?.code).toBe(
        'TASK_ALREADY_FINISHED',
      );
      expect(anonymous.kind === 'outcome' && anonymous.outcome.task).toBeUndefined();
    },
  );

  it('HTTP 503 with the SERVICE_UNAVAILABLE envelope → unavailable, not sent (retried)', () => {
    const r = classify(503, {
      status: 'failure',
      msgs: [{ INFO: 'service: down', ERR_CD: 'SERVICE_UNAVAILABLE', LVL: 'ERROR' }],
    });
    expect(r.kind === 'outcome' && r.outcome).toMatchObject({
      outcome: 'unavailable',
      notSent: true,
      error: { code: 'UPSTREAM_UNAVAILABLE', upstream: { code: 'SERVICE_UNAVAILABLE' } },
    });
    const internal = classify(500, {
      status: 'failure',
      msgs: [{ INFO: 'x', ERR_CD: 'INTERNAL_ERROR', LVL: 'ERROR' }],
    });
    // A 500 may come after the work: it is not "certainly not done".
    expect(internal.kind === 'outcome' && internal.outcome.notSent).toBeUndefined();
  });

  it('OPERATION_FAILED (not about the session) → conflict', () => {
    const r = classify(400, {
      status: 'failure',
      msgs: [{ INFO: 'task: cannot cancel', ERR_CD: 'OPERATION_FAILED', LVL: 'ERROR' }],
    });
    expect(r.kind === 'outcome' && r.outcome.outcome).toBe('conflict');
  });

  it.each(['complete', 'failed', 'canceled'])(
    'a task already %s → conflict TASK_ALREADY_FINISHED',
    (status) => {
      const r = classify(400, {
        status: 'failure',
        data: { ...TASK, status },
        msgs: [{ INFO: 'task: done', ERR_CD: 'ILLEGAL_OPERATION', LVL: 'ERROR' }],
      });
      expect(r.kind === 'outcome' && r.outcome).toMatchObject({
        outcome: 'conflict',
        error: { code: 'TASK_ALREADY_FINISHED' },
        task: { status },
      });
    },
  );

  it.each(['INVALID_DATA', 'MISSING_DATA'])('%s not about login → rejected', (code) => {
    const r = classify(400, {
      status: 'failure',
      msgs: [{ INFO: 'task_id: bad', ERR_CD: code, LVL: 'ERROR' }],
    });
    expect(r.kind === 'outcome' && r.outcome).toMatchObject({
      outcome: 'rejected',
      error: { code: 'UPSTREAM_REJECTED', upstream: { code } },
    });
  });

  it('PERMISSION_DENIED → upstream_error naming our credentials', () => {
    const r = classify(400, {
      status: 'failure',
      msgs: [{ INFO: 'task: no', ERR_CD: 'PERMISSION_DENIED', LVL: 'ERROR' }],
    });
    expect(r.kind === 'outcome' && r.outcome).toMatchObject({
      outcome: 'upstream_error',
      error: { code: 'UPSTREAM_AUTH_FAILED' },
    });
  });

  it('SERVICE_UNAVAILABLE and HTTP 5xx → unavailable', () => {
    const su = classify(400, {
      status: 'failure',
      msgs: [{ INFO: 's', ERR_CD: 'SERVICE_UNAVAILABLE', LVL: 'ERROR' }],
    });
    expect(su.kind === 'outcome' && su.outcome.outcome).toBe('unavailable');
    const five = classify(503, undefined);
    expect(five.kind === 'outcome' && five.outcome).toMatchObject({
      outcome: 'unavailable',
      error: { upstream: { code: 'HTTP 503' } },
    });
    const fiveWithBody = classify(500, {
      status: 'failure',
      msgs: [{ INFO: 'x', ERR_CD: 'INTERNAL_ERROR', LVL: 'ERROR' }],
    });
    expect(fiveWithBody.kind === 'outcome' && fiveWithBody.outcome.outcome).toBe('unavailable');
  });

  it('HTTP 429 → rate_limited, 60 s by default, else the upstream Retry-After', () => {
    const plain = classify(429, undefined);
    expect(plain.kind === 'outcome' && plain.outcome).toMatchObject({
      outcome: 'rate_limited',
      retryAfterSeconds: 60,
    });
    const told = classify(429, undefined, 7);
    expect(told.kind === 'outcome' && told.outcome.retryAfterSeconds).toBe(7);
    const inBody = classify(400, {
      status: 'failure',
      msgs: [{ INFO: 'r', ERR_CD: 'RATE_LIMIT_EXCEEDED', LVL: 'ERROR' }],
    });
    expect(inBody.kind === 'outcome' && inBody.outcome).toMatchObject({
      outcome: 'rate_limited',
      retryAfterSeconds: 60,
    });
  });

  it('a message without ERR_CD → upstream_error carrying its INFO', () => {
    const r = classify(400, {
      status: 'failure',
      msgs: [{ INFO: 'task: odd', SOURCE: 'BLL', LVL: 'ERROR' }],
    });
    expect(r.kind === 'outcome' && r.outcome).toMatchObject({
      outcome: 'upstream_error',
      error: { code: 'UPSTREAM_FAULT', upstream: { code: 'UNKNOWN', message: 'task: odd' } },
    });
  });

  it('ERR_CD null on the only ERROR line → upstream_error', () => {
    const r = classify(400, {
      status: 'failure',
      msgs: [{ INFO: 'x: y', ERR_CD: null, LVL: 'ERROR' }],
    });
    expect(r.kind === 'outcome' && r.outcome.outcome).toBe('upstream_error');
  });

  it('a non-JSON 2xx/4xx body → upstream_error', () => {
    const r = classify(200, undefined);
    expect(r.kind === 'outcome' && r.outcome).toMatchObject({
      outcome: 'upstream_error',
      error: { code: 'UPSTREAM_BAD_RESPONSE' },
    });
  });

  it('incomplete with job_id null → accepted but unconfirmable: timeout JOB_NOT_CONFIRMED', () => {
    for (const body of [
      { status: 'incomplete', data: null },
      { status: 'incomplete', data: null, job_id: null },
    ]) {
      const r = classify(200, body);
      expect(r.kind === 'outcome' && r.outcome).toMatchObject({
        outcome: 'timeout',
        error: { code: 'JOB_NOT_CONFIRMED', message: expect.stringMatching(/accepted/) },
      });
    }
  });

  it('success with data: null and job_id: null → canceled without a task', () => {
    expect(classify(200, { status: 'success', data: null, job_id: null, msgs: [] })).toEqual({
      kind: 'outcome',
      outcome: { outcome: 'canceled' },
    });
  });
});

describe('Dyn job poll classification', () => {
  const poll = (status: number, body: unknown) =>
    classifyJobPoll('4340980460', status, readEnvelope(body), undefined, '39120953');

  it('"job: No such job" (HTTP 404) → timeout JOB_NOT_CONFIRMED, never not_found', () => {
    const r = poll(404, {
      status: 'failure',
      data: {},
      job_id: 1,
      msgs: [{ INFO: 'job: No such job', SOURCE: 'BLL', ERR_CD: 'NOT_FOUND', LVL: 'ERROR' }],
    });
    expect(r).toEqual({
      kind: 'outcome',
      outcome: {
        outcome: 'timeout',
        error: {
          code: 'JOB_NOT_CONFIRMED',
          message: expect.stringContaining('job 4340980460'),
          upstream: { code: 'NOT_FOUND', message: 'job: No such job' },
        },
      },
    });
  });

  it("the job's own answer about the task is the cancel's answer", () => {
    const gone = poll(404, {
      status: 'failure',
      msgs: [{ INFO: 'task: No such task', ERR_CD: 'NOT_FOUND', LVL: 'ERROR' }],
    });
    expect(gone.kind === 'outcome' && gone.outcome.error?.code).toBe('TASK_NOT_FOUND');
    const done = poll(200, { status: 'success', data: TASK, job_id: 1, msgs: [] });
    expect(done.kind === 'outcome' && done.outcome.outcome).toBe('canceled');
    expect(poll(200, INCOMPLETE_2014)).toEqual({ kind: 'incomplete', jobId: '966935380' });
  });
});

describe('Dyn login classification', () => {
  it('reads the token of the go-dynect 2017 capture', () => {
    const body = {
      status: 'success',
      data: {
        token:
          '+cG++GbemK1hoYxrvq2SFGz00mY78zRZhWntTbLxYF42k22o7w/d0Vk+sEvJayq5jSo8ivphahLFmZV8b99TJMRNZFcpFC0NyYeyL/7l8Grsdpplh6l1pMmkInSe3mXVuvgKS5cVSUN5Z8e6DVf9K0Jz/aLZBeL70Qc5VQktaKc=',
        version: '3.7.9',
      },
      job_id: 4340980452,
      msgs: [{ INFO: 'login: Login successful', SOURCE: 'BLL', ERR_CD: null, LVL: 'INFO' }],
    };
    const r = classifyLogin(200, readEnvelope(body));
    expect(r.ok && r.token).toBe(body.data.token);
  });

  it('a refused login → upstream_error about our credentials, flagged as bad credentials', () => {
    const body = {
      status: 'failure',
      job_id: 12345678,
      msgs: [
        { INFO: 'login: Invalid credentials', SOURCE: 'BLL', ERR_CD: 'INVALID_DATA', LVL: 'ERROR' },
        { INFO: 'login: Login failed', SOURCE: 'BLL', ERR_CD: null, LVL: 'INFO' },
      ],
      data: {},
    };
    const r = classifyLogin(400, readEnvelope(body));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.badCredentials).toBe(true);
    expect(r.outcome).toMatchObject({
      outcome: 'upstream_error',
      error: { code: 'UPSTREAM_AUTH_FAILED', upstream: { code: 'INVALID_DATA' } },
    });
  });

  it('a 503 or 429 at login is not a credentials problem', () => {
    const down = classifyLogin(503, undefined);
    expect(!down.ok && down.badCredentials).toBe(false);
    expect(!down.ok && down.outcome.outcome).toBe('unavailable');
    const limited = classifyLogin(429, undefined);
    expect(!limited.ok && limited.outcome.outcome).toBe('rate_limited');
  });
});

describe('xmlDepth (SOAP answers deeper than 64 levels are refused)', () => {
  it('measures nesting, ignoring declarations, comments and empty elements', () => {
    expect(xmlDepth('<?xml version="1.0"?><a><b/><c><d>x</d></c></a>')).toBe(3);
    expect(xmlDepth('<!-- <x><y> --><a></a>')).toBe(1);
    expect(xmlDepth(`${'<a>'.repeat(100)}${'</a>'.repeat(100)}`)).toBe(100);
  });

  it('stays linear on hostile input', () => {
    const started = performance.now();
    xmlDepth(`${'<'.repeat(256 * 1024)}>`);
    xmlDepth('<a '.repeat(100_000));
    // Generous: a quadratic scan would take minutes here.
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});
