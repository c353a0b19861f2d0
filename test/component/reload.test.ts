import { createHash } from 'node:crypto';
import { mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { stringify } from 'yaml';
import { startDynRestSimulator, type DynRestSimulator } from '../../src/simulators/dyn-rest';
import {
  startMethodcallSimulator,
  type MethodcallSimulator,
} from '../../src/simulators/methodcall';
import { spawnGateway, type ChildGateway } from '../helpers/child';
import {
  postJson,
  startTestGateway,
  tempDir,
  writeConfig,
  type TestGateway,
} from '../helpers/gateway';

let a: MethodcallSimulator;
let b: MethodcallSimulator;
let gateway: TestGateway | undefined;

beforeEach(async () => {
  a = await startMethodcallSimulator();
  b = await startMethodcallSimulator();
});

afterEach(async () => {
  await gateway?.close();
  gateway = undefined;
  await a.close();
  await b.close();
});

const server = { host: '127.0.0.1', port: 0, drainWindowMs: 0 };
const configFor = (url: string, extraRoutes: Record<string, unknown> = {}) => ({
  server,
  providers: { wh: { type: 'methodcall', url } },
  routes: { warehouse: { provider: 'wh' }, ...extraRoutes },
});

const reloaded = (gw: TestGateway, count = 1) =>
  gw.logs.waitForCount((l) => l.msg === 'config reloaded', count);

async function readyz(gw: TestGateway) {
  return (await (await fetch(`${gw.url}/readyz`)).json()) as {
    configVersion: string;
    lastReloadError?: { at: string; problems: string[] };
  };
}

describe('reload on file change', () => {
  it('applies a valid edit without a signal: new routing, new configVersion', async () => {
    gateway = await startTestGateway(configFor(a.taskUrl));
    const before = await readyz(gateway);
    writeFileSync(
      gateway.configFile,
      stringify(configFor(b.taskUrl, { second: { provider: 'wh' } })),
    );
    await reloaded(gateway);
    const after = await readyz(gateway);
    expect(after.configVersion).not.toBe(before.configVersion);
    expect((await postJson(`${gateway.url}/cancel`, { target: 'second', taskId: 7 })).status).toBe(
      200,
    );
    expect(b.calls.map((c) => c.taskId)).toEqual(['7']);
    expect(a.calls).toHaveLength(0);
  });

  it('keeps the running config on an invalid file, says why in /readyz, and counts it', async () => {
    gateway = await startTestGateway(configFor(a.taskUrl));
    const before = await readyz(gateway);
    writeFileSync(
      gateway.configFile,
      stringify({ ...configFor(a.taskUrl), routes: { x: { provider: 'ghost' } } }),
    );
    await gateway.logs.waitFor(
      (l) => l.msg === 'config reload rejected; keeping the running config',
    );
    const during = await readyz(gateway);
    expect(during.configVersion).toBe(before.configVersion);
    expect(during.lastReloadError?.problems).toEqual([
      'routes.x.provider: unknown provider "ghost"',
    ]);
    expect(
      (await postJson(`${gateway.url}/cancel`, { target: 'warehouse', taskId: 8 })).status,
    ).toBe(200);
    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    expect(metrics).toMatch(/^gateway_config_reloads_total\{result="failure"\} [1-9]/m);

    // Fixing the file clears the error.
    writeFileSync(gateway.configFile, stringify(configFor(b.taskUrl)));
    await reloaded(gateway);
    expect((await readyz(gateway)).lastReloadError).toBeUndefined();
  });

  it('lets an in-flight request finish on the provider it started with', async () => {
    gateway = await startTestGateway(configFor(a.taskUrl));
    a.setBehaviour(1, { kind: 'hold' });
    const inFlight = postJson(`${gateway.url}/cancel`, { target: 'warehouse', taskId: 1 });
    await a.waitForCalls(1);
    writeFileSync(gateway.configFile, stringify(configFor(b.taskUrl)));
    await reloaded(gateway);
    // New requests go to the new provider at once; the old one still serves the held request.
    expect(
      (await postJson(`${gateway.url}/cancel`, { target: 'warehouse', taskId: 2 })).status,
    ).toBe(200);
    expect(b.calls.map((c) => c.taskId)).toEqual(['2']);
    a.releaseHeld();
    const first = await inFlight;
    expect(first.status).toBe(200);
    expect(first.body.outcome).toBe('canceled');
  });

  it('sees a Kubernetes ConfigMap update (the ..data symlink swapped)', async () => {
    // The layout kubelet makes: file -> ..data/file, ..data -> ..<timestamp>/
    const dir = tempDir();
    const v1 = path.join(dir, '..2026_11_22_v1');
    const v2 = path.join(dir, '..2026_11_22_v2');
    mkdirSync(v1);
    mkdirSync(v2);
    writeFileSync(path.join(v1, 'gateway.yaml'), stringify(configFor(a.taskUrl)));
    writeFileSync(
      path.join(v2, 'gateway.yaml'),
      stringify(configFor(b.taskUrl, { swapped: { provider: 'wh' } })),
    );
    symlinkSync(path.basename(v1), path.join(dir, '..data'));
    symlinkSync(path.join('..data', 'gateway.yaml'), path.join(dir, 'gateway.yaml'));
    gateway = await startTestGateway({}, {}, path.join(dir, 'gateway.yaml'));
    expect(
      (await postJson(`${gateway.url}/cancel`, { target: 'warehouse', taskId: 1 })).status,
    ).toBe(200);
    // Atomic swap, as kubelet does it: a new symlink renamed over ..data.
    symlinkSync(path.basename(v2), path.join(dir, '..data_tmp'));
    renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
    await reloaded(gateway);
    expect((await postJson(`${gateway.url}/cancel`, { target: 'swapped', taskId: 2 })).status).toBe(
      200,
    );
    expect(b.calls.map((c) => c.taskId)).toEqual(['2']);
  });

  it('logs out the Dyn sessions of a provider the new config retires', async () => {
    const dyn = await startDynRestSimulator();
    try {
      const withDyn = {
        ...configFor(a.taskUrl),
        providers: {
          wh: { type: 'methodcall', url: a.taskUrl },
          dns: {
            type: 'dyn-rest',
            baseUrl: dyn.baseUrl,
            customerName: 'acme',
            userName: 'api-user',
            password: 'sim-password',
          },
        },
        routes: { warehouse: { provider: 'wh' }, dns: { provider: 'dns' } },
      };
      gateway = await startTestGateway(withDyn);
      expect((await postJson(`${gateway.url}/cancel`, { target: 'dns', taskId: 5 })).status).toBe(
        200,
      );
      expect(dyn.activeSessions()).toBe(1);
      writeFileSync(gateway.configFile, stringify(configFor(a.taskUrl)));
      await reloaded(gateway);
      await dyn.waitUntil((calls) =>
        calls.some((c) => c.method === 'DELETE' && /session/i.test(c.path)),
      );
      expect(dyn.activeSessions()).toBe(0);
    } finally {
      await gateway?.close();
      gateway = undefined;
      await dyn.close();
    }
  });
});

describe('what a reload says', () => {
  it('logs "config unchanged" when the file did not change, and counts it', async () => {
    gateway = await startTestGateway(configFor(a.taskUrl));
    const result = await gateway.gw.reload();
    expect(result.ok).toBe(true);
    await gateway.logs.waitFor((l) => l.msg === 'config unchanged');
    expect(gateway.logs.lines().some((l) => l.msg === 'config reloaded')).toBe(false);
    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    expect(metrics).toMatch(/^gateway_config_reloads_total\{result="unchanged"\} 1$/m);
  });

  it('names the providers and routes added, removed and changed, never their settings', async () => {
    gateway = await startTestGateway({
      server,
      providers: {
        wh: { type: 'methodcall', url: a.taskUrl },
        old: { type: 'methodcall', url: a.taskUrl },
      },
      routes: { warehouse: { provider: 'wh' }, legacy: { provider: 'old' } },
    });
    writeFileSync(
      gateway.configFile,
      stringify({
        server,
        providers: {
          wh: { type: 'methodcall', url: b.taskUrl },
          fresh: { type: 'methodcall', url: a.taskUrl },
        },
        routes: { warehouse: { provider: 'wh', timeoutMs: 2000 }, added: { provider: 'fresh' } },
      }),
    );
    expect((await gateway.gw.reload()).ok).toBe(true);
    const line = gateway.logs.lines().find((l) => l.msg === 'config reloaded');
    expect(line).toMatchObject({
      providers: { added: ['fresh'], removed: ['old'], changed: ['wh'] },
      routes: { added: ['added'], removed: ['legacy'], changed: ['warehouse'] },
      sections: [],
    });
    expect(JSON.stringify(line)).not.toContain(b.taskUrl);
  });
});

/** The `configVersion` a file with this text gets (load.ts: the first 12 hex of its SHA-256). */
const versionOf = (text: string): string =>
  createHash('sha256').update(text).digest('hex').slice(0, 12);

/** Writes `doc` over `file`, sends SIGHUP and resolves with the reload's log line. */
async function reloadChild(
  gw: ChildGateway,
  file: string,
  doc: unknown,
): Promise<Record<string, unknown>> {
  const text = stringify(doc);
  writeFileSync(file, text);
  gw.child.kill('SIGHUP');
  const version = versionOf(text);
  return gw.waitForLine((l) => l.msg === 'config reloaded' && l.configVersion === version);
}

describe('reloads in a child process keep what did not change', () => {
  let dyn: DynRestSimulator;
  let child: ChildGateway | undefined;
  /** When each cancel (DELETE /Task) reached the simulator, on this process's clock. */
  let deletes: number[];

  beforeEach(async () => {
    dyn = await startDynRestSimulator();
    deletes = [];
    dyn.server.on('request', (req: IncomingMessage) => {
      if (req.method === 'DELETE' && /\/task\//i.test(req.url ?? ''))
        deletes.push(performance.now());
    });
  });

  afterEach(async () => {
    if (child !== undefined && child.child.exitCode === null) {
      child.child.kill('SIGTERM');
      await child.exited;
    }
    child = undefined;
    await dyn.close();
  });

  const dynProvider = (extra: Record<string, unknown> = {}) => ({
    type: 'dyn-rest',
    baseUrl: dyn.baseUrl,
    customerName: 'acme',
    userName: 'api-user',
    password: 'sim-password',
    ...extra,
  });
  const logins = (): number => dyn.callsTo('POST', '/REST/Session').length;
  const logouts = (): number => dyn.callsTo('DELETE', '/REST/Session').length;
  /** The most DELETEs that reached Dyn within any 1-second window. */
  const mostInAnySecond = (times: number[]): number => {
    let most = 0;
    for (let i = 0, j = 0; j < times.length; j++) {
      while ((times[j] ?? 0) - (times[i] ?? 0) >= 1000) i++;
      most = Math.max(most, j - i + 1);
    }
    return most;
  };

  /**
   * Two callers cancel a stream of fresh tasks well above 5/s (no replay, no single-flight) while
   * 20 reloads of `doc(i)` come 200 ms apart, from the first refusal on.
   */
  async function storm(doc: (i: number) => object, firstTaskId: number) {
    const file = writeConfig(doc(0));
    child = await spawnGateway(file);
    const gw = child;
    let next = firstTaskId;
    let running = true;
    const statuses = new Map<number, number>();
    const loop = async (): Promise<void> => {
      while (running) {
        const res = await postJson(`${gw.url}/cancel`, { target: 'dns', taskId: next++ });
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        await delay(25);
      }
    };
    const started = performance.now();
    const loops = [loop(), loop()];
    await gw.waitForLine((l) => l.msg === 'cancel' && l.status === 429);
    const lines: Record<string, unknown>[] = [];
    for (let i = 1; i <= 20; i++) {
      lines.push(await reloadChild(gw, file, doc(i)));
      await delay(200);
    }
    running = false;
    await Promise.all(loops);
    return { statuses, lines, seconds: (performance.now() - started) / 1000 };
  }

  /** What holds in every storm: nothing failed, and the window's bounds on the DELETEs. */
  function expectWithinLimit(statuses: Map<number, number>, seconds: number): void {
    // Each answer was a cancel or a refusal by the gateway's own limit, nothing else.
    expect([...statuses.keys()].sort()).toEqual([200, 429]);
    // The window's own bound over the whole run (5 in any second): exact, whatever the
    // scheduling. A fresh window per reload would add up to 5 per reload.
    expect(deletes.length).toBeLessThanOrEqual(5 * Math.ceil(seconds));
    // Every 1-second window. The gateway sends at most 5 in any second, but arrival times are
    // taken in this process, so a pause of ~200 ms of either process piles up one or two more: 2
    // of tolerance, far below the 5 a reload with a fresh window adds.
    expect(mostInAnySecond(deletes)).toBeLessThanOrEqual(5 + 2);
  }

  it('a reload storm never lets more than the rate limit through, and logs in no more', async () => {
    const { statuses, lines, seconds } = await storm(
      (i) => ({
        server,
        providers: {
          dns: dynProvider({ rateLimitPerSecond: 5 }),
          wh: { type: 'methodcall', url: a.taskUrl, timeoutMs: 1000 + (i % 2) },
        },
        routes: { dns: { provider: 'dns' }, [`extra-${i}`]: { provider: 'wh' } },
      }),
      10_000,
    );
    for (const line of lines) {
      expect(line.providers).toMatchObject({ kept: ['dns'], rebuilt: ['wh'], retiring: ['wh'] });
    }
    expectWithinLimit(statuses, seconds);
    // Logins: the pool's sessions, none logged out, none added by the reloads.
    expect(logouts()).toBe(0);
    expect(logins()).toBe(dyn.activeSessions());
    expect(logins()).toBeLessThanOrEqual(4);
  }, 60_000);

  it('a reload storm that rebuilds the Dyn provider every time still keeps to its rate limit', async () => {
    // Every reload changes a setting of `dns` (its timeoutMs): each one rebuilds it, and the
    // instance it replaces retires while its requests finish. Each draws from its predecessor's
    // window.
    const { statuses, lines, seconds } = await storm(
      (i) => ({
        server,
        providers: { dns: dynProvider({ rateLimitPerSecond: 5, timeoutMs: 15_000 + i }) },
        routes: { dns: { provider: 'dns' } },
      }),
      20_000,
    );
    for (const line of lines) {
      expect(line.providers).toMatchObject({ kept: [], rebuilt: ['dns'], retiring: ['dns'] });
    }
    expectWithinLimit(statuses, seconds);
  }, 60_000);

  it('a reload that changes a provider during its slow cancel: it completes, then logs out', async () => {
    // A grace far shorter than the slow cancel: retiring is bounded by deadlines, not by it.
    const doc = (pollMs: number) => ({
      server: { ...server, shutdownGraceMs: 200 },
      providers: { dns: dynProvider({ jobPollIntervalMs: pollMs }) },
      routes: { dns: { provider: 'dns' } },
    });
    const file = writeConfig(doc(500));
    child = await spawnGateway(file);
    const gw = child;
    dyn.setBehaviour(7001, { kind: 'slow', delayMs: 1500 });
    const slow = postJson(`${gw.url}/cancel`, { target: 'dns', taskId: 7001 });
    await dyn.waitUntil((calls) => calls.some((c) => c.path.includes('7001')));
    const line = await reloadChild(gw, file, doc(400));
    expect(line.providers).toMatchObject({ kept: [], rebuilt: ['dns'], retiring: ['dns'] });
    // New requests run on the new provider (a login of its own) while the old one still works.
    expect((await postJson(`${gw.url}/cancel`, { target: 'dns', taskId: 7002 })).status).toBe(200);
    expect(logins()).toBe(2);
    expect(logouts()).toBe(0);
    const answer = await slow;
    expect(answer.status).toBe(200);
    expect(answer.body.outcome).toBe('canceled');
    await gw.waitForLine((l) => l.msg === 'retired provider closed' && l.provider === 'dns');
    await dyn.waitUntil(() => logouts() === 1);
    expect(dyn.activeSessions()).toBe(1);
  }, 30_000);

  it('a cancel waiting for a session is not failed by a reload, kept or changed provider', async () => {
    const doc = (maxQueue: number, extraRoute = false) => ({
      server: { ...server, shutdownGraceMs: 200 },
      // Above the two rounds' 8 cancels within about a second: the rate limit is not tested here
      // (a rebuilt provider keeps its window).
      providers: { dns: dynProvider({ maxSessions: 1, maxQueue, rateLimitPerSecond: 100 }) },
      routes: { dns: { provider: 'dns' }, ...(extraRoute ? { other: { provider: 'dns' } } : {}) },
    });
    const file = writeConfig(doc(100));
    child = await spawnGateway(file);
    const gw = child;
    const rounds = [
      { first: 8001, changed: false, next: doc(100, true) },
      { first: 8011, changed: true, next: doc(99) },
    ];
    for (const { first, changed, next } of rounds) {
      dyn.setBehaviour(first, { kind: 'slow', delayMs: 1000 });
      const holder = postJson(`${gw.url}/cancel`, { target: 'dns', taskId: first });
      await dyn.waitUntil((calls) => calls.some((c) => c.path.includes(String(first))));
      // These wait for the one session the slow cancel holds.
      const waiting = [1, 2, 3].map((k) =>
        postJson(`${gw.url}/cancel`, { target: 'dns', taskId: first + k }),
      );
      const line = await reloadChild(gw, file, next);
      expect(line.providers).toMatchObject(changed ? { rebuilt: ['dns'] } : { kept: ['dns'] });
      for (const res of await Promise.all([holder, ...waiting])) {
        expect(res.status).toBe(200);
        expect(res.body.outcome).toBe('canceled');
      }
    }
    await gw.waitForLine((l) => l.msg === 'retired provider closed' && l.provider === 'dns');
  }, 30_000);
});
