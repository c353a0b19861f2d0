/**
 * One request's deadline: the signal that fires, and when (on the `performance.now()` clock).
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
export function deadlineIn(ms: number): Deadline {
  const whole = Math.max(0, Math.round(ms));
  const at = performance.now() + whole;
  const controller = new AbortController();
  const fire = (): void => {
    controller.abort(new DOMException('the request deadline passed', 'TimeoutError'));
  };
  const arm = (delayMs: number): NodeJS.Timeout => {
    const t = setTimeout(fire, Math.max(0, delayMs));
    t.unref();
    return t;
  };
  let timer = arm(whole);
  return {
    signal: controller.signal,
    at,
    narrow(narrowMs) {
      if (controller.signal.aborted || performance.now() + narrowMs >= at) return unchanged;
      clearTimeout(timer);
      timer = arm(narrowMs);
      return () => {
        if (controller.signal.aborted) return;
        clearTimeout(timer);
        timer = arm(at - performance.now());
      };
    },
    dispose: () => {
      clearTimeout(timer);
    },
  };
}

/** A child signal that aborts when its parent does or after `ms`; `dispose` releases the timer. */
export interface ScopedSignal {
  signal: AbortSignal;
  dispose(): void;
}

/**
 * Like `AbortSignal.any([parent, AbortSignal.timeout(ms)])`, but releases its listener and timer
 * as soon as the scope ends, so thousands of short calls leave nothing behind.
 */
export function scopedTimeout(parent: AbortSignal, ms: number): ScopedSignal {
  if (parent.aborted) {
    const controller = new AbortController();
    controller.abort(parent.reason);
    return { signal: controller.signal, dispose: () => undefined };
  }
  const controller = new AbortController();
  const onAbort = (): void => {
    controller.abort(parent.reason);
  };
  parent.addEventListener('abort', onAbort, { once: true });
  const timer = setTimeout(() => {
    controller.abort(new DOMException('attempt timed out', 'TimeoutError'));
  }, ms);
  timer.unref();
  return {
    signal: controller.signal,
    dispose: () => {
      clearTimeout(timer);
      parent.removeEventListener('abort', onAbort);
    },
  };
}

/** Resolves after `ms`, or rejects-free early when the signal aborts. */
export function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
