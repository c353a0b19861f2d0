import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import path from 'node:path';
import type { RequestHandler } from 'express';
import { createApp } from './app';
import { loadConfigFile, type LoadedConfig } from './config/load';
import { compileAuth } from './http/auth';
import type { ActiveConfig, HttpContext } from './http/context';
import { createDrain, GRACE_WARNING, graceShortfall } from './lifecycle/drain';
import { createReloader, type ReloadResult } from './lifecycle/reload';
import { ListenError, serve } from './lifecycle/serve';
import type { Logger } from './observability/logger';
import { createMetrics } from './observability/metrics';
import { createTracing, type Tracing } from './observability/tracing';
import { systemClock, type Clock } from './resilience/clock';
import { createRateWindows } from './resilience/rate-limit';
import { createReconciler, keptJobSessionMs, type Reconciler } from './routing/reconcile';
import { abortInFlight, buildRuntime, type Runtime } from './routing/runtime';
import { openState } from './state/open';

/** The directory holding package.json: relative config paths (a WSDL) resolve against it. */
export const PROJECT_ROOT = path.resolve(__dirname, '..');

const VERSION = (
  JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

export interface StartOptions {
  configFile: string;
  /** `PORT`, `HOST` and `${VAR}` references in the file are read from here. */
  env: Readonly<Record<string, string | undefined>>;
  logger: Logger;
  /** Reload when the config file changes (default true). */
  watchConfig?: boolean;
  /** Time for policies, deadlines and sessions (default: the system clock). */
  clock?: Clock;
  /** Express middleware mounted before every route. */
  middleware?: RequestHandler[];
  /** Spans and their export (default: from the `OTEL_*` variables of `process.env`). */
  tracing?: Tracing;
}

export interface RunningGateway {
  url: string;
  server: Server;
  /** The runtime new requests start on. */
  runtime(): Runtime;
  /** Re-reads the config file; keeps the running config when the new one is invalid. */
  reload(): Promise<ReloadResult>;
  /** Drains and stops: readiness 503, no new connections, in-flight requests finish, providers close. */
  shutdown(reason: string): Promise<void>;
}

/**
 * Thrown when the gateway cannot start: `problems` are one line each, with their config path
 * (`reason: 'config'`) or with the address that could not be bound (`reason: 'listen'`).
 */
export class StartupError extends Error {
  override readonly name = 'StartupError';
  constructor(
    readonly problems: string[],
    readonly reason: 'config' | 'listen' = 'config',
  ) {
    super(problems.join('\n'));
  }
}

/** Composition: config → store → providers → routes → app → server. */
export async function startGateway(options: StartOptions): Promise<RunningGateway> {
  const { configFile, env, logger } = options;
  const loaded = loadConfigFile(configFile, env);
  if (!loaded.ok) throw new StartupError(loaded.problems);
  const { config } = loaded.value;
  const clock = options.clock ?? systemClock;
  const metrics = createMetrics();
  const tracing =
    options.tracing ??
    createTracing(process.env, {
      onError: (err) => {
        logger.warn({ err }, 'the last spans could not be exported');
      },
    });
  const { reconcileSeconds } = config.state;
  // The reconciler needs the runtime, which needs the store: timeouts reach it once it exists
  // (none can happen before the server listens).
  let reconciler: Reconciler | undefined;
  const { store, replay } = await openState(config.state, {
    logger,
    metrics,
    now: () => clock.now(),
    onTimeout: (target, taskId, pending, requestId, rememberedAt) => {
      reconciler?.schedule(target, taskId, pending, requestId, rememberedAt);
    },
  });
  const deps = {
    logger,
    projectRoot: PROJECT_ROOT,
    store,
    clock,
    // One set for the process's lifetime: a provider a reload rebuilds keeps its window.
    rateWindows: createRateWindows(clock),
    userAgent: `cancel-gateway/${VERSION}`,
    env,
    tracer: tracing.tracer,
    // A Dyn job still running at its cancel's deadline keeps its session for the reconciler.
    ...(reconcileSeconds > 0 ? { keepJobSessionsMs: keptJobSessionMs(reconcileSeconds) } : {}),
  };
  // Auth first: a config whose auth cannot compile must not start providers that nobody closes.
  const build = async (next: LoadedConfig, previous?: ActiveConfig): Promise<ActiveConfig> => {
    const auth = compileAuth(next.config.auth);
    return { runtime: await buildRuntime(next, deps, previous?.runtime), auth };
  };
  let initial: ActiveConfig;
  try {
    initial = await build(loaded.value);
  } catch (err) {
    await store.close();
    await tracing.shutdown();
    throw new StartupError((err instanceof Error ? err.message : String(err)).split('\n'));
  }
  const reloader = createReloader({
    configFile,
    env,
    initial,
    build,
    logger,
    metrics,
    watch: options.watchConfig !== false,
    projectRoot: PROJECT_ROOT,
  });
  if (reconcileSeconds > 0) {
    reconciler = createReconciler({
      store,
      memory: replay,
      runtime: () => reloader.current().runtime,
      logger,
      metrics,
      clock,
      reconcileSeconds,
    });
  }
  metrics.observeCircuits(() =>
    [...reloader.current().runtime.providers.values()].map((p) => [p.name, p.circuitState()]),
  );
  const ctx: HttpContext = {
    active: reloader.current,
    isDraining: () => drain.draining,
    lastReloadError: reloader.lastError,
    logger,
    metrics,
    clock,
    store,
    replay,
    tracing,
  };
  const app = createApp(ctx, { version: VERSION, before: options.middleware ?? [] });
  const port = env.PORT !== undefined && env.PORT !== '' ? Number(env.PORT) : config.server.port;
  let listening: Awaited<ReturnType<typeof serve>>;
  try {
    listening = await serve(app, config.server, { host: env.HOST ?? config.server.host, port });
  } catch (err) {
    // Nothing was served: close what was opened, so the process can exit with the one line.
    reloader.stop();
    await reconciler?.stop();
    await reloader.current().runtime.close(0);
    await store.close();
    await tracing.shutdown();
    if (err instanceof ListenError) throw new StartupError([err.message], 'listen');
    throw err;
  }
  const { server, url } = listening;
  const drain = createDrain(server, {
    logger,
    graceMs: () => reloader.current().runtime.loaded.config.server.shutdownGraceMs,
    windowMs: () => reloader.current().runtime.loaded.config.server.drainWindowMs,
    cutOff: () => abortInFlight(reloader.current().runtime),
    async closed() {
      // Before the providers close: its attempts hold them, and their kept sessions log out then.
      await reconciler?.stop();
      await reloader.current().runtime.close(0);
      await store.close();
      await tracing.shutdown();
      logger.info('stopped');
      await flush(logger);
    },
  });
  if (config.auth === undefined) logger.warn('no auth configured: every caller is accepted');
  const shortfall = graceShortfall(config);
  if (shortfall !== undefined) logger.warn(shortfall, GRACE_WARNING);
  const { providers, routes } = initial.runtime;
  logger.info(
    {
      url,
      configFile,
      configVersion: loaded.value.version,
      providers: [...providers.keys()],
      routes: [...routes.keys()],
    },
    'gateway listening',
  );
  return {
    url,
    server,
    runtime: () => reloader.current().runtime,
    reload: reloader.reload,
    shutdown: (reason) => {
      reloader.stop();
      return drain.shutdown(reason);
    },
  };
}

/** Waits for the log lines to be written; a stdout whose reader left never acknowledges. */
function flush(logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 1_000);
    timer.unref();
    logger.flush(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
