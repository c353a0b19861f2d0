import type { IExOptions, IHeaders, IHttpClient } from 'soap';
import type { Dispatcher } from 'undici';
import { failed, type ProviderOutcome } from '../../core/provider-outcome';
import { RequestTrace } from '../../observability/tracing';
import {
  exchange as httpExchange,
  type ResponseHeaders,
  type UpstreamOperation,
} from '../http-exchange';
import { classifyTransportError } from '../transport-errors';
import { classifyHttpStatus } from './mapping';

/** A transport failure, already classified; node-soap hands it back unchanged as the rejection. */
export class SoapTransportFailure extends Error {
  override readonly name = 'SoapTransportFailure';
  constructor(readonly outcome: ProviderOutcome) {
    super(outcome.error?.message ?? outcome.outcome);
  }
}

export interface SoapHttpOptions {
  /** Every call goes through it (closed by `close()`). */
  dispatcher: Dispatcher;
  maxResponseBytes: number;
  /** For messages: `Dyn SOAP "dns-soap"`. */
  what: string;
  /** Parses `Retry-After`. */
  retryAfter(header: string | undefined): number | undefined;
}

/** A header node-soap set, whatever its case (it sends `SOAPAction`). */
function headerOf(headers: IHeaders, name: string): string | undefined {
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === name && typeof value === 'string') return value;
  }
  return undefined;
}

/** What node-soap's callback receives as `response`: the fields of an axios response it reads. */
interface SoapHttpResponse {
  status: number;
  headers: ResponseHeaders;
  data: string;
}

type SoapCallback = (error: unknown, res?: SoapHttpResponse, body?: string) => unknown;

/** Dyn's answers nest about 8 deep; anything far deeper is hostile (parser stack, memory). */
const MAX_XML_DEPTH = 64;

/** The deepest element nesting of a document, by a linear scan (no parsing). */
export function xmlDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let i = text.indexOf('<');
  while (i >= 0) {
    const end = text.startsWith('<!--', i) ? text.indexOf('-->', i) + 2 : text.indexOf('>', i);
    if (end < 2) break;
    const next = text.charCodeAt(i + 1);
    if (next === 0x2f /* / */) depth--;
    else if (next !== 0x3f /* ? */ && next !== 0x21 /* ! */ && text.charCodeAt(end - 1) !== 0x2f) {
      depth++;
      if (depth > max) max = depth;
    }
    // Continue after this tag: every character is looked at a bounded number of times.
    i = text.indexOf('<', end);
  }
  return max;
}

/** The Dyn SOAP operations the gateway calls, by what each call is for. */
const SOAP_OPERATIONS: Readonly<Record<string, UpstreamOperation>> = {
  SessionLogin: 'login',
  SessionLogout: 'logout',
  CancelTask: 'cancel',
  GetJob: 'poll',
  GetOneTask: 'read',
};

/** The first element in the SOAP Body: node-soap names it `<tns:CancelTaskRequest>`. */
const BODY_ELEMENT =
  /<(?:[\w.-]+:)?Body\b[^>]*>\s*<(?:[\w.-]+:)?([A-Za-z_][\w.-]*?)(?:Request)?[\s/>]/;

/**
 * What a SOAP call is for. Dyn's WSDL gives every operation the same SOAPAction, so the action
 * names it only where a WSDL sets one per operation (its last path segment); otherwise the
 * body's first element does.
 */
export function soapOperationOf(
  soapAction: string | undefined,
  body: string,
): UpstreamOperation | undefined {
  const action = soapAction?.replace(/"/g, '').split(/[/#]/).pop();
  if (action !== undefined && Object.hasOwn(SOAP_OPERATIONS, action))
    return SOAP_OPERATIONS[action];
  // The element sits right after the envelope's opening tags: a bounded prefix holds it.
  const element = BODY_ELEMENT.exec(body.slice(0, 2048))?.[1];
  return element !== undefined && Object.hasOwn(SOAP_OPERATIONS, element)
    ? SOAP_OPERATIONS[element]
    : undefined;
}

const LOOKS_LIKE_SOAP = /^\s*(<\?xml[^>]*\?>\s*)?<([A-Za-z_][\w.-]*:)?Envelope[\s>]/;

/**
 * node-soap's HTTP layer replaced by an undici keep-alive dispatcher (node-soap's default axios
 * transport costs several times more CPU per call, and its `timeout` is only an inactivity timer).
 * The caller's `AbortSignal` (per-call option `signal`) is the deadline; an aborted call closes its
 * socket. Answers that are not SOAP (HTML 503s, 429s, empty bodies, DOCTYPEs) are classified here
 * and never reach node-soap's parser.
 */
export function createSoapHttpClient(
  options: SoapHttpOptions,
): IHttpClient & { close(): Promise<void> } {
  /** node-soap passes its endpoint URL on every call: parse each distinct one once. */
  const targets = new Map<string, { origin: string; path: string }>();
  const targetFor = (rurl: string): { origin: string; path: string } => {
    let target = targets.get(rurl);
    if (target === undefined) {
      const url = new URL(rurl);
      target = { origin: url.origin, path: `${url.pathname}${url.search}` };
      targets.set(rurl, target);
    }
    return target;
  };

  async function exchange(
    rurl: string,
    data: string,
    headers: IHeaders,
    signal: AbortSignal,
    trace: RequestTrace | undefined,
  ): Promise<SoapHttpResponse> {
    const { origin, path } = targetFor(rurl);
    const what = options.what;
    const action = headerOf(headers, 'soapaction');
    const operation = soapOperationOf(action, data);
    const result = await httpExchange(options.dispatcher, {
      ...(operation === undefined ? {} : { operation }),
      origin,
      method: 'POST',
      path,
      headers: {
        ...(headers as Record<string, string>),
        'content-length': String(Buffer.byteLength(data)),
      },
      body: data,
      signal,
      maxBytes: options.maxResponseBytes,
      ...(trace === undefined ? {} : { trace }),
    });
    if (result.kind === 'failed')
      throw new SoapTransportFailure(classifyTransportError(result.error, signal, what));
    if (result.kind === 'cut') {
      if (signal.aborted)
        throw new SoapTransportFailure(classifyTransportError(result.error, signal, what));
      throw new SoapTransportFailure(
        failed(
          'upstream_error',
          'UPSTREAM_BAD_RESPONSE',
          `${what} closed the connection in the middle of its answer`,
        ),
      );
    }
    if (result.kind === 'too_large') {
      throw new SoapTransportFailure(
        failed(
          'upstream_error',
          'UPSTREAM_RESPONSE_TOO_LARGE',
          `${what} answered more than ${options.maxResponseBytes} bytes`,
        ),
      );
    }
    const { status, text } = result;
    const upstream = { code: `HTTP ${status}` };
    if (status === 429) {
      const header = result.headers['retry-after'];
      throw new SoapTransportFailure(
        classifyHttpStatus(
          status,
          options.retryAfter(typeof header === 'string' ? header : undefined),
        ),
      );
    }
    if (/<!DOCTYPE|<!ENTITY/i.test(text)) {
      throw new SoapTransportFailure(
        failed(
          'upstream_error',
          'UPSTREAM_BAD_RESPONSE',
          `${what} answered with a DOCTYPE, which is refused`,
          { upstream },
        ),
      );
    }
    if (xmlDepth(text) > MAX_XML_DEPTH) {
      throw new SoapTransportFailure(
        failed(
          'upstream_error',
          'UPSTREAM_BAD_RESPONSE',
          `${what} answered XML nested deeper than ${MAX_XML_DEPTH} levels`,
          { upstream },
        ),
      );
    }
    // Not SOAP at all (an HTML error page, an empty body): judged by its status, as REST is.
    if (!LOOKS_LIKE_SOAP.test(text)) throw new SoapTransportFailure(classifyHttpStatus(status));
    return { status, headers: result.headers, data: text };
  }

  /** node-soap's `httpClient` option: `request(rurl, data, callback, exheaders, exoptions)`. */
  const request = (
    rurl: string,
    data: unknown,
    callback: SoapCallback,
    exheaders?: IHeaders,
    exoptions?: IExOptions,
  ): undefined => {
    // node-soap hands the per-call options on as exoptions; the deadline is their `signal`.
    const signal: unknown = exoptions?.signal;
    if (!(signal instanceof AbortSignal)) {
      callback(new Error('internal: every SOAP call needs a signal'));
      return undefined;
    }
    // The request's trace, when the call is made for one, is the per-call option `trace`.
    const trace: unknown = exoptions?.trace;
    exchange(
      rurl,
      String(data),
      exheaders ?? {},
      signal,
      trace instanceof RequestTrace ? trace : undefined,
    ).then(
      (res) => {
        try {
          callback(null, res, res.data);
        } catch (err) {
          // node-soap threw while reading the answer, before settling the call: settle it with
          // the error (its promise form settles once, so nothing is reported twice).
          callback(err);
        }
      },
      (err: unknown) => callback(err),
    );
    return undefined;
  };

  // node-soap's type has request() return axios's promise, but node-soap only passes that value
  // back from `_invoke`, and its method forms discard it; the README asks only for request().
  const client = { request } as unknown as IHttpClient;
  return Object.assign(client, {
    async close() {
      await options.dispatcher.close();
      targets.clear();
    },
  });
}
