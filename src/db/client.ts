import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import * as schema from './schema/index.js';

export type Database = PostgresJsDatabase<typeof schema>;
export interface DatabaseHandle {
  db: Database;
  sql: postgres.Sql;
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
      if (prop === 'begin' || prop === 'savepoint') {
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
 * Every execution of a prepared statement is planned for its own parameters. Left to choose, Postgres
 * settles on a generic plan after five runs and keeps it for the life of the connection; the hub's
 * statements first run while the event tables are nearly empty, where a sequential scan is the
 * cheapest generic plan, and that plan then reads the whole inbox on every ship event as it grows
 * (measured: 4,000 rows read per transaction a minute into a load test, growing without bound while
 * nothing ANALYZEs the table). Planning the hub's key lookups costs tens of microseconds.
 */
export const PLAN_CACHE_MODE = 'force_custom_plan';

export function connectDatabase(url: string, opts: { max?: number } = {}): DatabaseHandle {
  const sql = postgres(url, {
    max: opts.max ?? 10,
    onnotice: () => {},
    // Numerics (COD amounts) stay strings; money is never a float.
    types: { bigint: postgres.BigInt },
    connection: { plan_cache_mode: PLAN_CACHE_MODE },
  });
  const db = drizzle(withPreparedStatements(sql), { schema });
  let closing: Promise<void> | undefined;
  return {
    db,
    sql,
    close: () => (closing ??= sql.end({ timeout: 5 })),
  };
}
