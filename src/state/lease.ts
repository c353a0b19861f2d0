import { randomUUID } from 'node:crypto';
import type { Lease } from './store';

/** How long a lease lives without renewal: a holder that dies frees its key within this. */
export const LEASE_MS = 5_000;

/**
 * A fresh owner token: random per claim, so no other claim can renew or release it. A UUID, as
 * `randomUUID` draws from Node's cached entropy pool: `randomBytes` per claim showed as 3 % of a
 * cancel's CPU in a profile (docs/performance.md).
 */
export function newToken(): string {
  return randomUUID();
}

/** How a store renews and frees one claim it granted. */
export interface LeaseOps {
  renew(): Promise<boolean>;
  release(): Promise<void>;
}

/**
 * A lease that renews itself every third of `ttlMs` until released. The timer is unref'd: a
 * held lease never keeps a process alive, and a process that dies simply stops renewing.
 * A renewal that fails (store down) is retried at the next tick; one that finds the lease gone
 * stops renewing.
 */
export function selfRenewingLease(token: string, ttlMs: number, ops: LeaseOps): Lease {
  let released = false;
  let renewing = false;
  const timer = setInterval(
    () => {
      if (renewing) return;
      renewing = true;
      void ops
        .renew()
        .then((held) => {
          if (!held) clearInterval(timer);
        })
        .finally(() => {
          renewing = false;
        });
    },
    Math.max(10, Math.floor(ttlMs / 3)),
  );
  timer.unref();
  return {
    token,
    renew: () => (released ? Promise.resolve(false) : ops.renew()),
    async release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      await ops.release();
    },
  };
}
