import type { DynRestProviderConfig } from '../../config/schema';
import { failed, type ProviderOutcome } from '../../core/provider-outcome';
import type { RequestTrace } from '../../observability/tracing';
import type { CallContext, Provider, ProviderDeps } from '../provider';
import { exchange as httpExchange, type UpstreamOperation } from '../http-exchange';
import { classifyTransportError } from '../transport-errors';
import { createUpstreamAgent } from '../upstream-agent';
import {
  classifyAnswer,
  classifyJobPoll,
  classifyLogin,
  readEnvelope,
  unfinishedJob,
  type DynClassification,
  type DynOperation,
} from './mapping';
import { assembleDynProvider, parseRetryAfter, type DynExchange } from './flow';
import type { SessionTransport } from './session';

/** One HTTP exchange with Dyn REST, or the transport failure that replaced it. */
type RestAnswer =
  | { ok: true; status: number; location?: string; retryAfter?: string; json: unknown }
  | { ok: false; outcome: ProviderOutcome };

const JOB_PATH = /\/Job\/(\d+)/i;

/**
 * The Dyn Managed DNS REST API: sessions, `DELETE /Task/<id>/` (cancel), `GET /Task/<id>/`
 * (read), 307/incomplete job polling.
 */
export function createDynRestProvider(
  name: string,
  cfg: DynRestProviderConfig,
  deps: ProviderDeps,
): Provider {
  const base = new URL(cfg.baseUrl);
  const basePath = base.pathname.replace(/\/+$/, '');
  const maxResponseBytes = cfg.maxResponseBytes;
  // Redirects are never followed by undici's Agent: a 307 here means "accepted, poll the job", and
  // following it would resend the DELETE without the Auth-Token (Dyn then answers 406).
  const origin = base.origin;
  const agent = createUpstreamAgent(cfg, deps);
  const what = `Dyn REST "${name}"`;

  async function call(
    operation: UpstreamOperation,
    method: 'GET' | 'POST' | 'DELETE',
    path: string,
    options: {
      token?: string;
      body?: string;
      requestId?: string;
      signal: AbortSignal;
      trace?: RequestTrace | undefined;
    },
  ): Promise<RestAnswer> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/json',
      'user-agent': deps.userAgent,
    };
    if (options.token !== undefined) headers['auth-token'] = options.token;
    if (options.requestId !== undefined) headers['x-request-id'] = options.requestId;
    const result = await httpExchange(agent, {
      operation,
      origin,
      method,
      path: `${basePath}${path}`,
      headers,
      body: options.body ?? null,
      signal: options.signal,
      maxBytes: maxResponseBytes,
      ...(options.trace === undefined ? {} : { trace: options.trace }),
    });
    if (result.kind === 'failed')
      return { ok: false, outcome: classifyTransportError(result.error, options.signal, what) };
    if (result.kind === 'cut') {
      if (options.signal.aborted)
        return { ok: false, outcome: classifyTransportError(result.error, options.signal, what) };
      return {
        ok: false,
        outcome: failed(
          'upstream_error',
          'UPSTREAM_BAD_RESPONSE',
          `${what} closed the connection in the middle of its answer`,
        ),
      };
    }
    if (result.kind === 'too_large') {
      return {
        ok: false,
        outcome: failed(
          'upstream_error',
          'UPSTREAM_RESPONSE_TOO_LARGE',
          `${what} answered more than ${maxResponseBytes} bytes`,
        ),
      };
    }
    const { status, headers: responseHeaders, text } = result;
    let json: unknown;
    const type = String(responseHeaders['content-type'] ?? '');
    // A 307's body is the job path as text/html; only JSON bodies are envelopes.
    if (type.includes('json') || /^\s*[[{]/.test(text)) {
      try {
        json = JSON.parse(text) as unknown;
      } catch {
        json = undefined;
      }
    }
    const answer: RestAnswer = { ok: true, status, json };
    const location = responseHeaders.location;
    if (typeof location === 'string') answer.location = location;
    else if (status === 307 && JOB_PATH.test(text)) answer.location = text.trim();
    const retryAfter = responseHeaders['retry-after'];
    if (typeof retryAfter === 'string') answer.retryAfter = retryAfter;
    return answer;
  }

  /**
   * The answer to a cancel or a read of `taskId`, or to a poll of job `poll` (which is running
   * that cancel or read).
   */
  function classify(
    operation: DynOperation,
    answer: Extract<RestAnswer, { ok: true }>,
    taskId: string,
    poll: string | undefined,
  ): DynClassification {
    if (answer.status === 307) {
      const jobId = answer.location === undefined ? undefined : JOB_PATH.exec(answer.location)?.[1];
      if (jobId !== undefined) return { kind: 'incomplete', jobId };
      // A 307 is "accepted as a job"; without a job path there is nothing to poll.
      return {
        kind: 'outcome',
        outcome: unfinishedJob(operation, poll, 'redirected without a job path to poll', {
          code: 'HTTP 307',
        }),
      };
    }
    const retryAfter = parseRetryAfter(answer.retryAfter);
    const env = readEnvelope(answer.json);
    return poll === undefined
      ? classifyAnswer(operation, answer.status, env, retryAfter, taskId)
      : classifyJobPoll(poll, answer.status, env, retryAfter, taskId, operation);
  }

  const transport: SessionTransport = {
    async login(signal, trace) {
      const body = JSON.stringify({
        customer_name: cfg.customerName,
        user_name: cfg.userName,
        password: cfg.password,
      });
      const answer = await call('login', 'POST', '/Session/', { body, signal, trace });
      if (!answer.ok) return { ok: false, outcome: answer.outcome, badCredentials: false };
      return classifyLogin(
        answer.status,
        readEnvelope(answer.json),
        parseRetryAfter(answer.retryAfter),
      );
    },
    async logout(token, signal) {
      await call('logout', 'DELETE', '/Session/', { token, signal });
    },
  };
  /** A cancel, a read or a job poll: same headers, same classification. */
  async function ask(
    operation: DynOperation,
    method: 'GET' | 'DELETE',
    path: string,
    ids: { taskId: string; jobId?: string },
    token: string,
    ctx: CallContext,
  ): Promise<DynClassification> {
    const answer = await call(ids.jobId === undefined ? operation : 'poll', method, path, {
      token,
      requestId: ctx.requestId,
      signal: ctx.signal,
      trace: ctx.trace,
    });
    return answer.ok
      ? classify(operation, answer, ids.taskId, ids.jobId)
      : { kind: 'outcome', outcome: answer.outcome };
  }
  const taskPath = (taskId: string): string => `/Task/${encodeURIComponent(taskId)}/`;
  const exchange: DynExchange = {
    cancel: (taskId, token, ctx) =>
      ask('cancel', 'DELETE', taskPath(taskId), { taskId }, token, ctx),
    read: (taskId, token, ctx) => ask('read', 'GET', taskPath(taskId), { taskId }, token, ctx),
    poll: (jobId, taskId, token, ctx, operation) =>
      ask(operation, 'GET', `/Job/${encodeURIComponent(jobId)}/`, { taskId, jobId }, token, ctx),
  };

  return assembleDynProvider(name, cfg, deps, {
    sessions: transport,
    exchange,
    close: () => agent.close(),
  });
}
