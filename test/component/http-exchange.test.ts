import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { ROOT_CONTEXT } from '@opentelemetry/api';
import { createTracing, startServerSpan } from '../../src/observability/tracing';
import { exchange, type ExchangeRequest } from '../../src/providers/http-exchange';
import { closedPort } from '../helpers/net';
import { startOtlpReceiver } from '../helpers/otlp-receiver';

/** A loopback server whose handler the test sets per case; it counts the requests it saw. */
async function upstream(): Promise<{
  url: string;
  /** Resolves when the next request reaches the server. */
  arrival: () => Promise<unknown>;
  seen: () => number;
  handle: (h: (req: IncomingMessage, res: ServerResponse) => void) => void;
  close: () => Promise<void>;
}> {
  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end();
  let seen = 0;
  const server: Server = createServer((req, res) => {
    seen++;
    req.resume();
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    arrival: () => once(server, 'request'),
    seen: () => seen,
    handle: (h) => {
      handler = h;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
    },
  };
}

describe('exchange (undici dispatch with a capped body)', () => {
  let up: Awaited<ReturnType<typeof upstream>>;
  let pool: Pool;
  const request = (overrides: Partial<ExchangeRequest> = {}): ExchangeRequest => ({
    origin: up.url,
    method: 'POST',
    path: '/task',
    headers: { 'content-type': 'application/xml' },
    body: '<x/>',
    signal: new AbortController().signal,
    maxBytes: 1024,
    ...overrides,
  });
  beforeEach(async () => {
    up = await upstream();
    pool = new Pool(up.url, { connections: 1 });
  });
  afterEach(async () => {
    await pool.destroy();
    await up.close();
  });

  it('returns status, headers and the whole body as text', async () => {
    up.handle((_req, res) => {
      res.writeHead(201, { 'x-thing': 'yes', 'content-type': 'text/plain' });
      res.write('héllo ');
      res.end('world');
    });
    const result = await exchange(pool, request());
    expect(result).toEqual({
      kind: 'answered',
      status: 201,
      headers: expect.objectContaining({ 'x-thing': 'yes' }) as unknown,
      text: 'héllo world',
    });
  });

  it('skips informational (1xx) answers', async () => {
    up.handle((_req, res) => {
      res.writeEarlyHints({ link: '</style.css>; rel=preload' });
      res.end('done');
    });
    const result = await exchange(pool, request());
    expect(result).toMatchObject({ kind: 'answered', status: 200, text: 'done' });
  });

  it('refuses a body announced larger than the cap without reading it', async () => {
    up.handle((_req, res) => {
      res.writeHead(200, { 'content-length': '5000' });
      res.write('x'.repeat(100));
    });
    expect(await exchange(pool, request())).toEqual({ kind: 'too_large', status: 200 });
  });

  it('stops reading a chunked body once it passes the cap', async () => {
    up.handle((_req, res) => {
      res.writeHead(200);
      const chunk = 'y'.repeat(300);
      for (let i = 0; i < 10; i++) res.write(chunk);
    });
    expect(await exchange(pool, request())).toEqual({ kind: 'too_large', status: 200 });
  });

  it('reports a connection cut in the middle of the body, with the status it had', async () => {
    up.handle((_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('partial', () => res.destroy());
    });
    const result = await exchange(pool, request());
    expect(result).toMatchObject({ kind: 'cut', status: 200 });
  });

  it('fails, with the socket error, when nothing listens', async () => {
    const refused = new Pool(`http://127.0.0.1:${await closedPort()}`);
    try {
      const result = await exchange(refused, request());
      expect(result.kind).toBe('failed');
      expect(result.kind === 'failed' && (result.error as { code?: string }).code).toBe(
        'ECONNREFUSED',
      );
    } finally {
      await refused.destroy();
    }
  });

  it('fails at once for a signal that already fired, sending nothing', async () => {
    const controller = new AbortController();
    controller.abort(new Error('gone'));
    const result = await exchange(pool, request({ signal: controller.signal }));
    expect(result).toEqual({ kind: 'failed', error: new Error('gone') });
    expect(up.seen()).toBe(0);
  });

  it('settles when the signal fires while the answer is awaited', async () => {
    up.handle(() => undefined);
    const controller = new AbortController();
    const arrived = up.arrival();
    const pending = exchange(pool, request({ signal: controller.signal }));
    await arrived;
    controller.abort(new DOMException('deadline', 'TimeoutError'));
    const result = await pending;
    expect(result.kind).toBe('failed');
  });

  it('settles at once while queued for a pooled connection, and never sends the request', async () => {
    // The only connection is busy with a held request; the second waits in the pool's queue.
    let release: (() => void) | undefined;
    up.handle((_req, res) => {
      release = () => res.end('first');
    });
    const arrived = up.arrival();
    const first = exchange(pool, request());
    await arrived;
    const controller = new AbortController();
    const queued = exchange(pool, request({ signal: controller.signal }));
    controller.abort(new DOMException('deadline', 'TimeoutError'));
    expect((await queued).kind).toBe('failed');
    release?.();
    expect(await first).toMatchObject({ kind: 'answered', text: 'first' });
    // The queued request was dropped, not sent once the connection came free.
    up.handle((_req, res) => {
      res.end('third');
    });
    expect(await exchange(pool, request())).toMatchObject({ kind: 'answered', text: 'third' });
    expect(up.seen()).toBe(2);
  });
});

describe('exchange inside a traced request', () => {
  let up: Awaited<ReturnType<typeof upstream>>;
  let pool: Pool;
  const headersSeen: IncomingMessage['headers'][] = [];
  const saved = { ...process.env };
  const request = (): ExchangeRequest => ({
    operation: 'poll',
    origin: up.url,
    method: 'GET',
    path: '/job/1',
    headers: { accept: 'application/json' },
    body: null,
    signal: new AbortController().signal,
    maxBytes: 1024,
  });
  beforeEach(async () => {
    up = await upstream();
    pool = new Pool(up.url, { connections: 1 });
    headersSeen.length = 0;
  });
  afterEach(async () => {
    await pool.destroy();
    await up.close();
    process.env = { ...saved };
  });

  it('makes each request sent a client span under the request’s span, named in its traceparent', async () => {
    const receiver = await startOtlpReceiver();
    try {
      process.env = { ...saved, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url };
      const tracing = createTracing(process.env);
      // The first request's connection is closed under it before any answer (as a server closing
      // an idle socket does): exchange sends it again, as a second span.
      up.handle((req, res) => {
        headersSeen.push(req.headers);
        if (headersSeen.length === 1) req.socket.destroy();
        else res.writeHead(503).end('busy');
      });
      const server = startServerSpan(tracing.tracer, 'POST /cancel', ROOT_CONTEXT, {});
      const result = await server.run(() => exchange(pool, request()));
      server.end({}, false);
      expect(result).toMatchObject({ kind: 'answered', status: 503 });
      await tracing.shutdown();

      const spans = await receiver.waitForSpans(3);
      const parent = spans.find((s) => s.name === 'POST /cancel');
      const clients = spans.filter((s) => s.name === 'GET poll');
      expect(clients).toHaveLength(2);
      expect(headersSeen.map((h) => h.traceparent)).toEqual(
        clients.map((c) => `00-${c.traceId}-${c.spanId}-01`),
      );
      expect(headersSeen.map((h) => h.accept)).toEqual(['application/json', 'application/json']);
      for (const client of clients) {
        expect(client).toMatchObject({
          kind: 3,
          parentSpanId: parent?.spanId,
          status: { code: 2 },
        });
      }
      const port = Number(new URL(up.url).port);
      expect(clients[0]?.attributes).toEqual({
        'cancel.upstream.operation': 'poll',
        'http.request.method': 'GET',
        'server.address': '127.0.0.1',
        'server.port': port,
        // The socket error's code, never its message.
        'error.type': expect.stringMatching(/^(UND_ERR_SOCKET|ECONNRESET|EPIPE)$/) as unknown,
      });
      expect(clients[1]?.attributes).toEqual({
        'cancel.upstream.operation': 'poll',
        'http.request.method': 'GET',
        'server.address': '127.0.0.1',
        'server.port': port,
        'http.request.resend_count': 1,
        'http.response.status_code': 503,
        'error.type': '503',
      });
    } finally {
      await receiver.close();
    }
  });

  it('adds no header and makes no span outside a traced request', async () => {
    const receiver = await startOtlpReceiver();
    try {
      process.env = { ...saved, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url };
      const tracing = createTracing(process.env);
      up.handle((req, res) => {
        headersSeen.push(req.headers);
        res.end('{}');
      });
      expect(await exchange(pool, request())).toMatchObject({ kind: 'answered', status: 200 });
      await tracing.shutdown();
      expect(headersSeen.map((h) => [h.traceparent, h.tracestate])).toEqual([
        [undefined, undefined],
      ]);
      expect(receiver.exports).toEqual([]);
    } finally {
      await receiver.close();
    }
  });
});
