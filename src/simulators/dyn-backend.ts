import { randomBytes } from 'node:crypto';
import { trimOldest, type SimulatorMemory } from './http-util';

/**
 * The Dyn back end both simulators share, as REST and SOAP share Dyn's BLL: sessions, an in-memory
 * task store, jobs, and scripted behaviours per task id. Each front end renders these answers in
 * its own wire format (JSON envelopes, SOAP envelopes/Faults). Every task id names a running
 * `ProvisionZone` task unless a behaviour says otherwise (`not-found`, `status`).
 */

/** The task states Dyn documents. */
export type DynTaskStatus =
  'ready' | 'running' | 'waiting' | 'complete' | 'failed' | 'canceled' | 'stalled';

/**
 * How the simulator answers a cancel, and a read (`GET /Task/<id>/`, `GetOneTask`), of one task
 * id. A read shows the task as it is; the behaviours about failures answer a read as they answer
 * a cancel, those about jobs only shape the cancel.
 */
export type DynBehaviour =
  | { kind: 'ok' }
  /** The task is in this state: a read shows it, a cancel of a final state is refused. */
  | { kind: 'status'; status: DynTaskStatus }
  | { kind: 'not-found' }
  | { kind: 'already-complete' }
  | { kind: 'illegal-operation' }
  /**
   * "zone: Operation blocked by current task" with the blocking task's name and id (HTTP 400);
   * REST may wrap it in the legacy one-element array.
   */
  | { kind: 'blocked'; arrayWrapped?: boolean }
  | { kind: 'token-expired-once' }
  /** Every session is expired by the time it reaches this task: re-login must not loop. */
  | { kind: 'token-expired-always' }
  /**
   * REST: 307 to the job. SOAP has no redirect and answers `incomplete` instead. While the job
   * runs, a poll answers `incomplete` (default), a 307 to the job again, or a 307 without a
   * `Location` (REST only; SOAP answers `incomplete`).
   */
  | { kind: 'redirect-job'; polls?: number; pollAnswer?: JobPollAnswer }
  | { kind: 'incomplete-job'; polls?: number }
  /** `incomplete` with `job_id: null`: accepted, with no job to poll. */
  | { kind: 'incomplete-without-job' }
  | { kind: 'job-never-finishes' }
  /**
   * The job finishes after the gateway gave up: it stays incomplete (the task unchanged) until
   * `releaseHeld()`, for `polls` polls, or `afterMs` after the cancel, whichever comes first;
   * then Dyn applies the cancel and the job answers it. A read before then shows the task as it
   * was.
   */
  | { kind: 'late-job'; polls?: number; afterMs?: number }
  /**
   * The cancel is never applied: the job stays incomplete as for `late-job`, then is gone
   * (`job: No such job`), and the task stays `running`.
   */
  | { kind: 'stays-pending'; polls?: number; afterMs?: number }
  /** Accepted as a job (the cancel happens), then the job is forgotten: polls say "No such job". */
  | { kind: 'job-lost' }
  /**
   * HTTP 429. Status only by default, as every recorded Dyn 429; `retryAfterSeconds` adds a
   * `Retry-After` header and `withBody` the `RATE_LIMIT_EXCEEDED` envelope.
   */
  | { kind: 'rate-limited'; retryAfterSeconds?: number; withBody?: boolean }
  /** HTTP 503 with an HTML body, as a load balancer answers. */
  | { kind: 'unavailable' }
  /** HTTP 500 with a body that is neither JSON nor SOAP. */
  | { kind: 'garbage-500' }
  /** Dyn's SERVICE_UNAVAILABLE envelope, with HTTP 400 (default) or e.g. 503 over REST. */
  | { kind: 'service-unavailable'; httpStatus?: number }
  | { kind: 'slow'; delayMs: number; then?: DynBehaviour }
  /** Holds the answer until `releaseHeld()`, then cancels: for tests of concurrency. */
  | { kind: 'hold' }
  | { kind: 'missing-err-cd' }
  | { kind: 'permission-denied' }
  | { kind: 'invalid-data' }
  /** REST: the legacy one-element-array envelope. SOAP: a plain failure. */
  | { kind: 'array-wrapped-error' }
  /**
   * "token: This session already has a job running" (`OPERATION_FAILED`), as HTTP 400 with
   * `status: running` (default) or HTTP 200 `failure`; for the first `times` cancels (default:
   * every one), then the cancel goes through.
   */
  | { kind: 'session-busy'; style?: 'running-400' | 'failure-200'; times?: number }
  /** A success whose `data` names another task. */
  | { kind: 'other-task'; taskId: string }
  /** A success with `data: null` and `job_id: null`. */
  | { kind: 'null-fields' }
  /** The answer of `then` (default `ok`), sent chunked without a `Content-Length`. */
  | { kind: 'chunked'; then?: DynBehaviour }
  /**
   * The connection is closed without a byte of answer if this request came on a reused
   * keep-alive connection (once), as a server closing an idle socket under a request does.
   * The cancel is not applied then; on a fresh connection it is.
   */
  | { kind: 'drop-if-reused' }
  /** A 200 whose body is not parseable (not JSON, not XML). */
  | { kind: 'malformed' }
  /** A success whose task carries a 300 KB message: larger than the providers' default cap. */
  | { kind: 'oversized' }
  /** Hostile or broken transports, rendered by each front in its own format. */
  | { kind: HostileKind }
  /** A failure with an error code Dyn never documented. */
  | { kind: 'unknown-code' };

/** How a REST job poll answers while the job still runs. */
export type JobPollAnswer = 'incomplete' | 'redirect' | 'redirect-without-location';

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
  /** `running` is how Dyn reports "This session already has a job running" over REST. */
  status: 'success' | 'failure' | 'incomplete' | 'running';
  /** `null` renders as JSON `null` (REST) or no `job_id` element (SOAP). */
  jobId: string | null;
  msgs: SimMessage[];
  /** A task record (snake_case, as Dyn sends it), login data, or null. */
  data: Record<string, unknown> | null;
  /** REST: render `data` as JSON `null` rather than `{}` when there is none. */
  nullData?: boolean;
  headers?: Record<string, string>;
  /** REST only: wrap the envelope in a one-element array. */
  arrayWrapped?: boolean;
  /** Send the body chunked, without a `Content-Length`. */
  chunked?: boolean;
  /** A 429 as Dyn sends it: the status and headers, no body. */
  statusOnly?: boolean;
}

export type BackendResult =
  | { kind: 'answer'; answer: DynAnswer }
  | { kind: 'job'; jobId: string | null; style: 'redirect' | 'incomplete' }
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
  /** The job's final answer; undefined until it finishes, `lost` when it ends without one. */
  result: DynAnswer | 'lost' | undefined;
  /** Runs the job's work once it finishes (a late cancel applied, or nothing). */
  finish?: () => DynAnswer | 'lost';
  /** How a poll answers while `remainingPolls` > 0. */
  pollAnswer: JobPollAnswer;
}

/** A job poll's answer: the job's envelope, or (REST) a redirect while it runs. */
export type JobResult =
  | { kind: 'answer'; answer: DynAnswer }
  | { kind: 'redirect'; jobId: string; withLocation: boolean };

export const msg = (
  info: string,
  errCd: string | null,
  lvl = errCd === null ? 'INFO' : 'ERROR',
  source = 'BLL',
): SimMessage => ({ source, lvl, errCd, info });

/** What the front end tells the back end about the request being answered. */
export interface CancelIo {
  /** Waits `ms` unless the client goes away first; false when it did. */
  wait(ms: number): Promise<boolean>;
  /** The request came on a keep-alive connection that carried an earlier request. */
  reused: boolean;
}

export interface DynBackend {
  readonly account: DynAccount;
  login(customerName: unknown, userName: unknown, password: unknown): DynAnswer;
  logout(token: string): DynAnswer;
  /** The answer for a token that is not (or no longer) a session, else undefined. */
  checkToken(token: string | undefined): DynAnswer | undefined;
  cancel(token: string, taskId: string, io: CancelIo): Promise<BackendResult | undefined>;
  job(token: string, jobId: string): JobResult;
  /**
   * A task read as Dyn answers it: the task for every status, `NOT_FOUND` for an unknown id, and
   * the scripted failures a plain answer can carry. `token` (the session asking) lets a read on
   * a session busy with a job answer "already has a job running", as Dyn does.
   */
  getTask(taskId: string, token?: string): DynAnswer;
  /** A task read with every scripted behaviour, slow and broken answers included. */
  read(token: string, taskId: string, io: CancelIo): Promise<BackendResult | undefined>;
  /** `GET /REST/Session/` and SOAP `SessionIsAlive` for a live session. */
  isAlive(): DynAnswer;
  /** `PUT /REST/Session/` and SOAP `SessionKeepAlive` for a live session. */
  keepAlive(): DynAnswer;
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
  /** Cancels answered "busy" so far, per task (for `session-busy` with `times`). */
  const busyCount = new Map<string, number>();
  const dropped = new Set<string>();
  let held: (() => void)[] = [];
  const releaseHeld = (): void => {
    const waiting = held;
    held = [];
    for (const resolve of waiting) resolve();
    for (const jobId of [...lateJobs]) finishJob(jobId);
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

  /** Dyn allows one running job per session; denominator recorded it as HTTP 400 `running`. */
  const sessionBusy = (style: 'running-400' | 'failure-200' = 'running-400'): DynAnswer => {
    const busy = msg(
      'token: This session already has a job running',
      'OPERATION_FAILED',
      'ERROR',
      'API-B',
    );
    return style === 'running-400'
      ? answer(400, 'running', [busy])
      : answer(200, 'failure', [busy]);
  };

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
    pollAnswer: JobPollAnswer = 'incomplete',
  ): BackendResult {
    const jobId = String(nextJobId++);
    jobs.set(jobId, { token, remainingPolls: polls, result: cancelNow(id), pollAnswer });
    trimOldest(jobs, limit);
    return { kind: 'job', jobId, style };
  }

  /** Jobs whose work waits for `releaseHeld()` (or their polls). */
  const lateJobs = new Set<string>();

  /** A job whose work happens only when it finishes: `apply` runs then. */
  function startLateJob(
    token: string,
    until: { polls?: number; afterMs?: number },
    apply: () => DynAnswer | 'lost',
  ): BackendResult {
    const { polls, afterMs } = until;
    const jobId = String(nextJobId++);
    jobs.set(jobId, {
      token,
      remainingPolls: polls ?? Number.MAX_SAFE_INTEGER,
      result: undefined,
      finish: apply,
      pollAnswer: 'incomplete',
    });
    lateJobs.add(jobId);
    trimOldest(jobs, limit);
    if (afterMs !== undefined) {
      // Dyn runs the job whether or not anyone polls it.
      setTimeout(() => {
        finishJob(jobId);
      }, afterMs).unref();
    }
    return { kind: 'job', jobId, style: 'redirect' };
  }

  /** Finishes a job now: its work runs once, whoever polls it (or nobody). */
  function finishJob(jobId: string): void {
    const job = jobs.get(jobId);
    lateJobs.delete(jobId);
    if (job === undefined) return;
    job.remainingPolls = 0;
    if (job.result === undefined) job.result = job.finish?.() ?? 'lost';
  }

  const runningJobOf = (token: string): boolean =>
    [...jobs.values()].some((job) => job.token === token && job.remainingPolls > 0);

  async function run(
    token: string,
    id: string,
    b: DynBehaviour,
    io: CancelIo,
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
      case 'blocked': {
        // denominator's `taskBlocking` fixture: the blocking task is named in two INFO lines.
        const a = answer(400, 'failure', [
          msg('zone: Operation blocked by current task', 'ILLEGAL_OPERATION'),
          msg('task_name: ProvisionZone', null),
          msg('task_id: 39120953', null),
        ]);
        if (b.arrayWrapped === true) a.arrayWrapped = true;
        return out(a);
      }
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
        return startJob(token, id, b.polls ?? 1, 'redirect', b.pollAnswer);
      case 'incomplete-job':
        return startJob(token, id, b.polls ?? 1, 'incomplete');
      case 'incomplete-without-job':
        cancelNow(id);
        return { kind: 'job', jobId: null, style: 'incomplete' };
      case 'job-never-finishes':
        return startJob(token, id, Number.MAX_SAFE_INTEGER, 'redirect');
      case 'late-job':
        return startLateJob(token, b, () => cancelNow(id));
      case 'stays-pending':
        return startLateJob(token, b, () => 'lost');
      case 'status':
        return out(cancelNow(id));
      case 'job-lost': {
        const started = startJob(token, id, 1, 'redirect');
        // The job ran and is gone, as jobs go with their session.
        if (started.kind === 'job' && started.jobId !== null) jobs.delete(started.jobId);
        return started;
      }
      case 'rate-limited': {
        const a = failure(
          429,
          msg('rate: Too many requests', 'RATE_LIMIT_EXCEEDED', 'ERROR', 'API-A'),
        );
        if (b.withBody !== true) a.statusOnly = true;
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
            b.httpStatus ?? 400,
            msg('service: The requested service is currently unavailable', 'SERVICE_UNAVAILABLE'),
          ),
        );
      case 'slow':
        if (!(await io.wait(b.delayMs))) return undefined;
        return run(token, id, b.then ?? { kind: 'ok' }, io);
      case 'chunked': {
        const result = await run(token, id, b.then ?? { kind: 'ok' }, io);
        if (result?.kind === 'answer') result.answer.chunked = true;
        return result;
      }
      case 'drop-if-reused':
        if (io.reused && !dropped.has(id)) {
          dropped.add(id);
          return { kind: 'hostile', hostile: 'reset' };
        }
        return out(cancelNow(id));
      case 'other-task': {
        const a = cancelNow(id);
        if (a.data !== null) a.data = { ...a.data, task_id: b.taskId };
        return out(a);
      }
      case 'null-fields': {
        const a = cancelNow(id);
        a.data = null;
        a.nullData = true;
        a.jobId = null;
        return out(a);
      }
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
      case 'session-busy': {
        const seen = busyCount.get(id) ?? 0;
        if (b.times !== undefined && seen >= b.times) return out(cancelNow(id));
        busyCount.set(id, seen + 1);
        return out(sessionBusy(b.style));
      }
    }
  }

  /** Count keys of reads, apart from those of cancels of the same task. */
  const readKey = (id: string): string => `read:${id}`;

  /**
   * A read's answer from the behaviours a plain answer can carry; undefined for the rest (jobs,
   * slow or broken transports), which a read answers as `ok` here and `read()` renders fully.
   */
  function readAnswer(
    id: string,
    b: DynBehaviour,
    token: string | undefined,
  ): DynAnswer | undefined {
    switch (b.kind) {
      case 'not-found':
        return failure(404, msg('task: No such task', 'NOT_FOUND'));
      case 'array-wrapped-error': {
        const a = failure(404, msg('task: No such task', 'NOT_FOUND'));
        a.arrayWrapped = true;
        return a;
      }
      case 'already-complete':
        taskOf(id).status = 'complete';
        return undefined;
      case 'token-expired-once':
        if (expiredOnce.has(readKey(id))) return undefined;
        expiredOnce.add(readKey(id));
        if (token !== undefined) sessions.delete(token);
        return expired();
      case 'token-expired-always':
        if (token !== undefined) sessions.delete(token);
        return expired();
      case 'rate-limited': {
        const a = failure(
          429,
          msg('rate: Too many requests', 'RATE_LIMIT_EXCEEDED', 'ERROR', 'API-A'),
        );
        if (b.withBody !== true) a.statusOnly = true;
        if (b.retryAfterSeconds !== undefined)
          a.headers = { 'retry-after': String(b.retryAfterSeconds) };
        return a;
      }
      case 'service-unavailable':
        return failure(
          b.httpStatus ?? 400,
          msg('service: The requested service is currently unavailable', 'SERVICE_UNAVAILABLE'),
        );
      case 'session-busy': {
        const seen = busyCount.get(readKey(id)) ?? 0;
        if (b.times !== undefined && seen >= b.times) return undefined;
        busyCount.set(readKey(id), seen + 1);
        return sessionBusy(b.style);
      }
      case 'missing-err-cd':
        return failure(400, {
          source: 'BLL',
          lvl: 'ERROR',
          info: 'task: Something unexpected happened',
        });
      case 'permission-denied':
        return failure(
          400,
          msg('task: You do not have permission to view this task', 'PERMISSION_DENIED'),
        );
      case 'invalid-data':
        return failure(400, msg('task_id: Invalid task id', 'INVALID_DATA'));
      case 'unknown-code':
        return failure(400, msg('task: Something new went wrong', 'SOMETHING_NEW'));
      case 'other-task':
        return answer(200, 'success', [], { ...taskOf(id), task_id: b.taskId });
      case 'null-fields': {
        const a = answer(200, 'success', [], null);
        a.nullData = true;
        a.jobId = null;
        return a;
      }
      default:
        return undefined;
    }
  }

  /** A read that carries a plain answer: the task as it is, or the scripted failure. */
  function readNow(id: string, token: string | undefined, b = behaviours.get(id)): DynAnswer {
    if (token !== undefined && runningJobOf(token)) return sessionBusy();
    return (
      (b === undefined ? undefined : readAnswer(id, b, token)) ??
      answer(200, 'success', [], { ...taskOf(id) })
    );
  }

  /** A read with every behaviour: slow, chunked and broken answers too. */
  async function readWith(
    token: string,
    id: string,
    b: DynBehaviour,
    io: CancelIo,
  ): Promise<BackendResult | undefined> {
    switch (b.kind) {
      case 'unavailable':
      case 'garbage-500':
      case 'malformed':
        return { kind: b.kind };
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
      case 'slow':
        if (!(await io.wait(b.delayMs))) return undefined;
        return readWith(token, id, b.then ?? { kind: 'ok' }, io);
      case 'hold':
        await new Promise<void>((resolve) => held.push(resolve));
        return { kind: 'answer', answer: readNow(id, token, { kind: 'ok' }) };
      case 'chunked': {
        const result = await readWith(token, id, b.then ?? { kind: 'ok' }, io);
        if (result?.kind === 'answer') result.answer.chunked = true;
        return result;
      }
      case 'oversized': {
        const a = readNow(id, token, { kind: 'ok' });
        if (a.data !== null) a.data = { ...a.data, message: 'x'.repeat(300_000) };
        return { kind: 'answer', answer: a };
      }
      default:
        return { kind: 'answer', answer: readNow(id, token, b) };
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
        // go-dynect #3's capture: `data: null` and `job_id: null`.
        const a = failure(
          404,
          msg('token: required field missing', 'MISSING_DATA', 'ERROR', 'API-A'),
        );
        a.nullData = true;
        a.jobId = null;
        return a;
      }
      return sessions.has(token) ? undefined : expired();
    },
    async cancel(token, id, io) {
      if (runningJobOf(token)) return { kind: 'answer', answer: sessionBusy() };
      return run(token, id, behaviours.get(id) ?? { kind: 'ok' }, io);
    },
    job(token, jobId) {
      const job = jobs.get(jobId);
      const noSuchJob = (): JobResult => ({
        kind: 'answer',
        answer: failure(404, msg('job: No such job', 'NOT_FOUND')),
      });
      if (job === undefined || job.token !== token) return noSuchJob();
      if (job.remainingPolls > 0) {
        job.remainingPolls--;
        // A late job's last incomplete poll is this one; the next finds it done.
        if (job.remainingPolls === 0) finishJob(jobId);
        if (job.pollAnswer !== 'incomplete') {
          return { kind: 'redirect', jobId, withLocation: job.pollAnswer === 'redirect' };
        }
        const a = answer(200, 'incomplete', [], null);
        a.jobId = jobId;
        a.nullData = true;
        return { kind: 'answer', answer: a };
      }
      if (job.result === undefined) finishJob(jobId);
      if (job.result === 'lost' || job.result === undefined) {
        jobs.delete(jobId);
        return noSuchJob();
      }
      return { kind: 'answer', answer: job.result };
    },
    getTask: (id, token) => readNow(id, token),
    async read(token, id, io) {
      const b = behaviours.get(id) ?? { kind: 'ok' };
      return readWith(token, id, b, io);
    },
    isAlive: () => answer(200, 'success', [msg('isalive: User session is still active', null)]),
    keepAlive: () => answer(200, 'success', [msg('keepalive: User session extended', null)]),
    setBehaviour(taskId, behaviour) {
      behaviours.set(String(taskId), behaviour);
      // The scripted state is where the task starts; a cancel then changes it as Dyn would.
      if (behaviour.kind === 'status') taskOf(String(taskId)).status = behaviour.status;
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
      busyCount.clear();
      dropped.clear();
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
