import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, RLWrapperTimeouts } from 'rate-limiter-flexible';
import { ROLES, type RateLimit, type Role } from '../config.js';
import type { HubDeps } from '../deps.js';
import { AppError } from '../errors.js';
import { clientOf } from './auth.js';

/**
 * Rate limits (SPEC §3's 429), both kept in the hub's Redis under its key prefix so every web process
 * shares them:
 *
 * - **Per client**, by role (`RATE_LIMITS`, defaults in src/config.ts): each authenticated request
 *   takes a point from its client's budget; past it, `429 rate_limited` with `Retry-After` until the
 *   window ends. A client already over its budget is refused from this process's memory without asking
 *   Redis again, so a client that hammers costs Redis nothing more. If Redis refuses or takes longer
 *   than REDIS_DEADLINE_MS to answer, each process falls back to the same limit kept in its own
 *   memory: intake keeps working without Redis (events are stored in Postgres), so the limit must not
 *   depend on it, nor wait for it.
 * - **Points taken a lease at a time**: a process takes a client's points from Redis `leaseSize` at a
 *   time (1 % of the budget, 1 to MAX_LEASE) and spends them from memory, so a partner sending
 *   thousands of requests a second costs Redis one call per lease, not one per request. What the
 *   shared count grants is never exceeded: a lease refused because the budget has fewer points left is
 *   granted just those. The price: points a process leased and did not spend before the window ends
 *   are lost to the client (at most a lease, 1 %, per web process and window); a budget under 200
 *   points is counted request by request.
 * - **Failed authentication per address** (`FAILED_AUTH_LIMIT`): every 401 (no or unknown key, bad
 *   signature, Bull Board's or the console's wrong password) counts against the caller's address in
 *   Redis; once the limit is used up the address is refused with `429 too_many_failed_authentications` for as long
 *   again, before its key is even looked at, so a guesser learns nothing while refused. The web process
 *   that saw the limit passed refuses at once; another one does at the address's next failure there
 *   (its count is the shared one), so across N web processes at most N more guesses get an answer.
 *   Keeping the check in memory keeps it off the path of every good request.
 */

/** How long a request waits for Redis's count before its process's own count decides. */
export const REDIS_DEADLINE_MS = 100;

/** Most points one process takes from a client's shared budget at once. */
export const MAX_LEASE = 50;

/** Points a process takes from a client's budget at a time: 1 % of it, 1 to MAX_LEASE. */
export function leaseSize(limit: RateLimit): number {
  return Math.max(1, Math.min(MAX_LEASE, Math.floor(limit.points / 100)));
}

/** More addresses than this refused at once are not remembered individually (memory stays bounded). */
const MAX_BLOCKED_ADDRESSES = 100_000;

export interface RateLimits {
  /** Before authentication: refuses a blocked address, and counts every 401 it gets. */
  failedAuthentication: RequestHandler;
  /** After authentication: the client's budget. */
  perClient: RequestHandler;
}

export function createRateLimits(deps: HubDeps): RateLimits {
  const { config, redis, logger } = deps;
  const prefix = `${config.redisPrefix}:ratelimit`;

  // Each Redis limiter answers within REDIS_DEADLINE_MS or its insurance (the process's memory) does.
  const withDeadline = (limiter: RateLimiterRedis) => new RLWrapperTimeouts({ limiter, timeoutMs: REDIS_DEADLINE_MS });
  const byRole = Object.fromEntries(
    ROLES.map((role) => {
      const limit = config.rateLimits[role];
      return [
        role,
        withDeadline(
          new RateLimiterRedis({
            storeClient: redis,
            keyPrefix: `${prefix}:client:${role}`,
            points: limit.points,
            duration: limit.durationSeconds,
            // Over budget: refused from memory for the rest of the window (the key's own expiry; a
            // fixed inMemoryBlockDuration would outlast the window, and stretch a partial lease past it).
            inMemoryBlockOnConsumed: limit.points + 1,
            insuranceLimiter: new RateLimiterMemory({ points: limit.points, duration: limit.durationSeconds }),
          }),
        ),
      ];
    }),
  ) as Record<Role, RLWrapperTimeouts>;

  const failures = config.failedAuthLimit;
  const failedAuth = withDeadline(
    new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: `${prefix}:failed-auth`,
      points: failures.points,
      duration: failures.durationSeconds,
      blockDuration: failures.durationSeconds,
      insuranceLimiter: new RateLimiterMemory({ points: failures.points, duration: failures.durationSeconds, blockDuration: failures.durationSeconds }),
    }),
  );
  /** Address → until when (ms) this process refuses it. */
  const blocked = new Map<string, number>();
  const block = (address: string, ms: number) => {
    const now = Date.now();
    if (blocked.size >= MAX_BLOCKED_ADDRESSES) for (const [a, until] of blocked) if (until <= now) blocked.delete(a);
    if (blocked.size < MAX_BLOCKED_ADDRESSES) blocked.set(address, now + ms);
  };

  const failedAuthentication: RequestHandler = (req: Request, res: Response, next: NextFunction) => {
    // req.ip is the TCP peer while the app does not trust a proxy (src/api/app.ts sets `trust proxy` off).
    const address = req.ip ?? req.socket.remoteAddress ?? 'unknown';
    const until = blocked.get(address);
    if (until !== undefined) {
      const left = until - Date.now();
      if (left > 0) return next(tooManyFailures(left, failures));
      blocked.delete(address);
    }
    res.on('finish', () => {
      if (res.statusCode !== 401) return;
      failedAuth.consume(address).then(
        // The last failure allowed: refused from the next request on.
        (counted) => {
          if (counted.remainingPoints <= 0) block(address, counted.msBeforeNext);
        },
        (rejection: unknown) => {
          if (rejection instanceof RateLimiterRes) {
            block(address, rejection.msBeforeNext);
            logger.warn({ address, failures: rejection.consumedPoints }, 'repeated failed authentication: address refused for a while');
          } else logger.warn({ err: (rejection as Error).message }, 'failed-authentication count not kept');
        },
      );
    });
    next();
  };

  /**
   * Client → the points this process holds of its budget and until when (the window's end, ms), when
   * it was last refused until, and the lease being taken now: requests that find the lease spent while
   * another is being taken wait for that one instead of each taking a lease of their own, and the next
   * lease is taken for all of them at once (at least `leaseSize` points, one per waiting request), so a
   * burst waits for one Redis answer, not one after another.
   */
  const leases = new Map<string, Lease>();
  /** Whether the request may go on: 'served', or the refusal's wait (ms); rejects when nothing could count. */
  const take = async (client: { id: string; role: Role }): Promise<'served' | number> => {
    const limit = config.rateLimits[client.role];
    const held = leases.get(client.id) ?? { left: 0, until: 0, refusedUntil: 0, taking: undefined, waiting: 0 };
    leases.set(client.id, held);
    held.waiting++;
    try {
      for (;;) {
        const now = Date.now();
        if (held.left > 0 && held.until > now) {
          held.left--;
          return 'served';
        }
        if (held.refusedUntil > now) return held.refusedUntil - now;
        if (!held.taking) held.taking = takeLease(client, held, Math.max(leaseSize(limit), held.waiting)).finally(() => (held.taking = undefined));
        await held.taking;
      }
    } finally {
      held.waiting--;
    }
  };
  /** Takes `points` of the client's budget from the shared count into its lease (or what is left of the budget). */
  const takeLease = (client: { id: string; role: Role }, lease: Lease, points: number): Promise<void> => {
    const limit = config.rateLimits[client.role];
    // The window's end as of the ask: a slow answer must not stretch the lease past it.
    const asked = Date.now();
    return byRole[client.role].consume(client.id, points).then(
      (granted) => {
        Object.assign(lease, { left: points, until: asked + granted.msBeforeNext });
      },
      (rejection: unknown) => {
        if (!(rejection instanceof RateLimiterRes)) throw rejection;
        // Counted and refused: the points the budget still had before this lease are this process's.
        // (A refusal from memory, for a client already over budget, counts nothing: consumedPoints 0.)
        const left = rejection.consumedPoints > limit.points ? limit.points - (rejection.consumedPoints - points) : 0;
        const until = asked + rejection.msBeforeNext;
        if (left > 0) Object.assign(lease, { left, until });
        else lease.refusedUntil = until;
      },
    );
  };
  const perClient: RequestHandler = (_req: Request, res: Response, next: NextFunction) => {
    const client = clientOf(res);
    take(client).then(
      (decision) => (decision === 'served' ? next() : next(rateLimited(decision, config.rateLimits[client.role]))),
      (err: unknown) => {
        // Neither Redis nor the fallback answered: serve rather than refuse.
        logger.warn({ err: (err as Error).message }, 'rate limit not checked');
        next();
      },
    );
  };

  return { failedAuthentication, perClient };
}

interface Lease {
  left: number;
  until: number;
  refusedUntil: number;
  taking: Promise<void> | undefined;
  /** Requests of the client in this process not yet served or refused. */
  waiting: number;
}

function rateLimited(msBeforeNext: number, limit: RateLimit): AppError {
  return new AppError(
    'rate_limited',
    `more than ${limit.points} requests in ${limit.durationSeconds} s from this client`,
    429,
    { limit: limit.points, windowSeconds: limit.durationSeconds },
    {
      retryAfterSeconds: Math.max(1, Math.ceil(msBeforeNext / 1000)),
    },
  );
}

function tooManyFailures(msBeforeNext: number, limit: RateLimit): AppError {
  return new AppError(
    'too_many_failed_authentications',
    `more than ${limit.points} failed authentications in ${limit.durationSeconds} s from this address`,
    429,
    { limit: limit.points, windowSeconds: limit.durationSeconds },
    { retryAfterSeconds: Math.max(1, Math.ceil(msBeforeNext / 1000)) },
  );
}
