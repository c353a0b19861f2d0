import { stringify } from 'yaml';
import { parseConfig, type LoadedConfig } from '../../../src/config/load';
import { createTracing } from '../../../src/observability/tracing';
import type { ProviderDeps } from '../../../src/providers/provider';
import { systemClock, type Clock } from '../../../src/resilience/clock';
import { dispatchCancel } from '../../../src/routing/dispatch';
import {
  abortInFlight,
  buildRuntime,
  handOver,
  providerChanges,
  type Runtime,
} from '../../../src/routing/runtime';
import { startDynRestSimulator, type DynRestSimulator } from '../../../src/simulators/dyn-rest';
import { createMemoryStore } from '../../../src/state/memory-store';
import { createFakeClock, settle } from '../../helpers/fake-clock';
import { captureLogger } from '../../helpers/gateway';

let dyn: DynRestSimulator;
const runtimes: Runtime[] = [];

beforeEach(async () => {
  dyn = await startDynRestSimulator();
});

afterEach(async () => {
  for (const runtime of runtimes.splice(0)) await runtime.close(0);
  await dyn.close();
});

function config(dnsExtra: Record<string, unknown> = {}, routes: Record<string, unknown> = {}) {
  return {
    server: { receiveTimeoutMs: 1000 },
    providers: {
      dns: {
        type: 'dyn-rest',
        baseUrl: dyn.baseUrl,
        customerName: 'acme',
        userName: 'api-user',
        password: 'sim-password',
        ...dnsExtra,
      },
      wh: { type: 'methodcall', url: 'http://127.0.0.1:9/task' },
    },
    routes: { dns: { provider: 'dns', timeoutMs: 2000 }, wh: { provider: 'wh' }, ...routes },
  };
}

function loaded(doc: Record<string, unknown>): LoadedConfig {
  const result = parseConfig(stringify(doc), 'test.yaml', {});
  if (!result.ok) throw new Error(result.problems.join('\n'));
  return result.value;
}

function depsOn(clock: Clock = systemClock): ProviderDeps {
  const { logger } = captureLogger();
  return {
    logger,
    projectRoot: process.cwd(),
    store: createMemoryStore(100),
    clock,
    userAgent: 'test',
    env: {},
    tracer: createTracing({}).tracer,
  };
}

async function build(
  doc: Record<string, unknown>,
  deps: ProviderDeps,
  previous?: Runtime,
): Promise<Runtime> {
  const runtime = await buildRuntime(loaded(doc), deps, previous);
  runtimes.push(runtime);
  return runtime;
}

function cancel(runtime: Runtime, taskId: string, clock: Clock = systemClock) {
  const { logger } = captureLogger();
  return dispatchCancel(
    runtime,
    { requestId: `r-${taskId}`, target: 'dns', taskId },
    {
      log: logger,
      clock,
    },
  );
}

const logouts = (): number => dyn.callsTo('DELETE', '/REST/Session').length;

/** Resolves true when `promise` settles within a few turns of the event loop. */
async function settlesSoon(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true));
  for (let i = 0; i < 5; i++) await settle();
  return done;
}

describe('a reload keeps what did not change', () => {
  it('takes over a provider with deep-equal settings: the same object, breaker and sessions', async () => {
    const deps = depsOn();
    const first = await build(config(), deps);
    expect((await cancel(first, '101')).body.outcome).toBe('canceled');
    const second = await build(config({}, { other: { provider: 'dns' } }), deps, first);
    expect(second.providers.get('dns')).toBe(first.providers.get('dns'));
    expect(second.providers.get('wh')).toBe(first.providers.get('wh'));
    expect(second.routes.get('other')?.chain[0]).toBe(first.providers.get('dns'));
    expect(providerChanges(first, second)).toEqual({
      kept: ['dns', 'wh'],
      rebuilt: [],
      retiring: [],
    });
    await handOver(first, second);
    expect((await cancel(second, '102')).body.outcome).toBe('canceled');
    // One login for both cancels, and nothing logged out: the session pool is the same.
    expect(dyn.callsTo('POST', '/REST/Session')).toHaveLength(1);
    expect(logouts()).toBe(0);
  });

  it('builds a provider whose settings changed and keeps the others', async () => {
    const deps = depsOn();
    const first = await build(config(), deps);
    const second = await build(config({ jobPollIntervalMs: 300 }), deps, first);
    expect(second.providers.get('dns')).not.toBe(first.providers.get('dns'));
    expect(providerChanges(first, second)).toEqual({
      kept: ['wh'],
      rebuilt: ['dns'],
      retiring: ['dns'],
    });
  });
});

describe('a retired provider', () => {
  it('closes (logs out) only once no request that started on its runtime is left', async () => {
    const deps = depsOn();
    const first = await build(config(), deps);
    const release = first.acquire();
    expect((await cancel(first, '201')).body.outcome).toBe('canceled');
    const second = await build(config({ maxSessions: 2 }), deps, first);
    const retired = handOver(first, second);
    // The request admitted on the first runtime may still fall back or retry on it.
    expect(await settlesSoon(retired)).toBe(false);
    expect(logouts()).toBe(0);
    release();
    await retired;
    expect(logouts()).toBe(1);
    expect(dyn.activeSessions()).toBe(0);
  });

  it('is closed at the latest after its longest route deadline plus the receive timeout', async () => {
    const clock = createFakeClock();
    const deps = depsOn(clock);
    const first = await build(config(), deps);
    first.acquire(); // never released: a request that never ends
    const second = await build(config({ maxSessions: 2 }), deps, first);
    const retired = handOver(first, second);
    await clock.advance(2000 + 1000 - 1);
    expect(await settlesSoon(retired)).toBe(false);
    await clock.advance(1);
    await retired;
  });

  it('lets a call running on it finish though the reload happened meanwhile', async () => {
    dyn.setBehaviour(301, { kind: 'slow', delayMs: 300 });
    const deps = depsOn();
    const first = await build(config(), deps);
    const release = first.acquire();
    const slow = cancel(first, '301');
    await dyn.waitUntil((calls) =>
      calls.some((c) => c.method === 'DELETE' && c.path.includes('301')),
    );
    const second = await build(config({ maxSessions: 2 }), deps, first);
    const retired = handOver(first, second);
    expect((await slow).body.outcome).toBe('canceled');
    release();
    await retired;
    expect(logouts()).toBe(1);
  });
});

describe('the drain cut-off', () => {
  it('ends the calls in flight at once: timeout, never an empty answer', async () => {
    dyn.setBehaviour(401, { kind: 'slow', delayMs: 30_000 });
    const runtime = await build(config({}, {}), depsOn());
    const slow = cancel(runtime, '401');
    await dyn.waitUntil((calls) =>
      calls.some((c) => c.method === 'DELETE' && c.path.includes('401')),
    );
    expect(abortInFlight(runtime)).toBe(1);
    const answer = await slow;
    expect(answer.body.outcome).toBe('timeout');
    await runtime.close(0);
    expect(dyn.activeSessions()).toBe(0);
  });

  it('close() closes the providers of earlier runtimes still retiring, too', async () => {
    const deps = depsOn();
    const first = await build(config(), deps);
    first.acquire();
    expect((await cancel(first, '501')).body.outcome).toBe('canceled');
    const second = await build(config({ maxSessions: 2 }), deps, first);
    const retired = handOver(first, second);
    await second.close(0);
    await retired;
    expect(dyn.activeSessions()).toBe(0);
    await expect(build(config(), deps, second)).rejects.toThrow('stopping');
  });
});
