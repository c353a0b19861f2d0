import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { startDynRestSimulator, type DynRestSimulator } from '../../src/simulators/dyn-rest';
import { startDynSoapSimulator, type DynSoapSimulator } from '../../src/simulators/dyn-soap';
import {
  startMethodcallSimulator,
  type MethodcallSimulator,
} from '../../src/simulators/methodcall';
import { runMain } from '../helpers/child';
import { postJson, startTestGateway, writeConfig, type TestGateway } from '../helpers/gateway';
import { closedPort } from '../helpers/net';
import { startTinyproxy, type ForwardProxy } from '../helpers/proxy';
import { expectUnifiedShape } from '../helpers/shape';
import { makeTestPki, type TestPki } from '../helpers/tls';

/*
 * Egress through a real forward proxy (tinyproxy) and TLS to simulators served over HTTPS with
 * certificates made by openssl at test time. Every upstream listens on loopback; "via the proxy"
 * is proven by the proxy's own request log, "not via the proxy" by `settle()` (every earlier
 * request is in that log by then) and by the simulators seeing no `Via` header.
 */

const PASSWORD = 'egress-sim-password';
const PROXY_USER = 'gateway';
const PROXY_PASSWORD = 'proxy-s3cret-word';
const dyn = {
  customerName: 'acme',
  userName: 'api-user',
  password: PASSWORD,
  jobPollIntervalMs: 20,
  rateLimitPerSecond: 10_000,
};
const fast = { retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 5 } };

let pki: TestPki;
const https = (): { tls: { key: string; cert: string } } => ({
  tls: { key: pki.server.key, cert: pki.server.cert },
});
let mcPlain: MethodcallSimulator;
let mcDirect: MethodcallSimulator;
let mcTls: MethodcallSimulator;
let mcMutual: MethodcallSimulator;
let mcNoProxyHost: MethodcallSimulator;
let restTls: DynRestSimulator;
let soapPlain: DynSoapSimulator;
let soapTls: DynSoapSimulator;
let proxy: ForwardProxy;
let authProxy: ForwardProxy;
let deadPort: number;
let nextTask = 1000;

const portOf = (url: string): number => Number(new URL(url).port);
const via = (headers: Record<string, string | string[] | undefined>): unknown => headers.via;

async function cancel(gw: TestGateway, target: string) {
  const taskId = String(++nextTask);
  const res = await postJson(`${gw.url}/cancel`, { target, taskId });
  expectUnifiedShape(res.body, res.status);
  return { ...res, taskId };
}

/**
 * A mutual-TLS upstream reached through `via` without a client certificate: the TLS 1.3 alert
 * the upstream sends after the handshake is the answer (502, not retried), exactly as direct,
 * not a connection "closed before answering" that reads as an outage and is retried.
 */
async function expectCertificateRequired(
  gw: TestGateway,
  target: string,
  via: ForwardProxy,
): Promise<void> {
  const before = mcMutual.calls.length;
  const res = await cancel(gw, target);
  expect(res.status).toBe(502);
  expect(res.body).toMatchObject({
    ok: false,
    outcome: 'upstream_error',
    retryable: false,
    error: { code: 'UPSTREAM_BAD_RESPONSE' },
  });
  expect(res.body.error.message).toContain('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED');
  expect(res.body.attempts).toHaveLength(1);
  await via.settle();
  expect(via.requests).toContain(`CONNECT 127.0.0.1:${portOf(mcMutual.url)}`);
  expect(mcMutual.calls.length).toBe(before);
}

beforeAll(async () => {
  pki = await makeTestPki();
  [mcPlain, mcDirect, mcTls, mcMutual, mcNoProxyHost, restTls, soapPlain, soapTls] =
    await Promise.all([
      startMethodcallSimulator(),
      startMethodcallSimulator(),
      startMethodcallSimulator(https()),
      startMethodcallSimulator({
        tls: { ...https().tls, ca: pki.ca.cert, requestCert: true },
      }),
      startMethodcallSimulator({ host: '127.0.0.2' }),
      startDynRestSimulator({ password: PASSWORD, ...https() }),
      startDynSoapSimulator({ password: PASSWORD }),
      startDynSoapSimulator({ password: PASSWORD, ...https() }),
    ]);
  const connectPorts = [mcTls.url, mcMutual.url, restTls.url, soapTls.url].map(portOf);
  [proxy, authProxy] = await Promise.all([
    startTinyproxy({ connectPorts }),
    startTinyproxy({ connectPorts, basicAuth: { user: PROXY_USER, password: PROXY_PASSWORD } }),
  ]);
  deadPort = await closedPort();
});

afterAll(async () => {
  await Promise.all([
    proxy.stop(),
    authProxy.stop(),
    ...[mcPlain, mcDirect, mcTls, mcMutual, mcNoProxyHost, restTls, soapPlain, soapTls].map((s) =>
      s.close(),
    ),
  ]);
});

describe('egress through HTTP_PROXY / HTTPS_PROXY / NO_PROXY of the environment', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    const ca = { caFile: pki.ca.certFile };
    gw = await startTestGateway(
      {
        providers: {
          'mc-http': { type: 'methodcall', url: mcPlain.taskUrl },
          'mc-https': { type: 'methodcall', url: mcTls.taskUrl, tls: ca },
          'mc-mutual': {
            type: 'methodcall',
            url: mcMutual.taskUrl,
            tls: { ...ca, certFile: pki.client.certFile, keyFile: pki.client.keyFile },
          },
          'mc-mutual-no-cert': { type: 'methodcall', url: mcMutual.taskUrl, tls: ca, ...fast },
          'mc-no-proxy': { type: 'methodcall', url: mcNoProxyHost.taskUrl },
          'mc-off': { type: 'methodcall', url: mcDirect.taskUrl, proxy: false },
          'rest-https': { type: 'dyn-rest', baseUrl: restTls.baseUrl, tls: ca, ...dyn },
          'soap-http': { type: 'dyn-soap', endpoint: soapPlain.endpoint, ...dyn },
          'soap-https': { type: 'dyn-soap', endpoint: soapTls.endpoint, tls: ca, ...dyn },
        },
        routes: {
          'mc-http': { provider: 'mc-http' },
          'mc-https': { provider: 'mc-https' },
          'mc-mutual': { provider: 'mc-mutual' },
          'mc-mutual-no-cert': { provider: 'mc-mutual-no-cert' },
          'mc-no-proxy': { provider: 'mc-no-proxy' },
          'mc-off': { provider: 'mc-off' },
          'rest-https': { provider: 'rest-https' },
          'soap-http': { provider: 'soap-http' },
          'soap-https': { provider: 'soap-https' },
        },
      },
      // Lower case wins, as in curl: the upper-case values point at nothing.
      {
        http_proxy: proxy.url,
        HTTP_PROXY: `http://127.0.0.1:${deadPort}`,
        HTTPS_PROXY: proxy.url,
        NO_PROXY: 'example.invalid, 127.0.0.2',
      },
    );
  });
  afterAll(() => gw.close());

  it('sends plain-HTTP methodcall and dyn-soap calls to the proxy in absolute form', async () => {
    const mc = await cancel(gw, 'mc-http');
    expect(mc.body).toMatchObject({ ok: true, outcome: 'canceled', provider: 'mc-http' });
    await proxy.settle();
    expect(proxy.requests).toContain(`POST ${mcPlain.taskUrl}`);
    const call = mcPlain.calls.find((c) => c.taskId === mc.taskId);
    expect(via(call?.headers ?? {})).toMatch(/tinyproxy/);

    const soap = await cancel(gw, 'soap-http');
    expect(soap.body).toMatchObject({ ok: true, outcome: 'canceled', protocol: 'dyn-soap' });
    await proxy.settle();
    expect(proxy.requests).toContain(`POST ${soapPlain.endpoint}`);
    expect(soapPlain.calls.length).toBeGreaterThan(0);
    expect(soapPlain.calls.every((c) => /tinyproxy/.test(String(via(c.headers))))).toBe(true);
  });

  it('tunnels HTTPS upstreams through CONNECT, the extra CA verifying them inside the tunnel', async () => {
    for (const [target, sim] of [
      ['mc-https', mcTls],
      ['rest-https', restTls],
      ['soap-https', soapTls],
    ] as const) {
      const res = await cancel(gw, target);
      expect(res.body).toMatchObject({ ok: true, outcome: 'canceled', target });
      await proxy.settle();
      expect(proxy.requests).toContain(`CONNECT 127.0.0.1:${portOf(sim.url)}`);
    }
    // Inside a tunnel the proxy sees no request, so it adds no Via header.
    expect(restTls.calls.length).toBeGreaterThan(0);
    expect(restTls.calls.every((c) => via(c.headers) === undefined)).toBe(true);
  });

  it('presents the client certificate to a mutual-TLS upstream through the tunnel', async () => {
    const res = await cancel(gw, 'mc-mutual');
    expect(res.body).toMatchObject({ ok: true, outcome: 'canceled' });
    await proxy.settle();
    expect(proxy.requests).toContain(`CONNECT 127.0.0.1:${portOf(mcMutual.url)}`);
    expect(mcMutual.calls.map((c) => c.taskId)).toContain(res.taskId);
  });

  it('without a client certificate fails with the TLS alert through the tunnel, as direct', async () => {
    await expectCertificateRequired(gw, 'mc-mutual-no-cert', proxy);
  });

  it('goes direct for a NO_PROXY host and for proxy: false', async () => {
    const noProxy = await cancel(gw, 'mc-no-proxy');
    const off = await cancel(gw, 'mc-off');
    expect(noProxy.body).toMatchObject({ ok: true, outcome: 'canceled' });
    expect(off.body).toMatchObject({ ok: true, outcome: 'canceled' });
    await proxy.settle();
    for (const sim of [mcNoProxyHost, mcDirect]) {
      const port = String(portOf(sim.url));
      expect(proxy.requests.filter((l) => l.includes(`:${port}`))).toEqual([]);
      expect(sim.calls.length).toBeGreaterThan(0);
      expect(sim.calls.every((c) => via(c.headers) === undefined)).toBe(true);
    }
  });
});

describe("NO_PROXY with CIDR ranges (matched on the URL's address, never resolved)", () => {
  let gw: TestGateway;
  let outside: MethodcallSimulator;
  beforeAll(async () => {
    outside = await startMethodcallSimulator({ host: '127.0.0.3' });
    gw = await startTestGateway(
      {
        providers: {
          'mc-in-range': { type: 'methodcall', url: mcPlain.taskUrl },
          'mc-in-range-https': {
            type: 'methodcall',
            url: mcTls.taskUrl,
            tls: { caFile: pki.ca.certFile },
          },
          'mc-outside': { type: 'methodcall', url: outside.taskUrl },
        },
        routes: {
          'mc-in-range': { provider: 'mc-in-range' },
          'mc-in-range-https': { provider: 'mc-in-range-https' },
          'mc-outside': { provider: 'mc-outside' },
        },
      },
      // The usual Kubernetes value, a range holding 127.0.0.1 (not .3), an entry that matches nothing.
      {
        HTTP_PROXY: proxy.url,
        HTTPS_PROXY: proxy.url,
        NO_PROXY: '10.0.0.0/8,.svc, 127.0.0.0/31 10.0.0.0/33',
      },
    );
  });
  afterAll(async () => {
    await gw.close();
    await outside.close();
  });

  const count = (line: string): number => proxy.requests.filter((l) => l === line).length;

  it('sends an upstream whose address is in a listed range direct, HTTP and HTTPS alike', async () => {
    await proxy.settle();
    const plainBefore = count(`POST ${mcPlain.taskUrl}`);
    const tunnelsBefore = count(`CONNECT 127.0.0.1:${portOf(mcTls.url)}`);
    const plain = await cancel(gw, 'mc-in-range');
    const secure = await cancel(gw, 'mc-in-range-https');
    expect(plain.body).toMatchObject({ ok: true, outcome: 'canceled' });
    expect(secure.body).toMatchObject({ ok: true, outcome: 'canceled' });
    await proxy.settle();
    expect(count(`POST ${mcPlain.taskUrl}`)).toBe(plainBefore);
    expect(count(`CONNECT 127.0.0.1:${portOf(mcTls.url)}`)).toBe(tunnelsBefore);
    const call = mcPlain.calls.find((c) => c.taskId === plain.taskId);
    expect(call).toBeDefined();
    expect(via(call?.headers ?? {})).toBeUndefined();
  });

  it('still proxies an address outside every range', async () => {
    const res = await cancel(gw, 'mc-outside');
    expect(res.body).toMatchObject({ ok: true, outcome: 'canceled' });
    await proxy.settle();
    expect(proxy.requests).toContain(`POST ${outside.taskUrl}`);
    const call = outside.calls.find((c) => c.taskId === res.taskId);
    expect(via(call?.headers ?? {})).toMatch(/tinyproxy/);
  });

  it('ignores an entry that can match nothing, in one warning line for all providers', () => {
    const warnings = gw.logs.lines().filter((l) => String(l.msg).startsWith('NO_PROXY:'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 'warn', ignored: ['10.0.0.0/33'] });
    expect(warnings[0]?.msg).toContain('ignoring 10.0.0.0/33');
  });
});

describe('per-provider proxy', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    const dead = `http://127.0.0.1:${deadPort}`;
    gw = await startTestGateway(
      {
        providers: {
          'mc-explicit': {
            type: 'methodcall',
            url: mcPlain.taskUrl,
            proxy: `http://${PROXY_USER}:${PROXY_PASSWORD}@127.0.0.1:${authProxy.port}`,
          },
          'rest-explicit': {
            type: 'dyn-rest',
            baseUrl: restTls.baseUrl,
            proxy: `http://${PROXY_USER}:${PROXY_PASSWORD}@127.0.0.1:${authProxy.port}`,
            tls: { caFile: pki.ca.certFile },
            ...dyn,
          },
          'mc-off': { type: 'methodcall', url: mcDirect.taskUrl, proxy: false },
          'mc-no-credentials': { type: 'methodcall', url: mcPlain.taskUrl, proxy: authProxy.url },
          'mc-tls-no-credentials': {
            type: 'methodcall',
            url: mcTls.taskUrl,
            proxy: authProxy.url,
            tls: { caFile: pki.ca.certFile },
          },
          'mc-mutual-no-cert': {
            type: 'methodcall',
            url: mcMutual.taskUrl,
            proxy: proxy.url,
            tls: { caFile: pki.ca.certFile },
            ...fast,
          },
          'mc-env-dead': { type: 'methodcall', url: mcPlain.taskUrl, ...fast },
          'rest-proxy-dead': {
            type: 'dyn-rest',
            baseUrl: restTls.baseUrl,
            proxy: dead,
            tls: { caFile: pki.ca.certFile },
            ...dyn,
            ...fast,
          },
        },
        routes: {
          'mc-explicit': { provider: 'mc-explicit' },
          'rest-explicit': { provider: 'rest-explicit' },
          'mc-off': { provider: 'mc-off' },
          'mc-no-credentials': { provider: 'mc-no-credentials' },
          'mc-tls-no-credentials': { provider: 'mc-tls-no-credentials' },
          'mc-mutual-no-cert': { provider: 'mc-mutual-no-cert' },
          'mc-env-dead': { provider: 'mc-env-dead' },
          'rest-proxy-dead': { provider: 'rest-proxy-dead' },
        },
      },
      // The environment's proxy is down: only providers that follow it fail.
      { HTTP_PROXY: dead, HTTPS_PROXY: dead },
    );
  });
  afterAll(() => gw.close());

  it('uses its own proxy with credentials (sent as Proxy-Authorization, never shown)', async () => {
    const mc = await cancel(gw, 'mc-explicit');
    expect(mc.body).toMatchObject({ ok: true, outcome: 'canceled' });
    await authProxy.settle();
    expect(authProxy.requests).toContain(`POST ${mcPlain.taskUrl}`);
    const rest = await cancel(gw, 'rest-explicit');
    expect(rest.body).toMatchObject({ ok: true, outcome: 'canceled', protocol: 'dyn-rest' });
    await authProxy.settle();
    expect(authProxy.requests).toContain(`CONNECT 127.0.0.1:${portOf(restTls.url)}`);
    // The credential reaches the proxy only: not the upstream, the logs or the answers.
    const call = mcPlain.calls.find((c) => c.taskId === mc.taskId);
    expect(call?.headers['proxy-authorization']).toBeUndefined();
    const routes = await fetch(`${gw.url}/routes`).then((r) => r.text());
    for (const text of [gw.logs.raw.join('\n'), JSON.stringify([mc.body, rest.body]), routes]) {
      expect(text).not.toContain(PROXY_PASSWORD);
    }
  });

  it('without a client certificate fails with the TLS alert through its proxy, as direct', async () => {
    await expectCertificateRequired(gw, 'mc-mutual-no-cert', proxy);
  });

  it('proxy: false ignores the environment', async () => {
    const res = await cancel(gw, 'mc-off');
    expect(res.body).toMatchObject({ ok: true, outcome: 'canceled' });
  });

  it('answers upstream_error, not retried, when the proxy refuses the request (407)', async () => {
    for (const target of ['mc-no-credentials', 'mc-tls-no-credentials']) {
      const res = await cancel(gw, target);
      expect(res.status).toBe(502);
      expect(res.body).toMatchObject({ ok: false, outcome: 'upstream_error', retryable: false });
      expect(res.body.attempts).toHaveLength(1);
      expect(mcPlain.calls.concat(mcTls.calls).map((c) => c.taskId)).not.toContain(res.taskId);
    }
  });

  it('answers unavailable, retryable, when the proxy refuses connections (HTTP and CONNECT)', async () => {
    for (const target of ['mc-env-dead', 'rest-proxy-dead']) {
      const res = await cancel(gw, target);
      expect(res.status).toBe(503);
      expect(res.body).toMatchObject({
        ok: false,
        outcome: 'unavailable',
        retryable: true,
        error: { code: 'UPSTREAM_UNREACHABLE' },
      });
      expect(res.body.error.message).toContain('ECONNREFUSED');
      // Refused before anything was sent: retried, as any refused connection.
      expect(res.body.attempts).toHaveLength(2);
    }
  });
});

describe('TLS to upstreams without a proxy', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({
      providers: {
        'mc-ca': { type: 'methodcall', url: mcTls.taskUrl, tls: { caFile: pki.ca.certFile } },
        'mc-default-ca': { type: 'methodcall', url: mcTls.taskUrl },
        'mc-wrong-ca': {
          type: 'methodcall',
          url: mcTls.taskUrl,
          tls: { caFile: pki.otherCa.certFile },
        },
        'mc-mutual': {
          type: 'methodcall',
          url: mcMutual.taskUrl,
          tls: {
            caFile: pki.ca.certFile,
            certFile: pki.client.certFile,
            keyFile: pki.client.keyFile,
          },
        },
        'mc-mutual-no-cert': {
          type: 'methodcall',
          url: mcMutual.taskUrl,
          tls: { caFile: pki.ca.certFile },
        },
        'soap-ca': {
          type: 'dyn-soap',
          endpoint: soapTls.endpoint,
          tls: { caFile: pki.ca.certFile },
          ...dyn,
        },
      },
      routes: {
        'mc-ca': { provider: 'mc-ca' },
        'mc-default-ca': { provider: 'mc-default-ca' },
        'mc-wrong-ca': { provider: 'mc-wrong-ca' },
        'mc-mutual': { provider: 'mc-mutual' },
        'mc-mutual-no-cert': { provider: 'mc-mutual-no-cert' },
        'soap-ca': { provider: 'soap-ca' },
      },
    });
  });
  afterAll(() => gw.close());

  it('trusts an upstream signed by the extra CA (methodcall and dyn-soap)', async () => {
    const mc = await cancel(gw, 'mc-ca');
    expect(mc.body).toMatchObject({ ok: true, outcome: 'canceled' });
    const soap = await cancel(gw, 'soap-ca');
    expect(soap.body).toMatchObject({ ok: true, outcome: 'canceled', protocol: 'dyn-soap' });
  });

  it('refuses an upstream it cannot verify: upstream_error naming the TLS error, no retry', async () => {
    const before = mcTls.calls.length;
    for (const target of ['mc-wrong-ca', 'mc-default-ca']) {
      const res = await cancel(gw, target);
      expect(res.status).toBe(502);
      expect(res.body).toMatchObject({ ok: false, outcome: 'upstream_error', retryable: false });
      expect(res.body.error.message).toContain('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
      expect(res.body.attempts).toHaveLength(1);
    }
    expect(mcTls.calls.length).toBe(before);
  });

  it('presents the client certificate a mutual-TLS upstream demands', async () => {
    const res = await cancel(gw, 'mc-mutual');
    expect(res.body).toMatchObject({ ok: true, outcome: 'canceled' });
    expect(mcMutual.calls.map((c) => c.taskId)).toContain(res.taskId);
  });

  it('without a client certificate fails with the TLS alert, nothing reaching the upstream', async () => {
    const before = mcMutual.calls.length;
    const res = await cancel(gw, 'mc-mutual-no-cert');
    expect(res.status).toBe(502);
    expect(res.body).toMatchObject({ ok: false, outcome: 'upstream_error', retryable: false });
    expect(res.body.error.message).toContain('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED');
    expect(mcMutual.calls.length).toBe(before);
  });
});

describe('check-config, start and reload refuse unusable TLS files', () => {
  function providers(tls: Record<string, string>): Record<string, unknown> {
    return {
      providers: { wh: { type: 'methodcall', url: mcTls.taskUrl, tls } },
      routes: { warehouse: { provider: 'wh' } },
    };
  }

  it('check-config names each problem by its path, and start-up refuses the same file', async () => {
    const notPem = path.join(pki.dir, 'readme.txt');
    writeFileSync(notPem, 'hello\n');
    const file = writeConfig({
      providers: {
        missing: {
          type: 'methodcall',
          url: mcTls.taskUrl,
          tls: { caFile: path.join(pki.dir, 'nope.pem') },
        },
        'not-pem': { type: 'methodcall', url: mcTls.taskUrl, tls: { caFile: notPem } },
        mismatched: {
          type: 'methodcall',
          url: mcTls.taskUrl,
          tls: { certFile: pki.client.certFile, keyFile: pki.otherCa.keyFile },
        },
      },
      routes: { warehouse: { provider: 'missing' } },
    });
    const check = await runMain(['check-config', file]);
    expect(check.code).toBe(1);
    expect(check.stderr.trim().split('\n')).toEqual([
      `providers.missing.tls.caFile: cannot read ${path.join(pki.dir, 'nope.pem')}: no such file`,
      `providers.not-pem.tls.caFile: ${notPem} is not PEM (no -----BEGIN ...----- block)`,
      `providers.mismatched.tls.keyFile: the key in ${pki.otherCa.keyFile} does not match the certificate in ${pki.client.certFile} (CN=cancel-gateway test client)`,
    ]);
    const start = await runMain(['--config', file]);
    expect(start.code).toBe(1);
    expect(start.stderr).toContain(
      `providers.missing.tls.caFile: cannot read ${path.join(pki.dir, 'nope.pem')}: no such file`,
    );
  });

  it('a reload re-reads the TLS files: a CA bundle replaced in place takes effect, the config file unchanged', async () => {
    const caFile = path.join(pki.dir, 'rotated-ca.pem');
    writeFileSync(caFile, pki.otherCa.cert);
    const gw = await startTestGateway(providers({ caFile }));
    try {
      const refused = await cancel(gw, 'warehouse');
      expect(refused.body).toMatchObject({ outcome: 'upstream_error' });
      writeFileSync(caFile, pki.ca.cert);
      expect((await gw.gw.reload()).ok).toBe(true);
      const line = gw.logs.lines().find((l) => l.msg === 'config reloaded');
      expect(line?.providers).toMatchObject({ rebuilt: ['wh'], kept: [] });
      const res = await cancel(gw, 'warehouse');
      expect(res.body).toMatchObject({ ok: true, outcome: 'canceled' });
    } finally {
      await gw.close();
    }
  });

  it('a reload to a config with a broken file keeps the running config', async () => {
    const gw = await startTestGateway(providers({ caFile: pki.ca.certFile }));
    try {
      writeFileSync(
        gw.configFile,
        JSON.stringify({
          ...providers({ caFile: pki.ca.keyFile }),
          server: { host: '127.0.0.1', port: 0 },
        }),
      );
      const result = await gw.gw.reload();
      expect(result).toEqual({
        ok: false,
        problems: [
          `providers.wh.tls.caFile: ${pki.ca.keyFile} holds no certificate (found PRIVATE KEY)`,
        ],
      });
      const res = await cancel(gw, 'warehouse');
      expect(res.body).toMatchObject({ ok: true, outcome: 'canceled' });
    } finally {
      await gw.close();
    }
  });
});
