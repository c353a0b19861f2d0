import { existsSync } from 'node:fs';
import path from 'node:path';
import { createClientAsync, type Client, type IHttpClient } from 'soap';

/** Operations the dyn-soap provider calls; the WSDL must describe each on `Dynect.DynectSOAP`. */
export const DYN_SOAP_OPERATIONS = [
  'SessionLogin',
  'SessionLogout',
  'GetJob',
  'GetOneTask',
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
  return client;
}
