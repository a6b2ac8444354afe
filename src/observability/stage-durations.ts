import { sql } from 'drizzle-orm';
import { Histogram, type Registry } from 'prom-client';
import type { HubDeps } from '../deps.js';

/** History rows read per statement, and statements per scrape (100,000 rows: over 6,000 changes/s at a 15 s scrape); more is caught up over later scrapes. */
const ROWS_PER_READ = 20_000;
const READS_PER_SCRAPE = 5;

/**
 * Time between an order's statuses (order flow and bottlenecks, story 3.8.3): for each history row
 * written since the scheduler started, its time minus the time of the order's previous row (each the
 * event's `occurredAt`, else the recorded time), by (from, to). The history table is read forward by its
 * primary key at scrape time, from where the last scrape stopped, and each previous row is reached by
 * its (order_id, seq) index, so a scrape costs the rows written since the last one (a row whose
 * transaction commits after a scrape has read past its id is not counted: ids are taken at insert).
 * Exported by the scheduler only (one reader of the history); with two schedulers both count, which
 * leaves the percentiles as they are.
 */
export function registerStageDurations(deps: HubDeps, registry: Registry): void {
  let after: number | undefined;
  let reading: Promise<void> | undefined;
  const read = async () => {
    if (after === undefined) {
      const [row] = await deps.db.execute<{ id: string | null }>(sql`select max(id)::text as id from status_history`);
      after = Number(row?.id ?? 0);
      return;
    }
    for (let i = 0; i < READS_PER_SCRAPE; i++) {
      const from: number = after;
      const rows = await deps.db.execute<{ id: string; from: number | null; to: number; seconds: number | null }>(sql`
        select h.id::text as id, h.from_status as from, h.to_status as to,
               extract(epoch from coalesce(h.occurred_at, h.recorded_at) - coalesce(p.occurred_at, p.recorded_at))::float8 as seconds
        from status_history h
        left join status_history p on p.order_id = h.order_id and p.seq = h.seq - 1
        where h.id > ${from}
        order by h.id
        limit ${ROWS_PER_READ}`);
      for (const r of rows) {
        after = Math.max(after, Number(r.id));
        if (r.from === null || r.seconds === null) continue; // registration: no stage before it
        histogram.observe({ from: String(r.from), to: String(r.to) }, Math.max(0, r.seconds));
      }
      if (rows.length < ROWS_PER_READ) return;
    }
  };
  const histogram = new Histogram({
    name: 'hub_status_stage_duration_seconds',
    help: 'Time an order spent between two statuses (previous history row to this one), by from and to status',
    labelNames: ['from', 'to'] as const,
    buckets: [0.1, 0.5, 1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 14_400, 43_200, 86_400, 172_800],
    registers: [registry],
    collect: async () => {
      try {
        reading ??= read().finally(() => {
          reading = undefined;
        });
        await reading;
      } catch (err) {
        deps.logger.warn({ err: (err as Error).message }, 'status stage durations not read; trying again at the next scrape');
      }
    },
  });
  // Start counting from the history as it is now, so a scrape soon after start-up already has stages.
  reading = read()
    .catch(() => undefined)
    .finally(() => (reading = undefined));
}
