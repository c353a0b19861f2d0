import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import { BatchEnvelopeSchema, CancelRequestSchema, toProblems } from '../core/request';
import { gatewayFailure, statusOf, type HttpAnswer, type UnifiedResult } from '../core/result';
import { logLine, type Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import { deadlineIn, type Deadline } from '../routing/deadline';
import { dispatchCancel } from '../routing/dispatch';
import type { Runtime } from '../routing/runtime';
import type { CancelMemory } from '../state/cancel-memory';
import type { StateStore } from '../state/store';
import type { Caller } from './auth';
import { withIdempotencyKey } from './idempotency';
import { readJsonBody } from './body';
import { sendAnswer } from './respond';

/** What the HTTP layer needs from the running gateway. */
export interface GatewayState {
  /** The runtime requests start on; replaced atomically by a reload. */
  runtime(): Runtime;
  /** True once shutdown has begun. */
  isDraining(): boolean;
  logger: Logger;
  metrics: Metrics;
  /** The last failed reload, while the file stays broken; shown by `/readyz`. */
  lastReloadError(): { at: string; problems: string[] } | undefined;
  /** Shared state (contract §9): outcome memory, idempotency keys. */
  store: StateStore;
  memory: CancelMemory;
}

/** Items of one batch run at most this many at a time, so one batch cannot fill a bulkhead. */
const BATCH_CONCURRENCY = 16;

/** The answer for a request refused before its body is read: draining, or no valid key. */
function gate(state: GatewayState, runtime: Runtime, req: IncomingMessage, requestId: string) {
  if (state.isDraining()) {
    const answer: HttpAnswer = {
      status: statusOf('unavailable'),
      body: gatewayFailure(
        requestId,
        'unavailable',
        'DRAINING',
        'the gateway is shutting down; retry on another instance',
      ),
      retryAfterSeconds: 1,
      headers: { Connection: 'close' },
    };
    return { ok: false as const, answer };
  }
  const auth = runtime.auth.authenticate(req.headers);
  if (!auth.ok) {
    state.metrics.authFailures.inc({ reason: auth.reason });
    const answer: HttpAnswer = {
      status: statusOf('unauthorized'),
      body: gatewayFailure(requestId, 'unauthorized', 'UNAUTHORIZED', auth.message),
      headers: { 'WWW-Authenticate': 'Bearer realm="cancel-gateway"' },
    };
    return { ok: false as const, answer };
  }
  return { ok: true as const, caller: auth.caller };
}

/** One cancel from an already-parsed body: validation, authorization, dispatch. */
async function cancelOne(
  state: GatewayState,
  runtime: Runtime,
  caller: Caller,
  requestId: string,
  input: unknown,
  within?: Deadline,
): Promise<{ answer: HttpAnswer; reason?: string }> {
  const parsed = CancelRequestSchema.safeParse(input);
  if (!parsed.success) {
    const details = toProblems(parsed.error);
    return {
      answer: {
        status: statusOf('invalid_request'),
        body: gatewayFailure(
          requestId,
          'invalid_request',
          'INVALID_REQUEST',
          `invalid request: ${details.map((d) => `${d.path} ${d.message}`).join('; ')}`,
          { details },
        ),
      },
    };
  }
  const { target, taskId, reason } = parsed.data;
  const withReason = reason === undefined ? {} : { reason };
  if (!caller.allows(target)) {
    state.metrics.authFailures.inc({ reason: 'forbidden' });
    return {
      ...withReason,
      answer: {
        status: statusOf('forbidden'),
        body: gatewayFailure(
          requestId,
          'forbidden',
          'FORBIDDEN',
          `caller "${caller.id}" may not cancel on target "${target}"`,
          { target, taskId },
        ),
      },
    };
  }
  const answer = await state.memory.run(target, taskId, requestId, () =>
    dispatchCancel(
      runtime,
      { requestId, target, taskId },
      {
        log: state.logger,
        ...(within === undefined ? {} : { within }),
        onAttempt: (entry, outcome, durationMs) => {
          state.metrics.upstreamRequests.inc({
            provider: entry.name,
            protocol: entry.provider.protocol,
            result: outcome.outcome,
          });
          if (outcome.error?.code === 'UPSTREAM_AUTH_FAILED') {
            state.metrics.upstreamAuthFailures.inc({ provider: entry.name });
          }
          state.metrics.upstreamDuration.observe(
            { provider: entry.name, operation: 'cancel' },
            durationMs / 1000,
          );
        },
      },
    ),
  );
  return { answer, ...withReason };
}

/** The one log line and the metrics of one answered cancel (or batch item). */
function record(
  state: GatewayState,
  runtime: Runtime,
  caller: string,
  answer: HttpAnswer,
  durationMs: number,
  reason: string | undefined,
): void {
  const b: UnifiedResult = answer.body;
  // Label values only from the config and fixed vocabularies: never caller text.
  const target = b.target !== undefined && runtime.routes.has(b.target) ? b.target : '(none)';
  state.metrics.cancelRequests.inc({
    target,
    provider: b.provider ?? '(none)',
    outcome: b.outcome,
  });
  state.metrics.cancelDuration.observe({ target, outcome: b.outcome }, durationMs / 1000);
  logLine(
    state.logger,
    answer.status >= 500 ? 'warn' : 'info',
    {
      requestId: b.requestId,
      caller,
      target: b.target,
      provider: b.provider,
      taskId: b.taskId,
      outcome: b.outcome,
      status: answer.status,
      durationMs,
      attempts: b.attempts ?? [],
      errorCode: b.error?.code,
      reason,
    },
    'cancel',
  );
}

/**
 * `POST /cancel` (contract §4), on plain node objects: the server calls it directly (the hot path
 * skips Express's router), Express through `cancelHandler`.
 */
export async function handleCancel(
  state: GatewayState,
  req: IncomingMessage,
  res: ServerResponse,
  requestId: string,
): Promise<void> {
  const started = performance.now();
  const runtime = state.runtime();
  const release = runtime.acquire();
  try {
    let answer: HttpAnswer;
    let reason: string | undefined;
    let caller = 'anonymous';
    const gated = gate(state, runtime, req, requestId);
    if (!gated.ok) {
      answer = gated.answer;
    } else {
      caller = gated.caller.id;
      const body = await readJsonBody(req, runtime.loaded.config.server.bodyLimitBytes);
      if (!body.ok) {
        answer = bodyFailure(requestId, body.kind, body.message);
      } else {
        const who = gated.caller;
        ({ answer, reason } = await withIdempotencyKey(
          state,
          runtime,
          req.headers['idempotency-key'],
          who.id,
          requestId,
          body.value,
          () => cancelOne(state, runtime, who, requestId, body.value),
        ));
      }
    }
    const durationMs = Math.round(performance.now() - started);
    answer.body.durationMs = durationMs;
    sendAnswer(res, answer);
    record(state, runtime, caller, answer, durationMs, reason);
  } finally {
    release();
  }
}

/** `POST /cancel/batch` (contract §5): items in order, one deadline, a summary by outcome. */
export async function handleBatch(
  state: GatewayState,
  req: IncomingMessage,
  res: ServerResponse,
  requestId: string,
): Promise<void> {
  const started = performance.now();
  const runtime = state.runtime();
  const release = runtime.acquire();
  try {
    const gated = gate(state, runtime, req, requestId);
    if (!gated.ok) {
      sendAnswer(res, gated.answer);
      return;
    }
    const { server } = runtime.loaded.config;
    // A batch may carry up to 100 items of the single-cancel size.
    const body = await readJsonBody(req, server.bodyLimitBytes * 100);
    if (!body.ok) {
      sendAnswer(res, bodyFailure(requestId, body.kind, body.message));
      return;
    }
    const envelope = BatchEnvelopeSchema.safeParse(body.value);
    if (!envelope.success) {
      const details = toProblems(envelope.error);
      sendAnswer(res, {
        status: statusOf('invalid_request'),
        body: gatewayFailure(
          requestId,
          'invalid_request',
          'INVALID_REQUEST',
          `invalid batch: ${details.map((d) => `${d.path} ${d.message}`).join('; ')}`,
          { details },
        ),
      });
      return;
    }
    const items = envelope.data.items;
    const deadline = deadlineIn(server.requestTimeoutMs);
    const results: UnifiedResult[] = new Array<UnifiedResult>(items.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < items.length; i = next++) {
        const itemStarted = performance.now();
        const itemId = `${requestId}.${i}`;
        const { answer, reason } = await cancelOne(
          state,
          runtime,
          gated.caller,
          itemId,
          items[i],
          deadline,
        );
        const durationMs = Math.round(performance.now() - itemStarted);
        answer.body.durationMs = durationMs;
        results[i] = answer.body;
        record(state, runtime, gated.caller.id, answer, durationMs, reason);
      }
    };
    try {
      await Promise.all(
        Array.from({ length: Math.min(BATCH_CONCURRENCY, items.length) }, () => worker()),
      );
    } finally {
      deadline.dispose();
    }
    const summary: Record<string, number> = {};
    for (const r of results) summary[r.outcome] = (summary[r.outcome] ?? 0) + 1;
    const payload = JSON.stringify({
      requestId,
      results,
      summary,
      durationMs: Math.round(performance.now() - started),
    });
    res.writeHead(200, {
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(payload),
    });
    res.end(payload);
  } finally {
    release();
  }
}

/** Express adapters for the two handlers (the server's fast path calls them directly). */
export function cancelHandler(state: GatewayState): RequestHandler {
  return (req, res) => handleCancel(state, req, res, res.locals.requestId as string);
}

export function batchHandler(state: GatewayState): RequestHandler {
  return (req, res) => handleBatch(state, req, res, res.locals.requestId as string);
}

function bodyFailure(
  requestId: string,
  kind: 'media_type' | 'too_large' | 'malformed' | 'aborted',
  message: string,
): HttpAnswer {
  switch (kind) {
    case 'too_large':
      return {
        status: statusOf('payload_too_large'),
        body: gatewayFailure(requestId, 'payload_too_large', 'PAYLOAD_TOO_LARGE', message),
        // The rest of the body is not read; closing is cheaper than draining it.
        headers: { Connection: 'close' },
      };
    case 'media_type':
      return {
        status: statusOf('invalid_request'),
        body: gatewayFailure(requestId, 'invalid_request', 'UNSUPPORTED_MEDIA_TYPE', message, {
          details: [{ path: '(headers).content-type', message: 'must be application/json' }],
        }),
      };
    case 'malformed':
    case 'aborted':
      return {
        status: statusOf('invalid_request'),
        body: gatewayFailure(requestId, 'invalid_request', 'MALFORMED_JSON', message, {
          details: [{ path: '(body)', message }],
        }),
      };
  }
}
