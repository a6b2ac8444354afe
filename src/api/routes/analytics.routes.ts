import { Router } from 'express';
import { deliveryAnalytics, DELIVERY_CSV_COLUMNS } from '../../analytics/delivery.js';
import { sendCsv } from '../../analytics/csv.js';
import { errorAnalytics, ERRORS_CSV_COLUMNS } from '../../analytics/errors.js';
import { flowAnalytics, FLOW_CSV_COLUMNS } from '../../analytics/flow.js';
import { statusSummary, statusSummaryCsvRows, STATUS_SUMMARY_CSV_COLUMNS } from '../../analytics/status-summary.js';
import { deliveryQuery, errorsQuery, flowQuery, statusSummaryQuery } from '../../analytics/window.js';
import type { HubDeps } from '../../deps.js';
import { authorize, READERS } from '../auth.js';
import { parseWith } from '../request-body.js';

/** Management analytics (SPEC §6) for viewers, operators and admins; each also as `format=csv`. */
export function analyticsRoutes(deps: HubDeps): Router {
  const router = Router();

  router.get('/api/analytics/status-summary', authorize(...READERS), async (req, res) => {
    const query = parseWith(statusSummaryQuery, req.query, 'query');
    const summary = await statusSummary(deps, query);
    if (query.format === 'csv') return sendCsv(res, 'status-summary', STATUS_SUMMARY_CSV_COLUMNS, statusSummaryCsvRows(summary));
    res.json(summary);
  });

  router.get('/api/analytics/delivery', authorize(...READERS), async (req, res) => {
    const query = parseWith(deliveryQuery, req.query, 'query');
    const result = await deliveryAnalytics(deps, query);
    if (query.format === 'csv')
      return sendCsv(res, `delivery-by-${query.groupBy}`, DELIVERY_CSV_COLUMNS, result.rows as unknown as Array<Record<string, unknown>>);
    res.json(result);
  });

  router.get('/api/analytics/flow', authorize(...READERS), async (req, res) => {
    const query = parseWith(flowQuery, req.query, 'query');
    const result = await flowAnalytics(deps, query);
    if (query.format === 'csv') return sendCsv(res, 'flow', FLOW_CSV_COLUMNS, result.stages as unknown as Array<Record<string, unknown>>);
    res.json(result);
  });

  router.get('/api/analytics/errors', authorize(...READERS), async (req, res) => {
    const query = parseWith(errorsQuery, req.query, 'query');
    const result = await errorAnalytics(deps, query);
    if (query.format === 'csv') return sendCsv(res, 'errors', ERRORS_CSV_COLUMNS, result.rows as unknown as Array<Record<string, unknown>>);
    res.json(result);
  });

  return router;
}
