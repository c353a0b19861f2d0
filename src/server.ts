import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createApp, type GatewayState } from './app';
import { handleBatch, handleCancel } from './http/cancel';
import { internalError } from './http/errors';
import { requestIdFrom } from './http/request-id';
import { loadConfigFile } from './config/load';
import { watchConfigFile } from './config/watch';
import { createLogger, type Logger } from './observability/logger';
import { createMetrics } from './observability/metrics';
import { createCancelMemory } from './state/cancel-memory';
import { createRedisStore } from './state/redis-store';
import { createMemoryStore, type StateStore } from './state/store';
import { buildRuntime, type Runtime } from './routing/runtime';
import { systemClock } from './resilience/clock';

/** The directory holding package.json: relative config paths (a WSDL) resolve against it. */
export const PROJECT_ROOT = path.resolve(__dirname, '..');

export interface StartOptions {
  configFile: string;
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  /** Install SIGTERM/SIGINT/SIGHUP handlers (the CLI does; tests usually do not). */
  handleSignals?: boolean;
  /** Reload when the config file changes (default true). */
  watchConfig?: boolean;
}

export interface RunningGateway {
  url: string;
  server: Server;
  logger: Logger;
  /** The runtime new requests start on. */
  runtime(): Runtime;
  /** Re-reads the config file; keeps the running config when the new one is invalid. */
  reload(): Promise<{ ok: true; version: string } | { ok: false; problems: string[] }>;
  /** Drains and stops: readiness 503, no new connections, in-flight requests finish, providers close. */
  shutdown(reason: string): Promise<void>;
}

/** Thrown when the gateway cannot start; `problems` are one line each, with their config path. */
export class StartupError extends Error {
  override readonly name = 'StartupError';
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
  }
}

export async function startGateway(options: StartOptions): Promise<RunningGateway> {
  const env = options.env ?? process.env;
  const logger =
    options.logger ?? createLogger(env.LOG_LEVEL === undefined ? {} : { level: env.LOG_LEVEL });
  const loaded = loadConfigFile(options.configFile, env);
  if (!loaded.ok) throw new StartupError(loaded.problems);
  const stateCfg = loaded.value.config.state;
  // The store outlives reloads (state.* applies at restart); metrics are created just below.
  const storeErrors: string[] = [];
  let countStoreError = (operation: string): void => {
    storeErrors.push(operation);
  };
  const store: StateStore =
    stateCfg.store === 'redis' && stateCfg.redisUrl !== undefined
      ? await createRedisStore({
          url: stateCfg.redisUrl,
          logger,
          onError: (operation) => {
            countStoreError(operation);
          },
        })
      : createMemoryStore(stateCfg.maxEntries);
  const memory = createCancelMemory(store, stateCfg.rememberSeconds);
  const deps = { logger, projectRoot: PROJECT_ROOT, store, clock: systemClock };
  let current: Runtime;
  try {
    current = await buildRuntime(loaded.value, deps);
  } catch (err) {
    await store.close();
    throw new StartupError([err instanceof Error ? err.message : String(err)]);
  }
  let draining = false;
  let inFlight = 0;
  let onIdle: (() => void) | undefined;

  let lastReloadError: { at: string; problems: string[] } | undefined;
  const metrics = createMetrics(() =>
    [...current.providers.values()].map((p) => [p.name, p.policy.circuitState()] as const),
  );
  countStoreError = (operation) => {
    metrics.stateStoreErrors.inc({ operation });
  };
  for (const operation of storeErrors.splice(0)) countStoreError(operation);
  const state: GatewayState = {
    runtime: () => current,
    isDraining: () => draining,
    logger,
    metrics,
    lastReloadError: () => lastReloadError,
    store,
    memory,
  };
  const app = createApp(state);
  const clientLimits = loaded.value.config.server;
  const server = createServer(
    {
      // Bound slow clients (slow-loris): headers, then the whole request, within these limits;
      // the check runs at least every second so short limits hold.
      headersTimeout: clientLimits.headersTimeoutMs,
      requestTimeout: Math.max(clientLimits.receiveTimeoutMs, clientLimits.headersTimeoutMs),
      connectionsCheckingInterval: Math.min(1_000, clientLimits.headersTimeoutMs),
    },
    (req, res) => {
      inFlight++;
      res.once('close', () => {
        inFlight--;
        if (inFlight === 0) onIdle?.();
      });
      // The hot path: the two cancel endpoints skip Express's router (same handlers, same answers).
      if (req.method === 'POST' && (req.url === '/cancel' || req.url === '/cancel/batch')) {
        const requestId = requestIdFrom(req.headers['x-request-id']);
        res.setHeader('X-Request-Id', requestId);
        const handle = req.url === '/cancel' ? handleCancel : handleBatch;
        handle(state, req, res, requestId).catch((err: unknown) => {
          internalError(logger, err, requestId, req.method, req.url, res);
        });
        return;
      }
      app(req, res);
    },
  );
  server.keepAliveTimeout = 5_000;

  const { server: serverCfg } = loaded.value.config;
  const host = env.HOST ?? serverCfg.host;
  const port = env.PORT !== undefined && env.PORT !== '' ? Number(env.PORT) : serverCfg.port;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  if (loaded.value.config.auth === undefined) {
    logger.warn('no auth configured: every caller is accepted');
  }
  logger.info(
    {
      url,
      configFile: options.configFile,
      configVersion: loaded.value.version,
      providers: [...current.providers.keys()],
      routes: [...current.routes.keys()],
    },
    'gateway listening',
  );

  type ReloadResult = { ok: true; version: string } | { ok: false; problems: string[] };
  const failedReload = (problems: string[], message: string): ReloadResult => {
    lastReloadError = { at: new Date().toISOString(), problems };
    metrics.configReloads.inc({ result: 'failure' });
    logger.error({ problems, configFile: options.configFile }, message);
    return { ok: false, problems };
  };

  /** Reads, validates and builds the new config fully before anything is swapped. */
  async function applyReload(): Promise<ReloadResult> {
    const next = loadConfigFile(options.configFile, env);
    if (!next.ok)
      return failedReload(next.problems, 'config reload rejected; keeping the running config');
    if (next.value.version === current.loaded.version) {
      lastReloadError = undefined;
      metrics.configReloads.inc({ result: 'unchanged' });
      return { ok: true, version: next.value.version };
    }
    let built: Runtime;
    try {
      built = await buildRuntime(next.value, deps);
    } catch (err) {
      const problems = [err instanceof Error ? err.message : String(err)];
      return failedReload(problems, 'config reload failed; keeping the running config');
    }
    const previous = current;
    current = built;
    lastReloadError = undefined;
    metrics.configReloads.inc({ result: 'success' });
    const nextServer = built.loaded.config.server;
    if (nextServer.host !== serverCfg.host || nextServer.port !== serverCfg.port) {
      logger.warn('server.host/server.port changed: they apply at the next restart');
    }
    logger.info(
      { configVersion: built.loaded.version, previousVersion: previous.loaded.version },
      'config reloaded',
    );
    // In-flight requests finish on the providers they started with; then those close (logout).
    void previous.close(previous.loaded.config.server.shutdownGraceMs).catch((err: unknown) => {
      logger.warn({ err }, 'closing the previous providers failed');
    });
    return { ok: true, version: built.loaded.version };
  }

  // Reloads never overlap: SIGHUP, file changes and API calls queue behind each other.
  let reloading: Promise<unknown> = Promise.resolve();
  function reload(): Promise<ReloadResult> {
    const run = reloading.then(applyReload, applyReload);
    reloading = run;
    return run;
  }

  const watcher =
    options.watchConfig === false
      ? undefined
      : watchConfigFile(options.configFile, logger, () => {
          void reload();
        });

  let shuttingDown: Promise<void> | undefined;
  function shutdown(reason: string): Promise<void> {
    shuttingDown ??= (async () => {
      draining = true;
      watcher?.close();
      logger.info({ reason, inFlight }, 'draining');
      const closed = new Promise<void>((resolve) =>
        server.close(() => {
          resolve();
        }),
      );
      server.closeIdleConnections();
      const graceMs = current.loaded.config.server.shutdownGraceMs;
      const deadline = Date.now() + graceMs;
      if (inFlight > 0) {
        await new Promise<void>((resolve) => {
          onIdle = resolve;
          setTimeout(resolve, graceMs).unref();
        });
      }
      // Connections accepted just before the listener closed may still bring a request: give
      // them a moment to arrive and be answered (503 DRAINING) rather than resetting them.
      await Promise.race([
        closed,
        new Promise<void>((resolve) => {
          setTimeout(resolve, Math.max(0, Math.min(1_000, deadline - Date.now()))).unref();
        }),
      ]);
      if (inFlight > 0) {
        await new Promise<void>((resolve) => {
          onIdle = resolve;
          setTimeout(resolve, Math.max(0, deadline - Date.now())).unref();
        });
      }
      server.closeAllConnections();
      await closed;
      await current.close(0);
      await store.close();
      logger.info('stopped');
      // A closed stdout (a pipe whose reader left) never acknowledges the flush; exit anyway.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1_000);
        timer.unref();
        logger.flush(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    })();
    return shuttingDown;
  }

  if (options.handleSignals === true) {
    let signals = 0;
    const onStop = (signal: NodeJS.Signals): void => {
      signals++;
      if (signals > 1) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      void shutdown(signal).then(() => process.exit(0));
    };
    process.on('SIGTERM', onStop);
    process.on('SIGINT', onStop);
    process.on('SIGHUP', () => {
      void reload();
    });
  }

  return { url, server, logger, runtime: () => current, reload, shutdown };
}
