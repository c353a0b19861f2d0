import fc from 'fast-check';
import { parseRequest, readRequest } from '../../../src/simulators/dyn-soap';

const envelope = (op: string, children: string, prefix = 'tns'): string =>
  '<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" ' +
  `xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"  xmlns:${prefix}="https://api2.dynect.net/wsdl/3.7.16/Dynect/">` +
  `<soap:Body><${prefix}:${op}>${children}</${prefix}:${op}></soap:Body></soap:Envelope>`;

describe('the SOAP simulator reads requests without a parser when it can', () => {
  it('reads node-soap’s CancelTask envelope', () => {
    const body = envelope(
      'CancelTaskRequest',
      '<token>TOKEN==</token><fault_incompat>1</fault_incompat><task_id>39120953</task_id>',
    );
    expect(readRequest(body)).toEqual({
      operation: 'CancelTaskRequest',
      args: { token: 'TOKEN==', fault_incompat: '1', task_id: '39120953' },
    });
  });

  it('agrees with the full parse for any children, names and text', () => {
    const name = fc.constantFrom(
      'token',
      'task_id',
      'job_id',
      'fault_incompat',
      'x',
      'constructor',
    );
    const text = fc.oneof(
      fc.stringMatching(/^[A-Za-z0-9+/=]{0,30}$/),
      fc.string({ maxLength: 12 }),
      fc.constantFrom(' padded ', 'a&amp;b', '<![CDATA[x]]>', '&lt;'),
    );
    const child = fc
      .tuple(name, text, fc.boolean())
      .map(([n, t, mismatch]) => (mismatch ? `<${n}>${t}</other>` : `<${n}>${t}</${n}>`));
    fc.assert(
      fc.property(
        fc.constantFrom('CancelTaskRequest', 'GetJobRequest', 'SessionLoginRequest'),
        fc.array(child, { maxLength: 5 }),
        fc.constantFrom('tns', 'dyn'),
        (op, children, prefix) => {
          const body = envelope(op, children.join(''), prefix);
          expect(readRequest(body)).toEqual(parseRequest(body));
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('leaves everything else to the parser (DOCTYPE refused, whitespace, attributes)', () => {
    const doctype = `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]>${envelope('X', '<a>1</a>').slice(38)}`;
    expect(readRequest(doctype)).toBeUndefined();
    const spaced = envelope('CancelTaskRequest', '\n  <token>T</token>\n');
    expect(readRequest(spaced)).toEqual(parseRequest(spaced));
    const attributed = envelope('CancelTaskRequest', '<token xsi:type="xsd:string">T</token>');
    expect(readRequest(attributed)).toEqual({
      operation: 'CancelTaskRequest',
      args: { token: 'T' },
    });
  });
});
