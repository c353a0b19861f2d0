import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { DynBehaviour } from '../../src/simulators/dyn-backend';
import { startDynRestSimulator, type DynRestSimulator } from '../../src/simulators/dyn-rest';
import { startDynSoapSimulator, type DynSoapSimulator } from '../../src/simulators/dyn-soap';
import {
  startMethodcallSimulator,
  type MethodcallBehaviour,
  type MethodcallSimulator,
} from '../../src/simulators/methodcall';
import { postJson, startTestGateway, type TestGateway } from '../helpers/gateway';
import { closedPort } from '../helpers/net';
import { expectUnifiedShape } from '../helpers/shape';

/**
 * The fault matrix (docs/testing.md): every hostile or broken upstream, for every provider
 * type, gives the expected unified outcome within the deadline, without an unhandled rejection,
 * and the gateway keeps serving. `undefined` cells do not apply to that protocol.
 */
type Expect = [outcome: string, code: string];
interface Row {
  fault: string;
  methodcall?: { behaviour: MethodcallBehaviour; expect: Expect };
  dyn?: { behaviour: DynBehaviour; expect: Expect; soapExpect?: Expect };
}

const BAD: Expect = ['upstream_error', 'UPSTREAM_BAD_RESPONSE'];
const ROWS: Row[] = [
  {
    fault: 'connection reset before any answer',
    methodcall: { behaviour: { kind: 'destroy' }, expect: ['unavailable', 'UPSTREAM_UNREACHABLE'] },
    dyn: { behaviour: { kind: 'reset' }, expect: ['unavailable', 'UPSTREAM_UNREACHABLE'] },
  },
  {
    fault: 'connection reset mid-response',
    methodcall: { behaviour: { kind: 'destroy-mid' }, expect: BAD },
    dyn: { behaviour: { kind: 'reset-mid' }, expect: BAD },
  },
  {
    fault: 'slower than the deadline',
    methodcall: {
      behaviour: { kind: 'slow', delayMs: 10_000 },
      expect: ['timeout', 'UPSTREAM_TIMEOUT'],
    },
    dyn: { behaviour: { kind: 'slow', delayMs: 10_000 }, expect: ['timeout', 'UPSTREAM_TIMEOUT'] },
  },
  {
    fault: 'HTTP 500 with garbage',
    methodcall: { behaviour: { kind: 'http500' }, expect: ['unavailable', 'UPSTREAM_UNAVAILABLE'] },
    dyn: { behaviour: { kind: 'garbage-500' }, expect: ['unavailable', 'UPSTREAM_UNAVAILABLE'] },
  },
  {
    fault: 'HTTP 503',
    methodcall: { behaviour: { kind: 'http503' }, expect: ['unavailable', 'UPSTREAM_UNAVAILABLE'] },
    dyn: { behaviour: { kind: 'unavailable' }, expect: ['unavailable', 'UPSTREAM_UNAVAILABLE'] },
  },
  {
    fault: 'malformed body',
    methodcall: { behaviour: { kind: 'malformed' }, expect: BAD },
    dyn: { behaviour: { kind: 'malformed' }, expect: BAD },
  },
  {
    fault: 'empty body',
    methodcall: { behaviour: { kind: 'empty' }, expect: BAD },
    dyn: { behaviour: { kind: 'empty' }, expect: BAD },
  },
  {
    fault: 'wrong content type',
    methodcall: { behaviour: { kind: 'wrong-content-type' }, expect: BAD },
    dyn: { behaviour: { kind: 'wrong-content-type' }, expect: BAD },
  },
  {
    fault: 'truncated body',
    methodcall: { behaviour: { kind: 'truncated' }, expect: BAD },
    dyn: { behaviour: { kind: 'truncated' }, expect: BAD },
  },
  {
    fault: 'a 10 MB answer',
    methodcall: {
      behaviour: { kind: 'oversized' },
      expect: ['upstream_error', 'UPSTREAM_RESPONSE_TOO_LARGE'],
    },
    dyn: { behaviour: { kind: 'huge' }, expect: ['upstream_error', 'UPSTREAM_RESPONSE_TOO_LARGE'] },
  },
  {
    fault: 'DOCTYPE entity-expansion bomb',
    methodcall: { behaviour: { kind: 'doctype-bomb' }, expect: BAD },
    dyn: { behaviour: { kind: 'doctype-bomb' }, expect: BAD },
  },
  {
    fault: 'XXE (external entity)',
    methodcall: { behaviour: { kind: 'xxe' }, expect: BAD },
    dyn: { behaviour: { kind: 'xxe' }, expect: BAD },
  },
  {
    fault: 'deeply nested document',
    methodcall: { behaviour: { kind: 'deep-nesting' }, expect: BAD },
    dyn: { behaviour: { kind: 'deep-nesting' }, expect: BAD },
  },
  {
    fault: 'job that never finishes (307 / incomplete loop)',
    dyn: { behaviour: { kind: 'job-never-finishes' }, expect: ['timeout', 'JOB_NOT_CONFIRMED'] },
  },
  {
    fault: 'error code never documented',
    methodcall: {
      behaviour: { kind: 'fault', code: 1999 },
      expect: ['upstream_error', 'UPSTREAM_FAULT'],
    },
    dyn: { behaviour: { kind: 'unknown-code' }, expect: ['upstream_error', 'UPSTREAM_FAULT'] },
  },
];

const ROUTE_TIMEOUT_MS = 1_000;
const MARGIN_MS = 500;
let methodcall: MethodcallSimulator;
let rest: DynRestSimulator;
let soap: DynSoapSimulator;
let gateway: TestGateway;
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  methodcall = await startMethodcallSimulator();
  rest = await startDynRestSimulator();
  soap = await startDynSoapSimulator();
  const down = await closedPort();
  // The matrix is about mapping under faults: one attempt, and a breaker that never opens here.
  const plain = { retry: { attempts: 1 }, circuitBreaker: { failureThreshold: 1000 } };
  const dyn = {
    customerName: 'acme',
    userName: 'api-user',
    password: 'sim-password',
    jobPollIntervalMs: 20,
    jobTimeoutMs: 400,
    rateLimitPerSecond: 10_000,
    ...plain,
  };
  gateway = await startTestGateway({
    providers: {
      methodcall: { type: 'methodcall', url: methodcall.taskUrl, ...plain },
      'dyn-rest': { type: 'dyn-rest', baseUrl: rest.baseUrl, ...dyn },
      'dyn-soap': { type: 'dyn-soap', endpoint: soap.endpoint, ...dyn },
      'methodcall-down': { type: 'methodcall', url: `http://127.0.0.1:${down}/t`, ...plain },
      'dyn-rest-down': { type: 'dyn-rest', baseUrl: `http://127.0.0.1:${down}/REST`, ...dyn },
      'dyn-soap-down': { type: 'dyn-soap', endpoint: `http://127.0.0.1:${down}/SOAP/`, ...dyn },
    },
    routes: Object.fromEntries(
      [
        'methodcall',
        'dyn-rest',
        'dyn-soap',
        'methodcall-down',
        'dyn-rest-down',
        'dyn-soap-down',
      ].map((p) => [p, { provider: p, timeoutMs: ROUTE_TIMEOUT_MS }]),
    ),
  });
});

afterAll(async () => {
  await gateway.close();
  await Promise.all([methodcall.close(), rest.close(), soap.close()]);
  process.off('unhandledRejection', onUnhandled);
});

let taskId = 7_000;

async function check(target: string, expected: Expect): Promise<void> {
  const started = performance.now();
  const res = await postJson(`${gateway.url}/cancel`, { target, taskId });
  const elapsed = performance.now() - started;
  expectUnifiedShape(res.body, res.status);
  expect([res.body.outcome, res.body.error?.code]).toEqual(expected);
  expect(elapsed).toBeLessThan(ROUTE_TIMEOUT_MS + MARGIN_MS);
}

describe.each(['methodcall', 'dyn-rest', 'dyn-soap'] as const)('%s', (provider) => {
  it('upstream down (connection refused) → unavailable UPSTREAM_UNREACHABLE', async () => {
    await check(`${provider}-down`, ['unavailable', 'UPSTREAM_UNREACHABLE']);
  });

  const rows = ROWS.filter((r) => (provider === 'methodcall' ? r.methodcall : r.dyn) !== undefined);
  it.each(rows)('$fault', async (row) => {
    taskId++;
    if (provider === 'methodcall') {
      methodcall.setBehaviour(taskId, row.methodcall!.behaviour);
      await check(provider, row.methodcall!.expect);
    } else {
      (provider === 'dyn-rest' ? rest : soap).setBehaviour(taskId, row.dyn!.behaviour);
      await check(
        provider,
        provider === 'dyn-soap' ? (row.dyn!.soapExpect ?? row.dyn!.expect) : row.dyn!.expect,
      );
    }
  });
});

it('sent User-Agent cancel-gateway/<version> on every upstream call of every protocol', () => {
  const { version } = JSON.parse(
    readFileSync(path.join(__dirname, '../../package.json'), 'utf8'),
  ) as { version: string };
  const calls = [...methodcall.calls, ...rest.calls, ...soap.calls];
  expect(methodcall.calls.length).toBeGreaterThan(0);
  expect(rest.calls.length).toBeGreaterThan(0);
  expect(soap.calls.length).toBeGreaterThan(0);
  expect(new Set(calls.map((c) => c.headers['user-agent']))).toEqual(
    new Set([`cancel-gateway/${version}`]),
  );
});

it('still serves after the whole matrix, with no unhandled rejection', async () => {
  expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
  taskId++;
  await check('methodcall', ['canceled', undefined as unknown as string]);
  expect(unhandled).toEqual([]);
});
