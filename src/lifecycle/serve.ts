import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { GatewayConfig } from '../config/schema';

/** Creates the HTTP server for `app` with the client limits of the config and listens. */
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
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listenOn.port, listenOn.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return { server, url: `http://${host}:${address.port}` };
}
