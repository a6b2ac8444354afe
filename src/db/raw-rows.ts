import { getTableColumns, type Table } from 'drizzle-orm';

/**
 * Hand-written SQL on the hot paths reads whole rows of drizzle tables: a column list under the
 * drizzle names (prefixed with `alias.`), and the rows mapped back as drizzle would map them (the
 * drizzle driver leaves timestamps to the column, so they arrive as text).
 */
export type TableColumns = Array<[string, ReturnType<typeof getTableColumns>[string]]>;

export function columnsOf(table: Table): TableColumns {
  return Object.entries(getTableColumns(table));
}

export function selectList(alias: string, columns: TableColumns): string {
  return columns.map(([key, column]) => `${alias}."${column.name}" as "${alias}.${key}"`).join(', ');
}

/** Each column's key under an alias (`alias.key`), worked out once per column list and alias. */
const aliased = new WeakMap<TableColumns, Map<string, string[]>>();
function aliasedKeys(alias: string, columns: TableColumns): string[] {
  let byAlias = aliased.get(columns);
  if (!byAlias) {
    byAlias = new Map();
    aliased.set(columns, byAlias);
  }
  let keys = byAlias.get(alias);
  if (!keys) {
    keys = columns.map(([key]) => `${alias}.${key}`);
    byAlias.set(alias, keys);
  }
  return keys;
}

export function fromRow<T>(row: Record<string, unknown>, alias: string, columns: TableColumns): T {
  // A plain loop: this runs for every row of the hot paths' reads, where each allocation counts.
  const keys = aliasedKeys(alias, columns);
  const out: Record<string, unknown> = {};
  for (let i = 0; i < columns.length; i++) {
    const [key, column] = columns[i]!;
    const value = row[keys[i]!];
    out[key] = value === null || value === undefined ? null : column.mapFromDriverValue(value);
  }
  return out as T;
}
