import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseConfig } from '../../../src/config/load';
import { checkProviderFiles } from '../../../src/providers/registry';
import { loadEnvProxies, loadUpstreamTls } from '../../../src/providers/upstream-agent';
import { makeTestPki, type TestPki } from '../../helpers/tls';

function config(provider: string, env: Record<string, string> = {}) {
  return parseConfig(
    `providers:\n  wh:\n    type: methodcall\n    url: https://127.0.0.1:44000/api/v2/task\n${provider}\nroutes:\n  warehouse: { provider: wh }\n`,
    'test.yaml',
    env,
  );
}

function problems(provider: string, env: Record<string, string> = {}): string[] {
  const result = config(provider, env);
  if (result.ok) throw new Error('expected the config to be invalid');
  return result.problems;
}

describe('config: providers.<name>.proxy', () => {
  it.each([
    ['false', false],
    ['"false"', false],
    ['http://proxy.corp:3128', 'http://proxy.corp:3128'],
    ['http://user:p%40ss@proxy.corp:3128/', 'http://user:p%40ss@proxy.corp:3128/'],
  ])('accepts proxy: %s', (value, parsed) => {
    const result = config(`    proxy: ${value}`);
    if (!result.ok) throw new Error(result.problems.join('\n'));
    expect(result.value.config.providers.wh?.proxy).toBe(parsed);
  });

  it('is absent by default (the environment decides) and takes false from ${ENV:-false}', () => {
    const absent = config('');
    const fromEnv = config('    proxy: ${EGRESS_PROXY:-false}');
    if (!absent.ok || !fromEnv.ok) throw new Error('expected valid configs');
    expect(absent.value.config.providers.wh?.proxy).toBeUndefined();
    expect(fromEnv.value.config.providers.wh?.proxy).toBe(false);
  });

  it.each([
    ['true', 'providers.wh.proxy: expected an http:// proxy URL or false, got boolean'],
    ['3128', 'providers.wh.proxy: expected an http:// proxy URL or false, got 3128'],
    [
      'proxy.corp:3128',
      'providers.wh.proxy: expected an http:// proxy URL or false, got a string without http:// (write http://host:port)',
    ],
    [
      'user:secret@proxy.corp',
      'providers.wh.proxy: expected an http:// proxy URL or false, got a string without http:// (write http://host:port)',
    ],
    [
      '"http://user:secret@"',
      'providers.wh.proxy: expected an http:// proxy URL or false, got a string that is not a URL',
    ],
    [
      'https://user:secret@proxy.corp:3128',
      'providers.wh.proxy: expected an http:// proxy URL (a TLS connection to the proxy is not supported), got https://***@proxy.corp:3128/',
    ],
    [
      'http://user:secret@proxy.corp:3128/path',
      'providers.wh.proxy: expected a proxy URL without a path, query or fragment (http://host:port), got http://***@proxy.corp:3128/path',
    ],
  ])('refuses proxy: %s, never quoting its credentials', (value, message) => {
    const found = problems(`    proxy: ${value}`);
    expect(found).toEqual([message]);
    expect(found.join('\n')).not.toContain('secret');
  });
});

describe('config: providers.<name>.tls', () => {
  it('defaults to no files and takes caFile alone or certFile with keyFile', () => {
    const none = config('');
    const all = config('    tls: { caFile: ca.pem, certFile: c.pem, keyFile: c.key }');
    if (!none.ok || !all.ok) throw new Error('expected valid configs');
    expect(none.value.config.providers.wh?.tls).toEqual({});
    expect(all.value.config.providers.wh?.tls).toEqual({
      caFile: 'ca.pem',
      certFile: 'c.pem',
      keyFile: 'c.key',
    });
  });

  it('needs certFile and keyFile together, and knows no other key', () => {
    expect(problems('    tls: { certFile: c.pem }')).toEqual([
      'providers.wh.tls.keyFile: is required with certFile',
    ]);
    expect(problems('    tls: { keyFile: c.key }')).toEqual([
      'providers.wh.tls.certFile: is required with keyFile',
    ]);
    expect(problems('    tls: { caFile: "" }')).toEqual([
      'providers.wh.tls.caFile: expected at least 1 character, got 0',
    ]);
    expect(problems('    tls: { ca: x.pem }')).toEqual(['providers.wh.tls.ca: unknown key']);
  });
});

describe('tls files (check-config and provider build)', () => {
  let pki: TestPki;
  beforeAll(async () => {
    pki = await makeTestPki();
    writeFileSync(path.join(pki.dir, 'notes.txt'), 'not a certificate\n');
  });

  it('reads a CA file and adds it to the default CAs, and a matching certificate and key', () => {
    const result = loadUpstreamTls(
      { caFile: pki.ca.certFile, certFile: pki.client.certFile, keyFile: pki.client.keyFile },
      '/',
    );
    if (!result.ok) throw new Error(result.problems.join('\n'));
    const { ca, cert, key } = result.options;
    expect(ca?.length).toBeGreaterThan(100);
    expect(ca?.at(-1)).toBe(pki.ca.cert);
    expect(cert).toBe(pki.client.cert);
    expect(key).toBe(pki.client.key);
  });

  it('resolves relative paths against the project root', () => {
    const result = loadUpstreamTls({ caFile: 'ca.pem' }, pki.dir);
    expect(result.ok).toBe(true);
  });

  it('names each problem by its key: missing, not PEM, no certificate, key not matching', () => {
    const result = loadUpstreamTls(
      {
        caFile: path.join(pki.dir, 'nope.pem'),
        certFile: path.join(pki.dir, 'notes.txt'),
        keyFile: pki.client.keyFile,
      },
      '/',
    );
    expect(result).toEqual({
      ok: false,
      problems: [
        `tls.caFile: cannot read ${path.join(pki.dir, 'nope.pem')}: no such file`,
        `tls.certFile: ${path.join(pki.dir, 'notes.txt')} is not PEM (no -----BEGIN ...----- block)`,
      ],
    });
    const wrong = loadUpstreamTls(
      { caFile: pki.ca.keyFile, certFile: pki.client.certFile, keyFile: pki.otherCa.keyFile },
      '/',
    );
    expect(wrong).toEqual({
      ok: false,
      problems: [
        `tls.caFile: ${pki.ca.keyFile} holds no certificate (found PRIVATE KEY)`,
        `tls.keyFile: the key in ${pki.otherCa.keyFile} does not match the certificate in ${pki.client.certFile} (CN=cancel-gateway test client)`,
      ],
    });
    const notAKey = loadUpstreamTls(
      { certFile: pki.client.certFile, keyFile: pki.client.certFile },
      '/',
    );
    expect(notAKey.ok).toBe(false);
    if (!notAKey.ok) {
      expect(notAKey.problems).toEqual([
        expect.stringMatching(/^tls\.keyFile: .* holds no usable private key \(/),
      ]);
    }
  });

  it('check-config reports them at providers.<name>.tls.*, and unusable proxy variables', async () => {
    const result = config(
      `    tls: { caFile: ${path.join(pki.dir, 'notes.txt')} }\n  off:\n    type: methodcall\n    url: http://127.0.0.1:1/\n    proxy: false`,
    );
    if (!result.ok) throw new Error(result.problems.join('\n'));
    const env = { HTTPS_PROXY: 'https://user:secret@proxy.corp:3128' };
    const found = await checkProviderFiles(result.value.config, '/', env);
    expect(found).toEqual([
      `providers.wh.tls.caFile: ${path.join(pki.dir, 'notes.txt')} is not PEM (no -----BEGIN ...----- block)`,
      'providers.wh.proxy: not set, so HTTPS_PROXY of the environment applies, and it is unusable: ' +
        'expected an http:// proxy URL (a TLS connection to the proxy is not supported), got https://***@proxy.corp:3128/',
    ]);
  });
});

describe('proxy variables of the environment', () => {
  it('reads lower case first, either case, empty as unset, and a bare host:port as http://', () => {
    expect(
      loadEnvProxies({
        http_proxy: 'proxy.corp:3128',
        HTTP_PROXY: 'http://ignored:1',
        HTTPS_PROXY: 'http://tls-proxy:3128',
        no_proxy: '',
        NO_PROXY: '.internal,10.0.0.5',
      }),
    ).toEqual({
      ok: true,
      proxies: {
        httpProxy: 'http://proxy.corp:3128',
        httpsProxy: 'http://tls-proxy:3128',
        noProxy: '.internal,10.0.0.5',
      },
    });
    expect(loadEnvProxies({ PATH: '/usr/bin' })).toEqual({ ok: true, proxies: {} });
  });
});
