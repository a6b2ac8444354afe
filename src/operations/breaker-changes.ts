import type { IntegrationName } from '../config.js';
import type { HubDeps } from '../deps.js';
import type { BreakerChange } from '../integrations/circuit-breaker.js';
import { raiseIncident, resolveIncident } from './incidents.js';

export function circuitIncidentCause(integration: IntegrationName): string {
  return `circuit_open:${integration}`;
}

/**
 * What happens when a breaker changes state: a log line every time, an incident when it opens, and
 * that incident resolved when it closes. (The incident receiver's own breaker pages nobody: it could not.)
 */
export function onBreakerChange(deps: HubDeps) {
  return async (integration: IntegrationName, change: BreakerChange) => {
    const level = change.to === 'open' ? 'error' : 'warn';
    deps.logger[level]({ integration, from: change.from, to: change.to, failures: change.failures }, `circuit ${integration}: ${change.from} → ${change.to}`);
    if (integration === 'incident') return;
    if (change.to === 'open' && change.from === 'closed') {
      await raiseIncident(deps, {
        cause: circuitIncidentCause(integration),
        severity: 'critical',
        summary: `${integration} circuit opened after ${change.failures} consecutive failures; calls to ${integration} are paused`,
        detail: { integration, failures: change.failures, openMs: deps.config.circuitOpenMs },
      });
    } else if (change.to === 'closed') {
      await resolveIncident(deps, circuitIncidentCause(integration), `${integration} answered again; circuit closed`);
    }
  };
}
