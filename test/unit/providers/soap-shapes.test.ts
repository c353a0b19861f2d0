import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import type { Client } from 'soap';
import { memoizeSoapShapes, type XmlToObject } from '../../../src/providers/dyn/soap-shapes';
import { openDynSoapClient, soapShapeStats } from '../../../src/providers/dyn/wsdl';

const ROOT = path.join(__dirname, '..', '..', '..');
const NS = 'https://api2.dynect.net/wsdl/3.7.16/Dynect/';

/** node-soap's own parse, without the memo openDynSoapClient puts in front of it. */
function fullParse(client: Client): XmlToObject {
  const wsdl = client.wsdl;
  const proto = Object.getPrototypeOf(wsdl) as { xmlToObject: (xml: string) => unknown };
  return (xml) => proto.xmlToObject.call(wsdl, xml);
}

/** The outcome of a parse: its value, or the message it threw. */
function outcome(parse: XmlToObject, xml: string): { value: unknown } | { threw: string } {
  try {
    return { value: parse(xml) };
  } catch (err) {
    return { threw: err instanceof Error ? err.message : JSON.stringify(err) };
  }
}

const escape = (s: string): string =>
  s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');

function envelope(inner: string, gap = ''): string {
  return (
    `<?xml version="1.0" encoding="UTF-8"?>${gap}` +
    `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" ` +
    `xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:tns="${NS}">${gap}` +
    `<soap:Body>${gap}${inner}${gap}</soap:Body>${gap}</soap:Envelope>`
  );
}

const el = (name: string, text: string | undefined): string =>
  text === undefined ? '' : `<${name}>${escape(text)}</${name}>`;

/** Text as upstreams send it, and text meant to trip a converter up. */
const text = fc.oneof(
  fc.constantFrom('success', 'failure', 'incomplete', 'INFO', 'ERROR', 'BLL', 'Y', 'canceled'),
  fc.integer().map(String),
  fc.double().map(String),
  fc.constantFrom('', ' ', ' 12 ', '12abc', '-0', '1e3', '0x1F', 'NaN', 'true', '1', '00123'),
  fc.constantFrom('a&b', 'x<y', '<![CDATA[z]]>', '\u0001', '\u007F', 'tab\there', 'line\nbreak'),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'grapheme', maxLength: 6 }),
);
const optional = fc.option(text, { nil: undefined });

const msgs = fc.array(fc.record({ source: text, lvl: text, err_cd: optional, info: optional }), {
  maxLength: 3,
});
const task = fc.record({
  task_id: optional,
  name: optional,
  status: optional,
  step_count: optional,
  total_steps: optional,
  blocking: optional,
  created_ts: optional,
  args: fc.array(fc.record({ name: text, value: text }), { maxLength: 2 }),
});
type Task = typeof task extends fc.Arbitrary<infer T> ? T : never;
type Msgs = typeof msgs extends fc.Arbitrary<infer T> ? T : never;

function taskXml(t: Task): string {
  const { args, ...fields } = t;
  return (
    Object.entries(fields)
      .map(([k, v]) => el(k, v))
      .join('') +
    args.map((a) => `<args>${el('name', a.name)}${el('value', a.value)}</args>`).join('')
  );
}

function answerXml(jobId: string | undefined, status: string, m: Msgs, data: string): string {
  const msgsXml = m
    .map(
      (x) =>
        `<msgs>${el('source', x.source)}${el('lvl', x.lvl)}${el('err_cd', x.err_cd)}${el('info', x.info)}</msgs>`,
    )
    .join('');
  return `${el('job_id', jobId)}${el('status', status)}${msgsXml}${data}`;
}

/** Responses of every shape the provider meets: CancelTask, GetJob (nested job), SessionLogin. */
const response = fc.oneof(
  fc
    .tuple(optional, text, msgs, task, fc.constantFrom('', '\n  '))
    .map(([jobId, status, m, t, gap]) =>
      envelope(
        `<tns:CancelTaskResponse>${answerXml(jobId, status, m, `<data>${taskXml(t)}</data>`)}</tns:CancelTaskResponse>`,
        gap,
      ),
    ),
  fc
    .tuple(text, msgs, text, msgs, task)
    .map(([jobId, m, innerStatus, innerMsgs, t]) =>
      envelope(
        `<tns:GetJobResponse>${answerXml(
          jobId,
          'success',
          m,
          `<data xsi:type="tns:CancelTaskResponseType">${answerXml(jobId, innerStatus, innerMsgs, `<data>${taskXml(t)}</data>`)}</data>`,
        )}</tns:GetJobResponse>`,
      ),
    ),
  fc
    .tuple(text, msgs, text, text)
    .map(([status, m, token, version]) =>
      envelope(
        `<tns:SessionLoginResponse>${answerXml(undefined, status, m, `<data>${el('token', token)}${el('version', version)}</data>`)}</tns:SessionLoginResponse>`,
      ),
    ),
);

const CANCELLED = (taskId: string, created: string): string =>
  envelope(
    `<tns:CancelTaskResponse><job_id>4340980453</job_id><status>success</status>` +
      `<msgs><source>BLL</source><lvl>INFO</lvl><err_cd></err_cd><info>task: ${taskId} canceled</info></msgs>` +
      `<data><task_id>${taskId}</task_id><status>canceled</status><step_count>1</step_count>` +
      `<created_ts>${created}</created_ts><args><name>zone</name><value>example.com</value></args></data>` +
      `</tns:CancelTaskResponse>`,
  );

const FAULT = envelope(
  `<soap:Fault><faultcode>soap:Server</faultcode><faultstring>task: not found</faultstring>` +
    `<detail><tns:ErrorResponse><status>failure</status><msgs><source>BLL</source><lvl>ERROR</lvl>` +
    `<err_cd>NOT_FOUND</err_cd><info>task: not found</info></msgs></tns:ErrorResponse></detail></soap:Fault>`,
);

describe('SOAP response shapes', () => {
  let client: Client;
  let full: XmlToObject;
  beforeAll(async () => {
    client = await openDynSoapClient('wsdl/dynect.wsdl', ROOT);
    full = fullParse(client);
  });

  it('gives exactly what node-soap gives, for any response, text and whitespace', () => {
    const memo = memoizeSoapShapes(full);
    fc.assert(
      fc.property(response, (body) => {
        // Seen, learnt (when it can be), built from the learnt shape: the same every time.
        for (let i = 0; i < 3; i++)
          expect(outcome(memo.parse, body)).toStrictEqual(outcome(full, body));
      }),
      { numRuns: 1000 },
    );
    const stats = memo.stats();
    expect(stats.hits).toBeGreaterThan(100);
    expect(stats.learnt).toBeGreaterThan(20);
  });

  it('learns a shape the second time and builds the rest from text, fresh objects every time', () => {
    let calls = 0;
    const memo = memoizeSoapShapes((xml) => {
      calls++;
      return full(xml);
    });
    const first = memo.parse(CANCELLED('1', '1500000000'));
    expect(calls).toBe(1); // seen once: one parse, as without the memo
    const second = memo.parse(CANCELLED('5', '1500000001'));
    expect(calls).toBe(4); // learnt: the parse and the two probes
    const third = memo.parse(CANCELLED('22', '-7x'));
    const fourth = memo.parse(CANCELLED('22', '-7x'));
    expect(calls).toBe(4);
    expect(memo.stats()).toEqual({ hits: 2, parsed: 2, learnt: 1, refused: 0 });
    expect(first).toStrictEqual(full(CANCELLED('1', '1500000000')));
    expect(second).toStrictEqual(full(CANCELLED('5', '1500000001')));
    expect(third).toStrictEqual(full(CANCELLED('22', '-7x')));
    expect(third).toMatchObject({
      Body: { CancelTaskResponse: { data: { task_id: '22', step_count: 1, created_ts: -7 } } },
    });
    expect(fourth).toStrictEqual(third);
    expect(fourth).not.toBe(third);
  });

  it('reads a body of the last shape straight off it, and leaves every near miss to the full path', () => {
    // CANCELLED's layout with any raw text in its eleven slots: blanks, entities, `<`, `>`, the
    // slot character, empty texts; node-soap may refuse some of these bodies, and so must the memo.
    const shaped = (t: readonly string[]): string =>
      envelope(
        `<tns:CancelTaskResponse><job_id>${t[0] ?? ''}</job_id><status>${t[1] ?? ''}</status>` +
          `<msgs><source>${t[2] ?? ''}</source><lvl>${t[3] ?? ''}</lvl><err_cd></err_cd><info>${t[4] ?? ''}</info></msgs>` +
          `<data><task_id>${t[5] ?? ''}</task_id><status>${t[6] ?? ''}</status><step_count>${t[7] ?? ''}</step_count>` +
          `<created_ts>${t[8] ?? ''}</created_ts><args><name>${t[9] ?? ''}</name><value>${t[10] ?? ''}</value></args></data>` +
          `</tns:CancelTaskResponse>`,
      );
    const plain = (n: number): string[] => [
      '4340980453',
      'success',
      'BLL',
      'INFO',
      `task: ${String(n)} canceled`,
      String(n),
      'canceled',
      '1',
      String(1_500_000_000 + n),
      'zone',
      'example.com',
    ];
    let calls = 0;
    const memo = memoizeSoapShapes((xml) => {
      calls++;
      return full(xml);
    });
    for (let n = 1; n <= 3; n++) memo.parse(shaped(plain(n))); // seen, learnt, hit
    const raw = fc.oneof(text, fc.constantFrom('a>b', '<', '>', ' x', 'x ', '\u007F', '&amp;', ''));
    fc.assert(
      fc.property(
        fc.array(raw, { minLength: 11, maxLength: 11 }),
        fc.constantFrom('', ' ', '<x/>', '\n'),
        (texts, tail) => {
          const body = shaped(texts) + tail;
          expect(outcome(memo.parse, body)).toStrictEqual(outcome(full, body));
        },
      ),
      { numRuns: 1000 },
    );
    // After all that, a body of the learnt shape still costs no parse.
    const before = calls;
    const body = shaped(plain(77));
    expect(memo.parse(body)).toStrictEqual(full(body));
    expect(calls).toBe(before);
  });

  it('costs one parse for a shape that never repeats', () => {
    let calls = 0;
    const memo = memoizeSoapShapes((xml) => {
      calls++;
      return full(xml);
    });
    for (let i = 0; i < 20; i++)
      memo.parse(CANCELLED('1', '1').replace('<data>', `<data n="${String(i)}">`));
    expect(calls).toBe(20);
    expect(memo.stats()).toEqual({ hits: 0, parsed: 20, learnt: 0, refused: 0 });
  });

  it('leaves Faults to node-soap: the same error, and nothing learnt', () => {
    const memo = memoizeSoapShapes(full);
    const expected = outcome(full, FAULT);
    expect(expected).toHaveProperty('threw', expect.stringContaining('task: not found'));
    expect(outcome(memo.parse, FAULT)).toStrictEqual(expected);
    expect(outcome(memo.parse, FAULT)).toStrictEqual(expected);
    expect(memo.stats()).toEqual({ hits: 0, parsed: 2, learnt: 0, refused: 0 });
  });

  it.each([
    ['an entity', CANCELLED('1&amp;2', '1')],
    ['CDATA', CANCELLED('<![CDATA[7]]>', '1')],
    ['a comment', CANCELLED('7<!-- c -->', '1')],
    ['a single-quoted attribute', CANCELLED('7', '1').replace('<data>', `<data a='1'>`)],
    ['text with blanks around it', CANCELLED(' 7 ', '1')],
    ['a DOCTYPE', CANCELLED('7', '1').replace('?>', '?><!DOCTYPE x>')],
    [
      'the slot character in an attribute',
      CANCELLED('7', '1').replace('<data>', '<data a="\u007F">'),
    ],
    ['the slot character in text', CANCELLED('7\u007F', '1')],
  ])('parses a body with %s with node-soap every time', (_, body) => {
    const memo = memoizeSoapShapes(full);
    expect(outcome(memo.parse, body)).toStrictEqual(outcome(full, body));
    expect(outcome(memo.parse, body)).toStrictEqual(outcome(full, body));
    expect(memo.stats()).toMatchObject({ hits: 0, parsed: 2, learnt: 0 });
  });

  it('checks a shape with long blank runs in one pass (no backtracking on hostile input)', () => {
    const memo = memoizeSoapShapes(full);
    const blanks = ' '.repeat(15_000);
    const bodies = [
      CANCELLED('1', '1').replace('<data>', `<data${blanks}>`), // fine XML, odd
      CANCELLED('1', '1').replace('</data>', `</data>${blanks}<!-- -->`), // outside the subset
      CANCELLED('1', '1').replace('<data>', `<data${blanks}x>`), // not XML
    ];
    for (const body of bodies)
      for (let i = 0; i < 3; i++)
        expect(outcome(memo.parse, body)).toStrictEqual(outcome(full, body));
    expect(memo.stats()).toMatchObject({ learnt: 1, refused: 1 });
  });

  it('keeps at most maxShapes shapes, dropping the oldest', () => {
    const memo = memoizeSoapShapes(full, { maxShapes: 2 });
    const [s0, s1, s2] = [
      CANCELLED('1', '1'),
      CANCELLED('1', '1').replace('<status>canceled</status>', ''),
      CANCELLED('1', '1').replace('<step_count>1</step_count>', ''),
    ];
    for (const body of [s0, s0, s1, s1, s2, s2, s2]) memo.parse(body);
    expect(memo.stats()).toEqual({ hits: 1, parsed: 6, learnt: 3, refused: 0 });
    memo.parse(s0); // dropped when s2 came: seen again, not built
    memo.parse(s0);
    expect(memo.stats()).toEqual({ hits: 1, parsed: 8, learnt: 4, refused: 0 });
  });

  it('leaves bodies over maxBytes to node-soap', () => {
    const memo = memoizeSoapShapes(full, { maxBytes: 100 });
    const body = CANCELLED('1', '1');
    for (let i = 0; i < 3; i++) expect(memo.parse(body)).toStrictEqual(full(body));
    expect(memo.stats()).toEqual({ hits: 0, parsed: 3, learnt: 0, refused: 0 });
  });

  it('is in front of every client openDynSoapClient opens', () => {
    const before = soapShapeStats(client);
    expect(before).toBeDefined();
    const body = CANCELLED('31', '2');
    for (let i = 0; i < 3; i++) expect(client.wsdl.xmlToObject(body)).toStrictEqual(full(body));
    expect(soapShapeStats(client)?.hits).toBe((before?.hits ?? 0) + 1);
  });
});

describe('SOAP response shapes against a WSDL with other types', () => {
  let full: XmlToObject;
  beforeAll(async () => {
    // step_count as boolean, total_steps as dateTime, created_ts as double.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'soap-shapes-'));
    const file = path.join(dir, 'typed.wsdl');
    writeFileSync(
      file,
      readFileSync(path.join(ROOT, 'wsdl', 'dynect.wsdl'), 'utf8')
        .replace('name="step_count" type="xsd:int"', 'name="step_count" type="xsd:boolean"')
        .replace('name="total_steps" type="xsd:int"', 'name="total_steps" type="xsd:dateTime"')
        .replace('name="created_ts" type="xsd:long"', 'name="created_ts" type="xsd:double"'),
    );
    full = fullParse(await openDynSoapClient(file, ROOT));
  });

  it('learns doubles and refuses booleans and dates, answering as node-soap either way', () => {
    const memo = memoizeSoapShapes(full);
    const noStep = (body: string): string => body.replace('<step_count>1</step_count>', '');
    const double = ['1.5e3', '0x10', '12abc', '2.25'].map((ts) => noStep(CANCELLED('1', ts)));
    for (const body of double) expect(memo.parse(body)).toStrictEqual(full(body));
    expect(memo.stats()).toEqual({ hits: 2, parsed: 2, learnt: 1, refused: 0 });
    expect(memo.parse(noStep(CANCELLED('4', '2.25')))).toMatchObject({
      Body: { CancelTaskResponse: { data: { created_ts: 2.25 } } },
    });
    const boolean = CANCELLED('1', '1'); // has step_count
    const date = CANCELLED('1', '1').replace(
      '<step_count>1</step_count>',
      '<total_steps>2026-11-22T10:00:00Z</total_steps>',
    );
    for (const body of [boolean, boolean, boolean, date, date, date])
      expect(memo.parse(body)).toStrictEqual(full(body));
    expect(memo.stats()).toEqual({ hits: 3, parsed: 8, learnt: 1, refused: 2 });
  });
});
