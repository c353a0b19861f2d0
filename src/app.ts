import express, { type Express } from 'express';
import { cancelHandler, type GatewayState } from './http/cancel';
import { errorHandler, methodNotAllowed, notFound } from './http/errors';
import { healthz, readyz } from './http/ops';
import { requestIdFrom } from './http/request-id';

export type { GatewayState };

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
  app.get('/healthz', healthz);
  app.get('/readyz', readyz(state));

  app.use(notFound);
  app.use(errorHandler(state.logger));
  return app;
}
