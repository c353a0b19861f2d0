import type { RequestHandler } from 'express';
import { gatewayFailure, statusOf } from '../core/result';
import type { GatewayState } from './cancel';
import { buildOpenApi } from './openapi';
import { sendAnswer } from './respond';

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
    const lastReloadError = state.lastReloadError();
    res.status(draining ? 503 : 200).json({
      status: draining ? 'draining' : 'ready',
      configVersion: runtime.loaded.version,
      providers,
      state: state.store.health(),
      ...(lastReloadError === undefined ? {} : { lastReloadError }),
    });
  };
}

/** `GET /metrics`: Prometheus text; open like the probes, so scrapers need no key. */
export function metrics(state: GatewayState): RequestHandler {
  return async (_req, res) => {
    const text = await state.metrics.render();
    res.status(200).type(state.metrics.registry.contentType).send(text);
  };
}

/** `GET /routes`: targets, provider chains, protocols and circuit states; never a secret. */
export function routes(state: GatewayState): RequestHandler {
  return (req, res) => {
    const runtime = state.runtime();
    const requestId = res.locals.requestId as string;
    const auth = runtime.auth.authenticate(req.headers);
    if (!auth.ok) {
      state.metrics.authFailures.inc({ reason: auth.reason });
      sendAnswer(res, {
        status: statusOf('unauthorized'),
        body: gatewayFailure(requestId, 'unauthorized', 'UNAUTHORIZED', auth.message),
        headers: { 'WWW-Authenticate': 'Bearer realm="cancel-gateway"' },
      });
      return;
    }
    const list = [...runtime.routes.values()]
      .filter((route) => auth.caller.allows(route.target))
      .map((route) => ({
        target: route.target,
        timeoutMs: route.timeoutMs,
        chain: route.chain.map((p) => ({
          provider: p.name,
          protocol: p.provider.protocol,
          circuit: p.policy.circuitState(),
        })),
      }));
    res.status(200).json({ configVersion: runtime.loaded.version, routes: list });
  };
}

/** `GET /openapi.json`: built once from the zod schemas. */
export function openapi(version: string): RequestHandler {
  const document = JSON.stringify(buildOpenApi(version));
  return (_req, res) => {
    res.status(200).type('application/json; charset=utf-8').send(document);
  };
}
