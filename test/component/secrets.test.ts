import { startDynRestSimulator, type DynRestSimulator } from '../../src/simulators/dyn-rest';
import { startDynSoapSimulator, type DynSoapSimulator } from '../../src/simulators/dyn-soap';
import {
  startMethodcallSimulator,
  type MethodcallSimulator,
} from '../../src/simulators/methodcall';
import { startTestGateway, type TestGateway } from '../helpers/gateway';

/**
 * Passwords, tokens, API keys and Authorization never appear in any log line (at
 * any level: the capture logs at debug) nor in any response, across a full scenario set.
 */
const DYN_PASSWORD = 'Dyn-Pa55word-Zq81xX';
const WRONG_PASSWORD = 'Wr0ng-Pa55word-Kk27yY';
const API_KEY = 'ak-Caller-Key-Ww93vV-0123456789';
const OTHER_KEY = 'ak-Unknown-Key-Tt44uU-0123456789';

let methodcall: MethodcallSimulator;
let rest: DynRestSimulator;
let soap: DynSoapSimulator;
let gateway: TestGateway;
const responses: string[] = [];

beforeAll(async () => {
  methodcall = await startMethodcallSimulator();
  rest = await startDynRestSimulator({ password: DYN_PASSWORD });
  soap = await startDynSoapSimulator({ password: DYN_PASSWORD });
  const dyn = {
    customerName: 'acme',
    userName: 'api-user',
    password: '${DYN_PASSWORD}',
    jobPollIntervalMs: 20,
    rateLimitPerSecond: 10_000,
  };
  gateway = await startTestGateway(
    {
      providers: {
        wh: { type: 'methodcall', url: methodcall.taskUrl },
        rest: { type: 'dyn-rest', baseUrl: rest.baseUrl, ...dyn },
        soap: { type: 'dyn-soap', endpoint: soap.endpoint, ...dyn },
        wrong: { type: 'dyn-rest', baseUrl: rest.baseUrl, ...dyn, password: WRONG_PASSWORD },
      },
      routes: {
        warehouse: { provider: 'wh' },
        dns: { provider: 'rest' },
        'dns-soap': { provider: 'soap' },
        'dns-wrong': { provider: 'wrong' },
      },
      auth: { apiKeys: [{ id: 'caller', key: '${API_KEY}' }] },
    },
    { DYN_PASSWORD, API_KEY },
  );
});

afterAll(async () => {
  await Promise.all([methodcall.close(), rest.close(), soap.close()]);
});

async function call(
  path: string,
  init: { method?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<void> {
  const res = await fetch(`${gateway.url}${path}`, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers: { 'content-type': 'application/json', ...init.headers },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  responses.push(`${res.status} ${JSON.stringify([...res.headers])} ${await res.text()}`);
}

it('never shows a password, token or API key in any log line or response', async () => {
  const key = { authorization: `Bearer ${API_KEY}` };
  rest.setBehaviour(2, { kind: 'token-expired-once' });
  soap.setBehaviour(3, { kind: 'token-expired-once' });
  rest.setBehaviour(4, { kind: 'redirect-job' });
  soap.setBehaviour(5, { kind: 'incomplete-job' });
  rest.setBehaviour(6, { kind: 'permission-denied' });
  for (const [target, taskId] of [
    ['warehouse', 1],
    ['dns', 2],
    ['dns-soap', 3],
    ['dns', 4],
    ['dns-soap', 5],
    ['dns', 6],
    ['dns-wrong', 7],
    ['dns', 2],
  ] as const) {
    await call('/cancel', { body: { target, taskId }, headers: key });
  }
  await call('/cancel', {
    body: { target: 'dns', taskId: 8 },
    headers: { 'x-api-key': OTHER_KEY },
  });
  await call('/cancel', {
    body: { target: 'dns', taskId: 9 },
    headers: { authorization: `Basic ${API_KEY}` },
  });
  await call('/cancel', {
    body: { target: 'dns', taskId: 10, reason: 'rotation test' },
    headers: { ...key, 'idempotency-key': 'secret-scenario-1' },
  });
  await call('/cancel/batch', {
    body: {
      items: [
        { target: 'dns', taskId: 11 },
        { target: 'dns-soap', taskId: 12 },
      ],
    },
    headers: key,
  });
  for (const path of [
    '/tasks/dns/13',
    '/tasks/dns-soap/14',
    '/tasks/warehouse/15',
    '/routes',
    '/readyz',
    '/metrics',
    '/openapi.json',
    '/healthz',
    '/nope',
  ]) {
    await call(path, { headers: key });
  }
  await gateway.close(); // logout lines, drain lines

  const tokens = [
    ...new Set(
      [
        ...rest.calls.map((c) => c.headers['auth-token']),
        ...soap.calls.map((c) => c.args.token),
      ].filter((t): t is string => typeof t === 'string' && t.length > 20),
    ),
  ];
  expect(tokens.length).toBeGreaterThanOrEqual(4);
  expect(gateway.logs.raw.some((l) => l.includes('"level":"debug"'))).toBe(true);
  expect(responses).toHaveLength(21);
  const secrets = [
    DYN_PASSWORD,
    WRONG_PASSWORD,
    API_KEY,
    OTHER_KEY,
    ...tokens.map((t) => t.slice(0, 24)),
  ];
  for (const text of [...gateway.logs.raw, ...responses]) {
    for (const secret of secrets) expect(text).not.toContain(secret);
  }
});
