import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import type { RecordedCall } from '../../src/simulators/http-util';
import { startDynRestSimulator, type DynRestSimulator } from '../../src/simulators/dyn-rest';
import {
  startDynSoapSimulator,
  type DynSoapSimulator,
  type RecordedSoapCall,
} from '../../src/simulators/dyn-soap';
import { spawnGateway, type ChildGateway } from '../helpers/child';
import {
  postJson,
  startTestGateway,
  writeConfig,
  type LogCapture,
  type TestGateway,
} from '../helpers/gateway';
import { startRedis, type RedisServer } from '../helpers/redis';
import { expectUnifiedShape } from '../helpers/shape';

/**
 * Background confirmation of Dyn cancels that ended in `timeout`, through HTTP: the simulators
 * finish (or never apply) the cancel after the gateway gave up, and a repeat of the cancel shows
 * what the gateway confirmed meanwhile.
 */

const account = { customerName: 'acme', userName: 'api-user', password: 'sim-password' };
/** Fast polls; a job outlives a 300 ms route deadline, not the provider's own job timeout. */
const dynTiming = { jobPollIntervalMs: 20, jobTimeoutMs: 5_000, rateLimitPerSecond: 10_000 };

let rest: DynRestSimulator;
let soap: DynSoapSimulator;

beforeAll(async () => {
  [rest, soap] = await Promise.all([startDynRestSimulator(), startDynSoapSimulator()]);
});

afterAll(async () => {
  await Promise.all([rest.close(), soap.close()]);
});

const restProvider = (extra: Record<string, unknown> = {}) => ({
  type: 'dyn-rest',
  baseUrl: rest.baseUrl,
  ...account,
  ...dynTiming,
  ...extra,
});

const soapProvider = (extra: Record<string, unknown> = {}) => ({
  type: 'dyn-soap',
  wsdl: 'wsdl/dynect.wsdl',
  endpoint: soap.endpoint,
  ...account,
  ...dynTiming,
  ...extra,
});

async function cancel(url: string, target: string, taskId: number) {
  const res = await postJson(`${url}/cancel`, { target, taskId });
  expectUnifiedShape(res.body, res.status);
  return res;
}

/** The `timeout settled` line of one task, once it is logged. */
async function settledLine(logs: LogCapture, taskId: number): Promise<Record<string, unknown>> {
  const matches = (l: Record<string, unknown>): boolean =>
    l.msg === 'timeout settled' && l.taskId === String(taskId);
  await logs.waitFor(matches);
  const line = logs.lines().find(matches);
  if (line === undefined) throw new Error('the settled line went missing');
  return line;
}

/** `gateway_reconciliations_total{provider,result}` as `/metrics` shows it now (0 when absent). */
async function reconciliations(url: string, provider: string, result: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text
    .split('\n')
    .find(
      (l) =>
        l.startsWith('gateway_reconciliations_total{') &&
        l.includes(`provider="${provider}"`) &&
        l.includes(`result="${result}"`),
    );
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

const restTask = (method: string, taskId: number): RecordedCall[] =>
  rest.callsTo(method, `/REST/Task/${String(taskId)}/`);
const restPolls = (): RecordedCall[] => rest.callsTo('GET', '/REST/Job/');
const restLogouts = (): RecordedCall[] => rest.callsTo('DELETE', '/REST/Session');
const restToken = (call: RecordedCall | undefined): string => String(call?.headers['auth-token']);
const soapTask = (operation: string, taskId: number): RecordedSoapCall[] =>
  soap.callsTo(operation).filter((c) => c.args.task_id === String(taskId));

/** Calls of one task on either simulator: `cancel` (DELETE / CancelTask) or `read`. */
const taskCalls: Record<'rest' | 'soap', (kind: 'cancel' | 'read', taskId: number) => number> = {
  rest: (kind, taskId) => restTask(kind === 'cancel' ? 'DELETE' : 'GET', taskId).length,
  soap: (kind, taskId) => soapTask(kind === 'cancel' ? 'CancelTask' : 'GetOneTask', taskId).length,
};

describe('a timed-out cancel confirmed in the background', () => {
  let gateway: TestGateway;

  beforeAll(async () => {
    gateway = await startTestGateway({
      providers: {
        'dns-rest': restProvider(),
        'dns-soap': soapProvider(),
        // No session to keep for the job: the confirmation reads the task.
        'dns-rest-one': restProvider({ maxSessions: 1 }),
      },
      routes: {
        rest: { provider: 'dns-rest', timeoutMs: 300 },
        soap: { provider: 'dns-soap', timeoutMs: 300 },
        'rest-one': { provider: 'dns-rest-one', timeoutMs: 300 },
      },
    });
  });

  afterAll(async () => {
    await gateway.close();
  });

  it.each([
    ['rest', 1101],
    ['soap', 1102],
  ] as const)(
    'over %s: the job finishes after the gateway gave up → a repeat answers canceled, replayed, without calling Dyn',
    async (transport, taskId) => {
      const sim = transport === 'rest' ? rest : soap;
      const provider = `dns-${transport}`;
      sim.setBehaviour(taskId, { kind: 'late-job' });
      const first = await cancel(gateway.url, transport, taskId);
      expect(first.status).toBe(504);
      expect(first.body).toMatchObject({
        outcome: 'timeout',
        error: { code: 'JOB_NOT_CONFIRMED' },
      });
      // Dyn carries the job out after the caller's deadline.
      sim.releaseHeld();

      const line = await settledLine(gateway.logs, taskId);
      expect(line).toMatchObject({
        level: 'info',
        requestId: first.body.requestId,
        target: transport,
        provider,
        result: 'canceled',
        taskStatus: 'canceled',
      });
      // Settled by the job's own final answer, polled on the session it ran on.
      expect(line.attempts).toBe(1);
      expect(line.afterMs).toEqual(expect.any(Number));
      expect(taskCalls[transport]('read', taskId)).toBe(0);
      expect(await reconciliations(gateway.url, provider, 'canceled')).toBe(1);

      const repeat = await cancel(gateway.url, transport, taskId);
      expect(repeat.status).toBe(200);
      expect(repeat.body).toMatchObject({
        ok: true,
        outcome: 'canceled',
        replayed: true,
        provider,
        protocol: `dyn-${transport}`,
        task: { id: String(taskId), status: 'canceled' },
        attempts: [],
      });
      expect(repeat.body.requestId).not.toBe(first.body.requestId);
      expect(taskCalls[transport]('cancel', taskId)).toBe(1);
    },
  );

  it('a cancel Dyn never applied (still pending) → the timeout is forgotten and a repeat cancels it', async () => {
    const taskId = 1103;
    rest.setBehaviour(taskId, { kind: 'stays-pending' });
    const first = await cancel(gateway.url, 'rest', taskId);
    expect(first.body.error.code).toBe('JOB_NOT_CONFIRMED');
    // The job ends without applying the cancel; the task stays running.
    rest.releaseHeld();
    const line = await settledLine(gateway.logs, taskId);
    expect(line).toMatchObject({ result: 'pending', taskStatus: 'running', provider: 'dns-rest' });
    expect(restTask('GET', taskId)).toHaveLength(1);

    rest.setBehaviour(taskId, { kind: 'ok' });
    const repeat = await cancel(gateway.url, 'rest', taskId);
    expect(repeat.status).toBe(200);
    expect(repeat.body).toMatchObject({
      outcome: 'canceled',
      attempts: [{ provider: 'dns-rest' }],
    });
    expect(repeat.body.replayed).toBeUndefined();
    expect(restTask('DELETE', taskId)).toHaveLength(2);
  });

  it('over soap, pending: nothing of the timeout is left, so a later "does not exist" is plain not_found', async () => {
    const taskId = 1104;
    soap.setBehaviour(taskId, { kind: 'stays-pending' });
    expect((await cancel(gateway.url, 'soap', taskId)).status).toBe(504);
    soap.releaseHeld();
    expect(await settledLine(gateway.logs, taskId)).toMatchObject({ result: 'pending' });
    soap.setBehaviour(taskId, { kind: 'not-found' });
    const repeat = await cancel(gateway.url, 'soap', taskId);
    expect(repeat.status).toBe(404);
    // Not GONE_AFTER_TIMEOUT: the confirmation showed that the timed-out cancel changed nothing.
    expect(repeat.body.error.code).toBe('TASK_NOT_FOUND');
  });

  it('without a kept job session, a task read as pending while the job may still run settles nothing: the later read finds it canceled', async () => {
    const taskId = 1106;
    rest.setBehaviour(taskId, { kind: 'late-job' });
    const first = await cancel(gateway.url, 'rest-one', taskId);
    expect(first.body.error.code).toBe('JOB_NOT_CONFIRMED');
    // The first read (1 s later) still shows the task running: the job has not applied yet.
    await rest.waitUntil(() => restTask('GET', taskId).length >= 1);
    // Then Dyn carries the job out; the next read finds the task canceled.
    rest.releaseHeld();
    const line = await settledLine(gateway.logs, taskId);
    expect(line).toMatchObject({ result: 'canceled', taskStatus: 'canceled' });
    expect(line.attempts).toBe(2);
    expect(restTask('GET', taskId)).toHaveLength(2);
    expect(await reconciliations(gateway.url, 'dns-rest-one', 'pending')).toBe(0);
    // The repeat is answered canceled from the memory, never 409 "already finished".
    const repeat = await cancel(gateway.url, 'rest-one', taskId);
    expect(repeat.status).toBe(200);
    expect(repeat.body).toMatchObject({ outcome: 'canceled', replayed: true });
    expect(restTask('DELETE', taskId)).toHaveLength(1);
  });

  it('a task Dyn no longer knows → gone: the timeout stays, and a repeat answers GONE_AFTER_TIMEOUT', async () => {
    const taskId = 1105;
    rest.setBehaviour(taskId, { kind: 'late-job' });
    const first = await cancel(gateway.url, 'rest-one', taskId);
    expect(first.body.error.code).toBe('JOB_NOT_CONFIRMED');
    rest.setBehaviour(taskId, { kind: 'not-found' });
    const line = await settledLine(gateway.logs, taskId);
    expect(line).toMatchObject({ result: 'gone', provider: 'dns-rest-one' });
    expect(restTask('GET', taskId)).toHaveLength(1);
    expect(await reconciliations(gateway.url, 'dns-rest-one', 'gone')).toBe(1);
    const repeat = await cancel(gateway.url, 'rest-one', taskId);
    expect(repeat.status).toBe(404);
    expect(repeat.body.error.code).toBe('GONE_AFTER_TIMEOUT');
  });
});

describe('limits of the background confirmation', () => {
  let gateway: TestGateway | undefined;

  afterEach(async () => {
    await gateway?.close();
    gateway = undefined;
  });

  it("stays within the provider's rate limit, then gives up when state.reconcileSeconds ends", async () => {
    const taskId = 1201;
    // The bucket starts full when the provider is built: count from before that.
    const started = performance.now();
    gateway = await startTestGateway({
      providers: { 'dns-slow': restProvider({ rateLimitPerSecond: 2 }) },
      routes: { dns: { provider: 'dns-slow', timeoutMs: 1_000 } },
      state: { reconcileSeconds: 3 },
    });
    const limited = (): number =>
      rest.calls.filter(
        (c) => c.path === `/REST/Task/${taskId}/` || c.path.startsWith('/REST/Job/'),
      ).length;
    const before = limited();
    rest.setBehaviour(taskId, { kind: 'job-never-finishes' });
    const first = await cancel(gateway.url, 'dns', taskId);
    expect(first.body.error.code).toBe('JOB_NOT_CONFIRMED');
    const pollsAtAnswer = restPolls().length;

    const line = await settledLine(gateway.logs, taskId);
    const elapsedSeconds = (performance.now() - started) / 1000;
    expect(line).toMatchObject({ level: 'warn', result: 'expired', provider: 'dns-slow' });
    expect(line.attempts).toBeGreaterThanOrEqual(1);
    // The confirmation polled the job that still ran…
    expect(restPolls().length).toBeGreaterThan(pollsAtAnswer);
    // …and every call of this account (cancel, polls, the confirmation's polls) took a token:
    // at most the bucket's 2 plus 2 per second since it was filled. Polling every 20 ms without
    // the limit would have sent dozens.
    expect(limited() - before).toBeLessThanOrEqual(2 + 2 * elapsedSeconds);
    expect(await reconciliations(gateway.url, 'dns-slow', 'expired')).toBe(1);
  });

  it('a reload that removes the provider abandons it; the retired provider logs the kept session out', async () => {
    const taskId = 1202;
    const config = (provider: string) => ({
      server: { host: '127.0.0.1', port: 0, drainWindowMs: 0 },
      providers: { [provider]: restProvider() },
      routes: { dns: { provider, timeoutMs: 300 } },
    });
    gateway = await startTestGateway(config('dns-old'));
    rest.setBehaviour(taskId, { kind: 'late-job' });
    const first = await cancel(gateway.url, 'dns', taskId);
    expect(first.body.error.code).toBe('JOB_NOT_CONFIRMED');
    const kept = restToken(restTask('DELETE', taskId)[0]);
    expect(restLogouts().map(restToken)).not.toContain(kept);

    writeFileSync(gateway.configFile, stringify(config('dns-new')));
    await gateway.logs.waitFor((l) => l.msg === 'config reloaded');
    const line = await settledLine(gateway.logs, taskId);
    expect(line).toMatchObject({ level: 'warn', result: 'abandoned', provider: 'dns-old' });
    expect(await reconciliations(gateway.url, 'dns-old', 'abandoned')).toBe(1);
    await rest.waitUntil(() => restLogouts().some((c) => restToken(c) === kept));
    expect(restTask('DELETE', taskId)).toHaveLength(1);
    rest.releaseHeld();
  });
});

describe('gateway processes', () => {
  const children: ChildGateway[] = [];

  afterEach(async () => {
    for (const gw of children.splice(0)) {
      if (gw.child.exitCode === null && gw.child.signalCode === null) gw.child.kill('SIGKILL');
      await gw.exited;
    }
  });

  it('a drain stops a confirmation in progress cleanly: exit 0, its kept session logged out', async () => {
    const taskId = 1301;
    const configFile = writeConfig({
      server: { host: '127.0.0.1', port: 0, drainWindowMs: 0 },
      providers: { dns: restProvider() },
      routes: { dns: { provider: 'dns', timeoutMs: 300 } },
    });
    const gw = await spawnGateway(configFile);
    children.push(gw);
    rest.setBehaviour(taskId, { kind: 'job-never-finishes' });
    const first = await cancel(gw.url, 'dns', taskId);
    expect(first.body.error.code).toBe('JOB_NOT_CONFIRMED');
    const kept = restToken(restTask('DELETE', taskId)[0]);
    const onKept = (): number => restPolls().filter((c) => restToken(c) === kept).length;
    const polledByTheCancel = onKept();
    // The confirmation polls the job on the session that was kept for it.
    await rest.waitUntil(() => onKept() > polledByTheCancel);

    gw.child.kill('SIGTERM');
    expect(await gw.exited).toBe(0);
    expect(gw.lines).toContainEqual(
      expect.objectContaining({ msg: 'background confirmations stopped', stopped: 1 }),
    );
    expect(gw.lines.filter((l) => l.level === 'error' || l.level === 'fatal')).toEqual([]);
    expect(gw.lines.filter((l) => l.msg === 'timeout settled')).toEqual([]);
    expect(restLogouts().map(restToken)).toContain(kept);
  });

  describe('two replicas on one Redis', () => {
    let redis: RedisServer;

    beforeAll(async () => {
      redis = await startRedis();
    });

    afterAll(async () => {
      await redis.stop();
    });

    it('confirm a timeout raced on both once: one set of polls, the metric on one replica', async () => {
      const taskId = 1401;
      const configFile = writeConfig({
        server: { host: '127.0.0.1', port: 0 },
        providers: { dns: restProvider({ maxSessions: 4 }) },
        routes: { dns: { provider: 'dns', timeoutMs: 300 } },
        state: { store: 'redis', redisUrl: redis.url },
      });
      const [a, b] = await Promise.all([spawnGateway(configFile), spawnGateway(configFile)]);
      children.push(a, b);
      rest.setBehaviour(taskId, { kind: 'late-job' });
      const answers = await Promise.all([
        cancel(a.url, 'dns', taskId),
        cancel(b.url, 'dns', taskId),
      ]);
      expect(answers.map((r) => r.body.outcome)).toEqual(['timeout', 'timeout']);
      // One upstream cancel for both callers; its job finishes after both gave up.
      expect(restTask('DELETE', taskId)).toHaveLength(1);
      const pollsAtAnswer = restPolls().length;
      rest.releaseHeld();

      const settled = (l: Record<string, unknown>): boolean =>
        l.msg === 'timeout settled' && l.taskId === String(taskId);
      const line = await Promise.race([a.waitForLine(settled), b.waitForLine(settled)]);
      expect(line).toMatchObject({ result: 'canceled', attempts: 1 });
      // A repeat on either replica answers from the shared memory.
      for (const gw of [a, b]) {
        const repeat = await cancel(gw.url, 'dns', taskId);
        expect(repeat.body).toMatchObject({ outcome: 'canceled', replayed: true });
      }
      expect(restTask('DELETE', taskId)).toHaveLength(1);
      // One confirmation: one poll of the finished job, no task read by another replica.
      expect(restPolls().length - pollsAtAnswer).toBe(1);
      expect(restTask('GET', taskId)).toHaveLength(0);
      const counted = await Promise.all(
        [a, b].map((gw) => reconciliations(gw.url, 'dns', 'canceled')),
      );
      expect(counted.sort()).toEqual([0, 1]);
      expect([...a.lines, ...b.lines].filter(settled)).toHaveLength(1);
    });
  });
});
