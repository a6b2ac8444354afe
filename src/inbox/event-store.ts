import { createHash } from 'node:crypto';
import { eq } from 'drizzle-orm';
import type postgres from 'postgres';
import type { Database } from '../db/client.js';
import type { RenderedStatement } from '../db/pipelined-transaction.js';
import { columnsOf, fromRow, selectList } from '../db/raw-rows.js';
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
  /** The event kind whose rules apply it (src/event-kinds). */
  kind: string;
  source: string;
  /** The partner's own event type. */
  type: string;
  orderId: string;
  actor: string;
  payload: Record<string, unknown>;
}

export type StoreResult = { duplicate: false; event: InboundEventRow } | { duplicate: true; event: InboundEventRow };

const INSERT_EVENTS = `
  insert into inbound_events (event_id, kind, source, type, order_id, actor, body_hash, payload, state, received_at)
  select e, k, s, t, o, a, h, p::jsonb, 'queued', clock_timestamp()
  from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[]) with ordinality as x(e, k, s, t, o, a, h, p, n)
  order by n
  on conflict (event_id) do nothing
  returning event_id, received_at`;

/** The INSERT of `inputs` (hashes[i] is inputs[i]'s body hash): returns the rows it stored, with their receipt times. */
export function insertEventsStatement(inputs: readonly NewInboundEvent[], hashes: readonly string[]): RenderedStatement {
  return {
    sql: INSERT_EVENTS,
    params: [
      inputs.map((i) => i.eventId),
      inputs.map((i) => i.kind),
      inputs.map((i) => i.source),
      inputs.map((i) => i.type),
      inputs.map((i) => i.orderId),
      inputs.map((i) => i.actor),
      hashes,
      inputs.map((i) => JSON.stringify(i.payload)),
    ],
  };
}

/** The stored rows of `eventIds`, without their payloads (a duplicate's is the one sent again: same hash). */
export function storedEventsStatement(eventIds: readonly string[]): RenderedStatement {
  return { sql: `select ${selectList('e', HEADER_COLUMNS)} from inbound_events e where e.event_id = any($1::text[])`, params: [eventIds] };
}

/**
 * Each input's store result, from the rows the INSERT stored (`inserted`) and the stored rows of the
 * others (`stored`, by storedEventsStatement): stored, or the stored row flagged duplicate (same
 * eventId and body, also when the same event is given twice here), or a ConflictError (same eventId,
 * other body).
 */
export function storeResults(
  inputs: readonly NewInboundEvent[],
  hashes: readonly string[],
  inserted: ReadonlyArray<Record<string, unknown>>,
  stored: ReadonlyArray<Record<string, unknown>>,
): Array<StoreResult | ConflictError> {
  const receivedAt = new Map(inserted.map((r) => [String(r.event_id), inboundEvents.receivedAt.mapFromDriverValue(r.received_at as string) as Date]));
  const existing = new Map(stored.map((r) => fromRow<Omit<InboundEventRow, 'payload'>>(r, 'e', HEADER_COLUMNS)).map((e) => [e.eventId, e]));
  const storedHere = new Map<string, InboundEventRow>();
  return inputs.map((input, i): StoreResult | ConflictError => {
    const at = receivedAt.get(input.eventId);
    if (at && !storedHere.has(input.eventId)) {
      const event: InboundEventRow = { ...input, bodyHash: hashes[i]!, state: 'queued', reason: null, orderStatus: null, receivedAt: at, processedAt: null };
      storedHere.set(input.eventId, event);
      return { duplicate: false, event };
    }
    const header = storedHere.get(input.eventId) ?? existing.get(input.eventId);
    if (!header) throw new Error(`event ${input.eventId} conflicted on insert but cannot be read`);
    if (header.bodyHash !== hashes[i] || header.source !== input.source || header.kind !== input.kind) {
      return new ConflictError(`eventId ${input.eventId} was already used with a different body`, { eventId: input.eventId });
    }
    return { duplicate: true, event: { ...header, payload: input.payload } };
  });
}

/**
 * Commits events to Postgres (the idempotency store and durable inbox) before anyone answers 2xx: all
 * of them in one statement, received in the order given. For each: see storeResults. Throws
 * UnavailableError if Postgres could not take them: none is stored.
 */
export async function storeInboundEvents(pg: postgres.Sql, inputs: readonly NewInboundEvent[]): Promise<Array<StoreResult | ConflictError>> {
  const hashes = inputs.map((i) => bodyHash(i.payload));
  const run = (s: RenderedStatement) => pg.unsafe(s.sql, s.params as never[], { prepare: true });
  try {
    const inserted = await run(insertEventsStatement(inputs, hashes));
    const insertedIds = new Set(inserted.map((r) => String(r.event_id)));
    const others = inputs.filter((i) => !insertedIds.has(i.eventId)).map((i) => i.eventId);
    const stored = others.length ? await run(storedEventsStatement(others)) : [];
    return storeResults(inputs, hashes, inserted, stored);
  } catch (err) {
    throw new UnavailableError('the event could not be stored; nothing was accepted, try again', { cause: err });
  }
}

/** An event's columns but its payload. */
const HEADER_COLUMNS = columnsOf(inboundEvents).filter(([key]) => key !== 'payload');

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
