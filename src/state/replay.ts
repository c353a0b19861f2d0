import type { Answer, UnifiedResult } from '../core/result';
import type { Remembered, StateStore } from './store';

/**
 * Makes repeated cancels of one `(target, taskId)` safe and cheap:
 * - concurrent duplicates in this process share one upstream call (single-flight); each answer
 *   carries its caller's own `requestId`;
 * - a confirmed cancel is remembered for `rememberSeconds` and replayed (`replayed: true`,
 *   no upstream call, `attempts` empty);
 * - an ambiguous timeout of ours is remembered, so a later "does not exist" says what most likely
 *   happened: `not_found` with `GONE_AFTER_TIMEOUT`; and a later "already finished" whose task is
 *   canceled is the confirmation of that earlier cancel: `canceled`, remembered as confirmed.
 */
export interface CancelMemory {
  run(
    target: string,
    taskId: string,
    requestId: string,
    call: () => Promise<Answer>,
  ): Promise<Answer>;
}

/** The answer as another caller sees it: same result, its own request id. */
/** Task states that mean "canceled" (Dyn's spelling and the British one). */
const CANCELED_STATES = new Set(['canceled', 'cancelled']);

/**
 * True when the upstream says the task already ended canceled: after a timeout of ours, that is
 * our own cancel having happened, not a conflict.
 */
function alreadyCanceled(body: UnifiedResult): boolean {
  const status = body.task?.status?.toLowerCase();
  return (
    body.outcome === 'conflict' &&
    body.error?.code === 'TASK_ALREADY_FINISHED' &&
    status !== undefined &&
    CANCELED_STATES.has(status)
  );
}

/** A conflict answer turned into the confirmed cancel it is (same call, same attempts). */
function asCanceled(answer: Answer): Answer {
  const { error: _conflict, ...rest } = answer.body;
  return { body: { ...rest, ok: true, outcome: 'canceled', retryable: false } };
}

function forCaller(answer: Answer, requestId: string): Answer {
  if (answer.body.requestId === requestId) return answer;
  return { ...answer, body: { ...answer.body, requestId } };
}

export function createCancelMemory(store: StateStore, rememberSeconds: number): CancelMemory {
  const inFlight = new Map<string, Promise<Answer>>();

  async function once(
    key: string,
    target: string,
    taskId: string,
    requestId: string,
    call: () => Promise<Answer>,
  ): Promise<Answer> {
    const remembered = await store.getOutcome(key);
    if (remembered?.kind === 'canceled') {
      const body: UnifiedResult = {
        ok: true,
        outcome: 'canceled',
        retryable: false,
        requestId,
        target,
        ...(remembered.provider === undefined ? {} : { provider: remembered.provider }),
        ...(remembered.protocol === undefined ? {} : { protocol: remembered.protocol }),
        taskId,
        ...(remembered.task === undefined ? {} : { task: remembered.task }),
        attempts: [],
        replayed: true,
      };
      return { body };
    }
    let answer = await call();
    if (remembered?.kind === 'timeout' && alreadyCanceled(answer.body)) answer = asCanceled(answer);
    const { body } = answer;
    if (body.outcome === 'canceled') {
      const kept: Remembered = { kind: 'canceled' };
      if (body.provider !== undefined) kept.provider = body.provider;
      if (body.protocol !== undefined) kept.protocol = body.protocol;
      if (body.task !== undefined) kept.task = body.task;
      await store.rememberOutcome(key, kept, rememberSeconds);
    } else if (answer.ambiguous === true) {
      await store.rememberOutcome(
        key,
        { kind: 'timeout', at: new Date().toISOString() },
        rememberSeconds,
      );
    } else if (body.outcome === 'not_found' && remembered?.kind === 'timeout') {
      const upstream = body.error?.upstream;
      body.error = {
        code: 'GONE_AFTER_TIMEOUT',
        message:
          `the upstream says the task does not exist; an earlier cancel through this gateway ` +
          `timed out at ${remembered.at} and most likely canceled it`,
        ...(upstream === undefined ? {} : { upstream }),
      };
    }
    return answer;
  }

  return {
    async run(target, taskId, requestId, call) {
      const key = `${target}:${taskId}`;
      const shared = inFlight.get(key);
      if (shared !== undefined) return forCaller(await shared, requestId);
      const running = once(key, target, taskId, requestId, call);
      inFlight.set(key, running);
      try {
        return forCaller(await running, requestId);
      } finally {
        inFlight.delete(key);
      }
    },
  };
}
