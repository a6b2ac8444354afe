import type postgres from 'postgres';

/** A statement ready for the wire: drizzle's `toSQL()` output, or hand-written SQL. */
export interface RenderedStatement {
  sql: string;
  params: unknown[];
}

export type StatementRunner = (statement: RenderedStatement) => Promise<postgres.RowList<postgres.Row[]>>;

/**
 * A transaction in two round trips, for the hot path where round trips are most of the cost:
 * BEGIN goes out with the locking reads, then the writes go out with COMMIT. `decide` runs between the
 * two with the rows locked (it may read more through `run`, at one round trip each). Any failure rolls
 * the whole transaction back; a failed write makes the pipelined COMMIT a rollback, so nothing of it
 * is kept either way.
 */
export async function twoRoundTripTransaction<T>(
  pool: postgres.Sql,
  reads: RenderedStatement[],
  decide: (rows: Array<postgres.RowList<postgres.Row[]>>, run: StatementRunner) => Promise<{ writes: RenderedStatement[]; value: T }>,
): Promise<T> {
  const conn = await pool.reserve();
  const run: StatementRunner = (s) => conn.unsafe(s.sql, s.params as postgres.ParameterOrJSON<never>[], { prepare: true });
  try {
    const [, ...rows] = await Promise.all([conn.unsafe('begin'), ...reads.map(run)]);
    const { writes, value } = await decide(rows, run);
    await Promise.all([...writes.map(run), conn.unsafe('commit')]);
    return value;
  } catch (err) {
    // Harmless if the pipelined COMMIT already ended the transaction.
    await conn.unsafe('rollback').catch(() => {});
    throw err;
  } finally {
    conn.release();
  }
}
