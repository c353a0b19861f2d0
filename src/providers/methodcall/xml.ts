import { XMLParser } from 'fast-xml-parser';
import { failed, type ProviderOutcome } from '../../core/provider-outcome';

/** `task_id` is `Int (1-2147483647)` in the interface documentation. */
export const MAX_METHODCALL_TASK_ID = 2_147_483_647;

const DIGITS = /^[1-9][0-9]{0,9}$/;

/** Why this task id cannot be sent to a methodcall upstream, or undefined when it can. */
export function methodcallTaskIdProblem(taskId: string): string | undefined {
  if (!DIGITS.test(taskId) || Number(taskId) > MAX_METHODCALL_TASK_ID) {
    return `must be between 1 and ${MAX_METHODCALL_TASK_ID} for a methodcall upstream`;
  }
  return undefined;
}

/**
 * The request body of `cancel_task`. The id is re-checked here so that nothing but a validated
 * decimal integer can ever reach the template (no escaping is then needed, and none is possible).
 */
export function encodeCancelTask(taskId: string): string {
  const problem = methodcallTaskIdProblem(taskId);
  if (problem !== undefined) throw new RangeError(`task_id ${problem}`);
  return (
    '<?xml version="1.0" encoding="UTF-8"?>' +
    `<methodcall><name>cancel_task</name><params><task_id>${taskId}</task_id></params></methodcall>`
  );
}

/** What a methodcall answer body says, before any HTTP status is considered. */
export type MethodcallAnswer =
  { kind: 'ok' } | { kind: 'fault'; code: string } | { kind: 'malformed'; reason: string };

/** One parser for the process: options are fixed and parsing holds no state between calls. */
const parser = new XMLParser({
  ignoreAttributes: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  parseTagValue: false,
  processEntities: false,
  htmlEntities: false,
  trimValues: true,
  maxNestedTags: 32,
});

// A DOCTYPE is never legitimate in an answer and is how entity bombs and XXE arrive: refuse it
// outright instead of relying on the parser's entity limits.
const DOCTYPE = /<!DOCTYPE|<!ENTITY/i;

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * The two answers that make up nearly all traffic, matched exactly (optional declaration and
 * whitespace only): success (`<params/>`) and a plain fault. Anything else goes to the parser.
 */
const PLAIN_OK =
  /^\s*(?:<\?xml[^<>?]*\?>)?\s*<response>\s*(?:<params\s*\/>|<params>\s*<\/params>)\s*<\/response>\s*$/;
const PLAIN_FAULT =
  /^\s*(?:<\?xml[^<>?]*\?>)?\s*<response>\s*<fault>\s*<code>(-?\d{1,10})<\/code>\s*(?:<message>[^<&]*<\/message>\s*)?<\/fault>\s*<\/response>\s*$/;

/** Decodes a methodcall `<response>`; never throws. */
export function decodeResponse(body: string): MethodcallAnswer {
  const text = body.charCodeAt(0) === 0xfeff ? body.slice(1) : body;
  // Hot path: skip the parser for the exact shapes above (the result is the same; tested).
  if (text.length < 512) {
    if (PLAIN_OK.test(text)) return { kind: 'ok' };
    const fault = PLAIN_FAULT.exec(text);
    if (fault?.[1] !== undefined) return { kind: 'fault', code: fault[1] };
  }
  return parseResponse(text);
}

/** The full decode with the XML parser (every answer the hot path does not recognise). */
export function parseResponse(text: string): MethodcallAnswer {
  if (text.trim() === '') return { kind: 'malformed', reason: 'empty body' };
  if (DOCTYPE.test(text)) return { kind: 'malformed', reason: 'DOCTYPE declarations are refused' };
  let doc: unknown;
  try {
    doc = parser.parse(text, true);
  } catch {
    return { kind: 'malformed', reason: 'not well-formed XML' };
  }
  if (!isRecord(doc) || !('response' in doc)) {
    return { kind: 'malformed', reason: 'no <response> root element' };
  }
  if (Object.keys(doc).length !== 1) {
    return { kind: 'malformed', reason: 'more than one root element' };
  }
  const response = doc.response;
  if (!isRecord(response)) {
    return { kind: 'malformed', reason: '<response> has neither <params> nor <fault>' };
  }
  if ('fault' in response) {
    const fault = response.fault;
    const code = isRecord(fault) ? fault.code : undefined;
    if (typeof code !== 'string' || !/^-?\d{1,10}$/.test(code)) {
      return { kind: 'malformed', reason: '<fault> without a numeric <code>' };
    }
    return { kind: 'fault', code };
  }
  if ('params' in response) return { kind: 'ok' };
  return { kind: 'malformed', reason: '<response> has neither <params> nor <fault>' };
}

/** Documented names of the fault codes a cancel can meet (interface error-codes overview). */
const FAULT_TEXT: Readonly<Record<string, string>> = {
  '1012':
    'INVALID_PARAMETER_TASK_ID: Parameter task_id is not valid (invalid format or out of range).',
  '1017': 'The specified task does not exist.',
  '1040': 'MISSING_PARAMETER_TASK_ID: Mandatory parameter task_id is missing.',
  '1045': 'The specified task is selected by a Port.',
};

/** Maps a decoded answer plus HTTP status to the gateway's outcome. */
export function classifyAnswer(status: number, answer: MethodcallAnswer): ProviderOutcome {
  if (answer.kind === 'ok') return { outcome: 'canceled' };
  if (answer.kind === 'malformed') {
    const upstream = { code: `HTTP ${status}`, message: answer.reason };
    // A 5xx without a usable body is the upstream being down, not an answer about the task.
    if (status >= 500) {
      // 503 is "not processed" by definition; other 5xx may come after the work.
      return failed('unavailable', 'UPSTREAM_UNAVAILABLE', `upstream answered HTTP ${status}`, {
        upstream,
        ...(status === 503 ? { notSent: true } : {}),
      });
    }
    return failed(
      'upstream_error',
      'UPSTREAM_BAD_RESPONSE',
      `upstream answered with an unusable body: ${answer.reason}`,
      { upstream },
    );
  }
  const code = answer.code;
  const upstream = { code, message: FAULT_TEXT[code] ?? `fault ${code}` };
  switch (code) {
    case '1017':
      return failed('not_found', 'TASK_NOT_FOUND', 'the upstream says the task does not exist', {
        upstream,
      });
    case '1045':
      // The task's bin is at or on its way to a port; clearing the port selection may make a later
      // cancel succeed, so this conflict is worth retrying.
      return failed(
        'conflict',
        'TASK_AT_PORT',
        'the task is selected by a port and cannot be canceled now; retry later',
        { upstream, retryable: true },
      );
    case '1012':
    case '1040':
      return failed(
        'rejected',
        'UPSTREAM_REJECTED',
        'the upstream refused the task id as invalid',
        {
          upstream,
        },
      );
    default:
      if (/^1\d{3}$/.test(code)) {
        return failed('upstream_error', 'UPSTREAM_FAULT', `the upstream answered fault ${code}`, {
          upstream,
        });
      }
      // Codes outside 1xxx are "internal errors" of the interface, per its documentation.
      return failed(
        'upstream_error',
        'UPSTREAM_INTERNAL_ERROR',
        `internal error of the upstream (fault ${code})`,
        { upstream },
      );
  }
}
