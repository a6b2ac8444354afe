import { sql as drizzleSql, type SQL } from 'drizzle-orm';
import type postgres from 'postgres';
import { withDeadline } from '../deadlines.js';

/** A statement ready for the wire: hand-written SQL with its parameters ($1, $2, …). */
export interface RenderedStatement {
  sql: string;
  params: unknown[];
}

/** A statement interpolated into another, to be spliced in: never bound as a parameter value (parameters are scalars and arrays). */
function isStatement(value: unknown): value is RenderedStatement {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    typeof (value as RenderedStatement).sql === 'string' &&
    Array.isArray((value as RenderedStatement).params)
  );
}

/**
 * Hand-written SQL whose interpolated values are its parameters, numbered in order ($1, $2, …): the
 * text is the same on every call, so postgres.js prepares it once per connection, and nothing is built
 * per call but the parameter list (drizzle's query building cost the hot paths more than running the
 * statements). A statement interpolated into another is spliced in, its parameters renumbered after
 * those before it (a statement inside a CTE; any {sql, params} object is taken for one). Values go to
 * postgres.js as they are: cast them in the SQL (`${ids}::text[]`), and pass times and JSON as text.
 */
export function statement(strings: TemplateStringsArray, ...values: unknown[]): RenderedStatement {
  let text = strings[0]!;
  const params: unknown[] = [];
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (isStatement(value)) {
      const offset = params.length;
      text += value.sql.replace(/\$(\d+)/g, (_, n: string) => `$${Number(n) + offset}`);
      params.push(...value.params);
    } else {
      params.push(value);
      text += `$${params.length}`;
    }
    text += strings[i + 1]!;
  }
  return { sql: text, params };
}

/** SQL text the program wrote (a column list, a condition; never input), to splice into a statement. */
export function sqlText(text: string): RenderedStatement {
  return { sql: text, params: [] };
}

/** A statement as drizzle SQL, for the paths that run inside a drizzle transaction (operators' moves, registration). */
export function asDrizzle(s: RenderedStatement): SQL {
  const chunks: SQL[] = [];
  let last = 0;
  for (const m of s.sql.matchAll(/\$(\d+)/g)) {
    chunks.push(drizzleSql.raw(s.sql.slice(last, m.index)), drizzleSql`${drizzleSql.param(s.params[Number(m[1]) - 1])}`);
    last = m.index + m[0].length;
  }
  chunks.push(drizzleSql.raw(s.sql.slice(last)));
  return drizzleSql.join(chunks);
}

/**
 * Whether a failed statement means its connection is gone (closed, reset, or ended by the server, as
 * `pg_terminate_backend` does). Such a reserved connection must get nothing more: postgres.js has
 * already put it back among its closed connections, and a statement sent on it, or a `release()` that
 * hands it to the pool's next query, writes to a socket it has set to null, from a `setImmediate`, so
 * the TypeError cannot be caught and ends the process. Left alone, it is reconnected by the pool.
 */
export function connectionLost(err: unknown): boolean {
  // drizzle wraps the driver's error in its own (DrizzleQueryError), with the original as `cause`.
  for (let e = err, depth = 0; typeof e === 'object' && e !== null && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, severity } = e as { code?: unknown; severity?: unknown };
    if (severity === 'FATAL' || severity === 'PANIC') return true;
    if (typeof code === 'string' && (code.startsWith('CONNECTION_') || code === 'CONNECT_TIMEOUT' || CONNECTION_ERRNOS.has(code))) return true;
  }
  return false;
}
/**
 * Whether a failed statement means the rows it wanted were taken: changed by another transaction since
 * a repeatable-read snapshot (serialization_failure), or held by one when asked not to wait, or past
 * lock_timeout (lock_not_available). Nothing of the transaction was kept; it may be run again.
 */
export function rowsTaken(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === '40001' || code === '55P03';
}

const CONNECTION_ERRNOS = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED']);

export type StatementRunner = (statement: RenderedStatement) => Promise<postgres.RowList<postgres.Row[]>>;

/**
 * A transaction in two round trips, for the hot path where round trips are most of the cost:
 * BEGIN goes out with the locking reads, then the writes go out with COMMIT. `decide` runs between the
 * two with the rows locked (it may read more through `run`, at one round trip each). Any failure rolls
 * the whole transaction back; a failed write makes the pipelined COMMIT a rollback, so nothing of it
 * is kept either way. With `isolation: 'repeatable read'` every read sees one snapshot, and a write
 * (or lock) of a row another transaction changed since then fails with serialization_failure: the
 * reads need not lock, and the writes can take their locks only in the second round trip.
 */
export async function twoRoundTripTransaction<T>(
  pool: postgres.Sql,
  reads: RenderedStatement[],
  decide: (rows: Array<postgres.RowList<postgres.Row[]>>, run: StatementRunner) => Promise<{ writes: RenderedStatement[]; value: T }>,
  options: { isolation?: 'repeatable read' } = {},
): Promise<T> {
  const begin = options.isolation ? `begin isolation level ${options.isolation}` : 'begin';
  return onReservedConnection(pool, async (conn) => {
    const run: StatementRunner = (s) => conn.unsafe(s.sql, s.params as postgres.ParameterOrJSON<never>[], { prepare: true });
    const [, ...rows] = await Promise.all([conn.unsafe(begin), ...reads.map(run)]);
    const { writes, value } = await decide(rows, run);
    await Promise.all([...writes.map(run), conn.unsafe('commit')]);
    return value;
  });
}

/** How long a transaction waits for a connection of the pool at most before it fails (and its caller's fallback takes over). */
export const RESERVE_DEADLINE_MS = 3000;

/**
 * A connection reserved from the pool, or an error once `ms` have passed. postgres.js 3.4 can leave a
 * waiting `reserve()` unsettled for ever when the connection it waits for is terminated by the server
 * (porsager/postgres#1195): a transaction must not hang with it, holding up whatever waits for it. A
 * connection that comes after the deadline goes straight back to the pool.
 */
function reserveWithin(pool: postgres.Sql, ms: number): Promise<postgres.ReservedSql> {
  let late = false;
  const reserving = pool.reserve();
  reserving.then(
    (conn) => {
      if (late) conn.release();
    },
    () => {},
  );
  return withDeadline(reserving, ms, () => {
    late = true;
    return new Error(`no Postgres connection within ${ms} ms`);
  });
}

/**
 * Runs a transaction's `body` on a connection of its own, reserved from the pool: if it fails, the
 * transaction is rolled back (harmless if a pipelined COMMIT already ended it) and the connection goes
 * back to the pool — unless the connection itself was lost, which then gets nothing more, not even
 * back to the pool (see connectionLost).
 */
export async function onReservedConnection<T>(pool: postgres.Sql, body: (conn: postgres.ReservedSql) => Promise<T>): Promise<T> {
  const conn = await reserveWithin(pool, RESERVE_DEADLINE_MS);
  let lost = false;
  try {
    return await body(conn);
  } catch (err) {
    lost = connectionLost(err);
    if (!lost)
      await conn.unsafe('rollback').catch((e: unknown) => {
        lost = connectionLost(e);
      });
    throw err;
  } finally {
    if (!lost) conn.release();
  }
}
