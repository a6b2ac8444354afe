import type { PartnerHttp, PartnerResponse } from './partner-http.js';

/** The incident receiver (INCIDENT_WEBHOOK_URL): PagerDuty Events v2-like bodies. */
export class IncidentWebhookClient {
  constructor(private readonly http: PartnerHttp) {}

  get enabled(): boolean {
    return this.http.enabled;
  }

  /**
   * Resolves on any 2xx: the status is the receipt, and the page's `dedup_key` (not the answer) is
   * what ties a resolve to its trigger, so the body is not read. Failing a page the receiver took
   * because of its answer would only page again.
   */
  post(
    body: { event_action: 'trigger' | 'resolve'; dedup_key: string; payload: Record<string, unknown> },
    options: { attempt: number; idempotencyKey: string },
  ): Promise<PartnerResponse> {
    return this.http.call({
      method: 'POST',
      path: '',
      operation: `incident-${body.event_action}`,
      body,
      attempt: options.attempt,
      idempotencyKey: options.idempotencyKey,
    });
  }
}
