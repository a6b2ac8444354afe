import { sql, type SQL } from 'drizzle-orm';
import type { HubDeps } from '../deps.js';
import { boundedWindow, type ErrorsQuery, type Window } from './window.js';

export type ErrorRow = {
  integration: string;
  errorClass: string;
  count: number;
  lastAt: string;
  lastError: string | null;
};

/**
 * Failed partner calls per integration and error class, from the audit (partner_calls, one row per
 * attempt, so a call retried three times counts three), by the attempt's time in the window: count,
 * the latest attempt's time and its error text. Reads only the failed attempts of the window, through
 * the partial index partner_calls_errors_idx (created_at where error_class is not null).
 */
export function errorsStatement(w: Window): SQL {
  return sql`
    select c.integration, c.error_class as "errorClass", count(*)::int as count,
      to_char(max(c.created_at) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as "lastAt",
      (array_agg(c.error order by c.created_at desc, c.id desc))[1] as "lastError"
    from partner_calls c
    where c.error_class is not null
      and c.created_at >= ${w.from.toISOString()}::timestamptz and c.created_at < ${w.to.toISOString()}::timestamptz
    group by c.integration, c.error_class
    order by c.integration, c.error_class`;
}

export async function errorAnalytics(deps: HubDeps, q: ErrorsQuery): Promise<{ rows: ErrorRow[] }> {
  const rows = await deps.db.execute<ErrorRow>(errorsStatement(boundedWindow(q, deps.clock.now())));
  return { rows: rows.map((r) => ({ integration: r.integration, errorClass: r.errorClass, count: r.count, lastAt: r.lastAt, lastError: r.lastError })) };
}

export const ERRORS_CSV_COLUMNS = ['integration', 'errorClass', 'count', 'lastAt', 'lastError'] as const;
