import type { Policy } from './policy';

/**
 * Bounds each attempt by `timeoutMs` by narrowing the request deadline while it runs: a
 * timed-out attempt ends the request anyway (a timeout is neither retried nor passed to a
 * fallback, the cancel may have happened), so it needs no signal of its own.
 */
export function attemptTimeoutPolicy(timeoutMs: number): Policy {
  return {
    async execute(next, ctx) {
      const restore = ctx.deadline.narrow(timeoutMs);
      try {
        return await next(ctx);
      } finally {
        restore();
      }
    },
  };
}
