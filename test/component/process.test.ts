import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import path from 'node:path';
import { stringify } from 'yaml';
import {
  startMethodcallSimulator,
  type MethodcallSimulator,
} from '../../src/simulators/methodcall';
import { runMain, spawnGateway } from '../helpers/child';
import { postJson, tempDir, writeConfig } from '../helpers/gateway';
import { startRedis } from '../helpers/redis';

let sim: MethodcallSimulator;

beforeAll(async () => {
  sim = await startMethodcallSimulator();
});

afterAll(async () => {
  await sim.close();
});

const baseConfig = () => ({
  server: { host: '127.0.0.1', port: 0, shutdownGraceMs: 10000 },
  providers: { wh: { type: 'methodcall', url: sim.taskUrl } },
  routes: { warehouse: { provider: 'wh' } },
});

describe('check-config', () => {
  it('exits 0 with a one-line summary for a valid file', async () => {
    const file = writeConfig(baseConfig());
    const { code, stdout } = await runMain(['check-config', file]);
    expect(code).toBe(0);
    expect(stdout.trim().split('\n')).toHaveLength(1);
    expect(stdout).toMatch(/^ok: .* is valid: 1 provider\(s\) \(methodcall\), 1 route\(s\)/);
  });

  it('validates the shipped example and demo configs', async () => {
    const example = await runMain(['check-config', 'config/gateway.yaml'], { DYN_PASSWORD: 'x' });
    expect(example.stderr).toBe('');
    expect(example.code).toBe(0);
    // The example keeps the Dyn password out of the file: without the variable it is an error.
    const unset = await runMain(['check-config', 'config/gateway.yaml']);
    expect(unset.code).toBe(1);
    expect(unset.stderr).toContain('DYN_PASSWORD');
    expect((await runMain(['check-config', 'config/demo.yaml'])).code).toBe(0);
  });

  it('exits 1 with one line per problem, each naming its path', async () => {
    const file = writeConfig(`
providers:
  dns-rest: { type: dyn-rest, baseUrl: not-a-url, customerName: c, userName: u, password: "\${DYN_PASSWORD}" }
routes:
  dns: { provider: dns-rest, fallback: [ghost] }
`);
    const missingEnv = await runMain(['check-config', file]);
    expect(missingEnv.code).toBe(1);
    expect(missingEnv.stderr.trim()).toBe(
      'providers.dns-rest.password: environment variable DYN_PASSWORD is not set',
    );

    const { code, stderr } = await runMain(['check-config', file], { DYN_PASSWORD: 'secret' });
    expect(code).toBe(1);
    const lines = stderr.trim().split('\n');
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^providers\.dns-rest\.baseUrl: /),
        'routes.dns.fallback.0: unknown provider "ghost"',
      ]),
    );
    expect(stderr).not.toContain('secret');
  });

  it('loads each dyn-soap WSDL and reports a broken one at its path', async () => {
    const dyn = { customerName: 'c', userName: 'u', password: 'p' };
    const notDyn = path.join(tempDir(), 'other.wsdl');
    writeFileSync(
      notDyn,
      readFileSync('wsdl/dynect.wsdl', 'utf8').replaceAll('DynectSOAP', 'OtherPort'),
    );
    const file = writeConfig({
      providers: {
        good: { type: 'dyn-soap', wsdl: 'wsdl/dynect.wsdl', ...dyn },
        missing: { type: 'dyn-soap', wsdl: 'wsdl/nope.wsdl', ...dyn },
        garbage: { type: 'dyn-soap', wsdl: 'package.json', ...dyn },
        wrong: { type: 'dyn-soap', wsdl: notDyn, ...dyn },
      },
      routes: { dns: { provider: 'good' } },
    });
    const { code, stderr } = await runMain(['check-config', file]);
    expect(code).toBe(1);
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(
      /^providers\.missing\.wsdl: cannot read the WSDL wsdl\/nope\.wsdl \(.*wsdl\/nope\.wsdl\): no such file$/,
    );
    expect(lines[1]).toMatch(/^providers\.garbage\.wsdl: cannot load the WSDL package\.json/);
    expect(lines[2]).toBe(
      `providers.wrong.wsdl: the WSDL ${notDyn} has no service "Dynect" with port "DynectSOAP"`,
    );
    // The same problem stops the gateway at start, not at the first request.
    const start = await runMain(['--config', file]);
    expect(start.code).toBe(1);
    expect(start.stderr).toContain('providers.missing.wsdl: cannot read the WSDL');
  });

  it('refuses a server.host that is neither an IP address nor a host name', async () => {
    const file = writeConfig({ ...baseConfig(), server: { host: '127.0.0.999' } });
    const { code, stdout, stderr } = await runMain(['check-config', file]);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toBe(
      'server.host: expected an IPv4 or IPv6 address or a host name, got "127.0.0.999"\n',
    );
  });

  it('exits 2 on a usage error', async () => {
    expect((await runMain(['check-config'])).code).toBe(2);
  });
});

describe('start-up', () => {
  it('points at the demo when the default config lacks its credentials', async () => {
    const { code, stderr } = await runMain([]);
    expect(code).toBe(1);
    expect(stderr).toContain('DYN_PASSWORD is not set');
    expect(stderr).toContain('run `npm run demo`');
    expect(stderr).not.toMatch(/\n\s+at /);
  });

  it('refuses to start on an invalid config, exit 1, naming the problem', async () => {
    const file = writeConfig({ ...baseConfig(), routes: { warehouse: { provider: 'nope' } } });
    const { code, stderr } = await runMain(['--config', file]);
    expect(code).toBe(1);
    expect(stderr).toContain('routes.warehouse.provider: unknown provider "nope"');
  });

  it('reads the config file from GATEWAY_CONFIG', async () => {
    const file = writeConfig({ ...baseConfig(), routes: { warehouse: { provider: 'nope' } } });
    const { code, stderr } = await runMain([], { GATEWAY_CONFIG: file });
    expect(code).toBe(1);
    expect(stderr).toContain(file);
  });
});

/** A loopback port held by another server for the duration of `use`. */
async function withBusyPort<T>(use: (port: number) => Promise<T>): Promise<T> {
  const holder: Server = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  try {
    return await use((holder.address() as { port: number }).port);
  } finally {
    await new Promise<void>((resolve) => {
      holder.close(() => {
        resolve();
      });
    });
  }
}

describe('start-up: an address that cannot be bound is one line, exit 1, no stack trace', () => {
  it('names a busy port and the way to pick another', async () => {
    await withBusyPort(async (port) => {
      const file = writeConfig({ ...baseConfig(), server: { host: '127.0.0.1', port } });
      const { code, stderr } = await runMain(['--config', file]);
      expect(code).toBe(1);
      expect(stderr).toBe(
        `cannot listen on 127.0.0.1:${port}: the address is in use (EADDRINUSE); set PORT= or server.port\n`,
      );
    });
  });

  it('says the same when PORT= picks the busy port', async () => {
    await withBusyPort(async (port) => {
      const { code, stderr } = await runMain(['--config', writeConfig(baseConfig())], {
        PORT: String(port),
      });
      expect(code).toBe(1);
      expect(stderr).toMatch(
        /^cannot listen on 127\.0\.0\.1:\d+: the address is in use \(EADDRINUSE\)/,
      );
      expect(stderr).not.toMatch(/^\s+at /m);
    });
  });

  it('names an address that is not on this machine (HOST=)', async () => {
    // 192.0.2.1 is TEST-NET-1 (RFC 5737): never assigned to a real interface.
    const { code, stderr } = await runMain(['--config', writeConfig(baseConfig())], {
      HOST: '192.0.2.1',
    });
    expect(code).toBe(1);
    expect(stderr).toMatch(
      /^cannot listen on 192\.0\.2\.1:0: the address is not one of this machine \(EADDRNOTAVAIL\); set HOST= or server\.host\n$/,
    );
  });

  it('refuses a host that is no address at start, before listening', async () => {
    const file = writeConfig({ ...baseConfig(), server: { host: '127.0.0.999', port: 0 } });
    const { code, stderr } = await runMain(['--config', file]);
    expect(code).toBe(1);
    expect(stderr).toContain('server.host: expected an IPv4 or IPv6 address or a host name');
    expect(stderr).not.toContain('ENOTFOUND');
  });

  it('closes the store it opened: the process exits though a Redis connection was up', async () => {
    const redis = await startRedis();
    try {
      await withBusyPort(async (port) => {
        const file = writeConfig({
          ...baseConfig(),
          server: { host: '127.0.0.1', port },
          state: { store: 'redis', redisUrl: redis.url },
        });
        // An open ioredis client would keep the child's event loop alive: runMain never returns.
        const { code, stderr } = await runMain(['--config', file]);
        expect(code).toBe(1);
        expect(stderr).toBe(
          `cannot listen on 127.0.0.1:${port}: the address is in use (EADDRINUSE); set PORT= or server.port\n`,
        );
      });
    } finally {
      await redis.stop();
    }
  });
});

describe('drain on SIGTERM', () => {
  it('finishes the in-flight request, refuses new connections, exits 0', async () => {
    const file = writeConfig(baseConfig());
    const gw = await spawnGateway(file);
    sim.setBehaviour(900, { kind: 'slow', delayMs: 1500 });
    const calls = sim.calls.length;
    const inFlight = postJson(`${gw.url}/cancel`, { target: 'warehouse', taskId: '900' });
    await sim.waitForCalls(calls + 1);
    gw.child.kill('SIGTERM');
    await gw.waitForLine((l) => l.msg === 'draining');
    const answer = await inFlight;
    expect(answer.status).toBe(200);
    expect(answer.body.outcome).toBe('canceled');
    expect(await gw.exited).toBe(0);
    expect(gw.lines.some((l) => l.msg === 'stopped')).toBe(true);
    await expect(fetch(`${gw.url}/healthz`)).rejects.toThrow();
  });
});

describe('a dead log reader (stdout pipe closed)', () => {
  it('still serves and still exits 0 on SIGTERM', async () => {
    const gw = await spawnGateway(writeConfig(baseConfig()));
    gw.child.stdout!.destroy();
    const res = await postJson(`${gw.url}/cancel`, { target: 'warehouse', taskId: '950' });
    expect(res.status).toBe(200);
    gw.child.kill('SIGTERM');
    expect(await gw.exited).toBe(0);
  });
});

describe('reload on SIGHUP', () => {
  it('applies a valid file and keeps the running config on an invalid one', async () => {
    const file = writeConfig(baseConfig());
    const gw = await spawnGateway(file);
    try {
      const before = (await (await fetch(`${gw.url}/readyz`)).json()) as { configVersion: string };
      writeFileSync(
        file,
        stringify({
          ...baseConfig(),
          routes: { warehouse: { provider: 'wh' }, second: { provider: 'wh' } },
        }),
      );
      gw.child.kill('SIGHUP');
      const reloaded = await gw.waitForLine((l) => l.msg === 'config reloaded');
      const after = (await (await fetch(`${gw.url}/readyz`)).json()) as { configVersion: string };
      expect(after.configVersion).toBe(reloaded.configVersion);
      expect(after.configVersion).not.toBe(before.configVersion);
      expect((await postJson(`${gw.url}/cancel`, { target: 'second', taskId: '901' })).status).toBe(
        200,
      );

      writeFileSync(file, 'providers: [broken');
      gw.child.kill('SIGHUP');
      const rejected = await gw.waitForLine(
        (l) => l.msg === 'config reload rejected; keeping the running config',
      );
      expect(JSON.stringify(rejected.problems)).toContain('gateway.yaml');
      const still = (await (await fetch(`${gw.url}/readyz`)).json()) as { configVersion: string };
      expect(still.configVersion).toBe(after.configVersion);
      expect((await postJson(`${gw.url}/cancel`, { target: 'second', taskId: '902' })).status).toBe(
        200,
      );
    } finally {
      gw.child.kill('SIGTERM');
      await gw.exited;
    }
  });
});
