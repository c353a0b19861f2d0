import { allowsFallback } from '../core/outcome';
import type { ProviderOutcome } from '../core/provider-outcome';
import {
  fromProviderOutcome,
  gatewayFailure,
  type Answer,
  type AttemptRecord,
} from '../core/result';
import type { Logger } from '../observability/logger';
import type { Clock } from '../resilience/clock';
import { deadlineIn, type Deadline } from '../resilience/deadline';
import type { ProviderRuntime, Runtime } from './runtime';

/** One validated cancel, as dispatch sees it. */
export interface DispatchRequest {
  requestId: string;
  target: string;
  taskId: string;
}

export interface DispatchOptions {
  log: Logger;
  clock: Clock;
  /** Told about every upstream attempt (metrics). */
  onAttempt?: (provider: ProviderRuntime, outcome: ProviderOutcome, durationMs: number) => void;
  /** An outer deadline (a batch's): the request ends at the earlier of it and the route's. */
  within?: Deadline;
}

/**
 * Runs one cancel through its route: one deadline covers every attempt and fallback; the next
 * provider is tried only after `unavailable` or `rate_limited`. Answers outcomes, never statuses.
 */
export async function dispatchCancel(
  runtime: Runtime,
  request: DispatchRequest,
  options: DispatchOptions,
): Promise<Answer> {
  const { requestId, target, taskId } = request;
  const route = runtime.routes.get(target);
  if (route === undefined) {
    return {
      body: gatewayFailure(
        requestId,
        'unknown_target',
        'UNKNOWN_TARGET',
        `no route named "${target}"`,
        { target, taskId },
      ),
    };
  }
  const [primary] = route.chain;
  if (primary === undefined) throw new Error(`route ${target} has an empty chain`);
  const problem = primary.provider.checkTaskId(taskId);
  if (problem !== undefined) {
    return {
      body: gatewayFailure(
        requestId,
        'invalid_request',
        'TASK_ID_OUT_OF_RANGE',
        `taskId ${problem}`,
        {
          target,
          provider: primary.name,
          protocol: primary.provider.protocol,
          taskId,
          details: [{ path: 'taskId', message: problem }],
        },
      ),
    };
  }
  const { clock, within } = options;
  const budgetMs =
    within === undefined ? route.timeoutMs : Math.min(route.timeoutMs, within.at - clock.now());
  const deadline = deadlineIn(Math.max(0, budgetMs), clock);
  try {
    return await runChain(route.chain, primary, request, deadline, options);
  } finally {
    deadline.dispose();
  }
}

/** The route's providers in order, within one deadline. */
async function runChain(
  chain: readonly ProviderRuntime[],
  primary: ProviderRuntime,
  request: DispatchRequest,
  deadline: Deadline,
  options: DispatchOptions,
): Promise<Answer> {
  const { log } = options;
  const { requestId, target, taskId } = request;
  const attempts: AttemptRecord[] = [];
  let last: ProviderOutcome | undefined;
  let lastProvider = primary;
  for (const entry of chain) {
    if (entry !== primary && entry.provider.checkTaskId(taskId) !== undefined) continue;
    if (last !== undefined && deadline.signal.aborted) break;
    lastProvider = entry;
    // Most cancels never log from inside a provider: build the child logger only when asked.
    let providerLog: Logger | undefined;
    const ctxLog = (): Logger =>
      (providerLog ??= log.child({ requestId, target, provider: entry.name }));
    last = await entry.run(
      (signal) =>
        entry.provider.cancel(taskId, {
          signal,
          requestId,
          get log() {
            return ctxLog();
          },
        }),
      {
        deadline,
        onAttempt: (outcome, durationMs) => {
          const record: AttemptRecord = {
            provider: entry.name,
            outcome: outcome.outcome,
            durationMs: Math.round(durationMs),
          };
          if (outcome.error !== undefined) record.errorCode = outcome.error.code;
          attempts.push(record);
          options.onAttempt?.(entry, outcome, durationMs);
        },
      },
    );
    if (!allowsFallback(last.outcome)) break;
  }
  if (last === undefined) throw new Error(`route ${target}: no provider was called`);
  const body = fromProviderOutcome(
    {
      requestId,
      target,
      provider: lastProvider.name,
      protocol: lastProvider.provider.protocol,
      taskId,
    },
    last,
  );
  body.attempts = attempts;
  const answer: Answer = { body };
  if (last.outcome === 'timeout' && last.notSent !== true) answer.ambiguous = true;
  if (last.retryAfterSeconds !== undefined) answer.retryAfterSeconds = last.retryAfterSeconds;
  return answer;
}
