import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import {
  callLog,
  createDynBackend,
  type BackendResult,
  type CancelIo,
  type DynAccount,
  type DynAnswer,
  type DynBackend,
  type DynBehaviour,
  type HostileKind,
} from './dyn-backend';
import {
  connectionOf,
  recordOf,
  serve,
  readBody,
  waitUnlessGone,
  type RecordedCall,
  type ServeOptions,
  type SimulatorMemory,
} from './http-util';

export type { DynBehaviour } from './dyn-backend';

export interface DynRestSimulatorOptions
  extends Partial<DynAccount>, SimulatorMemory, ServeOptions {
  port?: number;
  host?: string;
}

export interface DynRestSimulator {
  url: string;
  /** The listening server (tests watch its connections). */
  server: Server;
  /** What a provider's `baseUrl` should be: `<url>/REST`. */
  baseUrl: string;
  calls: RecordedCall[];
  waitForCalls(count: number): Promise<void>;
  /** Resolves once the recorded calls satisfy `test` (checked after every request). */
  waitUntil(test: (calls: readonly RecordedCall[]) => boolean): Promise<void>;
  setBehaviour(taskId: string | number, behaviour: DynBehaviour): void;
  /** Lets every request held by the `hold` behaviour answer. */
  releaseHeld(): void;
  /** Sessions currently logged in. */
  activeSessions(): number;
  /** Calls matching a method and a path prefix (case-insensitive), e.g. ('POST', '/REST/Session'). */
  callsTo(method: string, pathPrefix: string): RecordedCall[];
  /** Expires every session at once, as an inactivity logout would. */
  expireAllSessions(): void;
  reset(): void;
  close(): Promise<void>;
}

const HTML_503 = '<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>';

/** Dyn's REST envelope; message keys are upper-case, and an absent `errCd` drops `ERR_CD`. */
function envelope(a: DynAnswer): unknown {
  const env = {
    status: a.status,
    data: a.data ?? (a.nullData === true ? null : {}),
    job_id: a.jobId === null ? null : Number(a.jobId),
    msgs: a.msgs.map((m) => ({
      INFO: m.info,
      SOURCE: m.source,
      ...(m.errCd === undefined ? {} : { ERR_CD: m.errCd }),
      LVL: m.lvl,
    })),
  };
  return a.arrayWrapped === true ? [env] : env;
}

/**
 * A real HTTP server faithful to Dyn's REST API as captured in the wild: case-insensitive routes
 * with optional trailing slash, `Content-Type` required (406), `Auth-Token` required (404
 * MISSING_DATA, `data` and `job_id` null), expired tokens answered with the 2011 capture's HTTP
 * 400 body, the session check and keep-alive answered as Dyn does, 307 + text/html job redirects,
 * one running job per session, keep-alive connections closed only after nginx's 75 s idle time
 * and never announced, and scripted behaviours per task id.
 */
export async function startDynRestSimulator(
  options: DynRestSimulatorOptions = {},
): Promise<DynRestSimulator> {
  const backend: DynBackend = createDynBackend(options);
  const log = callLog<RecordedCall>(options.memoryLimit);

  const send = (
    res: ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
    chunked = false,
  ): void => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, {
      'content-type': typeof body === 'string' ? 'text/html' : 'application/json',
      // The 2011 captures came chunked, without a Content-Length.
      ...(chunked ? {} : { 'content-length': Buffer.byteLength(text) }),
      server: 'nginx/1.4.6 (Ubuntu)',
      ...headers,
    });
    if (chunked && text.length > 1) {
      const half = Math.floor(text.length / 2);
      res.write(text.slice(0, half));
      res.end(text.slice(half));
    } else {
      res.end(text);
    }
  };
  const reply = (res: ServerResponse, a: DynAnswer): void => {
    if (a.statusOnly === true) {
      // No recorded Dyn 429 has a body or a Retry-After of its own.
      res.writeHead(a.httpStatus, {
        'content-length': 0,
        server: 'nginx/1.4.6 (Ubuntu)',
        ...a.headers,
      });
      res.end();
      return;
    }
    send(res, a.httpStatus, envelope(a), a.headers, a.chunked === true);
  };
  /** Dyn's 307 to a job: a relative `Location` and the same path as a text/html body. */
  const redirectToJob = (res: ServerResponse, jobId: string, withLocation = true): void => {
    const where = `/REST/Job/${jobId}`;
    if (withLocation) send(res, 307, where, { location: where });
    else send(res, 307, '<html><body>307 Temporary Redirect</body></html>');
  };

  /** A cancel or a task read, with every scripted behaviour rendered as Dyn's REST front end would. */
  async function perform(
    req: IncomingMessage,
    res: ServerResponse,
    run: (io: CancelIo) => Promise<BackendResult | undefined>,
  ): Promise<void> {
    const result = await run({
      wait: (ms) => waitUnlessGone(res, ms),
      reused: connectionOf(req).before > 0,
    });
    if (result === undefined) return; // the client went away while the answer was slow
    switch (result.kind) {
      case 'answer':
        reply(res, result.answer);
        return;
      case 'job':
        if (result.style === 'redirect' && result.jobId !== null) {
          redirectToJob(res, result.jobId);
        } else {
          const jobId = result.jobId === null ? null : Number(result.jobId);
          send(res, 200, { status: 'incomplete', data: null, job_id: jobId });
        }
        return;
      case 'unavailable':
        send(res, 503, HTML_503);
        return;
      case 'garbage-500':
        send(res, 500, 'Internal Server Error\u0000\u0001 stack trace follows');
        return;
      case 'malformed':
        send(res, 200, '<html>this is not JSON');
        return;
      case 'hostile':
        hostile(res, result.hostile);
        return;
    }
  }

  /** Broken transports and hostile bodies, as a JSON API could send them. */
  function hostile(res: ServerResponse, kind: HostileKind): void {
    const raw = (status: number, type: string, body: string, length = Buffer.byteLength(body)) => {
      res.writeHead(status, { 'content-type': type, 'content-length': length });
      res.end(body);
    };
    switch (kind) {
      case 'empty':
        raw(200, 'application/json', '');
        return;
      case 'truncated':
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '400' });
        res.write('{"status": "success", "data": {"task_id": "1", "na');
        setImmediate(() => res.socket?.destroy());
        return;
      case 'wrong-content-type':
        raw(200, 'text/html', '<html><body>Dyn Managed DNS: maintenance</body></html>');
        return;
      case 'reset':
        res.socket?.destroy();
        return;
      case 'reset-mid':
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '4000' });
        res.write('{"status": "success", "data": {');
        setImmediate(() => res.socket?.destroy());
        return;
      case 'doctype-bomb':
      case 'xxe':
        raw(
          200,
          'text/xml',
          '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
        );
        return;
      case 'deep-nesting':
        raw(200, 'application/json', `${'['.repeat(100_000)}${']'.repeat(100_000)}`);
        return;
      case 'huge':
        raw(
          200,
          'application/json',
          `{"status":"success","data":{"message":"${'x'.repeat(10 * 1024 * 1024)}"}}`,
        );
        return;
    }
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = await readBody(req);
    log.record(recordOf(req, body));
    const path = ((req.url ?? '').split('?')[0] ?? '').toLowerCase().replace(/\/+$/, '');
    const method = req.method ?? '';
    // Dyn needs the request media type on every call, GETs and DELETEs included.
    if (!(req.headers['content-type'] ?? '').toLowerCase().startsWith('application/json')) {
      send(res, 406, '<html><body>406 Not Acceptable</body></html>');
      return;
    }
    if (path === '/rest/session' && method === 'POST') {
      let given: Record<string, unknown> = {};
      try {
        given = JSON.parse(body) as Record<string, unknown>;
      } catch {
        given = {};
      }
      reply(res, backend.login(given.customer_name, given.user_name, given.password));
      return;
    }
    const header = req.headers['auth-token'];
    const token = typeof header === 'string' ? header : undefined;
    const refused = backend.checkToken(token);
    if (refused !== undefined || token === undefined) {
      if (refused !== undefined) reply(res, refused);
      return;
    }
    if (path === '/rest/session') {
      if (method === 'DELETE') reply(res, backend.logout(token));
      else if (method === 'PUT') reply(res, backend.keepAlive());
      else reply(res, backend.isAlive());
      return;
    }
    const taskId = /^\/rest\/task\/(\d+)$/.exec(path)?.[1];
    if (taskId !== undefined && method === 'DELETE') {
      await perform(req, res, (io) => backend.cancel(token, taskId, io));
      return;
    }
    if (taskId !== undefined && method === 'GET') {
      await perform(req, res, (io) => backend.read(token, taskId, io));
      return;
    }
    const jobId = /^\/rest\/job\/(\d+)$/.exec(path)?.[1];
    if (jobId !== undefined && method === 'GET') {
      const polled = backend.job(token, jobId);
      if (polled.kind === 'redirect') {
        redirectToJob(res, polled.jobId, polled.withLocation);
      } else if (polled.answer.status === 'incomplete') {
        send(res, 200, { status: 'incomplete', data: null, job_id: Number(jobId) });
      } else {
        reply(res, polled.answer);
      }
      return;
    }
    send(res, 404, {
      status: 'failure',
      data: {},
      job_id: 0,
      msgs: [{ INFO: 'resource: Not found', SOURCE: 'API-B', ERR_CD: 'NOT_FOUND', LVL: 'ERROR' }],
    });
  };

  const server = await serve(handle, options.port ?? 0, options.host ?? '127.0.0.1', {
    ...(options.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: options.idleTimeoutMs }),
    ...(options.tls === undefined ? {} : { tls: options.tls }),
  });

  return {
    url: server.url,
    baseUrl: `${server.url}/REST`,
    server: server.server,
    calls: log.calls,
    waitForCalls: (count) => log.waitUntil((all) => all.length >= count),
    waitUntil: (test) => log.waitUntil(test),
    setBehaviour: (taskId, behaviour) => {
      backend.setBehaviour(taskId, behaviour);
    },
    releaseHeld: () => {
      backend.releaseHeld();
    },
    activeSessions: () => backend.activeSessions(),
    callsTo: (method, prefix) =>
      log.calls.filter(
        (c) => c.method === method && c.path.toLowerCase().startsWith(prefix.toLowerCase()),
      ),
    expireAllSessions: () => {
      backend.expireAllSessions();
    },
    reset() {
      backend.reset();
      log.calls.length = 0;
    },
    close: () => {
      backend.releaseHeld();
      return server.close();
    },
  };
}
