import { spawn } from 'node:child_process';
import path from 'node:path';
import { createLogger, REDACTED } from '../../src/observability/logger';

function capture(): {
  lines: () => Record<string, unknown>[];
  text: () => string;
  write: (line: string) => void;
} {
  const written: string[] = [];
  return {
    write: (line) => written.push(line),
    text: () => written.join(''),
    lines: () => written.map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

const SECRET = 'hunter2-secret-value';
const SECRET_KEYS = ['password', 'token', 'authorization', 'apiKey', 'key', 'sha256'];
const SECRET_HEADERS = [
  'authorization',
  'Authorization',
  'x-api-key',
  'X-Api-Key',
  'X-API-Key',
  'auth-token',
  'Auth-Token',
];
/** Every secret key, holding SECRET, next to a field that must survive. */
const secretFields = (): Record<string, unknown> => ({
  ...Object.fromEntries(SECRET_KEYS.map((k) => [k, SECRET])),
  kept: 'visible',
});
const censoredFields = {
  ...Object.fromEntries(SECRET_KEYS.map((k) => [k, REDACTED])),
  kept: 'visible',
};
const secretHeaders = (): Record<string, string> => ({
  ...Object.fromEntries(SECRET_HEADERS.map((h) => [h, `Bearer ${SECRET}`])),
  'content-type': 'application/json',
});
const censoredHeaders = {
  ...Object.fromEntries(SECRET_HEADERS.map((h) => [h, REDACTED])),
  'content-type': 'application/json',
};

describe('the log line', () => {
  it('carries the level name, an ISO time, the service and the message', () => {
    const out = capture();
    createLogger({ destination: out }).warn({ requestId: 'r1' }, 'cancel');
    expect(out.lines()).toEqual([
      {
        level: 'warn',
        time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/) as unknown,
        service: 'cancel-gateway',
        requestId: 'r1',
        msg: 'cancel',
      },
    ]);
  });

  it('writes nothing below its level', () => {
    const out = capture();
    const log = createLogger({ destination: out, level: 'warn' });
    log.info({ requestId: 'r' }, 'cancel');
    expect(out.text()).toBe('');
  });
});

describe('log redaction', () => {
  it('censors every secret field at the top level', () => {
    const out = capture();
    createLogger({ destination: out }).info(secretFields(), 'top');
    expect(out.text()).not.toContain(SECRET);
    expect(out.lines()[0]).toMatchObject({ ...censoredFields, msg: 'top' });
  });

  it.each(['err', 'err.request', 'err.response', 'err.cause'])(
    'censors every secret field and credential header inside %s',
    (parent) => {
      const out = capture();
      const nested = { ...secretFields(), headers: secretHeaders() };
      const fields = parent
        .split('.')
        .reduceRight<Record<string, unknown>>((inner, key) => ({ [key]: inner }), nested);
      createLogger({ destination: out }).info({ ...fields, status: 200 }, 'nested');
      expect(out.text()).not.toContain(SECRET);
      const line = out.lines()[0] as Record<string, unknown>;
      const found = parent
        .split('.')
        .reduce<unknown>((value, key) => (value as Record<string, unknown>)[key], line);
      expect(found).toMatchObject({ ...censoredFields, headers: censoredHeaders });
      expect(line.status).toBe(200);
    },
  );

  it('censors the arguments of the Redis command an ioredis error carries (AUTH holds the password)', () => {
    const out = capture();
    const err = Object.assign(new Error('WRONGPASS invalid username-password pair'), {
      command: { name: 'auth', args: ['gateway', SECRET] },
    });
    createLogger({ destination: out }).warn({ err }, 'state store (redis) unavailable');
    expect(out.text()).not.toContain(SECRET);
    expect(out.lines()[0]).toMatchObject({
      err: { message: 'WRONGPASS invalid username-password pair', command: { name: 'auth' } },
    });
  });

  it('censors credential headers, in each casing, at the top level', () => {
    const out = capture();
    createLogger({ destination: out }).warn({ headers: secretHeaders(), method: 'POST' });
    expect(out.text()).not.toContain(SECRET);
    expect(out.lines()[0]).toMatchObject({ headers: censoredHeaders, method: 'POST' });
  });

  it("censors a child logger's bindings, and a grandchild's", () => {
    const out = capture();
    const child = createLogger({ destination: out }).child({
      provider: 'dns',
      ...secretFields(),
      err: secretFields(),
      headers: secretHeaders(),
    });
    child.child({ apiKey: SECRET, user: 'u' }).info('from a grandchild');
    expect(out.text()).not.toContain(SECRET);
    expect(out.lines()[0]).toMatchObject({
      provider: 'dns',
      ...censoredFields,
      err: censoredFields,
      headers: censoredHeaders,
      user: 'u',
      msg: 'from a grandchild',
    });
  });

  it('keeps an error’s message and stack when a field inside it is censored', () => {
    const out = capture();
    const err = Object.assign(new Error('login refused'), { password: SECRET });
    createLogger({ destination: out }).error({ err }, 'failed');
    expect(out.text()).not.toContain(SECRET);
    const [line] = out.lines();
    expect(line?.err).toMatchObject({ message: 'login refused', password: REDACTED });
    expect(String((line?.err as { stack?: unknown }).stack)).toContain('login refused');
  });

  it('leaves the caller’s object as it was, and lines without secrets untouched', () => {
    const out = capture();
    const log = createLogger({ destination: out });
    const fields = { requestId: 'r1', err: { password: SECRET, a: 1 }, errorCode: undefined };
    log.info(fields, 'first');
    expect(fields).toStrictEqual({
      requestId: 'r1',
      err: { password: SECRET, a: 1 },
      errorCode: undefined,
    });
    log.info({ requestId: 'r2', attempts: [{ provider: 'wh', outcome: 'canceled' }] }, 'cancel');
    expect(out.text()).not.toContain(SECRET);
    expect(out.lines()[1]).toMatchObject({
      requestId: 'r2',
      attempts: [{ provider: 'wh', outcome: 'canceled' }],
    });
    expect(out.text().split('\n')[1]).not.toContain(REDACTED);
  });
});

const LOGGER_MODULE = JSON.stringify(path.resolve(__dirname, '../../src/observability/logger'));

describe('the stdout destination', () => {
  // A burst of lines written while earlier writes are still out (they queue in sonic-boom),
  // with multi-byte text, read back from a real pipe after the logger's flush.
  it('delivers every line of a burst whole, in order, byte for byte', async () => {
    const LINES = 3000;
    const note = 'café ✓ 日本語 😀';
    const script = [
      `const { createLogger } = require(${LOGGER_MODULE});`,
      `const log = createLogger();`,
      `for (let i = 0; i < ${LINES}; i++) log.info({ i, note: ${JSON.stringify(note)} + i }, 'burst');`,
      `log.flush(() => process.exit(0));`,
    ].join('\n');
    const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const chunks: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const lines = Buffer.concat(chunks).toString('utf8').split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(LINES);
    lines.forEach((line, i) => {
      expect(JSON.parse(line)).toMatchObject({ i, note: note + String(i), msg: 'burst' });
    });
  });

  // The reader of stdout goes away (a log shipper that died): the lines after it must be dropped
  // and the flush must still call back, so that shutdown finishes instead of spinning on EPIPE.
  it('lets the process log, flush and exit after the reader of its pipe is gone', async () => {
    const script = [
      `const { createLogger } = require(${LOGGER_MODULE});`,
      `const log = createLogger();`,
      `log.info('before');`,
      `process.stdin.once('data', () => {`,
      `  for (let i = 0; i < 5000; i++) log.info({ i, pad: 'x'.repeat(200) }, 'after');`,
      `  log.flush(() => { log.info('after the flush'); log.flush(() => process.exit(0)); });`,
      `});`,
    ].join('\n');
    const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
    const first = await new Promise<string>((resolve) => {
      child.stdout.once('data', (c: Buffer) => {
        resolve(c.toString());
      });
    });
    child.stdout.destroy();
    child.stdin.end('go\n');
    expect(await closed).toBe(0);
    expect(JSON.parse(first)).toMatchObject({ msg: 'before' });
    expect(stderr).toBe('');
  });
});
