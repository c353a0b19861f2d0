/** Every upstream protocol the gateway speaks; config, results and the registry derive from it. */
export const PROTOCOLS = ['methodcall', 'dyn-rest', 'dyn-soap'] as const;

/** One upstream protocol: a provider's `type` in the config and `protocol` in results. */
export type Protocol = (typeof PROTOCOLS)[number];
