import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { onReservedConnection } from './pipelined-transaction.js';
import * as schema from './schema/index.js';

/** The drizzle handle, with the postgres.js pool under it (`$client`: its `unsafe` prepares, see withPreparedStatements) for hand-written SQL on hot paths. */
export type Database = PostgresJsDatabase<typeof schema> & { $client: postgres.Sql };
export interface DatabaseHandle {
  db: Database;
  sql: postgres.Sql;
  /** Opens every connection of the pool now, so the first burst of work does not wait for (or storm) new ones. */
  openPool(): Promise<void>;
  close(): Promise<void>;
}

/**
 * drizzle runs its queries through postgres.js `unsafe()` unprepared, and for a statement with
 * parameters postgres.js then asks Postgres for the parameter types first: two round trips per
 * statement, every time. Asking for prepared statements makes that one round trip once a connection
 * has seen the statement. The hub's statements have a small fixed set of shapes, so the per-connection
 * statement cache stays small.
 */
function withPreparedStatements(sql: postgres.Sql): postgres.Sql {
  type Callback = (tx: postgres.Sql) => unknown;
  return new Proxy(sql, {
    get(target, prop, receiver) {
      if (prop === 'unsafe') {
        return (query: string, params?: unknown[], options: Record<string, unknown> = {}) =>
          target.unsafe(query, params as postgres.ParameterOrJSON<never>[], { ...options, prepare: true });
      }
      if (prop === 'begin') {
        return (...args: unknown[]) => transactionPipelined(target, args.length > 1 ? String(args[0]) : '', args.at(-1) as Callback);
      }
      if (prop === 'savepoint') {
        return (...args: unknown[]) => {
          const callback = args.at(-1) as Callback;
          const wrapped = (tx: postgres.Sql) => callback(withPreparedStatements(tx));
          const original = (target as unknown as Record<string, (...a: unknown[]) => unknown>)[prop]!;
          return original.apply(target, [...args.slice(0, -1), wrapped]);
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/**
 * A transaction whose BEGIN goes out with its first statement: postgres.js's `begin` waits for BEGIN's
 * answer before it runs the callback, one round trip more per transaction. Here BEGIN is sent on a
 * reserved connection and not awaited, so the callback's first statement follows it down the same
 * connection at once; Postgres runs them in order. A transaction Postgres aborted (a failed statement
 * the callback caught and went on from) answers COMMIT with ROLLBACK: that is an error here too, never
 * a silent success.
 */
async function transactionPipelined(pool: postgres.Sql, options: string, callback: (tx: postgres.Sql) => unknown): Promise<unknown> {
  return onReservedConnection(pool, async (conn) => {
    const begun = conn.unsafe(`begin ${options.replace(/[^a-z ]/gi, '')}`);
    begun.catch(() => {}); // awaited below; a failed BEGIN also fails the statements after it
    const result = await callback(withPreparedStatements(conn));
    await begun;
    const committed = await conn.unsafe('commit');
    if (committed.command !== 'COMMIT') throw new Error(`transaction was rolled back by Postgres (${committed.command}): a statement in it failed`);
    return result;
  });
}

/**
 * Session settings of every hub connection.
 *
 * `enable_seqscan = off`: the hub's statements are prepared once per connection, and after five runs
 * Postgres plans each one generically and keeps that plan for the life of the connection. The hub's
 * statements first run while its tables are nearly empty, where a sequential scan is the cheapest
 * plan, so without this the lookups of one ship event by key kept reading the whole inbox as it grew
 * (measured: about 4,000 rows read per worker transaction a minute into a load test, growing without
 * bound where nothing ANALYZEs the table). That is only half of it: a full scan of an index is as bad,
 * so the hot statements also give every table they read an index condition from their parameters
 * (see lockInboxesStatement); test/integration/query-plans.test.ts checks both. A table without a
 * usable index is still scanned. (`plan_cache_mode = force_custom_plan` would plan every run for its
 * parameters instead, but planning the inbox lock cost about 0.3 ms of Postgres CPU each time, and
 * without statistics its estimates of queued events are guesses anyway.)
 */
export const SESSION_SETTINGS = { enable_seqscan: 'off', jit: 'off' } as const;
// `jit = off`: with sequential scans priced out, the catalogue query postgres.js runs on every new
// connection (the array type lookup) is estimated so expensive that Postgres compiles it with JIT:
// measured 185 ms instead of 0.4 ms, and under load dozens of new connections at once spent seconds
// of Postgres CPU on it. The hub's statements are short keyed lookups that JIT never pays off for.

export function connectDatabase(url: string, opts: { max?: number } = {}): DatabaseHandle {
  const max = opts.max ?? 10;
  const sql = postgres(url, {
    max,
    onnotice: () => {},
    // Numerics (COD amounts) stay strings; money is never a float.
    types: { bigint: postgres.BigInt },
    connection: SESSION_SETTINGS,
  });
  const db = drizzle(withPreparedStatements(sql), { schema });
  let closing: Promise<void> | undefined;
  return {
    db,
    sql,
    openPool: async () => {
      const reserved = await Promise.all(Array.from({ length: max }, () => sql.reserve()));
      for (const connection of reserved) connection.release();
    },
    close: () => (closing ??= sql.end({ timeout: 5 })),
  };
}
