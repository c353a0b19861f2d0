import { spawn, type ChildProcess } from 'node:child_process';
import { closedPort } from './net';

export interface RedisServer {
  url: string;
  port: number;
  /** Kills the server (SIGKILL: no goodbye to clients). */
  kill(): Promise<void>;
  /** Starts it again on the same port, empty. */
  restart(): Promise<void>;
  /** Freezes the server (SIGSTOP): connections stay open, nothing is answered. */
  pause(): void;
  /** Lets a paused server run again (SIGCONT). */
  resume(): void;
  stop(): Promise<void>;
}

/**
 * A real `redis-server` on a free loopback port, without persistence. Fails loudly when the
 * binary is missing (`.ci/run` installs Debian's redis-server): these tests never skip silently.
 */
export async function startRedis(): Promise<RedisServer> {
  const port = await closedPort();
  let child: ChildProcess | undefined;

  const launch = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const proc = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      child = proc;
      let out = '';
      proc.on('error', (err) => {
        reject(
          new Error(
            `cannot start redis-server (${err.message}); install it: apt-get install redis-server`,
          ),
        );
      });
      proc.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('Ready to accept connections')) resolve();
      });
      proc.on('exit', (code) => {
        if (!out.includes('Ready to accept connections')) {
          reject(new Error(`redis-server exited (${String(code)}) before it was ready:\n${out}`));
        }
      });
    });

  const kill = (): Promise<void> =>
    new Promise((resolve) => {
      const proc = child;
      if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) {
        resolve();
        return;
      }
      proc.once('exit', () => {
        resolve();
      });
      proc.kill('SIGKILL');
    });

  const signal = (name: NodeJS.Signals): void => {
    if (child === undefined || !child.kill(name)) throw new Error(`redis-server: ${name} failed`);
  };

  await launch();
  return {
    pause: () => {
      signal('SIGSTOP');
    },
    resume: () => {
      signal('SIGCONT');
    },
    url: `redis://127.0.0.1:${port}`,
    port,
    kill,
    restart: launch,
    stop: kill,
  };
}
