import { deadlineIn, scopedTimeout } from '../../../src/resilience/deadline';
import { createFakeClock, type FakeClock } from '../../helpers/fake-clock';

let clock: FakeClock;
beforeEach(() => {
  clock = createFakeClock();
});

describe('deadlineIn', () => {
  it('fires at its time on the clock with a TimeoutError, and never after dispose', async () => {
    await clock.advance(500);
    const fires = deadlineIn(100, clock);
    const disposed = deadlineIn(100, clock);
    expect(fires.at).toBe(600);
    disposed.dispose();
    await clock.advance(99);
    expect(fires.signal.aborted).toBe(false);
    await clock.advance(1);
    expect(fires.signal.aborted).toBe(true);
    expect((fires.signal.reason as DOMException).name).toBe('TimeoutError');
    await clock.advance(1_000);
    expect(disposed.signal.aborted).toBe(false);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('narrow: fires earlier for an attempt, and the restore puts the deadline back', async () => {
    const deadline = deadlineIn(1_000, clock);
    const restore = deadline.narrow(100);
    await clock.advance(60);
    restore();
    await clock.advance(100);
    expect(deadline.signal.aborted).toBe(false);
    await clock.advance(839);
    expect(deadline.signal.aborted).toBe(false);
    await clock.advance(1);
    expect(deadline.signal.aborted).toBe(true);
  });

  it('narrow: an attempt timeout that passes fires the signal, and the restore cannot undo it', async () => {
    const deadline = deadlineIn(1_000, clock);
    const restore = deadline.narrow(100);
    await clock.advance(100);
    expect(deadline.signal.aborted).toBe(true);
    restore();
    expect(deadline.signal.aborted).toBe(true);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('narrow: a timeout longer than what is left changes nothing', async () => {
    const deadline = deadlineIn(100, clock);
    const restore = deadline.narrow(5_000);
    expect(clock.pendingTimers()).toBe(1);
    await clock.advance(100);
    expect(deadline.signal.aborted).toBe(true);
    restore();
    expect(clock.pendingTimers()).toBe(0);
  });

  it('dispose after a narrow releases the narrowed timer', async () => {
    const deadline = deadlineIn(1_000, clock);
    deadline.narrow(100);
    deadline.dispose();
    expect(clock.pendingTimers()).toBe(0);
    await clock.advance(2_000);
    expect(deadline.signal.aborted).toBe(false);
  });
});

describe('scopedTimeout', () => {
  it('aborts after ms on the clock with a TimeoutError', async () => {
    const scope = scopedTimeout(new AbortController().signal, 50, clock);
    await clock.advance(49);
    expect(scope.signal.aborted).toBe(false);
    await clock.advance(1);
    expect((scope.signal.reason as DOMException).name).toBe('TimeoutError');
    scope.dispose();
  });

  it("aborts with the parent, carrying the parent's reason", () => {
    const parent = new AbortController();
    const scope = scopedTimeout(parent.signal, 50, clock);
    parent.abort(new Error('request over'));
    expect(scope.signal.aborted).toBe(true);
    expect((scope.signal.reason as Error).message).toBe('request over');
    scope.dispose();
  });

  it('is aborted at once under an aborted parent, and sets no timer', () => {
    const parent = new AbortController();
    parent.abort(new Error('gone'));
    const scope = scopedTimeout(parent.signal, 50, clock);
    expect(scope.signal.aborted).toBe(true);
    expect((scope.signal.reason as Error).message).toBe('gone');
    expect(clock.pendingTimers()).toBe(0);
  });

  it('dispose releases the timer and stops following the parent', async () => {
    const parent = new AbortController();
    const scope = scopedTimeout(parent.signal, 50, clock);
    scope.dispose();
    expect(clock.pendingTimers()).toBe(0);
    parent.abort();
    await clock.advance(100);
    expect(scope.signal.aborted).toBe(false);
  });
});
