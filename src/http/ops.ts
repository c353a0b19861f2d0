import type { RequestHandler } from 'express';
import type { GatewayState } from './cancel';

/** `GET /healthz`: the process is alive. */
export const healthz: RequestHandler = (_req, res) => {
  res.status(200).json({ status: 'ok' });
};

/** `GET /readyz`: a valid config is loaded and the gateway is not draining (contract §7). */
export function readyz(state: GatewayState): RequestHandler {
  return (_req, res) => {
    const runtime = state.runtime();
    const providers: Record<string, { circuit: string; protocol: string }> = {};
    for (const [name, p] of runtime.providers) {
      providers[name] = { circuit: p.policy.circuitState(), protocol: p.provider.protocol };
    }
    const draining = state.isDraining();
    res.status(draining ? 503 : 200).json({
      status: draining ? 'draining' : 'ready',
      configVersion: runtime.loaded.version,
      providers,
    });
  };
}
