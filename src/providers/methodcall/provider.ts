import { Pool } from 'undici';
import type { MethodcallProviderConfig } from '../../config/schema';
import { failed, type ProviderOutcome } from '../../core/provider-outcome';
import type { CallContext, Provider, ProviderDeps } from '../provider';
import { exchange } from '../http-exchange';
import { classifyTransportError } from '../transport-errors';
import { classifyAnswer, decodeResponse, encodeCancelTask, methodcallTaskIdProblem } from './xml';

/** A provider for the AutoStore-style XML task interface (`cancel_task`). */
export function createMethodcallProvider(
  name: string,
  cfg: MethodcallProviderConfig,
  deps: ProviderDeps,
): Provider {
  const url = new URL(cfg.url);
  const path = `${url.pathname}${url.search}`;
  const maxResponseBytes = cfg.maxResponseBytes;
  const pool = new Pool(url.origin, {
    connections: cfg.connections,
    keepAliveTimeout: 4_000,
    // Deadlines come from the request's AbortSignal; these only stop a socket living forever.
    headersTimeout: 600_000,
    bodyTimeout: 600_000,
  });
  const what = `methodcall upstream "${name}"`;

  async function cancel(taskId: string, ctx: CallContext): Promise<ProviderOutcome> {
    const result = await exchange(pool, {
      method: 'POST',
      path,
      headers: {
        'content-type': 'application/xml',
        accept: 'application/xml',
        'user-agent': deps.userAgent,
        'x-request-id': ctx.requestId,
      },
      body: encodeCancelTask(taskId),
      signal: ctx.signal,
      maxBytes: maxResponseBytes,
    });
    switch (result.kind) {
      case 'failed':
        return classifyTransportError(result.error, ctx.signal, what);
      case 'cut':
        if (ctx.signal.aborted) return classifyTransportError(result.error, ctx.signal, what);
        return failed(
          'upstream_error',
          'UPSTREAM_BAD_RESPONSE',
          `${what} closed the connection in the middle of its answer; whether the cancel happened is unknown`,
          { upstream: { code: `HTTP ${result.status}` } },
        );
      case 'too_large':
        return failed(
          'upstream_error',
          'UPSTREAM_RESPONSE_TOO_LARGE',
          `${what} answered more than ${maxResponseBytes} bytes`,
          { upstream: { code: `HTTP ${result.status}` } },
        );
      case 'answered':
        return classifyAnswer(result.status, decodeResponse(result.text));
    }
  }

  return {
    name,
    protocol: 'methodcall',
    checkTaskId: methodcallTaskIdProblem,
    cancel,
    close: () => pool.close(),
  };
}
