import { parseConfig } from '../../src/config/load';
import type { Answer } from '../../src/core/result';
import { createMemoryStore } from '../../src/state/memory-store';
import { confirmCancel } from '../../src/routing/confirm';
import { dispatchCancel, dispatchRead } from '../../src/routing/dispatch';
import { buildRuntime, type Runtime } from '../../src/routing/runtime';
import { systemClock } from '../../src/resilience/clock';
import { createRateWindows } from '../../src/resilience/rate-limit';
import type { DynBehaviour } from '../../src/simulators/dyn-backend';
import { startDynRestSimulator, type DynRestSimulator } from '../../src/simulators/dyn-rest';
import { startDynSoapSimulator, type DynSoapSimulator } from '../../src/simulators/dyn-soap';
import {
  startMethodcallSimulator,
  type MethodcallSimulator,
} from '../../src/simulators/methodcall';
import { trace } from '@opentelemetry/api';
import { captureLogger } from '../helpers/gateway';

/**
 * Task reads and confirmations of timed-out cancels, provider by provider, through the routing
 * dispatcher and a runtime built from a real config, against the real simulators on loopback.
 */

let rest: DynRestSimulator;
let soap: DynSoapSimulator;
let methodcall: MethodcallSimulator;
let runtime: Runtime;
const { logger } = captureLogger();
let seq = 0;

const ACCOUNT = {
  customerName: 'acme',
  userName: 'api-user',
  password: 'sim-password',
  jobPollIntervalMs: 20,
  jobTimeoutMs: 150,
  rateLimitPerSecond: 10_000,
  retry: { attempts: 1 },
  circuitBreaker: { failureThreshold: 1000 },
};

beforeAll(async () => {
  rest = await startDynRestSimulator();
  soap = await startDynSoapSimulator();
  methodcall = await startMethodcallSimulator();
  const config = {
    providers: {
      'dns-rest': { type: 'dyn-rest', baseUrl: rest.baseUrl, ...ACCOUNT },
      'dns-soap': { type: 'dyn-soap', endpoint: soap.endpoint, ...ACCOUNT },
      'dns-rest-one': { type: 'dyn-rest', baseUrl: rest.baseUrl, ...ACCOUNT, maxSessions: 1 },
      // A 429 makes a Dyn provider back off for 60 s: these two take it for the others.
      'dns-rest-429': { type: 'dyn-rest', baseUrl: rest.baseUrl, ...ACCOUNT },
      'dns-soap-429': { type: 'dyn-soap', endpoint: soap.endpoint, ...ACCOUNT },
      warehouse: {
        type: 'methodcall',
        url: methodcall.taskUrl,
        retry: { attempts: 1 },
        circuitBreaker: { failureThreshold: 1000 },
      },
    },
    routes: {
      rest: { provider: 'dns-rest', timeoutMs: 2000 },
      soap: { provider: 'dns-soap', timeoutMs: 2000 },
      'rest-one': { provider: 'dns-rest-one', timeoutMs: 300 },
      // Holds the only session well past any read of `rest-one`, however slow the machine.
      'rest-one-long': { provider: 'dns-rest-one', timeoutMs: 30_000 },
      'rest-429': { provider: 'dns-rest-429', timeoutMs: 2000 },
      'soap-429': { provider: 'dns-soap-429', timeoutMs: 2000 },
      'rest-then-soap': { provider: 'dns-rest', fallback: ['dns-soap'], timeoutMs: 2000 },
      'rest-then-warehouse': { provider: 'dns-rest', fallback: ['warehouse'], timeoutMs: 2000 },
      warehouse: { provider: 'warehouse', timeoutMs: 300 },
      'warehouse-then-rest': { provider: 'warehouse', fallback: ['dns-rest'], timeoutMs: 2000 },
    },
  };
  const loaded = parseConfig(JSON.stringify(config), 'dyn-read.yaml', {});
  if (!loaded.ok) throw new Error(loaded.problems.join('\n'));
  runtime = await buildRuntime(loaded.value, {
    logger,
    projectRoot: process.cwd(),
    store: createMemoryStore(1000),
    clock: systemClock,
    rateWindows: createRateWindows(systemClock),
    userAgent: 'cancel-gateway/test',
    env: {},
    tracer: trace.getTracer('test'),
    keepJobSessionsMs: 60_000,
  });
});

afterAll(async () => {
  await runtime.close(0);
  await Promise.all([rest.close(), soap.close(), methodcall.close()]);
});

afterEach(() => {
  rest.releaseHeld();
  soap.releaseHeld();
  soap.setFaultMode('honour-flag');
});

/** A task id no other test uses, so the simulators' per-task scripts never cross. */
const nextTask = (): string => String(50_000 + ++seq);

const options = { log: logger, clock: systemClock };
const read = (target: string, taskId: string): Promise<Answer> =>
  dispatchRead(runtime, { requestId: `r-${taskId}`, target, taskId }, options);
const cancel = (target: string, taskId: string): Promise<Answer> =>
  dispatchCancel(runtime, { requestId: `c-${taskId}`, target, taskId }, options);

type Transport = 'rest' | 'soap' | 'soap-faults';
const TRANSPORTS: Transport[] = ['rest', 'soap', 'soap-faults'];

/** Scripts a task on the simulator behind `transport`; returns its route. */
function script(transport: Transport, taskId: string, behaviour: DynBehaviour): string {
  if (transport === 'rest') {
    rest.setBehaviour(taskId, behaviour);
    return 'rest';
  }
  soap.setBehaviour(taskId, behaviour);
  if (transport === 'soap-faults') soap.setFaultMode('always-fault');
  return 'soap';
}

/** Requests the simulator behind `transport` saw for this task (reads and cancels). */
function taskCalls(transport: Transport, taskId: string, kind: 'read' | 'cancel'): number {
  if (transport === 'rest') {
    const method = kind === 'read' ? 'GET' : 'DELETE';
    return rest.callsTo(method, `/REST/Task/${taskId}`).length;
  }
  const op = kind === 'read' ? 'GetOneTask' : 'CancelTask';
  return soap.callsTo(op).filter((c) => c.args.task_id === taskId).length;
}

describe.each(TRANSPORTS)('a task read over %s', (transport) => {
  it.each(['ready', 'running', 'waiting', 'complete', 'failed', 'canceled', 'stalled'] as const)(
    'finds a task in status %s (ok, the unified task, one attempt), canceling nothing',
    async (status) => {
      const taskId = nextTask();
      const target = script(transport, taskId, { kind: 'status', status });
      const { body } = await read(target, taskId);
      expect(body).toMatchObject({
        ok: true,
        outcome: 'found',
        retryable: false,
        taskId,
        task: { id: taskId, status, name: 'ProvisionZone', zone: 'example.com', blocking: true },
        attempts: [{ outcome: 'found' }],
      });
      expect(body.error).toBeUndefined();
      expect(taskCalls(transport, taskId, 'read')).toBe(1);
      expect(taskCalls(transport, taskId, 'cancel')).toBe(0);
    },
  );

  it('answers not_found for a task Dyn does not know', async () => {
    const taskId = nextTask();
    const target = script(transport, taskId, { kind: 'not-found' });
    const { body } = await read(target, taskId);
    expect(body).toMatchObject({
      ok: false,
      outcome: 'not_found',
      error: { code: 'TASK_NOT_FOUND', upstream: { code: 'NOT_FOUND' } },
    });
    expect(body.task).toBeUndefined();
  });

  it('shows the task canceled after a cancel', async () => {
    const taskId = nextTask();
    const target = script(transport, taskId, { kind: 'ok' });
    expect((await cancel(target, taskId)).body.outcome).toBe('canceled');
    expect((await read(target, taskId)).body.task?.status).toBe('canceled');
  });

  it('answers upstream_error for an error code Dyn never documented', async () => {
    const taskId = nextTask();
    const target = script(transport, taskId, { kind: 'unknown-code' });
    expect((await read(target, taskId)).body).toMatchObject({
      outcome: 'upstream_error',
      error: { code: 'UPSTREAM_FAULT', upstream: { code: 'SOMETHING_NEW' } },
    });
  });

  it('answers upstream_error naming our credentials for PERMISSION_DENIED', async () => {
    const taskId = nextTask();
    const target = script(transport, taskId, { kind: 'permission-denied' });
    expect((await read(target, taskId)).body).toMatchObject({
      outcome: 'upstream_error',
      error: { code: 'UPSTREAM_AUTH_FAILED', upstream: { code: 'PERMISSION_DENIED' } },
    });
  });

  it('answers unavailable (retryable) for SERVICE_UNAVAILABLE', async () => {
    const taskId = nextTask();
    const target = script(transport, taskId, { kind: 'service-unavailable', httpStatus: 503 });
    expect((await read(target, taskId)).body).toMatchObject({
      outcome: 'unavailable',
      retryable: true,
      error: { code: 'UPSTREAM_UNAVAILABLE' },
    });
  });

  it('logs in again once after an expired token, then finds the task', async () => {
    const taskId = nextTask();
    const target = script(transport, taskId, { kind: 'token-expired-once' });
    const { body } = await read(target, taskId);
    expect(body).toMatchObject({ outcome: 'found', task: { id: taskId } });
    // The expired answer, then the read again on a fresh session: one attempt for the caller.
    expect(taskCalls(transport, taskId, 'read')).toBe(2);
    expect(body.attempts).toHaveLength(1);
  });

  it('sends the read on another session when Dyn calls the session busy', async () => {
    const taskId = nextTask();
    const target = script(transport, taskId, { kind: 'session-busy', times: 1 });
    expect((await read(target, taskId)).body.outcome).toBe('found');
    expect(taskCalls(transport, taskId, 'read')).toBe(2);
  });

  it('answers unavailable UPSTREAM_BUSY when every session stays busy', async () => {
    const taskId = nextTask();
    const target = script(transport, taskId, { kind: 'session-busy' });
    expect((await read(target, taskId)).body).toMatchObject({
      outcome: 'unavailable',
      error: { code: 'UPSTREAM_BUSY', upstream: { code: 'OPERATION_FAILED' } },
    });
  });
});

describe('the wire of a task read', () => {
  it('REST sends GET /REST/Task/<id>/ with the Auth-Token and the JSON media type', async () => {
    const taskId = nextTask();
    await read('rest', taskId);
    const [call] = rest.callsTo('GET', `/REST/Task/${taskId}`);
    expect(call?.path).toBe(`/REST/Task/${taskId}/`);
    expect(call?.headers['content-type']).toBe('application/json');
    expect(call?.headers['auth-token']).toEqual(expect.any(String));
    expect(call?.headers['x-request-id']).toBe(`r-${taskId}`);
  });

  it('SOAP sends the GetOneTaskRequest node-soap builds from the WSDL', async () => {
    const taskId = nextTask();
    await read('soap', taskId);
    const call = soap.callsTo('GetOneTask').find((c) => c.args.task_id === taskId);
    expect(call?.headers.soapaction).toBe('"https://api2.dynect.net/SOAP/"');
    expect(call?.body).toMatch(
      new RegExp(
        `<tns:GetOneTaskRequest><token>[^<]+</token><fault_incompat>1</fault_incompat><task_id>${taskId}</task_id></tns:GetOneTaskRequest>`,
      ),
    );
  });
});

describe('a task read and the rate limit', () => {
  it.each(['rest', 'soap'] as const)(
    'a Dyn 429 over %s answers rate_limited with 60 s; the provider then backs off without calling Dyn',
    async (transport) => {
      const provider = transport === 'rest' ? 'dns-rest-429' : 'dns-soap-429';
      const taskId = nextTask();
      const target = `${script(transport, taskId, { kind: 'rate-limited' })}-429`;
      const first = await read(target, taskId);
      expect(first.body).toMatchObject({
        outcome: 'rate_limited',
        retryable: true,
        error: { code: 'UPSTREAM_RATE_LIMITED', upstream: { code: 'HTTP 429' } },
      });
      expect(first.retryAfterSeconds).toBe(60);
      const other = nextTask();
      const second = await read(target, other);
      expect(second.body).toMatchObject({ outcome: 'rate_limited', provider });
      expect(taskCalls(transport, other, 'read')).toBe(0);
    },
  );
});

describe('a task read that cannot get a session in time', () => {
  it('answers timeout when the only session is held by a cancel past the deadline', async () => {
    const held = nextTask();
    rest.setBehaviour(held, { kind: 'hold' });
    const holding = cancel('rest-one-long', held);
    await rest.waitUntil((calls) =>
      calls.some((c) => c.method === 'DELETE' && c.path.includes(held)),
    );
    const taskId = nextTask();
    const { body } = await read('rest-one', taskId);
    expect(body).toMatchObject({
      outcome: 'timeout',
      retryable: true,
      error: { code: 'UPSTREAM_TIMEOUT' },
    });
    expect(taskCalls('rest', taskId, 'read')).toBe(0);
    rest.releaseHeld();
    await holding;
  });
});

describe('routes whose providers cannot read', () => {
  it('answers 501 not_supported for a methodcall route without calling it', async () => {
    const before = methodcall.calls.length;
    const { body } = await read('warehouse', '4242');
    expect(body).toMatchObject({
      ok: false,
      outcome: 'not_supported',
      retryable: false,
      provider: 'warehouse',
      protocol: 'methodcall',
      error: { code: 'OPERATION_NOT_SUPPORTED' },
      attempts: [],
    });
    expect(methodcall.calls.length).toBe(before);
  });

  it('answers not_supported when only a fallback could read: the primary decides', async () => {
    const taskId = nextTask();
    const { body } = await read('warehouse-then-rest', taskId);
    expect(body.outcome).toBe('not_supported');
    expect(taskCalls('rest', taskId, 'read')).toBe(0);
  });

  it('skips a fallback that cannot read', async () => {
    const taskId = nextTask();
    rest.setBehaviour(taskId, { kind: 'service-unavailable', httpStatus: 503 });
    const before = methodcall.calls.length;
    const { body } = await read('rest-then-warehouse', taskId);
    expect(body).toMatchObject({ outcome: 'unavailable', provider: 'dns-rest' });
    expect(body.attempts).toHaveLength(1);
    expect(methodcall.calls.length).toBe(before);
  });

  it('falls back to the next reader after unavailable, listing both attempts', async () => {
    const taskId = nextTask();
    rest.setBehaviour(taskId, { kind: 'service-unavailable', httpStatus: 503 });
    const { body } = await read('rest-then-soap', taskId);
    expect(body).toMatchObject({
      outcome: 'found',
      provider: 'dns-soap',
      attempts: [
        { provider: 'dns-rest', outcome: 'unavailable' },
        { provider: 'dns-soap', outcome: 'found' },
      ],
    });
  });
});

describe('confirming a cancel that timed out', () => {
  const confirm = (target: string, taskId: string, answer: Answer) => {
    if (answer.pending === undefined) throw new Error('the answer carries nothing to confirm');
    return confirmCancel(runtime, target, taskId, answer.pending, { ...options, timeoutMs: 2000 });
  };

  it.each(['rest', 'soap'] as const)(
    'over %s: the job finishes after the gateway gave up → canceled, from the same job',
    async (transport) => {
      const taskId = nextTask();
      const target = script(transport, taskId, { kind: 'late-job' });
      const first = await cancel(target, taskId);
      expect(first.body).toMatchObject({
        outcome: 'timeout',
        error: { code: 'JOB_NOT_CONFIRMED' },
      });
      expect(first.ambiguous).toBe(true);
      expect(first.pending).toEqual({
        provider: transport === 'rest' ? 'dns-rest' : 'dns-soap',
        jobId: expect.stringMatching(/^\d+$/) as string,
      });
      // Dyn has not applied the cancel yet: the task reads as it was.
      expect((await read(target, taskId)).body.task?.status).toBe('running');
      (transport === 'rest' ? rest : soap).releaseHeld();
      const confirmation = await confirm(target, taskId, first);
      expect(confirmation).toMatchObject({
        state: 'canceled',
        task: { id: taskId, status: 'canceled' },
        outcome: { outcome: 'canceled' },
      });
      // Settled by the job's own answer: the cancel was sent once, and no read was needed.
      expect(taskCalls(transport, taskId, 'cancel')).toBe(1);
      expect(taskCalls(transport, taskId, 'read')).toBe(1);
    },
  );

  it('a job that finishes on its own clock is polled to the end by the confirmation', async () => {
    const taskId = nextTask();
    rest.setBehaviour(taskId, { kind: 'late-job', afterMs: 400 });
    const first = await cancel('rest', taskId);
    expect(first.body.error?.code).toBe('JOB_NOT_CONFIRMED');
    expect((await confirm('rest', taskId, first)).state).toBe('canceled');
  });

  it('a job still running during the confirmation → unknown, asked again later', async () => {
    const taskId = nextTask();
    rest.setBehaviour(taskId, { kind: 'late-job' });
    const first = await cancel('rest', taskId);
    if (first.pending === undefined) throw new Error('no pending');
    const early = await confirmCancel(runtime, 'rest', taskId, first.pending, {
      ...options,
      timeoutMs: 100,
    });
    expect(early.state).toBe('unknown');
    rest.releaseHeld();
    expect((await confirm('rest', taskId, first)).state).toBe('canceled');
  });

  it('the cancel is never applied → pending, and a repeat cancels the task normally', async () => {
    const taskId = nextTask();
    rest.setBehaviour(taskId, { kind: 'stays-pending' });
    const first = await cancel('rest', taskId);
    expect(first.body.error?.code).toBe('JOB_NOT_CONFIRMED');
    rest.releaseHeld();
    const confirmation = await confirm('rest', taskId, first);
    expect(confirmation).toMatchObject({ state: 'pending', task: { status: 'running' } });
    rest.setBehaviour(taskId, { kind: 'ok' });
    expect((await cancel('rest', taskId)).body.outcome).toBe('canceled');
  });

  it('without a session to keep (maxSessions 1) the job is lost, and a read settles it', async () => {
    const taskId = nextTask();
    rest.setBehaviour(taskId, { kind: 'late-job' });
    const first = await cancel('rest-one', taskId);
    expect(first.pending?.provider).toBe('dns-rest-one');
    rest.releaseHeld();
    const confirmation = await confirm('rest-one', taskId, first);
    expect(confirmation).toMatchObject({ state: 'canceled', task: { status: 'canceled' } });
    expect(taskCalls('rest', taskId, 'read')).toBe(1);
  });

  it('a task Dyn no longer knows → gone', async () => {
    const taskId = nextTask();
    rest.setBehaviour(taskId, { kind: 'late-job' });
    const first = await cancel('rest-one', taskId);
    rest.setBehaviour(taskId, { kind: 'not-found' });
    expect((await confirm('rest-one', taskId, first)).state).toBe('gone');
  });

  it('a provider that cannot confirm → unsupported, nothing sent', async () => {
    const before = methodcall.calls.length;
    const confirmation = await confirmCancel(
      runtime,
      'warehouse',
      '4242',
      { provider: 'warehouse' },
      options,
    );
    expect(confirmation.state).toBe('unsupported');
    expect(methodcall.calls.length).toBe(before);
  });

  it('a methodcall cancel that times out carries nothing to confirm', async () => {
    methodcall.setBehaviour(4343, { kind: 'slow', delayMs: 5_000 });
    const answer = await cancel('warehouse', '4343');
    expect(answer.body.outcome).toBe('timeout');
    expect(answer.ambiguous).toBe(true);
    expect(answer.pending).toBeUndefined();
  });
});
