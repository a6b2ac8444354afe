import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { parseWith, startPartnerSimulator, type PartnerSimulator, type SimulatorListenOptions } from './partner-simulator.js';

/** Slick's side of SPEC §4.2: it takes ship confirmations (`shipped`) and COD collections (`collected`). */

export const SLICK_SHIP_EVENTS_PATH = '/api/fulfillment/ship-events';

const trackingSchema = z.looseObject({
  trackingId: z.string().min(1),
  carrierCode: z.string().min(1),
  estimatedDelivery: z.iso.datetime({ offset: true }).optional(),
});

export const slickShipEventSchema = z
  .looseObject({
    orderId: z.string().min(1),
    shipFromLocationId: z.string().min(1),
    eventType: z.enum(['shipped', 'collected']),
    timestamp: z.iso.datetime({ offset: true }),
    tracking: trackingSchema.optional(),
    // A prepaid order may carry no amount at all or an explicit null.
    codAmount: z.number().nonnegative().nullable().optional(),
  })
  .refine((event) => event.eventType !== 'shipped' || event.tracking !== undefined, {
    message: 'tracking is required for shipped',
    path: ['tracking'],
  });
export type SlickShipEvent = z.infer<typeof slickShipEventSchema>;

export interface SlickSimulatorOptions extends SimulatorListenOptions {
  /** When set, calls without `Authorization: Bearer <token>` get 401. */
  token?: string;
}

export interface SlickSimulator extends PartnerSimulator {
  /** The confirmation id Slick gave an order's event, if it accepted one. */
  confirmationFor(orderId: string, eventType: SlickShipEvent['eventType']): string | undefined;
}

export async function startSlickSimulator(options: SlickSimulatorOptions = {}): Promise<SlickSimulator> {
  // Keyed by order and event type: a retried confirmation (the hub timed out but Slick had accepted)
  // gets the same confirmation id back, as an idempotent partner would answer.
  const confirmations = new Map<string, string>();
  const sim = await startPartnerSimulator({
    name: 'slick',
    port: options.port,
    host: options.host,
    routes: [
      {
        method: 'POST',
        path: SLICK_SHIP_EVENTS_PATH,
        handle: (req) => {
          if (options.token !== undefined && req.headers.authorization !== `Bearer ${options.token}`) {
            return { status: 401, body: { error: 'unauthorized' }, headers: { 'www-authenticate': 'Bearer' } };
          }
          const parsed = parseWith(slickShipEventSchema, req.body);
          if (!parsed.ok) return parsed.response;
          const event = parsed.value;
          const key = `${event.orderId}\u0000${event.eventType}`;
          const confirmationId = confirmations.get(key) ?? `SLK-${randomUUID()}`;
          confirmations.set(key, confirmationId);
          return { status: 200, body: { status: 'accepted', orderId: event.orderId, confirmationId } };
        },
      },
    ],
  });
  return Object.assign(sim, {
    confirmationFor(orderId: string, eventType: SlickShipEvent['eventType']): string | undefined {
      return confirmations.get(`${orderId}\u0000${eventType}`);
    },
  });
}
