import { startDynRestSimulator } from '../../src/simulators/dyn-rest';
import { startMethodcallSimulator } from '../../src/simulators/methodcall';

/** Long-running simulators (CLI, demo, compose) keep bounded memory: old calls and tasks go. */
describe('simulator memory limit', () => {
  it('methodcall: keeps at most twice the limit of calls, and forgets the oldest canceled tasks', async () => {
    const sim = await startMethodcallSimulator({ memoryLimit: 3 });
    const cancel = async (taskId: number): Promise<string> => {
      const res = await fetch(sim.taskUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/xml' },
        body: `<?xml version="1.0" encoding="UTF-8"?><methodcall><name>cancel_task</name><params><task_id>${taskId}</task_id></params></methodcall>`,
      });
      return res.text();
    };
    try {
      for (let id = 1; id <= 10; id++) expect(await cancel(id)).toContain('<params');
      expect(sim.calls.length).toBeLessThan(6);
      expect(sim.calls.at(-1)?.taskId).toBe('10');
      // The newest are remembered (a repeat is "does not exist"); the first was forgotten.
      expect(await cancel(10)).toContain('1017');
      expect(await cancel(1)).toContain('<params');
    } finally {
      await sim.close();
    }
  });

  it('dyn-rest: keeps at most twice the limit of calls', async () => {
    const sim = await startDynRestSimulator({ memoryLimit: 2 });
    try {
      for (let i = 0; i < 9; i++) await fetch(`${sim.baseUrl}/Task/${String(i + 1)}/`);
      expect(sim.calls.length).toBeLessThan(4);
      expect(sim.calls.at(-1)?.path).toBe('/REST/Task/9/');
    } finally {
      await sim.close();
    }
  });

  it('is unbounded by default (tests read every call)', async () => {
    const sim = await startDynRestSimulator();
    try {
      for (let i = 0; i < 9; i++) await fetch(`${sim.baseUrl}/Task/${String(i + 1)}/`);
      expect(sim.calls).toHaveLength(9);
    } finally {
      await sim.close();
    }
  });
});
