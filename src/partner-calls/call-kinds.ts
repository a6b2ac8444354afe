import type { PartnerCallJobDataOf, PartnerCallJobName } from '../queues/partner-calls.queue.js';
import type { CallKind, PerOrderCallKind } from './call-kind.js';
import { customerNotification } from './customer-notification.js';
import { incidentPage } from './incident-page.js';
import { maoOrderStatus } from './mao-order-status.js';
import { pmpAssignment } from './pmp-assignment.js';
import { slickCodCollected } from './slick-cod-collected.js';
import { slickShipConfirmation } from './slick-ship-confirmation.js';

/**
 * Every outbound call kind, by job name. A job name without a kind does not compile; the table test
 * (test/integration/partner-call-records.test.ts) checks each kind's parts. A new call is one file
 * in this folder, its job schema (partner-calls.queue.ts) and one line here; the statuses that make
 * calls owed are in status-reactions.ts.
 */
export const callKinds: { readonly [N in PartnerCallJobName]: CallKind<N> } = {
  'slick.ship-confirmation': slickShipConfirmation,
  'notify.customer': customerNotification,
  'incident.notify': incidentPage,
  'pmp.assignment': pmpAssignment,
  'mao.order-status': maoOrderStatus,
  'slick.cod-collected': slickCodCollected,
};

/** A kind as the engine handles it, whichever it is. */
export type AnyCallKind = CallKind<PartnerCallJobName>;
export type AnyPerOrderCallKind = PerOrderCallKind<PartnerCallJobName>;

export function isCallKindName(name: string): name is PartnerCallJobName {
  return Object.hasOwn(callKinds, name);
}

export function callKind(name: string): AnyCallKind | undefined {
  return isCallKindName(name) ? (callKinds[name] as AnyCallKind) : undefined;
}

/** The per-order kind whose final failure opens cases of `cause`, if any. */
export function callKindForCause(cause: string): AnyPerOrderCallKind | undefined {
  for (const kind of Object.values(callKinds) as AnyCallKind[]) {
    if (kind.perOrder && kind.intervention.cause === cause) return kind;
  }
  return undefined;
}

/** Which call of its kind a job's data names: the order and record key, or an unrecorded kind's own identity. */
export function callIdentity<N extends PartnerCallJobName>(kind: CallKind<N>, data: PartnerCallJobDataOf<N>): { subject: string; key: string } {
  if (!kind.perOrder) return kind.identity(data);
  const { orderId, key } = kind.record(data);
  return { subject: orderId, key };
}

/**
 * The `Idempotency-Key` of a call, `<kind>:<order>:<key>`: derived from what the call is, so every
 * attempt, retry, dead-letter retry and sweeper-made job of it sends the same one.
 */
export function callIdempotencyKey<N extends PartnerCallJobName>(kind: CallKind<N>, data: PartnerCallJobDataOf<N>): string {
  const { subject, key } = callIdentity(kind, data);
  const instance = kind.instance?.(data);
  return `${kind.name}:${subject}:${key}${instance ? `:${instance}` : ''}`;
}
