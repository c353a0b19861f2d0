import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../observability/logger';

/** Editors write in bursts and a ConfigMap swap is several renames: wait for quiet. */
const DEBOUNCE_MS = 200;

/**
 * Calls `onChange` after the config file may have changed. The directory is watched, not the
 * file: a Kubernetes ConfigMap update swaps the `..data` symlink and an editor may replace the
 * file by a rename, both invisible to a watch on the old file. Any event in the directory
 * triggers a (debounced) reload; an unchanged file is recognised by its hash and costs nothing.
 */
export function watchConfigFile(
  file: string,
  logger: Logger,
  onChange: () => void,
): { close(): void } | undefined {
  const dir = path.dirname(path.resolve(file));
  let timer: NodeJS.Timeout | undefined;
  let watcher: FSWatcher;
  try {
    watcher = watch(dir, { persistent: false }, () => {
      clearTimeout(timer);
      timer = setTimeout(onChange, DEBOUNCE_MS);
      timer.unref();
    });
  } catch (err) {
    logger.warn({ err, dir }, 'cannot watch the config directory; reload with SIGHUP');
    return undefined;
  }
  watcher.on('error', (err) => {
    logger.warn({ err, dir }, 'config directory watch failed; reload with SIGHUP');
    watcher.close();
  });
  return {
    close() {
      clearTimeout(timer);
      watcher.close();
    },
  };
}
