import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CircuitState } from '../core/circuit';

/** `gateway_circuit_state` values. */
const CIRCUIT_VALUE: Record<CircuitState, number> = { closed: 0, 'half-open': 1, open: 2 };

/** Seconds: from a fast methodcall answer (~1 ms) to a Dyn job polled for most of a minute. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * Seconds of the gateway's own share of an answer: well under a millisecond when nothing waits,
 * up to seconds when a request queues for a bulkhead slot or a Dyn session, or backs off.
 */
const OWN_TIME_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30];

/** What a request asked of the upstream: `cancel` (`POST /cancel`, batch items) or `get`. */
export type RequestOperation = 'cancel' | 'get';

export interface Metrics {
  registry: Registry;
  /** `operation` is a `RequestOperation`. */
  cancelRequests: Counter<'target' | 'provider' | 'outcome' | 'operation'>;
  cancelDuration: Histogram<'target' | 'outcome' | 'operation'>;
  /** The gateway's share of an answer's time: what `Server-Timing` reports as `gateway`. */
  cancelGatewayTime: Histogram<'target' | 'operation'>;
  /**
   * The upstream's share (the time of the attempts the request made itself; none for an answer
   * replayed or shared with a concurrent duplicate): `Server-Timing`'s `upstream`.
   */
  cancelUpstreamTime: Histogram<'target' | 'operation'>;
  upstreamRequests: Counter<'provider' | 'protocol' | 'result'>;
  upstreamDuration: Histogram<'provider' | 'operation'>;
  configReloads: Counter<'result'>;
  authFailures: Counter<'reason'>;
  stateStoreErrors: Counter<'operation'>;
  upstreamAuthFailures: Counter<'provider'>;
  /** Background confirmations of timed-out cancels, by how each ended. */
  reconciliations: Counter<'provider' | 'result'>;
  /** Where `gateway_circuit_state` reads the providers' circuits from at each scrape. */
  observeCircuits(source: () => Iterable<readonly [string, CircuitState]>): void;
  /** Text exposition for `GET /metrics`. */
  render(): Promise<string>;
}

/**
 * One registry per gateway (tests run several in one process). Label values come from the config
 * (targets, providers) or from fixed vocabularies (outcomes, results); never from caller input,
 * so the series count stays bounded.
 */
export function createMetrics(): Metrics {
  let circuits: () => Iterable<readonly [string, CircuitState]> = () => [];
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const cancelRequests = new Counter({
    name: 'gateway_cancel_requests_total',
    help:
      'Requests answered (cancels, batch items, task reads), by target, provider that gave the ' +
      'final answer, outcome, and operation (cancel, get).',
    labelNames: ['target', 'provider', 'outcome', 'operation'] as const,
    registers: [registry],
  });
  const cancelDuration = new Histogram({
    name: 'gateway_cancel_duration_seconds',
    help: 'Time to answer one request, every attempt and fallback included, by operation.',
    labelNames: ['target', 'outcome', 'operation'] as const,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  const cancelGatewayTime = new Histogram({
    name: 'gateway_cancel_gateway_seconds',
    help:
      "The gateway's own share of answering one request: its time minus that of the upstream " +
      'attempts it made (Server-Timing gateway).',
    labelNames: ['target', 'operation'] as const,
    buckets: OWN_TIME_BUCKETS,
    registers: [registry],
  });
  const cancelUpstreamTime = new Histogram({
    name: 'gateway_cancel_upstream_seconds',
    help:
      "The upstream's share of answering one request: the time of the upstream attempts it made " +
      'itself, 0 for a replayed answer (Server-Timing upstream).',
    labelNames: ['target', 'operation'] as const,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  const upstreamRequests = new Counter({
    name: 'gateway_upstream_requests_total',
    help: 'Upstream attempts (cancels and task reads), by provider, protocol and result (the attempt outcome).',
    labelNames: ['provider', 'protocol', 'result'] as const,
    registers: [registry],
  });
  const upstreamDuration = new Histogram({
    name: 'gateway_upstream_duration_seconds',
    help: 'Time of one upstream attempt (login, job polling and re-login included).',
    labelNames: ['provider', 'operation'] as const,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  new Gauge({
    name: 'gateway_circuit_state',
    help: 'Circuit breaker state per provider: 0 closed, 1 half-open, 2 open.',
    labelNames: ['provider'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [provider, state] of circuits()) this.set({ provider }, CIRCUIT_VALUE[state]);
    },
  });
  const configReloads = new Counter({
    name: 'gateway_config_reloads_total',
    help: 'Config reloads, by result: success, failure (the running config stayed), unchanged.',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const authFailures = new Counter({
    name: 'gateway_auth_failures_total',
    help: 'Requests refused by auth: missing or unknown key (401), target not allowed (403).',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const stateStoreErrors = new Counter({
    name: 'gateway_state_store_errors_total',
    help: 'Failed calls to the shared state store (redis), by operation; the gateway ran degraded.',
    labelNames: ['operation'] as const,
    registers: [registry],
  });
  const upstreamAuthFailures = new Counter({
    name: 'gateway_upstream_auth_failures_total',
    help: "Attempts the upstream refused because of the gateway's own credentials or permissions.",
    labelNames: ['provider'] as const,
    registers: [registry],
  });
  const reconciliations = new Counter({
    name: 'gateway_reconciliations_total',
    help:
      'Background confirmations of cancels that timed out, by provider and result: canceled, ' +
      'pending, finished, gone (settled), expired (state.reconcileSeconds ran out), abandoned ' +
      '(provider gone), dropped (queue full), stopped (shutdown).',
    labelNames: ['provider', 'result'] as const,
    registers: [registry],
  });
  return {
    registry,
    stateStoreErrors,
    reconciliations,
    upstreamAuthFailures,
    cancelRequests,
    cancelDuration,
    cancelGatewayTime,
    cancelUpstreamTime,
    upstreamRequests,
    upstreamDuration,
    configReloads,
    authFailures,
    observeCircuits(source) {
      circuits = source;
    },
    render: () => registry.metrics(),
  };
}
