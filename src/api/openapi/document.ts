import { OpenAPIRegistry, OpenApiGeneratorV31, type RouteConfig } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import type { Role } from '../../config.js';
import { deliveryQuery, errorsQuery, flowQuery, statusSummaryQuery } from '../../analytics/window.js';
import { eventIdSchema } from '../../event-kinds/event-fields.js';
import { ALL_EVENT_KINDS } from '../../event-kinds/index.js';
import { resolveInterventionSchema } from '../../orders/interventions.js';
import { bulkStatusMoveSchema, overrideSchema, statusMoveSchema } from '../../orders/operator-moves.js';
import { exportQuerySchema, searchQuerySchema } from '../../orders/order-search.js';
import { cancelSchema, newOrderSchema, orderIdSchema } from '../../orders/order-registration.js';
import { partnerAssignmentSchema } from '../../orders/partner-assignment.js';
import { OPERATORS, PARTNERS, READERS } from '../auth.js';
import { MAX_BODY_BYTES } from '../request-body.js';
import { SIGNATURE_TOLERANCE_SECONDS } from '../signature.js';
import { interventionIdSchema, interventionListQuery } from '../routes/interventions.routes.js';
import { deadLetterIdSchema, deadLetterListQuery, incidentListQuery } from '../routes/operations.routes.js';
import { MAX_PREFER_WAIT_SECONDS } from '../routes/partner-events.routes.js';
import { streamQuery } from '../routes/stream.routes.js';
import * as s from './schemas.js';

/**
 * The OpenAPI 3.1 document of the hub (SPEC §11), built from the zod schemas the routes validate
 * with: every request body, query and path parameter below is the route's own schema, imported, so
 * the document cannot describe a request the route would refuse. `test/integration/openapi.test.ts`
 * compares its paths with the routes of the app, validates it as OpenAPI 3.1, and checks real answers
 * against the response schemas of `schemas.ts`.
 */

const ERROR_CODES: Record<number, string> = {
  400: '`validation_failed` (details: the failing fields), `malformed_json` (not JSON, or a string holding U+0000), `idempotency_key_mismatch`, `invalid_cursor`, `bad_request`',
  401: '`missing_credentials`, `invalid_credentials` (unknown key), `invalid_signature` (partner roles: missing, wrong, or `t` too far from now)',
  403: '`forbidden`: the key is known but its role may not call this endpoint',
  404: '`not_found`: the order, event, case, dead letter or route does not exist',
  409: '`idempotency_conflict` (the same eventId or order id with another body), `not_dead_lettered`, `intervention_not_open`, `order_conflict`',
  413: `\`payload_too_large\`: the body is over ${MAX_BODY_BYTES / 1024} KiB`,
  415: '`unsupported_media_type`: the body is not `application/json`',
  422: "a business rule refused it: `invalid_transition` (details: orderId, from, to, allowed), `bulk_move_refused` (details.failures), `tracking_mismatch`, `location_mismatch`, `unknown_order`, `unknown_location`, `retry_not_applicable`, or an event outcome's reason",
  429: '`rate_limited` (the client used its budget, per role), `too_many_failed_authentications` (too many 401s from this address), `too_many_exports`; wait `Retry-After` seconds',
  503: '`service_unavailable`: the hub cannot store or serve this right now (Postgres or Redis down); nothing was stored',
};

const DESCRIPTION = `The fulfillment hub between MAO, Slick, PMP and Grab (see SPEC.md of the product).

## Authentication
Every endpoint under \`/api\` needs \`Authorization: Bearer <key>\`, except \`/api/health\`, \`/api/health/ready\`,
\`/api/openapi.json\` and \`/api/docs\`. Each operation lists the roles it allows (\`x-roles\`); another known key gets 403.

Partner roles (${PARTNERS.join(', ')}) also sign every request body:

    X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

The MAC is over the exact bytes sent, prefixed with the decimal timestamp and a dot. \`t\` may be at most
${SIGNATURE_TOLERANCE_SECONDS} s from the hub's clock; a missing, malformed or wrong signature is 401 \`invalid_signature\`.
In Node.js: \`createHmac('sha256', secret).update(\`\${t}.\`).update(rawBody).digest('hex')\`.

## Errors
Every error is \`{"error": {"code": "snake_case", "message": "...", "details": ...}}\`:

${Object.entries(ERROR_CODES)
  .map(([status, codes]) => `- **${status}**: ${codes}`)
  .join('\n')}

## Partner events
Each event has an \`eventId\` (1–128 characters), also accepted as the \`Idempotency-Key\` header (if both are
given they must be equal). The same eventId and body again is answered like the first with \`duplicate: true\`
and applied at most once; another body is 409. \`202\` means the event is committed to Postgres; its \`state\` is
the one committed: \`queued\` for the workers, or the outcome when the web stored and applied it at once. With
\`Prefer: wait=N\` (N ≤ ${MAX_PREFER_WAIT_SECONDS}) the call waits for the outcome: 200 applied or ignored, 422 rejected
(\`error.details\` is the outcome), 202 if not done in time. \`GET /api/events/{eventId}\` reads the outcome at any time.`;

const json = <T extends z.ZodType>(schema: T) => ({ 'application/json': { schema } });

function errors(...statuses: number[]) {
  return Object.fromEntries(statuses.map((status) => [status, { description: ERROR_CODES[status]!, content: json(s.errorResponseSchema) }]));
}

/** The errors any authenticated read can answer. */
const READ_ERRORS = [400, 401, 403, 404, 429];
const WRITE_ERRORS = [400, 401, 403, 404, 413, 415, 422, 429];

const orderParams = z.object({ orderId: orderIdSchema });

interface Operation {
  method: RouteConfig['method'];
  path: string;
  tag: string;
  summary: string;
  description?: string;
  /** Roles allowed; undefined: no key needed. */
  roles?: readonly Role[];
  /** Partner roles among them must sign (X-Signature). */
  signed?: boolean;
  request?: RouteConfig['request'];
  responses: RouteConfig['responses'];
}

function register(registry: OpenAPIRegistry, op: Operation) {
  const rolesLine = op.roles ? `Roles: ${op.roles.map((r) => `\`${r}\``).join(', ')}.` : 'No key needed.';
  const signedLine = op.signed ? ' Partner roles sign the body (`X-Signature`).' : '';
  registry.registerPath({
    method: op.method,
    path: op.path,
    tags: [op.tag],
    summary: op.summary,
    description: [op.description, `${rolesLine}${signedLine}`].filter(Boolean).join('\n\n'),
    security: op.roles ? [op.signed ? { bearerAuth: [], partnerSignature: [] } : { bearerAuth: [] }] : [],
    'x-roles': op.roles ? [...op.roles] : [],
    ...(op.request ? { request: op.request } : {}),
    responses: op.responses,
  });
}

const jsonBody = <T extends z.ZodType>(schema: T, description?: string) => ({ required: true, ...(description ? { description } : {}), content: json(schema) });

function partnerEventOperations(): Operation[] {
  return ALL_EVENT_KINDS.filter((kind) => kind.route).map((kind) => ({
    method: kind.route!.method,
    path: kind.route!.path,
    tag: 'Partner events',
    summary: `${kind.source} event (${kind.name})`,
    description: `Stored, then applied asynchronously by the \`${kind.name}\` rules. See *Partner events* above.`,
    roles: [kind.route!.role],
    signed: true,
    request: {
      headers: z.object({
        'idempotency-key': eventIdSchema.optional().meta({ description: 'The eventId, if not in the body (must equal it if both are given).' }),
        prefer: z
          .string()
          .optional()
          .meta({ description: `\`wait=N\` (seconds, at most ${MAX_PREFER_WAIT_SECONDS}): answer with the outcome once known.` }),
      }),
      body: jsonBody(kind.schema.meta({ id: `${kind.name.replace(/(^|-)(\w)/g, (_m, _d, c: string) => c.toUpperCase())}` })),
    },
    responses: {
      200: { description: 'With `Prefer: wait=N`: applied or ignored.', content: json(s.eventOutcomeSchema) },
      202: { description: 'Stored (committed): queued, or already applied with the store (its state says which).', content: json(s.eventAcceptedSchema) },
      ...errors(400, 401, 403, 409, 413, 415),
      422: {
        description: 'With `Prefer: wait=N`: rejected; `error.code` is the reason and `error.details` the outcome.',
        content: json(s.errorResponseSchema),
      },
      ...errors(429, 503),
    },
  }));
}

const csvOrJson = <T extends z.ZodType>(schema: T, what: string) => ({
  200: {
    description: `${what}; \`format=csv\` answers \`text/csv\` with a header row (null is an empty cell).`,
    content: { ...json(schema), 'text/csv': { schema: z.string() } },
  },
  ...errors(400, 401, 403, 404, 429),
});

function operations(): Operation[] {
  return [
    // ---- Health and reference -------------------------------------------------------------------
    {
      method: 'get',
      path: '/api/health',
      tag: 'Health',
      summary: 'Liveness: the process answers',
      responses: { 200: { description: 'Up.', content: json(s.liveSchema) } },
    },
    {
      method: 'get',
      path: '/api/health/ready',
      tag: 'Health',
      summary: 'Readiness: Postgres and Redis answer',
      responses: {
        200: { description: 'Ready.', content: json(s.readySchema) },
        503: { description: 'A store does not answer.', content: json(s.readySchema) },
      },
    },
    {
      method: 'get',
      path: '/metrics',
      tag: 'Health',
      summary: 'Prometheus metrics',
      responses: { 200: { description: 'Prometheus text format.', content: { 'text/plain': { schema: z.string() } } } },
    },
    {
      method: 'get',
      path: '/api/openapi.json',
      tag: 'Reference',
      summary: 'This document',
      responses: { 200: { description: 'OpenAPI 3.1.', content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } } } },
    },
    {
      method: 'get',
      path: '/api/docs',
      tag: 'Reference',
      summary: 'The API reference, rendered from this document',
      responses: { 200: { description: 'An HTML page.', content: { 'text/html': { schema: z.string() } } } },
    },
    {
      method: 'get',
      path: '/ops',
      tag: 'Reference',
      summary: 'The operations console (a website for people)',
      description:
        "HTTP Basic with any user name and a viewer, operator or admin key as password. Overview, order search and export, order pages, cases, dead letters and live updates; every action goes through the endpoints of this document. Writes need the page's CSRF token and a same-origin request.",
      responses: { 200: { description: 'An HTML page.', content: { 'text/html': { schema: z.string() } } }, 401: { description: 'Sign in (HTTP Basic).' } },
    },
    {
      method: 'get',
      path: '/admin/queues',
      tag: 'Reference',
      summary: 'Bull Board: the queues, failed jobs retriable',
      description: 'Admin only: Bearer admin key, or HTTP Basic with any user name and the admin key as password.',
      responses: { 200: { description: 'An HTML page.', content: { 'text/html': { schema: z.string() } } }, ...errors(401, 403) },
    },

    // ---- Partner events ------------------------------------------------------------------------
    ...partnerEventOperations(),
    {
      method: 'get',
      path: '/api/events/{eventId}',
      tag: 'Partner events',
      summary: 'The outcome of an event',
      description: 'A partner sees only the events it sent.',
      roles: [...READERS, ...PARTNERS],
      request: { params: z.object({ eventId: eventIdSchema }) },
      responses: { 200: { description: 'The outcome.', content: json(s.eventOutcomeSchema) }, ...errors(...READ_ERRORS) },
    },

    // ---- Orders --------------------------------------------------------------------------------
    {
      method: 'post',
      path: '/api/orders',
      tag: 'Orders',
      summary: 'Register an order',
      roles: ['partner:mao', 'operator', 'admin'],
      signed: true,
      request: { body: jsonBody(newOrderSchema.meta({ id: 'NewOrder' })) },
      responses: {
        200: { description: 'The same registration again.', content: json(s.orderSchema) },
        201: { description: 'Registered.', content: json(s.orderSchema) },
        ...errors(400, 401, 403, 409, 413, 415, 422, 429),
      },
    },
    {
      method: 'get',
      path: '/api/orders',
      tag: 'Orders',
      summary: 'Search orders (keyset pages, newest change first)',
      description:
        '`status` takes one or several codes (`status=3000&status=3500` or `status=3000,3500`); `from`/`to` are on the last change (`from` inclusive, `to` exclusive); `q` is an order or tracking id, a phone or email (whole), or the start of a customer name (3+ characters); `limit` 1–200 (default 50); `cursor` is the `nextCursor` of the page before.',
      roles: READERS,
      request: { query: searchQuerySchema },
      responses: { 200: { description: 'A page of orders.', content: json(s.orderPageSchema) }, ...errors(...READ_ERRORS) },
    },
    {
      method: 'get',
      path: '/api/orders/export',
      tag: 'Orders',
      summary: 'Export orders as CSV (the search filters, every row, streamed)',
      roles: READERS,
      request: { query: exportQuerySchema },
      responses: {
        200: {
          description:
            'Columns `orderId,status,statusName,locationId,paymentMethod,codAmount,trackingId,carrierCode,partnerId,deliveryAttempts,createdAt,updatedAt`.',
          content: { 'text/csv': { schema: z.string() } },
        },
        ...errors(...READ_ERRORS),
      },
    },
    {
      method: 'post',
      path: '/api/orders/bulk-status',
      tag: 'Status changes',
      summary: 'Move many orders one step, all or nothing',
      description: 'One transaction: if any order is unknown or refused, nothing moves and the answer is 422 `bulk_move_refused` listing every failure.',
      roles: OPERATORS,
      request: { body: jsonBody(bulkStatusMoveSchema.meta({ id: 'BulkStatusMove' })) },
      responses: { 200: { description: 'All moved.', content: json(s.bulkMoveResultSchema) }, ...errors(...WRITE_ERRORS) },
    },
    {
      method: 'post',
      path: '/api/orders/{orderId}/status',
      tag: 'Status changes',
      summary: 'Move an order one step along the status model (or to 9000 before 7000)',
      roles: OPERATORS,
      request: { params: orderParams, body: jsonBody(statusMoveSchema.meta({ id: 'StatusMove' })) },
      responses: { 200: { description: 'The order after the move.', content: json(s.orderSchema) }, ...errors(...WRITE_ERRORS) },
    },
    {
      method: 'post',
      path: '/api/orders/{orderId}/override',
      tag: 'Status changes',
      summary: 'Admin override: any status, flagged in history',
      roles: ['admin'],
      request: { params: orderParams, body: jsonBody(overrideSchema.meta({ id: 'StatusOverride' })) },
      responses: { 200: { description: 'The order after the override.', content: json(s.orderSchema) }, ...errors(...WRITE_ERRORS) },
    },
    {
      method: 'post',
      path: '/api/orders/{orderId}/cancel',
      tag: 'Status changes',
      summary: 'Cancel an order (before 7000)',
      roles: ['partner:mao', 'operator', 'admin'],
      signed: true,
      request: { params: orderParams, body: jsonBody(cancelSchema.meta({ id: 'Cancellation' })) },
      responses: { 200: { description: 'The cancelled order.', content: json(s.orderSchema) }, ...errors(...WRITE_ERRORS) },
    },
    {
      method: 'post',
      path: '/api/orders/{orderId}/partner',
      tag: 'Status changes',
      summary: 'Assign the delivery partner by hand',
      description: 'Settles a pending or failed PMP assignment; written to history as `operator`.',
      roles: OPERATORS,
      request: { params: orderParams, body: jsonBody(partnerAssignmentSchema.meta({ id: 'PartnerAssignment' })) },
      responses: { 200: { description: 'The order with its partner.', content: json(s.orderSchema) }, ...errors(...WRITE_ERRORS) },
    },
    {
      method: 'get',
      path: '/api/orders/{orderId}',
      tag: 'Orders',
      summary: 'An order: status, tracking, Slick confirmation, partner, COD, delivery',
      roles: READERS,
      request: { params: orderParams },
      responses: { 200: { description: 'The order.', content: json(s.orderSchema) }, ...errors(...READ_ERRORS) },
    },
    {
      method: 'get',
      path: '/api/orders/{orderId}/history',
      tag: 'Orders',
      summary: 'Its status history, implied and override rows flagged',
      roles: READERS,
      request: { params: orderParams },
      responses: { 200: { description: 'History, oldest first.', content: json(s.orderHistorySchema) }, ...errors(...READ_ERRORS) },
    },
    {
      method: 'get',
      path: '/api/orders/{orderId}/events',
      tag: 'Orders',
      summary: 'Its partner events with their outcomes',
      roles: READERS,
      request: { params: orderParams },
      responses: { 200: { description: 'Events, newest first.', content: json(s.orderEventsSchema) }, ...errors(...READ_ERRORS) },
    },
    {
      method: 'get',
      path: '/api/orders/{orderId}/tiers',
      tag: 'Orders',
      summary: 'The three delivery tiers and the discrepancies',
      roles: READERS,
      request: { params: orderParams },
      responses: { 200: { description: 'Tiers and discrepancies.', content: json(s.orderTiersSchema) }, ...errors(...READ_ERRORS) },
    },
    {
      method: 'get',
      path: '/api/orders/{orderId}/partner-calls',
      tag: 'Orders',
      summary: 'The audit of its partner calls',
      roles: READERS,
      request: { params: orderParams },
      responses: { 200: { description: 'Attempts, newest first.', content: json(s.orderPartnerCallsSchema) }, ...errors(...READ_ERRORS) },
    },
    {
      method: 'get',
      path: '/api/locations',
      tag: 'Orders',
      summary: 'The store locations',
      roles: [...READERS, ...PARTNERS],
      responses: { 200: { description: 'Every seeded location.', content: json(s.locationsSchema) }, ...errors(401, 403, 429) },
    },
    {
      method: 'get',
      path: '/api/stream',
      tag: 'Orders',
      summary: 'Live status changes (Server-Sent Events)',
      description:
        'One `event: status` per change with an `id:` and `data:` a `StatusChange` (see components); a comment every 15 s. Reconnect with `Last-Event-ID` to get what was missed first.',
      roles: READERS,
      request: {
        query: streamQuery,
        headers: z.object({ 'last-event-id': z.string().optional().meta({ description: 'The id of the last event received.' }) }),
      },
      responses: { 200: { description: 'An event stream.', content: { 'text/event-stream': { schema: z.string() } } }, ...errors(400, 401, 403, 429, 503) },
    },

    // ---- Operations ----------------------------------------------------------------------------
    {
      method: 'get',
      path: '/api/interventions',
      tag: 'Operations',
      summary: 'Manual-intervention cases',
      roles: READERS,
      request: { query: interventionListQuery },
      responses: { 200: { description: 'Cases, newest first.', content: json(s.interventionListSchema) }, ...errors(...READ_ERRORS) },
    },
    {
      method: 'post',
      path: '/api/interventions/{id}/resolve',
      tag: 'Operations',
      summary: 'Resolve a case: retry, override or dismiss',
      description:
        '`retry` runs the failed call again; `override` sets a status through the machine (flagged in history); `dismiss` closes the case. Who and why are kept.',
      roles: OPERATORS,
      request: { params: z.object({ id: interventionIdSchema }), body: jsonBody(resolveInterventionSchema.meta({ id: 'CaseResolution' })) },
      responses: { 200: { description: 'The case after it.', content: json(s.interventionSchema) }, ...errors(...WRITE_ERRORS, 409) },
    },
    {
      method: 'get',
      path: '/api/dlq',
      tag: 'Operations',
      summary: 'Dead letters: jobs that ran out of retries or failed for good',
      roles: READERS,
      request: { query: deadLetterListQuery },
      responses: { 200: { description: 'Newest first.', content: json(s.deadLetterListSchema) }, ...errors(...READ_ERRORS) },
    },
    {
      method: 'post',
      path: '/api/dlq/{id}/retry',
      tag: 'Operations',
      summary: 'Retry a dead letter (at most once; a second is 409)',
      roles: OPERATORS,
      request: { params: z.object({ id: deadLetterIdSchema }) },
      responses: { 202: { description: 'Back in its queue.', content: json(s.deadLetterRetriedSchema) }, ...errors(400, 401, 403, 404, 409, 429) },
    },
    {
      method: 'get',
      path: '/api/incidents',
      tag: 'Operations',
      summary: 'Incidents, open and resolved',
      roles: READERS,
      request: { query: incidentListQuery },
      responses: { 200: { description: 'Newest first.', content: json(s.incidentListSchema) }, ...errors(...READ_ERRORS) },
    },
    {
      method: 'get',
      path: '/api/health/integrations',
      tag: 'Operations',
      summary: 'Per partner: status, breaker, probe availability, error rate, latency',
      roles: READERS,
      responses: { 200: { description: 'Every integration.', content: json(s.integrationHealthSchema) }, ...errors(401, 403, 429) },
    },

    // ---- Analytics -----------------------------------------------------------------------------
    {
      method: 'get',
      path: '/api/analytics/status-summary',
      tag: 'Analytics',
      summary: 'Current status of the orders created in the window, overall and per location',
      roles: READERS,
      request: { query: statusSummaryQuery },
      responses: csvOrJson(s.statusSummarySchema, 'Counts'),
    },
    {
      method: 'get',
      path: '/api/analytics/delivery',
      tag: 'Analytics',
      summary: 'Delivery performance per partner, location or carrier',
      roles: READERS,
      request: { query: deliveryQuery },
      responses: csvOrJson(s.deliveryAnalyticsSchema, 'Rows'),
    },
    {
      method: 'get',
      path: '/api/analytics/flow',
      tag: 'Analytics',
      summary: 'Time spent between statuses, for bottlenecks',
      roles: READERS,
      request: { query: flowQuery },
      responses: csvOrJson(s.flowAnalyticsSchema, 'Stages'),
    },
    {
      method: 'get',
      path: '/api/analytics/errors',
      tag: 'Analytics',
      summary: 'Failed partner calls per integration and error class',
      roles: READERS,
      request: { query: errorsQuery },
      responses: csvOrJson(s.errorAnalyticsSchema, 'Rows'),
    },
  ];
}

export type OpenApiDocument = ReturnType<OpenApiGeneratorV31['generateDocument']>;

/** Builds the document (cheap enough to build once per process; see `openapi.routes.ts`). */
export function buildOpenApiDocument(): OpenApiDocument {
  const registry = new OpenAPIRegistry();
  registry.registerComponent('securitySchemes', 'bearerAuth', {
    type: 'http',
    scheme: 'bearer',
    description: 'The API key of a client of `API_CLIENTS` (SPEC §3).',
  });
  registry.registerComponent('securitySchemes', 'partnerSignature', {
    type: 'apiKey',
    in: 'header',
    name: 'X-Signature',
    description: `Partner roles: \`t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>\`, \`t\` within ${SIGNATURE_TOLERANCE_SECONDS} s of now.`,
  });
  for (const op of operations()) register(registry, op);
  const generator = new OpenApiGeneratorV31([...registry.definitions, { type: 'schema', schema: s.statusChangeEventSchema }]);
  return generator.generateDocument({
    openapi: '3.1.0',
    info: { title: 'Fulfillment hub API', version: '1.0.0', description: DESCRIPTION },
    tags: [
      { name: 'Partner events', description: 'What Slick, Grab and PMP send.' },
      { name: 'Orders', description: 'Registration, reads, search, export, the live stream.' },
      { name: 'Status changes', description: 'Moves by people, through the order machine.' },
      { name: 'Operations', description: 'Cases, dead letters, incidents, integration health.' },
      { name: 'Analytics', description: 'Management reports, as JSON or CSV.' },
      { name: 'Health', description: 'For load balancers and Prometheus.' },
      { name: 'Reference', description: 'This document, its rendering, and the pages for people.' },
    ],
  });
}
