import { stringify } from 'yaml';
import { parseConfig, type LoadedConfig } from '../../../src/config/load';
import { createTracing } from '../../../src/observability/tracing';
import type { ProviderDeps } from '../../../src/providers/provider';
import { systemClock, type Clock } from '../../../src/resilience/clock';
import {
  createRateWindows,
  JITTER_GUARD_MS,
  type RateWindows,
} from '../../../src/resilience/rate-limit';
import { dispatchCancel } from '../../../src/routing/dispatch';
import {
  abortInFlight,
  buildRuntime,
  handOver,
  providerChanges,
  type Runtime,
} from '../../../src/routing/runtime';
import { startDynRestSimulator, type DynRestSimulator } from '../../../src/simulators/dyn-rest';
import { startMethodcallSimulator } from '../../../src/simulators/methodcall';
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

function config(
  dnsExtra: Record<string, unknown> = {},
  routes: Record<string, unknown> = {},
  wh: Record<string, unknown> = { type: 'methodcall', url: 'http://127.0.0.1:9/task' },
) {
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
      wh,
    },
    routes: { dns: { provider: 'dns', timeoutMs: 2000 }, wh: { provider: 'wh' }, ...routes },
  };
}

function loaded(doc: Record<string, unknown>): LoadedConfig {
  const result = parseConfig(stringify(doc), 'test.yaml', {});
  if (!result.ok) throw new Error(result.problems.join('\n'));
  return result.value;
}

function depsOn(
  clock: Clock = systemClock,
  rateWindows: RateWindows = createRateWindows(clock),
): ProviderDeps {
  const { logger } = captureLogger();
  return {
    logger,
    projectRoot: process.cwd(),
    store: createMemoryStore(100),
    clock,
    rateWindows,
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

function cancel(runtime: Runtime, taskId: string, clock: Clock = systemClock, target = 'dns') {
  const { logger } = captureLogger();
  return dispatchCancel(
    runtime,
    { requestId: `r-${taskId}`, target, taskId },
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

describe('a rebuilt provider keeps its rate-limit window', () => {
  /** The outcomes of cancels of `ids` on `target`, one after another. */
  async function outcomes(runtime: Runtime, clock: Clock, ids: string[], target = 'dns') {
    const found: unknown[] = [];
    for (const id of ids) found.push((await cancel(runtime, id, clock, target)).body.outcome);
    return found;
  }

  it('a Dyn provider rebuilt by a reload, and the one retiring, draw from the same window', async () => {
    const clock = createFakeClock();
    const deps = depsOn(clock, createRateWindows(clock));
    const first = await build(config({ rateLimitPerSecond: 3 }), deps);
    expect(await outcomes(first, clock, ['601', '602', '603'])).toEqual([
      'canceled',
      'canceled',
      'canceled',
    ]);
    const second = await build(
      config({ rateLimitPerSecond: 3, jobPollIntervalMs: 300 }),
      deps,
      first,
    );
    expect(second.providers.get('dns')).not.toBe(first.providers.get('dns'));
    // A fresh window would let three more through in the same second.
    expect(await outcomes(second, clock, ['604'])).toEqual(['rate_limited']);
    expect(await outcomes(first, clock, ['605'])).toEqual(['rate_limited']);
    await handOver(first, second);
    await clock.advance(1000 + JITTER_GUARD_MS);
    expect(await outcomes(second, clock, ['606', '607', '608', '609'])).toEqual([
      'canceled',
      'canceled',
      'canceled',
      'rate_limited',
    ]);
    expect(dyn.callsTo('DELETE', '/REST/Task')).toHaveLength(6);
  });

  it('a methodcall provider whose rateLimitPerSecond a reload changed keeps its calls, at the new limit', async () => {
    const wh = await startMethodcallSimulator();
    try {
      const clock = createFakeClock();
      const windows = createRateWindows(clock);
      const deps = depsOn(clock, windows);
      const doc = (rateLimitPerSecond: number) =>
        config({}, {}, { type: 'methodcall', url: wh.taskUrl, rateLimitPerSecond });
      const first = await build(doc(2), deps);
      expect(await outcomes(first, clock, ['1', '2'], 'wh')).toEqual(['canceled', 'canceled']);
      const second = await build(doc(3), deps, first);
      expect(providerChanges(first, second).rebuilt).toEqual(['wh']);
      // Two of the three calls of this second are made: one more, on either instance.
      expect(await outcomes(second, clock, ['3', '4'], 'wh')).toEqual(['canceled', 'rate_limited']);
      expect(await outcomes(first, clock, ['5'], 'wh')).toEqual(['rate_limited']);
      await handOver(first, second);
      await clock.advance(1000 + JITTER_GUARD_MS);
      expect(await outcomes(second, clock, ['6', '7', '8', '9'], 'wh')).toEqual([
        'canceled',
        'canceled',
        'canceled',
        'rate_limited',
      ]);
      expect(wh.calls).toHaveLength(6);
    } finally {
      await wh.close();
    }
  });

  it('a failed reload leaves the serving provider at its own rate', async () => {
    const wh = await startMethodcallSimulator();
    try {
      const clock = createFakeClock();
      const deps = depsOn(clock, createRateWindows(clock));
      const doc = (rateLimitPerSecond: number) =>
        config({}, {}, { type: 'methodcall', url: wh.taskUrl, rateLimitPerSecond });
      const first = await build(doc(3), deps);
      expect(await outcomes(first, clock, ['1'], 'wh')).toEqual(['canceled']);
      // Valid, but a provider built after the rebuilt `wh` cannot start: the reload fails.
      const failing = doc(1);
      const { baseUrl: _restOnly, ...account } = failing.providers.dns;
      const broken = {
        ...failing.providers,
        soap: { ...account, type: 'dyn-soap', wsdl: 'no/such.wsdl' },
      };
      await expect(build({ ...failing, providers: broken }, deps, first)).rejects.toThrow('wsdl');
      expect(await outcomes(first, clock, ['2', '3', '4'], 'wh')).toEqual([
        'canceled',
        'canceled',
        'rate_limited',
      ]);
    } finally {
      await wh.close();
    }
  });

  it('drops the window of a provider removed for good once its last second has passed', async () => {
    const wh = await startMethodcallSimulator();
    try {
      const clock = createFakeClock();
      const windows = createRateWindows(clock);
      const deps = depsOn(clock, windows);
      const withWh = config({}, {}, { type: 'methodcall', url: wh.taskUrl, rateLimitPerSecond: 2 });
      const first = await build(withWh, deps);
      expect(await outcomes(first, clock, ['1'], 'wh')).toEqual(['canceled']);
      expect(windows.size()).toBe(2);
      const { wh: _gone, ...providers } = withWh.providers;
      const second = await build(
        { ...withWh, providers, routes: { dns: withWh.routes.dns } },
        deps,
        first,
      );
      await handOver(first, second);
      // Its call still counts for the rest of its window, should it come back at once.
      expect(windows.size()).toBe(2);
      await clock.advance(1000 + JITTER_GUARD_MS);
      expect(windows.size()).toBe(1);
    } finally {
      await wh.close();
    }
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
