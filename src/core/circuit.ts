/** Circuit state as `/readyz`, `/routes` and the `gateway_circuit_state` gauge show it. */
export type CircuitState = 'closed' | 'half-open' | 'open';
