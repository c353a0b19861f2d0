import { allowsFallback } from '../core/outcome';
import type { ProviderOutcome } from '../core/provider-outcome';
import {
  fromProviderOutcome,
  gatewayFailure,
  type Answer,
  type AttemptRecord,
} from '../core/result';
import type { Logger } from '../observability/logger';
import type { RequestTrace } from '../observability/tracing';
import type { Provider } from '../providers/provider';
import type { Clock } from '../resilience/clock';
import { deadlineIn, type Deadline } from '../resilience/deadline';
import type { ProviderRuntime, Runtime } from './runtime';

/** One validated cancel or task read, as dispatch sees it. */
export interface DispatchRequest {
  requestId: string;
  target: string;
  taskId: string;
}

/** What a request asks of the route's providers: cancel the task, or read its state. */
export type DispatchOperation = 'cancel' | 'read';

export interface DispatchOptions {
  log: Logger;
  clock: Clock;
  /** Told about every upstream attempt (metrics). */
  onAttempt?: (provider: ProviderRuntime, outcome: ProviderOutcome, durationMs: number) => void;
  /** An outer deadline (a batch's): the request ends at the earlier of it and the route's. */
  within?: Deadline;
  /** The request's (or batch item's) trace, handed to every provider call as `CallContext.trace`. */
  trace?: RequestTrace;
}

/**
 * Runs one cancel through its route: one deadline covers every attempt and fallback; the next
 * provider is tried only after `unavailable` or `rate_limited`. Answers outcomes, never statuses.
 */
export function dispatchCancel(
  runtime: Runtime,
  request: DispatchRequest,
  options: DispatchOptions,
): Promise<Answer> {
  return dispatch('cancel', runtime, request, options);
}

/**
 * Reads the task's state through its route, with the same deadline, policies, fallback rule and
 * `attempts` as a cancel; nothing is canceled. The route's primary provider decides whether the
 * route can read at all: without a `read` (methodcall) the answer is `not_supported` and nothing
 * is sent, even when a fallback could read, because a fallback stands in for the primary only
 * while it is unavailable, and another protocol's upstream may hold another task under the same
 * id. Fallbacks without a `read` are skipped.
 */
export function dispatchRead(
  runtime: Runtime,
  request: DispatchRequest,
  options: DispatchOptions,
): Promise<Answer> {
  return dispatch('read', runtime, request, options);
}

/** Whether `provider` can take `operation` at all. */
function supports(provider: Provider, operation: DispatchOperation): boolean {
  return operation === 'cancel' || provider.read !== undefined;
}

async function dispatch(
  operation: DispatchOperation,
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
  if (!supports(primary.provider, operation)) {
    return {
      body: gatewayFailure(
        requestId,
        'not_supported',
        'OPERATION_NOT_SUPPORTED',
        `provider "${primary.name}" (${primary.provider.protocol}) cannot read a task: the protocol has no published read`,
        {
          target,
          provider: primary.name,
          protocol: primary.provider.protocol,
          taskId,
          attempts: [],
        },
      ),
    };
  }
  const { clock, within } = options;
  const budgetMs =
    within === undefined ? route.timeoutMs : Math.min(route.timeoutMs, within.at - clock.now());
  const deadline = deadlineIn(Math.max(0, budgetMs), clock);
  try {
    return await runChain(operation, route.chain, primary, request, deadline, options);
  } finally {
    deadline.dispose();
  }
}

/** The route's providers in order, within one deadline. */
async function runChain(
  operation: DispatchOperation,
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
    if (entry !== primary) {
      if (entry.provider.checkTaskId(taskId) !== undefined) continue;
      if (!supports(entry.provider, operation)) continue;
    }
    if (last !== undefined && deadline.signal.aborted) break;
    lastProvider = entry;
    // Most calls never log from inside a provider: build the child logger only when asked.
    let providerLog: Logger | undefined;
    const ctxLog = (): Logger =>
      (providerLog ??= log.child({ requestId, target, provider: entry.name }));
    const { provider } = entry;
    last = await entry.run(
      (signal) => {
        const ctx = {
          signal,
          requestId,
          ...(options.trace === undefined ? {} : { trace: options.trace }),
          get log() {
            return ctxLog();
          },
        };
        return operation === 'read' && provider.read !== undefined
          ? provider.read(taskId, ctx)
          : provider.cancel(taskId, ctx);
      },
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
  // A read changes nothing upstream: its timeout is not an ambiguous cancel.
  if (operation === 'cancel' && last.outcome === 'timeout' && last.notSent !== true) {
    answer.ambiguous = true;
    if (last.pending !== undefined && lastProvider.provider.confirm !== undefined) {
      answer.pending = { provider: lastProvider.name, ...last.pending };
    }
  }
  if (last.retryAfterSeconds !== undefined) answer.retryAfterSeconds = last.retryAfterSeconds;
  return answer;
}
