import type { ProviderConfig } from '../config/schema';
import { failed } from '../core/provider-outcome';
import type { Logger } from '../observability/logger';
import { createDynRestProvider } from './dyn/rest';
import { createMethodcallProvider } from './methodcall/provider';
import type { Provider } from './provider';

/** Edges a provider factory may need. */
export interface ProviderDeps {
  logger: Logger;
  /** Relative paths in the config (a WSDL) resolve against this directory. */
  projectRoot: string;
}

/** A provider type that is validated but whose transport has not landed yet. */
function notImplemented(name: string, protocol: ProviderConfig['type']): Provider {
  return {
    name,
    protocol,
    checkTaskId: () => undefined,
    cancel: () =>
      Promise.resolve(
        failed(
          'unavailable',
          'NOT_IMPLEMENTED',
          `provider type "${protocol}" is not implemented yet`,
          {
            notSent: true,
          },
        ),
      ),
    close: () => Promise.resolve(),
  };
}

/** Builds one provider from its validated config. Adding a type is one `case` here. */
export function createProvider(
  name: string,
  cfg: ProviderConfig,
  _deps: ProviderDeps,
): Promise<Provider> {
  switch (cfg.type) {
    case 'methodcall':
      return Promise.resolve(createMethodcallProvider(name, cfg));
    case 'dyn-rest':
      return Promise.resolve(createDynRestProvider(name, cfg));
    case 'dyn-soap':
      return Promise.resolve(notImplemented(name, cfg.type));
    default: {
      const unreachable: never = cfg;
      throw new Error(`unknown provider type ${JSON.stringify(unreachable)}`);
    }
  }
}
