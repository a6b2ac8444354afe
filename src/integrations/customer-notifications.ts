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

  send(notification: CustomerNotification, attempt = 1): Promise<PartnerResponse> {
    return this.http.call({ method: 'POST', path: '', operation: 'customer-notification', body: notification, orderId: notification.orderId, attempt });
  }
}
