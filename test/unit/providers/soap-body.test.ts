import path from 'node:path';
import fc from 'fast-check';
import type { Client } from 'soap';
import { compileSoapBody, escapeXmlText } from '../../../src/providers/dyn/soap-body';
import { openDynSoapClient } from '../../../src/providers/dyn/wsdl';

const ROOT = path.join(__dirname, '..', '..', '..');

/** What node-soap itself puts in the Body for these arguments (client._invoke's own call). */
function nodeSoapBody(client: Client, operation: string, args: Record<string, unknown>): string {
  const binding = client.wsdl.definitions.bindings.DynectSOAP;
  const input:
    | {
        $name?: string;
        targetNSAlias?: string;
        targetNamespace?: string;
        $type?: string;
        $lookupType?: string;
      }
    | undefined = binding?.methods[operation]?.input;
  if (input?.$name === undefined || input.targetNSAlias === undefined)
    throw new Error(`no ${operation}`);
  return client.wsdl.objectToDocumentXML(
    input.$name,
    args,
    input.targetNSAlias,
    input.targetNamespace,
    input.$type ?? input.$lookupType,
  ) as string;
}

describe('SOAP body templates', () => {
  let client: Client;
  beforeAll(async () => {
    client = await openDynSoapClient('wsdl/dynect.wsdl', ROOT);
  });

  const notCdata = fc
    .string({ unit: 'binary', maxLength: 80 })
    .filter((s) => !s.startsWith('<![CDATA['));
  const ids = fc.stringMatching(/^[1-9][0-9]{0,19}$/);

  it.each([
    ['CancelTask', 'task_id'],
    ['GetJob', 'job_id'],
  ])(
    '%s: byte for byte what node-soap renders from the WSDL, for any token',
    (operation, idField) => {
      const template = compileSoapBody(client, operation, idField);
      expect(template).toBeDefined();
      fc.assert(
        fc.property(notCdata, ids, (token, id) => {
          expect(template?.(token, id)).toBe(
            nodeSoapBody(client, operation, { token, fault_incompat: 1, [idField]: id }),
          );
        }),
        { numRuns: 500 },
      );
    },
  );

  it('renders the shape the reference capture shows for CancelTask', () => {
    const template = compileSoapBody(client, 'CancelTask', 'task_id');
    expect(template?.('TOKEN==', '39120953')).toBe(
      '<tns:CancelTaskRequest><token>TOKEN==</token><fault_incompat>1</fault_incompat>' +
        '<task_id>39120953</task_id></tns:CancelTaskRequest>',
    );
  });

  it('escapes a CDATA-shaped value that node-soap would pass through raw', () => {
    const sneaky = '<![CDATA[</token><task_id>1</task_id>]]>';
    const body = compileSoapBody(client, 'CancelTask', 'task_id')?.(sneaky, '7') ?? '';
    expect(body).not.toContain('<![CDATA[');
    expect(body).toContain(escapeXmlText(sneaky));
    expect(body.match(/<task_id>/g)).toHaveLength(1);
  });

  it('has no template for an operation the WSDL lacks', () => {
    expect(compileSoapBody(client, 'NoSuchOperation', 'task_id')).toBeUndefined();
  });
});
