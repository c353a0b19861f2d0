import { request as httpRequest } from 'node:http';
import request from 'supertest';
import {
  startMethodcallSimulator,
  type MethodcallSimulator,
} from '../../src/simulators/methodcall';
import { postJson, startTestGateway, type TestGateway } from '../helpers/gateway';
import { expectUnifiedShape } from '../helpers/shape';

let sim: MethodcallSimulator;
let gateway: TestGateway;

beforeAll(async () => {
  sim = await startMethodcallSimulator();
  gateway = await startTestGateway({
    providers: { wh: { type: 'methodcall', url: sim.taskUrl } },
    routes: { warehouse: { provider: 'wh' } },
  });
});

afterAll(async () => {
  await gateway.close();
  await sim.close();
});

beforeEach(() => {
  sim.reset();
});

async function expectInvalid(
  body: string | object,
  detailPath?: string,
): Promise<Record<string, any>> {
  const res = await postJson(`${gateway.url}/cancel`, body);
  expect(res.status).toBe(400);
  expectUnifiedShape(res.body, res.status);
  expect(res.body.outcome).toBe('invalid_request');
  expect(Array.isArray(res.body.error.details)).toBe(true);
  if (detailPath !== undefined) {
    expect(res.body.error.details.map((d: { path: string }) => d.path)).toContain(detailPath);
  }
  expect(sim.calls).toHaveLength(0);
  return res.body;
}

describe('invalid_request: validation (nothing reaches the upstream)', () => {
  it('refuses malformed JSON', async () => {
    const body = await expectInvalid('{"target": "warehouse", "taskId": ');
    expect(body.error.code).toBe('MALFORMED_JSON');
  });

  it('refuses an empty body', async () => {
    expect((await expectInvalid('')).error.code).toBe('MALFORMED_JSON');
  });

  it('refuses a JSON array, string and null', async () => {
    await expectInvalid('[]');
    await expectInvalid('"x"');
    await expectInvalid('null');
  });

  it('lists every missing field', async () => {
    const body = await expectInvalid({});
    expect(body.error.details).toEqual(
      expect.arrayContaining([
        { path: 'target', message: 'is required' },
        { path: 'taskId', message: 'is required' },
      ]),
    );
  });

  it('refuses an extra field', async () => {
    const body = await expectInvalid({ target: 'warehouse', taskId: '1', force: true });
    expect(body.error.details[0].message).toContain('force');
  });

  it('refuses a __proto__ key', async () => {
    await expectInvalid('{"target":"warehouse","taskId":"1","__proto__":{"polluted":true}}');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it.each([
    ['a path traversal', '1/../../x'],
    ['XML injection', '1<x/>'],
    ['an entity', '1&amp;'],
    ['a leading zero', '0123'],
    ['zero', '0'],
    ['a sign', '+1'],
    ['a negative number', -1],
    ['a space', ' 1'],
    ['a fraction', 1.5],
    ['a boolean', true],
    ['null', null],
    ['CRLF injection', '1\r\nX-Evil: 1'],
  ])('refuses taskId with %s', async (_name, taskId) => {
    await expectInvalid({ target: 'warehouse', taskId }, 'taskId');
  });

  it('refuses a reason over 200 characters', async () => {
    await expectInvalid({ target: 'warehouse', taskId: '1', reason: 'x'.repeat(201) }, 'reason');
  });

  it.each([['../etc'], ['a<b>'], ['WAREHOUSE'], [42]])('refuses target %p', async (target) => {
    await expectInvalid({ target, taskId: '1' }, 'target');
  });

  it('refuses a body that is not application/json', async () => {
    const res = await fetch(`${gateway.url}/cancel`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: '{"target":"warehouse","taskId":"1"}',
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as Record<string, any>;
    expect(body.error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    expect(sim.calls).toHaveLength(0);
  });

  it('accepts application/json with a UTF-8 charset', async () => {
    const res = await postJson(
      `${gateway.url}/cancel`,
      { target: 'warehouse', taskId: '5' },
      {
        'content-type': 'application/json; charset=utf-8',
      },
    );
    expect(res.status).toBe(200);
  });
});

describe('payload_too_large', () => {
  it('answers 413 for a 100 KB body', async () => {
    const big = JSON.stringify({
      target: 'warehouse',
      taskId: '1',
      reason: 'x'.repeat(100 * 1024),
    });
    const res = await postJson(`${gateway.url}/cancel`, big);
    expect(res.status).toBe(413);
    expectUnifiedShape(res.body, res.status);
    expect(res.body).toMatchObject({
      outcome: 'payload_too_large',
      error: { code: 'PAYLOAD_TOO_LARGE' },
    });
    expect(sim.calls).toHaveLength(0);
  });

  it('answers 413 for a chunked body without Content-Length', async () => {
    const { hostname, port } = new URL(gateway.url);
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = httpRequest(
        {
          hostname,
          port,
          path: '/cancel',
          method: 'POST',
          headers: { 'content-type': 'application/json' },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode);
        },
      );
      req.on('error', reject);
      req.write('{"target":"warehouse","taskId":"1","reason":"');
      for (let i = 0; i < 10; i++) req.write('y'.repeat(4096));
      req.end('"}');
    });
    expect(status).toBe(413);
    expect(sim.calls).toHaveLength(0);
  });
});

/** Sends only the headers of a POST declaring `declaredBytes`, then waits for the answer. */
function declareOnly(
  path: string,
  declaredBytes: number,
): Promise<{ status: number | undefined; body: string }> {
  const { hostname, port } = new URL(gateway.url);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        hostname,
        port,
        path,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': String(declaredBytes) },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => {
          resolve({ status: res.statusCode, body });
          req.destroy();
        });
      },
    );
    req.on('error', reject);
    // Headers only: an answer can come only from a gateway that did not wait for the body.
    req.flushHeaders();
  });
}

describe('payload_too_large: limits apply before the body is read', () => {
  it('refuses a declared /cancel body over bodyLimitBytes without waiting for it', async () => {
    const res = await declareOnly('/cancel', 16 * 1024 + 1);
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body)).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE' } });
  });

  it('refuses a declared batch body over batchBodyLimitBytes (256 KiB) without waiting for it', async () => {
    const res = await declareOnly('/cancel/batch', 256 * 1024 + 1);
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body)).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE' } });
  });

  it('accepts a batch larger than bodyLimitBytes but within batchBodyLimitBytes', async () => {
    const items = Array.from({ length: 100 }, (_, i) => ({
      target: 'warehouse',
      taskId: String(7000 + i),
      reason: 'r'.repeat(200),
    }));
    const text = JSON.stringify({ items });
    expect(Buffer.byteLength(text)).toBeGreaterThan(16 * 1024);
    const res = await postJson(`${gateway.url}/cancel/batch`, text);
    expect(res.status).toBe(200);
    expect(res.body.summary).toEqual({ canceled: 100 });
  });

  it('refuses a batch body over batchBodyLimitBytes', async () => {
    const text = JSON.stringify({
      items: [{ target: 'warehouse', taskId: '1', reason: 'x'.repeat(300 * 1024) }],
    });
    const res = await postJson(`${gateway.url}/cancel/batch`, text);
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('PAYLOAD_TOO_LARGE');
    expect(sim.calls).toHaveLength(0);
  });
});

describe('request id', () => {
  it('echoes a caller X-Request-Id in the header and body', async () => {
    const res = await request(gateway.url)
      .post('/cancel')
      .set('X-Request-Id', 'caller-abc.123')
      .send({ target: 'warehouse', taskId: '9' });
    expect(res.headers['x-request-id']).toBe('caller-abc.123');
    expect(res.body.requestId).toBe('caller-abc.123');
  });

  it('generates one when absent', async () => {
    const res = await request(gateway.url)
      .post('/cancel')
      .send({ target: 'warehouse', taskId: '10' });
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.body.requestId).toBe(res.headers['x-request-id']);
  });

  it('replaces an unsafe one instead of echoing it', async () => {
    const res = await request(gateway.url)
      .post('/cancel')
      .set('X-Request-Id', '<script>alert(1)</script>')
      .send({ target: 'warehouse', taskId: '11' });
    expect(res.body.requestId).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('other endpoints', () => {
  it('GET /healthz answers 200', async () => {
    const res = await request(gateway.url).get('/healthz');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
  });

  it('GET /readyz answers 200 with the config version and provider circuits', async () => {
    const res = await request(gateway.url).get('/readyz');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      status: 'ready',
      configVersion: expect.stringMatching(/^[0-9a-f]{12}$/),
      providers: { wh: { circuit: 'closed', protocol: 'methodcall' } },
      state: 'ok',
    });
  });

  it('answers unknown paths with 404 in the unified shape', async () => {
    const res = await request(gateway.url).get('/nope');
    expect(res.status).toBe(404);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expectUnifiedShape(res.body, 404);
    expect(res.body).toMatchObject({
      ok: false,
      outcome: 'invalid_request',
      error: { code: 'NOT_FOUND' },
    });
  });

  it('answers GET /cancel with 405 and Allow: POST', async () => {
    const res = await request(gateway.url).get('/cancel');
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe('POST');
    expect(res.body.error.code).toBe('METHOD_NOT_ALLOWED');
  });

  it('answers a malformed URL with 400 JSON, not an HTML stack trace', async () => {
    const res = await request(gateway.url).get('/%E0%A4%A');
    expect([400, 404]).toContain(res.status);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.text).not.toContain('<html');
  });
});

describe('logs', () => {
  it('writes one line per cancel with the contract fields, and the reason never goes upstream', async () => {
    const before = gateway.logs.cancels().length;
    await postJson(
      `${gateway.url}/cancel`,
      { target: 'warehouse', taskId: '4711', reason: 'duplicate order' },
      {
        'x-request-id': 'log-check-1',
      },
    );
    const lines = gateway.logs.cancels().slice(before);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 'info',
      requestId: 'log-check-1',
      caller: 'anonymous',
      target: 'warehouse',
      provider: 'wh',
      taskId: '4711',
      outcome: 'canceled',
      status: 200,
      durationMs: expect.any(Number),
      attempts: [{ provider: 'wh', outcome: 'canceled', durationMs: expect.any(Number) }],
      reason: 'duplicate order',
    });
    expect(sim.calls[0]!.body).not.toContain('duplicate order');
  });

  it('logs invalid requests too', async () => {
    const before = gateway.logs.cancels().length;
    await postJson(`${gateway.url}/cancel`, { target: 'warehouse' });
    const lines = gateway.logs.cancels().slice(before);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ outcome: 'invalid_request', status: 400 });
  });
});

describe('one front door: every endpoint is an Express route', () => {
  let fronted: TestGateway;
  const seen: string[] = [];

  beforeAll(async () => {
    fronted = await startTestGateway(
      {
        providers: { wh: { type: 'methodcall', url: sim.taskUrl } },
        routes: { warehouse: { provider: 'wh' } },
      },
      {},
      undefined,
      {
        middleware: [
          (req, res, next) => {
            seen.push(`${req.method} ${req.path}`);
            res.setHeader('X-Seen-By', 'test-middleware');
            if (req.headers['x-block'] === 'yes') {
              res.status(429).json({ blocked: true });
              return;
            }
            next();
          },
        ],
      },
    );
  });

  afterAll(async () => {
    await fronted.close();
  });

  it.each([
    ['POST', '/cancel', { target: 'warehouse', taskId: '21' }, 200],
    ['POST', '/cancel/batch', { items: [{ target: 'warehouse', taskId: '22' }] }, 200],
    ['GET', '/healthz', undefined, 200],
    ['GET', '/readyz', undefined, 200],
    ['GET', '/metrics', undefined, 200],
    ['GET', '/routes', undefined, 200],
    ['GET', '/openapi.json', undefined, 200],
    // methodcall has no read: answered by the gateway, nothing sent.
    ['GET', '/tasks/warehouse/27', undefined, 501],
    ['GET', '/cancel', undefined, 405],
    ['POST', '/tasks/warehouse/27', undefined, 405],
    ['GET', '/no-such-endpoint', undefined, 404],
  ])('runs app middleware for %s %s', async (method, path, body, status) => {
    const res = await fetch(`${fronted.url}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    await res.text();
    expect(res.status).toBe(status);
    expect(res.headers.get('x-seen-by')).toBe('test-middleware');
    expect(seen).toContain(`${method} ${path}`);
  });

  it('lets a middleware answer a cancel before its body is read: nothing goes upstream', async () => {
    const res = await postJson(
      `${fronted.url}/cancel`,
      { target: 'warehouse', taskId: '23' },
      { 'x-block': 'yes' },
    );
    expect(res.status).toBe(429);
    expect(res.body).toEqual({ blocked: true });
    expect(sim.calls).toHaveLength(0);
  });

  it.each(['/cancel/', '/cancel?source=test', '/Cancel', '/CANCEL/?x=1'])(
    'routes %s as Express 5 does: to the cancel endpoint',
    async (path) => {
      const res = await postJson(`${fronted.url}${path}`, { target: 'warehouse', taskId: '24' });
      expect(res.status).toBe(200);
      expectUnifiedShape(res.body, res.status);
      expect(res.body).toMatchObject({ outcome: 'canceled', taskId: '24' });
      expect(fronted.logs.cancels().at(-1)).toMatchObject({ taskId: '24', status: 200 });
    },
  );

  it.each(['/cancel/batch/', '/Cancel/Batch?x=1'])(
    'routes %s as Express 5 does: to the batch endpoint',
    async (path) => {
      const res = await postJson(`${fronted.url}${path}`, {
        items: [{ target: 'warehouse', taskId: '25' }],
      });
      expect(res.status).toBe(200);
      expect(res.body.summary).toEqual({ canceled: 1 });
    },
  );

  it('does not route a path that only starts like /cancel', async () => {
    const res = await postJson(`${fronted.url}/cancelx`, { target: 'warehouse', taskId: '26' });
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('NOT_FOUND');
    expect(sim.calls).toHaveLength(0);
  });
});

describe('Server-Timing', () => {
  it("splits an answer's time into the gateway's and the upstream's", async () => {
    const res = await postJson(`${gateway.url}/cancel`, { target: 'warehouse', taskId: '31' });
    const header = res.headers.get('server-timing') ?? '';
    const match = /^gateway;dur=(\d+\.\d), upstream;dur=(\d+\.\d)$/.exec(header);
    expect(match).not.toBeNull();
    const upstream = Number(match?.[2]);
    expect(upstream).toBe(res.body.attempts[0].durationMs);
    expect(Number(match?.[1]) + upstream).toBeLessThanOrEqual(Number(res.body.durationMs) + 1);
  });

  it('says upstream 0 for an answer its Idempotency-Key replays, which calls nothing', async () => {
    sim.setBehaviour(32, { kind: 'slow', delayMs: 30 });
    const body = { target: 'warehouse', taskId: '32' };
    const key = { 'idempotency-key': 'server-timing-32' };
    const upstreamOf = (res: { headers: Headers }): number =>
      Number(/upstream;dur=(\d+\.\d)$/.exec(res.headers.get('server-timing') ?? '')?.[1]);
    const upstreamSum = async (): Promise<number> => {
      const text = await (await fetch(`${gateway.url}/metrics`)).text();
      const line = text
        .split('\n')
        .find((l) => l.startsWith('gateway_cancel_upstream_seconds_sum{target="warehouse"'));
      return Number(line?.split(' ')[1]);
    };
    const first = await postJson(`${gateway.url}/cancel`, body, key);
    expect(first.status).toBe(200);
    expect(upstreamOf(first)).toBeGreaterThanOrEqual(30);
    const before = await upstreamSum();

    const again = await postJson(`${gateway.url}/cancel`, body, key);
    expect(again.body).toMatchObject({ replayed: true, attempts: first.body.attempts });
    expect(sim.calls).toHaveLength(1);
    expect(upstreamOf(again)).toBe(0);
    expect(await upstreamSum()).toBe(before);
  });

  it('says upstream 0 when nothing was sent', async () => {
    const res = await postJson(`${gateway.url}/cancel`, { target: 'nope', taskId: '1' });
    expect(res.status).toBe(422);
    expect(res.headers.get('server-timing')).toMatch(/^gateway;dur=\d+\.\d, upstream;dur=0\.0$/);
  });
});

describe('invalid_request: each message says what was expected and what came', () => {
  it.each([
    ['true', 'boolean'],
    ['null', 'null'],
    ['1.5', '1.5'],
    ['{}', 'object'],
    ['[]', 'array'],
  ])('taskId %s is a wrong type, never "is required"', async (taskId, got) => {
    const body = await expectInvalid(`{"target":"warehouse","taskId":${taskId}}`, 'taskId');
    expect(body.error.details).toEqual([
      { path: 'taskId', message: `expected a string or an integer, got ${got}` },
    ]);
    expect(body.error.message).toContain(`expected a string or an integer, got ${got}`);
    expect(body.error.message).not.toContain('is required');
  });

  it.each([
    [
      { target: 'warehouse', taskId: '12 3' },
      'taskId',
      'expected a positive integer without sign, spaces or leading zeros, got "12 3"',
    ],
    [{ target: 'warehouse', taskId: 0 }, 'taskId', 'expected a positive integer, got 0'],
    [
      { target: 'warehouse', taskId: '1'.repeat(21) },
      'taskId',
      'expected at most 20 digits, got 21',
    ],
    [{ target: 'Warehouse', taskId: '1' }, 'target', expect.stringMatching(/got "Warehouse"$/)],
    [{ target: 7, taskId: '1' }, 'target', 'expected a string, got number'],
    [{ taskId: '1' }, 'target', 'is required'],
    [{ target: 'warehouse', taskId: '1', reason: ['a'] }, 'reason', 'expected a string, got array'],
    [
      { target: 'warehouse', taskId: '1', reason: 'r'.repeat(201) },
      'reason',
      'expected at most 200 characters, got 201',
    ],
    [{ target: 'warehouse', taskId: '1', force: true }, '(body)', 'unknown field(s): force'],
  ])('%j', async (request, path, message) => {
    const body = await expectInvalid(request, path);
    expect(body.error.details).toEqual([{ path, message }]);
  });

  it('says what came instead of an object', async () => {
    const body = await expectInvalid('[1]', '(body)');
    expect(body.error.details).toEqual([
      { path: '(body)', message: 'must be a JSON object, got array' },
    ]);
  });

  it('reports a batch item of the wrong type in its own result', async () => {
    const res = await postJson(`${gateway.url}/cancel/batch`, {
      items: [
        { target: 'warehouse', taskId: true },
        { target: 'warehouse', taskId: '41' },
      ],
    });
    expect(res.status).toBe(200);
    expect(res.body.results[0].error.details).toEqual([
      { path: 'taskId', message: 'expected a string or an integer, got boolean' },
    ]);
    expect(res.body.results[1].outcome).toBe('canceled');
  });
});
