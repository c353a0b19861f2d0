import type { Server } from 'node:http';
import type { Logger } from '../observability/logger';

export interface Drain {
  /** True once shutdown has begun: readiness answers 503, cancels answer DRAINING. */
  readonly draining: boolean;
  /** Readiness off, no new connections, in-flight requests finish (up to graceMs), then `closed`. */
  shutdown(reason: string): Promise<void>;
}

export interface DrainOptions {
  logger: Logger;
  /** The grace of the config running when the drain starts. */
  graceMs(): number;
  /** Runs once the server is closed: providers (logout), store, log flush. */
  closed(): Promise<void>;
}

/** Resolves after `ms` (real time: the drain is about sockets, not policies). */
function wait(ms: number): Promise<void> {
  return new Promise((resolve) => {
    setTimeout(resolve, Math.max(0, ms)).unref();
  });
}

/** Counts the server's requests in flight and stops it gracefully, once. */
export function createDrain(server: Server, options: DrainOptions): Drain {
  let draining = false;
  let inFlight = 0;
  let onIdle: (() => void) | undefined;
  server.on('request', (_req, res) => {
    inFlight++;
    res.once('close', () => {
      inFlight--;
      if (inFlight === 0) onIdle?.();
    });
  });
  const idleOr = (ms: number): Promise<void> =>
    inFlight === 0
      ? Promise.resolve()
      : Promise.race([
          new Promise<void>((resolve) => {
            onIdle = resolve;
          }),
          wait(ms),
        ]);

  let stopping: Promise<void> | undefined;
  return {
    get draining() {
      return draining;
    },
    shutdown(reason) {
      stopping ??= (async () => {
        draining = true;
        options.logger.info({ reason, inFlight }, 'draining');
        const closed = new Promise<void>((resolve) => {
          server.close(() => {
            resolve();
          });
        });
        server.closeIdleConnections();
        const graceMs = options.graceMs();
        const until = Date.now() + graceMs;
        await idleOr(graceMs);
        // Connections accepted just before the listener closed may still bring a request: give
        // them a moment to arrive and be answered (503 DRAINING) rather than resetting them.
        await Promise.race([closed, wait(Math.min(1_000, until - Date.now()))]);
        await idleOr(until - Date.now());
        server.closeAllConnections();
        await closed;
        await options.closed();
      })();
      return stopping;
    },
  };
}
