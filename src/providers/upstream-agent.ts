import { Agent, type Dispatcher } from 'undici';
import type { ProviderConfig } from '../config/schema';
import type { ProviderDeps } from './provider';

/**
 * The one undici dispatcher a provider sends every upstream call through (login, cancel, poll,
 * logout): keep-alive connections per origin, at most `connections` each. Requests name their
 * origin (`exchange` passes it), so one dispatcher serves every URL a provider is given.
 */
export function createUpstreamAgent(cfg: ProviderConfig, _deps: ProviderDeps): Dispatcher {
  return new Agent({
    connections: cfg.connections,
    keepAliveTimeout: 4_000,
    // Deadlines come from the request's AbortSignal; these only stop a socket living forever.
    headersTimeout: 600_000,
    bodyTimeout: 600_000,
  });
}
