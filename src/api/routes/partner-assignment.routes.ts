import { Router } from 'express';
import type { HubDeps } from '../../deps.js';
import { orderIdSchema, orderView } from '../../orders/order-registration.js';
import { assignPartnerByHand, partnerAssignmentSchema } from '../../orders/partner-assignment.js';
import { authorize, clientOf, OPERATORS } from '../auth.js';
import { parseWith, readJsonBody } from '../request-body.js';

/** `POST /api/orders/{id}/partner` (SPEC §5.2): an operator assigns the delivery partner by hand. */
export function partnerAssignmentRoutes(deps: HubDeps): Router {
  const router = Router();
  router.post('/api/orders/:orderId/partner', authorize(...OPERATORS), readJsonBody, async (req, res) => {
    const orderId = parseWith(orderIdSchema, req.params.orderId, 'order id');
    const input = parseWith(partnerAssignmentSchema, res.locals.body);
    res.json(orderView(await assignPartnerByHand(deps, orderId, input, { clientId: clientOf(res).id })));
  });
  return router;
}
