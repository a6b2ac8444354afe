import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { drizzle } from 'drizzle-orm/postgres-js';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { MIGRATIONS_FOLDER } from '../../src/db/migrate.js';
import { adminDatabaseUrl, databaseUrlFor, dropDatabase } from '../helpers/test-database.js';

/**
 * A database that ran the hub before event kinds and call records (migrations up to 0002), with the
 * rows such a hub leaves, upgraded by the real migrator: every stored event keeps its place in the
 * inbox with its kind and partner type, and every Slick confirmation and customer notification becomes
 * a call record in the state it was in.
 */
const name = `hub_test_${inject('runId')}_upgrade_${process.pid}`;
let sql: postgres.Sql;
let oldFolder: string;

function migrationsUpTo(lastTag: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'hub-migrations-'));
  cpSync(MIGRATIONS_FOLDER, dir, { recursive: true });
  const journal = JSON.parse(readFileSync(join(dir, 'meta/_journal.json'), 'utf8')) as { entries: Array<{ tag: string }> };
  const keep = journal.entries.findIndex((e) => e.tag === lastTag);
  journal.entries = journal.entries.slice(0, keep + 1);
  writeFileSync(join(dir, 'meta/_journal.json'), JSON.stringify(journal));
  return dir;
}

async function migrateWith(folder: string) {
  const conn = postgres(databaseUrlFor(name), { max: 1, onnotice: () => {} });
  try {
    await migrate(drizzle(conn), { migrationsFolder: folder });
  } finally {
    await conn.end();
  }
}

beforeAll(async () => {
  const admin = postgres(adminDatabaseUrl(), { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  await admin.end();
  oldFolder = migrationsUpTo('0002_queued_events_by_order');
  await migrateWith(oldFolder);
  sql = postgres(databaseUrlFor(name), { max: 1, onnotice: () => {} });
});
afterAll(async () => {
  await sql?.end();
  rmSync(oldFolder, { recursive: true, force: true });
  await dropDatabase(name);
});

describe('upgrading a database with rows', () => {
  it('backfills event kinds and partner types, and turns confirmations and notifications into call records', async () => {
    await sql`insert into locations (location_id, name, region) values ('STORE-007', 'Store 7', 'BKK')`;
    const order = (id: string, status: number, confirmation: string | null) =>
      sql`insert into orders (order_id, ship_from_location_id, customer, payment_method, status, registration_hash, slick_confirmation)
          values (${id}, 'STORE-007', ${sql.json({ id: 'C' })}, 'PREPAID', ${status}, 'h', ${confirmation})`;
    await order('O-PENDING', 3700, 'pending');
    await order('O-CONFIRMED', 7000, 'confirmed');
    await order('O-FAILED', 3700, 'failed');
    await order('O-LOST', 3700, 'pending'); // its shipped event is not applied: nothing to confirm from
    const event = (id: string, orderId: string, eventType: string, state: string) =>
      sql`insert into inbound_events (event_id, source, type, order_id, actor, body_hash, payload, state, processed_at)
          values (${id}, 'slick', 'ship-event', ${orderId}, 'slick', 'h', ${sql.json({ eventId: id, orderId, eventType })}, ${state}, ${state === 'queued' ? null : new Date()})`;
    await event('E-1', 'O-PENDING', 'shipped', 'applied');
    await event('E-2', 'O-CONFIRMED', 'shipped', 'applied');
    await event('E-3', 'O-FAILED', 'shipped', 'applied');
    await event('E-4', 'O-PENDING', 'packing', 'queued');
    await sql`insert into notifications (order_id, status, template, state, claimed_at, sent_at) values
      ('O-CONFIRMED', 7000, 'order_shipped', 'sent', now() - interval '2 hours', now() - interval '2 hours'),
      ('O-PENDING', 7000, 'order_shipped', 'claimed', now() - interval '1 minute', null),
      ('O-FAILED', 7000, 'order_shipped', 'claimed', now() - interval '3 hours', null)`;

    await migrateWith(MIGRATIONS_FOLDER);

    const events = await sql<Array<{ event_id: string; kind: string; type: string; state: string }>>`
      select event_id, kind, type, state from inbound_events order by event_id`;
    expect(events.map((e) => [e.event_id, e.kind, e.type, e.state])).toEqual([
      ['E-1', 'ship-event', 'shipped', 'applied'],
      ['E-2', 'ship-event', 'shipped', 'applied'],
      ['E-3', 'ship-event', 'shipped', 'applied'],
      ['E-4', 'ship-event', 'packing', 'queued'],
    ]);
    const calls = await sql<Array<{ order_id: string; kind: string; key: string; state: string; data: Record<string, unknown>; last_error: string | null }>>`
      select order_id, kind, key, state, data, last_error from order_calls order by kind, order_id`;
    expect(calls.map((c) => [c.kind, c.order_id, c.key, c.state, c.data, c.last_error !== null])).toEqual([
      ['notify.customer', 'O-CONFIRMED', '7000', 'confirmed', { orderId: 'O-CONFIRMED', status: 7000 }, false],
      ['notify.customer', 'O-FAILED', '7000', 'failed', { orderId: 'O-FAILED', status: 7000 }, true],
      ['notify.customer', 'O-PENDING', '7000', 'pending', { orderId: 'O-PENDING', status: 7000 }, false],
      ['slick.ship-confirmation', 'O-CONFIRMED', '', 'confirmed', { orderId: 'O-CONFIRMED', shipEventId: 'E-2' }, false],
      ['slick.ship-confirmation', 'O-FAILED', '', 'failed', { orderId: 'O-FAILED', shipEventId: 'E-3' }, false],
      ['slick.ship-confirmation', 'O-LOST', '', 'failed', { orderId: 'O-LOST', shipEventId: '' }, true],
      ['slick.ship-confirmation', 'O-PENDING', '', 'pending', { orderId: 'O-PENDING', shipEventId: 'E-1' }, false],
    ]);
    const columns = await sql<Array<{ column_name: string }>>`select column_name from information_schema.columns where table_name = 'orders'`;
    expect(columns.map((c) => c.column_name)).not.toContain('slick_confirmation');
    expect(columns.map((c) => c.column_name)).toEqual(expect.arrayContaining(['delivery_attempts', 'delivery']));
  });
});
