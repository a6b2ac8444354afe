import { statement, type RenderedStatement } from '../db/pipelined-transaction.js';
import { GroupCommit } from '../db/group-commit.js';
import type { HubDeps } from '../deps.js';
import type { PartnerCallObserver, PartnerCallRecord } from '../integrations/partner-http.js';
import { redact } from '../integrations/redaction.js';
import { outboxInsert, type TopicMessage } from '../orders/topic-messages.js';

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

interface AuditEntry {
  row: {
    integration: string;
    operation: string;
    orderId: string | null;
    method: string;
    url: string;
    attempt: number;
    status: number | null;
    latencyMs: number;
    errorClass: string | null;
    error: string | null;
    requestBody: string | null;
    responseBody: string | null;
  };
  message?: TopicMessage;
}

/**
 * The audit rows of a batch of attempts, and the Slick attempts' `slick.interaction` messages, in one
 * statement (so one round trip and one commit, atomic like a transaction): the rows are inserted by a
 * data-modifying CTE, the messages by the statement itself.
 */
function auditStatement(entries: readonly AuditEntry[]): RenderedStatement {
  const col = <K extends keyof AuditEntry['row']>(k: K) => entries.map((e) => e.row[k]);
  const rows = statement`insert into partner_calls (integration, operation, order_id, method, url, attempt, status, latency_ms, error_class, error, request_body, response_body)
    select r.integration, r.operation, r.order_id, r.method, r.url, r.attempt, r.status, r.latency_ms, r.error_class, r.error, r.request_body::jsonb, r.response_body::jsonb
    from unnest(${col('integration')}::text[], ${col('operation')}::text[], ${col('orderId')}::text[], ${col('method')}::text[], ${col('url')}::text[],
                ${col('attempt')}::int[], ${col('status')}::int[], ${col('latencyMs')}::int[], ${col('errorClass')}::text[], ${col('error')}::text[],
                ${col('requestBody')}::text[], ${col('responseBody')}::text[]) with ordinality
      as r(integration, operation, order_id, method, url, attempt, status, latency_ms, error_class, error, request_body, response_body, n)
    order by r.n`;
  const messages = entries.flatMap((e) => (e.message ? [e.message] : []));
  return messages.length === 0 ? rows : statement`with audit as (${rows}) ${outboxInsert(messages)}`;
}

/** Attempts audited at once by one statement at most, and statements under way at once per process. */
const AUDIT_BATCH = 100;
const AUDIT_CONCURRENCY = 2;

/**
 * Records each partner call attempt: an audit row (bodies redacted), for Slick a `slick.interaction`
 * message on the topic written with it atomically, a metric and a log line (its health sample goes with
 * the breaker's record: PartnerHttpOptions.healthSample). Attempts that end while earlier ones are being
 * written share the next statement (group commit); each attempt still waits for its own row to be committed.
 */
export function auditPartnerCalls(deps: HubDeps): PartnerCallObserver {
  const secrets = knownSecrets(deps.config);
  const audit = new GroupCommit<AuditEntry, void>(
    async (entries) => {
      const audited = auditStatement(entries);
      await deps.pg.unsafe(audited.sql, audited.params as never[], { prepare: true });
      return entries.map(() => undefined);
    },
    { concurrency: AUDIT_CONCURRENCY, maxBatch: AUDIT_BATCH },
  );
  return async (record: PartnerCallRecord) => {
    const requestBody = redact(record.requestBody, secrets);
    const responseBody = redact(record.responseBody, secrets);
    const url = redact(record.url, secrets) as string;
    const error = record.error ? (redact(record.error, secrets) as string) : null;
    deps.metrics.partnerCalls.observe(
      { integration: record.integration, operation: record.operation, outcome: record.errorClass ?? 'success' },
      record.latencyMs / 1000,
    );
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
    const latencyMs = Math.round(record.latencyMs);
    await audit.submit({
      row: {
        integration: record.integration,
        operation: record.operation,
        orderId: record.orderId ?? null,
        method: record.method,
        url,
        attempt: record.attempt,
        status: record.status,
        latencyMs,
        errorClass: record.errorClass,
        error,
        requestBody: requestBody === undefined || requestBody === null ? null : JSON.stringify(requestBody),
        responseBody: responseBody === undefined || responseBody === null ? null : JSON.stringify(responseBody),
      },
      ...(record.integration === 'slick' && record.orderId
        ? {
            message: {
              type: 'slick.interaction' as const,
              orderId: record.orderId,
              occurredAt: new Date(),
              payload: {
                orderId: record.orderId,
                operation: record.operation,
                attempt: record.attempt,
                status: record.status,
                outcome: record.errorClass ?? 'success',
                latencyMs,
                error,
              },
            },
          }
        : {}),
    });
  };
}
