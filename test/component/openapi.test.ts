import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { RequestHandler } from 'express';
import { stringify } from 'yaml';
import { z } from 'zod';
import { ERROR_CODES, type ErrorCode } from '../../src/core/error-codes';
import { httpStatusOf } from '../../src/core/outcome';
import { CancelRequestSchema } from '../../src/core/request';
import { UnifiedResultSchema } from '../../src/core/result-schema';
import { startDynRestSimulator, type DynRestSimulator } from '../../src/simulators/dyn-rest';
import {
  startMethodcallSimulator,
  type MethodcallSimulator,
} from '../../src/simulators/methodcall';
import {
  postJson,
  startTestGateway,
  type TestGateway,
  OPS_KEY,
  twoCallerAuth,
  WAREHOUSE_KEY,
} from '../helpers/gateway';

/** A document (or any part of it) as JSON. */
type Json = Record<string, any>;

interface Validation {
  valid: boolean;
  errors?: unknown;
  /** The document with its internal `$ref`s resolved by the validator. */
  resolved?: Json;
}

/** Runs @seriousme/openapi-schema-validator (an ES module) in a child process. */
function validateOpenApi(document: unknown): Promise<Validation> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      process.execPath,
      ['--import', 'tsx', path.join(__dirname, '..', 'helpers', 'validate-openapi.ts')],
      { cwd: path.join(__dirname, '..', '..'), maxBuffer: 64 * 1024 * 1024 },
      (err, stdout) => {
        if (err !== null) reject(new Error(err.message));
        else resolve(JSON.parse(stdout) as Validation);
      },
    );
    child.stdin?.end(JSON.stringify(document));
  });
}

async function fetchDocument(url: string): Promise<Json> {
  const res = await fetch(`${url}/openapi.json`);
  expect(res.status).toBe(200);
  return (await res.json()) as Json;
}

/** The document, validated, with its references resolved (what a client generator works from). */
async function resolvedDocument(url: string): Promise<Json> {
  const result = await validateOpenApi(await fetchDocument(url));
  expect(result.errors).toBeUndefined();
  expect(result.valid).toBe(true);
  return result.resolved!;
}

/** A JSON Schema of the document as a zod schema, to check values the way a client would. */
const fromDocument = (schema: Json) => z.fromJSONSchema(schema);

/** The path of the task read, as the document names it. */
const TASKS = '/tasks/{target}/{taskId}';

/** The one method each documented path takes. */
const methodOf = (p: string): string => (p.startsWith('/cancel') ? 'post' : 'get');

const operations = (doc: Json): [string, string, Json][] =>
  Object.entries(doc.paths as Json).flatMap(([p, item]) =>
    Object.entries(item as Json).map(
      ([method, op]) => [p, method, op as Json] as [string, string, Json],
    ),
  );

interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

async function send(
  url: string,
  method: string,
  headers: Record<string, string> = {},
  body?: unknown,
): Promise<Answer> {
  const res = await fetch(url, {
    method: method.toUpperCase(),
    headers,
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/**
 * Asserts that `answer` is one the document gives for this operation: its status is listed, the
 * required headers are there and every documented header present fits its schema, and the body
 * fits the schema of its media type. Returns the parsed JSON body.
 */
function expectDocumented(doc: Json, p: string, method: string, answer: Answer): Json {
  const responses = doc.paths[p][method].responses as Json;
  expect(Object.keys(responses)).toContain(String(answer.status));
  const documented = responses[String(answer.status)] as Json;
  for (const [name, header] of Object.entries((documented.headers ?? {}) as Json)) {
    const value = answer.headers.get(name);
    if (header.required === true) expect([name, value]).toEqual([name, expect.any(String)]);
    if (value !== null) {
      const parsed = fromDocument(header.schema).safeParse(
        header.schema.type === 'integer' ? Number(value) : value,
      );
      expect([name, parsed.error?.issues]).toEqual([name, undefined]);
    }
  }
  const mediaType = (answer.headers.get('content-type') ?? '').split(';')[0]!.trim();
  expect(Object.keys(documented.content)).toContain(mediaType);
  const { schema } = documented.content[mediaType] as Json;
  const value: unknown = mediaType === 'application/json' ? JSON.parse(answer.text) : answer.text;
  const parsed = fromDocument(schema).safeParse(value);
  expect(parsed.error?.issues).toBeUndefined();
  return (typeof value === 'object' ? value : {}) as Json;
}

/** The error codes the document lists under one status of an operation (from its examples). */
function codesUnder(doc: Json, p: string, method: string, status: number): string[] {
  const response = doc.paths[p][method].responses[String(status)] as Json | undefined;
  const examples = (response?.content['application/json'].examples ?? {}) as Json;
  return Object.values(examples).flatMap((e: Json) =>
    e.value.error === undefined ? [] : [e.value.error.code as string],
  );
}

/**
 * One request per request-body example of an operation (one without a body if it has none), to
 * the operation's path with its path parameters' examples filled in.
 */
function exampleRequests(
  op: Json,
  withHeader: (name: string) => boolean,
  p = '',
): { path: string; headers: Record<string, string>; body?: unknown }[] {
  const headers: Record<string, string> = {};
  let path = p;
  for (const param of (op.parameters ?? []) as Json[]) {
    if (param.in === 'header' && param.example !== undefined && withHeader(param.name)) {
      headers[param.name] = param.example;
    }
    if (param.in === 'path') {
      expect([param.name, param.example]).toEqual([param.name, expect.any(String)]);
      path = path.replace(`{${param.name}}`, encodeURIComponent(param.example as string));
    }
  }
  const media = op.requestBody?.content['application/json'] as Json | undefined;
  if (media === undefined) return [{ path, headers }];
  return Object.values((media.examples ?? {}) as Json).map((e: Json) => ({
    path,
    headers: { ...headers, 'content-type': 'application/json' },
    body: e.value,
  }));
}

/** Every key anywhere in the document called `name`. */
function keysNamed(value: unknown, name: string): unknown[] {
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value).flatMap(([k, v]) => [
    ...(k === name ? [v] : []),
    ...keysNamed(v, name),
  ]);
}

const plain = { retry: { attempts: 1 }, circuitBreaker: { failureThreshold: 1000 } };

let sim: MethodcallSimulator;
let dyn: DynRestSimulator;
let open: TestGateway;
let secured: TestGateway;
let faulty: TestGateway;

/** Lets a test make the gateway fail unexpectedly, to see its 500. */
const failOnDemand: RequestHandler = (req, _res, next) => {
  if (req.headers['x-test-fail'] !== undefined) throw new Error('a bug, on purpose');
  next();
};

beforeAll(async () => {
  sim = await startMethodcallSimulator();
  dyn = await startDynRestSimulator();
  const providers = {
    wh: { type: 'methodcall', url: sim.taskUrl, ...plain },
    'wh-2': { type: 'methodcall', url: sim.taskUrl, ...plain },
    // Dyn reads tasks: the read's examples use this route.
    'dns-rest': {
      type: 'dyn-rest',
      baseUrl: dyn.baseUrl,
      customerName: 'acme',
      userName: 'api-user',
      password: 'sim-password',
      ...plain,
    },
  };
  const routes = {
    warehouse: { provider: 'wh' },
    'warehouse-west': { provider: 'wh-2' },
    dns: { provider: 'dns-rest' },
  };
  open = await startTestGateway({ providers, routes });
  secured = await startTestGateway(
    {
      providers,
      routes,
      auth: twoCallerAuth(),
    },
    { WAREHOUSE_KEY },
  );
  faulty = await startTestGateway(
    {
      providers: {
        ...providers,
        'wh-limited': { type: 'methodcall', url: sim.taskUrl, rateLimitPerSecond: 0.001, ...plain },
      },
      routes: {
        ...routes,
        limited: { provider: 'wh-limited' },
        slow: { provider: 'wh', timeoutMs: 100 },
      },
    },
    {},
    undefined,
    { middleware: [failOnDemand] },
  );
});

afterAll(async () => {
  await open.close();
  await secured.close();
  await faulty.close();
  await sim.close();
  await dyn.close();
});

beforeEach(() => {
  sim.reset();
  dyn.reset();
});

describe('GET /openapi.json without auth', () => {
  it('is a valid OpenAPI 3.1 document listing every endpoint', async () => {
    const document = await fetchDocument(open.url);
    expect(document.openapi).toBe('3.1.0');
    const result = await validateOpenApi(document);
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(Object.keys(document.paths).sort()).toEqual([
      '/cancel',
      '/cancel/batch',
      '/healthz',
      '/metrics',
      '/openapi.json',
      '/readyz',
      '/routes',
      TASKS,
    ]);
  });

  it('describes the request with the schema that validates it', async () => {
    const document = await fetchDocument(open.url);
    const request = document.components.schemas.CancelRequest;
    expect(request?.required?.sort()).toEqual(['target', 'taskId']);
    expect(Object.keys(request?.properties ?? {}).sort()).toEqual(['reason', 'target', 'taskId']);
  });

  it('declares no security, no scheme and no 401 or 403', async () => {
    const document = await fetchDocument(open.url);
    expect(keysNamed(document, 'security')).toEqual([]);
    expect(keysNamed(document, 'securitySchemes')).toEqual([]);
    for (const [p, method, op] of operations(document)) {
      expect([p, method, Object.keys(op.responses)]).toEqual([
        p,
        method,
        expect.not.arrayContaining(['401', '403']),
      ]);
    }
  });

  it('lists every error code of the vocabulary under its status on /cancel', async () => {
    const document = await fetchDocument(open.url);
    const answerable = (Object.keys(ERROR_CODES) as ErrorCode[]).filter(
      (code) =>
        ![
          'NOT_FOUND',
          'METHOD_NOT_ALLOWED',
          'UNAUTHORIZED',
          'FORBIDDEN',
          'OPERATION_NOT_SUPPORTED',
        ].includes(code),
    );
    for (const code of answerable) {
      const status = httpStatusOf(ERROR_CODES[code], code);
      expect([code, codesUnder(document, '/cancel', 'post', status)]).toEqual([
        code,
        expect.arrayContaining([code]),
      ]);
    }
    expect(codesUnder(document, '/cancel', 'post', 422)).toContain('IDEMPOTENCY_KEY_REUSED');
    expect(codesUnder(document, '/cancel', 'post', 409)).toContain('IDEMPOTENCY_KEY_IN_FLIGHT');
    const reused = document.paths['/cancel'].post.responses['422'].content['application/json'];
    expect(reused.examples.IDEMPOTENCY_KEY_REUSED.value.outcome).toBe('invalid_request');
    // Unknown paths and methods are not answers of a documented operation; they are described once.
    expect(codesUnder(document, '/cancel', 'post', 404)).not.toContain('NOT_FOUND');
    expect(Object.keys(document.components.responses).sort()).toEqual([
      'MethodNotAllowed',
      'NotFound',
    ]);
    // Every protocol cancels: only a read can be not_supported.
    expect(Object.keys(document.paths['/cancel'].post.responses)).not.toContain('501');
  });

  it('lists exactly the error codes a task read can answer, each under its status', async () => {
    const document = await fetchDocument(open.url);
    const responses = document.paths[TASKS].get.responses as Json;
    const listed = Object.keys(responses).flatMap((status) =>
      codesUnder(document, TASKS, 'get', Number(status)).map((code) => [code, Number(status)]),
    );
    // What a read cannot answer: it has no body, cancels nothing, and methodcall never reads.
    const impossible = new Set<string>([
      'MALFORMED_JSON',
      'UNSUPPORTED_MEDIA_TYPE',
      'NOT_FOUND',
      'METHOD_NOT_ALLOWED',
      'IDEMPOTENCY_KEY_REUSED',
      'IDEMPOTENCY_KEY_IN_FLIGHT',
      'PAYLOAD_TOO_LARGE',
      'UNAUTHORIZED',
      'FORBIDDEN',
      'GONE_AFTER_TIMEOUT',
      'TASK_AT_PORT',
      'TASK_NOT_CANCELABLE',
      'TASK_ALREADY_FINISHED',
      'TASK_BLOCKED',
      'UPSTREAM_INTERNAL_ERROR',
      'JOB_NOT_CONFIRMED',
    ]);
    const expected = (Object.keys(ERROR_CODES) as ErrorCode[]).filter((c) => !impossible.has(c));
    expect(listed.sort()).toEqual(
      expected.map((code) => [code, httpStatusOf(ERROR_CODES[code], code)]).sort(),
    );
    expect(responses['200'].content['application/json'].examples.found.value).toMatchObject({
      ok: true,
      outcome: 'found',
      protocol: 'dyn-rest',
      task: { status: 'running' },
    });
    // The not_supported example is a route that cannot read, with nothing sent.
    const unsupported = responses['501'].content['application/json'].examples;
    expect(unsupported.OPERATION_NOT_SUPPORTED.value).toMatchObject({
      protocol: 'methodcall',
      attempts: [],
    });
  });

  it('documents every request header the gateway reads, with the limits it applies', async () => {
    const document = await resolvedDocument(open.url);
    const headers = (op: Json) =>
      Object.fromEntries((op.parameters as Json[]).map((p) => [p.name, p]));
    for (const [p, method, op] of operations(document)) {
      expect([p, method, Object.keys(headers(op)).sort()]).toEqual([
        p,
        method,
        expect.arrayContaining(['X-Request-Id', 'traceparent', 'tracestate']),
      ]);
    }
    const cancel = headers(document.paths['/cancel'].post);
    // Any X-Request-Id is accepted (one that is not kept is replaced): no limit in the schema.
    expect(cancel['X-Request-Id'].schema).toEqual({ type: 'string' });
    expect(cancel['Idempotency-Key'].schema).toMatchObject({ minLength: 1, maxLength: 255 });
    expect(cancel.traceparent.description).toMatch(/Continued/);
    expect(headers(document.paths['/cancel/batch'].post)['Idempotency-Key']).toBeUndefined();
    // A read takes no body and no Idempotency-Key; its path parameters carry the body's rules.
    const read = headers(document.paths[TASKS].get);
    expect(read['Idempotency-Key']).toBeUndefined();
    expect(read.target).toMatchObject({
      in: 'path',
      required: true,
      schema: { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' },
    });
    expect(read.taskId).toMatchObject({
      in: 'path',
      required: true,
      schema: { type: 'string', maxLength: 20, pattern: '^[1-9][0-9]*$' },
    });
  });

  it('gives examples that fit their own schemas: every request and every answer', async () => {
    const document = await resolvedDocument(open.url);
    let checked = 0;
    for (const [p, method, op] of operations(document)) {
      const request = op.requestBody?.content['application/json'] as Json | undefined;
      for (const example of Object.values((request?.examples ?? {}) as Json)) {
        const parsed = fromDocument(request!.schema).safeParse(example.value);
        expect([p, method, parsed.error?.issues]).toEqual([p, method, undefined]);
        checked++;
      }
      for (const [status, response] of Object.entries(op.responses as Json)) {
        for (const media of Object.values((response.content ?? {}) as Json)) {
          for (const [name, example] of Object.entries((media.examples ?? {}) as Json)) {
            const parsed = fromDocument(media.schema).safeParse(example.value);
            expect([p, method, status, name, parsed.error?.issues]).toEqual([
              p,
              method,
              status,
              name,
              undefined,
            ]);
            checked++;
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(40);
  });

  it('answers its own examples as documented: real targets, valid task ids, canceled', async () => {
    const document = await resolvedDocument(open.url);
    const cancelBodies = exampleRequests(document.paths['/cancel'].post, () => false).map(
      (r) => r.body as Json,
    );
    // One example per route, each with a task id the route accepts.
    expect(cancelBodies.map((b) => b.target)).toEqual(['warehouse', 'warehouse-west', 'dns']);
    for (const body of cancelBodies) expect(CancelRequestSchema.safeParse(body).success).toBe(true);
    let sent = 0;
    for (const [p, method, op] of operations(document)) {
      // Idempotency-Key is per request; its example is sent on its own below.
      for (const request of exampleRequests(op, (name) => name !== 'Idempotency-Key', p)) {
        const answer = await send(
          `${open.url}${request.path}`,
          method,
          request.headers,
          request.body,
        );
        const body = expectDocumented(document, p, method, answer);
        expect([p, answer.status]).toEqual([p, 200]);
        if (p === '/cancel') {
          expect(body).toMatchObject({ outcome: 'canceled', requestId: 'order-4711-cancel' });
        }
        if (p === '/cancel/batch') {
          expect(body.summary).toEqual({ canceled: cancelBodies.length });
        }
        if (p === TASKS) {
          expect(request.path).toBe('/tasks/dns/3001');
          expect(body).toMatchObject({ outcome: 'found', task: { id: '3001' } });
        }
        sent++;
      }
    }
    expect(sent).toBe(10);
    expect(sim.calls.map((c) => c.taskId).sort()).toEqual(['1001', '1002', '2001', '2002']);
    expect(
      dyn.calls
        .filter((c) => c.path.includes('/Task/'))
        .map((c) => c.method + ' ' + c.path)
        .sort(),
    ).toEqual(['DELETE /REST/Task/1003/', 'DELETE /REST/Task/2003/', 'GET /REST/Task/3001/']);
  });

  it('answers the Idempotency-Key example: replay for the same body, 422 for another', async () => {
    const document = await resolvedDocument(open.url);
    const [first, second] = exampleRequests(document.paths['/cancel'].post, () => true, '/cancel');
    expect(first!.headers['Idempotency-Key']).toEqual(expect.any(String));
    const url = `${open.url}/cancel`;
    const answers = [
      await send(url, 'post', first!.headers, first!.body),
      await send(url, 'post', second!.headers, second!.body),
      await send(url, 'post', first!.headers, first!.body),
    ];
    expect(answers.map((a) => a.status)).toEqual([200, 422, 200]);
    const bodies = answers.map((a) => expectDocumented(document, '/cancel', 'post', a));
    expect(bodies[1]!.error.code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(bodies[2]!.replayed).toBe(true);
  });

  it('matches what the gateway answers: results validate against the published schema', async () => {
    sim.setBehaviour(51, { kind: 'fault', code: 1017 });
    for (const body of [
      { target: 'warehouse', taskId: 50 },
      { target: 'warehouse', taskId: 51 },
      { target: 'nope', taskId: 1 },
      { target: 'warehouse' },
    ]) {
      const res = await postJson(`${open.url}/cancel`, body);
      expect(UnifiedResultSchema.safeParse(res.body).success).toBe(true);
    }
  });
});

describe('the header limits it documents are the ones applied', () => {
  it('X-Request-Id: kept when it matches the documented pattern, replaced otherwise', async () => {
    const document = await resolvedDocument(open.url);
    const param = (document.paths['/cancel'].post.parameters as Json[]).find(
      (p) => p.name === 'X-Request-Id',
    )!;
    const pattern = new RegExp(/`(\^[^`]+\$)`/.exec(param.description as string)![1]!);
    let taskId = 300;
    for (const id of ['a'.repeat(128), 'a'.repeat(129), 'order 1', 'x:y@z.1-2_3']) {
      const answer = await send(
        `${open.url}/cancel`,
        'post',
        { 'content-type': 'application/json', 'x-request-id': id },
        { target: 'warehouse', taskId: taskId++ },
      );
      const body = expectDocumented(document, '/cancel', 'post', answer);
      expect(answer.status).toBe(200);
      const kept = body.requestId === id;
      expect([id, kept]).toEqual([id, pattern.test(id)]);
      if (!kept) expect(body.requestId).toMatch(/^[0-9a-f-]{36}$/);
      expect(answer.headers.get('x-request-id')).toBe(body.requestId);
    }
  });

  it('Idempotency-Key: what its schema refuses is answered 400, what it accepts is run', async () => {
    const document = await resolvedDocument(open.url);
    const param = (document.paths['/cancel'].post.parameters as Json[]).find(
      (p) => p.name === 'Idempotency-Key',
    )!;
    const schema = fromDocument(param.schema);
    let taskId = 400;
    for (const key of ['~'.repeat(255), '~'.repeat(256), 'a b', 'k']) {
      const answer = await send(
        `${open.url}/cancel`,
        'post',
        { 'content-type': 'application/json', 'idempotency-key': key },
        { target: 'warehouse', taskId: taskId++ },
      );
      const body = expectDocumented(document, '/cancel', 'post', answer);
      const accepted = schema.safeParse(key).success;
      expect([key.length, answer.status]).toEqual([key.length, accepted ? 200 : 400]);
      if (!accepted) expect(body.error.details[0].path).toBe('(headers).idempotency-key');
    }
  });

  it('traceparent and tracestate: accepted whatever they hold, as documented', async () => {
    const document = await resolvedDocument(open.url);
    for (const [traceparent, taskId] of [
      ['00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', 500],
      ['not a trace context', 501],
    ] as const) {
      const answer = await send(
        `${open.url}/cancel`,
        'post',
        { 'content-type': 'application/json', traceparent, tracestate: 'rojo=1' },
        { target: 'warehouse', taskId },
      );
      expectDocumented(document, '/cancel', 'post', answer);
      expect(answer.status).toBe(200);
    }
  });
});

describe('every status an endpoint answers is documented with its schema', () => {
  const json = { 'content-type': 'application/json' };
  const cases: {
    name: string;
    status: number;
    code?: ErrorCode;
    path?: string;
    run(url: string): Promise<Answer>;
  }[] = [
    {
      name: 'a read with a bad task id',
      status: 400,
      code: 'INVALID_REQUEST',
      path: TASKS,
      run: (url) => send(`${url}/tasks/dns/0`, 'get'),
    },
    {
      name: 'a read of a task the upstream does not know',
      status: 404,
      code: 'TASK_NOT_FOUND',
      path: TASKS,
      run: (url) => {
        dyn.setBehaviour(801, { kind: 'not-found' });
        return send(`${url}/tasks/dns/801`, 'get');
      },
    },
    {
      name: 'a read on an unknown target',
      status: 422,
      code: 'UNKNOWN_TARGET',
      path: TASKS,
      run: (url) => send(`${url}/tasks/no-such-target/802`, 'get'),
    },
    {
      name: 'a read on a route that cannot read',
      status: 501,
      code: 'OPERATION_NOT_SUPPORTED',
      path: TASKS,
      run: (url) => send(`${url}/tasks/warehouse/803`, 'get'),
    },
    {
      name: 'a read with an unusable upstream answer',
      status: 502,
      code: 'UPSTREAM_BAD_RESPONSE',
      path: TASKS,
      run: (url) => {
        dyn.setBehaviour(804, { kind: 'malformed' });
        return send(`${url}/tasks/dns/804`, 'get');
      },
    },
    {
      name: 'an internal error on a read',
      status: 500,
      code: 'INTERNAL_ERROR',
      path: TASKS,
      run: (url) => send(`${url}/tasks/dns/805`, 'get', { 'x-test-fail': '1' }),
    },
    {
      name: 'a missing field',
      status: 400,
      code: 'INVALID_REQUEST',
      run: (url) => send(`${url}/cancel`, 'post', json, { target: 'warehouse' }),
    },
    {
      name: 'broken JSON',
      status: 400,
      code: 'MALFORMED_JSON',
      run: (url) => send(`${url}/cancel`, 'post', json, '{'),
    },
    {
      name: 'another media type',
      status: 400,
      code: 'UNSUPPORTED_MEDIA_TYPE',
      run: (url) =>
        send(`${url}/cancel`, 'post', { 'content-type': 'text/plain' }, 'target=warehouse'),
    },
    {
      name: 'a task id the provider cannot take',
      status: 400,
      code: 'TASK_ID_OUT_OF_RANGE',
      run: (url) =>
        send(`${url}/cancel`, 'post', json, { target: 'warehouse', taskId: '99999999999' }),
    },
    {
      name: 'a task the upstream does not know',
      status: 404,
      run: (url) => {
        sim.setBehaviour(601, { kind: 'fault', code: 1017 });
        return send(`${url}/cancel`, 'post', json, { target: 'warehouse', taskId: 601 });
      },
    },
    {
      name: 'a task that cannot be canceled now',
      status: 409,
      run: (url) => {
        sim.setBehaviour(602, { kind: 'fault', code: 1045 });
        return send(`${url}/cancel`, 'post', json, { target: 'warehouse', taskId: 602 });
      },
    },
    {
      name: 'an Idempotency-Key still running',
      status: 409,
      code: 'IDEMPOTENCY_KEY_IN_FLIGHT',
      run: async (url) => {
        sim.setBehaviour(603, { kind: 'hold' });
        const headers = { ...json, 'idempotency-key': 'in-flight-1' };
        const body = { target: 'warehouse', taskId: 603 };
        const first = send(`${url}/cancel`, 'post', headers, body);
        await sim.waitForCalls(1);
        const second = await send(`${url}/cancel`, 'post', headers, body);
        sim.releaseHeld();
        expect((await first).status).toBe(200);
        expect(second.headers.get('retry-after')).toBe('1');
        return second;
      },
    },
    {
      name: 'a body over the limit',
      status: 413,
      code: 'PAYLOAD_TOO_LARGE',
      run: (url) =>
        send(`${url}/cancel`, 'post', json, {
          target: 'warehouse',
          taskId: 604,
          reason: 'x'.repeat(20_000),
        }),
    },
    {
      name: 'an unknown target',
      status: 422,
      code: 'UNKNOWN_TARGET',
      run: (url) => send(`${url}/cancel`, 'post', json, { target: 'no-such-target', taskId: 605 }),
    },
    {
      name: 'an Idempotency-Key reused with another body',
      status: 422,
      code: 'IDEMPOTENCY_KEY_REUSED',
      run: async (url) => {
        const headers = { ...json, 'idempotency-key': 'reused-1' };
        await send(`${url}/cancel`, 'post', headers, { target: 'warehouse', taskId: 606 });
        return send(`${url}/cancel`, 'post', headers, { target: 'warehouse', taskId: 607 });
      },
    },
    {
      name: 'a rate limit',
      status: 429,
      code: 'RATE_LIMITED',
      run: async (url) => {
        await send(`${url}/cancel`, 'post', json, { target: 'limited', taskId: 608 });
        return send(`${url}/cancel`, 'post', json, { target: 'limited', taskId: 609 });
      },
    },
    {
      name: 'an internal error',
      status: 500,
      code: 'INTERNAL_ERROR',
      run: (url) =>
        send(`${url}/cancel`, 'post', { ...json, 'x-test-fail': '1' }, { target: 'warehouse' }),
    },
    {
      name: 'an unusable upstream answer',
      status: 502,
      run: (url) => {
        sim.setBehaviour(610, { kind: 'malformed' });
        return send(`${url}/cancel`, 'post', json, { target: 'warehouse', taskId: 610 });
      },
    },
    {
      name: 'an upstream that is down',
      status: 503,
      run: (url) => {
        sim.setBehaviour(611, { kind: 'http503' });
        return send(`${url}/cancel`, 'post', json, { target: 'warehouse', taskId: 611 });
      },
    },
    {
      name: 'no answer before the deadline',
      status: 504,
      run: async (url) => {
        sim.setBehaviour(612, { kind: 'hold' });
        const answer = await send(`${url}/cancel`, 'post', json, { target: 'slow', taskId: 612 });
        sim.releaseHeld();
        return answer;
      },
    },
    {
      name: 'an invalid batch envelope',
      status: 400,
      code: 'INVALID_REQUEST',
      path: '/cancel/batch',
      run: (url) => send(`${url}/cancel/batch`, 'post', json, { items: [] }),
    },
    {
      name: 'a batch over its limit',
      status: 413,
      code: 'PAYLOAD_TOO_LARGE',
      path: '/cancel/batch',
      run: (url) =>
        send(`${url}/cancel/batch`, 'post', json, {
          items: [{ target: 'warehouse', taskId: 613, reason: 'x'.repeat(300_000) }],
        }),
    },
    {
      name: 'an internal error on /routes',
      status: 500,
      code: 'INTERNAL_ERROR',
      path: '/routes',
      run: (url) => send(`${url}/routes`, 'get', { 'x-test-fail': '1' }),
    },
  ];

  let document: Json;
  beforeAll(async () => {
    document = await resolvedDocument(faulty.url);
  });

  it.each(cases)('$status for $name', async ({ status, code, path: p = '/cancel', run }) => {
    const method = methodOf(p);
    const answer = await run(faulty.url);
    expect(answer.status).toBe(status);
    const body = expectDocumented(document, p, method, answer);
    if (code !== undefined) expect(body.error.code).toBe(code);
    expect(codesUnder(document, p, method, status)).toContain(body.error.code);
  });
});

describe('GET /openapi.json with auth', () => {
  it('declares security on the endpoints that need a key, and only there', async () => {
    const document = await resolvedDocument(secured.url);
    expect(Object.keys(document.components.securitySchemes).sort()).toEqual(['apiKey', 'bearer']);
    const needKey = operations(document)
      .filter(([, , op]) => op.security !== undefined)
      .map(([p]) => p);
    expect(needKey.sort()).toEqual(['/cancel', '/cancel/batch', '/routes', TASKS]);
    for (const p of needKey) {
      const method = methodOf(p);
      expect(document.paths[p][method].security).toEqual([{ bearer: [] }, { apiKey: [] }]);
      expect(codesUnder(document, p, method, 401)).toEqual(['UNAUTHORIZED']);
    }
    // A key is limited to some targets, so a cancel or a read can be forbidden.
    expect(codesUnder(document, '/cancel', 'post', 403)).toEqual(['FORBIDDEN']);
    expect(codesUnder(document, TASKS, 'get', 403)).toEqual(['FORBIDDEN']);
  });

  it('answers an unauthenticated example 401 as documented, and a keyed one as before', async () => {
    const document = await resolvedDocument(secured.url);
    let sent = 0;
    for (const [p, method, op] of operations(document)) {
      if (op.security === undefined) continue;
      for (const request of exampleRequests(op, (name) => name !== 'Idempotency-Key', p)) {
        const url = `${secured.url}${request.path}`;
        const refused = await send(url, method, request.headers, request.body);
        expect([p, refused.status]).toEqual([p, 401]);
        expect(expectDocumented(document, p, method, refused).error.code).toBe('UNAUTHORIZED');
        const keyed = { ...request.headers, authorization: `Bearer ${OPS_KEY}` };
        const accepted = await send(url, method, keyed, request.body);
        expect([p, accepted.status]).toEqual([p, 200]);
        expectDocumented(document, p, method, accepted);
        sent++;
      }
    }
    // The three /cancel examples, the batch example, /routes and the read.
    expect(sent).toBe(6);
    const forbidden = await send(
      `${secured.url}/cancel`,
      'post',
      { 'content-type': 'application/json', 'x-api-key': WAREHOUSE_KEY },
      { target: 'warehouse-west', taskId: 700 },
    );
    expect(forbidden.status).toBe(403);
    expectDocumented(document, '/cancel', 'post', forbidden);
  });
});

describe('GET /openapi.json follows reloads', () => {
  it('describes the config in force: its routes, its auth, its version', async () => {
    const providers = { wh: { type: 'methodcall', url: sim.taskUrl, ...plain } };
    const gw = await startTestGateway({ providers, routes: { warehouse: { provider: 'wh' } } });
    try {
      const before = await resolvedDocument(gw.url);
      expect(keysNamed(before, 'security')).toEqual([]);
      const targetsOf = (doc: Json) =>
        exampleRequests(doc.paths['/cancel'].post, () => false).map((r) => (r.body as Json).target);
      expect(targetsOf(before)).toEqual(['warehouse']);

      writeFileSync(
        gw.configFile,
        stringify({
          server: { host: '127.0.0.1', port: 0 },
          providers,
          routes: { depot: { provider: 'wh' }, 'depot-2': { provider: 'wh' } },
          auth: { apiKeys: [{ id: 'ops', key: OPS_KEY }] },
        }),
      );
      expect((await gw.gw.reload()).ok).toBe(true);
      const after = await resolvedDocument(gw.url);
      expect(targetsOf(after)).toEqual(['depot', 'depot-2']);
      expect(after.paths['/cancel'].post.security).toEqual([{ bearer: [] }, { apiKey: [] }]);
      const ready = (await (await fetch(`${gw.url}/readyz`)).json()) as { configVersion: string };
      expect(after.info['x-config-version']).toBe(ready.configVersion);
      expect(after.info['x-config-version']).not.toBe(before.info['x-config-version']);
      // Only the key-less refusal is documented for this config (no key is limited to targets).
      expect(Object.keys(after.paths['/cancel'].post.responses)).toContain('401');
      expect(Object.keys(after.paths['/cancel'].post.responses)).not.toContain('403');

      const [request] = exampleRequests(after.paths['/cancel'].post, () => false);
      const refused = await send(`${gw.url}/cancel`, 'post', request!.headers, request!.body);
      expect(refused.status).toBe(401);
      expectDocumented(after, '/cancel', 'post', refused);
    } finally {
      await gw.close();
    }
  });
});
