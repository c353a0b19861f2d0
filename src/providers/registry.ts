import type { ProviderConfig } from '../config/schema';
import type { Logger } from '../observability/logger';
import { createDynRestProvider } from './dyn/rest';
import { createDynSoapProvider } from './dyn/soap';
import { WsdlError } from './dyn/wsdl';
import { createMethodcallProvider } from './methodcall/provider';
import type { StateStore } from '../state/store';
import type { Provider } from './provider';

/** Edges a provider factory may need. */
export interface ProviderDeps {
  logger: Logger;
  /** Relative paths in the config (a WSDL) resolve against this directory. */
  projectRoot: string;
  /** Shared state: account-wide rate limits (`rateLimit.scope: account`) live here. */
  store?: StateStore;
}

/** Builds one provider from its validated config. Adding a type is one `case` here. */
export function createProvider(
  name: string,
  cfg: ProviderConfig,
  deps: ProviderDeps,
): Promise<Provider> {
  switch (cfg.type) {
    case 'methodcall':
      return Promise.resolve(createMethodcallProvider(name, cfg));
    case 'dyn-rest':
      return Promise.resolve(createDynRestProvider(name, cfg, deps.store));
    case 'dyn-soap':
      // A WSDL problem is a config problem: report it at the path that names the file.
      return createDynSoapProvider(name, cfg, deps.projectRoot, deps.store).catch(
        (err: unknown) => {
          if (err instanceof WsdlError) throw new Error(`providers.${name}.wsdl: ${err.message}`);
          throw err;
        },
      );
    default: {
      const unreachable: never = cfg;
      throw new Error(`unknown provider type ${JSON.stringify(unreachable)}`);
    }
  }
}
