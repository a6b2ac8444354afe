import { Router } from 'express';
import type { HubDeps } from '../../deps.js';
import { AppError } from '../../errors.js';
import { orderView } from '../../orders/order-registration.js';
import { exportOrdersCsv, exportQuerySchema, searchOrders, searchQuerySchema, toFilters, toSearchParams } from '../../orders/order-search.js';
import { authorize, READERS } from '../auth.js';
import { parseWith } from '../request-body.js';

/** `2025-01-31T17:05:09.123Z` → `20250131T170509Z`, for a file name. */
function fileStamp(now: number): string {
  return new Date(now)
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '');
}

/**
 * Search and export of orders (SPEC §6). Registered before orderRoutes, whose `/api/orders/:orderId`
 * would otherwise take `/api/orders/export`.
 */
/**
 * Exports a web process runs at once. Each holds one connection of the web's pool for as long as its
 * client takes to download; more than this would leave the reads that must stay fast waiting for one.
 */
export const MAX_CONCURRENT_EXPORTS = 2;

export function orderSearchRoutes(deps: HubDeps): Router {
  const router = Router();
  let exporting = 0;

  router.get('/api/orders', authorize(...READERS), async (req, res) => {
    const params = toSearchParams(parseWith(searchQuerySchema, req.query, 'query'));
    const { orders, nextCursor } = await searchOrders(deps, params);
    res.json({ orders: orders.map(orderView), nextCursor });
  });

  router.get('/api/orders/export', authorize(...READERS), async (req, res) => {
    const filters = toFilters(parseWith(exportQuerySchema, req.query, 'query'));
    if (exporting >= MAX_CONCURRENT_EXPORTS) {
      res.setHeader('retry-after', '30');
      throw new AppError('too_many_exports', `at most ${MAX_CONCURRENT_EXPORTS} exports run at once here; try again shortly`, 429);
    }
    exporting++;
    res.on('close', () => exporting--);
    const startedAt = deps.clock.now();
    try {
      const outcome = await exportOrdersCsv(deps.pg, filters, res, () => {
        res.status(200);
        res.setHeader('content-type', 'text/csv; charset=utf-8');
        res.setHeader('content-disposition', `attachment; filename="orders-${fileStamp(startedAt)}.csv"`);
        res.setHeader('cache-control', 'no-store');
      });
      deps.logger.info(
        { rows: outcome.rows, aborted: outcome.aborted, ms: deps.clock.now() - startedAt },
        outcome.aborted ? 'order export stopped: client gone' : 'order export done',
      );
    } catch (err) {
      // Once the first bytes went out, the error can only cut the response short (done by the export).
      if (!res.headersSent) throw err;
      deps.logger.error({ err, ms: deps.clock.now() - startedAt }, 'order export failed midway');
      res.destroy();
    }
  });

  return router;
}
