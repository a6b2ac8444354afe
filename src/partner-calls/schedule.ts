import type { Queue } from 'bullmq';
import { sql, type SQL } from 'drizzle-orm';
import type { HubDeps } from '../deps.js';
import { ensureJob } from '../queues/ensure-job.js';
import { partnerCallJobId, partnerCallJobOptions, type PartnerCallJobName } from '../queues/partner-calls.queue.js';
import { partnerCallIntegration } from '../queues/partner-calls.queue.js';

/**
 * A call the hub owes a partner about an order: its kind (a partner-call job name), the key that tells
 * apart several calls of one kind for one order ('' when there is one), and the job's payload.
 */
export interface OrderCallRequest {
  kind: PartnerCallJobName;
  orderId: string;
  key: string;
  data: Record<string, unknown>;
}

/**
 * The statement that records `calls` as owed (pending), in the transaction that decided them, so a
 * call exists if and only if its cause committed. A call already pending or confirmed is left as it
 * is (at most once); a failed one is owed again.
 */
export function pendingCallsStatement(calls: readonly OrderCallRequest[]): SQL {
  const col = <T>(f: (c: OrderCallRequest) => T) => sql.param(calls.map(f));
  return sql`insert into order_calls (order_id, kind, key, state, attempts, data, created_at, updated_at)
    select c.order_id, c.kind, c.key, 'pending', 0, c.data::jsonb, clock_timestamp(), clock_timestamp()
    from unnest(${col((c) => c.orderId)}::text[], ${col((c) => c.kind)}::text[], ${col((c) => c.key)}::text[],
                ${col((c) => JSON.stringify(c.data))}::text[]) as c(order_id, kind, key, data)
    on conflict (order_id, kind, key) do update
      set state = 'pending', attempts = 0, last_error = null, data = excluded.data, updated_at = excluded.updated_at
      where order_calls.state = 'failed'`;
}

/** The job of a call: its id is derived from the call, so scheduling it twice keeps one job. */
export function orderCallJobId(call: Pick<OrderCallRequest, 'kind' | 'orderId' | 'key'>): string {
  return partnerCallJobId(call.kind, call.orderId, call.key);
}

/**
 * Makes sure each committed call has its job (a dead-lettered one is retried, not shadowed). If Redis
 * cannot take them now, the calls stay pending in Postgres and the sweeper schedules them later.
 */
export async function enqueuePartnerCalls(deps: HubDeps, calls: readonly OrderCallRequest[]): Promise<void> {
  await Promise.all(
    calls.map((call) => {
      const jobId = orderCallJobId(call);
      return ensureJob(deps.queues.partnerCalls as unknown as Queue, jobId, () =>
        deps.queues.partnerCalls.add(call.kind, call.data as never, {
          ...partnerCallJobOptions(deps.config.integrations[partnerCallIntegration[call.kind]]),
          jobId,
        }),
      );
    }),
  );
}
