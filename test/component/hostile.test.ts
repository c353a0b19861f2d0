import { connect } from 'node:net';
import {
  startMethodcallSimulator,
  type MethodcallSimulator,
} from '../../src/simulators/methodcall';
import { postJson, startTestGateway, type TestGateway } from '../helpers/gateway';

/** A thousand callers at once: the bulkhead bounds what reaches the upstream; nothing hangs. */
let sim: MethodcallSimulator;
let gateway: TestGateway;

beforeAll(async () => {
  sim = await startMethodcallSimulator();
  gateway = await startTestGateway({
    providers: { wh: { type: 'methodcall', url: sim.taskUrl, maxConcurrent: 16, maxQueue: 16 } },
    routes: { warehouse: { provider: 'wh' } },
  });
});

afterAll(async () => {
  await gateway.close();
  await sim.close();
});

it('bounds 1000 concurrent connections by the bulkhead and keeps answering probes', async () => {
  const ids = Array.from({ length: 1000 }, (_, i) => 10_000 + i);
  for (const id of ids) sim.setBehaviour(id, { kind: 'hold' });
  const pending = ids.map((taskId) =>
    postJson(`${gateway.url}/cancel`, { target: 'warehouse', taskId }),
  );
  // 16 in flight at the upstream; 16 queued; the other 968 are refused at once.
  await sim.waitForCalls(16);
  expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
  expect((await fetch(`${gateway.url}/readyz`)).status).toBe(200);
  // Nothing is released until every other request has been refused: the slots stay taken.
  let refused = 0;
  let allRefused: () => void = () => undefined;
  const refusedAll = new Promise<void>((resolve) => (allRefused = resolve));
  const settled = pending.map((p) =>
    p.then((res) => {
      if (res.body.error?.code === 'BULKHEAD_FULL' && ++refused === 968) allRefused();
      return res;
    }),
  );
  await refusedAll;
  expect(sim.calls).toHaveLength(16);
  // Now release: the 16 queued requests run (and are held) in turn; release them too.
  const all = Promise.all(settled);
  sim.releaseHeld();
  await sim.waitForCalls(32);
  sim.releaseHeld();
  const results = await all;
  const statuses = results.map((r) => r.status);
  expect(statuses.filter((s) => s === 200)).toHaveLength(32);
  expect(statuses.filter((s) => s === 503)).toHaveLength(968);
  expect(sim.calls).toHaveLength(32);
});

describe('slow clients', () => {
  let slow: TestGateway;

  beforeAll(async () => {
    slow = await startTestGateway({
      server: { headersTimeoutMs: 300, receiveTimeoutMs: 600 },
      providers: { wh: { type: 'methodcall', url: sim.taskUrl } },
      routes: { warehouse: { provider: 'wh' } },
    });
  });

  afterAll(async () => {
    await slow.close();
  });

  /** Opens a raw connection, writes `first`, never finishes; resolves with what the server sent. */
  function dribble(first: string): Promise<{ data: string; closedAfterMs: number }> {
    const { hostname, port } = new URL(slow.url);
    return new Promise((resolve) => {
      const started = performance.now();
      let data = '';
      const socket = connect(Number(port), hostname, () => {
        socket.write(first);
      });
      socket.on('data', (chunk: Buffer) => (data += chunk.toString()));
      socket.on('close', () => {
        resolve({ data, closedAfterMs: performance.now() - started });
      });
      socket.on('error', () => undefined);
    });
  }

  it('cuts a client that never finishes its headers (slow-loris), and keeps serving', async () => {
    const { data } = await dribble('POST /cancel HTTP/1.1\r\nHost: x\r\nX-Slow: 1');
    expect(data).toMatch(/^HTTP\/1\.1 408/);
    expect((await fetch(`${slow.url}/healthz`)).status).toBe(200);
  });

  it('cuts a client that never finishes its body', async () => {
    const { data } = await dribble(
      'POST /cancel HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"target":',
    );
    // The request reached the handler, which was still reading: the connection is closed.
    expect(data === '' || /^HTTP\/1\.1 (408|400)/.test(data)).toBe(true);
    expect((await fetch(`${slow.url}/healthz`)).status).toBe(200);
  });
});
