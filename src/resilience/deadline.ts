import type { Clock } from './clock';

/**
 * One request's deadline: the signal that fires, and when (on the `clock.now()` scale).
 * `dispose` releases the timer once the request is answered.
 */
export interface Deadline {
  signal: AbortSignal;
  at: number;
  /**
   * Fires the signal `ms` from now instead, if that is earlier, until the returned function
   * restores the deadline. For an attempt's own timeout: a timed-out attempt ends the request
   * (a timeout is neither retried nor passed to a fallback), so the attempt needs no signal of
   * its own.
   */
  narrow(ms: number): () => void;
  dispose(): void;
}

const unchanged = (): void => undefined;

/**
 * Not `AbortSignal.timeout`: its timer cannot be cancelled, so every answered request would leave
 * a timer and a signal alive until the full timeout passed (tens of thousands at full load, all
 * promoted to the old generation). This one is released as soon as the request ends.
 */
export function deadlineIn(ms: number, clock: Clock): Deadline {
  const whole = Math.max(0, Math.round(ms));
  const at = clock.now() + whole;
  const controller = new AbortController();
  const fire = (): void => {
    controller.abort(new DOMException('the request deadline passed', 'TimeoutError'));
  };
  let cancel = clock.setTimer(fire, whole);
  return {
    signal: controller.signal,
    at,
    narrow(narrowMs) {
      if (controller.signal.aborted || clock.now() + narrowMs >= at) return unchanged;
      cancel();
      cancel = clock.setTimer(fire, Math.max(0, narrowMs));
      return () => {
        if (controller.signal.aborted) return;
        cancel();
        cancel = clock.setTimer(fire, Math.max(0, at - clock.now()));
      };
    },
    dispose: () => {
      cancel();
    },
  };
}

/** A child signal that aborts when its parent does or after `ms`; `dispose` releases the timer. */
export interface ScopedSignal {
  signal: AbortSignal;
  dispose(): void;
}

/**
 * Like `AbortSignal.any([parent, AbortSignal.timeout(ms)])`, but on `clock` and releasing its
 * listener and timer as soon as the scope ends, so thousands of short calls leave nothing behind.
 */
export function scopedTimeout(parent: AbortSignal, ms: number, clock: Clock): ScopedSignal {
  const controller = new AbortController();
  if (parent.aborted) {
    controller.abort(parent.reason);
    return { signal: controller.signal, dispose: unchanged };
  }
  const onAbort = (): void => {
    controller.abort(parent.reason);
  };
  parent.addEventListener('abort', onAbort, { once: true });
  const cancel = clock.setTimer(() => {
    controller.abort(new DOMException('attempt timed out', 'TimeoutError'));
  }, ms);
  return {
    signal: controller.signal,
    dispose: () => {
      cancel();
      parent.removeEventListener('abort', onAbort);
    },
  };
}
