/**
 * Summarises a V8 .cpuprofile (from `npm run bench -- --profile`): self time grouped by the
 * gateway's own concerns (validation, logging, metrics, idempotency/state, policies, Express,
 * node-soap, undici, GC…), by package and by function, so where the cost is can be read without
 * a flame-graph viewer. A second grouping charges Node core and native time (socket writes,
 * JSON.parse, Buffer work) to the nearest caller that belongs to a group.
 * Usage: node --import tsx bench/profile-top.ts <file.cpuprofile> [top N] [requests]
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
/** The parts of V8's .cpuprofile format read here. */
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Groups of dependencies, by package name (the first match of the url's last node_modules/). */
const PACKAGE_GROUPS: [RegExp, string][] = [
  [/^zod$/, 'validation/zod'],
  [
    /^(pino|pino-std-serializers|sonic-boom|@pinojs\/.*|fast-redact|thread-stream|on-exit-leak-free|quick-format-unescaped|atomic-sleep|safe-stable-stringify|fast-safe-stringify)$/,
    'logging/pino',
  ],
  [/^(prom-client|tdigest|bintrees)$/, 'metrics/prom-client'],
  [/^@opentelemetry\//, 'tracing/opentelemetry'],
  [/^cockatiel$/, 'policies/resilience'],
  [/^(ioredis|redis-parser|denque|cluster-key-slot|standard-as-callback)$/, 'idempotency/state'],
  [
    /^(soap|sax|xml-crypto|@xmldom\/.*|xpath|axios|axios-ntlm|follow-redirects|form-data|proxy-from-env|formidable|get-stream|lodash|strip-bom|whatwg-mimetype|uuid)$/,
    'node-soap/sax',
  ],
  [/^undici$/, 'undici'],
  [/^(fast-xml-parser|strnum)$/, 'methodcall XML (fast-xml-parser)'],
  [/^yaml$/, 'config'],
];

/** The gateway's own files, by their path under dist/ (built from src/ with the same layout). */
const OWN_GROUPS: [RegExp, string][] = [
  [/^config\//, 'config'],
  [/^observability\/(logger|log)/, 'logging/pino'],
  [/^observability\/metrics/, 'metrics/prom-client'],
  [/^observability\/trac/, 'tracing/opentelemetry'],
  [/^state\/|^http\/idempotency/, 'idempotency/state'],
  [/^resilience\/|^routing\/(policy|deadline)|^core\/circuit/, 'policies/resilience'],
  [/^providers\/dyn\/soap/, 'gateway: dyn-soap provider'],
  [/^providers\/dyn\//, 'gateway: dyn-rest provider + dyn shared'],
  [/^providers\/methodcall\//, 'gateway: methodcall provider'],
  [/^providers\//, 'gateway: providers (shared)'],
  [/^http\/body|^core\/(request|result-schema)|schema|valid/, 'validation/zod'],
  [/^routing\//, 'gateway: routing'],
  [/^simulators\//, 'simulators'],
  [/./, 'gateway: http, app, lifecycle, core'],
];

/** Anything Express 5 brings: express, router, body-parser and their small helpers. */
const EXPRESS =
  /^(express|router|body-parser|raw-body|iconv-lite|safer-buffer|on-finished|finalhandler|send|serve-static|type-is|content-type|media-typer|mime-types|mime-db|accepts|negotiator|http-errors|statuses|path-to-regexp|parseurl|encodeurl|escape-html|etag|fresh|range-parser|vary|cookie|cookie-signature|content-disposition|merge-descriptors|proxy-addr|forwarded|ipaddr\.js|qs|side-channel.*|object-inspect|call-bind.*|call-bound|get-intrinsic|get-proto|es-.*|function-bind|hasown|gopd|has-symbols|dunder-proto|math-intrinsics|debug|ms|depd|bytes|unpipe|ee-first|once|wrappy|is-promise|setprototypeof|toidentifier|inherits)$/;

const NODE_CORE = 'node core (http, net, streams)';
const NATIVE = 'native (builtins, C++ bindings)';

/** The package a script belongs to, or undefined for the gateway's own and Node's own scripts. */
function packageOf(url: string): string | undefined {
  return /.*node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
}

/** The group of one frame. */
export function groupOf(functionName: string, url: string): string {
  if (url === '') {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(idle)') return 'idle';
    if (functionName === '(program)') return 'V8 (program: compile, IC, runtime)';
    if (functionName === '(root)') return '(root)';
    return NATIVE;
  }
  const pkg = packageOf(url);
  if (pkg !== undefined) {
    if (EXPRESS.test(pkg)) return 'express';
    return PACKAGE_GROUPS.find(([re]) => re.test(pkg))?.[1] ?? `other package: ${pkg}`;
  }
  if (url.startsWith('node:')) return NODE_CORE;
  // The only WebAssembly in the process is undici's HTTP parser (llhttp).
  if (url.startsWith('wasm://')) return 'undici';
  const own = /\/dist\/(.+)$/.exec(url)?.[1];
  if (own !== undefined) return OWN_GROUPS.find(([re]) => re.test(own))?.[1] ?? 'gateway';
  return url;
}

/** Self time (µs) by group, by group with core/native charged to the caller, package, function. */
export function tally(profile: CpuProfile): {
  totalUs: number;
  byGroup: Map<string, number>;
  byGroupCharged: Map<string, number>;
  byPackage: Map<string, number>;
  byFunction: Map<string, number>;
} {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const add = (map: Map<string, number>, key: string, us: number): void => {
    map.set(key, (map.get(key) ?? 0) + us);
  };
  const byGroup = new Map<string, number>();
  const byGroupCharged = new Map<string, number>();
  const byPackage = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let totalUs = 0;
  for (const [id, us] of selfUs) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    totalUs += us;
    const group = groupOf(functionName, url);
    add(byGroup, group, us);
    if (group === 'idle') continue;
    let charged = group;
    for (let up = parent.get(id); charged === NODE_CORE || charged === NATIVE;) {
      if (up === undefined) break;
      const frame = byId.get(up)!.callFrame;
      const g = groupOf(frame.functionName, frame.url);
      if (g !== NODE_CORE && g !== NATIVE && g !== '(root)') charged = g;
      up = parent.get(up);
    }
    add(byGroupCharged, charged, us);
    const where =
      packageOf(url) ??
      (url === ''
        ? '(native/gc)'
        : url.includes('/dist/')
          ? 'gateway (dist)'
          : url.startsWith('node:')
            ? 'node core'
            : url.startsWith('wasm://')
              ? 'undici (llhttp wasm)'
              : url);
    add(byPackage, where, us);
    const short = url.replace(/^.*node_modules\//, '').replace(/^.*\/dist\//, 'dist/');
    add(byFunction, `${functionName || '(anonymous)'}  ${short}:${lineNumber + 1}`, us);
  }
  return { totalUs, byGroup, byGroupCharged, byPackage, byFunction };
}

/** The summary as text: each grouping sorted by time, `top` functions, µs per request if known. */
export function summarise(profile: CpuProfile, top = 30, requests?: number): string {
  const t = tally(profile);
  const busy = t.totalUs - (t.byGroup.get('idle') ?? 0);
  const out: string[] = [
    `sampled ${(t.totalUs / 1e6).toFixed(1)} s, of which busy ${(busy / 1e6).toFixed(1)} s` +
      (requests === undefined ? '' : `, ${requests} requests`) +
      ' (shares below are of busy time)',
  ];
  const section = (title: string, map: Map<string, number>, n: number): void => {
    out.push('', title);
    for (const [k, us] of [...map]
      .filter(([k, us]) => k !== 'idle' && k !== '(root)' && us >= busy / 2000)
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)) {
      const perRequest =
        requests === undefined ? '' : `${(us / requests).toFixed(1).padStart(7)} µs/req  `;
      out.push(`${((100 * us) / busy).toFixed(1).padStart(5)}%  ${perRequest}${k}`);
    }
  };
  section('by group (self time)', t.byGroup, 40);
  section(
    'by group (node core and native time charged to the nearest grouped caller)',
    t.byGroupCharged,
    40,
  );
  section('by package (self time)', t.byPackage, 20);
  section('by function (self time)', t.byFunction, top);
  return `${out.join('\n')}\n`;
}

if (require.main === module) {
  const [file, topArg = '30', requestsArg] = process.argv.slice(2);
  if (file === undefined) throw new Error('usage: profile-top.ts <file.cpuprofile> [N] [requests]');
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  process.stdout.write(
    summarise(profile, Number(topArg), requestsArg === undefined ? undefined : Number(requestsArg)),
  );
}
