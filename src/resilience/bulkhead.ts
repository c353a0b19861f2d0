import { AsyncResource } from 'node:async_hooks';
import { BulkheadRejectedError, bulkhead } from 'cockatiel';
import { failed, type ProviderOutcome } from '../core/provider-outcome';
import type { Policy } from './policy';

/** How many attempts of one provider run at once, and how many may wait for a slot. */
export interface BulkheadOptions {
  maxConcurrent: number;
  maxQueue: number;
}

/** Resolves when `signal` aborts; the listener is removed by `dispose`. */
function aborted(signal: AbortSignal): { promise: Promise<undefined>; dispose(): void } {
  let onAbort: () => void = () => undefined;
  const promise = new Promise<undefined>((resolve) => {
    onAbort = () => {
      resolve(undefined);
    };
    if (signal.aborted) resolve(undefined);
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  return {
    promise,
    dispose: () => {
      signal.removeEventListener('abort', onAbort);
    },
  };
}

const notSentInTime = (message: string): ProviderOutcome =>
  failed('timeout', 'UPSTREAM_TIMEOUT', message, { notSent: true });

/**
 * cockatiel's bulkhead: past `maxConcurrent + maxQueue` a request is refused at once, and one
 * still queued at its deadline leaves without sending anything.
 */
export function bulkheadPolicy(options: BulkheadOptions): Policy {
  const bulk = bulkhead(options.maxConcurrent, options.maxQueue);
  return {
    async execute(next, ctx) {
      const deadline = ctx.deadline.signal;
      // With a free slot the attempt starts now and ends by itself at the deadline; only a
      // queued request needs to watch the deadline to leave the queue.
      const gone = bulk.executionSlots <= 0 ? aborted(deadline) : undefined;
      const progress = { started: false };
      try {
        const task = (): Promise<ProviderOutcome> => {
          progress.started = true;
          return next(ctx);
        };
        // cockatiel starts a queued task from the promise chain of the attempt that freed its
        // slot, which would run it in that request's async context (its trace): bind it to ours.
        const run = bulk.execute(gone === undefined ? task : AsyncResource.bind(task), deadline);
        if (gone === undefined) return await run;
        // A request still queued at its deadline leaves; cockatiel drops the entry when reached.
        run.catch(() => undefined);
        const first = await Promise.race([run, gone.promise]);
        if (first !== undefined) return first;
        // The deadline fired. A running attempt sees it too and ends with its own outcome.
        if (progress.started) return await run;
        return notSentInTime(
          'the deadline passed while waiting for a free slot; the cancel was not sent',
        );
      } catch (err) {
        if (err instanceof BulkheadRejectedError) {
          return failed(
            'unavailable',
            'BULKHEAD_FULL',
            'too many cancels in flight for this provider (maxConcurrent + maxQueue); not sent',
            { notSent: true, retryAfterSeconds: 1 },
          );
        }
        // cockatiel refuses a request whose signal has already fired (TaskCancelledError).
        if (deadline.aborted) {
          return notSentInTime('the deadline passed before the attempt');
        }
        throw err;
      } finally {
        gone?.dispose();
      }
    },
  };
}
