import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { issueMessage } from '../core/request';
import { ConfigSchema, type GatewayConfig } from './schema';

/** A validated config and where it came from. */
export interface LoadedConfig {
  config: GatewayConfig;
  /** Short hash of the file's bytes: what `/readyz` reports as `configVersion`. */
  version: string;
  file: string;
}

export type LoadResult = { ok: true; value: LoadedConfig } | { ok: false; problems: string[] };

const PLACEHOLDER = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

type Env = Readonly<Record<string, string | undefined>>;

/** Replaces `${NAME}` and `${NAME:-default}` in every string value; `$$` is a literal `$`. */
export function interpolate(
  value: unknown,
  env: Env,
  problems: string[],
  path: string[] = [],
): unknown {
  if (typeof value === 'string') {
    return value.replace(
      PLACEHOLDER,
      (match, name: string | undefined, fallback: string | undefined) => {
        if (match === '$$' || name === undefined) return '$';
        const found = env[name];
        if (found !== undefined && found !== '') return found;
        if (fallback !== undefined) return fallback;
        problems.push(`${formatPath(path)}: environment variable ${name} is not set`);
        return '';
      },
    );
  }
  if (Array.isArray(value)) {
    return value.map((item, index) => interpolate(item, env, problems, [...path, String(index)]));
  }
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      out[key] = interpolate(item, env, problems, [...path, key]);
    }
    return out;
  }
  return value;
}

function formatPath(path: readonly (string | number | symbol)[]): string {
  return path.length === 0 ? '(root)' : path.map(String).join('.');
}

/**
 * One line per zod issue, each starting with its dotted path, and one per unknown key. A path
 * gets its first issue only: zod runs length checks even on a value of the wrong type (a string
 * where a list goes), and the type error already says what is wrong.
 */
export function formatIssues(error: z.ZodError): string[] {
  const seen = new Set<string>();
  return error.issues.flatMap((issue) => {
    const path = formatPath(issue.path);
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => `${path === '(root)' ? key : `${path}.${key}`}: unknown key`);
    }
    if (seen.has(path)) return [];
    seen.add(path);
    return [`${path}: ${issue.message}`];
  });
}

/** Parses and validates config text; never throws. */
export function parseConfig(text: string, file: string, env: Env = process.env): LoadResult {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((e) => {
        const at = e.linePos?.[0];
        const message = (e.message.split('\n')[0] ?? e.code).replace(
          / at line \d+, column \d+:?$/,
          '',
        );
        return `${file}${at ? `:${at.line}:${at.col}` : ''}: ${message}`;
      }),
    };
  }
  const raw: unknown = doc.toJS({ maxAliasCount: 100 });
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return { ok: false, problems: [`${file}: must be a mapping with providers and routes`] };
  }
  const problems: string[] = [];
  const interpolated = interpolate(raw, env, problems);
  if (problems.length > 0) return { ok: false, problems };
  // The error map sees each value (zod keeps it out of the final issue without `reportInput`).
  const parsed = ConfigSchema.safeParse(interpolated, { error: issueMessage });
  if (!parsed.success) return { ok: false, problems: formatIssues(parsed.error) };
  const version = createHash('sha256').update(text).digest('hex').slice(0, 12);
  return { ok: true, value: { config: deepFreeze(parsed.data), version, file } };
}

/** Reads, interpolates and validates a config file; never throws. */
export function loadConfigFile(file: string, env: Env = process.env): LoadResult {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    return { ok: false, problems: [`${file}: cannot read the file (${code})`] };
  }
  return parseConfig(text, file, env);
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const item of Object.values(value)) deepFreeze(item);
    Object.freeze(value);
  }
  return value;
}
