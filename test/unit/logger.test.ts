import { spawn } from 'node:child_process';
import path from 'node:path';
import { createLogger, logLine, REDACTED, scrubSecrets } from '../../src/observability/logger';

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

describe('log redaction (contract §8)', () => {
  const SECRET = 'hunter2-secret-value';

  it('censors secret fields at the top level and one level down', () => {
    const out = capture();
    const log = createLogger({ destination: out });
    log.info(
      {
        password: SECRET,
        token: SECRET,
        apiKey: SECRET,
        key: SECRET,
        sha256: SECRET,
        authorization: SECRET,
        login: { password: SECRET, user: 'demo' },
        upstream: { token: SECRET, status: 200 },
      },
      'first',
    );
    expect(out.text()).not.toContain(SECRET);
    const [line] = out.lines();
    expect(line).toMatchObject({
      password: REDACTED,
      token: REDACTED,
      apiKey: REDACTED,
      key: REDACTED,
      sha256: REDACTED,
      authorization: REDACTED,
      login: { password: REDACTED, user: 'demo' },
      upstream: { token: REDACTED, status: 200 },
      msg: 'first',
    });
  });

  it('censors credential headers, whatever their case, at both levels', () => {
    const out = capture();
    const log = createLogger({ destination: out });
    log.warn({
      headers: { Authorization: `Bearer ${SECRET}`, 'content-type': 'application/json' },
      req: { headers: { 'x-api-key': SECRET, 'Auth-Token': SECRET, accept: '*/*' } },
    });
    expect(out.text()).not.toContain(SECRET);
    expect(out.lines()[0]).toMatchObject({
      headers: { Authorization: REDACTED, 'content-type': 'application/json' },
      req: { headers: { 'x-api-key': REDACTED, 'Auth-Token': REDACTED, accept: '*/*' } },
    });
  });

  it("censors a child logger's bindings", () => {
    const out = capture();
    const log = createLogger({ destination: out }).child({ provider: 'dns', token: SECRET });
    log.info('from a child');
    expect(out.text()).not.toContain(SECRET);
    expect(out.lines()[0]).toMatchObject({ provider: 'dns', token: REDACTED });
  });

  it('keeps an error’s message and stack when a field inside it is censored', () => {
    const out = capture();
    const log = createLogger({ destination: out });
    const err = Object.assign(new Error('login refused'), { password: SECRET });
    log.error({ err }, 'failed');
    expect(out.text()).not.toContain(SECRET);
    const [line] = out.lines();
    expect(line?.err).toMatchObject({ message: 'login refused', password: REDACTED });
    expect(String((line?.err as { stack?: unknown }).stack)).toContain('login refused');
  });

  it('never modifies the caller’s object, and returns it unchanged when there is no secret', () => {
    const fields = { requestId: 'r1', attempts: [{ provider: 'wh' }], nested: { a: 1 } };
    expect(scrubSecrets(fields)).toBe(fields);
    const withSecret = { nested: { password: SECRET } };
    const scrubbed = scrubSecrets(withSecret);
    expect(scrubbed).toEqual({ nested: { password: REDACTED } });
    expect(withSecret.nested.password).toBe(SECRET);
  });
});

describe('logLine (the per-cancel line)', () => {
  const withoutTime = (line: string): string => line.replace(/"time":"[^"]+"/, '"time":"T"');
  const fields = {
    requestId: 'req-1',
    caller: 'orders',
    target: 'dns',
    provider: 'dns-rest',
    taskId: '123',
    outcome: 'canceled',
    status: 200,
    durationMs: 4,
    attempts: [{ provider: 'dns-rest', outcome: 'canceled', durationMs: 4 }],
    errorCode: undefined,
    reason: 'quote "needs" escaping \\ and \u2028 and é',
    ratio: Number.NaN,
  };

  it.each(['info', 'warn'] as const)('writes exactly what pino writes (%s)', (level) => {
    const viaPino = capture();
    createLogger({ destination: viaPino })[level](fields, 'cancel');
    const viaLine = capture();
    logLine(createLogger({ destination: viaLine }), level, fields, 'cancel');
    expect(viaLine.text()).toMatch(/"time":"\d{4}-\d\d-\d\dT[\d:.]+Z"/);
    expect(withoutTime(viaLine.text())).toBe(withoutTime(viaPino.text()));
  });

  it('writes nothing below the logger level, and censors secrets', () => {
    const out = capture();
    const log = createLogger({ destination: out, level: 'warn' });
    logLine(log, 'info', { requestId: 'r' }, 'cancel');
    expect(out.text()).toBe('');
    logLine(log, 'warn', { requestId: 'r', token: 'hunter2' }, 'cancel');
    expect(out.lines()).toEqual([
      expect.objectContaining({ level: 'warn', requestId: 'r', token: REDACTED, msg: 'cancel' }),
    ]);
  });

  it('goes through pino for a logger it did not make (a child)', () => {
    const out = capture();
    const child = createLogger({ destination: out }).child({ component: 'x' });
    logLine(child, 'info', { requestId: 'r' }, 'cancel');
    expect(out.lines()[0]).toMatchObject({ component: 'x', requestId: 'r', msg: 'cancel' });
  });
});

describe('the stdout destination', () => {
  // A burst of lines written while earlier writes are still out (they queue in sonic-boom's
  // buffer mode), with multi-byte text, read back from a real pipe after the logger's flush.
  it('delivers every line of a burst whole, in order, byte for byte', async () => {
    const LINES = 3000;
    const note = 'café ✓ 日本語 😀';
    const script = [
      `const { createLogger } = require(${JSON.stringify(path.resolve(__dirname, '../../src/observability/logger'))});`,
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
});
