import type { UnifiedTask } from '../core/task';
import type { Remembered } from './store';

/**
 * The memory store keeps tens of thousands of remembered cancels; as JSON objects about half of
 * each Dyn entry was field names. A confirmed cancel is stored as a row instead:
 * `[provider, protocol, ...task values in TASK_FIELDS order]`, null for a value that is absent
 * (no field holds null), trailing nulls dropped. An ambiguous timeout stays a JSON object.
 */
export const TASK_FIELDS = [
  'id',
  'name',
  'zone',
  'customer',
  'status',
  'stepCount',
  'totalSteps',
  'blocking',
  'message',
  'createdAt',
  'modifiedAt',
] as const satisfies readonly (keyof UnifiedTask)[];

type Unlisted = Exclude<keyof UnifiedTask, (typeof TASK_FIELDS)[number]>;
/** Compiles only while TASK_FIELDS lists every field of UnifiedTask (else replays would lose it). */
export const TASK_FIELDS_COMPLETE: [Unlisted] extends [never] ? true : never = true;

type Cell = string | number | boolean | null;

export function encodeOutcome(value: Remembered): string {
  if (value.kind !== 'canceled') return JSON.stringify(value);
  const row: Cell[] = [value.provider ?? null, value.protocol ?? null];
  const task = value.task;
  if (task !== undefined) {
    for (const field of TASK_FIELDS) row.push(task[field] ?? null);
    // A task keeps at least its id, so a row of three or more cells always means "with a task".
    while (row.length > 3 && row.at(-1) === null) row.pop();
  }
  return JSON.stringify(row);
}

export function decodeOutcome(text: string): Remembered {
  const value: unknown = JSON.parse(text);
  if (!Array.isArray(value)) return value as Remembered;
  const [provider, protocol, ...cells] = value as Cell[];
  const out: Remembered = { kind: 'canceled' };
  if (typeof provider === 'string') out.provider = provider;
  if (typeof protocol === 'string') out.protocol = protocol;
  if (cells.length > 0) {
    const task: Record<string, Cell> = {};
    TASK_FIELDS.forEach((field, i) => {
      const cell = cells[i];
      if (cell !== undefined && cell !== null) task[field] = cell;
    });
    out.task = task as unknown as UnifiedTask;
  }
  return out;
}
