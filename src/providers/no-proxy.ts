import { BlockList, isIP } from 'node:net';
import { domainToASCII } from 'node:url';

/** One usable `NO_PROXY` entry; `port` absent means every port. */
type Rule =
  | { kind: 'all' }
  | { kind: 'domain'; name: string; port?: number }
  | { kind: 'ip'; family: 'ipv4' | 'ipv6'; list: BlockList; port?: number };

const DEFAULT_PORTS: Readonly<Record<string, number>> = { 'http:': 80, 'https:': 443 };

/** `:port` as written after a host: 1-65535, digits only. */
function parsePort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65_535 ? port : undefined;
}

/** An address or `address/bits` of one family as a one-entry block list, or undefined. */
function ipRule(text: string, port: number | undefined): Rule | undefined {
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  const version = isIP(address);
  if (version === 0) return undefined;
  const family = version === 4 ? 'ipv4' : 'ipv6';
  const list = new BlockList();
  if (slash === -1) {
    list.addAddress(address, family);
  } else {
    const bits = text.slice(slash + 1);
    const max = version === 4 ? 32 : 128;
    if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) return undefined;
    // BlockList compares the prefix only: `10.1.2.3/8` is `10.0.0.0/8`, as curl reads it.
    list.addSubnet(address, Number(bits), family);
  }
  return { kind: 'ip', family, list, ...(port === undefined ? {} : { port }) };
}

/** One entry of the list, lower-cased and trimmed; undefined when it can match nothing. */
function parseEntry(entry: string): Rule | undefined {
  if (entry === '*') return { kind: 'all' };
  // `[::1]` or `[::1]:8443`: brackets are how a port can follow an IPv6 address.
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  if (bracketed !== null) {
    const [, address = '', portText] = bracketed;
    const port = portText === undefined ? undefined : parsePort(portText);
    if (portText !== undefined && port === undefined) return undefined;
    return isIP(address) === 6 ? ipRule(address, port) : undefined;
  }
  // Two colons or more: a bare IPv6 address or range (`::1`, `fd00::/8`), never with a port.
  if ((entry.match(/:/g)?.length ?? 0) >= 2) return ipRule(entry, undefined);
  const colon = entry.lastIndexOf(':');
  const port = colon === -1 ? undefined : parsePort(entry.slice(colon + 1));
  if (colon !== -1 && port === undefined) return undefined;
  const host = colon === -1 ? entry : entry.slice(0, colon);
  if (host.includes('/')) return ipRule(host, port);
  if (isIP(host) === 4) return ipRule(host, port);
  // `.corp.example`, `*.corp.example` and `corp.example` are the same suffix (curl ignores the
  // leading dot, Go and undici take `*.`); a trailing dot is the same name too.
  const name = domainToASCII(host.replace(/^\*?\./, '').replace(/\.$/, ''));
  if (name === '') return undefined;
  // A name spelt as an IPv4 shorthand (`10.1`) is that address, as the URL parser reads it.
  if (isIP(name) === 4) return ipRule(name, port);
  return { kind: 'domain', name, ...(port === undefined ? {} : { port }) };
}

/**
 * A `NO_PROXY` list read as curl reads it (7.86+), for deciding whether an upstream URL goes
 * direct. Entries are separated by commas and/or blanks:
 *
 * - `*` exempts every host;
 * - a host name exempts itself and its subdomains, with or without a leading `.` or `*.`
 *   (`corp.example` and `.corp.example` both exempt `corp.example` and `api.corp.example`, not
 *   `notcorp.example`), case-insensitively, international names compared as the URL spells them;
 * - an IPv4 or IPv6 address (`10.0.0.5`, `::1`, `[::1]`) or a CIDR range (`10.0.0.0/8`,
 *   `fd00::/8`) exempts upstream URLs whose host is such an address literal. Names are not
 *   resolved for this (curl does not either): `10.0.0.0/8` does not exempt `api.svc` even when
 *   it resolves into that range;
 * - `host:port` (and `[v6]:port`) exempts that host on that port only, the scheme's default port
 *   counting for a URL without one (a Go and undici extension; curl ignores ports).
 *
 * Entries that can match nothing (`10.0.0.0/33`, `host:http`, `[not-v6]`) are ignored, as curl
 * ignores them; `ignored` lists them so that the caller can say so.
 */
export class NoProxyList {
  /** Entries that were ignored, as written. */
  readonly ignored: readonly string[];
  private readonly rules: readonly Rule[];

  constructor(value: string) {
    const rules: Rule[] = [];
    const ignored: string[] = [];
    for (const entry of value.split(/[\s,]+/)) {
      if (entry === '') continue;
      const rule = parseEntry(entry.toLowerCase());
      if (rule === undefined) ignored.push(entry);
      else rules.push(rule);
    }
    this.rules = rules;
    this.ignored = ignored;
  }

  /** True when a request to `url` (an `http:` or `https:` URL or origin) must not use a proxy. */
  matches(url: URL): boolean {
    if (this.rules.length === 0) return false;
    const port = url.port === '' ? DEFAULT_PORTS[url.protocol] : Number(url.port);
    // The URL parser has already lower-cased the host, punycoded it, normalised IPv4 shorthands
    // and bracketed IPv6: `[::1]`.
    const host = url.hostname;
    const v6 = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : undefined;
    const v4 = v6 === undefined && isIP(host) === 4 ? host : undefined;
    const name = host.endsWith('.') ? host.slice(0, -1) : host;
    return this.rules.some((rule) => {
      if (rule.kind === 'all') return true;
      if (rule.port !== undefined && rule.port !== port) return false;
      if (rule.kind === 'ip') {
        if (v6 !== undefined) return rule.list.check(v6, 'ipv6');
        return v4 !== undefined && rule.list.check(v4, 'ipv4');
      }
      if (v4 !== undefined || v6 !== undefined) return false;
      return name === rule.name || name.endsWith(`.${rule.name}`);
    });
  }
}
