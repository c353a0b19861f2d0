/**
 * The layer rule of src/, checked by `npm run layers` (part of `npm test`): imports point only
 * down, never in a cycle. Modules of one layer may import each other. The rules below are built
 * from LAYERS alone, so a new file is checked by where it lives, not by a list of today's files.
 */

/** Top to bottom; each entry is one layer, given as the paths (regexes) that belong to it. */
const LAYERS = [
  { name: 'entry points', paths: ['^src/main\\.ts$', '^src/demo\\.ts$'] },
  { name: 'gateway', paths: ['^src/gateway\\.ts$'] },
  { name: 'app and lifecycle', paths: ['^src/app\\.ts$', '^src/lifecycle/'] },
  { name: 'http', paths: ['^src/http/'] },
  { name: 'routing', paths: ['^src/routing/'] },
  { name: 'providers', paths: ['^src/providers/'] },
  { name: 'resilience', paths: ['^src/resilience/'] },
  { name: 'state, config and observability', paths: ['^src/(state|config|observability)/'] },
  // The simulators stand in for upstreams: they may use the core's types and nothing else.
  { name: 'simulators', paths: ['^src/simulators/'] },
  { name: 'core', paths: ['^src/core/'] },
];

const ALL_LAYERS = LAYERS.flatMap((layer) => layer.paths);

/** One rule per layer: nothing in it imports a module of any layer above it. */
const upwardRules = LAYERS.slice(1).map((layer, index) => ({
  name: `no-upward-import-from-${layer.name.replace(/[^a-z]+/g, '-')}`,
  severity: 'error',
  comment: `${layer.name} must not import from a higher layer (${LAYERS.slice(0, index + 1)
    .map((above) => above.name)
    .join(', ')}); move the shared piece down instead`,
  from: { path: layer.paths },
  to: { path: LAYERS.slice(0, index + 1).flatMap((above) => above.paths) },
}));

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'a module must not reach itself through its imports, within a layer or across',
      from: { path: '^src/' },
      to: { circular: true },
    },
    ...upwardRules,
    {
      name: 'core-imports-nothing-of-the-project',
      severity: 'error',
      comment: 'src/core/ is the bottom layer: it imports libraries only, never another folder',
      from: { path: '^src/core/' },
      to: { path: '^src/', pathNot: '^src/core/' },
    },
    {
      name: 'module-outside-the-layers',
      severity: 'error',
      comment: 'every module in src/ belongs to a layer (see LAYERS in .dependency-cruiser.cjs)',
      from: { path: '^src/', pathNot: ALL_LAYERS },
      to: {},
    },
    {
      name: 'import-of-a-module-outside-the-layers',
      severity: 'error',
      comment: 'every module in src/ belongs to a layer (see LAYERS in .dependency-cruiser.cjs)',
      from: { path: '^src/' },
      to: { path: '^src/', pathNot: ALL_LAYERS },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Type-only imports count: they couple layers as much as value imports do.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
