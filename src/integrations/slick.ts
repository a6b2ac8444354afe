import { z } from 'zod';
import type { PartnerHttp, PartnerResponse } from './partner-http.js';

/** The Slick REST API (SPEC §4.2). One client; every call goes through PartnerHttp. */

export interface SlickTracking {
  trackingId: string;
  carrierCode: string;
  estimatedDelivery?: string;
}

export interface SlickShipEvent {
  orderId: string;
  shipFromLocationId: string;
  eventType: 'shipped' | 'collected';
  timestamp: string;
  tracking?: SlickTracking;
  codAmount?: number;
}

/**
 * Slick's 200 to a ship event: it accepted the event for this order and gave it a confirmation id.
 * Anything else under a 200 is not a confirmation the hub can move an order on.
 */
export const slickAcceptedSchema = z.looseObject({
  status: z.literal('accepted'),
  orderId: z.string().min(1),
  confirmationId: z.string().min(1),
});
export type SlickAccepted = z.infer<typeof slickAcceptedSchema>;

export interface SlickCallOptions {
  attempt: number;
  /** The same on every attempt and retry of one confirmation (see PartnerRequest.idempotencyKey). */
  idempotencyKey: string;
}

export class SlickClient {
  constructor(private readonly http: PartnerHttp) {}

  /**
   * POST /api/fulfillment/ship-events. Resolves with Slick's acceptance of this order's event; throws
   * a classified integration error otherwise, including a 200 whose body is not such an acceptance.
   */
  sendShipEvent(event: SlickShipEvent, options: SlickCallOptions): Promise<PartnerResponse<SlickAccepted>> {
    return this.http.call({
      method: 'POST',
      path: 'api/fulfillment/ship-events',
      operation: event.eventType === 'shipped' ? 'ship-confirmation' : 'cod-collected',
      body: event,
      orderId: event.orderId,
      attempt: options.attempt,
      idempotencyKey: options.idempotencyKey,
      answer: slickAcceptedSchema.refine((a) => a.orderId === event.orderId, {
        message: `the acceptance is for another order, not ${event.orderId}`,
        path: ['orderId'],
      }),
    });
  }

  health(): Promise<PartnerResponse> {
    return this.http.call({ method: 'GET', path: 'health', operation: 'health' });
  }
}
