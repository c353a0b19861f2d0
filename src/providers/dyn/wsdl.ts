import { existsSync } from 'node:fs';
import path from 'node:path';
import { createClientAsync, type Client, type IHttpClient } from 'soap';
import { memoizeSoapShapes, type SoapShapeMemo, type SoapShapeStats } from './soap-shapes';

/** Operations the dyn-soap provider calls; the WSDL must describe each on `Dynect.DynectSOAP`. */
export const DYN_SOAP_OPERATIONS = [
  'SessionLogin',
  'SessionLogout',
  'GetJob',
  'CancelTask',
] as const;
export type DynSoapOperation = (typeof DYN_SOAP_OPERATIONS)[number];

/** A WSDL that cannot serve the provider; the message names the file and what is wrong. */
export class WsdlError extends Error {
  override readonly name = 'WsdlError';
}

/** Relative WSDL paths resolve against the project root (contract §3), never the working directory. */
export function resolveWsdlPath(wsdl: string, projectRoot: string): string {
  return path.isAbsolute(wsdl) ? wsdl : path.resolve(projectRoot, wsdl);
}

/**
 * Loads the local WSDL into a node-soap client and checks it describes the service, port and
 * operations the provider needs. Throws `WsdlError` with a message fit for `check-config`.
 */
export async function openDynSoapClient(
  wsdl: string,
  projectRoot: string,
  options: { endpoint?: string; httpClient?: IHttpClient } = {},
): Promise<Client> {
  const file = resolveWsdlPath(wsdl, projectRoot);
  const shown = file === wsdl ? wsdl : `${wsdl} (${file})`;
  if (!existsSync(file)) throw new WsdlError(`cannot read the WSDL ${shown}: no such file`);
  let client: Client;
  try {
    client = await createClientAsync(file, {
      disableCache: true,
      ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
      ...(options.httpClient === undefined ? {} : { httpClient: options.httpClient }),
    });
  } catch (err) {
    const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new WsdlError(`cannot load the WSDL ${shown}: ${why ?? 'unknown error'}`);
  }
  const described = client.describe() as Record<
    string,
    Record<string, Record<string, unknown>> | undefined
  >;
  const port = described.Dynect?.DynectSOAP;
  if (port === undefined) {
    throw new WsdlError(`the WSDL ${shown} has no service "Dynect" with port "DynectSOAP"`);
  }
  const missing = DYN_SOAP_OPERATIONS.filter((op) => port[op] === undefined);
  if (missing.length > 0) {
    throw new WsdlError(`the WSDL ${shown} lacks the operation(s) ${missing.join(', ')}`);
  }
  installShapeMemo(client);
  return client;
}

const memos = new WeakMap<Client, SoapShapeMemo>();

/**
 * node-soap parses each response through `client.wsdl.xmlToObject`; this client's WSDL gets the
 * shape memo in front of it (soap-shapes.ts). The streaming form (with a callback) and anything
 * that is not a string go straight to node-soap.
 */
function installShapeMemo(client: Client): void {
  const wsdl = client.wsdl;
  const full = wsdl.xmlToObject.bind(wsdl) as (xml: unknown, callback?: unknown) => unknown;
  const memo = memoizeSoapShapes((xml) => full(xml));
  memos.set(client, memo);
  wsdl.xmlToObject = (xml: unknown, callback?: unknown): unknown =>
    typeof xml === 'string' && callback === undefined ? memo.parse(xml) : full(xml, callback);
}

/** How this client's responses were parsed (undefined for a client not opened here). */
export function soapShapeStats(client: Client): SoapShapeStats | undefined {
  return memos.get(client)?.stats();
}
