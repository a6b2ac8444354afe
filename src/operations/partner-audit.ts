import type { HubDeps } from '../deps.js';
import { partnerCalls } from '../db/schema/index.js';
import type { PartnerCallObserver, PartnerCallRecord } from '../integrations/partner-http.js';
import { redact } from '../integrations/redaction.js';
import { writeToOutbox } from '../orders/topic-messages.js';
import { recordHealthSample } from './integration-health.js';

/** Every credential the hub knows: they are scrubbed from audit rows wherever they appear. */
export function knownSecrets(config: HubDeps['config']): string[] {
  const secrets = new Set<string>();
  for (const i of Object.values(config.integrations)) if (i.token) secrets.add(i.token);
  for (const c of config.apiClients) {
    if (c.key) secrets.add(c.key);
    if (c.secret) secrets.add(c.secret);
  }
  return [...secrets];
}

/**
 * Records each partner call attempt: an audit row (bodies redacted), for Slick a `slick.interaction`
 * message on the topic written in the same transaction, a health sample, a metric and a log line.
 */
export function auditPartnerCalls(deps: HubDeps): PartnerCallObserver {
  const secrets = knownSecrets(deps.config);
  return async (record: PartnerCallRecord) => {
    const requestBody = redact(record.requestBody, secrets);
    const responseBody = redact(record.responseBody, secrets);
    const url = redact(record.url, secrets) as string;
    const error = record.error ? (redact(record.error, secrets) as string) : null;
    deps.metrics.partnerCalls.observe({ integration: record.integration, operation: record.operation, outcome: record.errorClass ?? 'success' }, record.latencyMs / 1000);
    deps.logger.info(
      {
        orderId: record.orderId,
        integration: record.integration,
        operation: record.operation,
        status: record.status,
        attempt: record.attempt,
        latencyMs: record.latencyMs,
        errorClass: record.errorClass,
        error,
      },
      'partner call',
    );
    await deps.db.transaction(async (tx) => {
      await Promise.all([
        tx.insert(partnerCalls).values({
          integration: record.integration,
          operation: record.operation,
          orderId: record.orderId,
          method: record.method,
          url,
          attempt: record.attempt,
          status: record.status,
          latencyMs: Math.round(record.latencyMs),
          errorClass: record.errorClass,
          error,
          requestBody: requestBody ?? null,
          responseBody: responseBody ?? null,
        }),
        record.integration === 'slick' && record.orderId
          ? writeToOutbox(tx, [
              {
                type: 'slick.interaction',
                orderId: record.orderId,
                occurredAt: new Date(),
                payload: {
                  orderId: record.orderId,
                  operation: record.operation,
                  attempt: record.attempt,
                  status: record.status,
                  outcome: record.errorClass ?? 'success',
                  latencyMs: Math.round(record.latencyMs),
                  error,
                },
              },
            ])
          : undefined,
      ]);
    });
    await recordHealthSample(deps.redis, deps.config.redisPrefix, record.integration, {
      at: deps.clock.now(),
      kind: 'call',
      ok: record.errorClass === null,
      latencyMs: Math.round(record.latencyMs),
      status: record.status,
    });
  };
}
