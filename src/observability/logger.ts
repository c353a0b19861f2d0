import pino, { type DestinationStream, type Logger } from 'pino';
import SonicBoom from 'sonic-boom';

export type { Logger };

/**
 * Field names that may hold a secret. The gateway never logs them on purpose; redaction is the
 * safety net for a future mistake (contract §8).
 */
const SECRET_PATHS = [
  'password',
  'token',
  'authorization',
  'apiKey',
  'key',
  'sha256',
  'headers.authorization',
  'headers["x-api-key"]',
  'headers["auth-token"]',
  '*.password',
  '*.token',
  '*.authorization',
  '*.apiKey',
  '*.key',
  '*.headers.authorization',
  '*.headers["x-api-key"]',
  '*.headers["auth-token"]',
];

export interface LoggerOptions {
  level?: string;
  /** Where lines go; stdout (asynchronously) when absent. */
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const destination = options.destination ?? stdoutDestination();
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: 'cancel-gateway' },
      redact: { paths: SECRET_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
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
    // 1, not 0: every line is still written at once, and flush() then waits for the write.
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
    // A destroyed stream is skipped by pino's exit hook, which would otherwise spin on EPIPE.
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
