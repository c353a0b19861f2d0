import { interpolate, loadConfigFile, parseConfig } from '../../../src/config/load';
import { describeValue } from '../../../src/core/request';

const valid = `
providers:
  wh:
    type: methodcall
    url: http://127.0.0.1:44000/api/v2/task
routes:
  warehouse:
    provider: wh
`;

function problems(text: string, env: Record<string, string> = {}): string[] {
  const result = parseConfig(text, 'test.yaml', env);
  if (result.ok) throw new Error('expected the config to be invalid');
  return result.problems;
}

describe('config: valid files', () => {
  it('applies the documented defaults', () => {
    const result = parseConfig(valid, 'test.yaml', {});
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.value.config.server).toEqual({
      host: '0.0.0.0',
      port: 8080,
      bodyLimitBytes: 16384,
      batchBodyLimitBytes: 262144,
      shutdownGraceMs: 20000,
      drainWindowMs: 1000,
      requestTimeoutMs: 15000,
      headersTimeoutMs: 10000,
      receiveTimeoutMs: 30000,
    });
    expect(result.value.config.routes.warehouse).toEqual({
      provider: 'wh',
      fallback: [],
      timeoutMs: 15000,
    });
    expect(result.value.config.state).toMatchObject({ store: 'memory', rememberSeconds: 86400 });
    expect(result.value.version).toMatch(/^[0-9a-f]{12}$/);
  });

  it('fills in every provider default, by protocol', () => {
    const text = `
providers:
  wh: { type: methodcall, url: "http://h/t" }
  rest: { type: dyn-rest, baseUrl: "https://x/REST", customerName: c, userName: u, password: p }
  soap: { type: dyn-soap, customerName: c, userName: u, password: p, maxSessions: 3 }
routes:
  w: { provider: wh }
`;
    const result = parseConfig(text, 't.yaml', {});
    if (!result.ok) throw new Error(result.problems.join());
    const resilience = {
      maxQueue: 64,
      maxConcurrent: 32,
      retry: { attempts: 2, baseDelayMs: 100, maxDelayMs: 1000 },
      circuitBreaker: { failureThreshold: 5, resetAfterMs: 30000 },
      // No TLS files, and no `proxy`: the environment decides.
      tls: {},
    };
    expect(result.value.config.providers.wh).toEqual({
      type: 'methodcall',
      url: 'http://h/t',
      timeoutMs: 5000,
      maxResponseBytes: 65536,
      connections: 32,
      rateLimit: undefined,
      ...resilience,
    });
    const dyn = {
      customerName: 'c',
      userName: 'u',
      password: 'p',
      timeoutMs: 15000,
      maxResponseBytes: 262144,
      loginBackoffMs: 60000,
      jobPollIntervalMs: 1000,
      jobTimeoutMs: 10000,
      rateLimit: { perSecond: 5, scope: 'process' },
      ...resilience,
    };
    expect(result.value.config.providers.rest).toEqual({
      type: 'dyn-rest',
      baseUrl: 'https://x/REST',
      maxSessions: 4,
      connections: 8,
      ...dyn,
    });
    expect(result.value.config.providers.soap).toEqual({
      type: 'dyn-soap',
      wsdl: 'wsdl/dynect.wsdl',
      maxSessions: 3,
      connections: 6,
      ...dyn,
    });
  });

  it('resolves both spellings of a rate limit into one rateLimit', () => {
    const text = `
providers:
  wh: { type: methodcall, url: "http://h/t", rateLimitPerSecond: "2.5" }
  a: { type: dyn-rest, baseUrl: "https://x/REST", customerName: c, userName: u, password: p, rateLimitPerSecond: 2 }
  b: { type: dyn-rest, baseUrl: "https://x/REST", customerName: c, userName: u, password: p, rateLimit: { perSecond: 3, scope: account } }
  c: { type: dyn-soap, customerName: c, userName: u, password: p, rateLimit: { perSecond: 4 } }
routes:
  w: { provider: wh }
`;
    const result = parseConfig(text, 't.yaml', {});
    if (!result.ok) throw new Error(result.problems.join());
    const { providers } = result.value.config;
    expect(providers.wh?.rateLimit).toEqual({ perSecond: 2.5, scope: 'process' });
    expect(providers.a?.rateLimit).toEqual({ perSecond: 2, scope: 'process' });
    expect(providers.b?.rateLimit).toEqual({ perSecond: 3, scope: 'account' });
    expect(providers.c?.rateLimit).toEqual({ perSecond: 4, scope: 'process' });
    for (const provider of Object.values(providers)) {
      expect(provider).not.toHaveProperty('rateLimitPerSecond');
    }
  });

  it('takes a given maxConcurrent as the pool size and a given route deadline as is', () => {
    const text = `
server: { requestTimeoutMs: 9000 }
providers:
  d: { type: dyn-rest, baseUrl: "https://x/REST", customerName: c, userName: u, password: p, maxConcurrent: 3 }
routes:
  a: { provider: d, timeoutMs: 2000 }
  b: { provider: d }
`;
    const result = parseConfig(text, 't.yaml', {});
    if (!result.ok) throw new Error(result.problems.join());
    expect(result.value.config.providers.d).toMatchObject({ maxConcurrent: 3, connections: 3 });
    expect(result.value.config.routes.a?.timeoutMs).toBe(2000);
    expect(result.value.config.routes.b?.timeoutMs).toBe(9000);
  });

  it('accepts JSON, which is valid YAML', () => {
    const json = JSON.stringify({
      providers: { wh: { type: 'methodcall', url: 'http://h/t' } },
      routes: { w: { provider: 'wh' } },
    });
    expect(parseConfig(json, 'c.json', {}).ok).toBe(true);
  });

  it('accepts all three provider types with fallbacks', () => {
    const text = `
providers:
  dns-rest: { type: dyn-rest, baseUrl: "https://api.dynect.net/REST", customerName: acme, userName: u, password: p }
  dns-soap: { type: dyn-soap, wsdl: wsdl/dynect.wsdl, endpoint: "https://api2.dynect.net/SOAP/", customerName: acme, userName: u, password: p }
  wh: { type: methodcall, url: "http://10.0.0.5:44000/api/v2/task" }
routes:
  dns: { provider: dns-rest, fallback: [dns-soap], timeoutMs: 9000 }
  warehouse: { provider: wh }
`;
    const result = parseConfig(text, 't.yaml', {});
    expect(result.ok).toBe(true);
  });

  it('freezes the result so inner code cannot mutate it', () => {
    const result = parseConfig(valid, 'test.yaml', {});
    if (!result.ok) throw new Error('invalid');
    expect(Object.isFrozen(result.value.config.providers.wh)).toBe(true);
  });

  it('gives the same version for the same bytes and another for other bytes', () => {
    const a = parseConfig(valid, 'a', {});
    const b = parseConfig(valid, 'b', {});
    const c = parseConfig(`${valid}\n# changed\n`, 'c', {});
    if (!a.ok || !b.ok || !c.ok) throw new Error('invalid');
    expect(a.value.version).toBe(b.value.version);
    expect(c.value.version).not.toBe(a.value.version);
  });
});

describe('config: environment interpolation', () => {
  it('replaces ${NAME} and ${NAME:-default}', () => {
    const text = valid.replace(
      'http://127.0.0.1:44000/api/v2/task',
      'http://${HOST_X}:${PORT_X:-44000}/api',
    );
    const result = parseConfig(text, 't', { HOST_X: 'wh.local' });
    if (!result.ok) throw new Error(result.problems.join());
    const wh = result.value.config.providers.wh;
    expect(wh?.type === 'methodcall' && wh.url).toBe('http://wh.local:44000/api');
  });

  it('turns a digit string from the environment into a number where one is expected', () => {
    const result = parseConfig(`server:\n  port: \${P}\n${valid}`, 't', { P: '9999' });
    if (!result.ok) throw new Error(result.problems.join());
    expect(result.value.config.server.port).toBe(9999);
  });

  it('reports a missing variable with its path', () => {
    const text = valid.replace('http://127.0.0.1:44000/api/v2/task', '${WH_URL}');
    expect(problems(text)).toEqual(['providers.wh.url: environment variable WH_URL is not set']);
  });

  it('treats an empty variable as missing', () => {
    const text = valid.replace('http://127.0.0.1:44000/api/v2/task', '${WH_URL}');
    expect(problems(text, { WH_URL: '' })[0]).toContain('WH_URL');
  });

  it('keeps $$ as a literal dollar and never re-expands values', () => {
    const out = interpolate({ a: 'p$$ss', b: '${X}' }, { X: '${Y}', Y: 'no' }, []);
    expect(out).toEqual({ a: 'p$ss', b: '${Y}' });
  });

  it('does not break YAML when a value holds YAML syntax', () => {
    const text = `
providers:
  dns: { type: dyn-rest, baseUrl: "https://x/REST", customerName: c, userName: u, password: "\${PW}" }
routes:
  dns: { provider: dns }
`;
    const result = parseConfig(text, 't', { PW: 'a: b # c' });
    if (!result.ok) throw new Error(result.problems.join());
    const dns = result.value.config.providers.dns;
    expect(dns?.type === 'dyn-rest' && dns.password).toBe('a: b # c');
  });
});

describe('config: every error names its path', () => {
  it.each([
    ['a YAML syntax error', 'providers: [', /^test\.yaml:\d+:\d+: /],
    ['a top-level list', '- a\n- b', /^test\.yaml: must be a mapping/],
    ['an empty file', '', /^test\.yaml: must be a mapping/],
    ['a duplicate key', `${valid}\nroutes: {}`, /^test\.yaml:\d+:\d+: .*[Dd]uplicate|unique/],
    ['no providers', 'routes:\n  a: { provider: b }', /^providers: is required/],
    ['an unknown top-level key', `${valid}\nrotues: {}`, /^rotues: unknown key$/],
    ['an unknown server key', `server:\n  prot: 80\n${valid}`, /^server\.prot: unknown key$/],
    [
      'an unknown provider key',
      valid.replace('type: methodcall', 'type: methodcall\n    urll: x'),
      /^providers\.wh\.urll: unknown key$/,
    ],
    [
      'an unknown provider type',
      valid.replace('type: methodcall', 'type: graphql'),
      /^providers\.wh\.type: expected one of "methodcall", "dyn-rest", "dyn-soap", got "graphql"$/,
    ],
    [
      'a missing url',
      valid.replace('    url: http://127.0.0.1:44000/api/v2/task\n', ''),
      /^providers\.wh\.url: is required$/,
    ],
    [
      'a bad url',
      valid.replace('http://127.0.0.1:44000/api/v2/task', 'ftp://x/y'),
      /^providers\.wh\.url: /,
    ],
    [
      'a bad provider name',
      valid.replace('  wh:', '  Wh!:').replace('provider: wh', 'provider: wh'),
      /^providers\.Wh!: a provider name must match \^\[a-z0-9\]\[a-z0-9_-\]\{0,62\}\$$/,
    ],
    [
      'a route to an unknown provider',
      valid.replace('provider: wh', 'provider: nope'),
      /^routes\.warehouse\.provider: unknown provider "nope"$/,
    ],
    [
      'an unknown fallback',
      valid.replace('provider: wh', 'provider: wh\n    fallback: [ghost]'),
      /^routes\.warehouse\.fallback\.0: unknown provider "ghost"$/,
    ],
    [
      'a provider twice in a chain',
      valid.replace('provider: wh', 'provider: wh\n    fallback: [wh]'),
      /^routes\.warehouse\.fallback\.0: provider "wh" appears twice/,
    ],
    ['a port out of range', `server:\n  port: 70000\n${valid}`, /^server\.port: /],
    [
      'a negative timeout',
      valid.replace('type: methodcall', 'type: methodcall\n    timeoutMs: -1'),
      /^providers\.wh\.timeoutMs: /,
    ],
    [
      'a string where a number goes',
      `server:\n  bodyLimitBytes: big\n${valid}`,
      /^server\.bodyLimitBytes: /,
    ],
    [
      'a dyn provider without credentials',
      'providers:\n  d: { type: dyn-rest, baseUrl: "https://x/REST" }\nroutes:\n  d: { provider: d }',
      /^providers\.d\.(customerName|userName|password): is required$/,
    ],
    [
      'an api key with both sha256 and key',
      `auth:\n  apiKeys:\n    - { id: a, key: "0123456789abcdef0", sha256: "${'a'.repeat(64)}" }\n${valid}`,
      /^auth\.apiKeys\.0: give exactly one of sha256 or key$/,
    ],
    [
      'an api key for an unknown target',
      `auth:\n  apiKeys:\n    - { id: a, sha256: "${'a'.repeat(64)}", targets: [nope] }\n${valid}`,
      /^auth\.apiKeys\.0\.targets\.0: unknown target "nope"$/,
    ],
    [
      'redis without a url',
      `state:\n  store: redis\n${valid}`,
      /^state\.redisUrl: is required when store is redis$/,
    ],
    [
      'both spellings of a rate limit',
      'providers:\n  d: { type: dyn-rest, baseUrl: "https://x/REST", customerName: c, userName: u, password: p, rateLimitPerSecond: 1, rateLimit: { perSecond: 2 } }\nroutes:\n  d: { provider: d }',
      /^providers\.d\.rateLimit: give at most one of rateLimitPerSecond or rateLimit$/,
    ],
    [
      'a rateLimit on methodcall, which has no account scope',
      valid.replace('type: methodcall', 'type: methodcall\n    rateLimit: { perSecond: 1 }'),
      /^providers\.wh\.rateLimit: unknown key$/,
    ],
    [
      'an empty routes map',
      'providers:\n  wh: { type: methodcall, url: "http://h/t" }\nroutes: {}',
      /^routes: at least one route is required$/,
    ],
  ])('%s', (_name, text, expected) => {
    const found = problems(text);
    expect(found.length).toBeGreaterThan(0);
    expect(found.some((p) => expected.test(p))).toBe(true);
  });

  it('reports every problem, not just the first', () => {
    const text = `
server: { port: -1, prot: 1 }
providers:
  wh: { type: methodcall, url: nope }
routes:
  w: { provider: ghost }
`;
    const found = problems(text);
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^server\.port: /),
        'server.prot: unknown key',
        expect.stringMatching(/^providers\.wh\.url: /),
      ]),
    );
  });

  it('reports an unreadable file without throwing', () => {
    const result = loadConfigFile('/nonexistent/gateway.yaml', {});
    expect(result).toEqual({
      ok: false,
      problems: ['/nonexistent/gateway.yaml: cannot read the file (ENOENT)'],
    });
  });
});

describe('config: a value of the wrong type is reported as such, never as "is required"', () => {
  /** `valid` with `line` added to the `wh` provider. */
  const withProvider = (line: string) =>
    valid.replace('type: methodcall', `type: methodcall\n    ${line}`);

  it.each([
    // invalid_type, one per kind of value that can come
    [
      `server:\n  requestTimeoutMs: "ten seconds"\n${valid}`,
      'server.requestTimeoutMs: expected an integer, got "ten seconds"',
    ],
    [withProvider('timeoutMs: 3000.5'), 'providers.wh.timeoutMs: expected an integer, got 3000.5'],
    [withProvider('retry: 3'), 'providers.wh.retry: expected an object, got 3'],
    [withProvider('retry: [1]'), 'providers.wh.retry: expected an object, got array'],
    [withProvider('maxQueue: true'), 'providers.wh.maxQueue: expected an integer, got boolean'],
    [withProvider('maxQueue: null'), 'providers.wh.maxQueue: expected an integer, got null'],
    [withProvider('maxQueue: { a: 1 }'), 'providers.wh.maxQueue: expected an integer, got object'],
    [
      withProvider('rateLimitPerSecond: fast'),
      'providers.wh.rateLimitPerSecond: expected a number, got "fast"',
    ],
    [
      valid.replace('provider: wh', 'provider: wh\n    fallback: dns-soap-sim'),
      'routes.warehouse.fallback: expected a list, got "dns-soap-sim"',
    ],
    ['providers: [a]\nroutes:\n  w: { provider: a }', 'providers: expected an object, got array'],
    // too_small / too_big
    [`server:\n  port: 70000\n${valid}`, 'server.port: expected at most 65535, got 70000'],
    [withProvider('maxQueue: -1'), 'providers.wh.maxQueue: expected at least 0, got -1'],
    [
      withProvider('rateLimitPerSecond: 0'),
      'providers.wh.rateLimitPerSecond: expected more than 0, got 0',
    ],
    [
      valid.replace('provider: wh', 'provider: wh\n    fallback: [a, b, c, d, e, f, g, h, i]'),
      'routes.warehouse.fallback: expected at most 8 items, got 9',
    ],
    // invalid_format: a URL and a name (regex)
    [
      valid.replace('http://127.0.0.1:44000/api/v2/task', 'ftp://x/y'),
      'providers.wh.url: expected an http:// or https:// URL, got "ftp://x/y"',
    ],
    [
      valid.replace('provider: wh', 'provider: Wh'),
      'routes.warehouse.provider: expected a name matching ^[a-z0-9][a-z0-9_-]{0,62}$, got "Wh"',
    ],
    // invalid_value (enum)
    [
      `state:\n  store: mongo\n${valid}`,
      'state.store: expected one of "memory", "redis", got "mongo"',
    ],
    // invalid_union (the discriminator)
    [
      valid.replace('type: methodcall', 'type: 5'),
      'providers.wh.type: expected one of "methodcall", "dyn-rest", "dyn-soap", got 5',
    ],
    [valid.replace('    type: methodcall\n', ''), 'providers.wh.type: is required'],
    // invalid_key (a record key)
    [
      valid.replace('  warehouse:', '  Bad_Name:'),
      'routes.Bad_Name: a route name must match ^[a-z0-9][a-z0-9_-]{0,62}$',
    ],
    [
      valid.replace('  wh:', '  WH:'),
      'providers.WH: a provider name must match ^[a-z0-9][a-z0-9_-]{0,62}$',
    ],
    // unrecognized_keys
    [withProvider('urll: x'), 'providers.wh.urll: unknown key'],
    // custom refinements
    [
      valid.replace('provider: wh', 'provider: nope'),
      'routes.warehouse.provider: unknown provider "nope"',
    ],
    [
      `server:\n  host: 127.0.0.999\n${valid}`,
      'server.host: expected an IPv4 or IPv6 address or a host name, got "127.0.0.999"',
    ],
  ])('%#: %s', (text, expected) => {
    expect(problems(text)).toEqual([expected]);
  });

  it('says "is required" only for an absent key', () => {
    expect(problems(valid.replace('    url: http://127.0.0.1:44000/api/v2/task\n', ''))).toEqual([
      'providers.wh.url: is required',
    ]);
    const present = [`server:\n  port: null\n${valid}`, `server:\n  port: ""\n${valid}`];
    for (const text of present) expect(problems(text).join()).not.toContain('is required');
  });

  it('keeps secrets out of the messages: only their type or length', () => {
    const dyn = (password: string) =>
      `providers:\n  d: { type: dyn-rest, baseUrl: "https://x/REST", customerName: c, userName: u, password: ${password} }\nroutes:\n  d: { provider: d }`;
    expect(problems(dyn('123456'))).toEqual([
      'providers.d.password: expected a string, got number',
    ]);
    expect(problems(dyn('""'))).toEqual([
      'providers.d.password: expected at least 1 character, got 0',
    ]);
    const keys = `auth:\n  apiKeys:\n    - { id: a, key: short-secret }\n    - { id: b, sha256: pasted-secret-key }\n${valid}`;
    const found = problems(keys);
    expect(found).toEqual([
      'auth.apiKeys.0.key: expected at least 16 characters, got 12',
      'auth.apiKeys.1.sha256: expected 64 hex characters (the SHA-256 of the key), got 17',
    ]);
    expect(found.join()).not.toContain('secret');
  });
});

describe('config: server.host', () => {
  const withHost = (host: string) => `server:\n  host: ${JSON.stringify(host)}\n${valid}`;

  it.each([
    '0.0.0.0',
    '127.0.0.1',
    '::',
    '::1',
    'fe80::1',
    'localhost',
    'gw-1.example.com',
    'host.docker.internal',
    'a1.b2c',
  ])('accepts %s', (host) => {
    const result = parseConfig(withHost(host), 't.yaml', {});
    if (!result.ok) throw new Error(result.problems.join());
    expect(result.value.config.server.host).toBe(host);
  });

  it.each([
    '127.0.0.999',
    '256.0.0.1',
    '1.2.3',
    '10.0.0.1.',
    '',
    ' localhost',
    'my_host',
    '-a.b',
    'a-.b',
    '[::1]',
    '::g',
    'http://h',
    `${'a'.repeat(64)}.com`,
  ])('refuses %p: neither an IP address nor a host name', (host) => {
    expect(problems(withHost(host))).toEqual([
      `server.host: expected an IPv4 or IPv6 address or a host name, got ${describeValue(host)}`,
    ]);
  });
});
