import type { Response } from 'express';
import { stringify } from 'csv-stringify/sync';

/**
 * Sends report rows as CSV (csv-stringify does the quoting): a header row of `columns`, then one row
 * per element; null and undefined become empty cells. Reports are small (a row per group, stage or
 * location × status), so they are written in one piece rather than streamed.
 */
export function sendCsv(res: Response, name: string, columns: readonly string[], rows: ReadonlyArray<Record<string, unknown>>): void {
  res.setHeader('content-type', 'text/csv; charset=utf-8');
  res.setHeader('content-disposition', `attachment; filename="${name}.csv"`);
  res.send(stringify(rows as Array<Record<string, unknown>>, { header: true, columns: [...columns] }));
}
