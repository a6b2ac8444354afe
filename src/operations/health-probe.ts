import type { IntegrationName } from '../config.js';
import type { HubDeps } from '../deps.js';
import { PartnerHttp } from '../integrations/partner-http.js';
import { recordHealthSample } from './integration-health.js';

/** Partners with a /health endpoint (the webhooks have none). */
export const PROBED_INTEGRATIONS: IntegrationName[] = ['slick', 'pmp', 'mao', 'grab'];

/**
 * Probes each configured partner's GET /health. Probes bypass the breaker and the audit log (they are
 * monitoring, not business calls) and feed the integration health samples.
 */
export async function probeIntegrations(deps: HubDeps): Promise<void> {
  await Promise.all(
    PROBED_INTEGRATIONS.filter((name) => deps.config.integrations[name].baseUrl).map(async (name) => {
      const http = new PartnerHttp({ ...deps.config.integrations[name], timeoutMs: Math.min(deps.config.integrations[name].timeoutMs, 5_000) });
      const started = deps.clock.now();
      let ok = false;
      let status: number | null = null;
      try {
        status = (await http.call({ method: 'GET', path: 'health', operation: 'health' })).status;
        ok = true;
      } catch (err) {
        status = (err as { status?: number | null }).status ?? null;
      }
      await recordHealthSample(deps.redis, deps.config.redisPrefix, name, {
        at: deps.clock.now(),
        kind: 'probe',
        ok,
        latencyMs: deps.clock.now() - started,
        status,
      });
      deps.metrics.integrationUp.set({ integration: name }, ok ? 1 : 0);
    }),
  );
}
