import { startPartnerSimulator, type PartnerSimulator, type SimulatorListenOptions } from './partner-simulator.js';

/**
 * Receiver for the hub's outgoing webhooks: customer notifications (NOTIFY_WEBHOOK_URL) and incidents
 * (INCIDENT_WEBHOOK_URL), SPEC §6. Any POST path is accepted, so the configured URL may carry a path.
 */

export interface WebhookReceiverOptions extends SimulatorListenOptions {
  name: string;
}

export function startWebhookReceiver(options: WebhookReceiverOptions): Promise<PartnerSimulator> {
  return startPartnerSimulator({
    name: options.name,
    port: options.port,
    host: options.host,
    routes: [{ method: 'POST', path: /^\/.*$/, handle: () => ({ status: 202, body: { received: true } }) }],
  });
}
