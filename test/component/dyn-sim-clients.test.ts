import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { DEFAULT_IDLE_TIMEOUT_MS } from '../../src/simulators/http-util';
import { startDynRestSimulator, type DynRestSimulator } from '../../src/simulators/dyn-rest';
import { startDynSoapSimulator, type DynSoapSimulator } from '../../src/simulators/dyn-soap';
import { postJson, startTestGateway, type TestGateway } from '../helpers/gateway';
import { expectUnifiedShape } from '../helpers/shape';

/**
 * The simulators as clients written by others see them, and the gateway as a client of a server
 * that closes idle connections. The generic client is node:http on one keep-alive socket, driven
 * the way dyn-python drives Dyn: login, session check, `DELETE` with a `{}` body, then
 * 307 → wait → `GET Location` until the job is done.
 */

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  socket: Socket;
}

const sims: { close(): Promise<void> }[] = [];
const gateways: TestGateway[] = [];
const agents: Agent[] = [];

afterEach(async () => {
  for (const gw of gateways.splice(0)) await gw.close();
  for (const sim of sims.splice(0)) await sim.close();
  for (const agent of agents.splice(0)) agent.destroy();
});

async function restSim(options: Parameters<typeof startDynRestSimulator>[0] = {}) {
  const sim = await startDynRestSimulator(options);
  sims.push(sim);
  return sim;
}

async function soapSim(options: Parameters<typeof startDynSoapSimulator>[0] = {}) {
  const sim = await startDynSoapSimulator(options);
  sims.push(sim);
  return sim;
}

/** One keep-alive socket for every request, as dyn-python's one HTTPSConnection. */
function oneSocket(): Agent {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  agents.push(agent);
  return agent;
}

function send(
  agent: Agent,
  url: string,
  method: string,
  headers: Record<string, string>,
  body?: string,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    // Python's http.client sends a Content-Length with every body, a DELETE's included.
    const withLength =
      body === undefined
        ? headers
        : { ...headers, 'content-length': String(Buffer.byteLength(body)) };
    const req = httpRequest(url, { method, agent, headers: withLength }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text: Buffer.concat(chunks).toString('utf8'),
          socket: req.socket as Socket,
        });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** dyn-python's headers: JSON type, its API-Version, and the token once it has one. */
const dynPythonHeaders = (token?: string): Record<string, string> => ({
  'content-type': 'application/json',
  'api-version': 'current',
  ...(token === undefined ? {} : { 'auth-token': token }),
});

describe('the REST simulator, driven as dyn-python drives Dyn', () => {
  it('logs in, checks the session, cancels with a {} body and follows 307s on one socket', async () => {
    const sim = await restSim();
    sim.setBehaviour(39120953, { kind: 'redirect-job', polls: 1, pollAnswer: 'redirect' });
    const agent = oneSocket();
    const login = await send(
      agent,
      `${sim.baseUrl}/Session/`,
      'POST',
      dynPythonHeaders(),
      JSON.stringify({ customer_name: 'acme', user_name: 'api-user', password: 'sim-password' }),
    );
    expect(login.status).toBe(200);
    const token = (JSON.parse(login.text) as { data: { token: string } }).data.token;

    // dyn-python reads msgs[0]['INFO'] of the session check: an empty list crashed it.
    const check = await send(agent, `${sim.baseUrl}/Session/`, 'GET', dynPythonHeaders(token));
    const alive = JSON.parse(check.text) as {
      status: string;
      job_id: unknown;
      msgs: { INFO: string; ERR_CD: unknown }[];
    };
    expect(alive.status).toBe('success');
    expect(typeof alive.job_id).toBe('number');
    expect(alive.msgs[0]).toMatchObject({
      INFO: 'isalive: User session is still active',
      ERR_CD: null,
    });
    expect(alive.msgs[0]?.INFO.includes('login:')).toBe(false);

    const cancel = await send(
      agent,
      `${sim.baseUrl}/Task/39120953`,
      'DELETE',
      dynPythonHeaders(token),
      '{}',
    );
    expect(cancel.status).toBe(307);
    expect(cancel.headers['content-type']).toBe('text/html');
    let location = cancel.headers.location;
    expect(location).toMatch(/^\/REST\/Job\/\d+$/);
    expect(cancel.text).toBe(location);

    // dyn-python waits between polls. The socket must survive that: no Keep-Alive hint, and the
    // server keeps idle connections far longer than the 10 s it waits (the idle closing itself
    // is shown below with a short configured timeout).
    for (const answer of [login, check, cancel]) {
      expect(answer.headers['keep-alive']).toBeUndefined();
      expect(answer.headers.connection).toBe('keep-alive');
    }
    expect(sim.server.timeout).toBe(DEFAULT_IDLE_TIMEOUT_MS);
    expect(DEFAULT_IDLE_TIMEOUT_MS).toBeGreaterThan(10_000);
    expect(cancel.socket.destroyed).toBe(false);

    let poll: Answer;
    let polls = 0;
    do {
      poll = await send(agent, `${sim.url}${String(location)}`, 'GET', dynPythonHeaders(token));
      location = poll.headers.location ?? location;
      polls++;
    } while (poll.status === 307 && polls < 5);
    expect(polls).toBe(2);
    expect(poll.status).toBe(200);
    expect(JSON.parse(poll.text)).toMatchObject({
      status: 'success',
      data: { task_id: '39120953', status: 'canceled' },
    });

    // Every request went over the one connection.
    expect(new Set(sim.calls.map((c) => c.connection))).toEqual(new Set([1]));
    expect(sim.calls.map((c) => c.reused)).toEqual([false, true, true, true, true]);
    expect(sim.callsTo('DELETE', '/REST/Task/')[0]?.body).toBe('{}');
  });

  it("answers the keep-alive (PUT /REST/Session/) with Dyn's message", async () => {
    const sim = await restSim();
    const agent = oneSocket();
    const login = await send(
      agent,
      `${sim.baseUrl}/Session/`,
      'POST',
      dynPythonHeaders(),
      JSON.stringify({ customer_name: 'acme', user_name: 'api-user', password: 'sim-password' }),
    );
    const token = (JSON.parse(login.text) as { data: { token: string } }).data.token;
    const kept = await send(agent, `${sim.baseUrl}/SESSION/`, 'PUT', dynPythonHeaders(token));
    expect(JSON.parse(kept.text)).toMatchObject({
      status: 'success',
      data: {},
      job_id: expect.any(Number),
      msgs: [{ INFO: 'keepalive: User session extended', ERR_CD: null, LVL: 'INFO' }],
    });
  });

  it('closes a connection idle for longer than its configured idle timeout', async () => {
    const sim = await restSim({ idleTimeoutMs: 50 });
    const agent = oneSocket();
    const answer = await send(agent, `${sim.baseUrl}/Session/`, 'GET', dynPythonHeaders('x'));
    expect(answer.headers['keep-alive']).toBeUndefined();
    const { socket } = answer;
    if (!socket.destroyed) await new Promise((resolve) => socket.once('close', resolve));
    expect(socket.destroyed).toBe(true);
    expect(sim.server.timeout).toBe(50);
  });

  it('answers a request without a token with data: null and job_id: null (go-dynect #3)', async () => {
    const sim = await restSim();
    const answer = await send(oneSocket(), `${sim.baseUrl}/Session/`, 'DELETE', {
      'content-type': 'application/json',
      'auth-token': '',
    });
    expect(answer.status).toBe(404);
    expect(JSON.parse(answer.text)).toEqual({
      status: 'failure',
      data: null,
      job_id: null,
      msgs: [
        {
          INFO: 'token: required field missing',
          SOURCE: 'API-A',
          ERR_CD: 'MISSING_DATA',
          LVL: 'ERROR',
        },
      ],
    });
  });

  it('answers a 429 with the status alone by default, and Retry-After only when scripted', async () => {
    const sim = await restSim();
    sim.setBehaviour(1, { kind: 'rate-limited' });
    sim.setBehaviour(2, { kind: 'rate-limited', retryAfterSeconds: 5 });
    const agent = oneSocket();
    const login = await send(
      agent,
      `${sim.baseUrl}/Session/`,
      'POST',
      dynPythonHeaders(),
      JSON.stringify({ customer_name: 'acme', user_name: 'api-user', password: 'sim-password' }),
    );
    const token = (JSON.parse(login.text) as { data: { token: string } }).data.token;
    const plain = await send(agent, `${sim.baseUrl}/Task/1/`, 'DELETE', dynPythonHeaders(token));
    expect(plain.status).toBe(429);
    expect(plain.text).toBe('');
    expect(plain.headers['retry-after']).toBeUndefined();
    const told = await send(agent, `${sim.baseUrl}/Task/2/`, 'DELETE', dynPythonHeaders(token));
    expect(told.status).toBe(429);
    expect(told.headers['retry-after']).toBe('5');
  });

  it('sends a scripted answer chunked, without Content-Length, as the 2011 captures came', async () => {
    const sim = await restSim();
    sim.setBehaviour(3, { kind: 'chunked' });
    const agent = oneSocket();
    const login = await send(
      agent,
      `${sim.baseUrl}/Session/`,
      'POST',
      dynPythonHeaders(),
      JSON.stringify({ customer_name: 'acme', user_name: 'api-user', password: 'sim-password' }),
    );
    const token = (JSON.parse(login.text) as { data: { token: string } }).data.token;
    const answer = await send(agent, `${sim.baseUrl}/Task/3/`, 'DELETE', dynPythonHeaders(token));
    expect(answer.headers['transfer-encoding']).toBe('chunked');
    expect(answer.headers['content-length']).toBeUndefined();
    expect(JSON.parse(answer.text)).toMatchObject({ status: 'success', data: { task_id: '3' } });
  });
});

describe('the SOAP simulator, driven as other SOAP stacks write requests', () => {
  const login = (wrapper: string, declarations = ''): string =>
    '<?xml version="1.0" encoding="utf-8"?>' +
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" ' +
    `xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"${declarations}><soap:Body>` +
    wrapper.replace(
      '{children}',
      '<fault_incompat xmlns="">1</fault_incompat><user_name xmlns="">api-user</user_name>' +
        '<customer_name xmlns="">acme</customer_name><password xmlns="">sim-password</password>',
    ) +
    '</soap:Body></soap:Envelope>';
  const post = (sim: DynSoapSimulator, body: string): Promise<Answer> =>
    send(
      oneSocket(),
      sim.endpoint,
      'POST',
      { 'content-type': 'text/xml; charset=utf-8', soapaction: '"https://api2.dynect.net/SOAP/"' },
      body,
    );

  it.each([
    [
      "a default namespace on the body element (.NET's XmlSerializer)",
      login(
        '<SessionLoginRequest xmlns="https://api2.dynect.net/wsdl/3.7.16/Dynect/">{children}</SessionLoginRequest>',
      ),
    ],
    [
      'a prefix declared on the body element',
      login(
        '<d:SessionLoginRequest xmlns:d="https://api2.dynect.net/wsdl/2.3.1/Dynect/">{children}</d:SessionLoginRequest>',
      ),
    ],
    [
      'a prefix declared on the Envelope (node-soap, suds)',
      login(
        '<tns:SessionLoginRequest>{children}</tns:SessionLoginRequest>',
        ' xmlns:tns="https://api2.dynect.net/wsdl/3.7.16/Dynect/"',
      ),
    ],
  ])('accepts %s', async (_form, body) => {
    const sim = await soapSim();
    const answer = await post(sim, body);
    expect(answer.status).toBe(200);
    expect(answer.text).toContain('<status>success</status>');
    expect(answer.text).toMatch(/<token>[A-Za-z0-9+/=]{100,}<\/token>/);
  });

  it('refuses a body element in a namespace that is not Dynect', async () => {
    const sim = await soapSim();
    const answer = await post(
      sim,
      login('<SessionLoginRequest xmlns="urn:not-dyn">{children}</SessionLoginRequest>'),
    );
    expect(answer.status).toBe(500);
    expect(answer.text).toContain('not in a Dynect namespace');
  });
});

describe('the gateway against servers that close connections', () => {
  const account = {
    customerName: 'acme',
    userName: 'api-user',
    password: 'sim-password',
    rateLimitPerSecond: 10_000,
    // One attempt: whatever is retried here is retried below the policies.
    retry: { attempts: 1 },
    // One pooled connection: the cancel after the login reuses the login's.
    maxConcurrent: 1,
  };

  async function gatewayFor(rest: DynRestSimulator, soap?: DynSoapSimulator) {
    const gw = await startTestGateway({
      providers: {
        'dns-rest': { type: 'dyn-rest', baseUrl: rest.baseUrl, ...account },
        ...(soap === undefined
          ? {}
          : { 'dns-soap': { type: 'dyn-soap', endpoint: soap.endpoint, ...account } }),
      },
      routes: {
        rest: { provider: 'dns-rest' },
        ...(soap === undefined ? {} : { soap: { provider: 'dns-soap' } }),
      },
    });
    gateways.push(gw);
    return gw;
  }
  const cancel = async (gw: TestGateway, target: string, taskId: number) => {
    const res = await postJson(`${gw.url}/cancel`, { target, taskId });
    expectUnifiedShape(res.body, res.status);
    return res;
  };

  it('keeps working after the server closed its idle connections', async () => {
    const sim = await restSim({ idleTimeoutMs: 50 });
    const closed: Promise<void>[] = [];
    sim.server.on('connection', (socket: Socket) => {
      closed.push(
        new Promise((resolve) => {
          socket.once('close', () => {
            resolve();
          });
        }),
      );
    });
    const gw = await gatewayFor(sim);
    expect((await cancel(gw, 'rest', 1)).status).toBe(200);
    // The server closes the gateway's idle socket; the next cancel opens a new one.
    await Promise.all(closed);
    const res = await cancel(gw, 'rest', 2);
    expect(res.status).toBe(200);
    expect(res.body.attempts).toHaveLength(1);
    const [first, second] = [sim.calls[0]?.connection, sim.callsTo('DELETE', '/REST/Task/2/')[0]];
    expect(second?.connection).not.toBe(first);
    expect(second?.reused).toBe(false);
  });

  it.each(['rest', 'soap'] as const)(
    '%s: sends a request again on a new connection when a reused one closed before any answer',
    async (transport) => {
      const rest = await restSim();
      const soap = await soapSim();
      const gw = await gatewayFor(rest, soap);
      const sim = transport === 'rest' ? rest : soap;
      sim.setBehaviour(11, { kind: 'drop-if-reused' });
      // The login's connection is idle in the pool; the cancel reuses it and the server drops it.
      const res = await cancel(gw, transport, 11);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ outcome: 'canceled', task: { id: '11' } });
      expect(res.body.attempts).toHaveLength(1);
      const sent =
        transport === 'rest'
          ? rest.callsTo('DELETE', '/REST/Task/11/')
          : soap.callsTo('CancelTask');
      expect(sent).toHaveLength(2);
      expect(sent[0]?.reused).toBe(true);
      expect(sent[1]?.connection).not.toBe(sent[0]?.connection);
    },
  );

  it('does not send again when the connection closes after the answer began', async () => {
    const sim = await restSim();
    sim.setBehaviour(12, { kind: 'reset-mid' });
    const gw = await gatewayFor(sim);
    const res = await cancel(gw, 'rest', 12);
    expect(res.status).toBe(502);
    expect(res.body.error.code).toBe('UPSTREAM_BAD_RESPONSE');
    expect(sim.callsTo('DELETE', '/REST/Task/12/')).toHaveLength(1);
  });
});
