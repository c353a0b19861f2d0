import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { GatewayConfig } from '../config/schema';

/** One configured caller. */
interface CompiledKey {
  id: string;
  sha256: Buffer;
  /** Undefined: every target. */
  targets: ReadonlySet<string> | undefined;
}

/** The caller a request was authenticated as. */
export interface Caller {
  id: string;
  /** Whether this caller may cancel on `target`. */
  allows(target: string): boolean;
}

export type AuthResult =
  { ok: true; caller: Caller } | { ok: false; reason: 'missing' | 'unknown'; message: string };

export interface Auth {
  /** True when keys are configured; without them every caller is `anonymous`. */
  readonly enabled: boolean;
  authenticate(headers: IncomingHttpHeaders): AuthResult;
}

const ANONYMOUS: Caller = { id: 'anonymous', allows: () => true };

const sha256 = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/** The key a request presents: `Authorization: Bearer <key>`, else `X-API-Key: <key>`. */
function presentedKey(headers: IncomingHttpHeaders): string | undefined {
  const authorization = headers.authorization;
  if (typeof authorization === 'string') {
    const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
    if (match?.[1] !== undefined) return match[1];
  }
  const apiKey = headers['x-api-key'];
  if (typeof apiKey === 'string' && apiKey.trim() !== '') return apiKey.trim();
  return undefined;
}

/**
 * API-key auth from `auth.apiKeys`. Keys are kept only as SHA-256 digests; a presented key is
 * hashed and compared with every configured digest in constant time (no early exit), so neither
 * the match nor its position leaks through timing.
 */
export function compileAuth(config: GatewayConfig['auth']): Auth {
  if (config === undefined) {
    return { enabled: false, authenticate: () => ({ ok: true, caller: ANONYMOUS }) };
  }
  const keys: CompiledKey[] = config.apiKeys.map((k) => ({
    id: k.id,
    sha256: k.sha256 !== undefined ? Buffer.from(k.sha256, 'hex') : sha256(k.key ?? ''),
    targets: k.targets === undefined ? undefined : new Set(k.targets),
  }));
  return {
    enabled: true,
    authenticate(headers) {
      const key = presentedKey(headers);
      if (key === undefined) {
        return {
          ok: false,
          reason: 'missing',
          message: 'an API key is required: Authorization: Bearer <key> or X-API-Key: <key>',
        };
      }
      const digest = sha256(key);
      let found: CompiledKey | undefined;
      for (const candidate of keys) {
        if (timingSafeEqual(candidate.sha256, digest) && found === undefined) found = candidate;
      }
      if (found === undefined) return { ok: false, reason: 'unknown', message: 'unknown API key' };
      const { id, targets } = found;
      return {
        ok: true,
        caller: { id, allows: (target) => targets === undefined || targets.has(target) },
      };
    },
  };
}
