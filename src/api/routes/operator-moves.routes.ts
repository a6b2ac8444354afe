import { Router } from 'express';
import type { HubDeps } from '../../deps.js';
import { bulkStatusMoveSchema, moveStatus, moveStatusInBulk, overrideSchema, overrideStatus, statusMoveSchema } from '../../orders/operator-moves.js';
import { orderIdSchema, orderView } from '../../orders/order-registration.js';
import { authorize, clientOf, OPERATORS } from '../auth.js';
import { parseWith, readJsonBody } from '../request-body.js';

/**
 * Status changes by people (SPEC §6): `POST /api/orders/bulk-status` and `POST /api/orders/{id}/status`
 * (operator, admin), `POST /api/orders/{id}/override` (admin). Viewers and partners get 403.
 */
export function operatorMoveRoutes(deps: HubDeps): Router {
  const router = Router();
  const orderId = (raw: unknown) => parseWith(orderIdSchema, raw, 'order id');

  // First, so that no `/api/orders/:orderId...` route can ever take `bulk-status` for an order id.
  router.post('/api/orders/bulk-status', authorize(...OPERATORS), readJsonBody, async (_req, res) => {
    const input = parseWith(bulkStatusMoveSchema, res.locals.body);
    const moved = await moveStatusInBulk(deps, input, { clientId: clientOf(res).id });
    res.json({ moved: moved.length, orders: moved.map(orderView) });
  });

  router.post('/api/orders/:orderId/status', authorize(...OPERATORS), readJsonBody, async (req, res) => {
    const id = orderId(req.params.orderId);
    const input = parseWith(statusMoveSchema, res.locals.body);
    res.json(orderView(await moveStatus(deps, id, input, { clientId: clientOf(res).id })));
  });

  router.post('/api/orders/:orderId/override', authorize('admin'), readJsonBody, async (req, res) => {
    const id = orderId(req.params.orderId);
    const input = parseWith(overrideSchema, res.locals.body);
    res.json(orderView(await overrideStatus(deps, id, input, { clientId: clientOf(res).id })));
  });

  return router;
}
