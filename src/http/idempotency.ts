import { createHash } from 'node:crypto';
import { CancelRequestSchema } from '../core/request';
import { gatewayFailure, type Answer } from '../core/result';
import type { Runtime } from '../routing/runtime';
import { LEASE_MS } from '../state/lease';
import type { StateStore } from '../state/store';

/** `Idempotency-Key`: 1..255 visible ASCII characters. */
export const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

/**
 * The request's fingerprint: the SHA-256 of its canonical body (the validated fields, in a fixed
 * order, `taskId` normalised), so `{"taskId": 5}` and `{"taskId": "5"}` are the same request.
 */
function fingerprintOf(value: unknown): string | undefined {
  const parsed = CancelRequestSchema.safeParse(value);
  if (!parsed.success) return undefined;
  const { target, taskId, reason } = parsed.data;
  return createHash('sha256')
    .update(JSON.stringify([target, taskId, reason ?? null]))
    .digest('hex');
}

/** One answered cancel, and the caller's reason for the log line. */
export interface CancelResult {
  answer: Answer;
  reason?: string;
}

/**
 * Runs one `/cancel` under its `Idempotency-Key`, when it has one:
 * - same key, same body, finished → the stored response again (`replayed: true`), no upstream call;
 * - same key, same body, still running → 409 `IDEMPOTENCY_KEY_IN_FLIGHT` (retryable);
 * - same key, another body → 422 `IDEMPOTENCY_KEY_REUSED`.
 * Keys are scoped by caller. Only final answers are stored: a retryable one (rate limited,
 * unavailable, timeout) releases the key, so the caller's retry really retries. While running,
 * the key is held by a short lease its request renews, so the key of a replica that died is
 * free again within the lease (5 s). With the shared store down, the request runs without
 * idempotency rather than failing.
 */
export async function withIdempotencyKey(
  store: StateStore,
  runtime: Runtime,
  header: string | string[] | undefined,
  caller: string,
  requestId: string,
  body: unknown,
  run: () => Promise<CancelResult>,
): Promise<CancelResult> {
  if (header === undefined) return run();
  const invalid = (message: string): CancelResult => ({
    answer: {
      body: gatewayFailure(requestId, 'invalid_request', 'INVALID_REQUEST', message, {
        details: [{ path: '(headers).idempotency-key', message }],
      }),
    },
  });
  if (typeof header !== 'string' || !KEY_PATTERN.test(header)) {
    return invalid('Idempotency-Key must be 1 to 255 visible ASCII characters');
  }
  const fingerprint = fingerprintOf(body);
  // An invalid body is answered as such; there is nothing to de-duplicate.
  if (fingerprint === undefined) return run();

  const key = `${caller}:${header}`;
  const { state: stateCfg } = runtime.loaded.config;
  const claim = await store.claimIdempotencyKey(key, fingerprint, LEASE_MS);
  if ('unavailable' in claim) return run();
  if (!claim.claimed) {
    const { entry } = claim;
    if (entry.fingerprint !== fingerprint) {
      return {
        answer: {
          body: gatewayFailure(
            requestId,
            'invalid_request',
            'IDEMPOTENCY_KEY_REUSED',
            'this Idempotency-Key was used with a different body; use a new key for a new request',
          ),
        },
      };
    }
    if (entry.state === 'in-flight') {
      return {
        answer: {
          body: gatewayFailure(
            requestId,
            'conflict',
            'IDEMPOTENCY_KEY_IN_FLIGHT',
            'a request with this Idempotency-Key is still running; retry shortly',
            { retryable: true },
          ),
          retryAfterSeconds: 1,
        },
      };
    }
    const replay: Answer = { body: { ...entry.body, requestId, replayed: true } };
    if (entry.retryAfterSeconds !== undefined) replay.retryAfterSeconds = entry.retryAfterSeconds;
    return { answer: replay };
  }

  let result: CancelResult | undefined;
  try {
    result = await run();
    return result;
  } finally {
    const answer = result?.answer;
    if (answer === undefined || answer.body.retryable || answer.body.outcome === 'internal_error') {
      await claim.lease.release();
    } else {
      await store.completeIdempotencyKey(
        key,
        {
          state: 'done',
          fingerprint,
          body: answer.body,
          ...(answer.retryAfterSeconds === undefined
            ? {}
            : { retryAfterSeconds: answer.retryAfterSeconds }),
        },
        stateCfg.rememberSeconds,
        claim.lease,
      );
    }
  }
}
