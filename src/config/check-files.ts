import { openDynSoapClient, WsdlError } from '../providers/dyn/wsdl';
import type { GatewayConfig } from './schema';

/**
 * The checks a schema cannot make: files the config names must exist and be usable. Today that
 * is each dyn-soap provider's WSDL, loaded exactly as the provider will load it at start.
 */
export async function checkConfigFiles(
  config: GatewayConfig,
  projectRoot: string,
): Promise<string[]> {
  const problems: string[] = [];
  for (const [name, provider] of Object.entries(config.providers)) {
    if (provider.type !== 'dyn-soap') continue;
    try {
      await openDynSoapClient(provider.wsdl, projectRoot);
    } catch (err) {
      if (!(err instanceof WsdlError)) throw err;
      problems.push(`providers.${name}.wsdl: ${err.message}`);
    }
  }
  return problems;
}
