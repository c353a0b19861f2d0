import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');
// `node --import tsx` keeps one process, so signals reach the gateway itself (the tsx CLI wraps
// node in a second process and does not relay SIGHUP).
const NODE_ARGS = ['--import', 'tsx'];

/** Runs `src/main.ts` with tsx and collects its output. */
export function runMain(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...NODE_ARGS, path.join(ROOT, 'src/main.ts'), ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      resolve({ code, stdout, stderr });
    });
  });
}

/** A gateway in a child process, with its JSON log lines as they arrive. */
export interface ChildGateway {
  child: ChildProcess;
  url: string;
  lines: Record<string, unknown>[];
  /** Resolves with the first log line matching `predicate` (already seen or future). */
  waitForLine(
    predicate: (line: Record<string, unknown>) => boolean,
  ): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
}

export async function spawnGateway(
  configFile: string,
  env: NodeJS.ProcessEnv = {},
): Promise<ChildGateway> {
  const child = spawn(
    process.execPath,
    [...NODE_ARGS, path.join(ROOT, 'src/main.ts'), '--config', configFile],
    {
      cwd: ROOT,
      env: { PATH: process.env.PATH, LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const lines: Record<string, unknown>[] = [];
  const waiters: {
    predicate: (l: Record<string, unknown>) => boolean;
    resolve: (l: Record<string, unknown>) => void;
  }[] = [];
  let buffer = '';
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdout.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    let index;
    while ((index = buffer.indexOf('\n')) >= 0) {
      const text = buffer.slice(0, index);
      buffer = buffer.slice(index + 1);
      if (text.trim() === '') continue;
      const line = JSON.parse(text) as Record<string, unknown>;
      lines.push(line);
      for (const w of [...waiters]) {
        if (w.predicate(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const waitForLine = (
    predicate: (l: Record<string, unknown>) => boolean,
  ): Promise<Record<string, unknown>> => {
    const seen = lines.find(predicate);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      waiters.push({ predicate, resolve });
      void exited.then((code) => {
        reject(new Error(`gateway exited (${code}) first; stderr: ${stderr}`));
      });
    });
  };
  const listening = await waitForLine((l) => l.msg === 'gateway listening');
  return { child, url: listening.url as string, lines, waitForLine, exited };
}
