import type { DynBehaviour } from '../../src/simulators/dyn-backend';
import { startDynRestSimulator, type DynRestSimulator } from '../../src/simulators/dyn-rest';
import { startDynSoapSimulator, type DynSoapSimulator } from '../../src/simulators/dyn-soap';
import { postJson, startTestGateway, type TestGateway } from '../helpers/gateway';
import { expectUnifiedShape } from '../helpers/shape';

/**
 * One table of Dyn answers, run against the REST provider, the SOAP provider (failures as
 * `status: failure`, since it sends fault_incompat 1) and the SOAP provider facing a Dyn that
 * answers every failure with an HTTP 500 Fault. The back end is the same, so the unified result
 * must be too.
 */
interface Expectation {
  status: number;
  outcome: string;
  code?: string;
  upstreamCode?: string;
  retryAfter?: string;
  /** Defaults to what the outcome implies (rate_limited, unavailable, timeout). */
  retryable?: boolean;
  /** A canceled answer that carries no task (Dyn's `data` was null or named another task). */
  noTask?: boolean;
}

interface Case extends Expectation {
  name: string;
  behaviour: DynBehaviour;
  /** Where SOAP (which has no redirects) answers otherwise, for both SOAP transports. */
  soap?: Expectation;
}

const CANCELED: Expectation = { status: 200, outcome: 'canceled' };
const BUSY: Expectation = {
  status: 503,
  outcome: 'unavailable',
  code: 'UPSTREAM_BUSY',
  upstreamCode: 'OPERATION_FAILED',
  retryable: true,
};
const NOT_CONFIRMED: Expectation = {
  status: 504,
  outcome: 'timeout',
  code: 'JOB_NOT_CONFIRMED',
  retryable: true,
};
const BLOCKED: Expectation = {
  status: 409,
  outcome: 'conflict',
  code: 'TASK_BLOCKED',
  upstreamCode: 'ILLEGAL_OPERATION',
  retryable: true,
};

const CASES: Case[] = [
  { name: 'success', behaviour: { kind: 'ok' }, ...CANCELED },
  {
    name: 'NOT_FOUND',
    behaviour: { kind: 'not-found' },
    status: 404,
    outcome: 'not_found',
    code: 'TASK_NOT_FOUND',
    upstreamCode: 'NOT_FOUND',
  },
  {
    name: 'task already complete',
    behaviour: { kind: 'already-complete' },
    status: 409,
    outcome: 'conflict',
    code: 'TASK_ALREADY_FINISHED',
    upstreamCode: 'ILLEGAL_OPERATION',
    retryable: false,
  },
  {
    name: 'ILLEGAL_OPERATION',
    behaviour: { kind: 'illegal-operation' },
    status: 409,
    outcome: 'conflict',
    code: 'TASK_NOT_CANCELABLE',
    upstreamCode: 'ILLEGAL_OPERATION',
    retryable: false,
  },
  { name: 'zone blocked by current task', behaviour: { kind: 'blocked' }, ...BLOCKED },
  {
    name: 'zone blocked, in a one-element array',
    behaviour: { kind: 'blocked', arrayWrapped: true },
    ...BLOCKED,
  },
  {
    name: 'INVALID_DATA',
    behaviour: { kind: 'invalid-data' },
    status: 422,
    outcome: 'rejected',
    code: 'UPSTREAM_REJECTED',
    upstreamCode: 'INVALID_DATA',
  },
  {
    name: 'PERMISSION_DENIED',
    behaviour: { kind: 'permission-denied' },
    status: 502,
    outcome: 'upstream_error',
    code: 'UPSTREAM_AUTH_FAILED',
    upstreamCode: 'PERMISSION_DENIED',
  },
  {
    name: 'SERVICE_UNAVAILABLE',
    behaviour: { kind: 'service-unavailable' },
    status: 503,
    outcome: 'unavailable',
    code: 'UPSTREAM_UNAVAILABLE',
    upstreamCode: 'SERVICE_UNAVAILABLE',
  },
  {
    name: 'HTTP 503 with the SERVICE_UNAVAILABLE envelope',
    behaviour: { kind: 'service-unavailable', httpStatus: 503 },
    status: 503,
    outcome: 'unavailable',
    code: 'UPSTREAM_UNAVAILABLE',
    upstreamCode: 'SERVICE_UNAVAILABLE',
  },
  {
    name: 'HTTP 503 (HTML)',
    behaviour: { kind: 'unavailable' },
    status: 503,
    outcome: 'unavailable',
    code: 'UPSTREAM_UNAVAILABLE',
    upstreamCode: 'HTTP 503',
  },
  {
    name: 'HTTP 500 garbage',
    behaviour: { kind: 'garbage-500' },
    status: 503,
    outcome: 'unavailable',
    code: 'UPSTREAM_UNAVAILABLE',
    upstreamCode: 'HTTP 500',
  },
  {
    name: 'missing ERR_CD',
    behaviour: { kind: 'missing-err-cd' },
    status: 502,
    outcome: 'upstream_error',
    code: 'UPSTREAM_FAULT',
    upstreamCode: 'UNKNOWN',
  },
  {
    name: 'an error code Dyn never documented',
    behaviour: { kind: 'unknown-code' },
    status: 502,
    outcome: 'upstream_error',
    code: 'UPSTREAM_FAULT',
    upstreamCode: 'SOMETHING_NEW',
  },
  {
    name: 'malformed body',
    behaviour: { kind: 'malformed' },
    status: 502,
    outcome: 'upstream_error',
    code: 'UPSTREAM_BAD_RESPONSE',
  },
  {
    name: 'answer larger than maxResponseBytes',
    behaviour: { kind: 'oversized' },
    status: 502,
    outcome: 'upstream_error',
    code: 'UPSTREAM_RESPONSE_TOO_LARGE',
  },
  {
    name: 'HTTP 429, status only (as Dyn sends it)',
    behaviour: { kind: 'rate-limited' },
    status: 429,
    outcome: 'rate_limited',
    code: 'UPSTREAM_RATE_LIMITED',
    upstreamCode: 'HTTP 429',
    retryAfter: '60',
  },
  {
    name: 'HTTP 429 with Retry-After',
    behaviour: { kind: 'rate-limited', retryAfterSeconds: 9 },
    status: 429,
    outcome: 'rate_limited',
    code: 'UPSTREAM_RATE_LIMITED',
    retryAfter: '9',
  },
  {
    name: 'HTTP 429 with a RATE_LIMIT_EXCEEDED body',
    behaviour: { kind: 'rate-limited', withBody: true },
    status: 429,
    outcome: 'rate_limited',
    code: 'UPSTREAM_RATE_LIMITED',
    retryAfter: '60',
  },
  { name: 'token expired once', behaviour: { kind: 'token-expired-once' }, ...CANCELED },
  {
    name: 'token expired on every session',
    behaviour: { kind: 'token-expired-always' },
    status: 502,
    outcome: 'upstream_error',
    code: 'UPSTREAM_AUTH_FAILED',
    upstreamCode: 'INVALID_DATA',
  },
  {
    name: 'session busy once (HTTP 400, status running)',
    behaviour: { kind: 'session-busy', times: 1 },
    ...CANCELED,
  },
  {
    name: 'session busy once (HTTP 200, status failure)',
    behaviour: { kind: 'session-busy', times: 1, style: 'failure-200' },
    ...CANCELED,
  },
  {
    name: 'session busy on every session (HTTP 400, status running)',
    behaviour: { kind: 'session-busy' },
    ...BUSY,
  },
  {
    name: 'session busy on every session (HTTP 200, status failure)',
    behaviour: { kind: 'session-busy', style: 'failure-200' },
    ...BUSY,
  },
  {
    name: 'job (307 / incomplete), then done',
    behaviour: { kind: 'redirect-job', polls: 2 },
    ...CANCELED,
  },
  {
    name: 'job polls answered with 307 again, then done',
    behaviour: { kind: 'redirect-job', polls: 2, pollAnswer: 'redirect' },
    ...CANCELED,
  },
  {
    name: 'job poll answered with a 307 without Location',
    behaviour: { kind: 'redirect-job', polls: 1, pollAnswer: 'redirect-without-location' },
    ...NOT_CONFIRMED,
    upstreamCode: 'HTTP 307',
    // SOAP has no redirect: its poll says `incomplete`, then the job's answer.
    soap: CANCELED,
  },
  {
    name: '200 incomplete, then done',
    behaviour: { kind: 'incomplete-job', polls: 1 },
    ...CANCELED,
  },
  {
    name: 'incomplete with job_id null',
    behaviour: { kind: 'incomplete-without-job' },
    ...NOT_CONFIRMED,
  },
  {
    name: 'job poll answered "job: No such job"',
    behaviour: { kind: 'job-lost' },
    ...NOT_CONFIRMED,
    upstreamCode: 'NOT_FOUND',
  },
  {
    name: 'job never finishes',
    behaviour: { kind: 'job-never-finishes' },
    ...NOT_CONFIRMED,
    upstreamCode: 'JOB_INCOMPLETE',
  },
  {
    name: 'success with data: null and job_id: null',
    behaviour: { kind: 'null-fields' },
    ...CANCELED,
    noTask: true,
  },
  {
    name: 'success naming another task',
    behaviour: { kind: 'other-task', taskId: '1' },
    ...CANCELED,
    noTask: true,
  },
  {
    name: 'success sent chunked, without Content-Length',
    behaviour: { kind: 'chunked' },
    ...CANCELED,
  },
  {
    name: 'NOT_FOUND sent chunked, without Content-Length',
    behaviour: { kind: 'chunked', then: { kind: 'not-found' } },
    status: 404,
    outcome: 'not_found',
    code: 'TASK_NOT_FOUND',
    upstreamCode: 'NOT_FOUND',
  },
  {
    name: 'slower than the deadline',
    behaviour: { kind: 'slow', delayMs: 10_000 },
    status: 504,
    outcome: 'timeout',
    code: 'UPSTREAM_TIMEOUT',
  },
];

const RETRYABLE_OUTCOMES = new Set(['rate_limited', 'unavailable', 'timeout']);

type Transport = 'rest' | 'soap' | 'soap-faults';

let rest: DynRestSimulator;
let soap: DynSoapSimulator;
let gateway: TestGateway;

beforeEach(async () => {
  rest = await startDynRestSimulator();
  soap = await startDynSoapSimulator();
  const account = {
    customerName: 'acme',
    userName: 'api-user',
    password: 'sim-password',
    jobPollIntervalMs: 20,
    // Far inside the route deadline below, and far above a loaded machine's few polls.
    jobTimeoutMs: 1000,
    rateLimitPerSecond: 10_000,
    // This suite is about the mapping; retries and the breaker have their own suite.
    retry: { attempts: 1 },
    circuitBreaker: { failureThreshold: 1000 },
  };
  gateway = await startTestGateway({
    server: { requestTimeoutMs: 6000 },
    // No background confirmation: a timed-out case would keep a session and poll in the
    // background while the next cases run (reconcile.test.ts covers it).
    state: { reconcileSeconds: 0 },
    providers: {
      'dns-rest': { type: 'dyn-rest', baseUrl: rest.baseUrl, ...account },
      'dns-soap': { type: 'dyn-soap', endpoint: soap.endpoint, ...account },
      'dns-rest-retried': {
        type: 'dyn-rest',
        baseUrl: rest.baseUrl,
        ...account,
        retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 1 },
      },
      'dns-soap-retried': {
        type: 'dyn-soap',
        endpoint: soap.endpoint,
        ...account,
        retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 1 },
      },
    },
    // Deadlines far above what three logins and three cancels take on a loaded CI machine: only
    // the 'slow' case is meant to reach one, and it goes through the short routes.
    routes: {
      rest: { provider: 'dns-rest', timeoutMs: 5000 },
      soap: { provider: 'dns-soap', timeoutMs: 5000 },
      'rest-short': { provider: 'dns-rest', timeoutMs: 600 },
      'soap-short': { provider: 'dns-soap', timeoutMs: 600 },
      'rest-retried': { provider: 'dns-rest-retried', timeoutMs: 5000 },
      'soap-retried': { provider: 'dns-soap-retried', timeoutMs: 5000 },
    },
  });
});

afterEach(async () => {
  await gateway.close(); // a test may have closed it already; closing again is a no-op
  await rest.close();
  await soap.close();
});

async function run(transport: Transport, c: Case, taskId: number) {
  if (transport === 'rest') rest.setBehaviour(taskId, c.behaviour);
  else soap.setBehaviour(taskId, c.behaviour);
  if (transport === 'soap-faults') soap.setFaultMode('always-fault');
  const short = c.behaviour.kind === 'slow' ? '-short' : '';
  const res = await postJson(`${gateway.url}/cancel`, {
    target: `${transport === 'rest' ? 'rest' : 'soap'}${short}`,
    taskId,
  });
  expectUnifiedShape(res.body, res.status);
  return res;
}

const expected = (transport: Transport, c: Case): Expectation =>
  transport !== 'rest' && c.soap !== undefined ? c.soap : c;

describe.each<Transport>(['rest', 'soap', 'soap-faults'])('%s', (transport) => {
  it.each(CASES)('$name', async (c) => {
    const want = expected(transport, c);
    const res = await run(transport, c, 39120953);
    expect(res.status).toBe(want.status);
    expect(res.body.outcome).toBe(want.outcome);
    expect(res.body.retryable).toBe(want.retryable ?? RETRYABLE_OUTCOMES.has(want.outcome));
    expect(res.body.protocol).toBe(transport === 'rest' ? 'dyn-rest' : 'dyn-soap');
    if (want.code === undefined) {
      expect(res.body.error).toBeUndefined();
      if (want.noTask === true) expect(res.body.task).toBeUndefined();
      else
        expect(res.body.task).toMatchObject({ id: '39120953', status: 'canceled', blocking: true });
    } else {
      expect(res.body.error.code).toBe(want.code);
    }
    if (want.upstreamCode !== undefined)
      expect(res.body.error.upstream.code).toBe(want.upstreamCode);
    if (want.retryAfter !== undefined) expect(res.headers.get('retry-after')).toBe(want.retryAfter);
  });

  it('keeps the task of an "already finished" answer, whatever form the failure took', async () => {
    const res = await run(transport, CASES[2]!, 39120953);
    expect(res.body.task).toMatchObject({ id: '39120953', status: 'complete' });
  });

  it('logs a warning and drops the task when Dyn answers about another task', async () => {
    const c: Case = { name: 'other', behaviour: { kind: 'other-task', taskId: '1' }, ...CANCELED };
    const res = await run(transport, c, 39120954);
    expect(res.body.task).toBeUndefined();
    await gateway.logs.waitFor(
      (l) => l.msg === 'Dyn answered about another task; its task is dropped' && l.level === 'warn',
    );
    const line = gateway.logs.lines().find((l) => l.answeredTaskId === '1');
    expect(line).toMatchObject({ taskId: '39120954', outcome: 'canceled' });
  });

  it('answers canceled, not conflict, to a repeat after a timeout whose cancel went through', async () => {
    const taskId = 39120955;
    const first = await run(
      transport,
      { name: 'never', behaviour: { kind: 'job-never-finishes' }, ...NOT_CONFIRMED },
      taskId,
    );
    expect(first.body.error.code).toBe('JOB_NOT_CONFIRMED');
    // The job had canceled the task: Dyn now says "already canceled".
    const again = await run(
      transport,
      { name: 'ok', behaviour: { kind: 'ok' }, ...CANCELED },
      taskId,
    );
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({
      ok: true,
      outcome: 'canceled',
      retryable: false,
      task: { id: String(taskId), status: 'canceled' },
      attempts: [{ outcome: 'conflict', errorCode: 'TASK_ALREADY_FINISHED' }],
    });
    expect(again.body.error).toBeUndefined();
    expect(again.body.replayed).toBeUndefined();
    // Remembered as a confirmed cancel: a third call is replayed without reaching Dyn.
    const cancels = (): number =>
      transport === 'rest'
        ? rest.callsTo('DELETE', `/REST/Task/${taskId}/`).length
        : soap.callsTo('CancelTask').filter((call) => call.args.task_id === String(taskId)).length;
    const sent = cancels();
    const third = await run(
      transport,
      { name: 'ok', behaviour: { kind: 'ok' }, ...CANCELED },
      taskId,
    );
    expect(third.body).toMatchObject({ outcome: 'canceled', replayed: true });
    expect(cancels()).toBe(sent);
  });

  it('keeps a busy session and logs it out only at shutdown, never leaking it', async () => {
    const res = await run(
      transport,
      { name: 'busy', behaviour: { kind: 'session-busy' }, ...BUSY },
      39120956,
    );
    expect(res.body.error.code).toBe('UPSTREAM_BUSY');
    const logouts = (): number =>
      transport === 'rest'
        ? rest.callsTo('DELETE', '/REST/Session').length
        : soap.callsTo('SessionLogout').length;
    const sim = transport === 'rest' ? rest : soap;
    // Three sessions were tried, each busy; none was dropped.
    expect(logouts()).toBe(0);
    expect(sim.activeSessions()).toBe(3);
    await gateway.close();
    expect(logouts()).toBe(3);
    expect(sim.activeSessions()).toBe(0);
  });
});

describe.each<Transport>(['rest', 'soap', 'soap-faults'])('%s, with retries', (transport) => {
  it('retries SERVICE_UNAVAILABLE on the same provider: the cancel certainly did not happen', async () => {
    const taskId = 39120957;
    const behaviour: DynBehaviour = { kind: 'service-unavailable', httpStatus: 503 };
    if (transport === 'rest') rest.setBehaviour(taskId, behaviour);
    else soap.setBehaviour(taskId, behaviour);
    if (transport === 'soap-faults') soap.setFaultMode('always-fault');
    const res = await postJson(`${gateway.url}/cancel`, {
      target: transport === 'rest' ? 'rest-retried' : 'soap-retried',
      taskId,
    });
    expectUnifiedShape(res.body, res.status);
    expect(res.status).toBe(503);
    expect(res.body.attempts).toEqual([
      expect.objectContaining({ outcome: 'unavailable', errorCode: 'UPSTREAM_UNAVAILABLE' }),
      expect.objectContaining({ outcome: 'unavailable', errorCode: 'UPSTREAM_UNAVAILABLE' }),
    ]);
    const sent =
      transport === 'rest'
        ? rest.callsTo('DELETE', `/REST/Task/${taskId}/`)
        : soap.callsTo('CancelTask');
    expect(sent).toHaveLength(2);
  });
});

it('gives the same result for the same answer over REST and SOAP', async () => {
  const essence = (res: { status: number; body: Record<string, any> }) => ({
    status: res.status,
    ok: res.body.ok,
    outcome: res.body.outcome,
    retryable: res.body.retryable,
    taskId: res.body.taskId,
    task: res.body.task,
    code: res.body.error?.code,
    upstream: res.body.error?.upstream,
  });
  // Cases that hold a session or back the provider off are left to the table above, as are the
  // ones where SOAP (without redirects) answers otherwise.
  const skip = new Set(['slow', 'job-never-finishes', 'rate-limited']);
  let taskId = 700;
  for (const c of CASES.filter((k) => !skip.has(k.behaviour.kind) && k.soap === undefined)) {
    // A fresh task id per case: the gateway remembers confirmed cancels.
    taskId++;
    const viaRest = essence(await run('rest', c, taskId));
    const viaSoap = essence(await run('soap', c, taskId));
    expect({ case: c.name, ...viaSoap }).toEqual({ case: c.name, ...viaRest });
    expect(viaRest.outcome).toBe(c.outcome);
    rest.reset();
    soap.reset();
  }
});
