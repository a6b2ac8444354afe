import { createHash } from 'node:crypto';
import { z } from 'zod';
import { parseWith, startPartnerSimulator, type PartnerSimulator, type SimulatorListenOptions } from './partner-simulator.js';

/**
 * PMP's side of SPEC §5.2: it assigns a delivery partner to an order, and answers the hub's
 * reconciliation with the delivery state a test (or `PUT /__admin/deliveries/:orderId`) set.
 */

export const PMP_ASSIGNMENTS_PATH = '/api/assignments';
export const PMP_DELIVERIES_PATH = '/api/deliveries';

export const PMP_DELIVERY_PARTNERS = [
  { partnerId: 'PTN-GRAB', partnerName: 'Grab Express' },
  { partnerId: 'PTN-LALAMOVE', partnerName: 'Lalamove' },
  { partnerId: 'PTN-KERRY', partnerName: 'Kerry Express' },
  { partnerId: 'PTN-FLASH', partnerName: 'Flash Express' },
] as const;
export type DeliveryPartner = (typeof PMP_DELIVERY_PARTNERS)[number];

export const PMP_DELIVERY_STATUSES = ['ASSIGNED', 'PICKED_UP', 'IN_TRANSIT', 'OUT_FOR_DELIVERY', 'DELIVERED', 'FAILED'] as const;
export type PmpDeliveryStatus = (typeof PMP_DELIVERY_STATUSES)[number];

export interface PmpDelivery {
  orderId: string;
  partnerId: string;
  status: PmpDeliveryStatus;
  occurredAt: string;
}

export interface PmpDeliveryUpdate {
  status: PmpDeliveryStatus;
  /** Defaults to the partner PMP assigns this order. */
  partnerId?: string;
  /** Defaults to now. */
  occurredAt?: string;
}

const assignmentRequestSchema = z.looseObject({
  orderId: z.string().min(1),
  locationId: z.string().min(1),
  codAmount: z.number().nonnegative().nullable().optional(),
});

const deliveryUpdateSchema = z.strictObject({
  status: z.enum(PMP_DELIVERY_STATUSES),
  partnerId: z.string().min(1).optional(),
  occurredAt: z.iso.datetime({ offset: true }).optional(),
});

/** The same order always gets the same partner, so a test can predict it and a retry changes nothing. */
export function partnerForOrder(orderId: string): DeliveryPartner {
  const bucket = createHash('sha256').update(orderId).digest().readUInt32BE(0) % PMP_DELIVERY_PARTNERS.length;
  return PMP_DELIVERY_PARTNERS[bucket] ?? PMP_DELIVERY_PARTNERS[0];
}

export interface PmpSimulator extends PartnerSimulator {
  setDelivery(orderId: string, update: PmpDeliveryUpdate): PmpDelivery;
  getDelivery(orderId: string): PmpDelivery | undefined;
  deleteDelivery(orderId: string): void;
  clearDeliveries(): void;
}

export async function startPmpSimulator(options: SimulatorListenOptions = {}): Promise<PmpSimulator> {
  const deliveries = new Map<string, PmpDelivery>();

  function setDelivery(orderId: string, update: PmpDeliveryUpdate): PmpDelivery {
    const delivery: PmpDelivery = {
      orderId,
      partnerId: update.partnerId ?? partnerForOrder(orderId).partnerId,
      status: update.status,
      occurredAt: update.occurredAt ?? new Date().toISOString(),
    };
    deliveries.set(orderId, delivery);
    return delivery;
  }

  const sim = await startPartnerSimulator({
    name: 'pmp',
    port: options.port,
    host: options.host,
    routes: [
      {
        method: 'POST',
        path: PMP_ASSIGNMENTS_PATH,
        handle: (req) => {
          const parsed = parseWith(assignmentRequestSchema, req.body);
          if (!parsed.ok) return parsed.response;
          const partner = partnerForOrder(parsed.value.orderId);
          return { status: 200, body: { partnerId: partner.partnerId, partnerName: partner.partnerName } };
        },
      },
      {
        method: 'GET',
        path: `${PMP_DELIVERIES_PATH}/:orderId`,
        handle: (req) => {
          const orderId = req.params.orderId ?? '';
          const delivery = deliveries.get(orderId);
          if (!delivery) return { status: 404, body: { error: 'delivery_not_found', orderId } };
          return { status: 200, body: delivery };
        },
      },
    ],
    adminRoutes: [
      { method: 'GET', path: '/__admin/deliveries', handle: () => ({ status: 200, body: [...deliveries.values()] }) },
      {
        method: 'PUT',
        path: '/__admin/deliveries/:orderId',
        handle: (req) => {
          const parsed = parseWith(deliveryUpdateSchema, req.body);
          if (!parsed.ok) return parsed.response;
          return { status: 200, body: setDelivery(req.params.orderId ?? '', parsed.value) };
        },
      },
      {
        method: 'DELETE',
        path: '/__admin/deliveries',
        handle: () => {
          const cleared = deliveries.size;
          deliveries.clear();
          return { status: 200, body: { cleared } };
        },
      },
    ],
  });

  return Object.assign(sim, {
    setDelivery,
    getDelivery: (orderId: string): PmpDelivery | undefined => deliveries.get(orderId),
    deleteDelivery: (orderId: string): void => {
      deliveries.delete(orderId);
    },
    clearDeliveries: (): void => deliveries.clear(),
  });
}
