/**
 * The life of one order as the partners really send it, shared by the partner benchmark
 * (bench/partner-traffic.ts) and the chaos run (scripts/chaos.ts). Every step is sent on the answer to
 * the one before:
 *
 *   MAO registers it (cash on delivery for every other order) → Slick sends picking, picked, packing,
 *   packed, shipped → the hub confirms the shipment to Slick (7000) and asks PMP for a delivery partner
 *   → on that request Grab starts: SHIPPED, IN_TRANSIT, OUT_FOR_DELIVERY → PMP: delivery.delivered
 *   (7500) and, for cash on delivery, cod.collected (relayed to Slick).
 *
 * How a request goes out (which web, what is retried) is the caller's `send`; when Grab may start is
 * the caller's `pmpAssigned`, usually from `listenForAssignments`.
 */
import { partnerForOrder, PMP_ASSIGNMENTS_PATH, type PartnerSimulator, type RecordedRequest } from '../src/simulators/index.js';

export type PartnerClientId = 'mao' | 'slick' | 'grab' | 'pmp';
/** Sends one request as a partner; resolves once the hub accepted it (2xx), rejects when it gives up. */
export type SendAsPartner = (
  clientId: PartnerClientId,
  method: 'POST' | 'PUT',
  route: string,
  body: Record<string, unknown>,
  isEvent: boolean,
) => Promise<void>;

export const SHIP_EVENT_TYPES = ['picking', 'picked', 'packing', 'packed', 'shipped'] as const;
export const COURIER_STATUSES = ['SHIPPED', 'IN_TRANSIT', 'OUT_FOR_DELIVERY'] as const;
/** What every cash-on-delivery order of the life costs (and PMP collects). */
export const COD_AMOUNT = 250;

/** The store an order ships from: the 25 seeded QC SMF stores in turn. */
export const location = (n: number) => `STORE-${String((n % 25) + 1).padStart(3, '0')}`;
export const isCod = (n: number) => n % 2 === 0;

/**
 * Grab starts on PMP's assignment of a delivery partner, which the hub asks for once the order is 7000.
 * `accept` picks the requests that count (by default every one PMP received).
 */
export function listenForAssignments(pmp: PartnerSimulator, accept: (request: RecordedRequest) => boolean = () => true) {
  const assigned = new Map<string, () => void>();
  const assignedEarly = new Set<string>();
  const stop = pmp.onRequest((r) => {
    if (r.path !== PMP_ASSIGNMENTS_PATH || !accept(r)) return;
    const orderId = (r.body as { orderId?: string } | undefined)?.orderId;
    if (!orderId) return;
    const resolve = assigned.get(orderId);
    if (resolve) resolve();
    else assignedEarly.add(orderId);
  });
  const pmpAssigned = (orderId: string) => (assignedEarly.has(orderId) ? Promise.resolve() : new Promise<void>((resolve) => assigned.set(orderId, resolve)));
  return { pmpAssigned, stop };
}

/** Order `n`'s whole life under the id `orderId`. */
export async function orderLife(n: number, orderId: string, send: SendAsPartner, pmpAssigned: (orderId: string) => Promise<void>): Promise<void> {
  const cod = isCod(n);
  const at = () => new Date().toISOString();
  await send(
    'mao',
    'POST',
    '/api/orders',
    {
      orderId,
      shipFromLocationId: location(n),
      customer: { id: `c-${n}`, name: `Customer ${n}`, phone: `+6680${String(n).padStart(7, '0')}` },
      paymentMethod: cod ? 'COD' : 'PREPAID',
      ...(cod ? { codAmount: COD_AMOUNT } : {}),
      status: 3000,
    },
    false,
  );
  const trackingId = `GRB-${orderId}`;
  for (const eventType of SHIP_EVENT_TYPES) {
    await send(
      'slick',
      'POST',
      '/api/fulfillment/ship-events',
      {
        eventId: `${orderId}-${eventType}`,
        orderId,
        shipFromLocationId: location(n),
        eventType,
        occurredAt: at(),
        ...(eventType === 'shipped' ? { tracking: { trackingId, carrierCode: 'GRAB', estimatedDelivery: new Date(Date.now() + 3600_000).toISOString() } } : {}),
      },
      true,
    );
  }
  await pmpAssigned(orderId);
  for (const status of COURIER_STATUSES) {
    await send(
      'grab',
      'PUT',
      '/api/delivery/status',
      { eventId: `${orderId}-${status}`, orderId, trackingId, carrierCode: 'GRAB', status, occurredAt: at() },
      true,
    );
  }
  const partnerId = partnerForOrder(orderId).partnerId;
  await send(
    'pmp',
    'POST',
    '/api/pmp/events',
    { eventId: `${orderId}-delivered`, orderId, partnerId, type: 'delivery.delivered', occurredAt: at(), location: { lat: 13.7563, lng: 100.5018 } },
    true,
  );
  if (cod)
    await send(
      'pmp',
      'POST',
      '/api/pmp/events',
      { eventId: `${orderId}-cod`, orderId, partnerId, type: 'cod.collected', occurredAt: at(), amount: COD_AMOUNT },
      true,
    );
}
