import { randomUUID } from 'node:crypto';

const SAFE_ID = /^[A-Za-z0-9._:@-]{1,128}$/;

/** The caller's `X-Request-Id` when it is safe to echo and log, else a fresh UUID. */
export function requestIdFrom(header: string | string[] | undefined): string {
  if (typeof header === 'string' && SAFE_ID.test(header)) return header;
  return randomUUID();
}
