import { createLogger, REDACTED, scrubSecrets } from '../../src/observability/logger';

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
