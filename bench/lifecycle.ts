/**
 * Reload and drain probes: a reload storm against a 5/s Dyn limit, a reload while cancels wait
 * for a Dyn session, SIGTERM under 50 keep-alive connections, and a grace shorter than slow
 * cancels. Each runs the gateway from source in a child process against the simulators of this
 * process, and prints one table. `node --import tsx bench/lifecycle.ts` (about 40 s).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { Agent, request, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { stringify } from 'yaml';
import { startDynRestSimulator, type DynRestSimulator } from '../src/simulators/dyn-rest';
import { startMethodcallSimulator } from '../src/simulators/methodcall';

const ROOT = path.join(__dirname, '..');

type Line = Record<string, unknown>;

/** A gateway child with its JSON log lines. */
interface Child {
  proc: ChildProcess;
  url: string;
  file: string;
  lines: Line[];
  waitFor(test: (line: Line) => boolean): Promise<Line>;
  exited: Promise<number | null>;
}

async function startGateway(doc: unknown): Promise<Child> {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'lifecycle-bench-')), 'gateway.yaml');
  writeFileSync(file, stringify(doc));
  const proc = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(ROOT, 'src/main.ts'), '--config', file],
    {
      cwd: ROOT,
      env: { PATH: process.env.PATH, LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const lines: Line[] = [];
  const waiters: { test: (l: Line) => boolean; resolve: (l: Line) => void }[] = [];
  let buffer = '';
  proc.stdout.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    for (let i = buffer.indexOf('\n'); i >= 0; i = buffer.indexOf('\n')) {
      const text = buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
      if (text.trim() === '') continue;
      const line = JSON.parse(text) as Line;
      lines.push(line);
      for (const w of [...waiters]) {
        if (w.test(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  });
  const exited = new Promise<number | null>((resolve) => proc.on('close', resolve));
  const waitFor = (test: (l: Line) => boolean): Promise<Line> => {
    const seen = lines.find(test);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      waiters.push({ test, resolve });
      void exited.then(() => {
        reject(new Error('the gateway exited first'));
      });
    });
  };
  const listening = await waitFor((l) => l.msg === 'gateway listening');
  return { proc, url: String(listening.url), file, lines, waitFor, exited };
}

async function reload(gw: Child, doc: unknown): Promise<Line> {
  const text = stringify(doc);
  writeFileSync(gw.file, text);
  gw.proc.kill('SIGHUP');
  const version = createHash('sha256').update(text).digest('hex').slice(0, 12);
  return gw.waitFor((l) => l.msg === 'config reloaded' && l.configVersion === version);
}

async function stop(gw: Child): Promise<number | null> {
  if (gw.proc.exitCode === null) gw.proc.kill('SIGTERM');
  return gw.exited;
}

/** POSTs a cancel; the status, the parsed body, or `empty` when no whole answer came. */
async function cancel(
  url: string,
  target: string,
  taskId: number,
): Promise<{ status: number; body?: Record<string, unknown>; empty?: boolean }> {
  try {
    const res = await fetch(`${url}/cancel`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ target, taskId }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  } catch {
    return { status: 0, empty: true };
  }
}

const dynProvider = (dyn: DynRestSimulator, extra: Record<string, unknown> = {}) => ({
  type: 'dyn-rest',
  baseUrl: dyn.baseUrl,
  customerName: 'acme',
  userName: 'api-user',
  password: 'sim-password',
  ...extra,
});

const server = { host: '127.0.0.1', port: 0 };

/** Most timestamps (ms) within any window of `ms`. */
function mostWithin(times: readonly number[], ms: number): number {
  let most = 0;
  for (let i = 0, j = 0; j < times.length; j++) {
    while ((times[j] ?? 0) - (times[i] ?? 0) >= ms) i++;
    most = Math.max(most, j - i + 1);
  }
  return most;
}

/** A reload storm; `rebuildDns`: every reload also changes the Dyn provider (it is rebuilt). */
async function storm(rebuildDns: boolean): Promise<Record<string, string | number>> {
  const dyn = await startDynRestSimulator();
  const wh = await startMethodcallSimulator();
  const deletes: number[] = [];
  dyn.server.on('request', (req: IncomingMessage) => {
    if (req.method === 'DELETE' && /\/task\//i.test(req.url ?? '')) deletes.push(performance.now());
  });
  const doc = (i: number) => ({
    server,
    providers: {
      dns: dynProvider(dyn, {
        rateLimitPerSecond: 5,
        ...(rebuildDns ? { timeoutMs: 5000 + i } : {}),
      }),
      wh: { type: 'methodcall', url: wh.taskUrl, timeoutMs: 1000 + i },
    },
    routes: { dns: { provider: 'dns' }, [`extra-${i}`]: { provider: 'wh' } },
  });
  const gw = await startGateway(doc(0));
  let running = true;
  let next = 1;
  let failed = 0;
  const loop = async (): Promise<void> => {
    while (running) {
      const res = await cancel(gw.url, 'dns', next++);
      if (res.status !== 200 && res.status !== 429) failed++;
      await delay(20);
    }
  };
  const started = performance.now();
  const loops = [loop(), loop(), loop()];
  let reloads = 0;
  while (performance.now() - started < 10_000) {
    await reload(gw, doc(++reloads));
    await delay(250);
  }
  running = false;
  await Promise.all(loops);
  const seconds = (performance.now() - started) / 1000;
  const result = {
    probe: `reload storm (dyn-rest 5/s${rebuildDns ? ', rebuilt by every reload' : ''})`,
    load: `${reloads} reloads in ${seconds.toFixed(1)} s, 3 callers`,
    'DELETEs max in any 1 s window': mostWithin(deletes, 1000),
    'DELETEs/s mean': (deletes.length / seconds).toFixed(1),
    logins: dyn.callsTo('POST', '/REST/Session').length,
    'failed requests': failed,
  };
  await stop(gw);
  await dyn.close();
  await wh.close();
  return result;
}

const reloadStorm = (): Promise<Record<string, string | number>> => storm(false);
const reloadStormRebuilding = (): Promise<Record<string, string | number>> => storm(true);

async function reloadDuringSessionWaits(): Promise<Record<string, string | number>> {
  const dyn = await startDynRestSimulator();
  const doc = (maxQueue: number) => ({
    server: { ...server, shutdownGraceMs: 1000 },
    providers: { dns: dynProvider(dyn, { maxSessions: 2, maxQueue, rateLimitPerSecond: 100 }) },
    routes: { dns: { provider: 'dns' } },
  });
  const gw = await startGateway(doc(100));
  let failed = 0;
  let total = 0;
  for (let round = 0; round < 3; round++) {
    const base = 1000 * (round + 1);
    for (const id of [base, base + 1]) dyn.setBehaviour(id, { kind: 'slow', delayMs: 1500 });
    const holders = [base, base + 1].map((id) => cancel(gw.url, 'dns', id));
    await dyn.waitUntil(
      (calls) =>
        calls.filter(
          (c) => c.path.includes(`/${String(base)}`) || c.path.includes(`/${String(base + 1)}`),
        ).length >= 2,
    );
    const waiters = Array.from({ length: 8 }, (_, k) => cancel(gw.url, 'dns', base + 10 + k));
    await reload(gw, doc(100 - round - 1));
    for (const res of await Promise.all([...holders, ...waiters])) {
      total++;
      if (res.status !== 200) failed++;
    }
  }
  await gw.waitFor((l) => l.msg === 'retired provider closed');
  const logouts = dyn.callsTo('DELETE', '/REST/Session').length;
  const result = {
    probe: 'reload while cancels wait for a session',
    load: `3 reloads, each with 2 slow cancels holding 2 sessions and 8 waiting`,
    'failed requests': `${failed} of ${total}`,
    'retired sessions logged out': `${logouts} of ${dyn.callsTo('POST', '/REST/Session').length - dyn.activeSessions()}`,
  };
  await stop(gw);
  await dyn.close();
  return result;
}

/** One POST over `agent`: its status, or the error code and whether the socket was reused. */
function post(
  agent: Agent,
  url: string,
  body: unknown,
): Promise<{ status: number } | { code: string; reused: boolean }> {
  const text = JSON.stringify(body);
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const req = request(
      {
        host: hostname,
        port,
        path: '/cancel',
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (data += chunk));
        res.on('end', () => {
          try {
            JSON.parse(data);
            resolve({ status: res.statusCode ?? 0 });
          } catch {
            resolve({ code: 'EMPTY_REPLY', reused: req.reusedSocket });
          }
        });
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => {
      resolve({ code: err.code ?? err.message, reused: req.reusedSocket });
    });
    req.end(text);
  });
}

async function drainUnderKeepAlive(): Promise<Record<string, string | number>> {
  const dyn = await startDynRestSimulator();
  const wh = await startMethodcallSimulator();
  const drains = 3;
  let resets = 0;
  let queueResets = 0;
  let draining503 = 0;
  let ok = 0;
  let exits = 0;
  let sessionsLeft = 0;
  for (let d = 0; d < drains; d++) {
    const gw = await startGateway({
      server: { ...server, shutdownGraceMs: 5000 },
      providers: { wh: { type: 'methodcall', url: wh.taskUrl }, dns: dynProvider(dyn) },
      routes: { warehouse: { provider: 'wh' }, dns: { provider: 'dns' } },
    });
    await cancel(gw.url, 'dns', 100 + d);
    const agent = new Agent({ keepAlive: true, maxSockets: 50 });
    let next = 1;
    const client = async (): Promise<void> => {
      for (;;) {
        const res = await post(agent, gw.url, { target: 'warehouse', taskId: next++ });
        if ('status' in res) {
          if (res.status === 503) draining503++;
          else ok++;
        } else {
          // Refused, or reset while still in the listener's accept queue (never read): neither
          // reached the gateway. Anything on a connection that carried requests is a reset.
          if (res.code === 'ECONNRESET' && !res.reused) queueResets++;
          else if (res.code !== 'ECONNREFUSED') resets++;
          return;
        }
        await delay(1);
      }
    };
    const clients = Array.from({ length: 50 }, () => client());
    await wh.waitForCalls(wh.calls.length + 200);
    gw.proc.kill('SIGTERM');
    await Promise.all(clients);
    agent.destroy();
    if ((await gw.exited) === 0) exits++;
    sessionsLeft += dyn.activeSessions();
  }
  await dyn.close();
  await wh.close();
  return {
    probe: 'SIGTERM with 50 keep-alive connections',
    load: `${drains} drains, 50 clients sending continuously (node:http Agent)`,
    'resets/empty replies per drain (open connections)': (resets / drains).toFixed(1),
    'new connections reset in the accept queue per drain': (queueResets / drains).toFixed(1),
    'answers 2xx-4xx / 503 DRAINING': `${ok} / ${draining503}`,
    'exit 0': `${exits} of ${drains}`,
    'Dyn sessions left logged in': sessionsLeft,
  };
}

async function shortGrace(): Promise<Record<string, string | number>> {
  const dyn = await startDynRestSimulator();
  const gw = await startGateway({
    server: { ...server, shutdownGraceMs: 1000 },
    providers: { dns: dynProvider(dyn, { maxSessions: 8, rateLimitPerSecond: 100 }) },
    routes: { dns: { provider: 'dns' } },
  });
  const ids = Array.from({ length: 15 }, (_, k) => 5000 + k);
  for (const id of ids) dyn.setBehaviour(id, { kind: 'slow', delayMs: 20_000 });
  const callers = ids.map((id) => cancel(gw.url, 'dns', id));
  await dyn.waitUntil(
    (calls) => calls.filter((c) => c.method === 'DELETE' && /\/task\//i.test(c.path)).length >= 8,
  );
  gw.proc.kill('SIGTERM');
  const answers = await Promise.all(callers);
  const code = await gw.exited;
  const result = {
    probe: 'grace 1 s, cancels of 20 s',
    load: '15 callers: 8 sent (8 sessions), 7 waiting for a session',
    'empty replies': answers.filter((a) => a.empty === true).length,
    'JSON answers (status)': [
      ...new Set(answers.filter((a) => a.empty !== true).map((a) => a.status)),
    ].join(', '),
    'Dyn sessions left logged in': dyn.activeSessions(),
    exit: String(code),
  };
  await dyn.close();
  return result;
}

async function main(): Promise<void> {
  const rows: Record<string, string | number>[] = [];
  const all = [
    reloadStorm,
    reloadStormRebuilding,
    reloadDuringSessionWaits,
    drainUnderKeepAlive,
    shortGrace,
  ];
  const only = process.argv.slice(2);
  for (const probe of all.filter((p) => only.length === 0 || only.includes(p.name))) {
    process.stderr.write(`running ${probe.name}\n`);
    rows.push(await probe());
  }
  for (const row of rows) {
    process.stdout.write(`\n${String(row.probe)}\n`);
    for (const [key, value] of Object.entries(row)) {
      if (key !== 'probe') process.stdout.write(`  ${key.padEnd(50)} ${String(value)}\n`);
    }
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
