import { failed, type Confirmation } from '../core/provider-outcome';
import type { PendingConfirmation } from '../core/result';
import type { Logger } from '../observability/logger';
import type { Clock } from '../resilience/clock';
import { scopedTimeout } from '../resilience/deadline';
import type { Runtime } from './runtime';

/** One confirmation may take this long when neither the caller nor the route says otherwise. */
export const CONFIRM_TIMEOUT_MS = 10_000;

export interface ConfirmOptions {
  log: Logger;
  clock: Clock;
  /** This attempt's budget (job polls, then a read); default the route's `timeoutMs`. */
  timeoutMs?: number;
  /** Stops the attempt at once (drain, reload): it then answers `unknown`. */
  signal?: AbortSignal;
  /** Sent upstream as the request id (the timed-out request's own); default `confirm-<taskId>`. */
  requestId?: string;
}

/** Never aborts: the budget alone ends an attempt without a stop signal. */
const NEVER = new AbortController().signal;

/**
 * One attempt to settle a cancel that timed out (`Answer.pending`): the provider that timed out
 * polls the job that accepted the cancel while that job exists, then reads the task. Outside the
 * route's policies on purpose: a background confirmation must not take a caller's bulkhead slot
 * or move the circuit breaker, and it waits for the provider's rate limit rather than exceed it.
 * An open circuit answers `unknown` without calling the upstream. Rejects only on a bug.
 */
export async function confirmCancel(
  runtime: Runtime,
  target: string,
  taskId: string,
  pending: PendingConfirmation,
  options: ConfirmOptions,
): Promise<Confirmation> {
  const entry = runtime.providers.get(pending.provider);
  if (entry?.provider.confirm === undefined) {
    return {
      state: 'unsupported',
      outcome: failed(
        'upstream_error',
        'UPSTREAM_FAULT',
        entry === undefined
          ? `provider "${pending.provider}" is no longer configured; the cancel cannot be confirmed`
          : `provider "${pending.provider}" cannot confirm a cancel`,
      ),
    };
  }
  if (entry.circuitState() === 'open') {
    return {
      state: 'unknown',
      outcome: failed(
        'unavailable',
        'CIRCUIT_OPEN',
        `the circuit of provider "${entry.name}" is open; the cancel was not confirmed yet`,
        { notSent: true },
      ),
    };
  }
  const budgetMs = options.timeoutMs ?? runtime.routes.get(target)?.timeoutMs ?? CONFIRM_TIMEOUT_MS;
  const scope = scopedTimeout(options.signal ?? NEVER, budgetMs, options.clock);
  const log = options.log.child({ target, provider: entry.name, taskId, confirming: true });
  try {
    const { jobId } = pending;
    return await entry.provider.confirm(taskId, jobId === undefined ? {} : { jobId }, {
      signal: scope.signal,
      log,
      requestId: options.requestId ?? `confirm-${taskId}`,
    });
  } finally {
    scope.dispose();
  }
}
