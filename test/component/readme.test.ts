import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from '../helpers/child';
import { closedPort } from '../helpers/net';

/**
 * The README and docs stay true: every `$ curl` example in a console block runs against a real
 * `npm run demo` (its simulators and gateway, in a child process on free ports), and the answer
 * must show what the text shows: outcome, provider, protocol, error code and every attempt.
 */

interface Example {
  file: string;
  command: string;
  shown: string;
}

/** `$ curl …` commands (with `\` continuations) of console blocks, each with the line after it. */
function examplesIn(file: string): Example[] {
  const lines = readFileSync(path.join(ROOT, file), 'utf8').split('\n');
  const found: Example[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i]!.startsWith('$ curl ')) continue;
    let command = lines[i]!.slice(2);
    while (command.endsWith('\\')) command = `${command.slice(0, -1)} ${lines[++i]!.trim()}`;
    found.push({ file, command, shown: lines[i + 1] ?? '' });
  }
  return found;
}

/** Splits a shell command line: single quotes keep text as it is; blanks separate words. */
function words(command: string): string[] {
  return [...command.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? '');
}

/** What fetch needs from a curl command line (-X, -H, -d and the URL). */
function requestOf(command: string, base: string): { url: string; init: RequestInit } {
  const args = words(command).slice(1);
  const headers: Record<string, string> = {};
  let method = 'GET';
  let body: string | undefined;
  let url = '';
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '-X') method = args[++i]!;
    else if (arg === '-H') {
      const [name, ...value] = args[++i]!.split(':');
      headers[name!.trim()] = value.join(':').trim();
    } else if (arg === '-d') {
      body = args[++i]!;
      if (method === 'GET') method = 'POST';
    } else if (arg.startsWith('http')) url = arg.replace('http://127.0.0.1:8080', base);
  }
  return { url, init: { method, headers, ...(body === undefined ? {} : { body }) } };
}

/** The parts of an answer a reader relies on (durations and generated ids vary). */
function gist(answer: Record<string, any>): Record<string, unknown> {
  return {
    ok: answer.ok,
    outcome: answer.outcome,
    provider: answer.provider,
    protocol: answer.protocol,
    taskId: answer.taskId,
    code: answer.error?.code,
    upstream: answer.error?.upstream?.code,
    taskStatus: answer.task?.status,
    replayed: answer.replayed,
    attempts: (answer.attempts ?? []).map((a: Record<string, unknown>) => ({
      provider: a.provider,
      outcome: a.outcome,
      errorCode: a.errorCode,
    })),
  };
}

interface Demo {
  child: ChildProcess;
  url: string;
  lines: Record<string, unknown>[];
  waitFor(test: (line: Record<string, unknown>) => boolean): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The demo on four ports found free a moment before: another test process may take one of them
 * meanwhile, so a start that fails with EADDRINUSE is tried again on new ones.
 */
async function startDemo(): Promise<Demo> {
  for (let tries = 1; ; tries++) {
    try {
      return await startDemoOnce();
    } catch (err) {
      if (tries >= 3 || !(err instanceof Error) || !err.message.includes('EADDRINUSE')) throw err;
    }
  }
}

async function startDemoOnce(): Promise<Demo> {
  const [port, methodcall, rest, soap] = [
    await closedPort(),
    await closedPort(),
    await closedPort(),
    await closedPort(),
  ];
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/demo.ts')], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      PORT: String(port),
      SIM_METHODCALL_PORT: String(methodcall),
      SIM_DYN_REST_PORT: String(rest),
      SIM_DYN_SOAP_PORT: String(soap),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  const waiters: { test: (l: Record<string, unknown>) => boolean; resolve: () => void }[] = [];
  let buffer = '';
  let output = '';
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    buffer += chunk.toString();
    for (let at = buffer.indexOf('\n'); at >= 0; at = buffer.indexOf('\n')) {
      const text = buffer.slice(0, at);
      buffer = buffer.slice(at + 1);
      if (!text.startsWith('{')) continue;
      const line = JSON.parse(text) as Record<string, unknown>;
      lines.push(line);
      for (const w of [...waiters]) {
        if (w.test(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    }
  });
  const exited = new Promise<void>((resolve) =>
    child.once('close', () => {
      resolve();
    }),
  );
  const waitFor = (test: (l: Record<string, unknown>) => boolean): Promise<void> =>
    lines.some(test)
      ? Promise.resolve()
      : new Promise((resolve, reject) => {
          waiters.push({ test, resolve });
          void exited.then(() => {
            reject(new Error(`the demo exited:\n${output}`));
          });
        });
  await waitFor((l) => l.msg === 'gateway listening');
  return {
    child,
    url: `http://127.0.0.1:${port}`,
    lines,
    waitFor,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

describe.each(['README.md', 'docs/api.md'])('the curl examples of %s', (file) => {
  const examples = examplesIn(file);
  let demo: Demo;

  beforeAll(async () => {
    demo = await startDemo();
  });

  afterAll(async () => {
    await demo.stop();
  });

  it('exist', () => {
    expect(examples.length).toBeGreaterThan(0);
  });

  // In order: the demo's simulators remember what earlier examples did, as the text says.
  it('answer what the text shows, one after the other', async () => {
    for (const example of examples) {
      const { url, init } = requestOf(example.command, demo.url);
      const res = await fetch(url, init);
      const answer = (await res.json()) as Record<string, any>;
      let shown: Record<string, any>;
      try {
        shown = JSON.parse(example.shown) as Record<string, any>;
      } catch {
        // An elided answer ("…"): its summary, or else its first outcome, is what it shows.
        const summary = /"summary":(\{[^}]*\})/.exec(example.shown)?.[1];
        const outcome = /"outcome":"([a-z_]+)"/.exec(example.shown)?.[1];
        if (summary !== undefined) expect(answer.summary).toEqual(JSON.parse(summary));
        else expect(answer.outcome).toBe(outcome);
        continue;
      }
      expect({ example: example.command, ...gist(answer) }).toEqual({
        example: example.command,
        ...gist(shown),
      });
    }
  });
});

describe('the demo', () => {
  it('reloads on SIGHUP instead of dying, and says when nothing changed', async () => {
    const demo = await startDemo();
    try {
      demo.child.kill('SIGHUP');
      await demo.waitFor((l) => l.msg === 'config unchanged');
      const res = await fetch(`${demo.url}/readyz`);
      expect(res.status).toBe(200);
    } finally {
      await demo.stop();
    }
  });
});
