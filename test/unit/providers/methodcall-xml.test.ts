import fc from 'fast-check';
import {
  classifyAnswer,
  decodeResponse,
  encodeCancelTask,
  methodcallTaskIdProblem,
  parseResponse,
} from '../../../src/providers/methodcall/xml';

describe('methodcall encode', () => {
  it('builds the exact cancel_task body of the interface documentation', () => {
    expect(encodeCancelTask('123004')).toBe(
      '<?xml version="1.0" encoding="UTF-8"?><methodcall><name>cancel_task</name><params><task_id>123004</task_id></params></methodcall>',
    );
  });

  it.each(['0', '2147483648', '99999999999', '1<x/>', '1/../x', '', '-1', '01'])(
    'refuses %p instead of building XML from it',
    (taskId) => {
      expect(() => encodeCancelTask(taskId)).toThrow(RangeError);
      expect(methodcallTaskIdProblem(taskId)).toContain('2147483647');
    },
  );

  it('accepts the whole documented range', () => {
    expect(methodcallTaskIdProblem('1')).toBeUndefined();
    expect(methodcallTaskIdProblem('2147483647')).toBeUndefined();
  });
});

describe('methodcall decode', () => {
  it.each([
    ['<params/>', '<?xml version="1.0"?>\n<response>\n  <params/>\n</response>'],
    [
      '<params></params>',
      '<?xml version="1.0" encoding="utf-8"?><response><params></params></response>',
    ],
    ['params with data', '<response><params><task_id>1</task_id></params></response>'],
    ['a BOM', '\uFEFF<?xml version="1.0"?><response><params/></response>'],
    ['no declaration', '<response><params/></response>'],
  ])('reads success from %s', (_name, body) => {
    expect(decodeResponse(body)).toEqual({ kind: 'ok' });
  });

  it('reads the fault code as text, keeping leading zeros', () => {
    expect(
      decodeResponse('<?xml version="1.0"?><response><fault><code>1017</code></fault></response>'),
    ).toEqual({
      kind: 'fault',
      code: '1017',
    });
    expect(
      decodeResponse('<response><fault><code> 0042 </code><text>x</text></fault></response>'),
    ).toEqual({
      kind: 'fault',
      code: '0042',
    });
  });

  it.each([
    ['an empty body', ''],
    ['whitespace', '  \n'],
    ['HTML', '<html><body>Internal Server Error</body></html>'],
    ['JSON', '{"status":"ok"}'],
    ['unclosed tags', '<response><params></response>'],
    ['truncated XML', '<?xml version="1.0"?><response><par'],
    ['a fault without code', '<response><fault/></response>'],
    ['a non-numeric code', '<response><fault><code>oops</code></fault></response>'],
    ['a response with text only', '<response>ok</response>'],
    ['an empty response', '<response/>'],
    ['two roots', '<response><params/></response><response><params/></response>'],
    ['a DOCTYPE', '<!DOCTYPE response><response><params/></response>'],
    [
      'an entity bomb',
      '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><response><fault><code>&b;</code></fault></response>',
    ],
    [
      'an XXE attempt',
      '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><response><params>&x;</params></response>',
    ],
    [
      'deep nesting',
      `<response><params>${'<a>'.repeat(200)}${'</a>'.repeat(200)}</params></response>`,
    ],
  ])('calls %s malformed', (_name, body) => {
    expect(decodeResponse(body).kind).toBe('malformed');
  });
});

describe('methodcall mapping', () => {
  it('maps <params> to canceled', () => {
    expect(classifyAnswer(200, { kind: 'ok' })).toEqual({ outcome: 'canceled' });
  });

  it('maps 1017 to not_found with the upstream code and text', () => {
    const out = classifyAnswer(200, { kind: 'fault', code: '1017' });
    expect(out.outcome).toBe('not_found');
    expect(out.error?.code).toBe('TASK_NOT_FOUND');
    expect(out.error?.upstream).toEqual({
      code: '1017',
      message: 'The specified task does not exist.',
    });
  });

  it('maps 1045 to a retryable conflict', () => {
    const out = classifyAnswer(200, { kind: 'fault', code: '1045' });
    expect(out).toMatchObject({
      outcome: 'conflict',
      retryable: true,
      error: { code: 'TASK_AT_PORT' },
    });
  });

  it.each(['1012', '1040'])('maps %s to rejected', (code) => {
    expect(classifyAnswer(200, { kind: 'fault', code })).toMatchObject({
      outcome: 'rejected',
      error: { code: 'UPSTREAM_REJECTED', upstream: { code } },
    });
  });

  it('maps another 1xxx fault to upstream_error carrying the code', () => {
    expect(classifyAnswer(200, { kind: 'fault', code: '1009' })).toMatchObject({
      outcome: 'upstream_error',
      error: { code: 'UPSTREAM_FAULT', upstream: { code: '1009' } },
    });
  });

  it.each(['42', '2001', '-1', '999'])(
    'maps non-1xxx code %s to an internal error of the upstream',
    (code) => {
      const out = classifyAnswer(200, { kind: 'fault', code });
      expect(out).toMatchObject({
        outcome: 'upstream_error',
        error: { code: 'UPSTREAM_INTERNAL_ERROR' },
      });
      expect(out.error?.message).toContain('internal error of the upstream');
    },
  );

  it('trusts a fault in the body whatever the HTTP status', () => {
    expect(classifyAnswer(500, { kind: 'fault', code: '1017' }).outcome).toBe('not_found');
  });

  it('maps an unusable body to upstream_error on 2xx/4xx and unavailable on 5xx', () => {
    const bad = { kind: 'malformed', reason: 'not well-formed XML' } as const;
    expect(classifyAnswer(200, bad).outcome).toBe('upstream_error');
    expect(classifyAnswer(404, bad).outcome).toBe('upstream_error');
    expect(classifyAnswer(500, bad).outcome).toBe('unavailable');
    expect(classifyAnswer(503, bad)).toMatchObject({ error: { upstream: { code: 'HTTP 503' } } });
  });
});

describe('the hot path (exact common answers, without the parser)', () => {
  const ws = fc.constantFrom('', ' ', '\n', '\r\n  ', '\t');
  const declaration = fc.constantFrom(
    '',
    '<?xml version="1.0"?>',
    '<?xml version="1.0" encoding="utf-8"?>',
  );
  const params = fc.constantFrom(
    '<params/>',
    '<params />',
    '<params></params>',
    '<params> </params>',
  );
  const code = fc.integer({ min: -99999, max: 2147483647 }).map(String);
  const message = fc.option(fc.stringMatching(/^[A-Za-z0-9 .,:]{0,40}$/), { nil: undefined });

  it('decodes success exactly as the parser does', () => {
    fc.assert(
      fc.property(declaration, ws, ws, params, (decl, a, b, p) => {
        const text = `${decl}${a}<response>${b}${p}${a}</response>${b}`;
        expect(decodeResponse(text)).toEqual(parseResponse(text));
        expect(decodeResponse(text)).toEqual({ kind: 'ok' });
      }),
    );
  });

  it('decodes a fault exactly as the parser does', () => {
    fc.assert(
      fc.property(declaration, ws, code, message, (decl, a, c, m) => {
        const text = `${decl}${a}<response><fault><code>${c}</code>${m === undefined ? '' : `<message>${m}</message>`}</fault></response>`;
        expect(decodeResponse(text)).toEqual(parseResponse(text));
      }),
    );
  });

  it('leaves anything else to the parser: near-misses are not taken for success', () => {
    for (const text of [
      '<response><params/><fault><code>1</code></fault></response>',
      '<response><params/></response><response/>',
      '<!DOCTYPE x><response><params/></response>',
      '<response><params/>',
    ]) {
      expect(decodeResponse(text)).toEqual(parseResponse(text));
      expect(decodeResponse(text).kind).not.toBe('ok');
    }
  });
});
