import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request a simulator received. */
export interface RecordedCall {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
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

/** Starts an HTTP server on loopback; port 0 picks a free one. */
export async function listen(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  port = 0,
  host = '127.0.0.1',
): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const server = createServer(handler);
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
    url: `http://${host}:${actual}`,
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
): ReturnType<typeof listen> {
  return listen(
    (req, res) => {
      handle(req, res).catch(() => {
        res.destroy();
      });
    },
    port,
    host,
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
