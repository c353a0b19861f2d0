import fc from 'fast-check';
import { OUTCOME_HTTP_STATUS } from '../../src/core/outcome';
import { UnifiedResultSchema } from '../../src/core/result-schema';
import { classifyCancel, classifyLogin, readEnvelope } from '../../src/providers/dyn/mapping';
import { classifyAnswer, decodeResponse } from '../../src/providers/methodcall/xml';
import {
  startMethodcallSimulator,
  type MethodcallSimulator,
} from '../../src/simulators/methodcall';
import { startTestGateway, type TestGateway } from '../helpers/gateway';

/**
 * Property tests: whatever a caller sends and whatever an upstream answers, the gateway answers
 * in the unified shape with a contract status, never 500 for bad input, and nothing invalid
 * reaches an upstream; the decoders never throw.
 */
let sim: MethodcallSimulator;
let gateway: TestGateway;

beforeAll(async () => {
  sim = await startMethodcallSimulator();
  gateway = await startTestGateway({
    providers: {
      wh: {
        type: 'methodcall',
        url: sim.taskUrl,
        retry: { attempts: 1 },
        circuitBreaker: { failureThreshold: 1000 },
      },
    },
    routes: { warehouse: { provider: 'wh' } },
  });
});

afterAll(async () => {
  await gateway.close();
  await sim.close();
});

const STATUSES = new Set<number>([...Object.values(OUTCOME_HTTP_STATUS), 404, 405]);

/** Every id that reached the simulator is one the gateway may send: 1..2147483647. */
function expectOnlyValidIdsSent(): void {
  for (const call of sim.calls) {
    expect(call.taskId).toMatch(/^[1-9][0-9]{0,9}$/);
    expect(Number(call.taskId)).toBeLessThanOrEqual(2_147_483_647);
    expect(call.body).not.toMatch(/<!|&|task_id>[^<]*[^0-9<]/);
  }
}

async function send(body: string | Buffer, headers: Record<string, string>) {
  const res = await fetch(`${gateway.url}/cancel`, { method: 'POST', headers, body });
  const text = await res.text();
  return { status: res.status, text };
}

function expectContractAnswer(status: number, text: string): void {
  expect(STATUSES.has(status)).toBe(true);
  expect(status).not.toBe(500);
  const parsed = UnifiedResultSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`not the unified shape: ${text}`);
}

const jsonValue = fc.jsonValue({ maxDepth: 4 });
const taskIdLike = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.integer(),
  fc.double(),
  fc.bigInt().map(String),
  fc.constantFrom('0', '-1', '007', '1e3', ' 12', '12 ', '2147483648', '1/../x', '1<x/>', '1&amp;'),
  jsonValue,
);
const targetLike = fc.oneof(
  fc.string({ maxLength: 70 }),
  fc.constantFrom('warehouse', 'WAREHOUSE', '../warehouse', 'warehouse\u0000', '__proto__'),
  jsonValue,
);

describe('front door', () => {
  it('answers any JSON body with the unified shape and a contract status', async () => {
    await fc.assert(
      fc.asyncProperty(jsonValue, async (value) => {
        const { status, text } = await send(JSON.stringify(value), {
          'content-type': 'application/json',
        });
        expectContractAnswer(status, text);
      }),
      { numRuns: 150 },
    );
    expectOnlyValidIdsSent();
  });

  it('answers any target/taskId types with the unified shape; only valid ids go upstream', async () => {
    await fc.assert(
      fc.asyncProperty(
        targetLike,
        taskIdLike,
        fc.option(fc.dictionary(fc.string({ maxLength: 8 }), jsonValue, { maxKeys: 2 }), {
          nil: undefined,
        }),
        async (target, taskId, extra) => {
          const { status, text } = await send(JSON.stringify({ target, taskId, ...extra }), {
            'content-type': 'application/json',
          });
          expectContractAnswer(status, text);
        },
      ),
      { numRuns: 300 },
    );
    expectOnlyValidIdsSent();
  });

  it('answers random bytes and random headers without a 500', async () => {
    const headerName = fc.constantFrom(
      'x-request-id',
      'idempotency-key',
      'authorization',
      'x-api-key',
      'accept',
    );
    const headerValue = fc.string({ maxLength: 300 }).filter((v) => /^[\x20-\x7e]*$/.test(v));
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 400 }),
        fc.constantFrom('application/json', 'text/plain', 'application/json; charset=latin1', ''),
        fc.dictionary(headerName, headerValue, { maxKeys: 3 }),
        async (bytes, type, headers) => {
          const { status, text } = await send(Buffer.from(bytes), {
            ...headers,
            ...(type === '' ? {} : { 'content-type': type }),
          });
          expectContractAnswer(status, text);
        },
      ),
      { numRuns: 150 },
    );
    expectOnlyValidIdsSent();
  });
});

describe('decoders never throw', () => {
  const xmlish = fc.oneof(
    fc.string({ maxLength: 300 }),
    fc
      .array(
        fc.oneof(
          fc.constantFrom(
            '<response>',
            '</response>',
            '<params>',
            '</params>',
            '<params/>',
            '<fault>',
            '</fault>',
            '<code>',
            '</code>',
            '<?xml version="1.0"?>',
            '<!DOCTYPE x [<!ENTITY a "b">]>',
            '&a;',
            ']]>',
            '<![CDATA[',
            '<',
          ),
          fc.string({ maxLength: 10 }),
        ),
        { maxLength: 20 },
      )
      .map((parts) => parts.join('')),
  );

  it('methodcall: decodeResponse + classifyAnswer give an outcome for any text and status', () => {
    fc.assert(
      fc.property(xmlish, fc.integer({ min: 100, max: 599 }), (text, status) => {
        const outcome = classifyAnswer(status, decodeResponse(text));
        expect(typeof outcome.outcome).toBe('string');
      }),
      { numRuns: 2000 },
    );
  });

  it('Dyn: readEnvelope + classifyCancel/classifyLogin give an answer for any JSON value', () => {
    const msg = fc.record(
      {
        INFO: fc.oneof(fc.string(), fc.constantFrom('login: x', 'token: y'), jsonValue),
        ERR_CD: fc.oneof(
          fc.constantFrom('NOT_FOUND', 'INVALID_DATA', 'ILLEGAL_OPERATION', 'X', ''),
          fc.constant(null),
          jsonValue,
        ),
        LVL: fc.oneof(fc.constantFrom('ERROR', 'INFO', 'error'), jsonValue),
      },
      { requiredKeys: [] },
    );
    const envelope = fc.oneof(
      jsonValue,
      fc.record(
        {
          status: fc.oneof(fc.constantFrom('success', 'failure', 'incomplete'), jsonValue),
          data: jsonValue,
          job_id: fc.oneof(fc.integer(), fc.string(), jsonValue),
          msgs: fc.oneof(fc.array(msg, { maxLength: 3 }), jsonValue),
        },
        { requiredKeys: [] },
      ),
    );
    fc.assert(
      fc.property(
        envelope,
        fc.integer({ min: 100, max: 599 }),
        fc.option(fc.nat(), { nil: undefined }),
        (value, status, retry) => {
          const env = readEnvelope(value);
          const c = classifyCancel(status, env, retry);
          expect(['outcome', 'incomplete', 'auth_expired', 'session_busy']).toContain(c.kind);
          const login = classifyLogin(status, env, retry);
          expect(typeof login.ok).toBe('boolean');
        },
      ),
      { numRuns: 2000 },
    );
  });
});
