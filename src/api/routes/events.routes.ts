import { Router } from 'express';
import type { HubDeps } from '../../deps.js';
import { NotFoundError } from '../../errors.js';
import { eventOutcomeView, findInboundEvent } from '../../inbox/event-store.js';
import { eventIdSchema } from '../../event-kinds/event-fields.js';
import { authorize, clientOf, PARTNERS, READERS } from '../auth.js';
import { parseWith } from '../request-body.js';

export function eventRoutes(deps: HubDeps): Router {
  const router = Router();
  router.get('/api/events/:eventId', authorize(...READERS, ...PARTNERS), async (req, res) => {
    const eventId = parseWith(eventIdSchema, req.params.eventId, 'event id');
    const client = clientOf(res);
    const event = await findInboundEvent(deps.db, eventId);
    // A partner sees only the events it sent; anyone else's look like they do not exist.
    if (!event || (client.role.startsWith('partner:') && event.actor !== client.id)) throw new NotFoundError('event', eventId);
    res.json(eventOutcomeView(event));
  });
  return router;
}
