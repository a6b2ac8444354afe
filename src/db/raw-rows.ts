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

export function fromRow<T>(row: Record<string, unknown>, alias: string, columns: TableColumns): T {
  return Object.fromEntries(
    columns.map(([key, column]) => {
      const value = row[`${alias}.${key}`];
      return [key, value === null || value === undefined ? null : column.mapFromDriverValue(value)];
    }),
  ) as T;
}
