import type { PartnerHttp, PartnerResponse } from './partner-http.js';

/** The incident receiver (INCIDENT_WEBHOOK_URL): PagerDuty Events v2-like bodies. */
export class IncidentWebhookClient {
  constructor(private readonly http: PartnerHttp) {}

  get enabled(): boolean {
    return this.http.enabled;
  }

  post(body: { event_action: 'trigger' | 'resolve'; dedup_key: string; payload: Record<string, unknown> }, attempt = 1): Promise<PartnerResponse> {
    return this.http.call({ method: 'POST', path: '', operation: `incident-${body.event_action}`, body, attempt });
  }
}
