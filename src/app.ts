import { readFileSync } from 'node:fs';
import path from 'node:path';
import express, { type Express } from 'express';
import { batchHandler, cancelHandler, type GatewayState } from './http/cancel';
import { errorHandler, methodNotAllowed, notFound } from './http/errors';
import { healthz, metrics, openapi, readyz, routes } from './http/ops';
import { requestIdFrom } from './http/request-id';

export type { GatewayState };

/** The package version, for `/openapi.json` (package.json is one level above src/ and dist/). */
const VERSION = (
  JSON.parse(readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as {
    version: string;
  }
).version;

/** Builds the Express app for a running gateway; it never listens by itself. */
export function createApp(state: GatewayState): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', false);

  app.use((req, res, next) => {
    const requestId = requestIdFrom(req.headers['x-request-id']);
    res.locals.requestId = requestId;
    res.setHeader('X-Request-Id', requestId);
    next();
  });

  app.post('/cancel', cancelHandler(state));
  app.all('/cancel', methodNotAllowed('POST'));
  app.post('/cancel/batch', batchHandler(state));
  app.all('/cancel/batch', methodNotAllowed('POST'));
  app.get('/healthz', healthz);
  app.get('/readyz', readyz(state));
  app.get('/metrics', metrics(state));
  app.get('/routes', routes(state));
  app.get('/openapi.json', openapi(VERSION));
  for (const path of ['/healthz', '/readyz', '/metrics', '/routes', '/openapi.json']) {
    app.all(path, methodNotAllowed('GET'));
  }

  app.use(notFound);
  app.use(errorHandler(state.logger));
  return app;
}
