import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { ConfigSchema } from '../src/config/schema';
import { PROTOCOLS, type Protocol } from '../src/core/protocols';

/** Where the generated configuration reference lives. */
export const REFERENCE_FILE = path.join(__dirname, '..', 'docs', 'config-reference.md');

type JsonSchema = z.core.JSONSchema.JSONSchema;

/** One option as the reference shows it. */
interface Row {
  path: string;
  type: string;
  default: string;
  limits: string;
  description: string;
}

/**
 * A sub-schema. zod emits `true`/`false` only for `any`/`never` and an array only for tuples,
 * none of which the config uses.
 */
function node(
  schema: z.core.JSONSchema._JSONSchema | z.core.JSONSchema._JSONSchema[] | undefined,
  at: string,
): JsonSchema {
  if (schema === undefined || typeof schema === 'boolean' || Array.isArray(schema)) {
    throw new Error(`${at}: expected a schema object`);
  }
  return schema;
}

function code(value: unknown): string {
  return `\`${typeof value === 'string' ? value : JSON.stringify(value)}\``;
}

function typeOf(schema: JsonSchema, at: string): string {
  if (schema.const !== undefined) return code(schema.const);
  if (schema.type === 'array') return `list of ${typeOf(node(schema.items, at), at)}`;
  if (schema.type === 'string' && schema.format === 'uri') return 'URL';
  if (typeof schema.type === 'string') return schema.type;
  // A union such as `proxy: false | URL`: its alternatives.
  if (schema.anyOf !== undefined) {
    return schema.anyOf.map((s) => typeOf(node(s, at), at)).join(' or ');
  }
  throw new Error(`${at}: no single JSON type`);
}

function atLeast(count: number, what: string): string {
  return count === 1 ? 'not empty' : `at least ${count} ${what}`;
}

function limitsOf(schema: JsonSchema, at: string): string[] {
  const limits: string[] = [];
  const low =
    schema.minimum !== undefined
      ? `${schema.minimum}`
      : typeof schema.exclusiveMinimum === 'number'
        ? `above ${schema.exclusiveMinimum}`
        : undefined;
  if (schema.minimum !== undefined && schema.maximum !== undefined) {
    limits.push(`${schema.minimum} to ${schema.maximum}`);
  } else {
    if (low !== undefined) limits.push(schema.minimum !== undefined ? `at least ${low}` : low);
    if (schema.maximum !== undefined) limits.push(`at most ${schema.maximum}`);
  }
  if (schema.minLength !== undefined) limits.push(atLeast(schema.minLength, 'characters'));
  if (schema.pattern !== undefined) limits.push(`matches ${code(schema.pattern)}`);
  if (schema.enum !== undefined) limits.push(`one of ${schema.enum.map(code).join(', ')}`);
  if (schema.minItems !== undefined) limits.push(atLeast(schema.minItems, 'items'));
  if (schema.maxItems !== undefined) limits.push(`at most ${schema.maxItems} items`);
  if (schema.type === 'array') {
    const items = limitsOf(node(schema.items, at), at);
    if (items.length > 0) limits.push(`each ${items.join(', ')}`);
  }
  if (schema.format === 'uri') limits.push('http or https');
  return limits;
}

function defaultOf(schema: JsonSchema, required: boolean): string {
  if (schema.default !== undefined) return code(schema.default);
  const computed = schema.computedDefault;
  if (typeof computed === 'string') return computed;
  return required ? 'required' : '—';
}

/** Table cells are one line, and `|` would end a cell. */
function cell(text: string): string {
  return text.replace(/\s+/g, ' ').replace(/\|/g, '\\|');
}

/** The rows of an object's fields, each nested object's or list item's fields after its own. */
function rowsOf(schema: JsonSchema, prefix: string): Row[] {
  const rows: Row[] = [];
  const required = new Set(schema.required);
  for (const [key, value] of Object.entries(schema.properties ?? {})) {
    const at = `${prefix}${key}`;
    const field = node(value, at);
    if (field.description === undefined) throw new Error(`${at} has no description`);
    rows.push({
      path: at,
      type: typeOf(field, at),
      default: defaultOf(field, required.has(key)),
      limits: limitsOf(field, at).join('; '),
      description: field.description,
    });
    if (field.type === 'object') rows.push(...rowsOf(field, `${at}.`));
    const items = field.type === 'array' ? node(field.items, at) : undefined;
    if (items?.type === 'object') rows.push(...rowsOf(items, `${at}[].`));
  }
  return rows;
}

function table(rows: readonly Row[]): string {
  const lines = [
    '| option | type | default | limits | meaning |',
    '| --- | --- | --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| ${[code(r.path), r.type, r.default, r.limits || '—', r.description].map(cell).join(' | ')} |`,
    ),
  ];
  return lines.join('\n');
}

/** Per-protocol rows with their provider path prefix; `type` is the member's discriminator. */
function providerMembers(
  providers: JsonSchema,
): Map<Protocol, { schema: JsonSchema; rows: Row[] }> {
  const members = node(providers.additionalProperties, 'providers').oneOf ?? [];
  const byProtocol = new Map<Protocol, { schema: JsonSchema; rows: Row[] }>();
  for (const member of members.map((m) => node(m, 'providers'))) {
    const type = node(member.properties?.type, 'providers.type').const;
    const protocol = PROTOCOLS.find((p) => p === type);
    if (protocol === undefined) throw new Error(`providers: unknown member ${String(type)}`);
    byProtocol.set(protocol, { schema: member, rows: rowsOf(member, 'providers.<name>.') });
  }
  for (const protocol of PROTOCOLS) {
    if (!byProtocol.has(protocol)) throw new Error(`providers: no member for ${protocol}`);
  }
  return byProtocol;
}

/** "methodcall: `5000`; dyn-rest, dyn-soap: `15000`", or the one default all protocols share. */
function defaultsByProtocol(rows: ReadonlyMap<Protocol, Row>): string {
  const groups = new Map<string, Protocol[]>();
  for (const [protocol, row] of rows)
    groups.set(row.default, [...(groups.get(row.default) ?? []), protocol]);
  if (groups.size === 1) return [...groups.keys()].join('');
  return [...groups].map(([value, protocols]) => `${protocols.join(', ')}: ${value}`).join('; ');
}

/**
 * Splits the provider options into those every protocol shares (same type, limits and meaning;
 * the default may differ by protocol) and each protocol's own.
 */
function providerTables(providers: JsonSchema): { common: Row[]; own: Map<Protocol, Row[]> } {
  const members = providerMembers(providers);
  const all = [...members.values()];
  const first = all[0];
  if (first === undefined) throw new Error('providers: no members');
  const common: Row[] = [];
  const shared = new Set<string>();
  for (const row of first.rows) {
    if (row.path === 'providers.<name>.type') continue;
    const same = new Map<Protocol, Row>();
    for (const [protocol, member] of members) {
      const match = member.rows.find(
        (r) =>
          r.path === row.path &&
          r.type === row.type &&
          r.limits === row.limits &&
          r.description === row.description,
      );
      if (match !== undefined) same.set(protocol, match);
    }
    if (same.size !== members.size) continue;
    shared.add(row.path);
    common.push({ ...row, default: defaultsByProtocol(same) });
  }
  const own = new Map<Protocol, Row[]>();
  for (const [protocol, member] of members) {
    own.set(
      protocol,
      member.rows.filter((r) => !shared.has(r.path)),
    );
  }
  return { common, own };
}

function sectionOf(root: JsonSchema, key: string): JsonSchema {
  const section = node(root.properties?.[key], key);
  if (section.description === undefined) throw new Error(`${key} has no description`);
  return section;
}

/** The reference as markdown, before prettier lays out its tables. */
export function renderRawReference(): string {
  const root = z.toJSONSchema(ConfigSchema, { io: 'input' });
  const out: string[] = [
    '# Configuration reference',
    '<!-- Generated from src/config/schema.ts by `npm run docs` (scripts/config-docs.ts); do not edit. -->',
    'The config file is YAML (JSON is valid YAML). `${NAME}` and `${NAME:-default}` in any string ' +
      'value are replaced from the environment; numbers may come from there as digit strings. ' +
      'Unknown keys are errors. "required" marks a key without a default; "—" one that may be ' +
      'left out without a default.',
  ];
  const section = (key: string, body: () => void): void => {
    const schema = sectionOf(root, key);
    const text = schema.description ?? '';
    out.push(`## \`${key}\``, `${text.charAt(0).toUpperCase()}${text.slice(1)}.`);
    body();
  };
  const plain = (key: string): void => {
    section(key, () => out.push(table(rowsOf(sectionOf(root, key), `${key}.`))));
  };
  plain('server');
  section('auth', () => {
    out.push(table(rowsOf(sectionOf(root, 'auth'), 'auth.')));
  });
  section('providers', () => {
    const { common, own } = providerTables(sectionOf(root, 'providers'));
    const names = node(sectionOf(root, 'providers').propertyNames, 'providers');
    out.push(`A provider name matches ${code(names.pattern)}.`);
    out.push('### Options of every protocol', table(common));
    for (const [protocol, rows] of own) {
      out.push(`### \`${protocol}\``, table(rows));
    }
  });
  section('routes', () => {
    const routes = node(sectionOf(root, 'routes').additionalProperties, 'routes');
    out.push(table(rowsOf(routes, 'routes.<target>.')));
  });
  plain('state');
  return `${out.join('\n\n')}\n`;
}

/** Prettier's layout, through its CLI: its API needs ESM loading that jest's runtime lacks. */
function formatMarkdown(text: string): string {
  return execFileSync(
    process.execPath,
    [require.resolve('prettier/bin/prettier.cjs'), '--stdin-filepath', REFERENCE_FILE],
    { input: text, encoding: 'utf8' },
  );
}

/** The reference exactly as `docs/config-reference.md` must hold it. */
export function renderConfigReference(): string {
  return formatMarkdown(renderRawReference());
}

if (require.main === module) {
  writeFileSync(REFERENCE_FILE, renderConfigReference());
  process.stdout.write(`wrote ${path.relative(process.cwd(), REFERENCE_FILE)}\n`);
}
