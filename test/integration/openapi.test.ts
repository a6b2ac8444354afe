import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { Validator } from '@seriousme/openapi-schema-validator';
import type express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { createApp } from '../../src/api/app.js';
import * as s from '../../src/api/openapi/schemas.js';
import { EventOutcomeWaiters } from '../../src/inbox/event-outcomes.js';
import { registerOrder, shipEvent, startTestHub, type TestHub } from '../helpers/test-hub.js';

/**
 * The OpenAPI document (SPEC §11): valid OpenAPI 3.1, naming exactly the routes the app has, each
 * with roles, security and the error format; real answers match its response schemas; the reference
 * at /api/docs is rendered from it with the installed swagger-ui-dist, no CDN.
 */
let hub: TestHub;
let doc: any;
beforeAll(async () => {
  hub = await startTestHub();
  const res = await fetch(`${hub.baseUrl}/api/openapi.json`);
  expect(res.status).toBe(200);
  doc = await res.json();
});
afterAll(async () => {
  await hub?.close();
});

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

/**
 * Every route of an Express 5 app as `METHOD /path` (OpenAPI's `{param}` syntax). Routers mounted at
 * the root are walked; a router mounted under a path (`app.use('/ops', router)`) is a website for
 * people (Bull Board, the console), listed as `GET <mount path>`.
 */
function appRoutes(app: express.Express): string[] {
  const found = new Set<string>();
  const walk = (stack: any[]) => {
    for (const layer of stack) {
      if (layer.route) {
        const path = String(layer.route.path).replace(/:(\w+)/g, '{$1}');
        for (const [method, on] of Object.entries(layer.route.methods as Record<string, boolean>))
          if (on && method !== '_all') found.add(`${method.toUpperCase()} ${path}`);
      } else if (Array.isArray(layer.handle?.stack) || layer.name === 'mounted_app') {
        const mount = layer.rawPath;
        if (typeof mount === 'string' && mount !== '/' && mount !== '') found.add(`GET ${mount}`);
        else if (layer.handle.stack) walk(layer.handle.stack);
        else throw new Error('an app mounted at the root: its routes cannot be listed');
      }
    }
  };
  walk((app as any).router.stack);
  return [...found].sort();
}

/** What the route-vs-document check reports: routes the document lacks, and documented routes the app lacks. */
function routeDifferences(routes: string[], d: any) {
  const documented = operationsOf(d).map((o) => o.key);
  return { missingFromDocument: routes.filter((r) => !documented.includes(r)), notInApp: documented.filter((r) => !routes.includes(r)).sort() };
}

function operationsOf(d: any): Array<{ key: string; op: any }> {
  return Object.entries(d.paths as Record<string, Record<string, any>>).flatMap(([path, item]) =>
    METHODS.filter((m) => item[m]).map((m) => ({ key: `${m.toUpperCase()} ${path}`, op: item[m] })),
  );
}

describe('the OpenAPI document', () => {
  it('is valid OpenAPI 3.1 by an OpenAPI schema validator', async () => {
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
    expect(doc.openapi).toBe('3.1.0');
  });

  it('names exactly the routes of the app: none missing, none the app lacks', () => {
    const app = createApp(hub.web, { waiters: new EventOutcomeWaiters(hub.web.redis, 'unused') });
    const routes = appRoutes(app);
    // The enumeration itself must see the app's routes of every kind (a walk finding nothing would pass vacuously).
    expect(routes).toEqual(
      expect.arrayContaining([
        'POST /api/fulfillment/ship-events',
        'PUT /api/delivery/status',
        'GET /api/orders/{orderId}',
        'GET /metrics',
        'GET /admin/queues',
        'GET /ops',
      ]),
    );
    expect(routes.length).toBeGreaterThan(30);
    expect(routeDifferences(routes, doc)).toEqual({ missingFromDocument: [], notInApp: [] });
  });

  it('the comparison fails when the app gains a route or the document loses one', () => {
    const app = createApp(hub.web, { waiters: new EventOutcomeWaiters(hub.web.redis, 'unused') });
    app.get('/api/not-documented', (_req, res) => void res.end());
    expect(routeDifferences(appRoutes(app), doc)).toEqual({ missingFromDocument: ['GET /api/not-documented'], notInApp: [] });
    const trimmed = { ...doc, paths: { ...doc.paths, '/api/retired': { get: { summary: 'gone', responses: {} } } } };
    delete trimmed.paths['/api/dlq/{id}/retry'];
    const routes = appRoutes(createApp(hub.web, { waiters: new EventOutcomeWaiters(hub.web.redis, 'unused') }));
    expect(routeDifferences(routes, trimmed)).toEqual({ missingFromDocument: ['POST /api/dlq/{id}/retry'], notInApp: ['GET /api/retired'] });
  });

  it('gives every operation its roles, security, answers and the error format', () => {
    const open = ['GET /api/health', 'GET /api/health/ready', 'GET /metrics', 'GET /api/openapi.json', 'GET /api/docs', 'GET /ops', 'GET /admin/queues'];
    for (const { key, op } of operationsOf(doc)) {
      expect(op.summary, key).toBeTruthy();
      expect(op.responses, key).toBeTruthy();
      if (open.includes(key)) continue;
      expect(op['x-roles'].length, `${key} roles`).toBeGreaterThan(0);
      expect(op.description, key).toMatch(/Roles: /);
      expect(op.security, key).toEqual([expect.objectContaining({ bearerAuth: [] })]);
      for (const status of ['401', '403'])
        expect(op.responses[status]?.content['application/json'].schema, `${key} ${status}`).toEqual({ $ref: '#/components/schemas/Error' });
    }
    const ship = doc.paths['/api/fulfillment/ship-events'].post;
    expect(ship['x-roles']).toEqual(['partner:slick']);
    expect(ship.security).toEqual([{ bearerAuth: [], partnerSignature: [] }]);
    expect(doc.paths['/api/orders/{orderId}/override'].post['x-roles']).toEqual(['admin']);
    expect(doc.components.securitySchemes.partnerSignature).toMatchObject({ type: 'apiKey', in: 'header', name: 'X-Signature' });
    expect(doc.components.securitySchemes.partnerSignature.description).toContain('HMAC-SHA256(secret, "<t>.<raw body>")');
    expect(doc.info.description).toContain('invalid_transition');
    expect(doc.components.schemas.Error.properties.error.required).toEqual(['code', 'message']);
  });

  it("names each operation's roles truly: every role it lists gets past authorization, every other role gets 403", async () => {
    const roles = ['slick', 'grab', 'pmp', 'mao', 'viewer', 'operator', 'admin'] as const;
    const roleOf: Record<string, string> = {
      slick: 'partner:slick',
      grab: 'partner:grab',
      pmp: 'partner:pmp',
      mao: 'partner:mao',
      viewer: 'viewer',
      operator: 'operator',
      admin: 'admin',
    };
    const sample: Record<string, string> = { orderId: 'SO-ROLE-CHECK', eventId: 'evt-role-check', id: '00000000-0000-4000-8000-000000000000' };
    let checked = 0;
    for (const { key, op } of operationsOf(doc)) {
      if (!op['x-roles'].length || key.startsWith('GET /admin/')) continue;
      const [method, template] = key.split(' ') as ['GET' | 'POST' | 'PUT', string];
      let path = template.replace(/\{(\w+)\}/g, (_m, name: string) => sample[name]!);
      if (template === '/api/dlq/{id}/retry') path = '/api/dlq/partner-calls:0/retry';
      if (template === '/api/analytics/delivery') path += '?groupBy=partner';
      for (const client of roles) {
        const allowed = op['x-roles'].includes(roleOf[client]);
        let status: number;
        if (template === '/api/stream') {
          // An allowed stream answers 200 and stays open: read the status line only.
          const abort = new AbortController();
          const res = await fetch(`${hub.baseUrl}${path}`, { headers: { authorization: `Bearer ${hub.clients[client].client.key}` }, signal: abort.signal });
          status = res.status;
          abort.abort();
        } else {
          status = (await hub.clients[client].send(method, path, method === 'GET' ? undefined : {})).status;
        }
        if (allowed) expect([401, 403], `${client} on ${key} (documented as allowed)`).not.toContain(status);
        else expect(status, `${client} on ${key} (not among its documented roles)`).toBe(403);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(200);
  });

  it('describes requests with the schemas the routes validate with', async () => {
    const statusMove = doc.paths['/api/orders/{orderId}/status'].post.requestBody.content['application/json'].schema;
    expect(doc.components.schemas[statusMove.$ref.split('/').pop()]).toMatchObject({ required: ['status', 'reasonCode'], additionalProperties: false });
    const shipSchema = doc.paths['/api/fulfillment/ship-events'].post.requestBody.content['application/json'].schema;
    const ship = doc.components.schemas[shipSchema.$ref.split('/').pop()];
    expect(ship.properties.eventType.enum).toEqual(['picking', 'picked', 'packing', 'packed', 'shipped']);
    const search = doc.paths['/api/orders'].get.parameters.map((p: any) => p.name);
    expect(search).toEqual(['status', 'locationId', 'from', 'to', 'q', 'limit', 'cursor']);
    // A field the document lists is one the route takes, and one it does not list is refused.
    const orderId = await registerOrder(hub, { status: 1000 });
    expect((await hub.clients.operator.post(`/api/orders/${orderId}/status`, { status: 1500, reasonCode: 'checked', note: 'ok' })).status).toBe(200);
    const refused = await hub.clients.operator.post(`/api/orders/${orderId}/status`, { status: 2000, reasonCode: 'checked', colour: 'blue' });
    expect(refused.status).toBe(400);
    expect(s.errorResponseSchema.parse(refused.body).error.code).toBe('validation_failed');
  });

  it('describes the answers the hub really gives', async () => {
    const check = <T extends z.ZodType>(schema: T, body: unknown, what: string) => {
      const parsed = schema.safeParse(body);
      expect(parsed.success ? [] : parsed.error.issues, what).toEqual([]);
    };
    const { viewer, operator, slick } = hub.clients;
    const orderId = await registerOrder(hub, { paymentMethod: 'COD', codAmount: 450 });
    const picked = await slick.post('/api/fulfillment/ship-events', shipEvent(orderId, 'picked'), { prefer: 'wait=5' });
    expect(picked.status).toBe(200);
    check(s.eventOutcomeSchema, picked.body, 'ship event outcome');
    const accepted = await slick.post('/api/fulfillment/ship-events', shipEvent(orderId, 'packed'));
    expect(accepted.status).toBe(202);
    check(s.eventAcceptedSchema, accepted.body, 'ship event accepted');
    check(s.eventOutcomeSchema, (await slick.get(`/api/events/${accepted.body.eventId}`)).body, 'event outcome');

    const moved = await operator.post(`/api/orders/${orderId}/status`, { status: 9000, reasonCode: 'customer_cancelled' });
    expect(moved.status).toBe(200);
    check(s.orderSchema, moved.body, 'order');

    const reads: Array<[string, z.ZodType]> = [
      [`/api/orders/${orderId}`, s.orderSchema],
      [`/api/orders/${orderId}/history`, s.orderHistorySchema],
      [`/api/orders/${orderId}/events`, s.orderEventsSchema],
      [`/api/orders/${orderId}/tiers`, s.orderTiersSchema],
      [`/api/orders/${orderId}/partner-calls`, s.orderPartnerCallsSchema],
      [`/api/orders?q=${orderId}`, s.orderPageSchema],
      ['/api/locations', s.locationsSchema],
      ['/api/interventions?state=open', s.interventionListSchema],
      ['/api/incidents', s.incidentListSchema],
      ['/api/dlq', s.deadLetterListSchema],
      ['/api/health/integrations', s.integrationHealthSchema],
      ['/api/health', s.liveSchema],
      ['/api/health/ready', s.readySchema],
      ['/api/analytics/status-summary', s.statusSummarySchema],
      ['/api/analytics/delivery?groupBy=location', s.deliveryAnalyticsSchema],
      ['/api/analytics/flow', s.flowAnalyticsSchema],
      ['/api/analytics/errors', s.errorAnalyticsSchema],
    ];
    for (const [path, schema] of reads) {
      const res = await viewer.get(path);
      expect(res.status, path).toBe(200);
      check(schema, res.body, path);
    }
    const history = (await viewer.get(`/api/orders/${orderId}/history`)).body.history;
    expect(history.some((h: any) => h.implied)).toBe(true); // 3000 → 3600 wrote 3500 as an implied step
    const notFound = await viewer.get('/api/orders/SO-NOPE-404');
    expect(notFound.status).toBe(404);
    check(s.errorResponseSchema, notFound.body, 'error');
  });
});

describe('the API reference at /api/docs', () => {
  it('is rendered from the document by the installed swagger-ui-dist, with no key, no CDN and no framing', async () => {
    const page = await fetch(`${hub.baseUrl}/api/docs`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("script-src 'self'");
    const html = await page.text();
    const sources = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(sources.length).toBeGreaterThan(2);
    for (const src of sources) expect(src, 'every asset from this origin').toMatch(/^\/api\//);

    const require = createRequire(import.meta.url);
    const installed = await readFile(require.resolve('swagger-ui-dist/swagger-ui-bundle.js'));
    const bundle = await fetch(`${hub.baseUrl}/api/docs/assets/swagger-ui-bundle.js`);
    expect(bundle.status).toBe(200);
    expect(Buffer.from(await bundle.arrayBuffer()).equals(installed)).toBe(true);
    const init = await (await fetch(`${hub.baseUrl}/api/docs/assets/docs-init.js`)).text();
    expect(init).toContain("url: '/api/openapi.json'");
    // Only the listed files are served: the package's demo page (pointing at a public petstore) is not.
    expect((await fetch(`${hub.baseUrl}/api/docs/assets/index.html`)).status).not.toBe(200);
  });
});
