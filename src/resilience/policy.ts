import type { ProviderOutcome } from '../core/provider-outcome';
import type { Clock } from './clock';
import type { Deadline } from './deadline';

/** One attempt at the upstream; ends when `signal` aborts. */
export type Attempt = (signal: AbortSignal) => Promise<ProviderOutcome>;

/** What every policy of one request shares: its deadline, and who hears of each attempt. */
export interface PolicyContext {
  deadline: Deadline;
  /** Told of every finished attempt (for `attempts` and metrics), with its duration on the clock. */
  onAttempt(outcome: ProviderOutcome, durationMs: number): void;
}

/** One resilience step: runs `next` zero or more times and resolves with an outcome; never throws for an upstream answer. */
export interface Policy {
  /** Runs the rest of the chain as this step allows, within `ctx.deadline`. */
  execute(
    next: (ctx: PolicyContext) => Promise<ProviderOutcome>,
    ctx: PolicyContext,
  ): Promise<ProviderOutcome>;
}

/** Composes policies, outermost first, around one attempt; the innermost step measures the attempt on the clock and reports it through ctx.onAttempt. */
export function composePolicies(
  policies: readonly Policy[],
  clock: Clock,
): (attempt: Attempt, ctx: PolicyContext) => Promise<ProviderOutcome> {
  const chain = [...policies];
  return (attempt, ctx) => {
    let run = async (c: PolicyContext): Promise<ProviderOutcome> => {
      const started = clock.now();
      const outcome = await attempt(c.deadline.signal);
      c.onAttempt(outcome, clock.now() - started);
      return outcome;
    };
    for (let i = chain.length - 1; i >= 0; i--) {
      const policy = chain[i];
      const next = run;
      if (policy !== undefined) run = (c) => policy.execute(next, c);
    }
    return run(ctx);
  };
}
