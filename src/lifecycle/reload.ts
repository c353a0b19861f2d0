import { loadConfigFile, type LoadedConfig } from '../config/load';
import type { GatewayConfig } from '../config/schema';
import { watchConfigFile } from '../config/watch';
import type { ActiveConfig, ReloadError } from '../http/context';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import { handOver, providerChanges, providerFilesChanged } from '../routing/runtime';
import { GRACE_WARNING, graceShortfall } from './drain';

export type ReloadResult = { ok: true; version: string } | { ok: false; problems: string[] };

export interface Reloader {
  /** The config new requests start on. */
  current: () => ActiveConfig;
  /** The last failed reload, while the file stays broken. */
  lastError: () => ReloadError | undefined;
  /** Re-reads the file; keeps the running config when the new one is invalid. Never overlaps. */
  reload: () => Promise<ReloadResult>;
  /** Stops watching the file; later reloads change nothing (the gateway is stopping). */
  stop(): void;
}

export interface ReloaderOptions {
  configFile: string;
  env: Readonly<Record<string, string | undefined>>;
  initial: ActiveConfig;
  /**
   * Builds everything a config needs (providers, routes, auth), taking over from `previous` the
   * providers whose settings did not change; throws when a provider cannot start.
   */
  build(loaded: LoadedConfig, previous: ActiveConfig): Promise<ActiveConfig>;
  logger: Logger;
  metrics: Metrics;
  /** Reload when the file (or its directory: ConfigMap symlink swaps) changes. */
  watch: boolean;
  /** Relative file paths of provider settings (`tls`, a WSDL) resolve against it. */
  projectRoot: string;
}

/** Names added, removed and changed between two records of settings. */
function diff(
  before: Readonly<Record<string, unknown>>,
  after: Readonly<Record<string, unknown>>,
): { added: string[]; removed: string[]; changed: string[] } {
  const added = Object.keys(after).filter((name) => !(name in before));
  const removed = Object.keys(before).filter((name) => !(name in after));
  const changed = Object.keys(after).filter(
    (name) => name in before && JSON.stringify(before[name]) !== JSON.stringify(after[name]),
  );
  return { added, removed, changed };
}

/** What a reload changed, for its log line (names only: provider settings may hold secrets). */
export function changesBetween(before: GatewayConfig, after: GatewayConfig) {
  const providers = diff(before.providers, after.providers);
  const routes = diff(before.routes, after.routes);
  const sections = (['server', 'auth', 'state'] as const).filter(
    (key) => JSON.stringify(before[key]) !== JSON.stringify(after[key]),
  );
  return { providers, routes, sections };
}

/**
 * Config reload: read, validate and build the new config fully before anything is swapped, then
 * swap atomically. Providers whose settings did not change are kept as they are (sessions, rate
 * limit budget, breaker); requests in flight finish on the providers they started with, and the
 * changed or removed ones close (log out) once their requests are done. An invalid file leaves
 * the running config in place.
 */
export function createReloader(options: ReloaderOptions): Reloader {
  const { configFile, env, logger, metrics } = options;
  let current = options.initial;
  let lastError: ReloadError | undefined;
  let stopped = false;

  const rejected = (problems: string[], message: string): ReloadResult => {
    lastError = { at: new Date().toISOString(), problems };
    metrics.configReloads.inc({ result: 'failure' });
    logger.error({ problems, configFile }, message);
    return { ok: false, problems };
  };

  async function apply(): Promise<ReloadResult> {
    if (stopped) {
      logger.info('config reload skipped: the gateway is stopping');
      return { ok: false, problems: ['the gateway is stopping'] };
    }
    const next = loadConfigFile(configFile, env);
    if (!next.ok)
      return rejected(next.problems, 'config reload rejected; keeping the running config');
    const previous = current;
    if (
      next.value.version === previous.runtime.loaded.version &&
      !providerFilesChanged(previous.runtime, options.projectRoot)
    ) {
      lastError = undefined;
      metrics.configReloads.inc({ result: 'unchanged' });
      logger.info({ configVersion: next.value.version }, 'config unchanged');
      return { ok: true, version: next.value.version };
    }
    let built: ActiveConfig;
    try {
      built = await options.build(next.value, previous);
    } catch (err) {
      const problems = (err instanceof Error ? err.message : String(err)).split('\n');
      return rejected(problems, 'config reload failed; keeping the running config');
    }
    current = built;
    lastError = undefined;
    metrics.configReloads.inc({ result: 'success' });
    const [was, now] = [previous.runtime.loaded.config.server, built.runtime.loaded.config.server];
    if (was.host !== now.host || was.port !== now.port) {
      logger.warn('server.host/server.port changed: they apply at the next restart');
    }
    const changes = changesBetween(previous.runtime.loaded.config, built.runtime.loaded.config);
    const { kept, rebuilt, retiring } = providerChanges(previous.runtime, built.runtime);
    logger.info(
      {
        configVersion: built.runtime.loaded.version,
        previousVersion: previous.runtime.loaded.version,
        ...changes,
        // Kept: same sessions, token bucket and breaker. Retiring: the old instances of the
        // changed and removed ones, which close (log out) once their requests are done.
        providers: { ...changes.providers, kept, rebuilt, retiring },
      },
      'config reloaded',
    );
    const shortfall = graceShortfall(built.runtime.loaded.config);
    if (shortfall !== undefined) logger.warn(shortfall, GRACE_WARNING);
    void handOver(previous.runtime, built.runtime).catch((err: unknown) => {
      logger.warn({ err }, 'closing the retired providers failed');
    });
    return { ok: true, version: built.runtime.loaded.version };
  }

  // SIGHUP, file changes and API calls queue behind each other.
  let queue: Promise<unknown> = Promise.resolve();
  function reload(): Promise<ReloadResult> {
    const run = queue.then(apply, apply);
    queue = run;
    return run;
  }

  const watcher = options.watch
    ? watchConfigFile(configFile, logger, () => {
        void reload();
      })
    : undefined;

  return {
    current: () => current,
    lastError: () => lastError,
    reload,
    stop: () => {
      stopped = true;
      watcher?.close();
    },
  };
}
