import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as tls from 'node:tls';
import { Agent, buildConnector, Client, Dispatcher, Pool, ProxyAgent } from 'undici';
import { proxyUrlProblem, type ProviderConfig, type UpstreamTlsConfig } from '../config/schema';
import { NoProxyList } from './no-proxy';
import type { ProviderDeps } from './provider';

/**
 * A provider's egress settings cannot be used (a TLS file, a proxy variable of the environment).
 * `problems` are relative to the provider's config path (`tls.caFile: ...`): the registry, which
 * knows the provider's name, prefixes them.
 */
export class UpstreamSetupError extends Error {
  override readonly name = 'UpstreamSetupError';
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
  }
}

/** What `tls.connect` is given for an upstream: every field absent means Node's default. */
export interface UpstreamTlsOptions {
  ca?: string[];
  cert?: string;
  key?: string;
}

/** One PEM block (RFC 7468): its label and the whole block, armour included. */
const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

function pemBlocks(text: string): { label: string; pem: string }[] {
  return [...text.matchAll(PEM_BLOCK)].map((m) => ({ label: m[1] ?? '', pem: m[0] }));
}

/** Why a file could not be read, in words an operator acts on. */
function readProblem(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory, not a file';
  return err instanceof Error ? err.message : String(err);
}

/**
 * The CAs Node trusts by default: the bundled Mozilla store, plus `NODE_EXTRA_CA_CERTS` and the
 * system store (`--use-system-ca`) where this Node can list them (22.15+). An explicit `ca`
 * replaces that set, so the extra CA file is added to it rather than given alone.
 */
function defaultCaCertificates(): readonly string[] {
  // Typed for Node 24; Node 20 lacks it.
  const list = (tls as Partial<Pick<typeof tls, 'getCACertificates'>>).getCACertificates;
  return list === undefined ? tls.rootCertificates : list('default');
}

/**
 * Reads and checks a provider's `tls` files (relative paths against `projectRoot`): every file
 * readable PEM, the CA file holding certificates, the key matching the certificate. Returns the
 * options for `tls.connect`, or every problem found, each named by its key (`tls.caFile: ...`).
 */
export function loadUpstreamTls(
  config: UpstreamTlsConfig,
  projectRoot: string,
): { ok: true; options: UpstreamTlsOptions } | { ok: false; problems: string[] } {
  const problems: string[] = [];
  const read = (key: keyof UpstreamTlsConfig): { text: string; shown: string } | undefined => {
    const file = config[key];
    if (file === undefined) return undefined;
    const resolved = path.resolve(projectRoot, file);
    const shown = resolved === file ? file : `${file} (${resolved})`;
    try {
      const text = readFileSync(resolved, 'utf8');
      if (pemBlocks(text).length === 0) {
        problems.push(`tls.${key}: ${shown} is not PEM (no -----BEGIN ...----- block)`);
        return undefined;
      }
      return { text, shown };
    } catch (err) {
      problems.push(`tls.${key}: cannot read ${shown}: ${readProblem(err)}`);
      return undefined;
    }
  };
  /** The CERTIFICATE blocks of a file; a problem for none, or for one that does not parse. */
  const certificates = (
    key: 'caFile' | 'certFile',
    file: { text: string; shown: string },
  ): X509Certificate[] | undefined => {
    const blocks = pemBlocks(file.text);
    const certs = blocks.filter((b) => b.label === 'CERTIFICATE');
    if (certs.length === 0) {
      const found = [...new Set(blocks.map((b) => b.label))].join(', ');
      problems.push(`tls.${key}: ${file.shown} holds no certificate (found ${found})`);
      return undefined;
    }
    const parsed: X509Certificate[] = [];
    for (const [index, cert] of certs.entries()) {
      try {
        parsed.push(new X509Certificate(cert.pem));
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        problems.push(`tls.${key}: certificate ${index + 1} of ${file.shown} is invalid (${why})`);
        return undefined;
      }
    }
    return parsed;
  };

  const options: UpstreamTlsOptions = {};
  const ca = read('caFile');
  if (ca !== undefined) {
    const certs = certificates('caFile', ca);
    if (certs !== undefined)
      options.ca = [...defaultCaCertificates(), ...certs.map((c) => c.toString())];
  }
  const cert = read('certFile');
  const leaf = cert === undefined ? undefined : certificates('certFile', cert)?.[0];
  const key = read('keyFile');
  let privateKey: KeyObject | undefined;
  if (key !== undefined) {
    try {
      privateKey = createPrivateKey(key.text);
    } catch (err) {
      const why =
        (err as { code?: unknown }).code === 'ERR_MISSING_PASSPHRASE'
          ? 'the key is encrypted; give an unencrypted key'
          : err instanceof Error
            ? err.message
            : String(err);
      problems.push(`tls.keyFile: ${key.shown} holds no usable private key (${why})`);
    }
  }
  if (leaf !== undefined && cert !== undefined && privateKey !== undefined && key !== undefined) {
    if (leaf.checkPrivateKey(privateKey)) {
      options.cert = cert.text;
      options.key = key.text;
    } else {
      problems.push(
        `tls.keyFile: the key in ${key.shown} does not match the certificate in ${cert.shown} ` +
          `(${leaf.subject.replaceAll('\n', ', ')})`,
      );
    }
  }
  return problems.length === 0 ? { ok: true, options } : { ok: false, problems };
}

/** A variable of the environment, lower case first as curl reads it; empty counts as unset. */
function envValue(env: ProviderDeps['env'], name: string): string | undefined {
  for (const key of [name.toLowerCase(), name.toUpperCase()]) {
    const value = env[key];
    if (value !== undefined && value.trim() !== '') return value.trim();
  }
  return undefined;
}

/**
 * A proxy variable as curl reads it: a value without a scheme is an `http://` proxy. Problems
 * name the provider's `proxy` key, since setting it is how one provider opts out.
 */
function envProxy(env: ProviderDeps['env'], name: string, problems: string[]): string | undefined {
  const value = envValue(env, name);
  if (value === undefined) return undefined;
  const url = value.includes('://') ? value : `http://${value}`;
  const problem = proxyUrlProblem(url);
  if (problem === undefined) return url;
  problems.push(
    `proxy: not set, so ${name} of the environment applies, and it is unusable: ${problem}`,
  );
  return undefined;
}

/** The proxy variables of an environment, each absent when unset or empty. */
export interface EnvProxies {
  httpProxy?: string;
  httpsProxy?: string;
  noProxy?: string;
}

/**
 * Reads `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY` (lower case first, as curl) from `env`; an
 * unusable proxy value is a problem named by the `proxy` key (`proxy: not set, so ...`).
 */
export function loadEnvProxies(
  env: ProviderDeps['env'],
): { ok: true; proxies: EnvProxies } | { ok: false; problems: string[] } {
  const problems: string[] = [];
  const httpProxy = envProxy(env, 'HTTP_PROXY', problems);
  const httpsProxy = envProxy(env, 'HTTPS_PROXY', problems);
  const noProxy = envValue(env, 'NO_PROXY');
  if (problems.length > 0) return { ok: false, problems };
  return {
    ok: true,
    proxies: {
      ...(httpProxy === undefined ? {} : { httpProxy }),
      ...(httpsProxy === undefined ? {} : { httpsProxy }),
      ...(noProxy === undefined ? {} : { noProxy }),
    },
  };
}

/**
 * An undici connector, keeping the TLS alert a server sends after the handshake. A TLS 1.3 server
 * that demands a client certificate and gets none completes the handshake, then sends
 * `certificate_required` and closes; undici then fails the request with "other side closed",
 * which reads like a reset (and is retried as one). Ending the socket on the alert makes the
 * request fail with it. Direct and through a proxy's tunnel alike: the socket given back is the
 * upstream's TLS socket either way.
 */
function keepingTlsAlerts(connect: buildConnector.connector): buildConnector.connector {
  return (opts, callback) => {
    connect(opts, (...result) => {
      const socket = result[1];
      socket?.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code?.startsWith('ERR_SSL_') === true) socket.destroy();
      });
      callback(...result);
    });
  };
}

/**
 * undici's default per-origin factory (a `Client` for one connection, else a `Pool`), with the
 * connector it is given wrapped by `keepingTlsAlerts`. `ProxyAgent` takes no `connect` of ours:
 * it hands its own (CONNECT, then the upstream's TLS inside the tunnel) to the factory, its
 * documented extension point (`Agent` option `factory`), so the wrapping happens here.
 */
function factoryKeepingTlsAlerts(origin: string | URL, opts: object): Dispatcher {
  const options = opts as Pool.Options;
  const { connect } = options;
  const wrapped: Pool.Options =
    typeof connect === 'function' ? { ...options, connect: keepingTlsAlerts(connect) } : options;
  return wrapped.connections === 1 ? new Client(origin, wrapped) : new Pool(origin, wrapped);
}

/**
 * Sends each request direct or through the proxy the environment names for its scheme, as curl
 * decides: `https:` origins through `HTTPS_PROXY` only, `http:` ones through `HTTP_PROXY` only
 * (undici's `EnvHttpProxyAgent` would send HTTPS through `HTTP_PROXY`), origins `NO_PROXY`
 * matches direct (with CIDR ranges and IPv6, which `EnvHttpProxyAgent` ignores). Decided per
 * request origin, not once per provider: one provider's dispatcher serves every URL it is given
 * (a dyn-soap endpoint known only from its WSDL, a Dyn job's redirect).
 */
class EnvProxyDispatcher extends Dispatcher {
  constructor(
    private readonly direct: Dispatcher,
    private readonly proxies: { 'http:'?: Dispatcher; 'https:'?: Dispatcher },
    private readonly noProxy: NoProxyList,
  ) {
    super();
  }

  private all(): Dispatcher[] {
    return [this.direct, this.proxies['http:'], this.proxies['https:']].filter(
      (d): d is Dispatcher => d !== undefined,
    );
  }

  /** The dispatcher for an origin; an unparsable one goes direct, where undici reports it. */
  private choose(origin: Dispatcher.DispatchOptions['origin']): Dispatcher {
    let url: URL;
    try {
      url = new URL(String(origin ?? ''));
    } catch {
      return this.direct;
    }
    const proxy =
      url.protocol === 'https:' || url.protocol === 'http:'
        ? this.proxies[url.protocol]
        : undefined;
    return proxy === undefined || this.noProxy.matches(url) ? this.direct : proxy;
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler) {
    return this.choose(options.origin).dispatch(options, handler);
  }

  override close(callback: () => void): void;
  override close(): Promise<void>;
  override close(callback?: () => void): Promise<void> | undefined {
    const done = Promise.all(this.all().map((d) => d.close())).then(() => undefined);
    if (callback === undefined) return done;
    void done.then(callback);
    return undefined;
  }

  override destroy(err: Error | null, callback: () => void): void;
  override destroy(callback: () => void): void;
  override destroy(err?: Error | null): Promise<void>;
  override destroy(
    errOrCallback?: Error | null | (() => void),
    callback?: () => void,
  ): Promise<void> | undefined {
    const err = typeof errOrCallback === 'function' ? null : (errOrCallback ?? null);
    const then = typeof errOrCallback === 'function' ? errOrCallback : callback;
    const done = Promise.all(this.all().map((d) => d.destroy(err))).then(() => undefined);
    if (then === undefined) return done;
    void done.then(then);
    return undefined;
  }
}

/**
 * Loggers that were already told which `NO_PROXY` entries are ignored: the environment is read
 * once per process, so the warning is one line, not one per provider and reload.
 */
const warnedNoProxy = new WeakMap<object, Set<string>>();

/** One warning line for the `NO_PROXY` entries that can match nothing, once per logger. */
function warnIgnoredNoProxy(logger: ProviderDeps['logger'], noProxy: NoProxyList): void {
  if (noProxy.ignored.length === 0) return;
  const key = noProxy.ignored.join(',');
  const seen = warnedNoProxy.get(logger) ?? new Set<string>();
  if (seen.has(key)) return;
  seen.add(key);
  warnedNoProxy.set(logger, seen);
  logger.warn(
    { ignored: noProxy.ignored },
    `NO_PROXY: ignoring ${noProxy.ignored.join(', ')} (neither a host name, an IP address nor ` +
      'a CIDR range, with an optional :port), as curl does',
  );
}

/**
 * The one undici dispatcher a provider sends every upstream call through (login, cancel, poll,
 * logout): keep-alive connections per origin, at most `connections` each. Requests name their
 * origin (`exchange` passes it), so one dispatcher serves every URL a provider is given.
 *
 * Egress: `proxy: URL` sends every call through that forward proxy, `proxy: false` through none;
 * without `proxy` the environment decides as curl does (`HTTPS_PROXY` for https upstreams,
 * `HTTP_PROXY` for http ones, `NO_PROXY` exempts hosts, address literals and CIDR ranges; see
 * `NoProxyList`), read from `deps.env`, never from `process.env`; `NO_PROXY` entries that can
 * match nothing are ignored with one warning line. Plain-HTTP upstreams are sent to the proxy as absolute-URI requests, HTTPS ones
 * through `CONNECT` with the upstream's TLS (CA, client certificate) inside the tunnel.
 *
 * Throws `UpstreamSetupError` when a TLS file or a proxy variable is unusable.
 */
export function createUpstreamAgent(cfg: ProviderConfig, deps: ProviderDeps): Dispatcher {
  const loaded = loadUpstreamTls(cfg.tls, deps.projectRoot);
  const env: ReturnType<typeof loadEnvProxies> =
    cfg.proxy === undefined ? loadEnvProxies(deps.env) : { ok: true, proxies: {} };
  if (!loaded.ok || !env.ok) {
    throw new UpstreamSetupError([
      ...(loaded.ok ? [] : loaded.problems),
      ...(env.ok ? [] : env.problems),
    ]);
  }
  // One context for every connection: given `ca` itself, each TLS connection would parse the
  // whole CA list again.
  const connectTls: buildConnector.BuildOptions =
    Object.keys(loaded.options).length === 0
      ? {}
      : { secureContext: tls.createSecureContext(loaded.options) };
  const agentOptions = {
    connections: cfg.connections,
    keepAliveTimeout: 4_000,
    // Deadlines come from the request's AbortSignal; these only stop a socket living forever.
    headersTimeout: 600_000,
    bodyTimeout: 600_000,
  };
  const direct = (): Dispatcher =>
    new Agent({ ...agentOptions, connect: keepingTlsAlerts(buildConnector(connectTls)) });
  // Through a proxy, ProxyAgent's own connector opens the tunnel and runs `requestTls` (the
  // upstream's TLS) inside it; the factory keeps that TLS socket's alerts. Plain-HTTP requests go
  // to the proxy in absolute form, as curl sends them, not via CONNECT.
  const viaProxy = (uri: string): Dispatcher =>
    new ProxyAgent({
      ...agentOptions,
      uri,
      requestTls: connectTls,
      proxyTunnel: false,
      factory: factoryKeepingTlsAlerts,
    });
  if (cfg.proxy === false) return direct();
  if (cfg.proxy !== undefined) return viaProxy(cfg.proxy);
  const { httpProxy, httpsProxy, noProxy } = env.proxies;
  if (httpProxy === undefined && httpsProxy === undefined) return direct();
  const exempt = new NoProxyList(noProxy ?? '');
  warnIgnoredNoProxy(deps.logger, exempt);
  return new EnvProxyDispatcher(
    direct(),
    {
      ...(httpProxy === undefined ? {} : { 'http:': viaProxy(httpProxy) }),
      ...(httpsProxy === undefined ? {} : { 'https:': viaProxy(httpsProxy) }),
    },
    exempt,
  );
}
