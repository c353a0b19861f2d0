import { z } from 'zod';
import { NAME_PATTERN } from '../core/request';

/** Integers may arrive as digit strings after `${ENV}` interpolation. */
function int(min: number, max = Number.MAX_SAFE_INTEGER) {
  return z.preprocess(
    (value) => (typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value),
    z.int().min(min).max(max),
  );
}

const Name = z.string().regex(NAME_PATTERN, 'must match ^[a-z0-9][a-z0-9_-]{0,62}$');

const HttpUrl = z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' });

const RetrySchema = z.strictObject({
  attempts: int(1, 10).default(2),
  baseDelayMs: int(0, 60_000).default(100),
  maxDelayMs: int(0, 300_000).default(1_000),
});

const CircuitBreakerSchema = z.strictObject({
  failureThreshold: int(1, 1000).default(5),
  resetAfterMs: int(100, 3_600_000).default(30_000),
});

/** Options every provider type accepts (contract §3). */
const commonProviderOptions = {
  timeoutMs: int(1, 600_000).optional(),
  maxConcurrent: int(1, 10_000).optional(),
  maxQueue: int(0, 100_000).optional(),
  rateLimitPerSecond: z
    .preprocess(
      (value) => (typeof value === 'string' && value.trim() !== '' ? Number(value) : value),
      z.number().positive().max(100_000),
    )
    .optional(),
  retry: RetrySchema.optional(),
  circuitBreaker: CircuitBreakerSchema.optional(),
  maxResponseBytes: int(1024, 64 * 1024 * 1024).optional(),
};

const dynOptions = {
  customerName: z.string().min(1),
  userName: z.string().min(1),
  password: z.string().min(1),
  jobPollIntervalMs: int(10, 60_000).optional(),
  jobTimeoutMs: int(100, 3_600_000).optional(),
  maxSessions: int(1, 64).optional(),
  loginBackoffMs: int(0, 86_400_000).optional(),
  rateLimit: z
    .strictObject({
      perSecond: z.number().positive().max(100_000),
      scope: z.enum(['process', 'account']).default('process'),
    })
    .optional(),
};

export const MethodcallProviderSchema = z.strictObject({
  type: z.literal('methodcall'),
  url: HttpUrl,
  ...commonProviderOptions,
});

export const DynRestProviderSchema = z.strictObject({
  type: z.literal('dyn-rest'),
  baseUrl: HttpUrl,
  ...commonProviderOptions,
  ...dynOptions,
});

export const DynSoapProviderSchema = z.strictObject({
  type: z.literal('dyn-soap'),
  wsdl: z.string().min(1).default('wsdl/dynect.wsdl'),
  endpoint: HttpUrl.optional(),
  ...commonProviderOptions,
  ...dynOptions,
});

export const ProviderSchema = z.discriminatedUnion('type', [
  MethodcallProviderSchema,
  DynRestProviderSchema,
  DynSoapProviderSchema,
]);

export const RouteSchema = z.strictObject({
  provider: Name,
  fallback: z.array(Name).max(8).default([]),
  timeoutMs: int(1, 600_000).optional(),
});

const ApiKeySchema = z
  .strictObject({
    id: Name,
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex characters (the SHA-256 of the key)')
      .optional(),
    key: z.string().min(16, 'must be at least 16 characters').optional(),
    targets: z.array(Name).optional(),
  })
  .refine((k) => (k.sha256 === undefined) !== (k.key === undefined), {
    message: 'give exactly one of sha256 or key',
  });

export const ServerSchema = z.strictObject({
  host: z.string().min(1).default('0.0.0.0'),
  port: int(0, 65535).default(8080),
  bodyLimitBytes: int(64, 16 * 1024 * 1024).default(16 * 1024),
  shutdownGraceMs: int(0, 600_000).default(10_000),
  requestTimeoutMs: int(1, 600_000).default(15_000),
  /** A client must send its request headers within this (slow-loris clients are cut). */
  headersTimeoutMs: int(100, 600_000).default(10_000),
  /** A client must send its whole request within this. */
  receiveTimeoutMs: int(100, 600_000).default(30_000),
});

export const StateSchema = z.strictObject({
  store: z.enum(['memory', 'redis']).default('memory'),
  redisUrl: z.string().optional(),
  rememberSeconds: int(1, 30 * 86_400).default(86_400),
  /** 20 000 compact entries are ~5 MB and keep RSS under 150 MB at full load (bench/README.md). */
  maxEntries: int(1, 10_000_000).default(20_000),
});

export const ConfigSchema = z
  .strictObject({
    server: ServerSchema.default(() => ServerSchema.parse({})),
    auth: z.strictObject({ apiKeys: z.array(ApiKeySchema).min(1) }).optional(),
    providers: z.record(Name, ProviderSchema),
    routes: z.record(Name, RouteSchema),
    state: StateSchema.default(() => StateSchema.parse({})),
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

export type GatewayConfig = z.output<typeof ConfigSchema>;
export type ProviderConfig = z.output<typeof ProviderSchema>;
export type MethodcallProviderConfig = z.output<typeof MethodcallProviderSchema>;
export type DynRestProviderConfig = z.output<typeof DynRestProviderSchema>;
export type DynSoapProviderConfig = z.output<typeof DynSoapProviderSchema>;
export type RouteConfig = z.output<typeof RouteSchema>;
export type ProviderType = ProviderConfig['type'];
