import type { MethodcallProviderConfig } from '../../config/schema';
import { failed, type ProviderOutcome } from '../../core/provider-outcome';
import type { CallContext, Provider, ProviderDeps } from '../provider';
import { exchange } from '../http-exchange';
import { createUpstreamAgent } from '../upstream-agent';
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
  const origin = url.origin;
  const agent = createUpstreamAgent(cfg, deps);
  const what = `methodcall upstream "${name}"`;

  async function cancel(taskId: string, ctx: CallContext): Promise<ProviderOutcome> {
    const result = await exchange(agent, {
      operation: 'cancel',
      origin,
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
      ...(ctx.trace === undefined ? {} : { trace: ctx.trace }),
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

  // No `read` and no `confirm`: methodcall's `gettaskinfo` answer format is not published, and a
  // guessed decoder could report a state the upstream never meant. Reads answer `not_supported`.
  return {
    name,
    protocol: 'methodcall',
    checkTaskId: methodcallTaskIdProblem,
    cancel,
    close: () => agent.close(),
  };
}
