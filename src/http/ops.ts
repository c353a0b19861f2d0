import type { RequestHandler } from 'express';
import { gatewayFailure } from '../core/result';
import type { ActiveConfig, HttpContext } from './context';
import { buildOpenApi, type OpenApiObject } from './openapi';
import { requestIdOf } from './request-id';
import { respond, respondJson } from './respond';

/** `GET /healthz`: the process is alive. */
export const healthz: RequestHandler = (_req, res) => {
  respondJson(res, 200, { status: 'ok' });
};

/** `GET /readyz`: a valid config is loaded and the gateway is not draining. */
export function readyz(ctx: HttpContext): RequestHandler {
  return (_req, res) => {
    const { runtime } = ctx.active();
    const providers: Record<string, { circuit: string; protocol: string }> = {};
    for (const [name, p] of runtime.providers) {
      providers[name] = { circuit: p.circuitState(), protocol: p.provider.protocol };
    }
    const draining = ctx.isDraining();
    const lastReloadError = ctx.lastReloadError();
    respondJson(res, draining ? 503 : 200, {
      status: draining ? 'draining' : 'ready',
      configVersion: runtime.loaded.version,
      providers,
      state: ctx.store.health(),
      ...(lastReloadError === undefined ? {} : { lastReloadError }),
    });
  };
}

/** `GET /metrics`: Prometheus text; open like the probes, so scrapers need no key. */
export function metrics(ctx: HttpContext): RequestHandler {
  return async (_req, res) => {
    const text = await ctx.metrics.render();
    res.status(200).type(ctx.metrics.registry.contentType).send(text);
  };
}

/** `GET /routes`: targets, provider chains, protocols and circuit states; never a secret. */
export function routes(ctx: HttpContext): RequestHandler {
  return (req, res) => {
    const { runtime, auth } = ctx.active();
    const result = auth.authenticate(req.headers);
    if (!result.ok) {
      ctx.metrics.authFailures.inc({ reason: result.reason });
      respond(res, {
        body: gatewayFailure(requestIdOf(res), 'unauthorized', 'UNAUTHORIZED', result.message),
      });
      return;
    }
    const list = [...runtime.routes.values()]
      .filter((route) => result.caller.allows(route.target))
      .map((route) => ({
        target: route.target,
        timeoutMs: route.timeoutMs,
        chain: route.chain.map((p) => ({
          provider: p.name,
          protocol: p.provider.protocol,
          circuit: p.circuitState(),
        })),
      }));
    respondJson(res, 200, { configVersion: runtime.loaded.version, routes: list });
  };
}

/**
 * `GET /openapi.json`: the document of the config in force, built on its first request and kept
 * with that config, so a reload (other routes, auth on or off) serves another document.
 */
export function openapi(ctx: HttpContext, version: string): RequestHandler {
  const built = new WeakMap<ActiveConfig, OpenApiObject>();
  return (_req, res) => {
    const active = ctx.active();
    let document = built.get(active);
    if (document === undefined) {
      document = buildOpenApi(active, version);
      built.set(active, document);
    }
    respondJson(res, 200, document);
  };
}
