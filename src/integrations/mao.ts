import type { PartnerHttp, PartnerResponse } from './partner-http.js';

/** MAO, the order-management side (SPEC §5.3 tier 2): the hub tells it an order shipped. Every call goes through PartnerHttp. */

export interface MaoStatusUpdate {
  status: 'SHIPPED';
  trackingId: string;
  carrierCode: string;
  /** When the order reached 7000 Fulfilled. */
  occurredAt: string;
}

export interface MaoCallOptions {
  attempt: number;
  /** The same on every attempt and retry of one call (see PartnerRequest.idempotencyKey). */
  idempotencyKey: string;
}

export class MaoClient {
  constructor(private readonly http: PartnerHttp) {}

  get enabled(): boolean {
    return this.http.enabled;
  }

  /**
   * POST /api/orders/{orderId}/status. Resolves on any 2xx: the status is MAO's receipt (SPEC names no
   * answer body, so none is read); throws a classified integration error otherwise.
   */
  sendStatus(orderId: string, update: MaoStatusUpdate, options: MaoCallOptions): Promise<PartnerResponse> {
    return this.http.call({
      method: 'POST',
      path: `api/orders/${encodeURIComponent(orderId)}/status`,
      operation: 'order-status',
      body: update,
      orderId,
      attempt: options.attempt,
      idempotencyKey: options.idempotencyKey,
    });
  }

  health(): Promise<PartnerResponse> {
    return this.http.call({ method: 'GET', path: 'health', operation: 'health' });
  }
}
