import express, { type Express } from 'express';
import { batchRoute, cancelRoute } from './http/cancel';
import type { HttpContext } from './http/context';
import { errorHandler, methodNotAllowed, notFound } from './http/errors';
import { healthz, metrics, openapi, readyz, routes } from './http/ops';
import { assignRequestId } from './http/request-id';
import { TASKS_PATH, tasksRoute } from './http/tasks';

export type { HttpContext };

/** Options of the app that are not per request. */
export interface AppOptions {
  /** The package version, for `/openapi.json`. */
  version: string;
  /** Middleware mounted before every route (tests prove it reaches every endpoint). */
  before?: express.RequestHandler[];
}

/**
 * THE Express app: every endpoint, `/cancel`, `/cancel/batch` and `/tasks` included, is a route here, so
 * any `app.use` middleware applies to all of them. It never listens by itself.
 */
export function createApp(ctx: HttpContext, options: AppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', false);

  app.use(assignRequestId);
  for (const middleware of options.before ?? []) app.use(middleware);

  app.post('/cancel', ...cancelRoute(ctx));
  app.all('/cancel', methodNotAllowed('POST'));
  app.post('/cancel/batch', ...batchRoute(ctx));
  app.all('/cancel/batch', methodNotAllowed('POST'));
  app.get(TASKS_PATH, ...tasksRoute(ctx));
  app.all(TASKS_PATH, methodNotAllowed('GET'));
  app.get('/healthz', healthz);
  app.get('/readyz', readyz(ctx));
  app.get('/metrics', metrics(ctx));
  app.get('/routes', routes(ctx));
  app.get('/openapi.json', openapi(ctx, options.version));
  for (const path of ['/healthz', '/readyz', '/metrics', '/routes', '/openapi.json']) {
    app.all(path, methodNotAllowed('GET'));
  }

  app.use(notFound);
  app.use(errorHandler(ctx.logger));
  return app;
}
