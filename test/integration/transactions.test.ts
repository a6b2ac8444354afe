import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { connectDatabase, type DatabaseHandle } from '../../src/db/client.js';
import { createDatabaseFromTemplate, dropDatabase } from '../helpers/test-database.js';

/** The hub's transactions (BEGIN sent with the first statement) keep every guarantee of a transaction. */
const name = `hub_tx_${process.pid}_${Date.now()}`;
let handle: DatabaseHandle;
beforeAll(async () => {
  handle = connectDatabase(await createDatabaseFromTemplate(name, inject('templateDatabase')), { max: 4 });
  await handle.sql`create table tx_probe (id int primary key)`;
});
afterAll(async () => {
  await handle?.close();
  await dropDatabase(name);
});

const count = async () => Number((await handle.sql`select count(*)::int as n from tx_probe`)[0]!.n);

describe('transactions', () => {
  it('commit what the callback wrote, and run on one connection (the callback sees its own writes)', async () => {
    const seen = await handle.db.transaction(async (tx) => {
      await tx.execute(sql`insert into tx_probe values (1)`);
      const [row] = await tx.execute<{ n: number }>(sql`select count(*)::int as n from tx_probe`);
      return row!.n;
    });
    expect(seen).toBe(1);
    expect(await count()).toBe(1);
  });

  it('roll back everything when the callback throws', async () => {
    await expect(
      handle.db.transaction(async (tx) => {
        await tx.execute(sql`insert into tx_probe values (2)`);
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    expect(await count()).toBe(1);
  });

  it('fail, not succeed silently, when a statement failed and the callback went on (Postgres answers COMMIT with ROLLBACK)', async () => {
    await expect(
      handle.db.transaction(async (tx) => {
        await tx.execute(sql`insert into tx_probe values (3)`);
        await tx.execute(sql`insert into tx_probe values (1)`).catch(() => {}); // duplicate key, swallowed
        return 'done';
      }),
    ).rejects.toThrow(/rolled back/);
    expect(await count()).toBe(1);
  });

  it('hold row locks until commit', async () => {
    let releaseFirst!: () => void;
    const firstHolds = new Promise<void>((r) => (releaseFirst = r));
    let lockTaken!: () => void;
    const locked = new Promise<void>((r) => (lockTaken = r));
    const order: string[] = [];
    const first = handle.db.transaction(async (tx) => {
      await tx.execute(sql`select * from tx_probe where id = 1 for update`);
      lockTaken();
      await firstHolds;
      order.push('first commits');
    });
    await locked;
    const second = handle.db.transaction(async (tx) => {
      await tx.execute(sql`select * from tx_probe where id = 1 for update`);
      order.push('second locked');
    });
    // The second waits on the lock while the first holds it, whenever the first lets go.
    setImmediate(releaseFirst);
    await Promise.all([first, second]);
    expect(order).toEqual(['first commits', 'second locked']);
  });
});
