import { isIP } from 'node:net';
import { z } from 'zod';
import { PROTOCOLS, type Protocol } from '../core/protocols';
import { expecting, NAME_PATTERN } from '../core/request';

/*
 * The gateway's configuration: every default lives here, so a parsed config is complete and inner
 * code reads fields without fallbacks. `docs/config-reference.md` is generated from this file
 * (`npm run docs`, scripts/config-docs.ts); a test fails when it is stale.
 *
 * Defaults are `.prefault()`s: an input value, parsed like a given one. A `.default()` behind the
 * `${ENV}` coercion below would be dropped from the input JSON Schema the reference is built from.
 *
 * Messages: config/load.ts parses with core/request.ts's `issueMessage`, which says what was
 * expected and what came for every zod issue; a schema here names only what zod cannot.
 */

/** Integers may arrive as digit strings after `${ENV}` interpolation. */
function int(min: number, max = Number.MAX_SAFE_INTEGER) {
  return z.preprocess(
    (value) => (typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value),
    // zod reports a string given to an int as "expected number": say integer.
    z
      .int({ error: (issue) => (issue.code === 'invalid_type' ? integer(issue) : undefined) })
      .min(min)
      .max(max),
  );
}

const integer = expecting('an integer');

/** Rates may arrive as number strings after `${ENV}` interpolation. */
function rate() {
  return z.preprocess(
    // A string that is no number stays a string, so the message quotes it rather than NaN.
    (value) =>
      typeof value === 'string' && value.trim() !== '' && !Number.isNaN(Number(value))
        ? Number(value)
        : value,
    z.number().positive().max(100_000),
  );
}

/**
 * Metadata for an optional field whose default depends on other fields: the transform that
 * fills it in is the only place the value is computed, and the config reference prints `text`
 * (markdown) as its default.
 */
function computedDefault(text: string, description: string) {
  return { description, computedDefault: text };
}

const Name = z
  .string()
  .regex(NAME_PATTERN, { error: expecting(`a name matching ${NAME_PATTERN.source}`) });

/** A map key: the path already shows the key, so the message states the rule. */
function nameKey(kind: 'provider' | 'route') {
  return z.string().regex(NAME_PATTERN, `a ${kind} name must match ${NAME_PATTERN.source}`);
}

const HttpUrl = z.url({ protocol: /^https?$/, error: expecting('an http:// or https:// URL') });

/** An RFC 1123 host name; its last label is never all digits (that is an IPv4 address). */
const HOST_NAME =
  /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*(?=[a-z0-9-]*[a-z-])[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

/** What `listen()` can bind: an IP literal, or a name the resolver may know (`localhost`). */
function isListenHost(host: string): boolean {
  return isIP(host) !== 0 || HOST_NAME.test(host);
}

/**
 * A URL as messages may show it: user name and password are secrets (a proxy's credentials), so
 * they are replaced by `***`.
 */
export function withoutCredentials(url: URL): string {
  if (url.username === '' && url.password === '') return url.href;
  const shown = new URL(url.href);
  shown.username = '***';
  shown.password = '';
  return shown.href;
}

/**
 * What is wrong with a forward proxy's URL, or undefined. Only `http://` proxies: the connection
 * to the proxy is plain, the upstream's TLS runs inside the CONNECT tunnel. The text is never
 * quoted back whole, since it may carry credentials.
 */
export function proxyUrlProblem(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'expected an http:// proxy URL or false, got a string that is not a URL';
  }
  const shown = withoutCredentials(url);
  if (url.protocol === 'https:') {
    return `expected an http:// proxy URL (a TLS connection to the proxy is not supported), got ${shown}`;
  }
  // `user:secret@host` parses as scheme `user:`: nothing of it is shown.
  if (url.protocol !== 'http:') {
    return 'expected an http:// proxy URL or false, got a string without http:// (write http://host:port)';
  }
  if (url.hostname === '') return `expected a proxy URL with a host, got ${shown}`;
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') {
    return `expected a proxy URL without a path, query or fragment (http://host:port), got ${shown}`;
  }
  return undefined;
}

const ProxySchema = z.preprocess(
  // `${EGRESS_PROXY:-false}` interpolates to the string "false".
  (value) => (value === 'false' ? false : value),
  z.union(
    [
      z.literal(false),
      z.string().superRefine((text, ctx) => {
        const problem = proxyUrlProblem(text);
        if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
      }),
    ],
    { error: expecting('an http:// proxy URL or false') },
  ),
);

/** A path in the config that names a file: resolved against the project root when relative. */
const FilePath = z.string().min(1);

const TlsSchema = z
  .strictObject({
    caFile: FilePath.optional().meta(
      computedDefault(
        "Node's default CAs only",
        "PEM file of CA certificates trusted **in addition to** Node's default CAs (a private " +
          'CA, a TLS-inspecting proxy); a relative path resolves against the project root',
      ),
    ),
    certFile: FilePath.optional().describe(
      'PEM client certificate for mutual TLS, optionally followed by its intermediate CAs; ' +
        'give it with `keyFile`',
    ),
    keyFile: FilePath.optional().describe(
      'PEM private key (unencrypted) of `certFile`; give it with `certFile`',
    ),
  })
  .superRefine((tls, ctx) => {
    if ((tls.certFile === undefined) === (tls.keyFile === undefined)) return;
    const missing = tls.certFile === undefined ? 'certFile' : 'keyFile';
    const given = missing === 'certFile' ? 'keyFile' : 'certFile';
    ctx.addIssue({ code: 'custom', path: [missing], message: `is required with ${given}` });
  });

/** A provider's TLS files after parsing; each absent one means Node's default. */
export type UpstreamTlsConfig = z.output<typeof TlsSchema>;

/** In-flight cancels per provider (the bulkhead) when `maxConcurrent` is not given. */
const DEFAULT_MAX_CONCURRENT = 32;

/** Dyn's documented account limit; the Dyn limit also counts job polls and re-logins. */
const DYN_RATE_LIMIT_PER_SECOND = 5;

const RetrySchema = z.strictObject({
  attempts: int(1, 10)
    .prefault(2)
    .describe('attempts in all; a retry happens only where the cancel certainly did not happen'),
  baseDelayMs: int(0, 60_000).prefault(100).describe('first backoff delay (jittered, exponential)'),
  maxDelayMs: int(0, 300_000)
    .prefault(1_000)
    .describe('longest backoff delay; a retry that would pass the request deadline is not started'),
});

const CircuitBreakerSchema = z.strictObject({
  failureThreshold: int(1, 1000)
    .prefault(5)
    .describe('consecutive upstream failures that open the circuit; business answers never count'),
  resetAfterMs: int(100, 3_600_000)
    .prefault(30_000)
    .describe('time until an open circuit lets one probe request through (half-open)'),
});

const RateLimitSchema = z.strictObject({
  perSecond: rate().describe(
    'calls allowed in any second (a sliding window; below 1, one call per `1 / perSecond` seconds)',
  ),
  scope: z
    .enum(['process', 'account'])
    .prefault('process')
    .describe(
      '`process`: one window per replica; `account`: one window in Redis shared by every replica and ' +
        'by the REST and SOAP providers of the same Dyn account (per process while Redis is down)',
    ),
});

/** A provider's rate limit after parsing; absent means no limit. */
export type RateLimitConfig = z.output<typeof RateLimitSchema>;

const MAX_CONCURRENT_TEXT =
  'cancels in flight at once for this provider (the bulkhead; more wait in `maxQueue`), and the ' +
  "keep-alive connections of its undici pool; a Dyn provider's pool is `2 × maxSessions` when " +
  'this is not given';

const RATE_LIMIT_PER_SECOND_TEXT =
  'cancels allowed in any second for this provider, per process (a sliding window: never more ' +
  'in any second, however the calls bunch); over it the gateway answers `429 RATE_LIMITED` at ' +
  "once, nothing sent. Dyn's limit also counts job polls and re-logins";

/** Options every provider type accepts; only the defaults differ by type. */
function commonProviderOptions(defaults: { timeoutMs: number; maxResponseBytes: number }) {
  return {
    timeoutMs: int(1, 600_000)
      .prefault(defaults.timeoutMs)
      .describe('timeout of one attempt (a Dyn attempt includes its login and job polling)'),
    maxQueue: int(0, 100_000)
      .prefault(64)
      .describe(
        'requests waiting beyond `maxConcurrent`; past it `503 BULKHEAD_FULL` at once, nothing sent',
      ),
    retry: RetrySchema.prefault({}).describe('retries on the same provider'),
    circuitBreaker: CircuitBreakerSchema.prefault({}).describe(
      'opens after repeated upstream failures; an open circuit answers `503 CIRCUIT_OPEN` at once',
    ),
    maxResponseBytes: int(1024, 64 * 1024 * 1024)
      .prefault(defaults.maxResponseBytes)
      .describe(
        'larger answers are refused (`UPSTREAM_RESPONSE_TOO_LARGE`) without buffering them',
      ),
    proxy: ProxySchema.optional().meta(
      computedDefault(
        '`HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` of the environment',
        'forward proxy for every call of this provider: an `http://host:port` URL (credentials ' +
          'as `http://user:password@host:port`, never logged), or `false` for none whatever ' +
          'the environment says. HTTPS upstreams go through `CONNECT`',
      ),
    ),
    tls: TlsSchema.prefault({}).describe(
      'TLS to an `https://` upstream; the files are read when the provider is built (at start ' +
        'and at each reload) and checked by `check-config`',
    ),
  };
}

const dynOptions = {
  customerName: z.string().min(1).describe('the Dyn API account: customer'),
  userName: z.string().min(1).describe('the Dyn API account: user'),
  password: z
    .string()
    .min(1)
    .describe(
      'the Dyn API account: password (use `${ENV}`; it never appears in a log or response)',
    ),
  maxSessions: int(1, 64)
    .prefault(4)
    .describe(
      'sessions opened at most; each in-flight cancel holds its own, more wait for a free one',
    ),
  loginBackoffMs: int(0, 86_400_000)
    .prefault(60_000)
    .describe(
      'after Dyn refuses the credentials no login is tried for this long, so a wrong password ' +
        'cannot lock the account',
    ),
  jobPollIntervalMs: int(10, 60_000)
    .prefault(1_000)
    .describe('pause between polls of a job Dyn accepted but did not finish'),
  jobTimeoutMs: int(100, 3_600_000)
    .prefault(10_000)
    .describe('a job still running after this answers `timeout` (`JOB_NOT_CONFIRMED`)'),
  maxConcurrent: int(1, 10_000)
    .optional()
    .meta(computedDefault(`\`${DEFAULT_MAX_CONCURRENT}\``, MAX_CONCURRENT_TEXT)),
  rateLimitPerSecond: rate()
    .optional()
    .meta(computedDefault(`\`${DYN_RATE_LIMIT_PER_SECOND}\``, RATE_LIMIT_PER_SECOND_TEXT)),
  rateLimit: RateLimitSchema.optional().meta(
    computedDefault(
      `\`{ perSecond: ${DYN_RATE_LIMIT_PER_SECOND}, scope: process }\``,
      'the rate limit with its scope; give this or `rateLimitPerSecond`, not both',
    ),
  ),
};

/** Fields of a Dyn provider before its derived values are filled in. */
interface DynInput {
  maxSessions: number;
  maxConcurrent?: number | undefined;
  rateLimitPerSecond?: number | undefined;
  rateLimit?: RateLimitConfig | undefined;
}

/** Giving both spellings of a rate limit is ambiguous, so it is refused rather than ranked. */
function oneRateLimit(input: DynInput): boolean {
  return input.rateLimit === undefined || input.rateLimitPerSecond === undefined;
}

const ONE_RATE_LIMIT = {
  message: 'give at most one of rateLimitPerSecond or rateLimit',
  path: ['rateLimit'],
};

/** Fills in a Dyn provider's derived values: its pool size and its one resolved rate limit. */
function resolveDyn<T extends DynInput>(input: T) {
  const { maxConcurrent, rateLimitPerSecond, rateLimit, ...rest } = input;
  return {
    ...rest,
    maxConcurrent: maxConcurrent ?? DEFAULT_MAX_CONCURRENT,
    /** Keep-alive connections of the provider's undici pool. */
    connections: maxConcurrent ?? input.maxSessions * 2,
    /** The provider's rate limit: `rateLimit`, else `rateLimitPerSecond` per process. */
    rateLimit: rateLimit ?? {
      perSecond: rateLimitPerSecond ?? DYN_RATE_LIMIT_PER_SECOND,
      scope: 'process' as const,
    },
  };
}

/** A `methodcall` provider; its pool is `maxConcurrent` connections, it has no rate limit by default. */
export const MethodcallProviderSchema = z
  .strictObject({
    type: z.literal('methodcall').describe('an AutoStore-style XML task interface (`cancel_task`)'),
    url: HttpUrl.describe('the task interface URL'),
    ...commonProviderOptions({ timeoutMs: 5_000, maxResponseBytes: 64 * 1024 }),
    maxConcurrent: int(1, 10_000).prefault(DEFAULT_MAX_CONCURRENT).describe(MAX_CONCURRENT_TEXT),
    rateLimitPerSecond: rate().optional().meta(computedDefault('none', RATE_LIMIT_PER_SECOND_TEXT)),
  })
  .transform(({ rateLimitPerSecond, ...cfg }) => ({
    ...cfg,
    /** Keep-alive connections of the provider's undici pool. */
    connections: cfg.maxConcurrent,
    /** The provider's rate limit (a sliding window); methodcall has no documented limit, so none by default. */
    rateLimit:
      rateLimitPerSecond === undefined
        ? undefined
        : ({ perSecond: rateLimitPerSecond, scope: 'process' } satisfies RateLimitConfig),
  }));

/** A `dyn-rest` provider. */
export const DynRestProviderSchema = z
  .strictObject({
    type: z.literal('dyn-rest').describe('the Dyn Managed DNS REST API'),
    baseUrl: HttpUrl.describe(
      'the REST root, e.g. `https://api.dynect.net/REST`; `/Session/`, `/Task/<id>/` and ' +
        '`/Job/<id>/` are appended',
    ),
    ...commonProviderOptions({ timeoutMs: 15_000, maxResponseBytes: 256 * 1024 }),
    ...dynOptions,
  })
  .refine(oneRateLimit, ONE_RATE_LIMIT)
  .transform(resolveDyn);

/** A `dyn-soap` provider; the other Dyn options are those of `dyn-rest`. */
export const DynSoapProviderSchema = z
  .strictObject({
    type: z.literal('dyn-soap').describe('the Dyn Managed DNS SOAP API (node-soap)'),
    wsdl: z
      .string()
      .min(1)
      .prefault('wsdl/dynect.wsdl')
      .describe('the WSDL file; a relative path resolves against the project root'),
    endpoint: HttpUrl.optional().meta(
      computedDefault("the WSDL's address", 'the SOAP endpoint URL'),
    ),
    ...commonProviderOptions({ timeoutMs: 15_000, maxResponseBytes: 256 * 1024 }),
    ...dynOptions,
  })
  .refine(oneRateLimit, ONE_RATE_LIMIT)
  .transform(resolveDyn);

/** One member schema per protocol: the compiler rejects a protocol without one, or an extra one. */
const PROVIDER_SCHEMAS = {
  methodcall: MethodcallProviderSchema,
  'dyn-rest': DynRestProviderSchema,
  'dyn-soap': DynSoapProviderSchema,
} satisfies { [P in Protocol]: z.ZodType<{ type: P }, { type: P }> };

type ProviderMember = (typeof PROVIDER_SCHEMAS)[Protocol];

/** The union is built from PROTOCOLS, so it holds exactly the protocols the core knows. */
const PROVIDER_OPTIONS: [ProviderMember, ...ProviderMember[]] = [
  PROVIDER_SCHEMAS[PROTOCOLS[0]],
  ...PROTOCOLS.slice(1).map((protocol) => PROVIDER_SCHEMAS[protocol]),
];

/** A provider of any protocol, selected by `type`. */
export const ProviderSchema = z
  .discriminatedUnion('type', PROVIDER_OPTIONS)
  .describe('an upstream; `type` selects the protocol, the other keys are its options');

/** A target's provider chain; its deadline is resolved by ConfigSchema. */
export const RouteSchema = z.strictObject({
  provider: Name.describe('the provider tried first'),
  fallback: z
    .array(Name)
    .max(8)
    .prefault([])
    .describe('providers tried in order after `unavailable` or `rate_limited`'),
  timeoutMs: int(1, 600_000)
    .optional()
    .meta(
      computedDefault(
        '`server.requestTimeoutMs`',
        "this route's request deadline: every attempt, retry, job poll and fallback included",
      ),
    ),
});

const ApiKeySchema = z
  .strictObject({
    id: Name.describe('names the caller in logs and metrics'),
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, {
        // Only the length comes back: a key pasted here by mistake stays out of the output.
        error: (issue) =>
          `expected 64 hex characters (the SHA-256 of the key), got ${typeof issue.input === 'string' ? issue.input.length : 0}`,
      })
      .optional()
      .describe('hex SHA-256 of the key; give this or `key`'),
    key: z
      .string()
      .min(16)
      .optional()
      .describe('the key itself, e.g. `${ENV}`; give this or `sha256`'),
    targets: z
      .array(Name)
      .optional()
      .meta(computedDefault('every target', 'the targets this key may cancel on')),
  })
  .refine((k) => (k.sha256 === undefined) !== (k.key === undefined), {
    message: 'give exactly one of sha256 or key',
  });

/** The HTTP listener. */
export const ServerSchema = z.strictObject({
  host: z
    .string()
    .refine(isListenHost, { error: expecting('an IPv4 or IPv6 address or a host name') })
    .prefault('0.0.0.0')
    .describe(
      'listen address: an IPv4 or IPv6 address or a host name (the `HOST` environment variable wins)',
    ),
  port: int(0, 65535).prefault(8080).describe('listen port (the `PORT` environment variable wins)'),
  bodyLimitBytes: int(64, 16 * 1024 * 1024)
    .prefault(16 * 1024)
    .describe('larger `/cancel` bodies get 413, refused before they are read to the end'),
  batchBodyLimitBytes: int(64, 64 * 1024 * 1024)
    .prefault(256 * 1024)
    .describe('larger `/cancel/batch` bodies get 413, refused before they are read to the end'),
  shutdownGraceMs: int(0, 600_000)
    .prefault(20_000)
    .describe(
      'how long in-flight requests may finish after SIGTERM; those still running then get 504 `timeout`. Keep it above the longest route deadline',
    ),
  drainWindowMs: int(0, 60_000)
    .prefault(1_000)
    .describe(
      'after SIGTERM, how long requests on open keep-alive connections are still answered (`503 DRAINING`, `Connection: close`) before idle connections close',
    ),
  requestTimeoutMs: int(1, 600_000)
    .prefault(15_000)
    .describe('deadline of one `/cancel`, every attempt and fallback included'),
  headersTimeoutMs: int(100, 600_000)
    .prefault(10_000)
    .describe('a client must send its request headers within this (slow-loris clients are cut)'),
  receiveTimeoutMs: int(100, 600_000)
    .prefault(30_000)
    .describe('a client must send its whole request within this'),
});

/** The store of remembered cancels and idempotency keys. */
export const StateSchema = z.strictObject({
  store: z
    .enum(['memory', 'redis'])
    .prefault('memory')
    .describe('`memory`: per process; `redis`: shared by every replica. Applies at start'),
  redisUrl: z
    .string()
    .optional()
    .describe('required with store `redis`, e.g. `redis://redis:6379/0`'),
  rememberSeconds: int(1, 30 * 86_400)
    .prefault(86_400)
    .describe(
      'how long confirmed cancels, ambiguous timeouts and `Idempotency-Key` answers are kept',
    ),
  // 20 000 plain-JSON entries are ~13 MB (~660 B each, docs/performance.md).
  maxEntries: int(1, 10_000_000)
    .prefault(20_000)
    .describe('bound of the memory store (LRU); the oldest confirmed cancels are forgotten first'),
  timeoutMs: int(10, 10_000)
    .prefault(250)
    .describe(
      'each call to the shared store gives up after this; a hung Redis costs a request at most this',
    ),
  reconcileSeconds: int(0, 86_400)
    .prefault(300)
    .describe(
      'after a Dyn cancel ends in `timeout`, how long the gateway keeps confirming it in the background (0: never)',
    ),
});

/** API keys of the callers. */
export const AuthSchema = z.strictObject({
  apiKeys: z
    .array(ApiKeySchema)
    .min(1)
    .describe('the keys callers send as `Authorization: Bearer <key>` or `X-API-Key: <key>`'),
});

const ConfigObjectSchema = z
  .strictObject({
    server: ServerSchema.prefault({}).describe('the HTTP listener'),
    auth: AuthSchema.optional().meta(
      computedDefault(
        'absent',
        'API keys; without `auth` every caller is accepted and a warning is logged at start',
      ),
    ),
    providers: z.record(nameKey('provider'), ProviderSchema).describe('the upstreams by name'),
    routes: z
      .record(nameKey('route'), RouteSchema)
      .describe('the targets callers name in a cancel, each with its provider chain'),
    state: StateSchema.prefault({}).describe('where remembered cancels and idempotency keys live'),
  })
  .superRefine((config, ctx) => {
    const providers = new Set(Object.keys(config.providers));
    if (providers.size === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['providers'],
        message: 'at least one provider is required',
      });
    }
    if (Object.keys(config.routes).length === 0) {
      ctx.addIssue({ code: 'custom', path: ['routes'], message: 'at least one route is required' });
    }
    for (const [target, route] of Object.entries(config.routes)) {
      const chain = [route.provider, ...route.fallback];
      chain.forEach((name, index) => {
        const path =
          index === 0 ? ['routes', target, 'provider'] : ['routes', target, 'fallback', index - 1];
        if (!providers.has(name)) {
          ctx.addIssue({ code: 'custom', path, message: `unknown provider "${name}"` });
        } else if (chain.indexOf(name) !== index) {
          ctx.addIssue({
            code: 'custom',
            path,
            message: `provider "${name}" appears twice in the chain`,
          });
        }
      });
    }
    const ids = new Set<string>();
    config.auth?.apiKeys.forEach((key, index) => {
      if (ids.has(key.id)) {
        ctx.addIssue({
          code: 'custom',
          path: ['auth', 'apiKeys', index, 'id'],
          message: `duplicate id "${key.id}"`,
        });
      }
      ids.add(key.id);
      key.targets?.forEach((target, t) => {
        if (!(target in config.routes)) {
          ctx.addIssue({
            code: 'custom',
            path: ['auth', 'apiKeys', index, 'targets', t],
            message: `unknown target "${target}"`,
          });
        }
      });
    });
    if (config.state.store === 'redis' && config.state.redisUrl === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['state', 'redisUrl'],
        message: 'is required when store is redis',
      });
    }
  });

/** The whole config file; defaults that depend on other sections are filled in last. */
export const ConfigSchema = ConfigObjectSchema.transform((config) => ({
  ...config,
  routes: Object.fromEntries(
    Object.entries(config.routes).map(([target, route]) => [
      target,
      { ...route, timeoutMs: route.timeoutMs ?? config.server.requestTimeoutMs },
    ]),
  ),
}));

/** A parsed, complete config. */
export type GatewayConfig = z.output<typeof ConfigSchema>;
/** A parsed provider of any protocol. */
export type ProviderConfig = z.output<typeof ProviderSchema>;
/** A parsed `methodcall` provider. */
export type MethodcallProviderConfig = z.output<typeof MethodcallProviderSchema>;
/** A parsed `dyn-rest` provider. */
export type DynRestProviderConfig = z.output<typeof DynRestProviderSchema>;
/** A parsed `dyn-soap` provider. */
export type DynSoapProviderConfig = z.output<typeof DynSoapProviderSchema>;
/** A parsed route, its deadline resolved. */
export type RouteConfig = GatewayConfig['routes'][string];
/** A provider's `type`: one of the core's protocols. */
export type ProviderType = Protocol;
