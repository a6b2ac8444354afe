import type { PartnerHttp, PartnerResponse } from './partner-http.js';

/** The customer notification webhook (NOTIFY_WEBHOOK_URL, SPEC §6). */
export interface CustomerNotification {
  orderId: string;
  customerId: string;
  status: number;
  template: string;
}

export class CustomerNotificationClient {
  constructor(private readonly http: PartnerHttp) {}

  get enabled(): boolean {
    return this.http.enabled;
  }

  /**
   * Resolves on any 2xx: the status is the receipt. The body is not read, so a receiver that answers
   * with something unexpected does not fail a notification it took (its retry would message the
   * customer twice).
   */
  send(notification: CustomerNotification, options: { attempt: number; idempotencyKey: string }): Promise<PartnerResponse> {
    return this.http.call({
      method: 'POST',
      path: '',
      operation: 'customer-notification',
      body: notification,
      orderId: notification.orderId,
      attempt: options.attempt,
      idempotencyKey: options.idempotencyKey,
    });
  }
}
