import { Router } from 'express';
import { z } from 'zod';
import type { HubDeps } from '../../deps.js';
import { interventionView, listInterventions, resolveInterventionSchema, resolveIntervention } from '../../orders/interventions.js';
import { authorize, clientOf, OPERATORS, READERS } from '../auth.js';
import { parseWith, readJsonBody } from '../request-body.js';

/** The query of `GET /api/interventions` (also in the OpenAPI document). */
export const interventionListQuery = z
  .object({
    state: z.enum(['open', 'resolved', 'dismissed']).optional(),
    orderId: z.string().min(1).max(64).optional(),
    limit: z.coerce.number().int().min(1).max(500).default(100),
  })
  .strict();

export const interventionIdSchema = z.uuid();

export function interventionRoutes(deps: HubDeps): Router {
  const router = Router();
  router.get('/api/interventions', authorize(...READERS), async (req, res) => {
    const query = parseWith(interventionListQuery, req.query, 'query');
    const rows = await listInterventions(deps.db, query);
    res.json({ interventions: rows.map(interventionView) });
  });
  router.post('/api/interventions/:id/resolve', authorize(...OPERATORS), readJsonBody, async (req, res) => {
    const id = parseWith(interventionIdSchema, req.params.id, 'intervention id');
    const resolution = parseWith(resolveInterventionSchema, res.locals.body);
    const row = await resolveIntervention(deps, id, resolution, { clientId: clientOf(res).id });
    res.json(interventionView(row));
  });
  return router;
}
