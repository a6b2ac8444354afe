import type { Database } from './client.js';

/**
 * A drizzle query built once per database handle and prepared, for the reads of hot paths: drizzle
 * keeps its SQL and its mapping of fields, so a request only binds the values (`sql.placeholder`).
 * Building a query with drizzle's builders on every request cost more of the web's CPU than running it.
 */
export function preparedQuery<T>(build: (db: Database) => T): (db: Database) => T {
  const built = new WeakMap<Database, T>();
  return (db) => {
    let query = built.get(db);
    if (query === undefined) {
      query = build(db);
      built.set(db, query);
    }
    return query;
  };
}
