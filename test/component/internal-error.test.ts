import request from 'supertest';
import { createApp, type HttpContext } from '../../src/app';
import type { Logger } from '../../src/observability/logger';
import { createMetrics } from '../../src/observability/metrics';
import { createCancelMemory } from '../../src/state/replay';
import { createMemoryStore } from '../../src/state/memory-store';
import { compileAuth } from '../../src/http/auth';
import { parseConfig } from '../../src/config/load';
import { systemClock } from '../../src/resilience/clock';
import { composePolicies } from '../../src/resilience/policy';
import type { ProviderRuntime, Runtime } from '../../src/routing/runtime';
import { captureLogger } from '../helpers/gateway';
import { expectUnifiedShape } from '../helpers/shape';
import { createTracing } from '../../src/observability/tracing';

const CALLER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';

/** A runtime whose only provider has a bug: it throws instead of returning an outcome. */
function buggyRuntime(): Runtime {
  const loaded = parseConfig(
    'providers:\n  wh: { type: methodcall, url: "http://127.0.0.1:1/t" }\nroutes:\n  warehouse: { provider: wh }\n',
    'buggy.yaml',
    {},
  );
  if (!loaded.ok) throw new Error(loaded.problems.join());
  const cfg = loaded.value.config.providers.wh!;
  const entry: ProviderRuntime = {
    name: 'wh',
    config: cfg,
    run: composePolicies([], systemClock),
    circuitState: () => 'closed',
    provider: {
      name: 'wh',
      protocol: 'methodcall',
      checkTaskId: () => undefined,
      cancel: () => Promise.reject(new TypeError('a bug: cannot read properties of undefined')),
      close: () => Promise.resolve(),
    },
  };
  return {
    loaded: loaded.value,
    providers: new Map([['wh', entry]]),
    routes: new Map([['warehouse', { target: 'warehouse', chain: [entry], timeoutMs: 1000 }]]),
    acquire: () => () => undefined,
    close: () => Promise.resolve(),
  };
}

function contextOf(runtime: Runtime, draining: boolean, logger: Logger): HttpContext {
  const store = createMemoryStore(100);
  return {
    active: () => ({ runtime, auth: compileAuth(undefined) }),
    isDraining: () => draining,
    logger,
    metrics: createMetrics(),
    clock: systemClock,
    lastReloadError: () => undefined,
    store,
    replay: createCancelMemory(store, 60),
    tracing: createTracing({}),
  };
}

describe('internal_error', () => {
  it('turns a thrown bug into 500 in the unified shape and logs its stack', async () => {
    const { logger, logs } = captureLogger();
    const runtime = buggyRuntime();
    const app = createApp(contextOf(runtime, false, logger), { version: 'test' });
    const res = await request(app)
      .post('/cancel')
      .set('traceparent', `00-${CALLER_TRACE}-00f067aa0ba902b7-01`)
      .send({ target: 'warehouse', taskId: '1' });
    expect(res.status).toBe(500);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    // Nothing answered upstream: the provider threw before any attempt was counted.
    expect(res.headers['server-timing']).toMatch(/^gateway;dur=\d+\.\d, upstream;dur=0\.0$/);
    expectUnifiedShape(res.body, 500);
    expect(res.body).toMatchObject({
      outcome: 'internal_error',
      error: { code: 'INTERNAL_ERROR' },
    });
    expect(JSON.stringify(res.body)).not.toContain('cannot read properties');
    const errorLine = logs.lines().find((l) => l.msg === 'unhandled error');
    expect(errorLine).toBeDefined();
    expect(errorLine?.traceId).toBe(CALLER_TRACE);
    expect(JSON.stringify(errorLine)).toContain('a bug: cannot read properties of undefined');
    expect((errorLine!.err as { stack?: string }).stack).toContain('TypeError');
  });

  it('logs the trace it started for a caller without one', async () => {
    const { logger, logs } = captureLogger();
    const app = createApp(contextOf(buggyRuntime(), false, logger), { version: 'test' });
    const res = await request(app).post('/cancel').send({ target: 'warehouse', taskId: '2' });
    expect(res.status).toBe(500);
    expect(res.headers['server-timing']).toMatch(/^gateway;dur=/);
    const errorLine = logs.lines().find((l) => l.msg === 'unhandled error');
    expect(errorLine?.traceId).toMatch(/^[0-9a-f]{32}$/);
  });

  it('answers 503 DRAINING while shutting down, calling nothing', async () => {
    const { logger } = captureLogger();
    const runtime = buggyRuntime();
    const app = createApp(contextOf(runtime, true, logger), { version: 'test' });
    const res = await request(app).post('/cancel').send({ target: 'warehouse', taskId: '1' });
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('1');
    expect(res.body).toMatchObject({
      outcome: 'unavailable',
      retryable: true,
      error: { code: 'DRAINING' },
    });
    const ready = await request(app).get('/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body.status).toBe('draining');
  });
});
