import type { Client } from 'soap';

/**
 * The body of a per-request SOAP call (`CancelTask`, `GetJob`) rendered from a template that
 * node-soap itself produced from the WSDL, instead of node-soap walking the schema for every call.
 *
 * At start-up node-soap renders the operation's body element once with placeholder values; the
 * template is its text split at the placeholders. A call fills in the escaped token and id and
 * hands the result to node-soap as `_xml`, so node-soap still builds the envelope, sends it, and
 * parses the answer against the WSDL. The template is checked against node-soap's own rendering of
 * a sample with every character that needs escaping; when they differ (an unusual WSDL) there is
 * no template and node-soap serializes every call as before.
 */
export type SoapBodyTemplate = (token: string, id: string) => string;

/** The input side of an operation, as node-soap's WSDL model has it. */
interface InputModel {
  $name?: unknown;
  targetNSAlias?: unknown;
  targetNamespace?: unknown;
  $type?: unknown;
  $lookupType?: unknown;
}

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
  '\t': '&#x9;',
  '\r': '&#xD;',
  '\n': '&#xA;',
};

/**
 * node-soap's escaping of text content (utils.xmlEscape), character for character, except that a
 * value shaped like `<![CDATA[…]]>` is escaped too (node-soap would pass it through raw).
 */
export function escapeXmlText(value: string): string {
  return value.replace(/[&<>"'\t\r\n]/g, (c) => ESCAPES[c] ?? c);
}

const TOKEN_MARK = 'cgTOKENmark7Q';
const ID_MARK = '8675309000000000421';
const SAMPLE_TOKEN = `a&b<c>d"e'f\tg\rh\ni+/=`;
const SAMPLE_ID = '12345678901234567890';

function inputOf(client: Client, operation: string): InputModel | undefined {
  for (const binding of Object.values(client.wsdl.definitions.bindings)) {
    const method = binding.methods[operation];
    if (method !== undefined) return method.input;
  }
  return undefined;
}

/** node-soap's rendering of the operation's body for these arguments (what `_invoke` sends). */
function render(
  client: Client,
  input: InputModel,
  args: Record<string, string | number>,
): string | undefined {
  const name = input.$name;
  const alias = input.targetNSAlias;
  const ns = input.targetNamespace;
  const type = input.$type ?? input.$lookupType;
  if (typeof name !== 'string' || typeof alias !== 'string') return undefined;
  const xml: unknown = client.wsdl.objectToDocumentXML(
    name,
    args,
    alias,
    typeof ns === 'string' ? ns : undefined,
    typeof type === 'string' ? type : undefined,
  );
  return typeof xml === 'string' ? xml : undefined;
}

/**
 * A template for `operation` whose arguments are `{ token, fault_incompat: 1, [idField]: id }`,
 * or undefined when node-soap's rendering cannot be reproduced exactly.
 */
export function compileSoapBody(
  client: Client,
  operation: string,
  idField: string,
): SoapBodyTemplate | undefined {
  const input = inputOf(client, operation);
  if (input === undefined) return undefined;
  const args = (token: string, id: string): Record<string, string | number> => ({
    token,
    fault_incompat: 1,
    [idField]: id,
  });
  const marked = render(client, input, args(TOKEN_MARK, ID_MARK));
  if (marked === undefined) return undefined;
  const [before, middle, after, ...rest] = marked.split(new RegExp(`${TOKEN_MARK}|${ID_MARK}`));
  if (before === undefined || middle === undefined || after === undefined || rest.length > 0)
    return undefined;
  const tokenFirst = marked.indexOf(TOKEN_MARK) < marked.indexOf(ID_MARK);
  const template: SoapBodyTemplate = tokenFirst
    ? (token, id) => before + escapeXmlText(token) + middle + escapeXmlText(id) + after
    : (token, id) => before + escapeXmlText(id) + middle + escapeXmlText(token) + after;
  return template(SAMPLE_TOKEN, SAMPLE_ID) === render(client, input, args(SAMPLE_TOKEN, SAMPLE_ID))
    ? template
    : undefined;
}
