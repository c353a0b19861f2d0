import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

/** One request a simulator received. */
export interface RecordedCall {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** Which client connection carried it (numbered from 1 per simulator). */
  connection?: number;
  /** True when that connection had carried an earlier request (a reused keep-alive socket). */
  reused?: boolean;
}

/**
 * nginx's default `keepalive_timeout`, the server in front of every recorded Dyn answer: idle
 * keep-alive connections are closed after 75 s, and no `Keep-Alive` header announces it.
 */
export const DEFAULT_IDLE_TIMEOUT_MS = 75_000;

/** A simulator served over HTTPS: PEM texts, as `node:https` takes them. */
export interface ServeTlsOptions {
  /** The server's private key. */
  key: string;
  /** The server's certificate (and its chain). */
  cert: string;
  /** CAs a client certificate must chain to (with `requestCert`). */
  ca?: string;
  /** Demand a client certificate signed by `ca`: a client without one fails its handshake. */
  requestCert?: boolean;
}

/** How a simulator's server treats its connections. */
export interface ServeOptions {
  /** An idle (or silent) connection is closed after this long; 75 s by default. */
  idleTimeoutMs?: number;
  /** Serve HTTPS with this key and certificate (the `url` is then `https://...`). */
  tls?: ServeTlsOptions;
}

/** The connection a request came on, as `serve`/`listen` numbered it. */
export interface ConnectionInfo {
  id: number;
  /** Requests that connection carried before this one. */
  before: number;
}

const requestConnections = new WeakMap<IncomingMessage, ConnectionInfo>();

/** The connection a request came on; `{ id: 0, before: 0 }` for a request `listen` never saw. */
export function connectionOf(req: IncomingMessage): ConnectionInfo {
  return requestConnections.get(req) ?? { id: 0, before: 0 };
}

/** What every simulator records of a request: method, path, headers, body and its connection. */
export function recordOf(req: IncomingMessage, body: string): RecordedCall {
  const connection = connectionOf(req);
  return {
    method: req.method ?? '',
    path: req.url ?? '',
    headers: req.headers,
    body,
    connection: connection.id,
    reused: connection.before > 0,
  };
}

/** Reads a whole request body (simulators trust their callers: tests and the demo). */
export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', reject);
  });
}

/**
 * Starts an HTTP server (HTTPS with `options.tls`) on loopback; port 0 picks a free one. Connections are kept alive without
 * a `Keep-Alive` header (Node announces `timeout=5` by default; Dyn's nginx announces nothing)
 * and closed after `idleTimeoutMs` without traffic.
 */
export async function listen(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  port = 0,
  host = '127.0.0.1',
  options: ServeOptions = {},
): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const { idleTimeoutMs = DEFAULT_IDLE_TIMEOUT_MS, tls } = options;
  const sockets = new WeakMap<Socket, ConnectionInfo>();
  let connections = 0;
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    let seen = sockets.get(req.socket);
    if (seen === undefined) {
      seen = { id: ++connections, before: 0 };
      sockets.set(req.socket, seen);
    } else {
      seen = { id: seen.id, before: seen.before + 1 };
      sockets.set(req.socket, seen);
    }
    requestConnections.set(req, seen);
    handler(req, res);
  };
  const server: Server =
    tls === undefined
      ? createServer(onRequest)
      : createHttpsServer(
          {
            key: tls.key,
            cert: tls.cert,
            ...(tls.ca === undefined ? {} : { ca: tls.ca }),
            ...(tls.requestCert === true ? { requestCert: true, rejectUnauthorized: true } : {}),
          },
          onRequest,
        );
  // Node's own keep-alive timer is what writes `Keep-Alive: timeout=N`: turn it off and close
  // idle sockets through the plain socket inactivity timeout instead (no 'timeout' listener on
  // the server, so Node destroys a socket when it fires).
  server.keepAliveTimeout = 0;
  server.timeout = idleTimeoutMs;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port: actual } = server.address() as AddressInfo;
  return {
    server,
    url: `${tls === undefined ? 'http' : 'https'}://${host}:${actual}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
        server.closeAllConnections();
      }),
  };
}

/**
 * `listen` for an async handler: a handler that throws destroys its socket, which is what a
 * crashing upstream looks like to the gateway.
 */
export function serve(
  handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
  port = 0,
  host = '127.0.0.1',
  options: ServeOptions = {},
): ReturnType<typeof listen> {
  return listen(
    (req, res) => {
      handle(req, res).catch(() => {
        res.destroy();
      });
    },
    port,
    host,
    options,
  );
}

/** Waits `ms` unless the client goes away first; resolves false when it did. */
export function waitUnlessGone(res: ServerResponse, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      res.off('close', onClose);
      resolve(true);
    }, ms);
    const onClose = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    res.once('close', onClose);
  });
}

/** How much a long-running simulator keeps (its CLI, the demo, docker-compose). */
export interface SimulatorMemory {
  /**
   * At most this many recorded calls and remembered tasks/jobs are kept, the oldest forgotten
   * first. Unbounded when absent: tests read every call; a simulator that runs for days must not
   * grow without bound.
   */
  memoryLimit?: number;
}

/** Drops the oldest entries of an insertion-ordered map past `limit`. */
export function trimOldest(map: Map<string, unknown> | Set<string>, limit: number): void {
  for (const key of map.keys()) {
    if (map.size <= limit) return;
    map.delete(key);
  }
}
