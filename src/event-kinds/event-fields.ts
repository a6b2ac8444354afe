import { z } from 'zod';

/** Fields every partner event shares (SPEC §3, §4.1). */
export const eventIdSchema = z.string().min(1).max(128);

/** An ISO-8601 instant with a time zone (Z or an offset), as partners send it. */
export const isoInstant = z.iso.datetime({ offset: true });

export const MAX_FUTURE_SKEW_MS = 5 * 60_000;
export function notTooFarInFuture(iso: string): boolean {
  return Date.parse(iso) <= Date.now() + MAX_FUTURE_SKEW_MS;
}
