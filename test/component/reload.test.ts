import { mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { startDynRestSimulator } from '../../src/simulators/dyn-rest';
import {
  startMethodcallSimulator,
  type MethodcallSimulator,
} from '../../src/simulators/methodcall';
import { postJson, startTestGateway, tempDir, type TestGateway } from '../helpers/gateway';

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

const server = { host: '127.0.0.1', port: 0 };
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
