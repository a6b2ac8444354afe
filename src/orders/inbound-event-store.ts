import { createHash } from 'node:crypto';
import { eq, sql } from 'drizzle-orm';
import type { Database } from '../db/client.js';
import { inboundEvents } from '../db/schema/index.js';
import type { InboundEventRow } from '../db/types.js';
import { ConflictError, UnavailableError } from '../errors.js';

/** JSON with object keys sorted, so the same body sent with another key order hashes the same. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function bodyHash(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}

export interface NewInboundEvent {
  eventId: string;
  source: string;
  type: string;
  orderId: string;
  actor: string;
  payload: Record<string, unknown>;
}

export type StoreResult = { duplicate: false; event: InboundEventRow } | { duplicate: true; event: InboundEventRow };

/**
 * Commits the event to Postgres (the idempotency store and durable inbox) before anyone answers 2xx.
 * Same eventId and body: the stored row, flagged duplicate. Same eventId, other body: 409.
 */
export async function storeInboundEvent(db: Database, input: NewInboundEvent): Promise<StoreResult> {
  const hash = bodyHash(input.payload);
  try {
    const [inserted] = await db
      .insert(inboundEvents)
      .values({ ...input, bodyHash: hash, state: 'queued', receivedAt: sql`clock_timestamp()` })
      .onConflictDoNothing({ target: inboundEvents.eventId })
      .returning();
    if (inserted) return { duplicate: false, event: inserted };
    const [existing] = await db.select().from(inboundEvents).where(eq(inboundEvents.eventId, input.eventId));
    if (!existing) throw new Error(`event ${input.eventId} conflicted on insert but cannot be read`);
    if (existing.bodyHash !== hash || existing.source !== input.source) {
      throw new ConflictError(`eventId ${input.eventId} was already used with a different body`, { eventId: input.eventId });
    }
    return { duplicate: true, event: existing };
  } catch (err) {
    if (err instanceof ConflictError) throw err;
    throw new UnavailableError('the event could not be stored; nothing was accepted, try again', { cause: err });
  }
}

export async function findInboundEvent(db: Database, eventId: string): Promise<InboundEventRow | undefined> {
  const [row] = await db.select().from(inboundEvents).where(eq(inboundEvents.eventId, eventId));
  return row;
}

/** The outcome a partner reads back (SPEC §3). */
export function eventOutcomeView(e: InboundEventRow) {
  return {
    eventId: e.eventId,
    orderId: e.orderId,
    source: e.source,
    type: e.type,
    state: e.state,
    reason: e.reason,
    orderStatus: e.orderStatus,
    receivedAt: e.receivedAt.toISOString(),
    processedAt: e.processedAt ? e.processedAt.toISOString() : null,
  };
}
