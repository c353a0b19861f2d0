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
interface Case {
  name: string;
  behaviour: DynBehaviour;
  status: number;
  outcome: string;
  code?: string;
  upstreamCode?: string;
  retryAfter?: string;
  /** A Fault's ErrorResponse carries no task, so "already finished" is only known as a refusal. */
  faultCode?: string;
}

const CASES: Case[] = [
  { name: 'success', behaviour: { kind: 'ok' }, status: 200, outcome: 'canceled' },
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
    faultCode: 'TASK_NOT_CANCELABLE',
  },
  {
    name: 'ILLEGAL_OPERATION',
    behaviour: { kind: 'illegal-operation' },
    status: 409,
    outcome: 'conflict',
    code: 'TASK_NOT_CANCELABLE',
    upstreamCode: 'ILLEGAL_OPERATION',
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
    name: 'HTTP 429 with Retry-After',
    behaviour: { kind: 'rate-limited', retryAfterSeconds: 9 },
    status: 429,
    outcome: 'rate_limited',
    code: 'UPSTREAM_RATE_LIMITED',
    retryAfter: '9',
  },
  {
    name: 'HTTP 429 without Retry-After',
    behaviour: { kind: 'rate-limited' },
    status: 429,
    outcome: 'rate_limited',
    code: 'UPSTREAM_RATE_LIMITED',
    retryAfter: '60',
  },
  {
    name: 'token expired once',
    behaviour: { kind: 'token-expired-once' },
    status: 200,
    outcome: 'canceled',
  },
  {
    name: 'token expired on every session',
    behaviour: { kind: 'token-expired-always' },
    status: 502,
    outcome: 'upstream_error',
    code: 'UPSTREAM_AUTH_FAILED',
    upstreamCode: 'INVALID_DATA',
  },
  {
    name: 'session already has a job running',
    behaviour: { kind: 'session-busy' },
    status: 502,
    outcome: 'upstream_error',
    code: 'UPSTREAM_AUTH_FAILED',
    upstreamCode: 'OPERATION_FAILED',
  },
  {
    name: 'job (307 / incomplete), then done',
    behaviour: { kind: 'redirect-job', polls: 2 },
    status: 200,
    outcome: 'canceled',
  },
  {
    name: '200 incomplete, then done',
    behaviour: { kind: 'incomplete-job', polls: 1 },
    status: 200,
    outcome: 'canceled',
  },
  {
    name: 'job never finishes',
    behaviour: { kind: 'job-never-finishes' },
    status: 504,
    outcome: 'timeout',
    code: 'JOB_NOT_CONFIRMED',
  },
  {
    name: 'slower than the deadline',
    behaviour: { kind: 'slow', delayMs: 10_000 },
    status: 504,
    outcome: 'timeout',
    code: 'UPSTREAM_TIMEOUT',
  },
];

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
    jobTimeoutMs: 400,
    rateLimitPerSecond: 10_000,
    // This suite is about the mapping; retries and the breaker have their own suite.
    retry: { attempts: 1 },
    circuitBreaker: { failureThreshold: 1000 },
  };
  gateway = await startTestGateway({
    server: { requestTimeoutMs: 2000 },
    providers: {
      'dns-rest': { type: 'dyn-rest', baseUrl: rest.baseUrl, ...account },
      'dns-soap': { type: 'dyn-soap', endpoint: soap.endpoint, ...account },
    },
    routes: {
      rest: { provider: 'dns-rest', timeoutMs: 600 },
      soap: { provider: 'dns-soap', timeoutMs: 600 },
    },
  });
});

afterEach(async () => {
  await gateway.close();
  await rest.close();
  await soap.close();
});

async function run(transport: Transport, c: Case, taskId: number) {
  if (transport === 'rest') rest.setBehaviour(taskId, c.behaviour);
  else soap.setBehaviour(taskId, c.behaviour);
  if (transport === 'soap-faults') soap.setFaultMode('always-fault');
  const res = await postJson(`${gateway.url}/cancel`, {
    target: transport === 'rest' ? 'rest' : 'soap',
    taskId,
  });
  expectUnifiedShape(res.body, res.status);
  return res;
}

describe.each<Transport>(['rest', 'soap', 'soap-faults'])('%s', (transport) => {
  it.each(CASES)('$name', async (c) => {
    const res = await run(transport, c, 39120953);
    expect(res.status).toBe(c.status);
    expect(res.body.outcome).toBe(c.outcome);
    expect(res.body.protocol).toBe(transport === 'rest' ? 'dyn-rest' : 'dyn-soap');
    const code = transport === 'soap-faults' ? (c.faultCode ?? c.code) : c.code;
    if (code === undefined) {
      expect(res.body.error).toBeUndefined();
      expect(res.body.task).toMatchObject({ id: '39120953', status: 'canceled', blocking: true });
    } else {
      expect(res.body.error.code).toBe(code);
    }
    if (c.upstreamCode !== undefined) expect(res.body.error.upstream.code).toBe(c.upstreamCode);
    if (c.retryAfter !== undefined) expect(res.headers.get('retry-after')).toBe(c.retryAfter);
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
  // Cases that hold a session or back the provider off are left to the table above.
  const skip = new Set(['slow', 'job-never-finishes', 'rate-limited']);
  let taskId = 700;
  for (const c of CASES.filter((k) => !skip.has(k.behaviour.kind))) {
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
