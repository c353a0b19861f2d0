import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import path from 'node:path';
import { tempDir } from './gateway';
import { closedPort } from './net';

/** A real forward proxy (tinyproxy) on loopback, and what went through it. */
export interface ForwardProxy {
  /** `http://127.0.0.1:<port>`, without credentials. */
  url: string;
  port: number;
  /**
   * Request lines the proxy received, in order: `CONNECT 127.0.0.1:4430` for a tunnel,
   * `POST http://127.0.0.1:8080/api/v2/task` for a plain-HTTP request in absolute form.
   */
  requests: string[];
  /** Resolves with the first request line (seen or to come) that matches `test`. */
  waitForRequest(test: (line: string) => boolean): Promise<string>;
  /**
   * Resolves once every request sent to the proxy before this call is in `requests`: it sends
   * one more request itself and waits for its line, since the proxy logs in order of arrival.
   */
  settle(): Promise<void>;
  /** Everything tinyproxy wrote (for assertion messages). */
  output(): string;
  stop(): Promise<void>;
}

export interface ForwardProxyOptions {
  /** Ports `CONNECT` may reach (tinyproxy refuses others with 403). */
  connectPorts: number[];
  /** Require `Proxy-Authorization: Basic` with these credentials. */
  basicAuth?: { user: string; password: string };
}

const REQUEST_LINE = /Request \(file descriptor \d+\): (.+) HTTP\/1\.[01]$/;

/**
 * Starts Debian's `tinyproxy` on a free loopback port with a generated config, and resolves
 * once it accepts connections. Fails loudly when the binary is missing (`.ci/run` installs
 * it): these tests never skip silently.
 */
export async function startTinyproxy(options: ForwardProxyOptions): Promise<ForwardProxy> {
  const port = await closedPort();
  const dir = tempDir();
  const configFile = path.join(dir, 'tinyproxy.conf');
  writeFileSync(
    configFile,
    [
      `Port ${port}`,
      'Listen 127.0.0.1',
      'Allow 127.0.0.1',
      'Timeout 30',
      'MaxClients 100',
      // Info: the "Accepting connections" line says it is ready; each request line is logged.
      'LogLevel Info',
      ...options.connectPorts.map((p) => `ConnectPort ${p}`),
      ...(options.basicAuth === undefined
        ? []
        : [`BasicAuth ${options.basicAuth.user} ${options.basicAuth.password}`]),
    ].join('\n'),
  );
  const child: ChildProcess = spawn('tinyproxy', ['-d', '-c', configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let pending = '';
  const requests: string[] = [];
  const waiters: { test: (line: string) => boolean; resolve: (line: string) => void }[] = [];
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      resolve();
    }),
  );

  const ready = new Promise<void>((resolve, reject) => {
    child.once('error', (err) => {
      reject(
        new Error(`cannot start tinyproxy (${err.message}); install it: apt-get install tinyproxy`),
      );
    });
    child.once('exit', (code) => {
      reject(new Error(`tinyproxy exited (${String(code)}) before it was ready:\n${output}`));
    });
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        if (line.includes('Accepting connections')) resolve();
        const found = REQUEST_LINE.exec(line)?.[1];
        if (found === undefined) continue;
        requests.push(found);
        for (const w of [...waiters]) {
          if (w.test(found)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(found);
          }
        }
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
  });
  await ready;

  const waitForRequest = (test: (line: string) => boolean): Promise<string> => {
    const seen = requests.find(test);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => waiters.push({ test, resolve }));
  };

  let marks = 0;
  const deadPort = await closedPort();
  const settle = async (): Promise<void> => {
    const mark = `http://127.0.0.1:${deadPort}/settle-${++marks}`;
    const seen = waitForRequest((line) => line === `GET ${mark}`);
    const auth = options.basicAuth;
    await new Promise<void>((resolve, reject) => {
      const req = request({
        host: '127.0.0.1',
        port,
        path: mark,
        headers:
          auth === undefined
            ? {}
            : {
                'proxy-authorization': `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString('base64')}`,
              },
      });
      req.on('response', (res) => {
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end();
    });
    await seen;
  };

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    waitForRequest,
    settle,
    output: () => output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
