import type { IncomingMessage, ServerResponse } from 'node:http';
import { XMLParser } from 'fast-xml-parser';
import {
  callLog,
  createDynBackend,
  msg,
  type CancelIo,
  type DynAccount,
  type DynAnswer,
  type DynBackend,
  type DynBehaviour,
  type HostileKind,
  type SimMessage,
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

export const DYN_SOAP_NAMESPACE = 'https://api2.dynect.net/wsdl/3.7.16/Dynect/';

/** One SOAP request, with the operation (body element) and its children as text. */
export interface RecordedSoapCall extends RecordedCall {
  /** The body element's local name, e.g. `CancelTaskRequest`; '' when unparseable. */
  operation: string;
  args: Record<string, string>;
}

/**
 * `honour-flag`: failures are a normal response with `status: failure` when the request sent
 * `fault_incompat` 1, else an HTTP 500 SOAP Fault (Dyn's documented behaviour).
 * `always-fault`: failures are always Faults, as if Dyn ignored the flag.
 */
export type SoapFaultMode = 'honour-flag' | 'always-fault';

export interface DynSoapSimulatorOptions
  extends Partial<DynAccount>, SimulatorMemory, ServeOptions {
  port?: number;
  host?: string;
}

export interface DynSoapSimulator {
  url: string;
  /** What a provider's `endpoint` should be: `<url>/SOAP/`. */
  endpoint: string;
  calls: RecordedSoapCall[];
  waitUntil(test: (calls: readonly RecordedSoapCall[]) => boolean): Promise<void>;
  setBehaviour(taskId: string | number, behaviour: DynBehaviour): void;
  setFaultMode(mode: SoapFaultMode): void;
  releaseHeld(): void;
  activeSessions(): number;
  /** Calls of one operation, by its request element's local name without `Request`: `CancelTask`. */
  callsTo(operation: string): RecordedSoapCall[];
  expireAllSessions(): void;
  reset(): void;
  close(): Promise<void>;
}

const SOAP_ENV = 'http://schemas.xmlsoap.org/soap/envelope/';
const XSI = 'http://www.w3.org/2001/XMLSchema-instance';
const TASK_FIELDS = [
  'task_id',
  'name',
  'customer_name',
  'zone_name',
  'status',
  'step_count',
  'total_steps',
  'blocking',
  'message',
  'debug',
  'created_ts',
  'modified_ts',
] as const;

const escapeXml = (value: unknown): string =>
  String(value)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');

const el = (name: string, value: unknown): string => `<${name}>${escapeXml(value)}</${name}>`;

function msgsXml(msgs: readonly SimMessage[]): string {
  return msgs
    .map(
      (m) =>
        `<msgs>${el('source', m.source)}${el('lvl', m.lvl)}` +
        (m.errCd === undefined
          ? ''
          : m.errCd === null
            ? '<err_cd></err_cd>'
            : el('err_cd', m.errCd)) +
        `${el('info', m.info)}</msgs>`,
    )
    .join('');
}

function dataXml(data: Record<string, unknown> | null, attrs = ''): string {
  if (data === null) return '';
  if ('token' in data)
    return `<data${attrs}>${el('token', data.token)}${el('version', data.version)}</data>`;
  const fields = TASK_FIELDS.filter((f) => data[f] !== undefined).map((f) => el(f, data[f]));
  const args = Array.isArray(data.args) ? (data.args as { name: string; value: string }[]) : [];
  const argsXml = args.map((a) => `<args>${el('name', a.name)}${el('value', a.value)}</args>`);
  return `<data${attrs}>${fields.join('')}${argsXml.join('')}</data>`;
}

/** `<job_id/><status/><msgs/>…<data/>`: the children every response and ErrorResponse share. */
function bodyOf(a: DynAnswer, data = dataXml(a.data)): string {
  const jobId = a.jobId === null ? '' : el('job_id', a.jobId);
  return `${jobId}${el('status', a.status)}${msgsXml(a.msgs)}${data}`;
}

function envelope(inner: string): string {
  return (
    `<?xml version="1.0" encoding="UTF-8"?>` +
    `<soap:Envelope xmlns:soap="${SOAP_ENV}" xmlns:xsi="${XSI}" xmlns:tns="${DYN_SOAP_NAMESPACE}">` +
    `<soap:Body>${inner}</soap:Body></soap:Envelope>`
  );
}

const parser = new XMLParser({
  removeNSPrefix: true,
  ignoreAttributes: true,
  parseTagValue: false,
  processEntities: false,
  isArray: () => false,
});

/**
 * The envelope as node-soap sends it: one prefixed body element with plain text
 * children, no whitespace, entities or attributes inside the Body.
 */
const PLAIN_REQUEST =
  /^<\?xml version="1\.0" encoding="utf-8"\?><(\w+):Envelope [^>]*><\1:Body><\w+:(\w+)>((?:<\w+>[^<&]*<\/\w+>)*)<\/\w+:\2><\/\1:Body><\/\1:Envelope>$/;
const PLAIN_CHILD = /<(\w+)>([^<&]*)<\/(\w+)>/g;

/** `readRequest` for the plain shape, without a parser; undefined when it is not that shape. */
function readPlainRequest(
  body: string,
): { operation: string; args: Record<string, string> } | undefined {
  const match = PLAIN_REQUEST.exec(body);
  if (match === null) return undefined;
  const [, , operation = '', children = ''] = match;
  const args: Record<string, string> = {};
  for (const [, name = '', value = '', close] of children.matchAll(PLAIN_CHILD)) {
    // What the parser would do differently: mismatched tags, repeats (arrays), trimmed text.
    if (close !== name || name in args || value !== value.trim()) return undefined;
    args[name] = value;
  }
  return { operation, args };
}

/** Reads the body element and its text children; undefined when it is not a SOAP request. */
export function readRequest(
  body: string,
): { operation: string; args: Record<string, string> } | undefined {
  // Nearly every request in a load test has node-soap's plain shape: no full parse for those
  // (a property test checks this path agrees with the parser).
  const plain = readPlainRequest(body);
  if (plain !== undefined) return plain;
  return parseRequest(body);
}

/** The full parse, for anything that is not the plain shape. */
export function parseRequest(
  body: string,
): { operation: string; args: Record<string, string> } | undefined {
  if (/<!DOCTYPE|<!ENTITY/i.test(body)) return undefined;
  let parsed: unknown;
  try {
    parsed = parser.parse(body);
  } catch {
    return undefined;
  }
  const soapBody = (parsed as { Envelope?: { Body?: unknown } } | undefined)?.Envelope?.Body;
  if (soapBody === null || typeof soapBody !== 'object') return undefined;
  const [operation, content] = Object.entries(soapBody as Record<string, unknown>)[0] ?? [];
  if (operation === undefined) return undefined;
  const args: Record<string, string> = {};
  if (content !== null && typeof content === 'object') {
    for (const [k, v] of Object.entries(content as Record<string, unknown>)) {
      if (typeof v === 'string') args[k] = v;
    }
  }
  return { operation, args };
}

const DYNECT_NAMESPACE = /^https:\/\/api2\.dynect\.net\/wsdl\/[^/]+\/Dynect\/$/;

/** True for `https://api2.dynect.net/wsdl/<any version>/Dynect/`. */
export function isDynectNamespace(namespace: string | undefined): boolean {
  return namespace !== undefined && DYNECT_NAMESPACE.test(namespace);
}

/** One start tag: its prefix (or ''), local name and attribute text. */
const START_TAG = /<(?:([A-Za-z_][\w.-]*):)?([A-Za-z_][\w.-]*)((?:\s+[^>]*?)?)\s*\/?>/g;

const ATTRIBUTE = /([A-Za-z_][\w.:-]*)\s*=\s*(["'])(.*?)\2/g;

/** The `xmlns` (prefix '') or `xmlns:prefix` declaration in one tag's attribute text. */
function declared(attributes: string, prefix: string): string | undefined {
  const name = prefix === '' ? 'xmlns' : `xmlns:${prefix}`;
  for (const [, attribute, , value] of attributes.matchAll(ATTRIBUTE)) {
    if (attribute === name) return value;
  }
  return undefined;
}

/**
 * The namespace of the SOAP Body's first element, resolved as XML does: its own declaration
 * first, then the Body's, then the Envelope's; undefined when it has none or there is no Body.
 */
export function bodyElementNamespace(body: string): string | undefined {
  const open: { prefix: string; attributes: string }[] = [];
  for (const match of body.matchAll(START_TAG)) {
    const [, prefix = '', local = '', attributes = ''] = match;
    if (open.length === 0 && local !== 'Envelope') return undefined;
    if (open.length === 1 && local !== 'Body') continue; // a SOAP Header, say
    open.push({ prefix, attributes });
    if (open.length === 3) {
      for (const scope of [...open].reverse()) {
        const ns = declared(scope.attributes, prefix);
        if (ns !== undefined) return ns;
      }
      return undefined;
    }
  }
  return undefined;
}

/**
 * A real SOAP 1.1 server faithful to Dyn's SOAP API: it dispatches on the body
 * element (the SOAPAction is the same for every operation), expects unqualified children under a
 * Dyn-namespaced wrapper, answers failures as `status: failure` when `fault_incompat` is 1 and as
 * HTTP 500 Faults with a `detail/ErrorResponse` otherwise, and serves jobs through `GetJob`
 * (outer `success`, the job's own answer inside `data` with an `xsi:type`). Behaviours per task id
 * are those of the REST simulator; both run on the same simulated back end.
 */
export async function startDynSoapSimulator(
  options: DynSoapSimulatorOptions = {},
): Promise<DynSoapSimulator> {
  const backend: DynBackend = createDynBackend(options);
  const log = callLog<RecordedSoapCall>(options.memoryLimit);
  let faultMode: SoapFaultMode = 'honour-flag';

  const send = (
    res: ServerResponse,
    status: number,
    text: string,
    type = 'text/xml; charset=utf-8',
    headers: Record<string, string> = {},
    chunked = false,
  ): void => {
    res.writeHead(status, {
      'content-type': type,
      ...(chunked ? {} : { 'content-length': Buffer.byteLength(text) }),
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

  /** A SOAP 1.1 Fault carrying Dyn's ErrorResponse (no task data: its `data` is a string). */
  function fault(res: ServerResponse, a: DynAnswer, faultcode = 'soap:Server'): void {
    const first = a.msgs.find((m) => m.lvl === 'ERROR') ?? a.msgs[0];
    const detail =
      `<tns:ErrorResponse xsi:type="tns:ErrorResponseType">` +
      `${bodyOf({ ...a, status: 'failure' }, '')}</tns:ErrorResponse>`;
    send(
      res,
      500,
      envelope(
        `<soap:Fault>${el('faultcode', faultcode)}${el('faultstring', first?.info ?? 'failure')}` +
          `<detail>${detail}</detail></soap:Fault>`,
      ),
      undefined,
      {},
      a.chunked === true,
    );
  }

  function reply(res: ServerResponse, op: string, a: DynAnswer, faultIncompat: boolean): void {
    if (a.httpStatus === 429) {
      // Status only, as every recorded Dyn 429 (the SOAP clients look at the status alone).
      res.writeHead(429, { 'content-length': 0, ...a.headers });
      res.end();
      return;
    }
    const failed = a.status === 'failure' || a.status === 'running';
    if (failed && (faultMode === 'always-fault' || !faultIncompat)) {
      fault(res, a);
      return;
    }
    send(
      res,
      200,
      envelope(`<tns:${op}Response>${bodyOf(a)}</tns:${op}Response>`),
      undefined,
      {},
      a.chunked === true,
    );
  }

  /** A `CancelTask` or a `GetOneTask`, with every scripted behaviour rendered as SOAP. */
  async function perform(
    req: IncomingMessage,
    res: ServerResponse,
    op: 'CancelTask' | 'GetOneTask',
    token: string,
    taskId: string,
    faultIncompat: boolean,
  ): Promise<void> {
    const io: CancelIo = {
      wait: (ms) => waitUnlessGone(res, ms),
      reused: connectionOf(req).before > 0,
    };
    const result =
      op === 'CancelTask'
        ? await backend.cancel(token, taskId, io)
        : await backend.read(token, taskId, io);
    if (result === undefined) return;
    switch (result.kind) {
      case 'answer':
        reply(res, op, result.answer, faultIncompat);
        return;
      case 'job': {
        // SOAP has no redirect: an accepted-as-job cancel answers `incomplete` with the job id.
        const a: DynAnswer = {
          httpStatus: 200,
          status: 'incomplete',
          jobId: result.jobId,
          msgs: [],
          data: null,
        };
        reply(res, op, a, faultIncompat);
        return;
      }
      case 'unavailable':
        send(
          res,
          503,
          '<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>',
          'text/html',
        );
        return;
      case 'garbage-500':
        send(res, 500, 'Internal Server Error\u0000\u0001 stack trace follows', 'text/html');
        return;
      case 'hostile':
        hostile(res, result.hostile);
        return;
      case 'malformed':
        send(
          res,
          200,
          `<?xml version="1.0"?><soap:Envelope xmlns:soap="${SOAP_ENV}"><soap:Body><tns:${op}Res`,
        );
        return;
    }
  }

  /** Broken transports and hostile XML. */
  function hostile(res: ServerResponse, kind: HostileKind): void {
    switch (kind) {
      case 'empty':
        send(res, 200, '');
        return;
      case 'truncated':
        res.writeHead(200, { 'content-type': 'text/xml; charset=utf-8', 'content-length': '4000' });
        res.write(envelope('<tns:CancelTaskResponse><job_id>1</job_id><status>succ').slice(0, 200));
        setImmediate(() => res.socket?.destroy());
        return;
      case 'wrong-content-type':
        send(res, 200, '<html><body>Dyn Managed DNS: maintenance</body></html>', 'text/html');
        return;
      case 'reset':
        res.socket?.destroy();
        return;
      case 'reset-mid':
        res.writeHead(200, { 'content-type': 'text/xml; charset=utf-8', 'content-length': '4000' });
        res.write(`<?xml version="1.0"?><soap:Envelope xmlns:soap="${SOAP_ENV}"><soap:Body>`);
        setImmediate(() => res.socket?.destroy());
        return;
      case 'doctype-bomb':
        send(
          res,
          200,
          '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">' +
            '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>' +
            envelope(
              '<tns:CancelTaskResponse><status>&d;</status></tns:CancelTaskResponse>',
            ).replace(/^<\?xml[^>]*>/, ''),
        );
        return;
      case 'xxe':
        send(
          res,
          200,
          '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>' +
            envelope(
              '<tns:CancelTaskResponse><status>&x;</status></tns:CancelTaskResponse>',
            ).replace(/^<\?xml[^>]*>/, ''),
        );
        return;
      case 'deep-nesting':
        send(
          res,
          200,
          envelope(
            `<tns:CancelTaskResponse><status>success</status><data>${'<a>'.repeat(20_000)}${'</a>'.repeat(20_000)}</data></tns:CancelTaskResponse>`,
          ),
        );
        return;
      case 'huge':
        send(
          res,
          200,
          envelope(
            `<tns:CancelTaskResponse><status>success</status><msgs><info>${'x'.repeat(10 * 1024 * 1024)}</info></msgs></tns:CancelTaskResponse>`,
          ),
        );
        return;
    }
  }

  function getJob(res: ServerResponse, token: string, jobId: string, faultIncompat: boolean): void {
    const polled = backend.job(token, jobId);
    // SOAP has no redirect: a job still running is `incomplete`, however REST would say it.
    const a: DynAnswer =
      polled.kind === 'redirect'
        ? { httpStatus: 200, status: 'incomplete', jobId, msgs: [], data: null }
        : polled.answer;
    if (a.httpStatus === 404) {
      reply(res, 'GetJob', a, faultIncompat); // the job itself is unknown: a real failure
      return;
    }
    if (a.status === 'incomplete') {
      reply(res, 'GetJob', { ...a, jobId }, faultIncompat);
      return;
    }
    // GetJob succeeds when it finds the job; the job's own outcome is inside `data`.
    const inner = `<data xsi:type="tns:CancelTaskResponseType">${bodyOf(a)}</data>`;
    const outer: DynAnswer = {
      httpStatus: 200,
      status: 'success',
      jobId,
      msgs: [msg('get_job: Job found', null)],
      data: null,
    };
    send(res, 200, envelope(`<tns:GetJobResponse>${bodyOf(outer, inner)}</tns:GetJobResponse>`));
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = await readBody(req);
    const request = readRequest(body);
    const operation = request?.operation ?? '';
    const args = request?.args ?? {};
    log.record({ ...recordOf(req, body), operation, args });
    const client = (text: string): void => {
      fault(
        res,
        {
          httpStatus: 500,
          status: 'failure',
          jobId: '',
          msgs: [msg(text, 'INVALID_REQUEST')],
          data: null,
        },
        'soap:Client',
      );
    };
    if (req.method !== 'POST') {
      send(res, 405, 'Method Not Allowed', 'text/plain');
      return;
    }
    if (!(req.headers['content-type'] ?? '').toLowerCase().startsWith('text/xml')) {
      send(res, 415, 'Unsupported Media Type: SOAP 1.1 needs text/xml', 'text/plain');
      return;
    }
    if (request === undefined) {
      client('request: not a SOAP 1.1 envelope');
      return;
    }
    // The wrapper element must be in a Dyn WSDL namespace (any version, prefixed or default, as
    // node-soap, suds or .NET's XmlSerializer write it); children are unqualified.
    if (!isDynectNamespace(bodyElementNamespace(body))) {
      client('request: the body element is not in a Dynect namespace');
      return;
    }
    const faultIncompat = args.fault_incompat === '1';
    const op = operation.replace(/Request$/, '');
    if (op === 'SessionLogin') {
      reply(
        res,
        op,
        backend.login(args.customer_name, args.user_name, args.password),
        faultIncompat,
      );
      return;
    }
    const refused = backend.checkToken(args.token);
    if (refused !== undefined || args.token === undefined) {
      if (refused !== undefined) reply(res, op, refused, faultIncompat);
      return;
    }
    const token = args.token;
    switch (op) {
      case 'SessionLogout':
        reply(res, op, backend.logout(token), faultIncompat);
        return;
      case 'SessionIsAlive':
        reply(res, op, backend.isAlive(), faultIncompat);
        return;
      case 'SessionKeepAlive':
        reply(res, op, backend.keepAlive(), faultIncompat);
        return;
      case 'CancelTask':
      case 'GetOneTask': {
        const taskId = args.task_id ?? '';
        if (!/^\d+$/.test(taskId)) {
          reply(
            res,
            op,
            {
              httpStatus: 400,
              status: 'failure',
              jobId: '0',
              msgs: [msg('task_id: Invalid task id', 'INVALID_DATA')],
              data: null,
            },
            faultIncompat,
          );
          return;
        }
        await perform(req, res, op, token, taskId, faultIncompat);
        return;
      }
      case 'GetJob':
        getJob(res, token, args.job_id ?? '', faultIncompat);
        return;
      default:
        client(`request: unknown operation ${operation}`);
    }
  };

  const server = await serve(handle, options.port ?? 0, options.host ?? '127.0.0.1', {
    ...(options.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: options.idleTimeoutMs }),
    ...(options.tls === undefined ? {} : { tls: options.tls }),
  });

  return {
    url: server.url,
    endpoint: `${server.url}/SOAP/`,
    calls: log.calls,
    waitUntil: (test) => log.waitUntil(test),
    setBehaviour: (taskId, behaviour) => {
      backend.setBehaviour(taskId, behaviour);
    },
    setFaultMode: (mode) => {
      faultMode = mode;
    },
    releaseHeld: () => {
      backend.releaseHeld();
    },
    activeSessions: () => backend.activeSessions(),
    callsTo: (operation) => log.calls.filter((c) => c.operation === `${operation}Request`),
    expireAllSessions: () => {
      backend.expireAllSessions();
    },
    reset() {
      backend.reset();
      faultMode = 'honour-flag';
      log.calls.length = 0;
    },
    close: () => {
      backend.releaseHeld();
      return server.close();
    },
  };
}
