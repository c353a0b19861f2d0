import type { ErrorCode } from '../../../src/core/error-codes';
import type { Answer } from '../../../src/core/result';
import { createMemoryStore } from '../../../src/state/memory-store';
import { createCancelMemory, type CancelMemory } from '../../../src/state/replay';

/** What replay.ts decides from an answer's outcome, error code and task status alone. */

const timedOut: Answer = {
  body: {
    ok: false,
    outcome: 'timeout',
    retryable: true,
    requestId: 'r-0',
    target: 'dns',
    provider: 'dns-rest',
    protocol: 'dyn-rest',
    taskId: '7',
    error: { code: 'JOB_NOT_CONFIRMED', message: 'accepted, not confirmed' },
    attempts: [{ provider: 'dns-rest', outcome: 'timeout', durationMs: 5 }],
  },
  ambiguous: true,
};

function finished(code: ErrorCode, status: string): Answer {
  return {
    body: {
      ok: false,
      outcome: 'conflict',
      retryable: false,
      requestId: 'r-1',
      target: 'dns',
      provider: 'dns-rest',
      protocol: 'dyn-rest',
      taskId: '7',
      task: { id: '7', status },
      error: {
        code,
        message: 'the upstream message text plays no part',
        upstream: { code: 'ILLEGAL_OPERATION' },
      },
      attempts: [{ provider: 'dns-rest', outcome: 'conflict', durationMs: 3, errorCode: code }],
    },
  };
}

let memory: CancelMemory;
let calls: number;
const run = (answer: Answer, requestId = 'r-1'): Promise<Answer> =>
  memory.run('dns', '7', requestId, () => {
    calls++;
    return Promise.resolve(answer);
  });

beforeEach(() => {
  memory = createCancelMemory(createMemoryStore(100), 3600);
  calls = 0;
});

describe('a repeat after a timeout of ours', () => {
  it.each(['canceled', 'cancelled', 'CANCELED'])(
    'turns "already finished" with a %s task into canceled, remembered as confirmed',
    async (status) => {
      await run(timedOut, 'r-0');
      const answer = await run(finished('TASK_ALREADY_FINISHED', status));
      expect(answer.body).toEqual({
        ok: true,
        outcome: 'canceled',
        retryable: false,
        requestId: 'r-1',
        target: 'dns',
        provider: 'dns-rest',
        protocol: 'dyn-rest',
        taskId: '7',
        task: { id: '7', status },
        attempts: [
          {
            provider: 'dns-rest',
            outcome: 'conflict',
            durationMs: 3,
            errorCode: 'TASK_ALREADY_FINISHED',
          },
        ],
      });
      const again = await run(finished('TASK_ALREADY_FINISHED', status), 'r-2');
      expect(again.body).toMatchObject({ outcome: 'canceled', replayed: true, requestId: 'r-2' });
      // The timeout and the "already finished" reached the upstream; the replay did not.
      expect(calls).toBe(2);
    },
  );

  it('keeps a task that finished another way a conflict', async () => {
    await run(timedOut, 'r-0');
    const answer = await run(finished('TASK_ALREADY_FINISHED', 'complete'));
    expect(answer.body).toMatchObject({
      outcome: 'conflict',
      error: { code: 'TASK_ALREADY_FINISHED' },
    });
  });

  it('keeps any other conflict a conflict, whatever the task status says', async () => {
    await run(timedOut, 'r-0');
    for (const code of ['TASK_NOT_CANCELABLE', 'TASK_BLOCKED'] as const) {
      expect((await run(finished(code, 'canceled'))).body.outcome).toBe('conflict');
    }
  });
});

it('without an earlier timeout, "already canceled" stays a conflict', async () => {
  const answer = await run(finished('TASK_ALREADY_FINISHED', 'canceled'));
  expect(answer.body).toMatchObject({ outcome: 'conflict', ok: false });
  await run(finished('TASK_ALREADY_FINISHED', 'canceled'));
  expect(calls).toBe(2);
});
