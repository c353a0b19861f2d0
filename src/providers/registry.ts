import type { GatewayConfig, ProviderConfig } from '../config/schema';
import { createDynRestProvider } from './dyn/rest';
import { createDynSoapProvider } from './dyn/soap';
import { openDynSoapClient, WsdlError } from './dyn/wsdl';
import { createMethodcallProvider } from './methodcall/provider';
import type { Provider, ProviderDeps } from './provider';

export type { ProviderDeps };

/** Builds one provider from its validated config. Adding a type is one `case` here. */
export function createProvider(
  name: string,
  cfg: ProviderConfig,
  deps: ProviderDeps,
): Promise<Provider> {
  switch (cfg.type) {
    case 'methodcall':
      return Promise.resolve(createMethodcallProvider(name, cfg, deps));
    case 'dyn-rest':
      return Promise.resolve(createDynRestProvider(name, cfg, deps));
    case 'dyn-soap':
      // A WSDL problem is a config problem: report it at the path that names the file.
      return createDynSoapProvider(name, cfg, deps).catch((err: unknown) => {
        if (err instanceof WsdlError) throw new Error(`providers.${name}.wsdl: ${err.message}`);
        throw err;
      });
    default: {
      const unreachable: never = cfg;
      throw new Error(`unknown provider type ${JSON.stringify(unreachable)}`);
    }
  }
}

/**
 * The checks a schema cannot make: files the config names must exist and be usable. Today that
 * is each dyn-soap provider's WSDL, loaded exactly as the provider will load it at start.
 */
export async function checkProviderFiles(
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
