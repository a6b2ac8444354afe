import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import express, { Router, type NextFunction, type Request, type Response } from 'express';
import type { HubDeps } from '../deps.js';
import { ApiClientDirectory } from '../api/auth.js';
import { AppError } from '../errors.js';
import { ConsoleApi, queryString } from './console-api.js';
import { consoleAuth, consoleHeaders, requireSameOrigin, userOf, type ConsoleUser } from './console-security.js';
import { errorPage, page } from './layout.js';
import { deadLettersBody, orderBody, ordersBody, overviewBody, type SearchForm } from './pages.js';

const ASSETS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'assets');
const ASSETS: Record<string, string> = { 'console.css': 'text/css', 'console.js': 'text/javascript' };

function apiOf(req: Request, res: Response): ConsoleApi {
  return new ConsoleApi(ConsoleApi.baseUrlOf(req), userOf(res).key);
}

function one(v: unknown): string | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  return typeof s === 'string' && s !== '' ? s : undefined;
}

function many(v: unknown): string[] {
  return (Array.isArray(v) ? v : v === undefined ? [] : [v]).filter((s): s is string => typeof s === 'string' && s !== '');
}

/** A datetime-local value (UTC, no offset) as the API's instant; anything else is passed on for the API to judge. */
function asInstant(v: string | undefined): string | undefined {
  if (!v) return undefined;
  return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/.test(v) ? `${v.length === 16 ? `${v}:00` : v}Z` : v;
}

/** Where to go after an action: only a console path, never another site (no open redirect). */
function returnPath(body: Record<string, unknown>, fallback: string): string {
  const r = one(body.return);
  return r && /^\/ops(\/|$|\?)/.test(r) && !r.startsWith('//') ? r : fallback;
}

function withNotice(path: string, notice: string): string {
  const [base, hash] = path.split('#');
  const url = new URL(base!, 'http://console.invalid');
  url.searchParams.set('notice', notice);
  return `${url.pathname}${url.search}${hash ? `#${hash}` : ''}`;
}

function send(res: Response, status: number, body: string) {
  res.status(status).type('html').send(body);
}

/**
 * The operations console (SPEC §11) at /ops: server-rendered pages for viewers, operators and admins,
 * signed in with HTTP Basic (the role's key as password). Every read and every action is a call to the
 * public API with that key (`ConsoleApi`), so roles, validation and the one transition path are the
 * API's; writes are form posts that must prove they come from a console page (`requireSameOrigin`).
 */
export function consoleRoutes(deps: HubDeps): Router {
  const router = Router();
  const directory = new ApiClientDirectory(deps.config.apiClients);

  router.use(consoleHeaders);
  // Styles and the live-update script hold nothing of anyone's: served without signing in.
  router.get('/assets/:file', (req, res, next) => {
    const type = Object.hasOwn(ASSETS, req.params.file) ? ASSETS[req.params.file] : undefined;
    if (!type) return next();
    res.setHeader('cache-control', 'public, max-age=300');
    res.type(type).sendFile(join(ASSETS_DIR, req.params.file), (err) => err && next(err));
  });
  router.use(consoleAuth(directory));
  router.use(express.urlencoded({ extended: false, limit: '64kb', parameterLimit: 2000 }));

  router.get('/', async (req, res) => {
    const api = apiOf(req, res);
    const since = new Date(Date.now() - 24 * 3600_000).toISOString();
    const [summary, health, incidents, cases, dlq, errors] = await Promise.all([
      api.get('/api/analytics/status-summary'),
      api.get('/api/health/integrations'),
      api.get('/api/incidents?state=open'),
      api.get('/api/interventions?state=open&limit=200'),
      api.get('/api/dlq?limit=100'),
      api.get(`/api/analytics/errors${queryString({ from: since })}`),
    ]);
    const user = userOf(res);
    send(
      res,
      200,
      page({
        title: 'Overview',
        user,
        current: '/ops',
        notice: one(req.query.notice),
        live: {},
        body: overviewBody(user, {
          summary,
          integrations: health.integrations,
          incidents: incidents.incidents,
          cases: cases.interventions,
          deadLetters: dlq.deadLetters,
          errors: errors.rows,
        }),
      }),
    );
  });

  const searchForm = (q: Request['query']): SearchForm => ({
    status: many(q.status)
      .flatMap((s) => s.split(','))
      .map(Number)
      .filter(Number.isInteger),
    locationId: one(q.locationId),
    from: one(q.from),
    to: one(q.to),
    q: one(q.q),
    limit: one(q.limit),
    cursor: one(q.cursor),
  });
  const apiFilters = (f: SearchForm) => ({
    status: f.status.length ? f.status.join(',') : undefined,
    locationId: f.locationId,
    from: asInstant(f.from),
    to: asInstant(f.to),
    q: f.q,
  });

  router.get('/orders', async (req, res) => {
    const api = apiOf(req, res);
    const form = searchForm(req.query);
    const [locations, result] = await Promise.all([
      api.get('/api/locations'),
      // A search the API refuses (a bad date, say) shows the form again with the API's reason.
      api.get(`/api/orders${queryString({ ...apiFilters(form), limit: form.limit, cursor: form.cursor })}`).catch((err: unknown) => {
        if (err instanceof AppError && err.httpStatus === 400) return { refused: err };
        throw err;
      }),
    ]);
    const user = userOf(res);
    const refused = (result as { refused?: AppError }).refused;
    send(
      res,
      refused ? 400 : 200,
      page({
        title: 'Orders',
        user,
        current: '/ops/orders',
        notice: one(req.query.notice),
        body: ordersBody(user, form, locations.locations, refused ? undefined : result, req.originalUrl, refused),
      }),
    );
  });

  router.get('/orders/export', async (req, res) => {
    const upstream = await apiOf(req, res).raw('GET', `/api/orders/export${queryString({ ...apiFilters(searchForm(req.query)), format: 'csv' })}`);
    if (upstream.statusCode !== 200) {
      const body = (await upstream.body.json().catch(() => undefined)) as any;
      throw new AppError(body?.error?.code ?? 'api_error', body?.error?.message ?? 'export failed', upstream.statusCode, body?.error?.details);
    }
    res.status(200);
    for (const h of ['content-type', 'content-disposition']) if (upstream.headers[h]) res.setHeader(h, String(upstream.headers[h]));
    await pipeline(upstream.body, res).catch(() => res.destroy());
  });

  router.get('/orders/:orderId', async (req, res) => {
    const api = apiOf(req, res);
    const id = encodeURIComponent(req.params.orderId);
    const [order, history, events, calls, tiers, cases] = await Promise.all([
      api.get(`/api/orders/${id}`),
      api.get(`/api/orders/${id}/history`),
      api.get(`/api/orders/${id}/events`),
      api.get(`/api/orders/${id}/partner-calls`),
      api.get(`/api/orders/${id}/tiers`),
      api.get(`/api/interventions${queryString({ orderId: req.params.orderId, limit: '100' })}`),
    ]);
    const user = userOf(res);
    send(
      res,
      200,
      page({
        title: `Order ${order.orderId}`,
        user,
        current: '/ops/orders',
        notice: one(req.query.notice),
        live: { orderId: order.orderId },
        body: orderBody(
          user,
          { order, history: history.history, events: events.events, calls: calls.partnerCalls, tiers, cases: cases.interventions },
          `/ops/orders/${id}`,
        ),
      }),
    );
  });

  router.get('/dead-letters', async (req, res) => {
    const letters = await apiOf(req, res).get('/api/dlq?limit=200');
    const user = userOf(res);
    send(
      res,
      200,
      page({ title: 'Dead letters', user, current: '/ops/dead-letters', notice: one(req.query.notice), body: deadLettersBody(user, letters.deadLetters) }),
    );
  });

  /** Live updates: the API's SSE stream, passed through with the signed-in key (EventSource cannot send a Bearer header). */
  router.get('/stream', async (req, res) => {
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    const lastId = req.header('last-event-id');
    const upstream = await apiOf(req, res).raw(
      'GET',
      `/api/stream${queryString({ orderId: one(req.query.orderId), locationId: one(req.query.locationId) })}`,
      undefined,
      lastId ? { 'last-event-id': lastId } : {},
      abort.signal,
    );
    if (upstream.statusCode !== 200) {
      upstream.body.resume();
      res.status(upstream.statusCode).end();
      return;
    }
    res.status(200);
    res.setHeader('content-type', 'text/event-stream; charset=utf-8');
    res.setHeader('x-accel-buffering', 'no');
    res.flushHeaders();
    await pipeline(upstream.body as Readable, res).catch(() => undefined);
  });

  // ---- Actions: each one API call, then back to the page it came from --------------------------
  const action = (
    path: string,
    notice: string,
    call: (api: ConsoleApi, req: Request, body: Record<string, unknown>) => Promise<unknown>,
    fallback: (req: Request) => string,
  ) => {
    router.post(path, requireSameOrigin, async (req, res) => {
      const body = (req.body ?? {}) as Record<string, unknown>;
      const back = returnPath(body, fallback(req));
      res.locals.back = back;
      await call(apiOf(req, res), req, body);
      res.redirect(303, withNotice(back, notice));
    });
  };
  const orderPath = (req: Request) => `/ops/orders/${encodeURIComponent(String(req.params.orderId))}`;
  const text = (v: unknown) => one(v);
  const note = (v: unknown) => one(v)?.trim() || undefined;

  action(
    '/orders/bulk-status',
    'bulk-moved',
    (api, _req, b) =>
      api.post('/api/orders/bulk-status', { orderIds: many(b.orderIds), status: Number(b.status), reasonCode: text(b.reasonCode), note: note(b.note) }),
    () => '/ops/orders',
  );
  action(
    '/orders/:orderId/status',
    'moved',
    (api, req, b) =>
      api.post(`/api/orders/${encodeURIComponent(String(req.params.orderId))}/status`, {
        status: Number(b.status),
        reasonCode: text(b.reasonCode),
        note: note(b.note),
      }),
    orderPath,
  );
  action(
    '/orders/:orderId/override',
    'overridden',
    (api, req, b) =>
      api.post(`/api/orders/${encodeURIComponent(String(req.params.orderId))}/override`, {
        status: Number(b.status),
        reasonCode: text(b.reasonCode),
        note: note(b.note),
      }),
    orderPath,
  );
  action(
    '/orders/:orderId/partner',
    'assigned',
    (api, req, b) =>
      api.post(`/api/orders/${encodeURIComponent(String(req.params.orderId))}/partner`, {
        partnerId: text(b.partnerId),
        partnerName: text(b.partnerName),
        reason: text(b.reason),
      }),
    orderPath,
  );
  action(
    '/cases/:id/resolve',
    'resolved',
    (api, req, b) => {
      const act = one(b.action);
      const resolution = act === 'override' ? { action: act, status: Number(b.status), note: note(b.note) } : { action: act, note: note(b.note) };
      return api.post(`/api/interventions/${encodeURIComponent(String(req.params.id))}/resolve`, resolution);
    },
    () => '/ops',
  );
  action(
    '/dead-letters/:id/retry',
    'retried',
    (api, req) => api.post(`/api/dlq/${encodeURIComponent(String(req.params.id))}/retry`),
    () => '/ops/dead-letters',
  );

  router.use((req: Request, _res: Response, next: NextFunction) => next(new AppError('not_found', `no console page ${req.path}`, 404)));
  // Console errors are pages for people; the API's errors arrive here as the API answered them.
  router.use((err: unknown, req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err);
    const user = res.locals.consoleUser as ConsoleUser | undefined;
    if (err instanceof AppError) {
      // The API's own answer (a refusal, or 503 while Postgres or Redis is down), shown as it said it.
      if (err.httpStatus >= 500) deps.logger.warn({ code: err.code, path: req.originalUrl }, 'console: the API answered an error');
      return send(
        res,
        err.httpStatus,
        errorPage(
          user,
          err.httpStatus,
          err.code,
          err.message,
          err.details,
          (res.locals.back as string | undefined) ?? (req.method === 'GET' ? undefined : '/ops'),
        ),
      );
    }
    deps.logger.error({ err, path: req.originalUrl }, 'console page failed');
    send(res, 502, errorPage(user, 502, 'console_error', 'The page could not be built; try again.', undefined, '/ops'));
  });
  return router;
}
