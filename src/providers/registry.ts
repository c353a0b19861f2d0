import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { GatewayConfig, ProviderConfig } from '../config/schema';
import { createDynRestProvider } from './dyn/rest';
import { createDynSoapProvider } from './dyn/soap';
import { openDynSoapClient, WsdlError } from './dyn/wsdl';
import { createMethodcallProvider } from './methodcall/provider';
import type { Provider, ProviderDeps } from './provider';
import { loadEnvProxies, loadUpstreamTls, UpstreamSetupError } from './upstream-agent';

export type { ProviderDeps };

/** Builds one provider from its validated config. Adding a type is one `case` here. */
export async function createProvider(
  name: string,
  cfg: ProviderConfig,
  deps: ProviderDeps,
): Promise<Provider> {
  try {
    return await build(name, cfg, deps);
  } catch (err) {
    // A TLS file or proxy variable the provider cannot use: a config problem at its path.
    if (err instanceof UpstreamSetupError) {
      throw new Error(err.problems.map((p) => `providers.${name}.${p}`).join('\n'));
    }
    throw err;
  }
}

function build(name: string, cfg: ProviderConfig, deps: ProviderDeps): Promise<Provider> {
  switch (cfg.type) {
    case 'methodcall':
      return Promise.resolve(createMethodcallProvider(name, cfg, deps));
    case 'dyn-rest':
      return Promise.resolve(createDynRestProvider(name, cfg, deps));
    case 'dyn-soap':
      // A WSDL problem is a config problem: report it at the path that names the file.
      return createDynSoapProvider(name, cfg, deps).catch((err: unknown) => {
        if (err instanceof WsdlError) throw new Error(`providers.${name}.wsdl: ${err.message}`);
        throw err;
      });
    default: {
      const unreachable: never = cfg;
      throw new Error(`unknown provider type ${JSON.stringify(unreachable)}`);
    }
  }
}

/**
 * The checks a schema cannot make: files the config names must exist and be usable. Each
 * dyn-soap provider's WSDL is loaded exactly as the provider will load it at start; each
 * provider's `tls` files are read and checked as its upstream agent will read them. Given the
 * environment, a provider without `proxy` also needs usable `HTTP_PROXY`/`HTTPS_PROXY` values.
 */
export async function checkProviderFiles(
  config: GatewayConfig,
  projectRoot: string,
  env?: ProviderDeps['env'],
): Promise<string[]> {
  const problems: string[] = [];
  const proxies = env === undefined ? undefined : loadEnvProxies(env);
  for (const [name, provider] of Object.entries(config.providers)) {
    const at = (problem: string): string => `providers.${name}.${problem}`;
    const tls = loadUpstreamTls(provider.tls, projectRoot);
    if (!tls.ok) problems.push(...tls.problems.map(at));
    if (provider.proxy === undefined && proxies?.ok === false) {
      problems.push(...proxies.problems.map(at));
    }
    if (provider.type !== 'dyn-soap') continue;
    try {
      await openDynSoapClient(provider.wsdl, projectRoot);
    } catch (err) {
      if (!(err instanceof WsdlError)) throw err;
      problems.push(`providers.${name}.wsdl: ${err.message}`);
    }
  }
  return problems;
}

/**
 * A digest of the files a provider's settings name (its `tls` files, a dyn-soap WSDL), as they
 * are on disk now: a reload rebuilds a provider whose files changed even when its settings did
 * not (a certificate renewed in place). An unreadable file counts as its own value; the build
 * then reports it.
 */
export function providerFilesDigest(cfg: ProviderConfig, projectRoot: string): string {
  const files = [cfg.tls.caFile, cfg.tls.certFile, cfg.tls.keyFile];
  if (cfg.type === 'dyn-soap') files.push(cfg.wsdl);
  const hash = createHash('sha256');
  for (const file of files) {
    if (file === undefined) {
      hash.update('-\0');
      continue;
    }
    try {
      hash.update(readFileSync(path.resolve(projectRoot, file))).update('\0');
    } catch {
      hash.update(`unreadable ${file}\0`);
    }
  }
  return hash.digest('hex');
}
