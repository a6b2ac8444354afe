import { Router } from 'express';
import { asc } from 'drizzle-orm';
import type { HubDeps } from '../../deps.js';
import { locations } from '../../db/schema/index.js';
import { authorize, PARTNERS, READERS } from '../auth.js';

export function locationRoutes(deps: HubDeps): Router {
  const router = Router();
  router.get('/api/locations', authorize(...READERS, ...PARTNERS), async (_req, res) => {
    const rows = await deps.db
      .select({ locationId: locations.locationId, name: locations.name, region: locations.region })
      .from(locations)
      .orderBy(asc(locations.locationId));
    res.json({ locations: rows });
  });
  return router;
}
