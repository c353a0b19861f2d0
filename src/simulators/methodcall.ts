import type { IncomingMessage, ServerResponse } from 'node:http';
import { XMLParser } from 'fast-xml-parser';
import {
  serve,
  readBody,
  trimOldest,
  waitUnlessGone,
  type RecordedCall,
  type ServeOptions,
} from './http-util';

/** How the simulator answers a `cancel_task` for one task id. */
export type MethodcallBehaviour =
  | { kind: 'ok' }
  | { kind: 'ok-verbose' }
  | { kind: 'fault'; code: string | number; status?: number }
  | { kind: 'malformed' }
  | { kind: 'truncated' }
  | { kind: 'http500' }
  | { kind: 'http503' }
  | { kind: 'empty' }
  | { kind: 'wrong-content-type' }
  | { kind: 'doctype-bomb' }
  | { kind: 'xxe' }
  | { kind: 'deep-nesting' }
  | { kind: 'oversized'; bytes?: number }
  | { kind: 'slow'; delayMs: number; then?: MethodcallBehaviour }
  /** Holds the answer until `releaseHeld()`, then succeeds: for tests of concurrency. */
  | { kind: 'hold' }
  | { kind: 'destroy' }
  | { kind: 'destroy-mid' };

export interface MethodcallSimulatorOptions extends Pick<ServeOptions, 'tls'> {
  port?: number;
  host?: string;
  /** Path of the task interface; `/api/v2/task` as on a real controller. */
  path?: string;
  /** At most this many recorded calls and canceled task ids (see SimulatorMemory). */
  memoryLimit?: number;
}

export interface MethodcallCall extends RecordedCall {
  /** The `task_id` parsed from the body, when there was one. */
  taskId?: string;
}

export interface MethodcallSimulator {
  url: string;
  /** The full task interface URL to put in a provider's `url`. */
  taskUrl: string;
  calls: MethodcallCall[];
  /** Resolves once at least `count` requests have arrived. */
  waitForCalls(count: number): Promise<void>;
  setBehaviour(taskId: string | number, behaviour: MethodcallBehaviour): void;
  /** Lets every request held by the `hold` behaviour answer. */
  releaseHeld(): void;
  reset(): void;
  close(): Promise<void>;
}

const xml = (inner: string): string =>
  `<?xml version="1.0" encoding="utf-8"?>\n<response>${inner}</response>`;
const parser = new XMLParser({
  parseTagValue: false,
  processEntities: false,
  ignoreAttributes: true,
});

/**
 * A real HTTP server speaking the AutoStore-style methodcall task interface. By default every task
 * exists once: the first cancel succeeds, a repeat answers 1017 (the task no longer exists), as
 * the real interface does. Scripted behaviours per task id override that.
 */
export async function startMethodcallSimulator(
  options: MethodcallSimulatorOptions = {},
): Promise<MethodcallSimulator> {
  const taskPath = options.path ?? '/api/v2/task';
  const behaviours = new Map<string, MethodcallBehaviour>();
  const canceled = new Set<string>();
  const calls: MethodcallCall[] = [];
  let held: (() => void)[] = [];
  const releaseHeld = (): void => {
    const waiting = held;
    held = [];
    for (const resolve of waiting) resolve();
  };
  const waiters: { count: number; resolve: () => void }[] = [];
  const limit = options.memoryLimit ?? Number.POSITIVE_INFINITY;
  const record = (call: MethodcallCall): void => {
    calls.push(call);
    if (calls.length >= 2 * limit) calls.splice(0, calls.length - limit);
    for (const w of [...waiters]) {
      if (calls.length >= w.count) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };

  async function answer(
    res: ServerResponse,
    req: IncomingMessage,
    b: MethodcallBehaviour,
    taskId: string,
  ): Promise<void> {
    const send = (status: number, body: string, type = 'application/xml; charset=utf-8'): void => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    switch (b.kind) {
      case 'ok':
        canceled.add(taskId);
        trimOldest(canceled, limit);
        send(200, xml('<params/>'));
        return;
      case 'ok-verbose':
        canceled.add(taskId);
        trimOldest(canceled, limit);
        send(200, xml(`<params><task_id>${taskId}</task_id></params>`));
        return;
      case 'fault':
        send(b.status ?? 200, xml(`<fault><code>${b.code}</code></fault>`));
        return;
      case 'malformed':
        send(200, '<response><params></response>');
        return;
      case 'truncated':
        send(200, '<?xml version="1.0"?><response><par');
        return;
      case 'http500':
        send(500, '<html><body>Internal Server Error</body></html>', 'text/html');
        return;
      case 'http503':
        send(503, 'Service Unavailable', 'text/plain');
        return;
      case 'empty':
        send(200, '');
        return;
      case 'wrong-content-type':
        send(200, '{"status":"ok"}', 'application/json');
        return;
      case 'doctype-bomb':
        send(
          200,
          '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">' +
            '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>' +
            '<response><fault><code>&d;</code></fault></response>',
        );
        return;
      case 'xxe':
        send(
          200,
          '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><response><params>&x;</params></response>',
        );
        return;
      case 'deep-nesting':
        send(200, xml(`<params>${'<a>'.repeat(5000)}${'</a>'.repeat(5000)}</params>`));
        return;
      case 'oversized': {
        const filler = 'x'.repeat(b.bytes ?? 10 * 1024 * 1024);
        send(200, xml(`<params><note>${filler}</note></params>`));
        return;
      }
      case 'hold':
        await new Promise<void>((resolve) => held.push(resolve));
        return answer(res, req, { kind: 'ok' }, taskId);
      case 'slow': {
        const stillThere = await waitUnlessGone(res, b.delayMs);
        if (!stillThere) return;
        return answer(res, req, b.then ?? { kind: 'ok' }, taskId);
      }
      case 'destroy':
        req.socket.destroy();
        return;
      case 'destroy-mid':
        res.writeHead(200, { 'content-type': 'application/xml', 'content-length': '500' });
        res.write('<?xml version="1.0"?><response><par');
        setImmediate(() => req.socket.destroy());
        return;
    }
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = await readBody(req);
    const call: MethodcallCall = {
      method: req.method ?? '',
      path: req.url ?? '',
      headers: req.headers,
      body,
    };
    record(call);
    if (req.method !== 'POST' || (req.url ?? '').split('?')[0] !== taskPath) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    let name: unknown;
    let taskId: unknown;
    try {
      const doc = parser.parse(body, true) as {
        methodcall?: { name?: unknown; params?: { task_id?: unknown } };
      };
      name = doc.methodcall?.name;
      taskId = doc.methodcall?.params?.task_id;
    } catch {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end('Bad Request');
      return;
    }
    if (name !== 'cancel_task') {
      res.writeHead(200, { 'content-type': 'application/xml' });
      res.end(xml('<fault><code>1006</code></fault>'));
      return;
    }
    if (taskId === undefined) {
      res.writeHead(200, { 'content-type': 'application/xml' });
      res.end(xml('<fault><code>1040</code></fault>'));
      return;
    }
    if (
      typeof taskId !== 'string' ||
      !/^[1-9]\d{0,9}$/.test(taskId) ||
      Number(taskId) > 2147483647
    ) {
      res.writeHead(200, { 'content-type': 'application/xml' });
      res.end(xml('<fault><code>1012</code></fault>'));
      return;
    }
    call.taskId = taskId;
    const scripted = behaviours.get(taskId);
    const behaviour: MethodcallBehaviour =
      scripted ?? (canceled.has(taskId) ? { kind: 'fault', code: 1017 } : { kind: 'ok' });
    await answer(res, req, behaviour, taskId);
  };

  const server = await serve(
    handle,
    options.port ?? 0,
    options.host ?? '127.0.0.1',
    options.tls === undefined ? {} : { tls: options.tls },
  );

  return {
    url: server.url,
    taskUrl: `${server.url}${taskPath}`,
    calls,
    waitForCalls(count) {
      if (calls.length >= count) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ count, resolve }));
    },
    setBehaviour(taskId, behaviour) {
      behaviours.set(String(taskId), behaviour);
    },
    releaseHeld,
    reset() {
      behaviours.clear();
      canceled.clear();
      calls.length = 0;
      releaseHeld();
    },
    close: () => {
      releaseHeld();
      return server.close();
    },
  };
}
