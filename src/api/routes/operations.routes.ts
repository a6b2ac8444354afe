import { Router } from 'express';
import { z } from 'zod';
import { desc, eq } from 'drizzle-orm';
import type { IntegrationName } from '../../config.js';
import type { HubDeps } from '../../deps.js';
import { partnerCalls } from '../../db/schema/index.js';
import type { CircuitBreaker } from '../../integrations/circuit-breaker.js';
import { listDeadLetters, retryDeadLetter } from '../../operations/dead-letters.js';
import { incidentView, listIncidents } from '../../operations/incidents.js';
import { integrationHealth } from '../../operations/integration-health.js';
import { getOrder, orderIdSchema } from '../../orders/order-registration.js';
import { authorize, OPERATORS, READERS } from '../auth.js';
import { parseWith } from '../request-body.js';

const limitQuery = z.object({ limit: z.coerce.number().int().min(1).max(500).default(100) });
/** Queries and ids of these routes, exported for the OpenAPI document. */
export const incidentListQuery = limitQuery.extend({ state: z.enum(['open', 'resolved']).optional() }).strict();
export const deadLetterListQuery = limitQuery.strict();
export const deadLetterIdSchema = z.string().min(3).max(300);

/** What operators use when partners fail: integration health, incidents, the DLQ, the audit log. */
export function operationsRoutes(deps: HubDeps, breakers: Record<IntegrationName, CircuitBreaker>): Router {
  const router = Router();

  router.get('/api/health/integrations', authorize(...READERS), async (_req, res) => {
    res.json({ integrations: await integrationHealth(deps.redis, deps.config, breakers, deps.clock) });
  });

  router.get('/api/incidents', authorize(...READERS), async (req, res) => {
    const query = parseWith(incidentListQuery, req.query, 'query');
    res.json({ incidents: (await listIncidents(deps, query)).map(incidentView) });
  });

  router.get('/api/dlq', authorize(...READERS), async (req, res) => {
    const query = parseWith(deadLetterListQuery, req.query, 'query');
    res.json({ deadLetters: await listDeadLetters(deps, query.limit) });
  });

  router.post('/api/dlq/:id/retry', authorize(...OPERATORS), async (req, res) => {
    const id = parseWith(deadLetterIdSchema, req.params.id, 'dead letter id');
    res.status(202).json({ retried: await retryDeadLetter(deps, id) });
  });

  router.get('/api/orders/:orderId/partner-calls', authorize(...READERS), async (req, res) => {
    const orderId = parseWith(orderIdSchema, req.params.orderId, 'order id');
    await getOrder(deps.db, orderId);
    const rows = await deps.db.select().from(partnerCalls).where(eq(partnerCalls.orderId, orderId)).orderBy(desc(partnerCalls.id)).limit(500);
    res.json({
      orderId,
      partnerCalls: rows.map((r) => ({ ...r, createdAt: r.createdAt.toISOString() })),
    });
  });

  return router;
}
