/**
 * An open-loop load generator: requests leave at a fixed rate whatever the answers do, and each
 * latency runs from the request's *scheduled* send time, so time spent waiting behind a slow
 * answer (in the generator, the pool or the server) is counted, not hidden as in a closed loop.
 * Bounded: `rate × seconds` requests, each with a timeout; loopback URLs only.
 */
import { Pool } from 'undici';

/** One open-loop run. */
export interface OpenLoopOptions {
  /** Full URL of the endpoint (loopback only). */
  url: string;
  /** Requests per second, scheduled at fixed intervals of 1000 / rate ms. */
  rate: number;
  seconds: number;
  contentType: string;
  /** The body of the next request (called once per request, at its send time). */
  body: () => string;
  /** Keep-alive connections of the generator's pool (default 64). */
  connections?: number;
  /** Per-request limit on headers and on the body (default 10 000 ms); a miss is an error. */
  timeoutMs?: number;
  /** A caller's `traceparent` for the next request (once per request): `--traceparent`. */
  traceparent?: () => string;
}

/** What one run measured; latencies in ms from each request's scheduled send time. */
export interface OpenLoopResult {
  rate: number;
  seconds: number;
  scheduled: number;
  answered: number;
  /** Connection errors and timeouts (no answer). */
  errors: number;
  non2xx: number;
  latencyP50: number;
  latencyP90: number;
  latencyP99: number;
  latencyMax: number;
  latencyMean: number;
  /** How late the generator itself sent (timer lateness): large values mean it fell behind. */
  sendLagP99: number;
  sendLagMax: number;
  /** Scheduled requests ÷ the time from the first send to the last answer. */
  achievedRate: number;
  /** The first few error messages, so a failed run says why. */
  errorSamples: string[];
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** The `q` quantile (nearest rank) of ascending `sorted`, rounded to 0.01 ms. */
export function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return Math.round((sorted[rank - 1] ?? 0) * 100) / 100;
}

/** Sends `rate × seconds` requests at fixed intervals and resolves when every one has settled. */
export async function openLoop(options: OpenLoopOptions): Promise<OpenLoopResult> {
  const target = new URL(options.url);
  if (!LOOPBACK.has(target.hostname)) throw new Error(`open loop: not loopback: ${options.url}`);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const pool = new Pool(target.origin, {
    connections: options.connections ?? 64,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  const total = Math.max(1, Math.round(options.rate * options.seconds));
  const interval = 1000 / options.rate;
  const latency = new Float64Array(total).fill(Number.NaN);
  const lag = new Float64Array(total);
  let errors = 0;
  const errorSamples: string[] = [];
  let non2xx = 0;
  let settled = 0;
  let sent = 0;
  const headers = { 'content-type': options.contentType };
  const t0 = performance.now() + 5;
  let lastAnswer = t0;

  await new Promise<void>((resolve) => {
    const send = (i: number, now: number): void => {
      const scheduledAt = t0 + i * interval;
      lag[i] = now - scheduledAt;
      const { traceparent } = options;
      pool
        .request({
          method: 'POST',
          path: target.pathname,
          headers: traceparent === undefined ? headers : { ...headers, traceparent: traceparent() },
          body: options.body(),
        })
        .then(async (res) => {
          await res.body.text();
          const end = performance.now();
          latency[i] = end - scheduledAt;
          lastAnswer = Math.max(lastAnswer, end);
          if (res.statusCode < 200 || res.statusCode > 299) non2xx++;
        })
        .catch((err: unknown) => {
          errors++;
          if (errorSamples.length < 5) errorSamples.push(`#${i}: ${String(err)}`);
        })
        .finally(() => {
          if (++settled === total) resolve();
        });
    };
    const tick = (): void => {
      const now = performance.now();
      while (sent < total && t0 + sent * interval <= now) send(sent++, now);
      if (sent < total) setTimeout(tick, Math.max(0, t0 + sent * interval - performance.now()));
    };
    setTimeout(tick, 5);
  });
  await pool.close();

  const answered = latency.filter((v) => !Number.isNaN(v)).sort();
  const lags = lag.sort();
  const sum = answered.reduce((a, b) => a + b, 0);
  return {
    rate: options.rate,
    seconds: options.seconds,
    scheduled: total,
    answered: answered.length,
    errors,
    non2xx,
    latencyP50: quantile(answered, 0.5),
    latencyP90: quantile(answered, 0.9),
    latencyP99: quantile(answered, 0.99),
    latencyMax: quantile(answered, 1),
    latencyMean: answered.length === 0 ? 0 : Math.round((sum / answered.length) * 100) / 100,
    sendLagP99: quantile(lags, 0.99),
    sendLagMax: quantile(lags, 1),
    achievedRate: Math.round((total * 1000) / Math.max(1, lastAnswer - t0)),
    errorSamples,
  };
}
