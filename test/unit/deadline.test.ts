import { deadlineIn } from '../../src/routing/deadline';

describe('deadlineIn', () => {
  beforeEach(() => {
    jest.useFakeTimers();
  });
  afterEach(() => {
    jest.useRealTimers();
  });

  it('fires at its time with a TimeoutError, and never after dispose', () => {
    const fires = deadlineIn(100);
    const disposed = deadlineIn(100);
    disposed.dispose();
    jest.advanceTimersByTime(99);
    expect(fires.signal.aborted).toBe(false);
    jest.advanceTimersByTime(1);
    expect(fires.signal.aborted).toBe(true);
    expect((fires.signal.reason as DOMException).name).toBe('TimeoutError');
    jest.advanceTimersByTime(1_000);
    expect(disposed.signal.aborted).toBe(false);
  });

  it('narrow: fires earlier for an attempt, and the restore puts the deadline back', () => {
    const deadline = deadlineIn(1_000);
    const restore = deadline.narrow(100);
    jest.advanceTimersByTime(60);
    restore();
    jest.advanceTimersByTime(100);
    expect(deadline.signal.aborted).toBe(false);
    jest.advanceTimersByTime(839);
    expect(deadline.signal.aborted).toBe(false);
    jest.advanceTimersByTime(1);
    expect(deadline.signal.aborted).toBe(true);
  });

  it('narrow: an attempt timeout that passes fires the signal', () => {
    const deadline = deadlineIn(1_000);
    const restore = deadline.narrow(100);
    jest.advanceTimersByTime(100);
    expect(deadline.signal.aborted).toBe(true);
    restore();
    expect(deadline.signal.aborted).toBe(true);
  });

  it('narrow: a timeout longer than what is left changes nothing', () => {
    const deadline = deadlineIn(100);
    const restore = deadline.narrow(5_000);
    jest.advanceTimersByTime(100);
    expect(deadline.signal.aborted).toBe(true);
    restore();
  });
});
