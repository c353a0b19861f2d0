/**
 * `node --import tsx bench/alloc-top.ts <file.heapprofile> [n] [requests]`: where a sampling heap
 * profile (bench/alloc-sampler.mjs) says the bytes were allocated, by function and by package.
 */
import { readFileSync } from 'node:fs';

interface Node {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: Node[];
}

const [file = '', topArg = '40', requestsArg] = process.argv.slice(2);
const profile = JSON.parse(readFileSync(file, 'utf8')) as { head: Node };
const byFunction = new Map<string, number>();
const byPackage = new Map<string, number>();
let total = 0;

const packageOf = (url: string): string => {
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm !== null) return nm[1] ?? url;
  if (url.includes('/dist/')) return 'gateway (dist)';
  if (url.startsWith('node:')) return 'node core';
  return url === '' ? '(native)' : url;
};

const walk = (node: Node): void => {
  const f = node.callFrame;
  const where = f.url.replace(/^.*node_modules\//, '').replace(/^.*\/dist\//, 'dist/');
  const key = `${f.functionName || '(anonymous)'}  ${where}:${f.lineNumber + 1}`;
  byFunction.set(key, (byFunction.get(key) ?? 0) + node.selfSize);
  const pkg = packageOf(f.url);
  byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + node.selfSize);
  total += node.selfSize;
  for (const c of node.children) walk(c);
};
walk(profile.head);

const top = (m: Map<string, number>, n: number): string =>
  [...m]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`)
    .join('\n');
const requests = requestsArg === undefined ? undefined : Number(requestsArg);
process.stdout.write(
  `total sampled ${(total / 1e6).toFixed(0)} MB` +
    (requests === undefined ? '' : `, ${(total / requests / 1024).toFixed(1)} KB per request`) +
    `\n\nby package\n${top(byPackage, 15)}\n\nby function (self)\n${top(byFunction, Number(topArg))}\n`,
);
