import fc from 'fast-check';
import {
  bodyElementNamespace,
  isDynectNamespace,
  parseRequest,
  readRequest,
} from '../../../src/simulators/dyn-soap';

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

describe('the namespace of the body element, however it is declared', () => {
  const soap = 'xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"';
  const dyn = 'https://api2.dynect.net/wsdl/3.7.16/Dynect/';

  it.each([
    [
      'prefixed, declared on the Envelope (node-soap)',
      `<soap:Envelope ${soap} xmlns:tns="${dyn}"><soap:Body><tns:X/></soap:Body></soap:Envelope>`,
    ],
    [
      'prefixed, declared on the element',
      `<soap:Envelope ${soap}><soap:Body><d:X xmlns:d="${dyn}"/></soap:Body></soap:Envelope>`,
    ],
    [
      'a default namespace on the element (.NET)',
      `<soap:Envelope ${soap}><soap:Body><X xmlns="${dyn}"><a xmlns="">1</a></X></soap:Body></soap:Envelope>`,
    ],
    [
      'a default namespace on the Body',
      `<soap:Envelope ${soap}><soap:Body xmlns='${dyn}'><X/></soap:Body></soap:Envelope>`,
    ],
    [
      'after a SOAP Header',
      `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:tns="${dyn}"><s:Header><h:Y xmlns:h="urn:h"/></s:Header><s:Body><tns:X/></s:Body></s:Envelope>`,
    ],
  ])('%s', (_form, body) => {
    expect(bodyElementNamespace(`<?xml version="1.0" encoding="utf-8"?>${body}`)).toBe(dyn);
  });

  it('resolves the nearest declaration, and nothing without one', () => {
    expect(
      bodyElementNamespace(
        `<soap:Envelope ${soap} xmlns="${dyn}"><soap:Body><X xmlns="urn:other"/></soap:Body></soap:Envelope>`,
      ),
    ).toBe('urn:other');
    expect(
      bodyElementNamespace(
        `<soap:Envelope ${soap}><soap:Body><tns:X/></soap:Body></soap:Envelope>`,
      ),
    ).toBeUndefined();
    expect(bodyElementNamespace('<html><body>no</body></html>')).toBeUndefined();
  });

  it('knows a Dynect namespace of any version, and nothing else', () => {
    expect(isDynectNamespace(dyn)).toBe(true);
    expect(isDynectNamespace('https://api2.dynect.net/wsdl/2.3.1/Dynect/')).toBe(true);
    expect(isDynectNamespace('https://api2.dynect.net/wsdl/3.7.16/Other/')).toBe(false);
    expect(isDynectNamespace('urn:x')).toBe(false);
    expect(isDynectNamespace(undefined)).toBe(false);
  });

  it('reads the request of a default-namespaced body element', () => {
    const body =
      `<?xml version="1.0" encoding="utf-8"?><soap:Envelope ${soap}><soap:Body>` +
      `<SessionLoginRequest xmlns="${dyn}"><user_name xmlns="">u</user_name></SessionLoginRequest>` +
      '</soap:Body></soap:Envelope>';
    expect(readRequest(body)).toEqual({
      operation: 'SessionLoginRequest',
      args: { user_name: 'u' },
    });
  });
});
