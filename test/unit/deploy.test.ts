import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { checkProviderFiles } from '../../src/providers/registry';
import { parseConfig } from '../../src/config/load';
import { createMetrics } from '../../src/observability/metrics';
import { PROJECT_ROOT } from '../../src/gateway';
import { startTestGateway } from '../helpers/gateway';

/**
 * No container engine runs here, so the packaging is checked as text: the facts that break a
 * deployment when they drift (ports, paths, probes, users, grace periods, secrets, metric names).
 */
const root = path.join(__dirname, '..', '..');
const read = (file: string): string => readFileSync(path.join(root, file), 'utf8');
type Doc = Record<string, any>;

describe('Dockerfile', () => {
  const lines = read('Dockerfile')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const runtimeStart = lines.map((l) => l.startsWith('FROM ')).lastIndexOf(true);
  const runtime = lines.slice(runtimeStart);

  it('is multi-stage, with production dependencies only in the runtime image', () => {
    expect(lines.filter((l) => l.startsWith('FROM ')).length).toBeGreaterThanOrEqual(2);
    expect(lines.some((l) => l.includes('npm ci --omit=dev'))).toBe(true);
    expect(runtime.some((l) => /COPY --from=deps .*node_modules/.test(l))).toBe(true);
    expect(runtime.some((l) => /COPY --from=build .*dist/.test(l))).toBe(true);
    expect(lines[0]).toMatch(/^ARG NODE_IMAGE=node:24-bookworm-slim$/);
  });

  it('ships the heap settings the benchmark measured', () => {
    // bench/lib.ts runs the gateway (and both baselines) with GATEWAY_NODE_FLAGS as NODE_OPTIONS.
    const flags = /GATEWAY_NODE_FLAGS = '([^']+)'/.exec(read('bench/lib.ts'))?.[1];
    expect(flags).toMatch(/--max-old-space-size=\d+/);
    const shipped = runtime
      .map((l) => /NODE_OPTIONS="([^"]*)"/.exec(l)?.[1])
      .filter((v) => v !== undefined);
    expect(shipped).toEqual([flags]);
  });

  it('runs as non-root under tini, with a health check on /healthz', () => {
    expect(runtime).toContain('USER node');
    expect(runtime.some((l) => l.startsWith('ENTRYPOINT ["/usr/bin/tini", "--"]'))).toBe(true);
    const health = lines.findIndex((l) => l.startsWith('HEALTHCHECK'));
    expect(lines[health + 1]).toContain('/healthz');
  });

  it('reads the config at the documented path and ships the WSDL and a default config', () => {
    expect(runtime.some((l) => l.includes('GATEWAY_CONFIG=/etc/cancel-gateway/gateway.yaml'))).toBe(
      true,
    );
    expect(
      runtime.some((l) => l.endsWith('config/gateway.yaml /etc/cancel-gateway/gateway.yaml')),
    ).toBe(true);
    expect(runtime.some((l) => l.endsWith('wsdl ./wsdl'))).toBe(true);
    expect(runtime).toContain('EXPOSE 8080');
    expect(read('.dockerignore').split('\n')).toEqual(
      expect.arrayContaining(['node_modules', 'dist']),
    );
  });
});

describe('docker-compose.yml', () => {
  const compose = parse(read('docker-compose.yml'), { merge: true }) as Doc;
  const services = compose.services as Record<string, Doc>;
  const gateway = services.gateway!;
  const [hostDir, mountDir] = String(gateway.volumes[0]).replace(/:ro$/, '').split(':');
  const configPath = String(gateway.environment.GATEWAY_CONFIG);
  const configFile = path.join(root, hostDir!, path.relative(mountDir!, configPath));

  it('runs the gateway and the three simulators from one image, health-gated', () => {
    expect(Object.keys(services).sort()).toEqual([
      'gateway',
      'sim-dyn-rest',
      'sim-dyn-soap',
      'sim-methodcall',
    ]);
    for (const name of ['sim-methodcall', 'sim-dyn-rest', 'sim-dyn-soap']) {
      expect(gateway.depends_on[name]).toEqual({ condition: 'service_healthy' });
      expect(services[name]!.healthcheck.test.join(' ')).toContain('fetch(');
      expect(services[name]!.command.slice(0, 2)).toEqual(['node', 'dist/simulators/run.js']);
      expect(services[name]!.environment.SIM_HOST).toBe('0.0.0.0');
    }
  });

  it('mounts the config directory where GATEWAY_CONFIG points, and the file is valid', async () => {
    expect(configPath.startsWith(`${mountDir}/`)).toBe(true);
    expect(existsSync(configFile)).toBe(true);
    const loaded = parseConfig(readFileSync(configFile, 'utf8'), configFile, gateway.environment);
    if (!loaded.ok) throw new Error(loaded.problems.join('\n'));
    expect(await checkProviderFiles(loaded.value.config, PROJECT_ROOT)).toEqual([]);
    // One published port, the one the gateway listens on.
    expect(gateway.ports).toEqual([`8080:${loaded.value.config.server.port}`]);
    expect(loaded.value.config.server.host).toBe('0.0.0.0');
  });

  it('routes to each simulator by service name and the port its command listens on', () => {
    const loaded = parseConfig(readFileSync(configFile, 'utf8'), configFile, gateway.environment);
    if (!loaded.ok) throw new Error(loaded.problems.join('\n'));
    for (const provider of Object.values(loaded.value.config.providers)) {
      const raw =
        'url' in provider
          ? provider.url
          : 'baseUrl' in provider
            ? provider.baseUrl
            : provider.endpoint;
      const url = new URL(String(raw));
      const service = services[url.hostname];
      expect(service).toBeDefined();
      expect(service!.command).toContain(url.port);
    }
  });

  it('gives the gateway more stop time than its drain', () => {
    const loaded = parseConfig(readFileSync(configFile, 'utf8'), configFile, gateway.environment);
    if (!loaded.ok) throw new Error(loaded.problems.join('\n'));
    expect(parseInt(String(gateway.stop_grace_period), 10) * 1000).toBeGreaterThan(
      loaded.value.config.server.shutdownGraceMs,
    );
  });
});

describe('Kubernetes manifests', () => {
  const dir = 'deploy/kubernetes';
  const kustomization = parse(read(`${dir}/kustomization.yaml`)) as Doc;
  const docs: Doc[] = (kustomization.resources as string[]).flatMap((file) =>
    parseAllDocuments(read(`${dir}/${file}`)).map((d) => d.toJS() as Doc),
  );
  const byKind = (kind: string): Doc => {
    const found = docs.find((d) => d.kind === kind);
    if (found === undefined) throw new Error(`no ${kind}`);
    return found;
  };
  const deployment = byKind('Deployment');
  const pod = deployment.spec.template.spec as Doc;
  const container = pod.containers[0] as Doc;
  const configMap = byKind('ConfigMap');
  const secret = byKind('Secret');
  const env = Object.fromEntries(
    (container.env as { name: string; value: string }[]).map((e) => [e.name, e.value]),
  );
  const loaded = parseConfig(String(configMap.data['gateway.yaml']), 'configmap', {
    ...(secret.stringData as Record<string, string>),
  });
  if (!loaded.ok) throw new Error(loaded.problems.join('\n'));
  const config = loaded.value.config;

  it('lists every manifest in the kustomization', () => {
    expect(docs.map((d) => d.kind).sort()).toEqual(
      [
        'ConfigMap',
        'Deployment',
        'HorizontalPodAutoscaler',
        'PodDisruptionBudget',
        'Secret',
        'Service',
      ].sort(),
    );
  });

  it('runs at least two replicas, non-root, read-only, with resources', () => {
    expect(deployment.spec.replicas).toBeGreaterThanOrEqual(2);
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(pod.securityContext.runAsUser).not.toBe(0);
    expect(container.securityContext.readOnlyRootFilesystem).toBe(true);
    expect(container.securityContext.allowPrivilegeEscalation).toBe(false);
    expect(container.resources.requests.memory).toBeDefined();
    expect(container.resources.limits.memory).toBeDefined();
  });

  it('mounts the ConfigMap as a directory where GATEWAY_CONFIG points (no subPath: reload works)', () => {
    const mount = container.volumeMounts[0] as Doc;
    expect(mount.subPath).toBeUndefined();
    expect(path.posix.dirname(env.GATEWAY_CONFIG!)).toBe(mount.mountPath);
    const volume = (pod.volumes as Doc[]).find((v) => v.name === mount.name)!;
    expect(volume.configMap.name).toBe(configMap.metadata.name);
    expect(Object.keys(configMap.data)).toContain(path.posix.basename(env.GATEWAY_CONFIG!));
  });

  it('has a valid routing file whose ${VARIABLES} all come from the Secret', async () => {
    expect(container.envFrom[0].secretRef.name).toBe(secret.metadata.name);
    const wanted = [...String(configMap.data['gateway.yaml']).matchAll(/\$\{([A-Z0-9_]+)/g)].map(
      (m) => m[1],
    );
    for (const name of wanted) expect(Object.keys(secret.stringData)).toContain(name);
    expect(await checkProviderFiles(config, PROJECT_ROOT)).toEqual([]);
  });

  it('exposes the port the config listens on, through the Service', () => {
    const port = (container.ports as Doc[])[0]!;
    expect(port.containerPort).toBe(config.server.port);
    const service = byKind('Service');
    expect(service.spec.ports[0].targetPort).toBe(port.name);
    expect(service.spec.selector).toEqual(deployment.spec.template.metadata.labels);
  });

  it('orders grace periods: preStop + shutdownGraceMs < terminationGracePeriodSeconds', () => {
    const preStop = container.lifecycle.preStop.exec.command as string[];
    expect(preStop[0]).toBe('sleep');
    const sleepSeconds = Number(preStop[1]);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(
      sleepSeconds + config.server.shutdownGraceMs / 1000 + 5,
    );
  });

  it('points the HPA at the Deployment and the PDB at its pods', () => {
    const hpa = byKind('HorizontalPodAutoscaler');
    expect(hpa.spec.scaleTargetRef.name).toBe(deployment.metadata.name);
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);
    const pdb = byKind('PodDisruptionBudget');
    expect(pdb.spec.selector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
    expect(pdb.spec.minAvailable).toBeLessThan(deployment.spec.replicas);
  });

  it('probes endpoints that answer 200 on a running gateway', async () => {
    const gw = await startTestGateway({
      server: { port: 0 },
      providers: { wh: { type: 'methodcall', url: 'http://127.0.0.1:9/t' } },
      routes: { wh: { provider: 'wh' } },
    });
    try {
      for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
        const probePath = String(container[probe].httpGet.path);
        expect((await fetch(`${gw.url}${probePath}`)).status).toBe(200);
      }
      const metricsPath = String(
        deployment.spec.template.metadata.annotations['prometheus.io/path'],
      );
      expect((await fetch(`${gw.url}${metricsPath}`)).status).toBe(200);
    } finally {
      await gw.close();
    }
  });
});

describe('alert rules and dashboard', () => {
  const known = new Set<string>();
  beforeAll(async () => {
    const metrics = createMetrics();
    const all = (await metrics.registry.getMetricsAsJSON()) as unknown as {
      name: string;
      type: string;
    }[];
    for (const m of all) {
      known.add(m.name);
      if (m.type === 'histogram')
        for (const s of ['_bucket', '_sum', '_count']) known.add(m.name + s);
    }
  });
  const namesIn = (expr: string): string[] =>
    [...expr.matchAll(/\b((?:gateway|process|nodejs)_[a-z0-9_]+)/g)].map((m) => m[1]!);

  it('alerts only on metrics the gateway exports, each with a runbook that exists', () => {
    const rules = (parse(read('deploy/prometheus/alerts.yaml')) as Doc).groups[0].rules as Doc[];
    expect(rules.length).toBeGreaterThanOrEqual(4);
    const doc = read('docs/operations.md');
    for (const rule of rules) {
      for (const name of namesIn(String(rule.expr))) expect(known).toContain(name);
      const anchor = String(rule.annotations.runbook).split('#')[1]!;
      expect(doc.toLowerCase()).toContain(`### ${anchor.replaceAll('-', ' ')}`);
    }
  });

  it('charts only metrics the gateway exports', () => {
    const dashboard = JSON.parse(read('deploy/grafana/dashboard.json')) as {
      panels: { targets: { expr: string }[] }[];
    };
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
    expect(exprs.length).toBeGreaterThan(5);
    for (const expr of exprs) for (const name of namesIn(expr)) expect(known).toContain(name);
  });
});
