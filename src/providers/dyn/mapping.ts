import {
  failed,
  type Confirmation,
  type ProviderOutcome,
  type UpstreamDetail,
} from '../../core/provider-outcome';
import type { UnifiedTask } from '../../core/task';

/**
 * Dyn's response envelope, the same for REST (upper-case message keys) and SOAP (lower-case),
 * normalised. Pure: no I/O here; REST and SOAP transports both feed this module.
 */
export interface DynMessage {
  source?: string;
  lvl?: string;
  /** `null` on informational lines; absent altogether on some responses (dyn-python #133). */
  errCd?: string | null;
  info?: string;
}

export interface DynEnvelope {
  status: string;
  data: unknown;
  jobId?: string;
  msgs: DynMessage[];
}

/** What a Dyn call was for: canceling the task, or reading it (`GET /Task/<id>/`, `GetOneTask`). */
export type DynOperation = 'cancel' | 'read';

/** What one Dyn answer means for a cancel or a read. */
export type DynClassification =
  | { kind: 'outcome'; outcome: ProviderOutcome }
  /** Accepted as a job: poll it, never resend the request. */
  | { kind: 'incomplete'; jobId: string }
  /** The session is gone (expired, idle, IP change, token missing): log in again once, retry once. */
  | { kind: 'auth_expired'; detail: DynMessage }
  /** "This session already has a job running": the session is alive but busy; use another one. */
  | { kind: 'session_busy'; detail: DynMessage };

/**
 * Dyn accepted the cancel as a job, but nothing can confirm its result: the deadline passed, the
 * job has no id to poll, Dyn no longer knows it (job ids live only as long as their session), or
 * a poll was answered with something unusable. Never `not_found` or `upstream_error`.
 */
export function jobNotConfirmed(
  jobId: string | undefined,
  why: string,
  upstream?: UpstreamDetail,
): ProviderOutcome {
  const job = jobId === undefined ? 'a job' : `job ${jobId}`;
  return failed(
    'timeout',
    'JOB_NOT_CONFIRMED',
    `Dyn accepted the cancel as ${job} but ${why}; whether the cancel completed is unknown`,
    { upstream: upstream ?? { code: 'JOB_INCOMPLETE', message: job } },
  );
}

/**
 * Dyn took a read as a job (any request may become one after about 5 s) and the job gave no
 * answer: nothing was changed, so this is a plain timeout the caller may repeat at once.
 */
export function jobNotRead(
  jobId: string | undefined,
  why: string,
  upstream?: UpstreamDetail,
): ProviderOutcome {
  const job = jobId === undefined ? 'a job' : `job ${jobId}`;
  return failed(
    'timeout',
    'UPSTREAM_TIMEOUT',
    `Dyn took the read of the task as ${job} but ${why}; the task's state was not read`,
    { upstream: upstream ?? { code: 'JOB_INCOMPLETE', message: job } },
  );
}

/** A job of `operation` that nothing can finish reading: `jobNotConfirmed` or `jobNotRead`. */
export function unfinishedJob(
  operation: DynOperation,
  jobId: string | undefined,
  why: string,
  upstream?: UpstreamDetail,
): ProviderOutcome {
  return operation === 'cancel'
    ? jobNotConfirmed(jobId, why, upstream)
    : jobNotRead(jobId, why, upstream);
}

/** Dyn's default when a 429 carries no Retry-After: "for up to sixty seconds". */
export const DYN_RATE_LIMIT_RETRY_AFTER_SECONDS = 60;

/** Task states after which a cancel cannot apply. */
const FINAL_TASK_STATES = new Set(['complete', 'failed', 'canceled', 'cancelled']);

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function text(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

function pick(record: Record<string, unknown>, upper: string): unknown {
  return upper in record ? record[upper] : record[upper.toLowerCase()];
}

function toMessage(raw: unknown): DynMessage | undefined {
  if (!isRecord(raw)) return undefined;
  const msg: DynMessage = {};
  const source = text(pick(raw, 'SOURCE'));
  const lvl = text(pick(raw, 'LVL'));
  const info = text(pick(raw, 'INFO'));
  if (source !== undefined) msg.source = source;
  if (lvl !== undefined) msg.lvl = lvl.toUpperCase();
  if (info !== undefined) msg.info = info;
  if ('ERR_CD' in raw || 'err_cd' in raw) {
    const errCd = pick(raw, 'ERR_CD');
    // SOAP renders a null err_cd as an empty element.
    msg.errCd = typeof errCd === 'string' && errCd !== '' ? errCd : null;
  }
  return msg;
}

/**
 * Reads a Dyn envelope from parsed JSON (REST) or node-soap output (SOAP). Accepts the legacy
 * one-element array wrapping. Returns undefined when the value is not an envelope at all.
 */
export function readEnvelope(value: unknown): DynEnvelope | undefined {
  const raw = Array.isArray(value) && value.length === 1 ? (value[0] as unknown) : value;
  if (!isRecord(raw)) return undefined;
  const status = text(raw.status);
  if (status === undefined) return undefined;
  const msgsRaw = raw.msgs;
  const list: unknown[] = Array.isArray(msgsRaw) ? msgsRaw : msgsRaw === undefined ? [] : [msgsRaw];
  const env: DynEnvelope = {
    status: status.toLowerCase(),
    data: raw.data,
    msgs: list.map(toMessage).filter((m): m is DynMessage => m !== undefined),
  };
  const jobId = text(raw.job_id);
  if (jobId !== undefined && jobId !== '') env.jobId = jobId;
  return env;
}

/** The message that explains a failure: first ERROR, else first with a code. */
export function primaryMessage(msgs: readonly DynMessage[]): DynMessage | undefined {
  return (
    msgs.find((m) => m.lvl === 'ERROR' || m.lvl === 'FATAL') ??
    msgs.find((m) => typeof m.errCd === 'string') ??
    msgs[0]
  );
}

function epochToIso(value: unknown): string | undefined {
  const seconds =
    typeof value === 'number'
      ? value
      : typeof value === 'string' && /^\d+$/.test(value)
        ? Number(value)
        : NaN;
  if (!Number.isFinite(seconds) || seconds <= 0) return undefined;
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

function toInt(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return Number(value);
  return undefined;
}

/** Dyn `TaskData` → unified `task`. Undefined when `data` is not a task. */
export function toUnifiedTask(data: unknown): UnifiedTask | undefined {
  if (!isRecord(data)) return undefined;
  const id = text(data.task_id);
  if (id === undefined) return undefined;
  const task: UnifiedTask = { id };
  const name = text(data.name);
  const zone = text(data.zone_name);
  const customer = text(data.customer_name);
  const status = text(data.status);
  const message = text(data.message);
  const stepCount = toInt(data.step_count);
  const totalSteps = toInt(data.total_steps);
  const createdAt = epochToIso(data.created_ts);
  const modifiedAt = epochToIso(data.modified_ts);
  if (name !== undefined) task.name = name;
  if (zone !== undefined) task.zone = zone;
  if (customer !== undefined) task.customer = customer;
  if (status !== undefined) task.status = status;
  if (stepCount !== undefined) task.stepCount = stepCount;
  if (totalSteps !== undefined) task.totalSteps = totalSteps;
  const blocking = data.blocking;
  if (blocking === 'Y' || blocking === 'y' || blocking === true) task.blocking = true;
  else if (blocking === 'N' || blocking === 'n' || blocking === false) task.blocking = false;
  if (message !== undefined) task.message = message;
  if (createdAt !== undefined) task.createdAt = createdAt;
  if (modifiedAt !== undefined) task.modifiedAt = modifiedAt;
  return task;
}

function upstreamOf(msg: DynMessage | undefined): { code: string; message?: string } {
  const code = typeof msg?.errCd === 'string' ? msg.errCd : 'UNKNOWN';
  return msg?.info === undefined ? { code } : { code, message: msg.info };
}

/** True for the session errors that a fresh login cures. */
export function isSessionError(msg: DynMessage | undefined): boolean {
  const info = msg?.info?.trimStart() ?? '';
  return info.startsWith('login:') || info.startsWith('token:');
}

/**
 * Dyn runs one job per session and refuses a second with this INFO (`OPERATION_FAILED`, seen both
 * as HTTP 400 with `status: running` and as HTTP 200 `failure`). The session is alive: it is busy.
 */
const SESSION_BUSY = /already has a job running/i;

/** "zone: Operation blocked by current task": another task holds the zone for now. */
const BLOCKED_BY_TASK = /operation blocked by current task/i;

/** The blocking task, as the INFO line after a blocked answer names it (`task_id: 39120953`). */
const BLOCKING_TASK_ID = /^\s*task_id:\s*(\d+)\s*$/;

/** "Task is already complete/canceled/…": the task reached a final state before this cancel. */
const ALREADY_FINAL = /\balready\s+(complete|completed|canceled|cancelled|failed)\b/i;

/** Dyn's own spelling of a final state named in an INFO text. */
function finalStateOf(info: string | undefined): string | undefined {
  const word = ALREADY_FINAL.exec(info ?? '')?.[1]?.toLowerCase();
  if (word === undefined) return undefined;
  if (word.startsWith('cancel')) return 'canceled';
  if (word.startsWith('complete')) return 'complete';
  return 'failed';
}

/**
 * An answer judged by its HTTP status alone: a 429 (whatever the body), or an answer without a
 * Dyn envelope (an HTML error page, an empty or non-JSON/non-SOAP body). REST and SOAP share it.
 */
export function classifyHttpStatus(
  httpStatus: number,
  retryAfterSeconds?: number,
): ProviderOutcome {
  const upstream = { code: `HTTP ${httpStatus}` };
  if (httpStatus === 429) {
    return failed('rate_limited', 'UPSTREAM_RATE_LIMITED', 'Dyn rate limit reached (HTTP 429)', {
      retryAfterSeconds: retryAfterSeconds ?? DYN_RATE_LIMIT_RETRY_AFTER_SECONDS,
      upstream,
      notSent: true,
    });
  }
  if (httpStatus >= 500) {
    // 503 is "not processed" by definition; other 5xx may come after the work.
    return failed('unavailable', 'UPSTREAM_UNAVAILABLE', `Dyn answered HTTP ${httpStatus}`, {
      upstream,
      ...(httpStatus === 503 ? { notSent: true } : {}),
    });
  }
  return failed(
    'upstream_error',
    'UPSTREAM_BAD_RESPONSE',
    `Dyn answered HTTP ${httpStatus} without a usable body`,
    { upstream },
  );
}

/**
 * What a cancel and a read share before their own rules: a job, a busy or expired session, an
 * HTTP 5xx. Undefined when the answer is for the caller's own rules (a success, or a failure with
 * a business code).
 */
function classifyShared(
  operation: DynOperation,
  httpStatus: number,
  env: DynEnvelope,
): DynClassification | undefined {
  const out = (outcome: ProviderOutcome): DynClassification => ({ kind: 'outcome', outcome });
  if (env.status === 'incomplete') {
    if (env.jobId === undefined) {
      return out(
        unfinishedJob(operation, undefined, 'answered "incomplete" without a job id to poll'),
      );
    }
    return { kind: 'incomplete', jobId: env.jobId };
  }
  if (env.status === 'success') return undefined;
  const primary = primaryMessage(env.msgs);
  const busy = env.msgs.find((m) => SESSION_BUSY.test(m.info ?? ''));
  if (busy !== undefined) return { kind: 'session_busy', detail: busy };
  if (isSessionError(primary)) return { kind: 'auth_expired', detail: primary ?? {} };
  if (httpStatus >= 500) {
    // A 503, or Dyn's own SERVICE_UNAVAILABLE, means the request was not processed.
    const notSent = httpStatus === 503 || primary?.errCd === 'SERVICE_UNAVAILABLE';
    return out(
      failed('unavailable', 'UPSTREAM_UNAVAILABLE', `Dyn answered HTTP ${httpStatus}`, {
        upstream: upstreamOf(primary),
        ...(notSent ? { notSent: true } : {}),
      }),
    );
  }
  return undefined;
}

/** A failure's business code, for the codes a cancel and a read answer alike. */
function classifyErrorCode(
  primary: DynMessage | undefined,
  retryAfterSeconds: number | undefined,
): ProviderOutcome {
  const upstream = upstreamOf(primary);
  switch (primary?.errCd) {
    case 'NOT_FOUND':
      return failed('not_found', 'TASK_NOT_FOUND', 'Dyn says the task does not exist', {
        upstream,
      });
    case 'INVALID_DATA':
    case 'MISSING_DATA':
    case 'INVALID_REQUEST':
      return failed('rejected', 'UPSTREAM_REJECTED', 'Dyn refused the request as invalid', {
        upstream,
      });
    case 'PERMISSION_DENIED':
      return failed(
        'upstream_error',
        'UPSTREAM_AUTH_FAILED',
        "Dyn refused the gateway's account permission for this task",
        { upstream },
      );
    case 'SERVICE_UNAVAILABLE':
      return failed('unavailable', 'UPSTREAM_UNAVAILABLE', 'Dyn says the service is unavailable', {
        upstream,
        notSent: true,
      });
    case 'RATE_LIMIT_EXCEEDED':
      return failed('rate_limited', 'UPSTREAM_RATE_LIMITED', 'Dyn rate limit reached', {
        upstream,
        retryAfterSeconds: retryAfterSeconds ?? DYN_RATE_LIMIT_RETRY_AFTER_SECONDS,
        notSent: true,
      });
    default:
      return failed('upstream_error', 'UPSTREAM_FAULT', `Dyn answered ${upstream.code}`, {
        upstream,
      });
  }
}

/**
 * Classifies one Dyn answer to a cancel (or a job's final answer, which is the cancel's envelope).
 * `httpStatus` matters only where the body says nothing usable; `retryAfterSeconds` is the
 * upstream's header when it sent one; `taskId` is the task the cancel was for.
 */
export function classifyCancel(
  httpStatus: number,
  env: DynEnvelope | undefined,
  retryAfterSeconds?: number,
  taskId?: string,
): DynClassification {
  const out = (outcome: ProviderOutcome): DynClassification => ({ kind: 'outcome', outcome });
  if (httpStatus === 429 || env === undefined) {
    return out(classifyHttpStatus(httpStatus, retryAfterSeconds));
  }
  const shared = classifyShared('cancel', httpStatus, env);
  if (shared !== undefined) return shared;
  if (env.status === 'success') {
    const task = toUnifiedTask(env.data);
    // Dyn said success: that is the confirmation, whatever status the task object shows now.
    return out(task === undefined ? { outcome: 'canceled' } : { outcome: 'canceled', task });
  }

  const primary = primaryMessage(env.msgs);
  const upstream = upstreamOf(primary);
  const data = toUnifiedTask(env.data);
  // A Fault's ErrorResponse carries no task: then only the INFO text says the state.
  const stated = finalStateOf(primary?.info);
  const task =
    data ??
    (stated !== undefined && taskId !== undefined ? { id: taskId, status: stated } : undefined);
  const withTask = task === undefined ? {} : { task };
  const finalState =
    data?.status !== undefined && FINAL_TASK_STATES.has(data.status.toLowerCase())
      ? data.status
      : stated;
  if (finalState !== undefined) {
    return out(
      failed('conflict', 'TASK_ALREADY_FINISHED', `the task is already ${finalState}`, {
        upstream,
        ...withTask,
      }),
    );
  }
  if (primary?.errCd === 'ILLEGAL_OPERATION' && BLOCKED_BY_TASK.test(primary.info ?? '')) {
    const blocker = env.msgs
      .map((m) => BLOCKING_TASK_ID.exec(m.info ?? '')?.[1])
      .find((id) => id !== undefined);
    return out(
      failed(
        'conflict',
        'TASK_BLOCKED',
        `the zone is busy with ${blocker === undefined ? 'another task' : `task ${blocker}`}; the cancel can be tried again later`,
        { upstream, retryable: true, ...withTask },
      ),
    );
  }
  if (primary?.errCd === 'ILLEGAL_OPERATION' || primary?.errCd === 'OPERATION_FAILED') {
    return out(
      failed(
        'conflict',
        'TASK_NOT_CANCELABLE',
        'Dyn refused to cancel the task in its current state',
        { upstream, ...withTask },
      ),
    );
  }
  return out(classifyErrorCode(primary, retryAfterSeconds));
}

/**
 * Classifies one Dyn answer to a task read (`GET /Task/<id>/`, `GetOneTask`, or the final answer
 * of the job a read became): `found` with the task whatever its status, `not_found` for
 * `NOT_FOUND`, and the same failure outcomes as a cancel. Nothing about a read is a conflict.
 */
export function classifyRead(
  httpStatus: number,
  env: DynEnvelope | undefined,
  retryAfterSeconds?: number,
): DynClassification {
  if (httpStatus === 429 || env === undefined) {
    return { kind: 'outcome', outcome: classifyHttpStatus(httpStatus, retryAfterSeconds) };
  }
  const shared = classifyShared('read', httpStatus, env);
  if (shared !== undefined) return shared;
  if (env.status === 'success') {
    const task = toUnifiedTask(env.data);
    if (task === undefined) {
      return {
        kind: 'outcome',
        outcome: failed(
          'upstream_error',
          'UPSTREAM_BAD_RESPONSE',
          'Dyn answered the task read with success but without a task',
          { upstream: upstreamOf(primaryMessage(env.msgs)) },
        ),
      };
    }
    return { kind: 'outcome', outcome: { outcome: 'found', task } };
  }
  return {
    kind: 'outcome',
    outcome: classifyErrorCode(primaryMessage(env.msgs), retryAfterSeconds),
  };
}

/** One Dyn answer of `operation`: `classifyCancel` or `classifyRead`. */
export function classifyAnswer(
  operation: DynOperation,
  httpStatus: number,
  env: DynEnvelope | undefined,
  retryAfterSeconds?: number,
  taskId?: string,
): DynClassification {
  return operation === 'cancel'
    ? classifyCancel(httpStatus, env, retryAfterSeconds, taskId)
    : classifyRead(httpStatus, env, retryAfterSeconds);
}

/** An INFO about the task itself (`task: No such task`), not about the job that carried it. */
const ABOUT_THE_TASK = /^\s*task\b/i;

/**
 * Classifies the answer to a job poll. A final job answer is the original request's own envelope
 * (a cancel's, or a read's); a `NOT_FOUND` that is not about the task (`job: No such job`) means
 * Dyn no longer knows the job.
 */
export function classifyJobPoll(
  jobId: string,
  httpStatus: number,
  env: DynEnvelope | undefined,
  retryAfterSeconds?: number,
  taskId?: string,
  operation: DynOperation = 'cancel',
): DynClassification {
  const primary = env === undefined ? undefined : primaryMessage(env.msgs);
  if (
    env !== undefined &&
    env.status !== 'success' &&
    env.status !== 'incomplete' &&
    primary?.errCd === 'NOT_FOUND' &&
    !ABOUT_THE_TASK.test(primary.info ?? '')
  ) {
    return {
      kind: 'outcome',
      outcome: unfinishedJob(operation, jobId, 'Dyn no longer knows the job', upstreamOf(primary)),
    };
  }
  return classifyAnswer(operation, httpStatus, env, retryAfterSeconds, taskId);
}

/** What a login answer means: a token, or the outcome to report (never echoing credentials). */
export type LoginClassification =
  { ok: true; token: string } | { ok: false; outcome: ProviderOutcome; badCredentials: boolean };

export function classifyLogin(
  httpStatus: number,
  env: DynEnvelope | undefined,
  retryAfterSeconds?: number,
): LoginClassification {
  if (env?.status === 'success' && isRecord(env.data)) {
    const token = text(env.data.token);
    if (token !== undefined && token !== '') return { ok: true, token };
  }
  const base = classifyCancel(httpStatus, env, retryAfterSeconds);
  if (
    base.kind === 'outcome' &&
    (base.outcome.outcome === 'rate_limited' || base.outcome.outcome === 'unavailable')
  ) {
    return { ok: false, outcome: base.outcome, badCredentials: false };
  }
  const primary = env === undefined ? undefined : primaryMessage(env.msgs);
  return {
    ok: false,
    badCredentials: env !== undefined,
    outcome: failed(
      'upstream_error',
      'UPSTREAM_AUTH_FAILED',
      "Dyn refused the gateway's credentials (login failed); check the provider's customerName/userName/password",
      { upstream: upstreamOf(primary) },
    ),
  };
}

/** Dyn task states that no cancel can change any more, other than `canceled`. */
const ENDED_ON_ITS_OWN = new Set(['complete', 'failed']);

/** True for Dyn's spelling of a canceled task (the docs write `canceled`; accept `cancelled`). */
export function isCanceledStatus(status: string | undefined): boolean {
  const s = status?.toLowerCase();
  return s === 'canceled' || s === 'cancelled';
}

/**
 * What a task read says about a cancel that timed out: canceled, ended on its own, still to be
 * canceled, gone, or nothing settled yet (a failed read, asked again later).
 */
export function confirmationOfRead(read: ProviderOutcome): Confirmation {
  if (read.outcome === 'found' && read.task !== undefined) {
    const { task } = read;
    if (isCanceledStatus(task.status)) {
      return { state: 'canceled', task, outcome: { outcome: 'canceled', task } };
    }
    if (task.status !== undefined && ENDED_ON_ITS_OWN.has(task.status.toLowerCase())) {
      return { state: 'finished', task, outcome: read };
    }
    return { state: 'pending', task, outcome: read };
  }
  if (read.outcome === 'not_found') return { state: 'gone', outcome: read };
  const unknown: Confirmation = { state: 'unknown', outcome: read };
  if (read.retryAfterSeconds !== undefined) unknown.retryAfterSeconds = read.retryAfterSeconds;
  return unknown;
}

/**
 * What the final answer of the job that accepted the cancel says: `canceled` when Dyn applied it
 * (or finds the task canceled already); undefined when only a read of the task can tell.
 */
export function confirmationOfJob(final: ProviderOutcome): Confirmation | undefined {
  if (final.outcome === 'canceled') {
    return final.task === undefined
      ? { state: 'canceled', outcome: final }
      : { state: 'canceled', task: final.task, outcome: final };
  }
  const task = final.task;
  if (final.error?.code === 'TASK_ALREADY_FINISHED' && task !== undefined) {
    if (isCanceledStatus(task.status)) {
      return { state: 'canceled', task, outcome: { outcome: 'canceled', task } };
    }
  }
  return undefined;
}
