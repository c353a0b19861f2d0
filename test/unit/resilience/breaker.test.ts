import type { CircuitState } from '../../../src/core/circuit';
import { failed, type ProviderOutcome } from '../../../src/core/provider-outcome';
import { breakerPolicy, isUpstreamFailure } from '../../../src/resilience/breaker';
import { deadlineIn } from '../../../src/resilience/deadline';
import type { PolicyContext } from '../../../src/resilience/policy';
import { createFakeClock, type FakeClock } from '../../helpers/fake-clock';

const ok: ProviderOutcome = { outcome: 'canceled' };
const down = failed('unavailable', 'UPSTREAM_UNAVAILABLE', 'HTTP 503');
const broken = failed('upstream_error', 'UPSTREAM_INTERNAL_ERROR', 'HTTP 500');

let clock: FakeClock;
let changes: CircuitState[];
beforeEach(() => {
  clock = createFakeClock();
  changes = [];
});

function ctxIn(ms = 10_000): PolicyContext {
  return { deadline: deadlineIn(ms, clock), onAttempt: () => undefined };
}

function breaker(failureThreshold = 3, resetAfterMs = 30_000) {
  return breakerPolicy({ failureThreshold, resetAfterMs }, clock, (s) => changes.push(s));
}

const answer = (o: ProviderOutcome) => () => Promise.resolve(o);

describe('isUpstreamFailure', () => {
  it.each([
    [down, true],
    [broken, true],
    [failed('timeout', 'UPSTREAM_TIMEOUT', 'no answer'), true],
    [failed('timeout', 'UPSTREAM_TIMEOUT', 'no session free', { notSent: true }), false],
    [failed('unavailable', 'BULKHEAD_FULL', 'full', { notSent: true }), false],
    [failed('unavailable', 'CIRCUIT_OPEN', 'open', { notSent: true }), false],
    [failed('unavailable', 'DRAINING', 'closing'), false],
    [failed('rate_limited', 'UPSTREAM_RATE_LIMITED', '429'), false],
    [failed('not_found', 'TASK_NOT_FOUND', 'no such task'), false],
    [failed('conflict', 'TASK_AT_PORT', 'at port'), false],
    [ok, false],
  ])('%j counts: %s', (outcome, counts) => {
    expect(isUpstreamFailure(outcome)).toBe(counts);
  });
});

describe('breakerPolicy', () => {
  it('opens after failureThreshold consecutive failures and answers CIRCUIT_OPEN without running', async () => {
    const policy = breaker();
    for (let i = 0; i < 3; i++) expect(await policy.execute(answer(broken), ctxIn())).toBe(broken);
    expect(policy.state()).toBe('open');
    expect(changes).toEqual(['open']);
    await clock.advance(10_500);
    const next = jest.fn(answer(ok));
    expect(await policy.execute(next, ctxIn())).toEqual({
      outcome: 'unavailable',
      error: { code: 'CIRCUIT_OPEN', message: expect.stringMatching(/not sent/) },
      notSent: true,
      retryAfterSeconds: 20,
    });
    expect(next).not.toHaveBeenCalled();
  });

  it('counts only consecutive upstream failures: a success or a business answer resets the count', async () => {
    const policy = breaker();
    const sequence = [down, down, ok, down, down, failed('not_found', 'TASK_NOT_FOUND', 'x')];
    for (const o of [...sequence, down, down]) await policy.execute(answer(o), ctxIn());
    expect(policy.state()).toBe('closed');
    await policy.execute(answer(down), ctxIn());
    expect(policy.state()).toBe('open');
  });

  it("never counts the gateway's own refusals", async () => {
    const policy = breaker(1);
    await policy.execute(answer(failed('unavailable', 'BULKHEAD_FULL', 'full')), ctxIn());
    await policy.execute(answer(failed('rate_limited', 'RATE_LIMITED', 'limit')), ctxIn());
    expect(policy.state()).toBe('closed');
  });

  it('after resetAfterMs lets one probe through; a good probe closes the circuit', async () => {
    const policy = breaker(1, 100);
    await policy.execute(answer(down), ctxIn());
    await clock.advance(99);
    expect((await policy.execute(answer(ok), ctxIn())).error?.code).toBe('CIRCUIT_OPEN');
    await clock.advance(1);
    expect(await policy.execute(answer(ok), ctxIn())).toBe(ok);
    expect(policy.state()).toBe('closed');
    expect(changes).toEqual(['open', 'half-open', 'closed']);
  });

  it('opens again, for a full resetAfterMs, when the probe fails', async () => {
    const policy = breaker(1, 100);
    await policy.execute(answer(down), ctxIn());
    await clock.advance(100);
    expect(await policy.execute(answer(broken), ctxIn())).toBe(broken);
    expect(changes).toEqual(['open', 'half-open', 'open']);
    await clock.advance(99);
    expect((await policy.execute(answer(ok), ctxIn())).error?.code).toBe('CIRCUIT_OPEN');
    await clock.advance(1);
    expect(await policy.execute(answer(ok), ctxIn())).toBe(ok);
  });

  it('reports half-open while the probe runs, and others wait for its verdict', async () => {
    const policy = breaker(1, 100);
    await policy.execute(answer(down), ctxIn());
    await clock.advance(100);
    let endProbe: (o: ProviderOutcome) => void = () => undefined;
    const probe = policy.execute(
      () =>
        new Promise<ProviderOutcome>((resolve) => {
          endProbe = resolve;
        }),
      ctxIn(),
    );
    expect(policy.state()).toBe('half-open');
    const second = jest.fn(answer(ok));
    const waiting = policy.execute(second, ctxIn());
    await clock.advance(0);
    expect(second).not.toHaveBeenCalled();
    endProbe(ok);
    expect(await probe).toBe(ok);
    expect(await waiting).toBe(ok);
    expect(second).toHaveBeenCalledTimes(1);
  });

  it('answers those waiting on a failed probe with CIRCUIT_OPEN', async () => {
    const policy = breaker(1, 100);
    await policy.execute(answer(down), ctxIn());
    await clock.advance(100);
    let endProbe: (o: ProviderOutcome) => void = () => undefined;
    const probe = policy.execute(
      () =>
        new Promise<ProviderOutcome>((resolve) => {
          endProbe = resolve;
        }),
      ctxIn(),
    );
    const second = jest.fn(answer(ok));
    const waiting = policy.execute(second, ctxIn());
    endProbe(down);
    await probe;
    expect((await waiting).error?.code).toBe('CIRCUIT_OPEN');
    expect(second).not.toHaveBeenCalled();
  });

  it('lets a request waiting on the probe leave at its own deadline, not sent', async () => {
    const policy = breaker(1, 100);
    await policy.execute(answer(down), ctxIn());
    await clock.advance(100);
    void policy.execute(() => new Promise<ProviderOutcome>(() => undefined), ctxIn(60_000));
    const second = jest.fn(answer(ok));
    const waiting = policy.execute(second, ctxIn(300));
    await clock.advance(300);
    expect(await waiting).toMatchObject({
      outcome: 'timeout',
      error: { code: 'UPSTREAM_TIMEOUT' },
      notSent: true,
    });
    expect(second).not.toHaveBeenCalled();
    expect(policy.state()).toBe('half-open');
  });
});
