import { createServer, type RequestListener, type Server } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import type { GatewayConfig } from '../config/schema';

/** Why a listen fails, and what the operator can change, by Node's error code. */
const LISTEN_HINTS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'the address is in use (EADDRINUSE); set PORT= or server.port',
  EACCES: 'permission denied (EACCES); use a port above 1023, set PORT= or server.port',
  EADDRNOTAVAIL: 'the address is not one of this machine (EADDRNOTAVAIL); set HOST= or server.host',
  ENOTFOUND: 'the host name does not resolve (ENOTFOUND); set HOST= or server.host',
  EAI_AGAIN: 'the host name could not be resolved now (EAI_AGAIN); set HOST= or server.host',
  ERR_SOCKET_BAD_PORT: 'the port is not 0 to 65535 (ERR_SOCKET_BAD_PORT); set PORT= or server.port',
};

/** A listen that failed; the message is one line for the operator, naming what to change. */
export class ListenError extends Error {
  override readonly name = 'ListenError';
  constructor(
    message: string,
    /** Node's error code, e.g. `EADDRINUSE`. */
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

function listenError(error: unknown, host: string, port: number): ListenError {
  const code = (error as NodeJS.ErrnoException).code;
  const where = `${isIP(host) === 6 ? `[${host}]` : host}:${String(port)}`;
  const why =
    (code === undefined ? undefined : LISTEN_HINTS[code]) ??
    (error instanceof Error ? error.message : String(error));
  return new ListenError(`cannot listen on ${where}: ${why}`, code);
}

/**
 * Creates the HTTP server for `app` with the client limits of the config and listens. A failed
 * listen rejects with a `ListenError`.
 */
export async function serve(
  app: RequestListener,
  cfg: GatewayConfig['server'],
  listenOn: { host: string; port: number },
): Promise<{ server: Server; url: string }> {
  const server = createServer(
    {
      // Bound slow clients (slow-loris): headers, then the whole request, within these limits;
      // the check runs at least every second so short limits hold.
      headersTimeout: cfg.headersTimeoutMs,
      requestTimeout: Math.max(cfg.receiveTimeoutMs, cfg.headersTimeoutMs),
      connectionsCheckingInterval: Math.min(1_000, cfg.headersTimeoutMs),
    },
    app,
  );
  server.keepAliveTimeout = 5_000;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // A bad port throws here rather than emitting 'error'; the executor turns it into a reject.
      server.listen(listenOn.port, listenOn.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    throw listenError(error, listenOn.host, listenOn.port);
  }
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return { server, url: `http://${host}:${address.port}` };
}
