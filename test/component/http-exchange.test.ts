import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { exchange, type ExchangeRequest } from '../../src/providers/http-exchange';
import { closedPort } from '../helpers/net';

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
