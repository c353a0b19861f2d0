import { setTimeout as delay } from 'node:timers/promises';
import { Agent, request } from 'node:http';
import { startDynRestSimulator, type DynRestSimulator } from '../../src/simulators/dyn-rest';
import {
  startMethodcallSimulator,
  type MethodcallSimulator,
} from '../../src/simulators/methodcall';
import { spawnGateway, type ChildGateway } from '../helpers/child';
import { postJson, writeConfig } from '../helpers/gateway';
import { expectUnifiedShape } from '../helpers/shape';

let wh: MethodcallSimulator;
let dyn: DynRestSimulator;
let gw: ChildGateway | undefined;

beforeEach(async () => {
  wh = await startMethodcallSimulator();
  dyn = await startDynRestSimulator();
});

afterEach(async () => {
  if (gw !== undefined && gw.child.exitCode === null) {
    gw.child.kill('SIGKILL');
    await gw.exited;
  }
  gw = undefined;
  await wh.close();
  await dyn.close();
});

const configWith = (server: Record<string, unknown>, dns: Record<string, unknown> = {}) => ({
  server: { host: '127.0.0.1', port: 0, ...server },
  providers: {
    wh: { type: 'methodcall', url: wh.taskUrl },
    dns: {
      type: 'dyn-rest',
      baseUrl: dyn.baseUrl,
      customerName: 'acme',
      userName: 'api-user',
      password: 'sim-password',
      ...dns,
    },
  },
  routes: { warehouse: { provider: 'wh' }, dns: { provider: 'dns' } },
});

/** POSTs JSON over `agent`; a failed request rejects with its code and `reused` (the socket had carried a request before). */
function post(
  agent: Agent,
  url: string,
  body: unknown,
): Promise<{ status: number; connection: string | undefined; body: Record<string, unknown> }> {
  const text = JSON.stringify(body);
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: hostname,
        port,
        path: '/cancel',
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (data += chunk));
        res.on('end', () => {
          try {
            resolve({
              status: res.statusCode ?? 0,
              connection: res.headers.connection,
              body: JSON.parse(data) as Record<string, unknown>,
            });
          } catch (err) {
            reject(
              Object.assign(err as Error, { code: 'EMPTY_OR_BAD_BODY', reused: req.reusedSocket }),
            );
          }
        });
        res.on('error', (err) => {
          reject(Object.assign(err, { reused: req.reusedSocket }));
        });
      },
    );
    req.on('error', (err) => {
      reject(Object.assign(err, { reused: req.reusedSocket }));
    });
    req.end(text);
  });
}

const logouts = (): number => dyn.callsTo('DELETE', '/REST/Session').length;

describe('SIGTERM under keep-alive load', () => {
  it('resets no connection: every request gets a whole answer, 200 or 503 DRAINING', async () => {
    const child = await spawnGateway(writeConfig(configWith({ shutdownGraceMs: 5000 })));
    gw = child;
    // A Dyn session to log out at the end.
    expect((await postJson(`${child.url}/cancel`, { target: 'dns', taskId: 1 })).status).toBe(200);
    expect(dyn.activeSessions()).toBe(1);

    const CONNECTIONS = 30;
    const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
    const answers = new Map<string, number>();
    const failures: string[] = [];
    let refused = 0;
    let next = 1000;
    let sent = 0;
    const count = (key: string): void => {
      answers.set(key, (answers.get(key) ?? 0) + 1);
    };
    // Each client sends as fast as it is answered (with a short pause), until a new connection of
    // its is refused: the listener closed. A connection still in the listener's accept queue
    // when it closes is reset by the kernel before the gateway ever read from it; that is a
    // refusal too (`reusedSocket` false: the request never reached the gateway). A reset or an
    // empty reply on a connection that carried earlier requests is a failure.
    const client = async (): Promise<void> => {
      for (;;) {
        try {
          const res = await post(agent, child.url, { target: 'warehouse', taskId: next++ });
          sent++;
          expectUnifiedShape(res.body, res.status);
          const code = (res.body.error as { code?: string } | undefined)?.code;
          count(`${res.status} ${code ?? String(res.body.outcome)}`);
          if (res.status === 503) expect(res.connection).toBe('close');
        } catch (err) {
          const { code, reused } = err as { code?: string; reused?: boolean };
          if (code === 'ECONNREFUSED' || (code === 'ECONNRESET' && reused === false)) refused++;
          else failures.push(`${code ?? ''} (reused connection: ${String(reused)})`);
          return;
        }
        await delay(1);
      }
    };
    const clients = Array.from({ length: CONNECTIONS }, () => client());
    await wh.waitForCalls(3 * CONNECTIONS);
    child.child.kill('SIGTERM');
    await Promise.all(clients);
    agent.destroy();

    expect(failures).toEqual([]);
    expect(await child.exited).toBe(0);
    expect([...answers.keys()].sort()).toEqual(['200 canceled', '503 DRAINING']);
    expect(refused).toBe(CONNECTIONS);
    expect(sent).toBeGreaterThan(3 * CONNECTIONS);
    expect(dyn.activeSessions()).toBe(0);
    expect(logouts()).toBe(1);
    expect(child.lines.some((l) => l.msg === 'stopped')).toBe(true);
  }, 60_000);
});

describe('a grace shorter than the cancels still running', () => {
  it('answers each caller with a 504 body at the cut-off and logs every session out', async () => {
    const child = await spawnGateway(
      writeConfig(configWith({ shutdownGraceMs: 800 }, { maxSessions: 3 })),
    );
    gw = child;
    const warning = await child.waitForLine((l) => String(l.msg).startsWith('server.shutdown'));
    expect(warning).toMatchObject({ shutdownGraceMs: 800, longestDeadlineMs: 15000 });
    const slow = [2001, 2002, 2003];
    for (const id of slow) dyn.setBehaviour(id, { kind: 'slow', delayMs: 20_000 });
    // Three hold the three sessions; two more wait for one.
    const callers = [...slow, 2004, 2005].map((taskId) =>
      postJson(`${child.url}/cancel`, { target: 'dns', taskId }),
    );
    await dyn.waitUntil(
      (calls) =>
        calls.filter((c) => c.method === 'DELETE' && /\/task\//i.test(c.path)).length === 3,
    );
    child.child.kill('SIGTERM');
    const answers = await Promise.all(callers);
    for (const answer of answers) {
      expect(answer.status).toBe(504);
      expect(answer.body.outcome).toBe('timeout');
      expectUnifiedShape(answer.body, answer.status);
    }
    expect(await child.exited).toBe(0);
    expect(dyn.activeSessions()).toBe(0);
    expect(logouts()).toBe(3);
    expect(
      child.lines.some((l) => l.msg === 'drain grace over: cutting off the requests still running'),
    ).toBe(true);
  }, 30_000);
});
