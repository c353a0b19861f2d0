import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Server as NetServer, type Socket } from 'node:net';
import type { GatewayConfig } from '../config/schema';
import { respondCutOff } from '../http/respond';
import type { Logger } from '../observability/logger';

/** After the cut-off, requests whose upstream calls were ended get this long to answer. */
const CUT_OFF_ANSWER_MS = 500;

/** Answers written at the cut-off get this long to reach their clients before sockets close. */
const FLUSH_MS = 500;

/** The warning logged at start and after a reload when `graceShortfall` finds one. */
export const GRACE_WARNING =
  "server.shutdownGraceMs is shorter than the longest request deadline: requests still running when a drain's grace ends are answered 504 timeout";

/**
 * The longest request deadline of a config when `server.shutdownGraceMs` is shorter, else
 * undefined. `/cancel/batch` runs on `server.requestTimeoutMs`, so it counts too.
 */
export function graceShortfall(
  config: GatewayConfig,
): { shutdownGraceMs: number; longestDeadlineMs: number; deadlineOf: string } | undefined {
  const { shutdownGraceMs, requestTimeoutMs } = config.server;
  let longestDeadlineMs = requestTimeoutMs;
  let deadlineOf = 'server.requestTimeoutMs';
  for (const [target, route] of Object.entries(config.routes)) {
    if (route.timeoutMs > longestDeadlineMs) {
      longestDeadlineMs = route.timeoutMs;
      deadlineOf = `routes.${target}.timeoutMs`;
    }
  }
  return shutdownGraceMs < longestDeadlineMs
    ? { shutdownGraceMs, longestDeadlineMs, deadlineOf }
    : undefined;
}

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
  /** How long requests on open keep-alive connections are still answered (`server.drainWindowMs`). */
  windowMs(): number;
  /**
   * At the end of the grace: ends the upstream calls still running, so that their requests
   * answer now (504 timeout); returns how many it ended.
   */
  cutOff(): number;
  /** Runs once the server is closed: providers (logout), store, log flush. */
  closed(): Promise<void>;
}

/**
 * Stops the server gracefully, once, without resetting a connection:
 * 1. readiness off; the listener closes (new connections are refused); every answer from now on
 *    carries `Connection: close`, so Node closes each connection after its answer;
 * 2. for `server.drainWindowMs`, requests on open keep-alive connections are still answered (cancels:
 *    503 DRAINING); then the connections that stayed idle are closed;
 * 3. in-flight requests finish, until the grace ends;
 * 4. at the cut-off, the upstream calls still running are ended (their requests answer 504
 *    timeout) and a request still unanswered after that gets a 504 body from here: no caller is
 *    left with an empty reply;
 * 5. `closed` (providers log their sessions out).
 */
export function createDrain(server: Server, options: DrainOptions): Drain {
  let draining = false;
  const open = new Set<ServerResponse>();
  const sockets = new Set<Socket>();
  const watchers = new Set<() => void>();
  const changed = (): void => {
    for (const watcher of [...watchers]) watcher();
  };
  /** Resolves once `test` holds (re-checked at every change), or after `ms`. */
  const until = (test: () => boolean, ms: number): Promise<void> => {
    if (test() || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (!test()) return;
        clearTimeout(timer);
        watchers.delete(check);
        resolve();
      };
      // Not unref'd: the drain itself keeps the process alive until it is done.
      const timer = setTimeout(() => {
        watchers.delete(check);
        resolve();
      }, ms);
      watchers.add(check);
    });
  };

  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      changed();
    });
  });
  // Ahead of the app, so that even an answer written synchronously carries the header.
  server.prependListener('request', (_req: IncomingMessage, res: ServerResponse) => {
    open.add(res);
    if (draining) res.setHeader('Connection', 'close');
    res.once('close', () => {
      open.delete(res);
      changed();
    });
  });

  let stopping: Promise<void> | undefined;
  return {
    get draining() {
      return draining;
    },
    shutdown(reason) {
      stopping ??= (async () => {
        draining = true;
        const graceMs = options.graceMs();
        const windowMs = Math.min(options.windowMs(), graceMs);
        const graceEnd = Date.now() + graceMs;
        const { logger } = options;
        logger.info(
          { reason, inFlight: open.size, connections: sockets.size, graceMs, windowMs },
          'draining',
        );
        for (const res of open) if (!res.headersSent) res.setHeader('Connection', 'close');
        // http.Server#close also closes the idle keep-alive connections at once (Node 19+),
        // under clients that may be sending on them: only the listener is closed here.
        const closed = new Promise<void>((resolve) => {
          NetServer.prototype.close.call(server, () => {
            resolve();
          });
        });
        await until(() => sockets.size === 0, windowMs);
        server.closeIdleConnections();
        await until(() => open.size === 0, graceEnd - Date.now());
        if (open.size > 0) {
          const calls = options.cutOff();
          logger.warn(
            { inFlight: open.size, upstreamCalls: calls, graceMs },
            'drain grace over: cutting off the requests still running',
          );
          await until(() => open.size === 0, CUT_OFF_ANSWER_MS);
          let answered = 0;
          for (const res of open) if (respondCutOff(res)) answered++;
          if (answered > 0) logger.warn({ answered }, 'drain answered requests it cut off (504)');
        }
        // Every answer said `Connection: close`: their connections end by themselves.
        await until(() => sockets.size === 0, FLUSH_MS);
        server.closeAllConnections();
        await closed;
        await options.closed();
      })();
      return stopping;
    },
  };
}
