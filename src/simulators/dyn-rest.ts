import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { listen, readBody, waitUnlessGone, type RecordedCall } from './http-util';

/** How the simulator answers `DELETE /REST/Task/<id>/` for one task id. */
export type DynRestBehaviour =
  | { kind: 'ok' }
  | { kind: 'not-found' }
  | { kind: 'already-complete' }
  | { kind: 'illegal-operation' }
  | { kind: 'token-expired-once' }
  /** Every session is expired by the time it reaches this task: re-login must not loop. */
  | { kind: 'token-expired-always' }
  | { kind: 'redirect-job'; polls?: number }
  | { kind: 'incomplete-job'; polls?: number }
  | { kind: 'job-never-finishes' }
  | { kind: 'rate-limited'; retryAfterSeconds?: number }
  | { kind: 'unavailable' }
  | { kind: 'service-unavailable' }
  | { kind: 'slow'; delayMs: number; then?: DynRestBehaviour }
  /** Holds the answer until `releaseHeld()`, then cancels: for tests of concurrency. */
  | { kind: 'hold' }
  | { kind: 'missing-err-cd' }
  | { kind: 'permission-denied' }
  | { kind: 'invalid-data' }
  | { kind: 'array-wrapped-error' }
  | { kind: 'session-busy' }
  | { kind: 'malformed' };

export interface DynRestSimulatorOptions {
  port?: number;
  host?: string;
  customerName?: string;
  userName?: string;
  password?: string;
}

export interface DynRestSimulator {
  url: string;
  /** What a provider's `baseUrl` should be: `<url>/REST`. */
  baseUrl: string;
  calls: RecordedCall[];
  waitForCalls(count: number): Promise<void>;
  /** Resolves once the recorded calls satisfy `test` (checked after every request). */
  waitUntil(test: (calls: readonly RecordedCall[]) => boolean): Promise<void>;
  setBehaviour(taskId: string | number, behaviour: DynRestBehaviour): void;
  /** Lets every request held by the `hold` behaviour answer. */
  releaseHeld(): void;
  /** Sessions currently logged in. */
  activeSessions(): number;
  /** Calls matching a method and a path prefix (case-insensitive), e.g. ('POST', '/REST/Session'). */
  callsTo(method: string, pathPrefix: string): RecordedCall[];
  /** Expires every session at once, as an inactivity logout would. */
  expireAllSessions(): void;
  reset(): void;
  close(): Promise<void>;
}

interface Job {
  token: string;
  remainingPolls: number;
  result: { status: number; body: unknown };
}

type Envelope = { status: string; data: unknown; job_id: number | null; msgs: unknown[] };

const msg = (
  INFO: string,
  ERR_CD: string | null,
  LVL = ERR_CD === null ? 'INFO' : 'ERROR',
  SOURCE = 'BLL',
) => ({
  INFO,
  SOURCE,
  ERR_CD,
  LVL,
});

/**
 * A real HTTP server faithful to Dyn's REST API as captured in the wild: case-insensitive routes
 * with optional trailing slash, `Content-Type` required (406), `Auth-Token` required (404
 * MISSING_DATA), expired tokens answered with the 2011 capture's HTTP 400 body, 307 + text/html
 * job redirects, one running job per session, and scripted behaviours per task id.
 */
export async function startDynRestSimulator(
  options: DynRestSimulatorOptions = {},
): Promise<DynRestSimulator> {
  const creds = {
    customer_name: options.customerName ?? 'acme',
    user_name: options.userName ?? 'api-user',
    password: options.password ?? 'sim-password',
  };
  const sessions = new Set<string>();
  const behaviours = new Map<string, DynRestBehaviour>();
  const tasks = new Map<string, Record<string, unknown>>();
  const jobs = new Map<string, Job>();
  const expiredOnce = new Set<string>();
  const calls: RecordedCall[] = [];
  const waiters: { test: (calls: readonly RecordedCall[]) => boolean; resolve: () => void }[] = [];
  let nextJobId = 4340980452;
  let held: (() => void)[] = [];

  const envelope = (
    status: string,
    data: unknown,
    msgs: unknown[],
    jobId: number | null = nextJobId++,
  ): Envelope => ({
    status,
    data,
    job_id: jobId,
    msgs,
  });
  const send = (
    res: ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
  ): void => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, {
      'content-type': typeof body === 'string' ? 'text/html' : 'application/json',
      'content-length': Buffer.byteLength(text),
      server: 'nginx/1.4.6 (Ubuntu)',
      ...headers,
    });
    res.end(text);
  };
  const expired = (): Envelope =>
    envelope('failure', {}, [
      msg('login: Bad or expired credentials', 'INVALID_DATA'),
      msg('login: There was a problem with your credentials', null),
    ]);

  function taskOf(id: string): Record<string, unknown> {
    let task = tasks.get(id);
    if (task === undefined) {
      task = {
        task_id: id,
        name: 'ProvisionZone',
        customer_name: creds.customer_name,
        zone_name: 'example.com',
        status: 'running',
        step_count: 1,
        total_steps: 3,
        blocking: 'Y',
        message: '',
        debug: '',
        created_ts: 1500000000,
        modified_ts: 1500000042,
        args: [{ name: 'zone', value: 'example.com' }],
      };
      tasks.set(id, task);
    }
    return task;
  }

  function cancelResult(id: string): { status: number; body: Envelope } {
    const task = taskOf(id);
    if (task.status === 'canceled' || task.status === 'complete' || task.status === 'failed') {
      return {
        status: 400,
        body: envelope('failure', { ...task }, [
          msg(`task: Task is already ${task.status as string}`, 'ILLEGAL_OPERATION'),
        ]),
      };
    }
    task.status = 'canceled';
    task.modified_ts = 1500000050;
    return {
      status: 200,
      body: envelope('success', { ...task }, [msg(`task: ${id} canceled`, null)]),
    };
  }

  function startJob(token: string, id: string, polls: number): string {
    const jobId = String(nextJobId++);
    jobs.set(jobId, { token, remainingPolls: polls, result: cancelResult(id) });
    return jobId;
  }

  function runningJobOf(token: string): boolean {
    for (const job of jobs.values()) if (job.token === token && job.remainingPolls > 0) return true;
    return false;
  }

  async function cancelTask(
    res: ServerResponse,
    token: string,
    id: string,
    b: DynRestBehaviour,
  ): Promise<void> {
    switch (b.kind) {
      case 'ok': {
        const r = cancelResult(id);
        send(res, r.status, r.body);
        return;
      }
      case 'not-found':
        send(res, 404, envelope('failure', {}, [msg('task: No such task', 'NOT_FOUND')]));
        return;
      case 'already-complete':
        taskOf(id).status = 'complete';
        send(res, 400, cancelResult(id).body);
        return;
      case 'illegal-operation':
        send(
          res,
          400,
          envelope('failure', {}, [msg('task: Task cannot be canceled now', 'ILLEGAL_OPERATION')]),
        );
        return;
      case 'token-expired-once':
        if (!expiredOnce.has(id)) {
          expiredOnce.add(id);
          sessions.delete(token);
          send(res, 400, expired());
          return;
        }
        await cancelTask(res, token, id, { kind: 'ok' });
        return;
      case 'token-expired-always':
        sessions.delete(token);
        send(res, 400, expired());
        return;
      case 'redirect-job': {
        const jobId = startJob(token, id, b.polls ?? 1);
        send(res, 307, `/REST/Job/${jobId}`, { location: `/REST/Job/${jobId}` });
        return;
      }
      case 'incomplete-job': {
        const jobId = startJob(token, id, b.polls ?? 1);
        send(res, 200, { status: 'incomplete', data: null, job_id: Number(jobId) });
        return;
      }
      case 'job-never-finishes': {
        const jobId = startJob(token, id, Number.MAX_SAFE_INTEGER);
        send(res, 307, `/REST/Job/${jobId}`, { location: `/REST/Job/${jobId}` });
        return;
      }
      case 'rate-limited':
        send(
          res,
          429,
          envelope(
            'failure',
            {},
            [msg('rate: Too many requests', 'RATE_LIMIT_EXCEEDED', 'ERROR', 'API-A')],
            null,
          ),
          b.retryAfterSeconds === undefined ? {} : { 'retry-after': String(b.retryAfterSeconds) },
        );
        return;
      case 'unavailable':
        send(res, 503, '<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>');
        return;
      case 'service-unavailable':
        send(
          res,
          400,
          envelope('failure', {}, [
            msg('service: The requested service is currently unavailable', 'SERVICE_UNAVAILABLE'),
          ]),
        );
        return;
      case 'hold':
        await new Promise<void>((resolve) => held.push(resolve));
        await cancelTask(res, token, id, { kind: 'ok' });
        return;
      case 'slow': {
        if (!(await waitUnlessGone(res, b.delayMs))) return;
        await cancelTask(res, token, id, b.then ?? { kind: 'ok' });
        return;
      }
      case 'missing-err-cd':
        send(
          res,
          400,
          envelope('failure', {}, [
            { INFO: 'task: Something unexpected happened', SOURCE: 'BLL', LVL: 'ERROR' },
          ]),
        );
        return;
      case 'permission-denied':
        send(
          res,
          400,
          envelope('failure', {}, [
            msg('task: You do not have permission to cancel this task', 'PERMISSION_DENIED'),
          ]),
        );
        return;
      case 'invalid-data':
        send(res, 400, envelope('failure', {}, [msg('task_id: Invalid task id', 'INVALID_DATA')]));
        return;
      case 'array-wrapped-error':
        send(res, 404, [envelope('failure', {}, [msg('task: No such task', 'NOT_FOUND')])]);
        return;
      case 'session-busy':
        send(
          res,
          400,
          envelope('failure', {}, [
            msg(
              'token: This session already has a job running',
              'OPERATION_FAILED',
              'ERROR',
              'API-B',
            ),
          ]),
        );
        return;
      case 'malformed':
        send(res, 200, '<html>this is not JSON');
        return;
    }
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = await readBody(req);
    calls.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body });
    for (const w of [...waiters]) {
      if (w.test(calls)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
    const path = ((req.url ?? '').split('?')[0] ?? '').toLowerCase().replace(/\/+$/, '');
    const method = req.method ?? '';
    // Dyn needs the request media type on every call, GETs and DELETEs included.
    if (!(req.headers['content-type'] ?? '').toLowerCase().startsWith('application/json')) {
      send(res, 406, '<html><body>406 Not Acceptable</body></html>');
      return;
    }
    if (path === '/rest/session' && method === 'POST') {
      let given: Record<string, unknown> = {};
      try {
        given = JSON.parse(body) as Record<string, unknown>;
      } catch {
        given = {};
      }
      if (
        given.customer_name !== creds.customer_name ||
        given.user_name !== creds.user_name ||
        given.password !== creds.password
      ) {
        send(
          res,
          400,
          envelope('failure', {}, [
            msg('login: Invalid credentials', 'INVALID_DATA'),
            msg('login: Login failed', null),
          ]),
        );
        return;
      }
      const token = randomBytes(128).toString('base64');
      sessions.add(token);
      send(
        res,
        200,
        envelope('success', { token, version: '3.7.16' }, [msg('login: Login successful', null)]),
      );
      return;
    }
    const token = req.headers['auth-token'];
    if (typeof token !== 'string' || token === '') {
      send(
        res,
        404,
        envelope(
          'failure',
          null,
          [msg('token: required field missing', 'MISSING_DATA', 'ERROR', 'API-A')],
          null,
        ),
      );
      return;
    }
    if (!sessions.has(token)) {
      send(res, 400, expired());
      return;
    }
    if (path === '/rest/session') {
      if (method === 'DELETE') {
        sessions.delete(token);
        send(res, 200, envelope('success', {}, [msg('logout: Logout successful', null)]));
      } else {
        send(
          res,
          200,
          envelope('success', {}, [msg('isalive: User session is still active', null)]),
        );
      }
      return;
    }
    const taskMatch = /^\/rest\/task\/(\d+)$/.exec(path);
    const taskId = taskMatch?.[1];
    if (taskId !== undefined && method === 'DELETE') {
      const id = taskId;
      if (runningJobOf(token)) {
        send(
          res,
          400,
          envelope('failure', {}, [
            msg(
              'token: This session already has a job running',
              'OPERATION_FAILED',
              'ERROR',
              'API-B',
            ),
          ]),
        );
        return;
      }
      await cancelTask(res, token, id, behaviours.get(id) ?? { kind: 'ok' });
      return;
    }
    if (taskId !== undefined && method === 'GET') {
      send(res, 200, envelope('success', { ...taskOf(taskId) }, []));
      return;
    }
    const jobId = /^\/rest\/job\/(\d+)$/.exec(path)?.[1];
    if (jobId !== undefined && method === 'GET') {
      const job = jobs.get(jobId);
      if (job === undefined || job.token !== token) {
        send(res, 404, envelope('failure', {}, [msg('job: No such job', 'NOT_FOUND')]));
        return;
      }
      if (job.remainingPolls > 0) {
        job.remainingPolls--;
        send(res, 200, { status: 'incomplete', data: null, job_id: Number(jobId) });
        return;
      }
      send(res, job.result.status, job.result.body);
      return;
    }
    send(
      res,
      404,
      envelope('failure', {}, [msg('resource: Not found', 'NOT_FOUND', 'ERROR', 'API-B')]),
    );
  };

  const waitUntil = (test: (all: readonly RecordedCall[]) => boolean): Promise<void> => {
    if (test(calls)) return Promise.resolve();
    return new Promise((resolve) => waiters.push({ test, resolve }));
  };

  const server = await listen(
    (req, res) => {
      handle(req, res).catch(() => {
        res.destroy();
      });
    },
    options.port ?? 0,
    options.host ?? '127.0.0.1',
  );

  return {
    url: server.url,
    baseUrl: `${server.url}/REST`,
    calls,
    waitForCalls: (count) => waitUntil((all) => all.length >= count),
    waitUntil,
    setBehaviour(taskId, behaviour) {
      behaviours.set(String(taskId), behaviour);
    },
    releaseHeld() {
      const waiting = held;
      held = [];
      for (const resolve of waiting) resolve();
    },
    activeSessions: () => sessions.size,
    callsTo: (method, prefix) =>
      calls.filter(
        (c) => c.method === method && c.path.toLowerCase().startsWith(prefix.toLowerCase()),
      ),
    expireAllSessions() {
      sessions.clear();
    },
    reset() {
      behaviours.clear();
      tasks.clear();
      jobs.clear();
      expiredOnce.clear();
      calls.length = 0;
    },
    close: () => {
      for (const resolve of held.splice(0)) resolve();
      return server.close();
    },
  };
}
