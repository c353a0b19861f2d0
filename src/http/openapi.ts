import { z } from 'zod';
import { ERROR_CODES, type ErrorCode } from '../core/error-codes';
import { httpStatusOf, type OkOutcome, type Outcome } from '../core/outcome';
import {
  BatchRequestSchema,
  CancelRequestSchema,
  MAX_BATCH_ITEMS,
  TaskIdSchema,
  TargetSchema,
  type CancelRequest,
} from '../core/request';
import { gatewayFailure, type UnifiedResult } from '../core/result';
import {
  BatchResultSchema,
  ReadyzSchema,
  RoutesSchema,
  UnifiedResultSchema,
} from '../core/result-schema';
import type { RouteRuntime } from '../routing/runtime';
import type { ActiveConfig } from './context';
import { KEY_PATTERN } from './idempotency';
import { SAFE_ID } from './request-id';
import { TASKS_ROUTE } from './tasks';

/** A JSON object of the document (OpenAPI objects and JSON Schemas alike). */
export type OpenApiObject = Record<string, unknown>;

// The very patterns the handlers apply; test/component/openapi.test.ts probes both sides of each.
const REQUEST_ID_PATTERN = SAFE_ID.source;
const IDEMPOTENCY_KEY_PATTERN = KEY_PATTERN.source;
const IDEMPOTENCY_KEY_MAX = 255;

/** What each outcome means to a caller; a new outcome fails to compile until it is described. */
const OUTCOME_TEXT: Record<Outcome, string> = {
  canceled: 'the upstream canceled the task',
  found: 'the upstream returned the task (GET /tasks)',
  not_supported: "the route's protocol has no such operation (GET /tasks on methodcall)",
  not_found: 'the upstream says the task does not exist',
  conflict: 'the task cannot be canceled now, or its Idempotency-Key is still running',
  rejected: 'the upstream refused the request as invalid',
  invalid_request: 'the body or a header is invalid, or the Idempotency-Key came with another body',
  unknown_target: 'no route has this target',
  payload_too_large: 'the body is larger than the limit',
  unauthorized: 'no API key, or an unknown one',
  forbidden: 'the API key may not use this target',
  rate_limited: 'too many requests; wait for Retry-After',
  unavailable: 'circuit open, bulkhead full, upstream down, or the gateway is draining',
  upstream_error: 'the upstream answered something unusable',
  timeout: 'no final answer before the deadline',
  internal_error: 'a bug in the gateway; it has been logged',
};

/** Codes answered for a path or method that does not exist: never by a documented operation. */
const PATH_CODES: ReadonlySet<ErrorCode> = new Set(['NOT_FOUND', 'METHOD_NOT_ALLOWED']);

/** Codes the gateway answers before it looks at the target. */
const REQUEST_CODES: ReadonlySet<ErrorCode> = new Set([
  'INVALID_REQUEST',
  'MALFORMED_JSON',
  'UNSUPPORTED_MEDIA_TYPE',
  'NOT_FOUND',
  'METHOD_NOT_ALLOWED',
  'IDEMPOTENCY_KEY_REUSED',
  'IDEMPOTENCY_KEY_IN_FLIGHT',
  'PAYLOAD_TOO_LARGE',
  'UNAUTHORIZED',
  'DRAINING',
  'INTERNAL_ERROR',
]);

/** What `/cancel/batch` itself can answer; each item's own answer is inside its 200. */
const BATCH_ENVELOPE_CODES: readonly ErrorCode[] = [
  'INVALID_REQUEST',
  'MALFORMED_JSON',
  'UNSUPPORTED_MEDIA_TYPE',
  'UNAUTHORIZED',
  'PAYLOAD_TOO_LARGE',
  'DRAINING',
  'INTERNAL_ERROR',
];

/** Codes only a task read answers: a cancel is something every protocol has. */
const READ_ONLY_CODES: ReadonlySet<ErrorCode> = new Set(['OPERATION_NOT_SUPPORTED']);

/**
 * What `GET /tasks/{target}/{taskId}` can answer: no body (so no body or Idempotency-Key codes),
 * no conflict (nothing is canceled), and a Dyn job that does not finish is a plain timeout.
 */
const READ_CODES: readonly ErrorCode[] = [
  'INVALID_REQUEST',
  'TASK_ID_OUT_OF_RANGE',
  'UNKNOWN_TARGET',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'TASK_NOT_FOUND',
  'UPSTREAM_REJECTED',
  'RATE_LIMITED',
  'UPSTREAM_RATE_LIMITED',
  'UPSTREAM_UNAVAILABLE',
  'UPSTREAM_UNREACHABLE',
  'CIRCUIT_OPEN',
  'BULKHEAD_FULL',
  'DRAINING',
  'UPSTREAM_BUSY',
  'UPSTREAM_BAD_RESPONSE',
  'UPSTREAM_RESPONSE_TOO_LARGE',
  'UPSTREAM_FAULT',
  'UPSTREAM_AUTH_FAILED',
  'UPSTREAM_TIMEOUT',
  'OPERATION_NOT_SUPPORTED',
  'INTERNAL_ERROR',
];

/** A path segment is always text: the string form of the task id schema validates it. */
const [TaskIdTextSchema] = TaskIdSchema.in.options;

/** Statuses whose answers carry `Retry-After` when the wait is known. */
const RETRY_AFTER_STATUSES: ReadonlySet<number> = new Set([409, 429, 503]);

/** Most request examples per operation: one per route, up to this many. */
const MAX_EXAMPLES = 10;

const ALL_CODES = Object.keys(ERROR_CODES) as ErrorCode[];

/** zod → JSON Schema 2020-12 (OpenAPI 3.1's dialect), without the `$schema` key. */
function schema(s: z.ZodType, io: 'input' | 'output'): OpenApiObject {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(s, { io, unrepresentable: 'any' });
  return rest;
}

const HealthzSchema = z.strictObject({ status: z.literal('ok') });

const ref = (kind: string, name: string): OpenApiObject => ({
  $ref: `#/components/${kind}/${name}`,
});

/** Whether the route's primary provider reads tasks (methodcall does not). */
const reads = (route: RouteRuntime): boolean => route.chain[0]?.provider.read !== undefined;

/** The running routes, as the examples use them. */
interface Scene {
  routes: readonly RouteRuntime[];
  /** A target no route has. */
  unknownTarget: string;
}

/** A task id every provider of the route accepts (the route's own check), near `preferred`. */
function taskIdFor(route: RouteRuntime, preferred: number): string | undefined {
  return [String(preferred), '1'].find((id) =>
    route.chain.every((p) => p.provider.checkTaskId(id) === undefined),
  );
}

/** One `/cancel` body per route (a real target, a task id its providers accept). */
function cancelExamples(scene: Scene): CancelRequest[] {
  const bodies: CancelRequest[] = [];
  for (const [i, route] of scene.routes.slice(0, MAX_EXAMPLES).entries()) {
    const taskId = taskIdFor(route, 1001 + i);
    if (taskId === undefined) continue;
    const reason = i === 0 ? { reason: 'ordered by mistake' } : {};
    bodies.push(CancelRequestSchema.parse({ target: route.target, taskId, ...reason }));
  }
  return bodies;
}

/** A Dyn task as the gateway shows it, for the examples. */
function taskExample(id: string, status: string): NonNullable<UnifiedResult['task']> {
  return {
    id,
    name: 'ProvisionZone',
    zone: 'example.com',
    status,
    stepCount: 1,
    totalSteps: 3,
    blocking: true,
    message: '',
    createdAt: '2017-07-14T02:40:00.000Z',
    modifiedAt: '2017-07-14T02:40:42.000Z',
  };
}

/**
 * An answer with `code` (none: `success`, canceled by default), with the fields the gateway fills
 * at that stage, checked against the result schema. A read that cannot be made is shown on a
 * route that cannot read, with no attempt, as dispatch answers it.
 */
function answerExample(
  scene: Scene,
  code: ErrorCode | undefined,
  requestId: string,
  success: OkOutcome = 'canceled',
): z.output<typeof UnifiedResultSchema> {
  const notSupported = code === 'OPERATION_NOT_SUPPORTED';
  const route = notSupported
    ? (scene.routes.find((r) => !reads(r)) ?? scene.routes[0])
    : scene.routes[0];
  const provider = route?.chain[0];
  const outcome: Outcome = code === undefined ? success : ERROR_CODES[code];
  const taskId = (route === undefined ? undefined : taskIdFor(route, 1001)) ?? '1001';
  const target = route === undefined ? {} : { target: route.target };
  const upstream =
    provider === undefined ? {} : { provider: provider.name, protocol: provider.provider.protocol };
  // Nothing is sent for an operation the protocol does not have.
  const tried =
    provider === undefined || notSupported
      ? []
      : [
          {
            provider: provider.name,
            outcome,
            durationMs: 12,
            ...(code === undefined ? {} : { errorCode: code }),
          },
        ];
  const attempts = provider === undefined ? {} : { attempts: tried };
  const message = OUTCOME_TEXT[outcome];
  let body: UnifiedResult;
  if (code === undefined) {
    body = { ok: true, outcome, retryable: false, requestId, ...target, ...upstream, taskId };
    if (outcome === 'found') body.task = taskExample(taskId, 'running');
    Object.assign(body, attempts);
  } else if (REQUEST_CODES.has(code)) {
    // The in-flight conflict is the one conflict worth retrying as it is.
    const retryable = code === 'IDEMPOTENCY_KEY_IN_FLIGHT' ? { retryable: true } : {};
    body = gatewayFailure(requestId, ERROR_CODES[code], code, message, retryable);
  } else if (code === 'UNKNOWN_TARGET') {
    body = gatewayFailure(requestId, ERROR_CODES[code], code, message, {
      target: scene.unknownTarget,
      taskId,
    });
  } else if (code === 'TASK_ID_OUT_OF_RANGE') {
    body = gatewayFailure(requestId, ERROR_CODES[code], code, message, {
      ...target,
      ...upstream,
      taskId,
    });
  } else if (code === 'FORBIDDEN') {
    body = gatewayFailure(requestId, ERROR_CODES[code], code, message, { ...target, taskId });
  } else {
    body = gatewayFailure(requestId, ERROR_CODES[code], code, message, {
      ...target,
      ...upstream,
      taskId,
      ...attempts,
    });
  }
  body.durationMs = 14;
  return UnifiedResultSchema.parse(body);
}

/** The answers one operation can give, grouped by status, with an example per code. */
function unifiedResponses(
  scene: Scene,
  codes: readonly ErrorCode[],
  headers: (status: number) => OpenApiObject,
  limits: Partial<Record<number, string>>,
): Record<string, OpenApiObject> {
  const byStatus = new Map<number, { outcomes: Set<Outcome>; codes: ErrorCode[] }>();
  for (const code of codes) {
    const status = httpStatusOf(ERROR_CODES[code], code);
    const group = byStatus.get(status) ?? { outcomes: new Set<Outcome>(), codes: [] };
    group.outcomes.add(ERROR_CODES[code]);
    group.codes.push(code);
    byStatus.set(status, group);
  }
  const responses: Record<string, OpenApiObject> = {};
  for (const [status, group] of [...byStatus].sort(([a], [b]) => a - b)) {
    const outcomes = [...group.outcomes];
    const description = [
      outcomes.map((o) => `${o}: ${OUTCOME_TEXT[o]}`).join('; '),
      `error.code: ${group.codes.join(', ')}`,
      limits[status],
    ]
      .filter((part) => part !== undefined)
      .join('. ');
    responses[String(status)] = {
      description,
      headers: headers(status),
      content: {
        'application/json': {
          schema: {
            allOf: [
              ref('schemas', 'UnifiedResult'),
              {
                type: 'object',
                properties: {
                  ok: { const: false },
                  outcome: { enum: outcomes },
                  error: { type: 'object', properties: { code: { enum: group.codes } } },
                },
              },
            ],
          },
          examples: Object.fromEntries(
            group.codes.map((code) => [
              code,
              {
                summary: `${ERROR_CODES[code]}: ${code}`,
                value: answerExample(scene, code, 'req-1'),
              },
            ]),
          ),
        },
      },
    };
  }
  return responses;
}

const json = (schemaObject: OpenApiObject, extra: OpenApiObject = {}): OpenApiObject => ({
  'application/json': { schema: schemaObject, ...extra },
});

/** The one `ok: true` answer of an operation (`canceled` or `found`), with its example. */
function okResponse(
  outcome: OkOutcome,
  description: string,
  headers: OpenApiObject,
  example: OpenApiObject,
): OpenApiObject {
  return {
    description,
    headers,
    content: json(
      {
        allOf: [
          ref('schemas', 'UnifiedResult'),
          { type: 'object', properties: { ok: { const: true }, outcome: { const: outcome } } },
        ],
      },
      { examples: { [outcome]: { value: example } } },
    ),
  };
}

/** The request headers the gateway reads, and the limits it applies to them. */
function headerParameters(): Record<string, OpenApiObject> {
  return {
    XRequestId: {
      name: 'X-Request-Id',
      in: 'header',
      required: false,
      description:
        `Any value is accepted. It is echoed (as \`requestId\` and in the \`X-Request-Id\` response ` +
        `header), logged and sent upstream when it matches \`${REQUEST_ID_PATTERN}\`; any other ` +
        'value is replaced by a generated UUID.',
      schema: { type: 'string' },
      example: 'order-4711-cancel',
    },
    IdempotencyKey: {
      name: 'Idempotency-Key',
      in: 'header',
      required: false,
      description:
        `1 to ${IDEMPOTENCY_KEY_MAX} visible ASCII characters, else 400 INVALID_REQUEST. The same ` +
        'key with the same body answers the first answer again (`replayed: true`) without calling ' +
        'the upstream; while that first request runs, 409 IDEMPOTENCY_KEY_IN_FLIGHT (retryable, ' +
        'Retry-After); with another body, 422 IDEMPOTENCY_KEY_REUSED (outcome invalid_request). ' +
        'Keys are scoped by API key; retryable answers are not kept, so a retry really retries.',
      schema: {
        type: 'string',
        minLength: 1,
        maxLength: IDEMPOTENCY_KEY_MAX,
        pattern: IDEMPOTENCY_KEY_PATTERN,
      },
      example: 'cancel-order-4711',
    },
    Traceparent: {
      name: 'traceparent',
      in: 'header',
      required: false,
      description:
        'W3C Trace Context, `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`. Continued: ' +
        "the gateway's span for this request (and each batch item) becomes its child, the " +
        "request's log line carries its trace id as `traceId`, and every upstream request " +
        'carries a `traceparent` of the same trace. A missing or malformed value starts a new ' +
        'trace; it is never refused. Spans are exported only when an OTLP endpoint is ' +
        "configured; without one the caller's `traceparent` is passed upstream unchanged.",
      schema: { type: 'string' },
      example: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    },
    Tracestate: {
      name: 'tracestate',
      in: 'header',
      required: false,
      description:
        'W3C Trace Context vendor state, passed on unchanged to the upstream with ' +
        '`traceparent`; ignored without a valid `traceparent`.',
      schema: { type: 'string' },
      example: 'rojo=00f067aa0ba902b7',
    },
  };
}

/** Response headers, referenced from every answer that carries them. */
function responseHeaders(): Record<string, OpenApiObject> {
  return {
    XRequestId: {
      description: "This request's id: the caller's `X-Request-Id` when it was kept, else a UUID.",
      required: true,
      schema: { type: 'string' },
    },
    RetryAfter: {
      description:
        'Seconds to wait before retrying, when known: rate limits, an open circuit, a full ' +
        'bulkhead, draining, an Idempotency-Key still running.',
      required: false,
      schema: { type: 'integer', minimum: 1 },
    },
    WwwAuthenticate: {
      description: 'The scheme to authenticate with.',
      required: true,
      schema: { type: 'string' },
      example: 'Bearer realm="cancel-gateway"',
    },
    ServerTiming: {
      description:
        "The answer's time split into the gateway's own and that of the upstream attempts this " +
        'request made (none for an answer replayed or shared with a concurrent duplicate).',
      required: false,
      schema: { type: 'string' },
      example: 'gateway;dur=1.2, upstream;dur=12.8',
    },
    Allow: {
      description: 'The method this path accepts.',
      required: true,
      schema: { type: 'string' },
    },
  };
}

/**
 * The OpenAPI 3.1 document of the gateway under one applied config: schemas from the zod schemas
 * that validate requests and results, statuses from the outcome and error-code tables, security
 * only when `auth` is configured, and examples from the running routes.
 */
export function buildOpenApi(active: ActiveConfig, version: string): OpenApiObject {
  const { runtime } = active;
  const { config } = runtime.loaded;
  const authOn = active.auth.enabled;
  const restricted = config.auth?.apiKeys.some((k) => k.targets !== undefined) ?? false;
  let unknownTarget = 'no-such-target';
  while (runtime.routes.has(unknownTarget)) unknownTarget += '-x';
  const scene: Scene = { routes: [...runtime.routes.values()], unknownTarget };

  const protectedOp = authOn ? { security: [{ bearer: [] }, { apiKey: [] }] } : {};
  const authCodes: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
    ...(authOn ? [] : (['UNAUTHORIZED'] as const)),
    ...(authOn && restricted ? [] : (['FORBIDDEN'] as const)),
  ]);
  const answerable = (code: ErrorCode): boolean => !authCodes.has(code);

  const headersFor =
    (cancel: boolean) =>
    (status: number): OpenApiObject => ({
      'X-Request-Id': ref('headers', 'XRequestId'),
      ...(RETRY_AFTER_STATUSES.has(status) ? { 'Retry-After': ref('headers', 'RetryAfter') } : {}),
      ...(status === 401 ? { 'WWW-Authenticate': ref('headers', 'WwwAuthenticate') } : {}),
      ...(cancel ? { 'Server-Timing': ref('headers', 'ServerTiming') } : {}),
    });
  const plainHeaders = { 'X-Request-Id': ref('headers', 'XRequestId') };
  const commonParameters = [
    ref('parameters', 'XRequestId'),
    ref('parameters', 'Traceparent'),
    ref('parameters', 'Tracestate'),
  ];
  const limits = (bytes: number): Partial<Record<number, string>> => ({
    413: `Bodies over ${bytes} bytes are refused before they are read to the end`,
  });

  const cancelBodies = cancelExamples(scene);
  const canceledExample = answerExample(scene, undefined, 'order-4711-cancel');
  const batchItems = scene.routes.slice(0, MAX_BATCH_ITEMS).flatMap((route, i) => {
    const taskId = taskIdFor(route, 2001 + i);
    return taskId === undefined ? [] : [{ target: route.target, taskId }];
  });
  const batchBody =
    batchItems.length === 0 ? undefined : BatchRequestSchema.parse({ items: batchItems });
  const batchAnswer = BatchResultSchema.parse({
    requestId: 'batch-1',
    results: (batchBody?.items ?? []).map((item, i) => {
      const route = runtime.routes.get(item.target);
      const provider = route?.chain[0];
      return {
        ok: true,
        outcome: 'canceled',
        retryable: false,
        requestId: `batch-1.${i}`,
        target: item.target,
        ...(provider === undefined
          ? {}
          : {
              provider: provider.name,
              protocol: provider.provider.protocol,
              attempts: [{ provider: provider.name, outcome: 'canceled', durationMs: 12 }],
            }),
        taskId: item.taskId,
        durationMs: 13,
      };
    }),
    summary: batchBody === undefined ? {} : { canceled: batchBody.items.length },
    durationMs: 15,
  });
  const providers = Object.fromEntries(
    [...runtime.providers].map(([name, p]) => [
      name,
      { circuit: 'closed', protocol: p.provider.protocol },
    ]),
  );
  const readyExample = ReadyzSchema.parse({
    status: 'ready',
    configVersion: runtime.loaded.version,
    providers,
    state: 'ok',
  });
  const routesExample = RoutesSchema.parse({
    configVersion: runtime.loaded.version,
    routes: scene.routes.map((route) => ({
      target: route.target,
      timeoutMs: route.timeoutMs,
      chain: route.chain.map((p) => ({
        provider: p.name,
        protocol: p.provider.protocol,
        circuit: 'closed',
      })),
    })),
  });

  const cancelCodes = ALL_CODES.filter(
    (code) => !PATH_CODES.has(code) && !READ_ONLY_CODES.has(code) && answerable(code),
  );
  const readCodes = READ_CODES.filter(answerable);
  // Reads are shown on a route whose primary reads, when there is one.
  const readScene: Scene = {
    ...scene,
    routes: [...scene.routes.filter(reads), ...scene.routes.filter((r) => !reads(r))],
  };
  const [readRoute] = readScene.routes;
  const readTaskId = readRoute === undefined ? undefined : taskIdFor(readRoute, 3001);
  // Only a route that reads can answer found: without one, the example names no route.
  const foundExample = answerExample(
    { ...scene, routes: scene.routes.filter(reads) },
    undefined,
    'order-4711-read',
    'found',
  );
  const batchCodes = BATCH_ENVELOPE_CODES.filter(answerable);
  const routesCodes = (['UNAUTHORIZED', 'INTERNAL_ERROR'] as const).filter(answerable);
  const statusCodes = ['INTERNAL_ERROR'] as const;

  return {
    openapi: '3.1.0',
    info: {
      title: 'cancel-gateway',
      version,
      description:
        'One JSON endpoint to cancel tasks in Dyn (REST, SOAP) and methodcall upstreams, and one ' +
        `to read a task's state (Dyn), with one result shape. This document describes the config in force (configVersion ` +
        `${runtime.loaded.version}): its routes in the examples, ` +
        (authOn
          ? 'and its API keys (`Authorization: Bearer <key>` or `X-API-Key`). '
          : 'and no auth: every caller is accepted. ') +
        'An unknown path answers 404 (NOT_FOUND) and another method on a known path 405 ' +
        '(METHOD_NOT_ALLOWED, with `Allow`), both in the unified shape (components.responses).',
      'x-config-version': runtime.loaded.version,
    },
    paths: {
      '/cancel': {
        post: {
          operationId: 'cancel',
          summary: 'Cancel one task on a target',
          ...protectedOp,
          parameters: [...commonParameters, ref('parameters', 'IdempotencyKey')],
          requestBody: {
            required: true,
            description:
              '`application/json` (or `application/*+json`), UTF-8, at most ' +
              `${config.server.bodyLimitBytes} bytes.`,
            content: json(ref('schemas', 'CancelRequest'), {
              examples: Object.fromEntries(cancelBodies.map((value) => [value.target, { value }])),
            }),
          },
          responses: {
            '200': okResponse(
              'canceled',
              `canceled: ${OUTCOME_TEXT.canceled} (or had, for a replayed answer)`,
              headersFor(true)(200),
              canceledExample,
            ),
            ...unifiedResponses(
              scene,
              cancelCodes,
              headersFor(true),
              limits(config.server.bodyLimitBytes),
            ),
          },
        },
      },
      '/cancel/batch': {
        post: {
          operationId: 'cancelBatch',
          summary: `Cancel up to ${MAX_BATCH_ITEMS} tasks; results in order, with a summary`,
          description:
            'Items run with the rules of `POST /cancel` (Idempotency-Key aside: it is not read ' +
            "here); each item's answer, failures included, is in its place in `results`.",
          ...protectedOp,
          parameters: commonParameters,
          requestBody: {
            required: true,
            description:
              '`application/json` (or `application/*+json`), UTF-8, at most ' +
              `${config.server.batchBodyLimitBytes} bytes.`,
            content: json(ref('schemas', 'BatchRequest'), {
              ...(batchBody === undefined ? {} : { examples: { batch: { value: batchBody } } }),
            }),
          },
          responses: {
            '200': {
              description: 'every item answered, each with its own outcome',
              headers: plainHeaders,
              content: json(ref('schemas', 'BatchResult'), {
                examples: { batch: { value: batchAnswer } },
              }),
            },
            ...unifiedResponses(
              scene,
              batchCodes,
              headersFor(false),
              limits(config.server.batchBodyLimitBytes),
            ),
          },
        },
      },
      [TASKS_ROUTE]: {
        get: {
          operationId: 'getTask',
          summary: "Read a task's current state on a target; nothing is canceled",
          description:
            "The route's provider chain reads the task with the rules of `POST /cancel` (auth, " +
            'allow-list, deadline, policies, fallback after unavailable or rate_limited). Dyn REST ' +
            'sends `GET /Task/{id}/`, Dyn SOAP `GetOneTask`; a route whose primary provider ' +
            'cannot read (methodcall) answers 501 not_supported without calling anything. A read ' +
            'is never shared with, answered from or remembered as a cancel.',
          ...protectedOp,
          parameters: [
            {
              name: 'target',
              in: 'path',
              required: true,
              description: 'A route name; unknown names answer 422 unknown_target.',
              schema: schema(TargetSchema, 'input'),
              ...(readRoute === undefined ? {} : { example: readRoute.target }),
            },
            {
              name: 'taskId',
              in: 'path',
              required: true,
              description:
                'The upstream task id: a positive decimal integer without sign, spaces or ' +
                "leading zeros, else 400 INVALID_REQUEST. The route's provider may narrow it " +
                '(400 TASK_ID_OUT_OF_RANGE).',
              schema: schema(TaskIdTextSchema, 'input'),
              ...(readTaskId === undefined ? {} : { example: readTaskId }),
            },
            ...commonParameters,
          ],
          responses: {
            '200': okResponse(
              'found',
              `found: ${OUTCOME_TEXT.found}, whatever its status (\`task.status\` is the upstream's own)`,
              headersFor(true)(200),
              foundExample,
            ),
            ...unifiedResponses(readScene, readCodes, headersFor(true), {}),
          },
        },
      },
      '/healthz': {
        get: {
          operationId: 'healthz',
          summary: 'Liveness',
          parameters: commonParameters,
          responses: {
            '200': {
              description: 'the process runs',
              headers: plainHeaders,
              content: json(ref('schemas', 'Healthz'), {
                examples: { ok: { value: { status: 'ok' } } },
              }),
            },
          },
        },
      },
      '/readyz': {
        get: {
          operationId: 'readyz',
          summary: 'Readiness',
          parameters: commonParameters,
          responses: {
            '200': {
              description: 'ready',
              headers: plainHeaders,
              content: json(ref('schemas', 'Readyz'), {
                examples: { ready: { value: readyExample } },
              }),
            },
            '503': {
              description: 'draining',
              headers: plainHeaders,
              content: json(ref('schemas', 'Readyz'), {
                examples: { draining: { value: { ...readyExample, status: 'draining' } } },
              }),
            },
            ...unifiedResponses(scene, statusCodes, headersFor(false), {}),
          },
        },
      },
      '/metrics': {
        get: {
          operationId: 'metrics',
          summary: 'Prometheus metrics',
          parameters: commonParameters,
          responses: {
            '200': {
              description: 'Prometheus text exposition format',
              headers: plainHeaders,
              content: { 'text/plain': { schema: { type: 'string' } } },
            },
            ...unifiedResponses(scene, statusCodes, headersFor(false), {}),
          },
        },
      },
      '/routes': {
        get: {
          operationId: 'routes',
          summary: 'Targets with their provider chain, protocol and circuit state',
          ...protectedOp,
          parameters: commonParameters,
          responses: {
            '200': {
              description: authOn
                ? 'the routing in force: the targets this key may use'
                : 'the routing in force',
              headers: plainHeaders,
              content: json(ref('schemas', 'Routes'), {
                examples: { routes: { value: routesExample } },
              }),
            },
            ...unifiedResponses(scene, routesCodes, headersFor(false), {}),
          },
        },
      },
      '/openapi.json': {
        get: {
          operationId: 'openapi',
          summary: 'This document, for the config in force',
          parameters: commonParameters,
          responses: {
            '200': {
              description: 'OpenAPI 3.1',
              headers: plainHeaders,
              content: json({ type: 'object' }),
            },
          },
        },
      },
    },
    components: {
      schemas: {
        CancelRequest: schema(CancelRequestSchema, 'input'),
        BatchRequest: schema(BatchRequestSchema, 'input'),
        UnifiedResult: schema(UnifiedResultSchema, 'output'),
        BatchResult: schema(BatchResultSchema, 'output'),
        Healthz: schema(HealthzSchema, 'output'),
        Readyz: schema(ReadyzSchema, 'output'),
        Routes: schema(RoutesSchema, 'output'),
      },
      parameters: headerParameters(),
      headers: responseHeaders(),
      responses: {
        NotFound: {
          description: 'any unknown path: invalid_request, error.code NOT_FOUND',
          headers: plainHeaders,
          content: json(ref('schemas', 'UnifiedResult'), {
            examples: { NOT_FOUND: { value: answerExample(scene, 'NOT_FOUND', 'req-1') } },
          }),
        },
        MethodNotAllowed: {
          description:
            'another method on a known path: invalid_request, error.code METHOD_NOT_ALLOWED',
          headers: { ...plainHeaders, Allow: ref('headers', 'Allow') },
          content: json(ref('schemas', 'UnifiedResult'), {
            examples: {
              METHOD_NOT_ALLOWED: { value: answerExample(scene, 'METHOD_NOT_ALLOWED', 'req-1') },
            },
          }),
        },
      },
      ...(authOn
        ? {
            securitySchemes: {
              bearer: {
                type: 'http',
                scheme: 'bearer',
                description: 'Authorization: Bearer <key>',
              },
              apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
            },
          }
        : {}),
    },
  };
}
