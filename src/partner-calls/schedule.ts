import type { Queue } from 'bullmq';
import { asDrizzle, statement, type RenderedStatement } from '../db/pipelined-transaction.js';
import type { Tx } from '../db/types.js';
import type { HubDeps } from '../deps.js';
import { ensureJob } from '../queues/ensure-job.js';
import { partnerCallJobId, partnerCallJobOptions, type PartnerCallJobName } from '../queues/partner-calls.queue.js';
import type { PartnerCallJobDataOf } from '../queues/partner-calls.queue.js';
import type { OrderCallRequest } from './call-kind.js';
import { callIdentity, callKinds } from './call-kinds.js';

/**
 * The statement that records `calls` as owed (pending), in the transaction that decided them, so a
 * call exists if and only if its cause committed. A call already pending or confirmed is left as it
 * is (at most once); a failed one is owed again. The same call twice in `calls` counts once (the last
 * one's data): one insert may not touch a row twice.
 */
export function pendingCallsStatement(calls: readonly OrderCallRequest[]): RenderedStatement {
  const distinct = [...new Map(calls.map((c) => [`${c.orderId}\u0000${c.kind}\u0000${c.key}`, c])).values()];
  const col = <T>(f: (c: OrderCallRequest) => T) => distinct.map(f);
  return statement`insert into order_calls (order_id, kind, key, state, attempts, data, created_at, updated_at)
    select c.order_id, c.kind, c.key, 'pending', 0, c.data::jsonb, clock_timestamp(), clock_timestamp()
    from unnest(${col((c) => c.orderId)}::text[], ${col((c) => c.kind)}::text[], ${col((c) => c.key)}::text[],
                ${col((c) => JSON.stringify(c.data))}::text[]) as c(order_id, kind, key, data)
    on conflict (order_id, kind, key) do update
      set state = 'pending', attempts = 0, last_error = null, data = excluded.data, updated_at = excluded.updated_at
      where order_calls.state = 'failed'`;
}

/**
 * Records `calls` as owed in `tx` (see pendingCallsStatement) and returns those this made owed —
 * new, or failed before — leaving out the ones already pending or confirmed, whose job (if any) is
 * already under way or done. Schedule the returned ones after commit with `enqueuePartnerCalls`.
 */
export async function recordOwedCalls(tx: Tx, calls: readonly OrderCallRequest[]): Promise<OrderCallRequest[]> {
  if (calls.length === 0) return [];
  // `xmax = 0`: the row was inserted by this statement, not updated from failed.
  const rows = await tx.execute<{ order_id: string; kind: PartnerCallJobName; key: string; data: Record<string, unknown>; inserted: boolean }>(
    asDrizzle(statement`${pendingCallsStatement(calls)} returning order_id, kind, key, data, (xmax = 0) as inserted`),
  );
  return rows.map((r) => ({ orderId: r.order_id, kind: r.kind, key: r.key, data: r.data, firstOwed: r.inserted }));
}

/** The job of a call: its id is derived from the call, so scheduling it twice keeps one job. */
export function orderCallJobId(call: Pick<OrderCallRequest, 'kind' | 'orderId' | 'key'>): string {
  // A kind with one call per order has the key '': leaving it out keeps the job id such a call had
  // before calls were recorded, so a job queued then is found, not doubled.
  return call.key === '' ? partnerCallJobId(call.kind, call.orderId) : partnerCallJobId(call.kind, call.orderId, call.key);
}

/**
 * Makes sure one committed call has its job (see ensureJob: a dead-lettered one is retried, not
 * shadowed). Returns whether a job was (re)scheduled.
 */
export function ensureOrderCallJob(deps: HubDeps, call: OrderCallRequest): Promise<boolean> {
  const jobId = orderCallJobId(call);
  return ensureJob(
    deps.queues.partnerCalls as unknown as Queue,
    jobId,
    () =>
      deps.queues.partnerCalls.add(call.kind, call.data as never, {
        ...partnerCallJobOptions(deps.config.integrations[callKinds[call.kind].integration]),
        jobId,
      }),
    call.data,
  );
}

/**
 * Makes sure each committed call has its job. If Redis cannot take them now, the calls stay pending
 * in Postgres and the sweeper schedules them later.
 */
export async function enqueuePartnerCalls(deps: HubDeps, calls: readonly OrderCallRequest[]): Promise<void> {
  // Calls owed for the first time have no job yet: all of them are added by one round trip (a job id
  // already taken, by a relay that published the same row before a crash, is left as it is). Calls
  // owed again (failed before) may have a dead-lettered job, which ensureJob retries.
  const first = calls.filter((c) => c.firstOwed);
  await Promise.all([
    first.length === 0
      ? undefined
      : deps.queues.partnerCalls.addBulk(
          first.map((call) => ({
            name: call.kind,
            data: call.data as never,
            opts: { ...partnerCallJobOptions(deps.config.integrations[callKinds[call.kind].integration]), jobId: orderCallJobId(call) },
          })),
        ),
    ...calls.filter((c) => !c.firstOwed).map((call) => ensureOrderCallJob(deps, call)),
  ]);
}

/** The job id of any call, from what the call is: its order and key, or an unrecorded kind's identity. */
export function callJobId<N extends PartnerCallJobName>(name: N, data: PartnerCallJobDataOf<N>): string {
  const { subject, key } = callIdentity(callKinds[name], data);
  return key === '' ? partnerCallJobId(name, subject) : partnerCallJobId(name, subject, key);
}

/**
 * Schedules a call of a kind that has no per-order record (an incident page): one job per call, with
 * its integration's retries. Recorded kinds go through `pendingCallsStatement` / `recordOwedCalls`
 * and `enqueuePartnerCalls` instead, so Postgres knows they are owed.
 */
export async function scheduleUnrecordedCall<N extends PartnerCallJobName>(deps: HubDeps, name: N, data: PartnerCallJobDataOf<N>): Promise<void> {
  const kind = callKinds[name];
  if (kind.perOrder) throw new Error(`${name} is recorded per order; schedule it with its record`);
  await deps.queues.partnerCalls.add(name, data as never, {
    ...partnerCallJobOptions(deps.config.integrations[kind.integration]),
    jobId: callJobId(name, data),
  });
}
