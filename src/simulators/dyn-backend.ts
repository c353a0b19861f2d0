import { randomBytes } from 'node:crypto';
import { trimOldest, type SimulatorMemory } from './http-util';

/**
 * The Dyn back end both simulators share, as REST and SOAP share Dyn's BLL: sessions, an in-memory
 * task store, jobs, and scripted behaviours per task id. Each front end renders these answers in
 * its own wire format (JSON envelopes, SOAP envelopes/Faults).
 */

/** How the simulator answers a cancel of one task id. */
export type DynBehaviour =
  | { kind: 'ok' }
  | { kind: 'not-found' }
  | { kind: 'already-complete' }
  | { kind: 'illegal-operation' }
  | { kind: 'token-expired-once' }
  /** Every session is expired by the time it reaches this task: re-login must not loop. */
  | { kind: 'token-expired-always' }
  /** REST: 307 to the job. SOAP has no redirect and answers `incomplete` instead. */
  | { kind: 'redirect-job'; polls?: number }
  | { kind: 'incomplete-job'; polls?: number }
  | { kind: 'job-never-finishes' }
  | { kind: 'rate-limited'; retryAfterSeconds?: number }
  /** HTTP 503 with an HTML body, as a load balancer answers. */
  | { kind: 'unavailable' }
  /** HTTP 500 with a body that is neither JSON nor SOAP. */
  | { kind: 'garbage-500' }
  | { kind: 'service-unavailable' }
  | { kind: 'slow'; delayMs: number; then?: DynBehaviour }
  /** Holds the answer until `releaseHeld()`, then cancels: for tests of concurrency. */
  | { kind: 'hold' }
  | { kind: 'missing-err-cd' }
  | { kind: 'permission-denied' }
  | { kind: 'invalid-data' }
  /** REST: the legacy one-element-array envelope. SOAP: a plain failure. */
  | { kind: 'array-wrapped-error' }
  | { kind: 'session-busy' }
  /** A 200 whose body is not parseable (not JSON, not XML). */
  | { kind: 'malformed' }
  /** A success whose task carries a 300 KB message: larger than the providers' default cap. */
  | { kind: 'oversized' }
  /** Hostile or broken transports, rendered by each front in its own format. */
  | { kind: HostileKind }
  /** A failure with an error code Dyn never documented. */
  | { kind: 'unknown-code' };

/** Broken answers each simulator renders in its own wire format. */
export type HostileKind =
  | 'empty'
  | 'truncated'
  | 'wrong-content-type'
  | 'reset'
  | 'reset-mid'
  | 'doctype-bomb'
  | 'xxe'
  | 'deep-nesting'
  | 'huge';

/** One line of `msgs`. `errCd` undefined means the key is absent altogether. */
export interface SimMessage {
  source: string;
  lvl: string;
  errCd?: string | null;
  info: string;
}

/** A Dyn answer before it is rendered: HTTP status, envelope fields. */
export interface DynAnswer {
  httpStatus: number;
  status: 'success' | 'failure' | 'incomplete';
  jobId: string;
  msgs: SimMessage[];
  /** A task record (snake_case, as Dyn sends it), login data, or null. */
  data: Record<string, unknown> | null;
  headers?: Record<string, string>;
  /** REST only: wrap the envelope in a one-element array. */
  arrayWrapped?: boolean;
}

export type BackendResult =
  | { kind: 'answer'; answer: DynAnswer }
  | { kind: 'job'; jobId: string; style: 'redirect' | 'incomplete' }
  | { kind: 'unavailable' }
  | { kind: 'garbage-500' }
  | { kind: 'malformed' }
  | { kind: 'hostile'; hostile: HostileKind };

export interface DynAccount {
  customerName: string;
  userName: string;
  password: string;
}

interface Job {
  token: string;
  remainingPolls: number;
  result: DynAnswer;
}

export const msg = (
  info: string,
  errCd: string | null,
  lvl = errCd === null ? 'INFO' : 'ERROR',
  source = 'BLL',
): SimMessage => ({ source, lvl, errCd, info });

export interface DynBackend {
  readonly account: DynAccount;
  login(customerName: unknown, userName: unknown, password: unknown): DynAnswer;
  logout(token: string): DynAnswer;
  /** The answer for a token that is not (or no longer) a session, else undefined. */
  checkToken(token: string | undefined): DynAnswer | undefined;
  cancel(
    token: string,
    taskId: string,
    stillThere: (ms: number) => Promise<boolean>,
  ): Promise<BackendResult | undefined>;
  job(token: string, jobId: string): DynAnswer;
  getTask(taskId: string): DynAnswer;
  setBehaviour(taskId: string | number, behaviour: DynBehaviour): void;
  releaseHeld(): void;
  activeSessions(): number;
  expireAllSessions(): void;
  reset(): void;
}

export function createDynBackend(account: Partial<DynAccount> & SimulatorMemory = {}): DynBackend {
  const limit = account.memoryLimit ?? Number.POSITIVE_INFINITY;
  const creds: DynAccount = {
    customerName: account.customerName ?? 'acme',
    userName: account.userName ?? 'api-user',
    password: account.password ?? 'sim-password',
  };
  const sessions = new Set<string>();
  const behaviours = new Map<string, DynBehaviour>();
  const tasks = new Map<string, Record<string, unknown>>();
  const jobs = new Map<string, Job>();
  const expiredOnce = new Set<string>();
  let held: (() => void)[] = [];
  const releaseHeld = (): void => {
    const waiting = held;
    held = [];
    for (const resolve of waiting) resolve();
  };
  let nextJobId = 4340980452;

  const answer = (
    httpStatus: number,
    status: DynAnswer['status'],
    msgs: SimMessage[],
    data: Record<string, unknown> | null = null,
  ): DynAnswer => ({ httpStatus, status, jobId: String(nextJobId++), msgs, data });

  /** The 2011 capture: an expired or unknown token. */
  const expired = (): DynAnswer =>
    answer(400, 'failure', [
      msg('login: Bad or expired credentials', 'INVALID_DATA'),
      msg('login: There was a problem with your credentials', null),
    ]);
  const failure = (
    httpStatus: number,
    m: SimMessage,
    data: Record<string, unknown> | null = null,
  ) => answer(httpStatus, 'failure', [m], data);

  /** Dyn allows one running job per session. */
  const sessionBusy = (): DynAnswer =>
    failure(
      400,
      msg('token: This session already has a job running', 'OPERATION_FAILED', 'ERROR', 'API-B'),
    );

  function taskOf(id: string): Record<string, unknown> {
    let task = tasks.get(id);
    if (task === undefined) {
      task = {
        task_id: id,
        name: 'ProvisionZone',
        customer_name: creds.customerName,
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
      trimOldest(tasks, limit);
    }
    return task;
  }

  function cancelNow(id: string): DynAnswer {
    const task = taskOf(id);
    const status = task.status as string;
    if (status === 'canceled' || status === 'complete' || status === 'failed') {
      return failure(400, msg(`task: Task is already ${status}`, 'ILLEGAL_OPERATION'), { ...task });
    }
    task.status = 'canceled';
    task.modified_ts = 1500000050;
    return answer(200, 'success', [msg(`task: ${id} canceled`, null)], { ...task });
  }

  function startJob(
    token: string,
    id: string,
    polls: number,
    style: 'redirect' | 'incomplete',
  ): BackendResult {
    const jobId = String(nextJobId++);
    jobs.set(jobId, { token, remainingPolls: polls, result: cancelNow(id) });
    trimOldest(jobs, limit);
    return { kind: 'job', jobId, style };
  }

  const runningJobOf = (token: string): boolean =>
    [...jobs.values()].some((job) => job.token === token && job.remainingPolls > 0);

  async function run(
    token: string,
    id: string,
    b: DynBehaviour,
    stillThere: (ms: number) => Promise<boolean>,
  ): Promise<BackendResult | undefined> {
    const out = (a: DynAnswer): BackendResult => ({ kind: 'answer', answer: a });
    switch (b.kind) {
      case 'ok':
        return out(cancelNow(id));
      case 'not-found':
        return out(failure(404, msg('task: No such task', 'NOT_FOUND')));
      case 'already-complete':
        taskOf(id).status = 'complete';
        return out(cancelNow(id));
      case 'illegal-operation':
        return out(failure(400, msg('task: Task cannot be canceled now', 'ILLEGAL_OPERATION')));
      case 'token-expired-once':
        if (!expiredOnce.has(id)) {
          expiredOnce.add(id);
          sessions.delete(token);
          return out(expired());
        }
        return out(cancelNow(id));
      case 'token-expired-always':
        sessions.delete(token);
        return out(expired());
      case 'redirect-job':
        return startJob(token, id, b.polls ?? 1, 'redirect');
      case 'incomplete-job':
        return startJob(token, id, b.polls ?? 1, 'incomplete');
      case 'job-never-finishes':
        return startJob(token, id, Number.MAX_SAFE_INTEGER, 'redirect');
      case 'rate-limited': {
        const a = failure(
          429,
          msg('rate: Too many requests', 'RATE_LIMIT_EXCEEDED', 'ERROR', 'API-A'),
        );
        if (b.retryAfterSeconds !== undefined)
          a.headers = { 'retry-after': String(b.retryAfterSeconds) };
        return out(a);
      }
      case 'unavailable':
      case 'garbage-500':
      case 'malformed':
        return { kind: b.kind };
      case 'service-unavailable':
        return out(
          failure(
            400,
            msg('service: The requested service is currently unavailable', 'SERVICE_UNAVAILABLE'),
          ),
        );
      case 'slow':
        if (!(await stillThere(b.delayMs))) return undefined;
        return run(token, id, b.then ?? { kind: 'ok' }, stillThere);
      case 'hold':
        await new Promise<void>((resolve) => held.push(resolve));
        return out(cancelNow(id));
      case 'missing-err-cd':
        return out(
          failure(400, {
            source: 'BLL',
            lvl: 'ERROR',
            info: 'task: Something unexpected happened',
          }),
        );
      case 'permission-denied':
        return out(
          failure(
            400,
            msg('task: You do not have permission to cancel this task', 'PERMISSION_DENIED'),
          ),
        );
      case 'invalid-data':
        return out(failure(400, msg('task_id: Invalid task id', 'INVALID_DATA')));
      case 'array-wrapped-error': {
        const a = failure(404, msg('task: No such task', 'NOT_FOUND'));
        a.arrayWrapped = true;
        return out(a);
      }
      case 'empty':
      case 'truncated':
      case 'wrong-content-type':
      case 'reset':
      case 'reset-mid':
      case 'doctype-bomb':
      case 'xxe':
      case 'deep-nesting':
      case 'huge':
        return { kind: 'hostile', hostile: b.kind };
      case 'unknown-code':
        return out(failure(400, msg('task: Something new went wrong', 'SOMETHING_NEW')));
      case 'oversized': {
        const a = cancelNow(id);
        if (a.data !== null) a.data.message = 'x'.repeat(300_000);
        return out(a);
      }
      case 'session-busy':
        return out(sessionBusy());
    }
  }

  return {
    account: creds,
    login(customerName, userName, password) {
      if (
        customerName !== creds.customerName ||
        userName !== creds.userName ||
        password !== creds.password
      ) {
        return answer(400, 'failure', [
          msg('login: Invalid credentials', 'INVALID_DATA'),
          msg('login: Login failed', null),
        ]);
      }
      const token = randomBytes(128).toString('base64');
      sessions.add(token);
      return answer(200, 'success', [msg('login: Login successful', null)], {
        token,
        version: '3.7.16',
      });
    },
    logout(token) {
      sessions.delete(token);
      return answer(200, 'success', [msg('logout: Logout successful', null)]);
    },
    checkToken(token) {
      if (token === undefined || token === '') {
        const a = failure(
          404,
          msg('token: required field missing', 'MISSING_DATA', 'ERROR', 'API-A'),
        );
        return a;
      }
      return sessions.has(token) ? undefined : expired();
    },
    async cancel(token, id, stillThere) {
      if (runningJobOf(token)) {
        return {
          kind: 'answer',
          answer: sessionBusy(),
        };
      }
      return run(token, id, behaviours.get(id) ?? { kind: 'ok' }, stillThere);
    },
    job(token, jobId) {
      const job = jobs.get(jobId);
      if (job === undefined || job.token !== token)
        return failure(404, msg('job: No such job', 'NOT_FOUND'));
      if (job.remainingPolls > 0) {
        job.remainingPolls--;
        const a = answer(200, 'incomplete', [], null);
        a.jobId = jobId;
        return a;
      }
      return job.result;
    },
    getTask: (id) => answer(200, 'success', [], { ...taskOf(id) }),
    setBehaviour(taskId, behaviour) {
      behaviours.set(String(taskId), behaviour);
    },
    releaseHeld,
    activeSessions: () => sessions.size,
    expireAllSessions() {
      sessions.clear();
    },
    reset() {
      behaviours.clear();
      tasks.clear();
      jobs.clear();
      expiredOnce.clear();
      releaseHeld();
    },
  };
}

/**
 * Shared by both simulators: a predicate-waiting list of recorded calls. With a `limit`, the
 * oldest calls are dropped in batches once twice that many are held.
 */
export function callLog<T>(limit = Number.POSITIVE_INFINITY) {
  const calls: T[] = [];
  const waiters: { test: (all: readonly T[]) => boolean; resolve: () => void }[] = [];
  return {
    calls,
    record(call: T): void {
      calls.push(call);
      if (calls.length >= 2 * limit) calls.splice(0, calls.length - limit);
      for (const w of [...waiters]) {
        if (w.test(calls)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    },
    waitUntil(test: (all: readonly T[]) => boolean): Promise<void> {
      if (test(calls)) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ test, resolve }));
    },
  };
}
