import { readFileSync } from 'node:fs';
import path from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import { startDynRestSimulator, type DynRestSimulator } from '../../src/simulators/dyn-rest';
import {
  DYN_SOAP_NAMESPACE,
  startDynSoapSimulator,
  type DynSoapSimulator,
  type RecordedSoapCall,
} from '../../src/simulators/dyn-soap';
import { postJson, startTestGateway, type TestGateway } from '../helpers/gateway';
import { closedPort } from '../helpers/net';
import { expectUnifiedShape } from '../helpers/shape';

const PASSWORD = 'soap-sim-password';
const VERSION = (
  JSON.parse(readFileSync(path.join(__dirname, '../../package.json'), 'utf8')) as {
    version: string;
  }
).version;

let soap: DynSoapSimulator;
let rest: DynRestSimulator;
let gateway: TestGateway;
const answers: string[] = [];

beforeEach(async () => {
  soap = await startDynSoapSimulator({ password: PASSWORD });
  rest = await startDynRestSimulator({ password: PASSWORD });
  const down = await closedPort();
  const account = {
    customerName: 'acme',
    userName: 'api-user',
    password: '${DYN_PASSWORD}',
    jobPollIntervalMs: 20,
    jobTimeoutMs: 400,
    rateLimitPerSecond: 10_000,
  };
  gateway = await startTestGateway(
    {
      server: { requestTimeoutMs: 3000 },
      providers: {
        'dns-soap': {
          type: 'dyn-soap',
          wsdl: 'wsdl/dynect.wsdl',
          endpoint: soap.endpoint,
          ...account,
        },
        'dns-soap-bad-creds': {
          type: 'dyn-soap',
          endpoint: soap.endpoint,
          ...account,
          password: 'wrong-password',
        },
        'dns-rest': { type: 'dyn-rest', baseUrl: rest.baseUrl, ...account },
        'dns-rest-down': { type: 'dyn-rest', baseUrl: `http://127.0.0.1:${down}/REST`, ...account },
        'dns-soap-down': {
          type: 'dyn-soap',
          endpoint: `http://127.0.0.1:${down}/SOAP/`,
          ...account,
        },
      },
      routes: {
        dns: { provider: 'dns-soap' },
        'dns-fast': { provider: 'dns-soap', timeoutMs: 300 },
        'dns-bad-creds': { provider: 'dns-soap-bad-creds' },
        'rest-then-soap': { provider: 'dns-rest', fallback: ['dns-soap'] },
        'rest-down-then-soap': { provider: 'dns-rest-down', fallback: ['dns-soap'] },
        'soap-then-rest': { provider: 'dns-soap', fallback: ['dns-rest'] },
        'soap-down-then-rest': { provider: 'dns-soap-down', fallback: ['dns-rest'] },
      },
    },
    { DYN_PASSWORD: PASSWORD },
  );
  answers.length = 0;
});

afterEach(async () => {
  await gateway.close();
  await soap.close();
  await rest.close();
});

async function cancel(
  target: string,
  taskId: string | number,
  headers: Record<string, string> = {},
) {
  const res = await postJson(`${gateway.url}/cancel`, { target, taskId }, headers);
  answers.push(JSON.stringify(res.body));
  expectUnifiedShape(res.body, res.status);
  return res;
}

const tokenOf = (call: RecordedSoapCall | undefined): string | undefined => call?.args.token;

describe('the wire', () => {
  it('sends the documented CancelTask envelope: namespace, unqualified children in order', async () => {
    const res = await cancel('dns', '39120953', { 'x-request-id': 'soap-wire-1' });
    expect(res.status).toBe(200);
    const [call] = soap.callsTo('CancelTask');
    expect(call).toBeDefined();
    const token = tokenOf(call) ?? '';
    expect(token).toMatch(/^[A-Za-z0-9+/=]{100,}$/);
    expect(call?.body).toBe(
      '<?xml version="1.0" encoding="utf-8"?>' +
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" ' +
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"  ' +
        `xmlns:tns="${DYN_SOAP_NAMESPACE}">` +
        '<soap:Body><tns:CancelTaskRequest>' +
        `<token>${token}</token><fault_incompat>1</fault_incompat><task_id>39120953</task_id>` +
        '</tns:CancelTaskRequest></soap:Body></soap:Envelope>',
    );
    expect(call?.path).toBe('/SOAP/');
    expect(call?.headers['content-type']).toBe('text/xml; charset=utf-8');
    expect(call?.headers.soapaction).toBe('"https://api2.dynect.net/SOAP/"');
    expect(call?.headers['x-request-id']).toBe('soap-wire-1');
    // node-soap's own `node-soap/<version>` is replaced on every call, the login included.
    for (const sent of soap.calls)
      expect(sent.headers['user-agent']).toBe(`cancel-gateway/${VERSION}`);
  });

  it('logs in with fault_incompat first and the account in WSDL order', async () => {
    await cancel('dns', 1);
    const [login] = soap.callsTo('SessionLogin');
    const parsed = new XMLParser({ removeNSPrefix: true, preserveOrder: true }).parse(
      login?.body ?? '',
    ) as { Envelope?: unknown }[];
    const text = JSON.stringify(parsed);
    const order = ['fault_incompat', 'user_name', 'customer_name', 'password'].map((k) =>
      text.indexOf(`"${k}"`),
    );
    expect(order.every((pos, i) => pos > 0 && (i === 0 || pos > (order[i - 1] ?? 0)))).toBe(true);
    expect(login?.args).toEqual({
      fault_incompat: '1',
      user_name: 'api-user',
      customer_name: 'acme',
      password: PASSWORD,
    });
  });

  it('sends fault_incompat 1 on every request, logout and job polls included', async () => {
    soap.setBehaviour(2, { kind: 'incomplete-job', polls: 1 });
    await cancel('dns', 2);
    await gateway.close();
    const operations = soap.calls.map((c) => c.operation);
    expect(operations).toEqual([
      'SessionLoginRequest',
      'CancelTaskRequest',
      'GetJobRequest',
      'GetJobRequest',
      'SessionLogoutRequest',
    ]);
    for (const call of soap.calls) expect(call.args.fault_incompat).toBe('1');
  });
});

describe('sessions and jobs', () => {
  it('uses one login for many requests', async () => {
    for (let id = 10; id < 16; id++) expect((await cancel('dns', id)).status).toBe(200);
    expect(soap.callsTo('SessionLogin')).toHaveLength(1);
    expect(new Set(soap.callsTo('CancelTask').map(tokenOf)).size).toBe(1);
  });

  it('gives concurrent requests their own sessions', async () => {
    for (const id of [21, 22, 23]) soap.setBehaviour(id, { kind: 'hold' });
    const pending = Promise.all([21, 22, 23].map((id) => cancel('dns', id)));
    await soap.waitUntil(() => soap.callsTo('CancelTask').length === 3);
    soap.releaseHeld();
    const results = await pending;
    expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(new Set(soap.callsTo('CancelTask').map(tokenOf)).size).toBe(3);
    expect(soap.callsTo('SessionLogin')).toHaveLength(3);
  });

  it('re-logs in exactly once after an expired token', async () => {
    soap.setBehaviour(30, { kind: 'token-expired-once' });
    expect((await cancel('dns', 30)).status).toBe(200);
    expect(soap.callsTo('SessionLogin')).toHaveLength(2);
    const cancels = soap.callsTo('CancelTask');
    expect(cancels).toHaveLength(2);
    expect(tokenOf(cancels[0])).not.toBe(tokenOf(cancels[1]));
  });

  it('re-logs in after an expired token answered as an HTTP 500 Fault', async () => {
    soap.setFaultMode('always-fault');
    expect((await cancel('dns', 31)).status).toBe(200);
    soap.expireAllSessions();
    expect((await cancel('dns', 32)).status).toBe(200);
    expect(soap.callsTo('SessionLogin')).toHaveLength(2);
  });

  it('polls GetJob after incomplete and never sends CancelTask again', async () => {
    soap.setBehaviour(40, { kind: 'incomplete-job', polls: 2 });
    const res = await cancel('dns', 40);
    expect(res.status).toBe(200);
    expect(res.body.task).toMatchObject({ id: '40', status: 'canceled' });
    expect(soap.callsTo('CancelTask')).toHaveLength(1);
    const polls = soap.callsTo('GetJob');
    expect(polls).toHaveLength(3);
    const jobId = polls[0]?.args.job_id;
    expect(jobId).toMatch(/^\d+$/);
    for (const poll of polls) {
      expect(poll.args.job_id).toBe(jobId);
      expect(tokenOf(poll)).toBe(tokenOf(soap.callsTo('CancelTask')[0]));
    }
  });

  it('reports a job that never finishes as 504 JOB_NOT_CONFIRMED', async () => {
    soap.setBehaviour(41, { kind: 'job-never-finishes' });
    const res = await cancel('dns', 41);
    expect(res.status).toBe(504);
    expect(res.body.error.code).toBe('JOB_NOT_CONFIRMED');
    expect(soap.callsTo('CancelTask')).toHaveLength(1);
  });

  it('reports refused credentials as 502 without echoing them, and backs off', async () => {
    const first = await cancel('dns-bad-creds', 50);
    expect(first.status).toBe(502);
    expect(first.body.error.code).toBe('UPSTREAM_AUTH_FAILED');
    const second = await cancel('dns-bad-creds', 51);
    expect(second.status).toBe(502);
    expect(soap.callsTo('SessionLogin')).toHaveLength(1);
    expect(soap.callsTo('CancelTask')).toHaveLength(0);
  });

  it('logs out every session with SessionLogout on close', async () => {
    for (const id of [60, 61]) soap.setBehaviour(id, { kind: 'hold' });
    const pending = Promise.all([cancel('dns', 60), cancel('dns', 61)]);
    await soap.waitUntil(() => soap.callsTo('CancelTask').length === 2);
    soap.releaseHeld();
    await pending;
    expect(soap.activeSessions()).toBe(2);
    const tokens = new Set(soap.callsTo('CancelTask').map(tokenOf));
    await gateway.close();
    expect(new Set(soap.callsTo('SessionLogout').map(tokenOf))).toEqual(tokens);
    expect(soap.activeSessions()).toBe(0);
  });
});

describe('limits', () => {
  it('answers 504 at the route deadline and drops the connection of the slow call', async () => {
    soap.setBehaviour(70, { kind: 'slow', delayMs: 10_000 });
    const res = await cancel('dns-fast', 70);
    expect(res.status).toBe(504);
    expect(res.body.error.code).toBe('UPSTREAM_TIMEOUT');
    // The session that may still be cancelling is logged out, not reused.
    const slowToken = tokenOf(soap.callsTo('CancelTask')[0]);
    await soap.waitUntil(() => soap.callsTo('SessionLogout').some((c) => tokenOf(c) === slowToken));
    expect((await cancel('dns', 71)).status).toBe(200);
    expect(tokenOf(soap.callsTo('CancelTask')[1])).not.toBe(slowToken);
  });

  it('refuses an answer larger than maxResponseBytes', async () => {
    soap.setBehaviour(80, { kind: 'oversized' });
    const res = await cancel('dns', 80);
    expect(res.status).toBe(502);
    expect(res.body.error.code).toBe('UPSTREAM_RESPONSE_TOO_LARGE');
  });

  it('refuses a taskId Dyn cannot take without sending anything', async () => {
    const res = await cancel('dns', '0012');
    expect(res.status).toBe(400);
    expect(soap.calls).toHaveLength(0);
  });

  it('never shows the password or a token in a log line or a response', async () => {
    soap.setBehaviour(91, { kind: 'token-expired-once' });
    soap.setBehaviour(92, { kind: 'not-found' });
    await cancel('dns', 90);
    await cancel('dns', 91);
    await cancel('dns', 92);
    await cancel('dns-bad-creds', 93);
    await gateway.close();
    const tokens = [...new Set(soap.calls.map(tokenOf).filter((t) => t !== undefined))];
    expect(tokens.length).toBeGreaterThanOrEqual(2);
    for (const text of [...gateway.logs.raw, ...answers]) {
      expect(text).not.toContain(PASSWORD);
      expect(text).not.toContain('wrong-password');
      for (const token of tokens) expect(text).not.toContain(token.slice(0, 24));
    }
  });
});

describe('REST ⇄ SOAP fallback', () => {
  it('falls back to SOAP when REST is unreachable', async () => {
    const res = await cancel('rest-down-then-soap', 100);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      outcome: 'canceled',
      provider: 'dns-soap',
      protocol: 'dyn-soap',
    });
    // Refused connections are retried once (the cancel certainly did not happen), then SOAP.
    expect(res.body.attempts).toEqual([
      expect.objectContaining({ provider: 'dns-rest-down', outcome: 'unavailable' }),
      expect.objectContaining({ provider: 'dns-rest-down', outcome: 'unavailable' }),
      expect.objectContaining({ provider: 'dns-soap', outcome: 'canceled' }),
    ]);
    expect(soap.callsTo('CancelTask')).toHaveLength(1);
  });

  it('falls back to SOAP when REST answers 429, and keeps doing so while REST backs off', async () => {
    rest.setBehaviour(101, { kind: 'rate-limited', retryAfterSeconds: 30 });
    const res = await cancel('rest-then-soap', 101);
    expect(res.status).toBe(200);
    expect(res.body.attempts.map((a: { outcome: string }) => a.outcome)).toEqual([
      'rate_limited',
      'canceled',
    ]);
    const restCalls = rest.calls.length;
    const next = await cancel('rest-then-soap', 102);
    expect(next.status).toBe(200);
    expect(next.body.provider).toBe('dns-soap');
    expect(rest.calls.length).toBe(restCalls);
  });

  it('falls back to SOAP when REST answers 503', async () => {
    rest.setBehaviour(103, { kind: 'unavailable' });
    const res = await cancel('rest-then-soap', 103);
    expect(res.status).toBe(200);
    // A 503 is retried once on REST (not processed), then SOAP takes over.
    expect(res.body.attempts.map((a: { provider: string }) => a.provider)).toEqual([
      'dns-rest',
      'dns-rest',
      'dns-soap',
    ]);
    expect(rest.callsTo('DELETE', '/REST/Task/103/')).toHaveLength(2);
  });

  it('falls back to REST when SOAP is unreachable or unavailable', async () => {
    const down = await cancel('soap-down-then-rest', 104);
    expect(down.status).toBe(200);
    expect(down.body).toMatchObject({ provider: 'dns-rest', protocol: 'dyn-rest' });
    soap.setBehaviour(105, { kind: 'service-unavailable' });
    const unavailable = await cancel('soap-then-rest', 105);
    expect(unavailable.status).toBe(200);
    expect(unavailable.body.attempts.map((a: { outcome: string }) => a.outcome)).toEqual([
      'unavailable',
      'unavailable',
      'canceled',
    ]);
  });

  it('does not fall back after a business answer or a timeout', async () => {
    soap.setBehaviour(106, { kind: 'not-found' });
    const notFound = await cancel('soap-then-rest', 106);
    expect(notFound.status).toBe(404);
    expect(notFound.body.attempts).toHaveLength(1);
    expect(rest.callsTo('DELETE', '/REST/Task/')).toHaveLength(0);
  });
});
