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

export class SlickClient {
  constructor(private readonly http: PartnerHttp) {}

  /** POST /api/fulfillment/ship-events. Resolves on 200; throws a classified integration error otherwise. */
  sendShipEvent(event: SlickShipEvent, attempt = 1): Promise<PartnerResponse> {
    return this.http.call({
      method: 'POST',
      path: 'api/fulfillment/ship-events',
      operation: event.eventType === 'shipped' ? 'ship-confirmation' : 'cod-collected',
      body: event,
      orderId: event.orderId,
      attempt,
    });
  }

  health(): Promise<PartnerResponse> {
    return this.http.call({ method: 'GET', path: 'health', operation: 'health' });
  }
}
