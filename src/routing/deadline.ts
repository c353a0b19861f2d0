/** One request's deadline: the signal that fires, and when (on the `performance.now()` clock). */
export interface Deadline {
  signal: AbortSignal;
  at: number;
}

export function deadlineIn(ms: number): Deadline {
  const whole = Math.max(0, Math.round(ms));
  return { signal: AbortSignal.timeout(whole), at: performance.now() + whole };
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
  const controller = new AbortController();
  if (parent.aborted) {
    controller.abort(parent.reason);
    return { signal: controller.signal, dispose: () => undefined };
  }
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
