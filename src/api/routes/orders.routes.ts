import { Router, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { HubDeps } from '../../deps.js';
import type { Source } from '../../db/types.js';
import { eventOutcomeView } from '../../inbox/event-store.js';
import {
  cancelOrder,
  cancelSchema,
  getHistory,
  getOrder,
  getOrderEvents,
  historyView,
  newOrderSchema,
  orderIdSchema,
  orderView,
  registerOrder,
} from '../../orders/order-registration.js';
import { orderTiersView } from '../../tiers/tiers-view.js';
import { authorize, clientOf, READERS, requireSignature, type ApiClient } from '../auth.js';
import { parseWith, readJsonBody } from '../request-body.js';

function sourceOf(client: ApiClient): Source {
  return client.role === 'partner:mao' ? 'mao' : 'operator';
}

export function orderRoutes(deps: HubDeps): Router {
  const router = Router();
  const { db } = deps;
  const orderId = (raw: unknown) => parseWith(orderIdSchema, raw, 'order id');

  router.post('/api/orders', authorize('partner:mao', 'operator', 'admin'), readJsonBody, requireSignature, async (_req, res) => {
    const input = parseWith(newOrderSchema, res.locals.body);
    const client = clientOf(res);
    const { created, order } = await registerOrder(db, input, { clientId: client.id, source: sourceOf(client) });
    deps.logger.info({ orderId: order.orderId, created }, created ? 'order registered' : 'order registration repeated');
    res.status(created ? 201 : 200).json(orderView(order));
  });

  router.post('/api/orders/:orderId/cancel', authorize('partner:mao', 'operator', 'admin'), readJsonBody, requireSignature, async (req, res) => {
    const input = parseWith(cancelSchema, res.locals.body);
    const client = clientOf(res);
    const order = await cancelOrder(deps, orderId(req.params.orderId), input, { clientId: client.id, source: sourceOf(client) });
    deps.logger.info({ orderId: order.orderId, reasonCode: input.reasonCode }, 'order cancelled');
    res.json(orderView(order));
  });

  return router;
}

/**
 * The reads of one order: the order, its history, its tiers, its events. They are the API's most
 * frequent requests, so the app mounts these routes first, each with the access checks every /api
 * request passes (`access`: the address not refused, the key, the client's budget), and such a read
 * passes through no other router: each router and layer a request passes allocates, and at hundreds
 * of reads a second that garbage is what their tail latency is made of (README, Benchmark → Reads).
 */
export function orderReadRoutes(deps: HubDeps, access: RequestHandler[]): Router {
  const router = Router();
  const { db } = deps;
  const orderId = (raw: unknown) => parseWith(orderIdSchema, raw, 'order id');
  const reader = [...access, authorize(...READERS)];

  // `GET /api/orders/export` is the export (order-search.routes.ts), not the order "export": it leaves
  // this router before any check, and the checks under /api count it once, as for every other route.
  router.get('/api/orders/export', (_req: Request, _res: Response, next: NextFunction) => next('router'));

  router.get('/api/orders/:orderId', ...reader, async (req, res) => {
    res.json(orderView(await getOrder(db, orderId(req.params.orderId))));
  });

  router.get('/api/orders/:orderId/history', ...reader, async (req, res) => {
    const id = orderId(req.params.orderId);
    res.json({ orderId: id, history: (await getHistory(db, id)).map(historyView) });
  });

  router.get('/api/orders/:orderId/tiers', ...reader, async (req, res) => {
    res.json(await orderTiersView(db, orderId(req.params.orderId)));
  });

  router.get('/api/orders/:orderId/events', ...reader, async (req, res) => {
    const id = orderId(req.params.orderId);
    res.json({ orderId: id, events: (await getOrderEvents(db, id)).map(eventOutcomeView) });
  });

  return router;
}
