import { readFileSync } from 'node:fs';
import {
  REFERENCE_FILE,
  renderConfigReference,
  renderRawReference,
} from '../../../scripts/config-docs';

/** The rendered row of one option, split into its cells. */
function row(markdown: string, option: string): string[] {
  const line = markdown.split('\n').find((l) => l.startsWith(`| \`${option}\``));
  if (line === undefined) throw new Error(`no row for ${option}`);
  return line
    .split(' | ')
    .map((c) => c.replace(/^\|\s*|\s*\|$/g, '').trim())
    .slice(1);
}

describe('docs/config-reference.md', () => {
  it('is what npm run docs renders from the schema', () => {
    const expected = renderConfigReference();
    let actual: string;
    try {
      actual = readFileSync(REFERENCE_FILE, 'utf8');
    } catch {
      actual = '';
    }
    if (actual !== expected) throw new Error('docs/config-reference.md is stale: run npm run docs');
  });

  it('shows the defaults, including those that differ by protocol or come from other fields', () => {
    const raw = renderRawReference();
    expect(row(raw, 'server.port')).toEqual([
      'integer',
      '`8080`',
      '0 to 65535',
      'listen port (the `PORT` environment variable wins)',
    ]);
    expect(row(raw, 'providers.<name>.timeoutMs')[1]).toBe(
      'methodcall: `5000`; dyn-rest, dyn-soap: `15000`',
    );
    expect(row(raw, 'providers.<name>.rateLimitPerSecond')[1]).toBe(
      'methodcall: none; dyn-rest, dyn-soap: `5`',
    );
    expect(row(raw, 'providers.<name>.retry.attempts')[1]).toBe('`2`');
    expect(row(raw, 'routes.<target>.timeoutMs')[1]).toBe('`server.requestTimeoutMs`');
    expect(row(raw, 'routes.<target>.provider')[1]).toBe('required');
    expect(row(raw, 'state.redisUrl')[1]).toBe('—');
    expect(row(raw, 'auth.apiKeys[].key')[2]).toBe('at least 16 characters');
  });

  it('has one table per protocol with its own options only', () => {
    const raw = renderRawReference();
    const section = (title: string): string => {
      const start = raw.indexOf(`### \`${title}\``);
      const end = raw.indexOf('\n## ', start);
      return raw.slice(start, end === -1 ? undefined : end);
    };
    expect(section('methodcall')).toContain('`providers.<name>.url`');
    expect(section('dyn-rest')).toContain('`providers.<name>.baseUrl`');
    expect(section('dyn-soap')).toContain('`providers.<name>.wsdl`');
    expect(section('dyn-soap')).not.toContain('`providers.<name>.timeoutMs`');
  });
});
