import type { DynSoapProviderConfig } from '../../config/schema';
import { failed, type ProviderOutcome } from '../../core/provider-outcome';
import type { RequestTrace } from '../../observability/tracing';
import type { Provider, ProviderDeps } from '../provider';
import { createUpstreamAgent } from '../upstream-agent';
import { assembleDynProvider, parseRetryAfter, type DynExchange } from './flow';
import {
  classifyAnswer,
  classifyJobPoll,
  classifyLogin,
  readEnvelope,
  type DynClassification,
  type DynEnvelope,
  type DynOperation,
} from './mapping';
import type { SessionTransport } from './session';
import { createSoapHttpClient, SoapTransportFailure } from './soap-http';
import { DYN_SOAP_OPERATIONS, openDynSoapClient, WsdlError, type DynSoapOperation } from './wsdl';

/** What one SOAP call came back with: a response object, a Fault's ErrorResponse, or a failure. */
type SoapReply =
  | { kind: 'response'; envelope: DynEnvelope | undefined }
  | { kind: 'fault'; envelope: DynEnvelope }
  | { kind: 'failed'; outcome: ProviderOutcome };

/** node-soap's promise form of an operation: it resolves with `[result, rawResponse, …]`. */
type SoapMethodAsync = (
  args: Record<string, unknown>,
  options: { signal: AbortSignal; exchangeId?: string },
  extraHeaders: Record<string, string>,
) => Promise<readonly unknown[]>;

function record(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/**
 * A SOAP Fault as Dyn sends it: `detail/ErrorResponse` carries the same envelope as a failure
 * response. Without one, the faultstring alone becomes the envelope's only ERROR message, so a
 * `login:` faultstring still means "session expired".
 */
function faultEnvelope(err: unknown): DynEnvelope | undefined {
  const root = record(record(err)?.root);
  const fault = record(record(record(root?.Envelope)?.Body)?.Fault);
  if (fault === undefined) return undefined;
  const detail = record(fault.detail);
  const fromDetail = readEnvelope(detail?.ErrorResponse);
  if (fromDetail !== undefined) return fromDetail;
  const faultstring = typeof fault.faultstring === 'string' ? fault.faultstring : 'SOAP Fault';
  const faultcode = typeof fault.faultcode === 'string' ? fault.faultcode : 'soap:Server';
  return {
    status: 'failure',
    data: undefined,
    msgs: [{ lvl: 'ERROR', errCd: faultcode, info: faultstring }],
  };
}

/**
 * The Dyn Managed DNS SOAP API through node-soap and the project's WSDL: `SessionLogin`,
 * `CancelTask` and `GetOneTask` (token, fault_incompat, task_id), `GetJob` while `incomplete`. Failures come back
 * either as `status: failure` (we always send `fault_incompat` 1) or as HTTP 500 Faults; both go
 * through the same Dyn mapping as REST.
 */
export async function createDynSoapProvider(
  name: string,
  cfg: DynSoapProviderConfig,
  deps: ProviderDeps,
): Promise<Provider> {
  const what = `Dyn SOAP "${name}"`;
  const http = createSoapHttpClient({
    dispatcher: createUpstreamAgent(cfg, deps),
    maxResponseBytes: cfg.maxResponseBytes,
    what,
    retryAfter: (header) => parseRetryAfter(header),
  });
  let operations: Record<DynSoapOperation, SoapMethodAsync>;
  try {
    const client = await openDynSoapClient(cfg.wsdl, deps.projectRoot, {
      httpClient: http,
      ...(cfg.endpoint === undefined ? {} : { endpoint: cfg.endpoint }),
    });
    // node-soap sends the client's HTTP headers with every call (and its own User-Agent otherwise).
    client.addHttpHeader('User-Agent', deps.userAgent);
    // Looked up once. openDynSoapClient checked the WSDL describes each; node-soap defines them.
    const methods = client as unknown as Record<string, unknown>;
    const missing = DYN_SOAP_OPERATIONS.filter((op) => typeof methods[`${op}Async`] !== 'function');
    if (missing.length > 0)
      throw new WsdlError(`node-soap made no method for ${missing.join(', ')}`);
    operations = Object.fromEntries(
      DYN_SOAP_OPERATIONS.map((op) => [op, methods[`${op}Async`] as SoapMethodAsync]),
    ) as Record<DynSoapOperation, SoapMethodAsync>;
  } catch (err) {
    await http.close();
    throw err;
  }
  /** What a rejected call means: a transport failure, a Fault, or XML that is not SOAP. */
  function failure(err: unknown): SoapReply {
    if (err instanceof SoapTransportFailure) return { kind: 'failed', outcome: err.outcome };
    const envelope = faultEnvelope(err);
    if (envelope !== undefined) return { kind: 'fault', envelope };
    const status = record(record(err)?.response)?.status;
    return {
      kind: 'failed',
      outcome: failed(
        'upstream_error',
        'UPSTREAM_BAD_RESPONSE',
        `${what} answered XML that is not a usable SOAP response`,
        {
          ...(typeof status === 'number' ? { upstream: { code: `HTTP ${status}` } } : {}),
        },
      ),
    };
  }

  async function call(
    op: DynSoapOperation,
    args: Record<string, unknown>,
    signal: AbortSignal,
    requestId?: string,
    trace?: RequestTrace,
  ): Promise<SoapReply> {
    const headers: Record<string, string> =
      requestId === undefined ? {} : { 'x-request-id': requestId };
    // soap-http.ts reads `signal` and `trace` from node-soap's per-call options.
    const options = {
      signal,
      ...(requestId === undefined ? {} : { exchangeId: requestId }),
      ...(trace === undefined ? {} : { trace }),
    };
    // node-soap's promise rejects for anything it throws, and soap-http.ts ends every exchange by
    // the signal at the latest: the call settles. A throw in the mapping is a failure too.
    try {
      const [result] = await operations[op](args, options, headers);
      return { kind: 'response', envelope: readEnvelope(result) };
    } catch (err) {
      return failure(err);
    }
  }

  /** A reply as the shared mapping sees it. A Fault's HTTP 500 is SOAP's convention, not an outage. */
  function classify(operation: DynOperation, reply: SoapReply, taskId: string): DynClassification {
    if (reply.kind === 'failed') return { kind: 'outcome', outcome: reply.outcome };
    return classifyAnswer(operation, 200, reply.envelope, undefined, taskId);
  }

  const sessions: SessionTransport = {
    async login(signal, trace) {
      const reply = await call(
        'SessionLogin',
        {
          fault_incompat: 1,
          user_name: cfg.userName,
          customer_name: cfg.customerName,
          password: cfg.password,
        },
        signal,
        undefined,
        trace,
      );
      if (reply.kind === 'failed')
        return { ok: false, outcome: reply.outcome, badCredentials: false };
      return classifyLogin(200, reply.envelope);
    },
    async logout(token, signal) {
      await call('SessionLogout', { token, fault_incompat: 1 }, signal);
    },
  };

  const exchange: DynExchange = {
    async cancel(taskId, token, ctx) {
      const reply = await call(
        'CancelTask',
        { token, fault_incompat: 1, task_id: taskId },
        ctx.signal,
        ctx.requestId,
        ctx.trace,
      );
      return classify('cancel', reply, taskId);
    },
    async read(taskId, token, ctx) {
      const reply = await call(
        'GetOneTask',
        { token, fault_incompat: 1, task_id: taskId },
        ctx.signal,
        ctx.requestId,
        ctx.trace,
      );
      return classify('read', reply, taskId);
    },
    async poll(jobId, taskId, token, ctx, operation) {
      const reply = await call(
        'GetJob',
        { token, fault_incompat: 1, job_id: jobId },
        ctx.signal,
        ctx.requestId,
        ctx.trace,
      );
      if (reply.kind === 'failed') return { kind: 'outcome', outcome: reply.outcome };
      const outer = reply.envelope;
      // A job still running may be reported on the outer envelope, without repeating its id.
      if (outer?.status === 'incomplete') return { kind: 'incomplete', jobId };
      // GetJob fails (or faults) about the job itself: "job: No such job" once its session is gone.
      if (reply.kind === 'fault' || outer?.status !== 'success')
        return classifyJobPoll(jobId, 200, outer, undefined, taskId, operation);
      // GetJob succeeds when it finds the job; the cancel's own answer is inside `data`.
      const inner = readEnvelope(outer.data);
      if (inner === undefined) {
        return {
          kind: 'outcome',
          outcome: failed(
            'upstream_error',
            'UPSTREAM_BAD_RESPONSE',
            `${what} GetJob answered without the job's result`,
          ),
        };
      }
      if (inner.status === 'incomplete') return { kind: 'incomplete', jobId };
      return classifyAnswer(operation, 200, inner, undefined, taskId);
    },
  };

  return assembleDynProvider(name, cfg, deps, {
    sessions,
    exchange,
    close: () => http.close(),
  });
}
