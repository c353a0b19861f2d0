import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { RecordedCall } from '../../src/simulators/http-util';
import { startDynRestSimulator, type DynRestSimulator } from '../../src/simulators/dyn-rest';
import { createFakeClock, type FakeClock } from '../helpers/fake-clock';
import { postJson, startTestGateway, type TestGateway } from '../helpers/gateway';
import { expectUnifiedShape } from '../helpers/shape';

const PASSWORD = 'sim-password';
const VERSION = (
  JSON.parse(readFileSync(path.join(__dirname, '../../package.json'), 'utf8')) as {
    version: string;
  }
).version;

let sim: DynRestSimulator;
let gateway: TestGateway;
const seen: { status: number; text: string }[] = [];

/** Every provider here points at the same simulator; each test gets a fresh gateway and sim. */
function config(sim: DynRestSimulator): Record<string, unknown> {
  const dyn = {
    type: 'dyn-rest',
    baseUrl: sim.baseUrl,
    customerName: 'acme',
    userName: 'api-user',
    password: '${DYN_PASSWORD}',
    jobPollIntervalMs: 20,
    jobTimeoutMs: 400,
    // Dyn's default 5/s is exercised by 'dns-throttled'; here it would only make tests timing-bound.
    rateLimitPerSecond: 10_000,
  };
  return {
    server: { requestTimeoutMs: 5000 },
    providers: {
      'dns-rest': dyn,
      'dns-wrong-password': { ...dyn, password: 'not-the-password' },
      'dns-throttled': { ...dyn, rateLimitPerSecond: 0.01 },
      'dns-one-session': { ...dyn, maxSessions: 1, retry: { attempts: 1 } },
    },
    routes: {
      dns: { provider: 'dns-rest' },
      'dns-fast': { provider: 'dns-rest', timeoutMs: 300 },
      'dns-bad-creds': { provider: 'dns-wrong-password' },
      'dns-throttled': { provider: 'dns-throttled' },
      'dns-single': { provider: 'dns-one-session' },
    },
  };
}

beforeEach(async () => {
  sim = await startDynRestSimulator({ password: PASSWORD });
  gateway = await startTestGateway(config(sim), { DYN_PASSWORD: PASSWORD });
  seen.length = 0;
});

afterEach(async () => {
  await gateway.close();
  await sim.close();
});

async function cancel(
  target: string,
  taskId: string | number,
  headers: Record<string, string> = {},
) {
  const res = await postJson(`${gateway.url}/cancel`, { target, taskId }, headers);
  seen.push({ status: res.status, text: JSON.stringify(res.body) });
  expectUnifiedShape(res.body, res.status);
  return res;
}

const logins = (): RecordedCall[] => sim.callsTo('POST', '/REST/Session');
const deletes = (taskId?: string | number): RecordedCall[] =>
  sim.callsTo('DELETE', taskId === undefined ? '/REST/Task/' : `/REST/Task/${String(taskId)}/`);
const polls = (): RecordedCall[] => sim.callsTo('GET', '/REST/Job/');
const logouts = (): RecordedCall[] => sim.callsTo('DELETE', '/REST/Session');
const tokenOf = (call: RecordedCall | undefined): string => String(call?.headers['auth-token']);

describe('canceled', () => {
  it('logs in once, sends DELETE /REST/Task/<id>/ with the token and JSON type, maps the task', async () => {
    const res = await cancel('dns', '39120953', { 'x-request-id': 'req-dyn-1' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      ok: true,
      outcome: 'canceled',
      retryable: false,
      requestId: 'req-dyn-1',
      target: 'dns',
      provider: 'dns-rest',
      protocol: 'dyn-rest',
      taskId: '39120953',
    });
    expect(res.body.task).toEqual({
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
      modifiedAt: '2017-07-14T02:40:50.000Z',
    });
    expect(res.body.error).toBeUndefined();

    const [login, ...rest] = logins();
    expect(rest).toHaveLength(0);
    expect(login?.headers['content-type']).toBe('application/json');
    expect(JSON.parse(login?.body ?? '')).toEqual({
      customer_name: 'acme',
      user_name: 'api-user',
      password: PASSWORD,
    });
    const sent = deletes();
    expect(sent).toHaveLength(1);
    expect(sent[0]?.path).toBe('/REST/Task/39120953/');
    for (const call of [login, ...sent])
      expect(call?.headers['user-agent']).toBe(`cancel-gateway/${VERSION}`);
    expect(sent[0]?.headers['content-type']).toBe('application/json');
    expect(sent[0]?.headers['auth-token']).toMatch(/^[A-Za-z0-9+/=]{100,}$/);
    expect(sent[0]?.headers['x-request-id']).toBe('req-dyn-1');
  });

  it('accepts an integer taskId and answers with it as a string', async () => {
    const res = await cancel('dns', 4242);
    expect(res.body).toMatchObject({ outcome: 'canceled', taskId: '4242', task: { id: '4242' } });
    expect(deletes(4242)).toHaveLength(1);
  });

  it('uses one login for many sequential requests', async () => {
    for (let id = 100; id < 110; id++) {
      const res = await cancel('dns', id);
      expect(res.body.outcome).toBe('canceled');
    }
    expect(logins()).toHaveLength(1);
    expect(deletes()).toHaveLength(10);
    expect(new Set(deletes().map(tokenOf)).size).toBe(1);
  });

  it('gives concurrent requests their own sessions, opened one login at a time', async () => {
    for (const id of [201, 202, 203]) sim.setBehaviour(id, { kind: 'hold' });
    const pending = Promise.all([cancel('dns', 201), cancel('dns', 202), cancel('dns', 203)]);
    await sim.waitUntil(() => deletes().length === 3);
    sim.releaseHeld();
    const results = await pending;
    expect(results.map((r) => r.body.outcome)).toEqual(['canceled', 'canceled', 'canceled']);
    const tokens = deletes().map(tokenOf);
    expect(new Set(tokens).size).toBe(3);
    expect(logins()).toHaveLength(3);
  });

  it('queues requests for the one session when maxSessions is 1 rather than sharing it', async () => {
    sim.setBehaviour(301, { kind: 'hold' });
    const first = cancel('dns-single', 301);
    await sim.waitUntil(() => deletes(301).length === 1);
    const second = cancel('dns-single', 302);
    // The second request waits for the session: nothing more reaches Dyn until the first is done.
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(deletes(302)).toHaveLength(0);
    sim.releaseHeld();
    const results = await Promise.all([first, second]);
    expect(results.map((r) => r.body.outcome)).toEqual(['canceled', 'canceled']);
    expect(logins()).toHaveLength(1);
    expect(new Set(deletes().map(tokenOf)).size).toBe(1);
  });
});

describe('business answers', () => {
  it('maps NOT_FOUND to 404 not_found with the upstream code', async () => {
    sim.setBehaviour(404001, { kind: 'not-found' });
    const res = await cancel('dns', 404001);
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({
      ok: false,
      outcome: 'not_found',
      retryable: false,
      error: {
        code: 'TASK_NOT_FOUND',
        upstream: { code: 'NOT_FOUND', message: 'task: No such task' },
      },
    });
  });

  it('maps "Operation blocked by current task" to a retryable 409 TASK_BLOCKED naming the blocker', async () => {
    sim.setBehaviour(409004, { kind: 'blocked', arrayWrapped: true });
    const res = await cancel('dns', 409004);
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({
      outcome: 'conflict',
      retryable: true,
      error: {
        code: 'TASK_BLOCKED',
        upstream: { code: 'ILLEGAL_OPERATION', message: 'zone: Operation blocked by current task' },
      },
    });
    expect(res.body.error.message).toContain('39120953');
  });

  it('maps a task already in a final state to 409 conflict, keeping the task', async () => {
    sim.setBehaviour(409001, { kind: 'already-complete' });
    const res = await cancel('dns', 409001);
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({
      outcome: 'conflict',
      error: { code: 'TASK_ALREADY_FINISHED', upstream: { code: 'ILLEGAL_OPERATION' } },
      task: { id: '409001', status: 'complete' },
    });
  });

  it('replays a repeat cancel of a canceled task without a second DELETE', async () => {
    expect((await cancel('dns', 409002)).status).toBe(200);
    const again = await cancel('dns', 409002);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({
      outcome: 'canceled',
      replayed: true,
      task: { status: 'canceled' },
    });
    expect(deletes(409002)).toHaveLength(1);
  });

  it('maps ILLEGAL_OPERATION to 409 TASK_NOT_CANCELABLE', async () => {
    sim.setBehaviour(409003, { kind: 'illegal-operation' });
    const res = await cancel('dns', 409003);
    expect(res.status).toBe(409);
    expect(res.body.error).toMatchObject({
      code: 'TASK_NOT_CANCELABLE',
      upstream: { code: 'ILLEGAL_OPERATION' },
    });
  });

  it('maps INVALID_DATA not about the session to 422 rejected, without a re-login', async () => {
    sim.setBehaviour(422001, { kind: 'invalid-data' });
    const res = await cancel('dns', 422001);
    expect(res.status).toBe(422);
    expect(res.body).toMatchObject({
      outcome: 'rejected',
      error: { code: 'UPSTREAM_REJECTED', upstream: { code: 'INVALID_DATA' } },
    });
    expect(logins()).toHaveLength(1);
  });

  it('reads the legacy one-element-array envelope', async () => {
    sim.setBehaviour(404002, { kind: 'array-wrapped-error' });
    const res = await cancel('dns', 404002);
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('TASK_NOT_FOUND');
  });
});

describe('sessions', () => {
  it('re-logs in exactly once after an expired token and retries the DELETE once', async () => {
    expect((await cancel('dns', 500)).status).toBe(200);
    sim.setBehaviour(501, { kind: 'token-expired-once' });
    const res = await cancel('dns', 501);
    expect(res.status).toBe(200);
    expect(res.body.outcome).toBe('canceled');
    expect(logins()).toHaveLength(2);
    const sent = deletes(501);
    expect(sent).toHaveLength(2);
    expect(tokenOf(sent[0])).not.toBe(tokenOf(sent[1]));
  });

  it('recovers when every session expired at once (idle logout)', async () => {
    expect((await cancel('dns', 510)).status).toBe(200);
    sim.expireAllSessions();
    const res = await cancel('dns', 511);
    expect(res.status).toBe(200);
    expect(logins()).toHaveLength(2);
    expect(deletes(511)).toHaveLength(2);
  });

  it('never loops: a second session error ends in 502 after two logins and two DELETEs', async () => {
    sim.setBehaviour(520, { kind: 'token-expired-always' });
    const res = await cancel('dns', 520);
    expect(res.status).toBe(502);
    expect(res.body).toMatchObject({
      outcome: 'upstream_error',
      error: { code: 'UPSTREAM_AUTH_FAILED' },
    });
    expect(logins()).toHaveLength(2);
    expect(deletes(520)).toHaveLength(2);
  });

  it('answers 503 UPSTREAM_BUSY, never an auth error, when every session tried is busy', async () => {
    sim.setBehaviour(530, { kind: 'session-busy' });
    const res = await cancel('dns', 530);
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({
      outcome: 'unavailable',
      retryable: true,
      error: {
        code: 'UPSTREAM_BUSY',
        upstream: {
          code: 'OPERATION_FAILED',
          message: 'token: This session already has a job running',
        },
      },
    });
    // Busy means not run, so the retry policy tries once more; each attempt tries three sessions
    // (the pool's four, then a wait for one whose pause ended). Busy sessions are alive at Dyn:
    // kept, never dropped or logged out.
    expect(res.body.attempts).toEqual([
      expect.objectContaining({ outcome: 'unavailable', errorCode: 'UPSTREAM_BUSY' }),
      expect.objectContaining({ outcome: 'unavailable', errorCode: 'UPSTREAM_BUSY' }),
    ]);
    expect(deletes(530)).toHaveLength(6);
    expect(new Set(deletes(530).map(tokenOf)).size).toBe(4);
    expect(logins()).toHaveLength(4);
    expect(logouts()).toHaveLength(0);
    expect(sim.activeSessions()).toBe(4);
  });

  it('reports bad credentials as 502 UPSTREAM_AUTH_FAILED and backs off instead of retrying', async () => {
    const first = await cancel('dns-bad-creds', 600);
    expect(first.status).toBe(502);
    expect(first.body).toMatchObject({
      outcome: 'upstream_error',
      error: { code: 'UPSTREAM_AUTH_FAILED', upstream: { code: 'INVALID_DATA' } },
    });
    expect(first.body.error.message).toMatch(/credentials/);
    const second = await cancel('dns-bad-creds', 601);
    expect(second.status).toBe(502);
    expect(second.body.error.code).toBe('UPSTREAM_AUTH_FAILED');
    expect(logins()).toHaveLength(1);
    expect(deletes()).toHaveLength(0);
  });

  it('shares one in-flight login between concurrent requests when it fails', async () => {
    const results = await Promise.all([610, 611, 612].map((id) => cancel('dns-bad-creds', id)));
    expect(results.map((r) => r.status)).toEqual([502, 502, 502]);
    expect(logins()).toHaveLength(1);
  });

  it('logs out every session when the gateway closes', async () => {
    for (const id of [701, 702]) sim.setBehaviour(id, { kind: 'hold' });
    const pending = Promise.all([cancel('dns', 701), cancel('dns', 702)]);
    await sim.waitUntil(() => deletes().length === 2);
    sim.releaseHeld();
    await pending;
    expect(sim.activeSessions()).toBe(2);
    const tokens = new Set(deletes().map(tokenOf));
    await gateway.close();
    expect(new Set(logouts().map(tokenOf))).toEqual(tokens);
    expect(sim.activeSessions()).toBe(0);
  });
});

describe('busy sessions (on a fake clock)', () => {
  let clock: FakeClock;

  /** A gateway on `clock` for the busy-session cases: the pause is waited on the clock. */
  async function onClock(): Promise<void> {
    await gateway.close();
    clock = createFakeClock();
    gateway = await startTestGateway(config(sim), { DYN_PASSWORD: PASSWORD }, undefined, { clock });
  }
  const busyLogged = (count: number): Promise<void> =>
    gateway.logs.waitForCount((l) => l.msg === 'Dyn session busy; trying another session', count);

  it('sends the cancel on another session, keeps the busy one, and uses it again later', async () => {
    await onClock();
    expect((await cancel('dns', 540)).status).toBe(200);
    const first = tokenOf(deletes(540)[0]);
    sim.setBehaviour(541, { kind: 'session-busy', times: 1 });
    const res = await cancel('dns', 541);
    expect(res.status).toBe(200);
    expect(res.body.attempts).toHaveLength(1);
    const [busy, done] = deletes(541);
    expect(tokenOf(busy)).toBe(first);
    expect(tokenOf(done)).not.toBe(first);
    expect(logins()).toHaveLength(2);
    expect(logouts()).toHaveLength(0);
    // Once its pause is over, the busy session serves again.
    await clock.advance(1_000);
    expect((await cancel('dns', 542)).status).toBe(200);
    expect(tokenOf(deletes(542)[0])).toBe(first);
    expect(logins()).toHaveLength(2);
  });

  it('waits for the one session when maxSessions is 1, within the deadline', async () => {
    await onClock();
    sim.setBehaviour(543, { kind: 'session-busy', times: 1 });
    const pending = cancel('dns-single', 543);
    await busyLogged(1);
    expect(deletes(543)).toHaveLength(1);
    await clock.advance(1_000);
    const res = await pending;
    expect(res.status).toBe(200);
    expect(deletes(543)).toHaveLength(2);
    expect(new Set(deletes(543).map(tokenOf)).size).toBe(1);
    expect(logins()).toHaveLength(1);
  });

  it('answers UPSTREAM_BUSY when the one session stays busy, and keeps it', async () => {
    await onClock();
    sim.setBehaviour(544, { kind: 'session-busy', style: 'failure-200' });
    const pending = cancel('dns-single', 544);
    await busyLogged(1);
    await clock.advance(1_000);
    await busyLogged(2);
    await clock.advance(1_000);
    const res = await pending;
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('UPSTREAM_BUSY');
    expect(deletes(544)).toHaveLength(3);
    expect(logins()).toHaveLength(1);
    expect(logouts()).toHaveLength(0);
    expect(sim.activeSessions()).toBe(1);
  });
});

describe('jobs', () => {
  it('polls the job after a 307 and never sends the DELETE again', async () => {
    sim.setBehaviour(800, { kind: 'redirect-job', polls: 2 });
    const res = await cancel('dns', 800);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      outcome: 'canceled',
      task: { id: '800', status: 'canceled' },
    });
    expect(deletes(800)).toHaveLength(1);
    const jobPolls = polls();
    expect(jobPolls).toHaveLength(3);
    for (const poll of jobPolls) {
      expect(poll.path).toMatch(/^\/REST\/Job\/\d+\/$/);
      expect(poll.headers['auth-token']).toBe(tokenOf(deletes(800)[0]));
      expect(poll.headers['content-type']).toBe('application/json');
    }
  });

  it('polls after a 200 {"status":"incomplete"}', async () => {
    sim.setBehaviour(801, { kind: 'incomplete-job', polls: 1 });
    const res = await cancel('dns', 801);
    expect(res.status).toBe(200);
    expect(res.body.outcome).toBe('canceled');
    expect(deletes(801)).toHaveLength(1);
    expect(polls()).toHaveLength(2);
  });

  it('answers 504 JOB_NOT_CONFIRMED, not not_found, when Dyn has forgotten the job', async () => {
    sim.setBehaviour(804, { kind: 'job-lost' });
    const res = await cancel('dns', 804);
    expect(res.status).toBe(504);
    expect(res.body).toMatchObject({
      outcome: 'timeout',
      retryable: true,
      error: {
        code: 'JOB_NOT_CONFIRMED',
        upstream: { code: 'NOT_FOUND', message: 'job: No such job' },
      },
    });
    expect(res.body.error.message).toMatch(/accepted/);
    expect(deletes(804)).toHaveLength(1);
    expect(polls()).toHaveLength(1);
  });

  it('follows a job poll answered with a 307 to the job again', async () => {
    sim.setBehaviour(805, { kind: 'redirect-job', polls: 2, pollAnswer: 'redirect' });
    const res = await cancel('dns', 805);
    expect(res.status).toBe(200);
    expect(polls()).toHaveLength(3);
    expect(deletes(805)).toHaveLength(1);
  });

  it('answers 504 JOB_NOT_CONFIRMED when a poll is a 307 without Location', async () => {
    sim.setBehaviour(806, {
      kind: 'redirect-job',
      polls: 1,
      pollAnswer: 'redirect-without-location',
    });
    const res = await cancel('dns', 806);
    expect(res.status).toBe(504);
    expect(res.body.error).toMatchObject({
      code: 'JOB_NOT_CONFIRMED',
      upstream: { code: 'HTTP 307' },
    });
    // The job may still run on that session: it is logged out, not reused.
    const used = tokenOf(deletes(806)[0]);
    await sim.waitUntil(() => logouts().some((c) => tokenOf(c) === used));
  });

  it('answers 504 JOB_NOT_CONFIRMED when the job never finishes, and keeps that session for the confirmation until shutdown', async () => {
    sim.setBehaviour(802, { kind: 'job-never-finishes' });
    const res = await cancel('dns', 802);
    expect(res.status).toBe(504);
    expect(res.body).toMatchObject({
      outcome: 'timeout',
      retryable: true,
      error: { code: 'JOB_NOT_CONFIRMED' },
    });
    expect(res.body.error.message).toMatch(/accepted/);
    expect(deletes(802)).toHaveLength(1);
    expect(polls().length).toBeGreaterThanOrEqual(1);
    const busy = tokenOf(deletes(802)[0]);
    // The next cancel does not reuse the session whose job may still run…
    expect((await cancel('dns', 803)).status).toBe(200);
    expect(tokenOf(deletes(803)[0])).not.toBe(busy);
    // …which is kept, not logged out: the background confirmation polls the job on it.
    await sim.waitUntil(() => polls().filter((c) => tokenOf(c) === busy).length > 1);
    expect(logouts().map(tokenOf)).not.toContain(busy);
    await gateway.close();
    expect(logouts().map(tokenOf)).toContain(busy);
  });

  it('logs a kept job session out once state.reconcileSeconds (and the confirmation) is over', async () => {
    await gateway.close();
    gateway = await startTestGateway(
      { ...config(sim), state: { reconcileSeconds: 1 } },
      { DYN_PASSWORD: PASSWORD },
    );
    sim.setBehaviour(807, { kind: 'job-never-finishes' });
    const res = await cancel('dns-fast', 807);
    expect(res.body.error.code).toBe('JOB_NOT_CONFIRMED');
    const kept = tokenOf(deletes(807)[0]);
    await gateway.logs.waitFor((l) => l.msg === 'timeout settled' && l.taskId === '807');
    expect(gateway.logs.lines()).toContainEqual(
      expect.objectContaining({ msg: 'timeout settled', result: 'expired' }),
    );
    await sim.waitUntil(() => logouts().some((c) => tokenOf(c) === kept));
    expect(deletes(807)).toHaveLength(1);
  });
});

describe('capacity and health', () => {
  it('maps a 429 to rate_limited with the upstream Retry-After, then holds off without calling Dyn', async () => {
    sim.setBehaviour(900, { kind: 'rate-limited', retryAfterSeconds: 7 });
    const res = await cancel('dns', 900);
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('7');
    expect(res.body).toMatchObject({
      outcome: 'rate_limited',
      retryable: true,
      error: { code: 'UPSTREAM_RATE_LIMITED' },
    });
    const sentBefore = sim.calls.length;
    const next = await cancel('dns', 901);
    expect(next.status).toBe(429);
    expect(Number(next.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(Number(next.headers.get('retry-after'))).toBeLessThanOrEqual(7);
    expect(sim.calls.length).toBe(sentBefore);
  });

  it("assumes Dyn's documented 60 s when a 429 is status only, as Dyn sends it", async () => {
    sim.setBehaviour(910, { kind: 'rate-limited' });
    const res = await cancel('dns', 910);
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('60');
    expect(res.body.error.upstream).toEqual({ code: 'HTTP 429' });
  });

  it('retries an HTTP 503 with the SERVICE_UNAVAILABLE envelope on the same provider', async () => {
    sim.setBehaviour(932, { kind: 'service-unavailable', httpStatus: 503 });
    const res = await cancel('dns', 932);
    expect(res.status).toBe(503);
    expect(res.body.attempts).toHaveLength(2);
    expect(deletes(932)).toHaveLength(2);
  });

  it("enforces the provider's own rateLimitPerSecond without calling Dyn", async () => {
    expect((await cancel('dns-throttled', 920)).status).toBe(200);
    const sentBefore = sim.calls.length;
    const res = await cancel('dns-throttled', 921);
    expect(res.status).toBe(429);
    expect(res.body.error.code).toBe('RATE_LIMITED');
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(sim.calls.length).toBe(sentBefore);
  });

  it('maps HTTP 503 to unavailable', async () => {
    sim.setBehaviour(930, { kind: 'unavailable' });
    const res = await cancel('dns', 930);
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({
      outcome: 'unavailable',
      retryable: true,
      error: { code: 'UPSTREAM_UNAVAILABLE' },
    });
  });

  it('maps SERVICE_UNAVAILABLE to unavailable', async () => {
    sim.setBehaviour(931, { kind: 'service-unavailable' });
    const res = await cancel('dns', 931);
    expect(res.status).toBe(503);
    expect(res.body.error.upstream.code).toBe('SERVICE_UNAVAILABLE');
  });

  it('answers 504 when Dyn is slower than the route deadline, then drops that session', async () => {
    sim.setBehaviour(940, { kind: 'slow', delayMs: 10_000 });
    const res = await cancel('dns-fast', 940);
    expect(res.status).toBe(504);
    expect(res.body).toMatchObject({ outcome: 'timeout', error: { code: 'UPSTREAM_TIMEOUT' } });
    const slowToken = tokenOf(deletes(940)[0]);
    await sim.waitUntil(() => logouts().some((c) => tokenOf(c) === slowToken));
  });
});

describe('unusable answers', () => {
  it('follows the first-ERROR rule when ERR_CD is missing', async () => {
    sim.setBehaviour(950, { kind: 'missing-err-cd' });
    const res = await cancel('dns', 950);
    expect(res.status).toBe(502);
    expect(res.body).toMatchObject({
      outcome: 'upstream_error',
      error: {
        code: 'UPSTREAM_FAULT',
        upstream: { code: 'UNKNOWN', message: 'task: Something unexpected happened' },
      },
    });
  });

  it('maps PERMISSION_DENIED to 502 UPSTREAM_AUTH_FAILED (our account, not the caller)', async () => {
    sim.setBehaviour(951, { kind: 'permission-denied' });
    const res = await cancel('dns', 951);
    expect(res.status).toBe(502);
    expect(res.body.error).toMatchObject({
      code: 'UPSTREAM_AUTH_FAILED',
      upstream: { code: 'PERMISSION_DENIED' },
    });
  });

  it('maps a body that is not JSON to 502 UPSTREAM_BAD_RESPONSE', async () => {
    sim.setBehaviour(952, { kind: 'malformed' });
    const res = await cancel('dns', 952);
    expect(res.status).toBe(502);
    expect(res.body.error.code).toBe('UPSTREAM_BAD_RESPONSE');
  });
});

describe('input and secrets', () => {
  it.each(['12ab', '0', '-5', '007', '1/../../Session', '99999999999999999999999'])(
    'refuses taskId %p with 400 and sends nothing to Dyn',
    async (taskId) => {
      const res = await cancel('dns', taskId);
      expect(res.status).toBe(400);
      expect(res.body.outcome).toBe('invalid_request');
      expect(sim.calls).toHaveLength(0);
    },
  );

  it('never shows the password or a session token in a log line or a response', async () => {
    sim.setBehaviour(1001, { kind: 'token-expired-once' });
    sim.setBehaviour(1002, { kind: 'redirect-job' });
    sim.setBehaviour(1003, { kind: 'not-found' });
    await cancel('dns', 1000);
    await cancel('dns', 1001);
    await cancel('dns', 1002);
    await cancel('dns', 1003);
    await cancel('dns-bad-creds', 1004);
    await gateway.close();
    const tokens = [
      ...new Set(
        sim.calls.map((c) => c.headers['auth-token']).filter((t) => typeof t === 'string'),
      ),
    ];
    expect(tokens.length).toBeGreaterThanOrEqual(2);
    const everything = [...gateway.logs.raw, ...seen.map((s) => s.text)];
    expect(gateway.logs.raw.length).toBeGreaterThan(5);
    for (const text of everything) {
      expect(text).not.toContain(PASSWORD);
      expect(text).not.toContain('not-the-password');
      for (const token of tokens) expect(text).not.toContain(token.slice(0, 24));
    }
  });
});
