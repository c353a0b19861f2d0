import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type pino from 'pino';
import { stringify } from 'yaml';
import { createLogger, type Logger } from '../../src/observability/logger';
import { startGateway, type RunningGateway, type StartOptions } from '../../src/gateway';

/** Log lines captured from a gateway under test, parsed. */
export class LogCapture {
  readonly raw: string[] = [];
  private waiters: { test: (line: Record<string, unknown>) => boolean; resolve: () => void }[] = [];
  readonly stream = new Writable({
    write: (chunk: Buffer, _enc, done) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line === '') continue;
        this.raw.push(line);
        const parsed = JSON.parse(line) as Record<string, unknown>;
        for (const w of [...this.waiters]) {
          if (w.test(parsed)) {
            this.waiters.splice(this.waiters.indexOf(w), 1);
            w.resolve();
          }
        }
      }
      done();
    },
  });
  /** Resolves when a line matching `test` has been logged (now or later). */
  waitFor(test: (line: Record<string, unknown>) => boolean): Promise<void> {
    if (this.lines().some(test)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ test, resolve }));
  }
  /** Resolves at the `count`-th line matching `test`. */
  waitForCount(test: (line: Record<string, unknown>) => boolean, count: number): Promise<void> {
    let seen = this.lines().filter(test).length;
    if (seen >= count) return Promise.resolve();
    return new Promise((resolve) =>
      this.waiters.push({
        test: (line) => test(line) && ++seen >= count,
        resolve,
      }),
    );
  }
  lines(): Record<string, unknown>[] {
    return this.raw.map((l) => JSON.parse(l) as Record<string, unknown>);
  }
  cancels(): Record<string, unknown>[] {
    return this.lines().filter((l) => l.msg === 'cancel');
  }
}

export function captureLogger(level = 'debug'): { logger: Logger; logs: LogCapture } {
  const logs = new LogCapture();
  const logger = createLogger({
    level,
    destination: logs.stream as unknown as pino.DestinationStream,
  });
  return { logger, logs };
}

export function tempDir(): string {
  return mkdtempSync(path.join(tmpdir(), 'cancel-gateway-'));
}

/** Writes a config object as YAML to a fresh temp file. */
export function writeConfig(config: unknown, dir = tempDir()): string {
  const file = path.join(dir, 'gateway.yaml');
  writeFileSync(file, typeof config === 'string' ? config : stringify(config));
  return file;
}

export interface TestGateway {
  gw: RunningGateway;
  url: string;
  logs: LogCapture;
  configFile: string;
  close(): Promise<void>;
}

/**
 * Starts a real gateway on 127.0.0.1:0 with the given config (or, with `existingFile`, that file
 * as it is); logs are captured.
 */
export async function startTestGateway(
  config: Record<string, unknown>,
  env: NodeJS.ProcessEnv = {},
  existingFile?: string,
  options: Pick<StartOptions, 'clock' | 'middleware' | 'tracing'> = {},
): Promise<TestGateway> {
  const withServer = {
    ...config,
    server: {
      host: '127.0.0.1',
      port: 0,
      // The drain's keep-alive window is its own test's subject (drain.test.ts); test clients keep
      // idle connections open, so every other shutdown would wait it out.
      drainWindowMs: 0,
      ...(config.server as Record<string, unknown> | undefined),
    },
  };
  const configFile = existingFile ?? writeConfig(withServer);
  const { logger, logs } = captureLogger();
  const gw = await startGateway({ configFile, env, logger, ...options });
  return { gw, url: gw.url, logs, configFile, close: () => gw.shutdown('test over') };
}

/** POSTs JSON to the gateway and returns status, headers and the parsed body. */
export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: Record<string, any> }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    body: JSON.parse(text) as Record<string, any>,
  };
}

/** Two callers for auth tests: `ops` (every target, by SHA-256) and `warehouse-team` (by env key). */
export const OPS_KEY = 'ops-key-0123456789abcdef';
export const WAREHOUSE_KEY = 'warehouse-key-0123456789';

/** The `auth` block of those two callers; `WAREHOUSE_KEY` must be in the gateway's env. */
export function twoCallerAuth(): Record<string, unknown> {
  return {
    apiKeys: [
      { id: 'ops', sha256: createHash('sha256').update(OPS_KEY).digest('hex') },
      { id: 'warehouse-team', key: '${WAREHOUSE_KEY}', targets: ['warehouse'] },
    ],
  };
}
