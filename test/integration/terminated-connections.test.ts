import { sql as dsql } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, expect, it } from 'vitest';
import { connectDatabase } from '../../src/db/client.js';
import { twoRoundTripTransaction } from '../../src/db/pipelined-transaction.js';
import { adminDatabaseUrl } from '../helpers/test-database.js';

/**
 * A transaction whose connection Postgres terminates (pg_terminate_backend, as an operator or a
 * failover does) fails, and the pool goes on: the lost connection is neither rolled back on nor handed
 * back to the pool, where postgres.js would write to its null socket from a setImmediate and end the
 * process with an uncatchable TypeError (this file would then die instead of failing).
 */

const admin = postgres(adminDatabaseUrl(), { max: 1, onnotice: () => {} });
afterAll(() => admin.end());

async function terminateWhere(marker: string): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const [r] = await admin<{ n: number }[]>`
      select count(pg_terminate_backend(pid))::int as n from pg_stat_activity
       where state = 'active' and query like ${`%${marker}%`} and pid <> pg_backend_pid()`;
    if (r!.n > 0) return r!.n;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no backend running ${marker}`);
}

it('a pipelined transaction whose connection is terminated fails, and the pool serves the next queries', async () => {
  const handle = connectDatabase(adminDatabaseUrl(), { max: 2 });
  try {
    await handle.openPool();
    const marker = `terminated_tx_${Date.now()}`;
    const tx = handle.db.transaction(async (t) => t.execute(dsql.raw(`select pg_sleep(5) as ${marker}`)));
    // drizzle wraps the driver's error; its cause names the lost connection.
    const outcome = tx.then(
      () => 'committed',
      (e: { code?: string; cause?: { code?: string } }) => e.cause?.code ?? e.code ?? 'failed',
    );
    expect(await terminateWhere(marker)).toBe(1);
    expect(await outcome).toMatch(/^CONNECTION_|^57P01$/);
    for (let i = 0; i < 6; i++) expect(await handle.sql`select 1 as x`).toEqual([{ x: 1 }]);
    expect(await handle.db.transaction(async (t) => t.execute(dsql`select 2 as y`))).toEqual([{ y: 2 }]);
  } finally {
    await handle.close();
  }
});

it('a two-round-trip transaction whose connection is terminated fails, and the pool serves the next queries', async () => {
  const handle = connectDatabase(adminDatabaseUrl(), { max: 2 });
  try {
    await handle.openPool();
    const marker = `terminated_2rt_${Date.now()}`;
    const tx = twoRoundTripTransaction(handle.sql, [{ sql: `select pg_sleep(5) as ${marker}`, params: [] }], async () => ({ writes: [], value: 'done' }));
    const outcome = tx.then(
      () => 'committed',
      (e: { code?: string }) => e.code ?? 'failed',
    );
    expect(await terminateWhere(marker)).toBe(1);
    expect(await outcome).toMatch(/^CONNECTION_|^57P01$/);
    for (let i = 0; i < 6; i++) expect(await handle.sql`select 1 as x`).toEqual([{ x: 1 }]);
  } finally {
    await handle.close();
  }
});
