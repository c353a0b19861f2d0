import pino, { type ChildLoggerOptions, type DestinationStream, type Logger } from 'pino';
import SonicBoom from 'sonic-boom';

export type { Logger };

/**
 * Field names that may hold a secret. The gateway never logs them on purpose; redaction is the
 * safety net for a future mistake (contract §8). They are censored at the top level of a log
 * object (or a child logger's bindings) and one level down, e.g. `password`, `err.token`.
 */
const SECRET_KEYS = new Set(['password', 'token', 'authorization', 'apiKey', 'key', 'sha256']);
/** Credential headers, censored inside any `headers` object at those two levels. */
const SECRET_HEADERS = new Set(['authorization', 'x-api-key', 'auth-token']);
export const REDACTED = '[redacted]';

type Fields = Record<string, unknown>;

const isObject = (value: unknown): value is Fields =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** A copy with everything of the original (an Error keeps its message and stack) but `changes`. */
function copyWith(original: Fields, changes: Map<string, unknown>): Fields {
  const copy = Object.create(
    Object.getPrototypeOf(original) as object | null,
    Object.getOwnPropertyDescriptors(original),
  ) as Fields;
  for (const [key, value] of changes) {
    Object.defineProperty(copy, key, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return copy;
}

function scrubHeaders(headers: Fields): Fields {
  let changes: Map<string, unknown> | undefined;
  for (const key in headers) {
    if (SECRET_HEADERS.has(key.toLowerCase()) && headers[key] !== undefined)
      (changes ??= new Map()).set(key, REDACTED);
  }
  return changes === undefined ? headers : copyWith(headers, changes);
}

/**
 * The log object with secrets censored. The original is never modified, and copied only when
 * something had to change: the per-request line (no secret fields) costs a key lookup per field.
 * (pino's own `redact` with wildcard paths ran a redactor over every value of every line.)
 */
export function scrubSecrets(fields: Fields, depth = 0): Fields {
  let changes: Map<string, unknown> | undefined;
  for (const key in fields) {
    const value = fields[key];
    let next = value;
    if (SECRET_KEYS.has(key)) {
      if (value !== undefined) next = REDACTED;
    } else if (isObject(value)) {
      if (key === 'headers') next = scrubHeaders(value);
      else if (depth === 0) next = scrubSecrets(value, 1);
    }
    if (next !== value) (changes ??= new Map()).set(key, next);
  }
  return changes === undefined ? fields : copyWith(fields, changes);
}

/** Loggers made by createLogger, and the stream their lines go to (for `logLine`). */
const destinations = new WeakMap<Logger, DestinationStream>();

/** What `logLine` writes after the fields; pino writes the same from `base`. */
const SERVICE = 'cancel-gateway';

/**
 * One line for the hot path (the per-cancel line), byte for byte what `logger[level](fields, msg)`
 * writes, but serialized by one `JSON.stringify` instead of pino's field-by-field string building
 * (a tenth of the gateway's allocations per cancel). Fields are scrubbed like every other line.
 * A logger this module did not make (or a child) goes through pino.
 */
export function logLine(
  logger: Logger,
  level: 'info' | 'warn',
  fields: Record<string, unknown>,
  msg: string,
): void {
  const destination = destinations.get(logger);
  if (destination === undefined) {
    logger[level](fields, msg);
    return;
  }
  if (!logger.isLevelEnabled(level)) return;
  const json = JSON.stringify(scrubSecrets(fields));
  const body = json.length > 2 ? `${json.slice(1, -1)},` : '';
  destination.write(
    `{"level":"${level}","time":"${new Date().toISOString()}","service":"${SERVICE}",${body}"msg":${JSON.stringify(msg)}}\n`,
  );
}

export interface LoggerOptions {
  level?: string;
  /** Where lines go; stdout (asynchronously) when absent. */
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const destination = options.destination ?? stdoutDestination();
  const root = pino(
    {
      level: options.level ?? 'info',
      base: { service: SERVICE },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        log: (fields) => scrubSecrets(fields),
      },
    },
    destination,
  );
  // pino applies no formatter to a child's bindings: scrub them on the way in. Children inherit
  // this `child` from the root (they are created with the parent as prototype).
  type ChildFn = (this: Logger, bindings: Fields, opts?: ChildLoggerOptions) => Logger;
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called below with its own `this`
  const protoChild = root.child as unknown as ChildFn;
  Object.defineProperty(root, 'child', {
    value: function child(this: Logger, bindings: Fields, opts?: ChildLoggerOptions): Logger {
      return protoChild.call(this, scrubSecrets(bindings), opts);
    },
  });
  destinations.set(root, destination);
  return root;
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
    // Lines go in as Buffers: in its string mode sonic-boom appends each line to the pending
    // string and measures that with Buffer.byteLength, which flattens it: under load (lines
    // arriving while a write is out) that copied up to 16 KB per line.
    contentMode: 'buffer',
    // 1, not 0: every line is still written at once, and flush() then waits for the write.
    minLength: 1,
    maxLength: MAX_BUFFERED_LOG_BYTES,
    // At most ~5 s of retries for one blocked write (pino's exit flush retries synchronously).
    retryEAGAIN: () => ++eagainRetries <= 50,
  });
  // sonic-boom's types only know its string mode; in buffer mode `write` takes a Buffer.
  const buffered = inner as unknown as { write(data: Buffer): boolean };
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
      if (!dead) buffered.write(Buffer.from(line));
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
