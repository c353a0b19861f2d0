import pino, { type DestinationStream, type Logger } from 'pino';
import SonicBoom from 'sonic-boom';

export type { Logger };

/** What a censored value is replaced with in a log line. */
export const REDACTED = '[redacted]';

/**
 * Field names that may hold a secret. The gateway never logs them on purpose; redaction is the
 * safety net for a future mistake. pino applies `redact` to a child logger's bindings too.
 */
const SECRET_KEYS = ['password', 'token', 'authorization', 'apiKey', 'key', 'sha256'];
/**
 * Credential headers. Node lower-cases the headers it parses, but a header object built in code
 * (or copied from another client) may carry them capitalized, and redact paths match exactly.
 */
const SECRET_HEADERS = [
  'authorization',
  'Authorization',
  'x-api-key',
  'X-Api-Key',
  'X-API-Key',
  'auth-token',
  'Auth-Token',
];
/**
 * Objects the gateway logs that carry nested data: errors (`err`), and the `request`/`response`
 * an HTTP client error may hold. Paths are spelled out rather than wildcards (`*.password`):
 * pino's redaction copies the whole line for a wildcard, which cost ~80 µs of CPU per cancel
 * line at full load, a sixth of the gateway's own time (docs/performance.md).
 */
const NESTING = ['err', 'err.request', 'err.response', 'err.cause'];

/** Secret keys and credential headers at the top level and in each nested object above. */
const REDACT_PATHS = [
  ...['', ...NESTING.map((parent) => `${parent}.`)].flatMap((prefix) => [
    ...SECRET_KEYS.map((key) => `${prefix}${key}`),
    ...SECRET_HEADERS.map((header) => `${prefix}headers["${header}"]`),
  ]),
  // ioredis errors carry the command that failed: for a refused AUTH its args are the password.
  'err.command.args',
];

/** How createLogger is configured. */
export interface LoggerOptions {
  level?: string;
  /** Where lines go; stdout (asynchronously) when absent. */
  destination?: DestinationStream;
}

/** The gateway's JSON-lines logger: ISO time, level names, the service name, secrets censored. */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: 'cancel-gateway' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT_PATHS, censor: REDACTED },
    },
    options.destination ?? stdoutDestination(),
  );
}

/** Past this many buffered bytes (a log reader that stopped reading), new lines are dropped. */
const MAX_BUFFERED_LOG_BYTES = 16 * 1024 * 1024;

/**
 * Asynchronous stdout that can never wedge the process. pino's own stdout destination, once the
 * reader of a pipe is gone (EPIPE), spins forever in the synchronous flush that pino runs at exit,
 * so SIGTERM would never finish. This wrapper stops writing after a fatal write error, bounds the
 * buffer when the reader stalls, and is flushed by the gateway's own shutdown, with a time limit.
 */
function stdoutDestination(): DestinationStream & { flush(cb: (err?: Error) => void): void } {
  let eagainRetries = 0;
  // Built directly rather than through pino.destination(), which also registers a synchronous
  // flush at process exit: on a pipe whose reader is gone that flush retries EPIPE forever.
  const inner = new SonicBoom({
    dest: 1,
    sync: false,
    // 1, not 0: every line is still written at once, and flush() then waits for the write
    // (sonic-boom's flush returns at once when minLength is 0). Larger values batch writes, but
    // a flush() that meets a write in progress then calls back with the rest still buffered, and
    // the last lines before exit are lost (test/unit/logger.test.ts catches it).
    minLength: 1,
    maxLength: MAX_BUFFERED_LOG_BYTES,
    // At most ~5 s of retries for one blocked write (pino's exit flush retries synchronously).
    retryEAGAIN: () => ++eagainRetries <= 50,
  });
  let dead = false;
  inner.on('write', () => {
    eagainRetries = 0;
  });
  inner.on('error', (err: NodeJS.ErrnoException) => {
    eagainRetries = 0;
    if (err.code === 'EAGAIN' || err.code === 'EBUSY' || dead) return;
    dead = true;
    // Drops what is buffered: with the reader gone, those lines can never be delivered.
    inner.destroy();
  });
  return {
    write(line: string): void {
      if (!dead) inner.write(line);
    },
    flush(cb: (err?: Error) => void): void {
      if (dead) {
        cb();
        return;
      }
      inner.flush((err) => {
        cb(err ?? undefined);
      });
    },
  };
}
