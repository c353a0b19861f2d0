import type { Clock } from '../../src/resilience/clock';

/** A clock that moves only when a test says so. */
export interface FakeClock extends Clock {
  /**
   * Moves time forward by `ms`, running each timer that falls due in time order (ties in the
   * order they were set) and letting promise continuations run before and after each one.
   */
  advance(ms: number): Promise<void>;
  /** Timers set and not yet run or cancelled: shows whether a scope released its timer. */
  pendingTimers(): number;
  /** When the earliest pending timer falls due; undefined when none is set. */
  nextTimerAt(): number | undefined;
}

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
}

/** Lets every queued promise continuation run (a macrotask starts only once they are done). */
export const settle = (): Promise<void> =>
  new Promise((resolve) => {
    setImmediate(resolve);
  });

/** A fake clock starting at 0. */
export function createFakeClock(): FakeClock {
  let now = 0;
  let seq = 0;
  let timers: Timer[] = [];
  return {
    now: () => now,
    setTimer(fn, ms) {
      const timer: Timer = { at: now + Math.max(0, ms), seq: seq++, fn };
      timers.push(timer);
      return () => {
        timers = timers.filter((t) => t !== timer);
      };
    },
    async advance(ms) {
      const target = now + ms;
      await settle();
      for (;;) {
        const due = timers
          .filter((t) => t.at <= target)
          .sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
        if (due === undefined) break;
        timers = timers.filter((t) => t !== due);
        now = due.at;
        due.fn();
        await settle();
      }
      now = target;
      await settle();
    },
    pendingTimers: () => timers.length,
    nextTimerAt: () => (timers.length === 0 ? undefined : Math.min(...timers.map((t) => t.at))),
  };
}
