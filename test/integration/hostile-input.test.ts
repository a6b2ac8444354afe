import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import fc from 'fast-check';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createApp } from '../../src/api/app.js';
import { answerClientErrorsAsJson } from '../../src/api/error-handler.js';
import { signatureHeader, SIGNATURE_TOLERANCE_SECONDS } from '../../src/api/signature.js';
import { EventOutcomeWaiters } from '../../src/inbox/event-outcomes.js';
import { DEVELOPMENT_CLIENTS, type ApiClientConfig, type Role } from '../../src/config.js';
import { newOrderId, registerOrder, startTestHub, type TestHub } from '../helpers/test-hub.js';

/**
 * Hostile input at scale (SPEC §3): generated requests to every partner and operator endpoint, each
 * with at least one defect (no or unknown key, a role or partner the endpoint is not for, a missing,
 * malformed, stale or foreign signature, a body that is not JSON, too large, too deep, of the wrong
 * shape or type, with out-of-range numbers, nasty unicode or prototype keys, a wrong content type or
 * encoding, a bad id or query). Whatever the hub is sent: never a 5xx, never a 2xx, always the JSON
 * error format, and not one row of any table changed.
 */

const TOTAL_REQUESTS = 10_000;
const BATCH = 25;

const CLIENT_OF_ROLE = Object.fromEntries(DEVELOPMENT_CLIENTS.map((c) => [c.role, c])) as Record<Role, ApiClientConfig>;
const ALL_ROLES = DEVELOPMENT_CLIENTS.map((c) => c.role);

let hub: TestHub;
let pool: Pool;
/** Orders that exist, at 3000, so a request's defect is the only reason it must fail. */
let orderIds: string[] = [];

beforeAll(async () => {
  hub = await startTestHub({
    inProcessWorkers: false,
    scheduler: false,
    // Rate limits have their own test; here thousands of refusals from one address must each be answered on their merits.
    env: { RATE_LIMITS: ALL_ROLES.map((r) => `${r}=1000000/1`).join(','), FAILED_AUTH_LIMIT: '1000000/1' },
  });
  orderIds = [await registerOrder(hub), await registerOrder(hub), await registerOrder(hub, { paymentMethod: 'COD', codAmount: 450 })];
  pool = new Pool(hub.baseUrl, { connections: 8, pipelining: 1, keepAliveTimeout: 30_000 });
});
afterAll(async () => {
  await pool?.close();
  await hub?.close();
});

// ---- What the database holds ------------------------------------------------------------------

/** A checksum and count of every table the hub has (migrations' own table included). */
async function tableChecksums(): Promise<Record<string, string>> {
  const tables = await hub.web.pg<Array<{ schema: string; name: string }>>`
    select table_schema as schema, table_name as name from information_schema.tables
    where table_schema in ('public', 'drizzle') and table_type = 'BASE TABLE' order by 1, 2`;
  const sums: Record<string, string> = {};
  for (const t of tables) {
    const [row] = await hub.web.pg.unsafe<Array<{ n: number; sum: string | null }>>(
      `select count(*)::int as n, md5(coalesce(string_agg(x::text, E'\\n' order by x::text), '')) as sum from "${t.schema}"."${t.name}" x`,
    );
    sums[`${t.schema}.${t.name}`] = `${row!.n}:${row!.sum}`;
  }
  return sums;
}
async function queueCounts() {
  return {
    inbound: await hub.web.queues.inboundEvents.getJobCounts(),
    calls: await hub.web.queues.partnerCalls.getJobCounts(),
  };
}

// ---- Hostile values -----------------------------------------------------------------------------

const NASTY_STRINGS = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\ud800',
  '\udfff\ud800',
  '\u202eevil',
  '\ufeffbom',
  '\u2028\u2029',
  'Z\u0351\u0353\u0359\u0328\u0335algo',
  '👩‍👩‍👧‍👦',
  '𝕳𝖚𝖇',
  'ﾟ･✿ヾ╲(｡◕‿◕｡)╱✿･ﾟ',
  '<script>alert(1)</script>',
  "'; drop table orders; --",
  '${7*7}{{7*7}}',
  '../../etc/passwd',
  '%00%2e%2e%2f',
  'null',
  'undefined',
  'NaN',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  '\t\n\r\u000b\u000c',
  'ǅǈǋ',
  'İıſK',
];
const PROTOTYPE_KEYS = ['__proto__', 'constructor', 'prototype', '__defineGetter__', 'toString', 'valueOf', 'hasOwnProperty', 'isAdmin'];

const nastyString = fc.oneof(fc.constantFrom(...NASTY_STRINGS), fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 40 }));
const BAD_AMOUNTS = [-1, -0.5, -1e300, 1e300, 1_000_000.01, 1_000_001, 0.001, 12.345, 1e20] as const;
const BAD_STATUSES = [-1, 0, 1.5, 1001, 7777, 1e300, -1e300, Number.MAX_SAFE_INTEGER + 2, 1e20] as const;
/** A placeholder JSON.stringify keeps; replaced afterwards by the raw text of a deeply nested value (too deep to stringify here). */
const DEEP = (depth: number, kind: 'array' | 'object') => `\u0001DEEP:${kind}:${depth}\u0001`;
function expandDeep(raw: string): string {
  return raw.replace(/"\\u0001DEEP:(array|object):(\d+)\\u0001"/g, (_m, kind: string, depth: string) => {
    const n = Number(depth);
    return kind === 'array' ? '['.repeat(n) + ']'.repeat(n) : `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
  });
}
const deepValue = fc.tuple(fc.integer({ min: 100, max: 12_000 }), fc.constantFrom('array' as const, 'object' as const)).map(([d, k]) => DEEP(d, k));
/** A value of a type other than `type`. */
function wrongType(type: FieldType): fc.Arbitrary<unknown> {
  const all: Record<string, fc.Arbitrary<unknown>> = {
    string: nastyString,
    number: fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true })),
    boolean: fc.boolean(),
    null: fc.constant(null),
    array: fc.array(fc.oneof(fc.integer(), nastyString), { maxLength: 5 }),
    object: fc.dictionary(nastyString, fc.oneof(fc.integer(), nastyString), { maxKeys: 4 }),
    deep: deepValue,
    huge: fc.integer({ min: 1000, max: 60_000 }).map((n) => 'x'.repeat(n)),
  };
  const excluded: Record<FieldType, string[]> = {
    string: ['string', 'huge'],
    enum: ['huge'],
    datetime: ['huge'],
    int: ['number'],
    number: ['number'],
    object: ['object'],
    array: ['array'],
    boolean: ['boolean'],
  };
  // A string field given a string is only wrong for an enum or a datetime (checked below).
  return fc.oneof(
    ...Object.entries(all)
      .filter(([k]) => !excluded[type].includes(k))
      .map(([, a]) => a),
  );
}

// ---- Endpoints ----------------------------------------------------------------------------------

type FieldType = 'string' | 'enum' | 'datetime' | 'int' | 'number' | 'object' | 'array' | 'boolean';
interface Field {
  type: FieldType;
  required: boolean;
  /** For strings: the longest valid length. */
  max?: number;
  /** For enums: the valid values. */
  values?: readonly (string | number)[];
  /** For numbers: values of the right type the field refuses. */
  invalid?: readonly number[];
}
interface Endpoint {
  name: string;
  method: 'GET' | 'POST' | 'PUT';
  path: (id: string) => string;
  /** Whether the path has an id that can be made invalid. */
  hasId?: boolean;
  roles: readonly Role[];
  /** JSON body endpoints: a valid body, and its fields. */
  /** A valid body, about `orderId` where it names an order. */
  body?: (orderId: string) => Record<string, unknown>;
  fields?: Record<string, Field>;
  /** A partner event: its eventId may also come as Idempotency-Key. */
  eventId?: boolean;
  /** Query parameters the endpoint refuses (it validates its query strictly). */
  badQueries?: Array<Record<string, string>>;
}

const now = () => new Date().toISOString();
const anyOrder = () => orderIds[Math.floor(Math.random() * orderIds.length)]!;
const str = (max: number, required = true): Field => ({ type: 'string', required, max });
const READERS: Role[] = ['viewer', 'operator', 'admin'];
const OPERATORS: Role[] = ['operator', 'admin'];
const PARTNER_ROLES: Role[] = ['partner:slick', 'partner:grab', 'partner:pmp', 'partner:mao'];
const WINDOW_BAD: Array<Record<string, string>> = [
  { from: 'yesterday' },
  { to: '2025-13-45' },
  { from: '2025-03-02T00:00:00Z', to: '2025-03-01T00:00:00Z' },
  { format: 'xml' },
  { locationId: 'x'.repeat(65) },
];

const ENDPOINTS: Endpoint[] = [
  {
    name: 'ship events',
    method: 'POST',
    path: () => '/api/fulfillment/ship-events',
    roles: ['partner:slick'],
    eventId: true,
    body: (orderId) => ({ eventId: `evt-${randomUUID()}`, orderId, shipFromLocationId: 'STORE-007', eventType: 'picking', occurredAt: now() }),
    fields: {
      eventId: str(128),
      orderId: str(64),
      shipFromLocationId: str(64),
      eventType: { type: 'enum', required: true, values: ['picking', 'picked', 'packing', 'packed', 'shipped'] },
      occurredAt: { type: 'datetime', required: true },
      tracking: { type: 'object', required: false },
    },
  },
  {
    name: 'courier status',
    method: 'PUT',
    path: () => '/api/delivery/status',
    roles: ['partner:grab'],
    eventId: true,
    body: (orderId) => ({ eventId: `evt-${randomUUID()}`, orderId, trackingId: 'GRB-1', carrierCode: 'GRAB', status: 'SHIPPED', occurredAt: now() }),
    fields: {
      eventId: str(128),
      orderId: str(64),
      trackingId: str(128),
      carrierCode: str(32),
      status: { type: 'enum', required: true, values: ['SHIPPED', 'IN_TRANSIT', 'OUT_FOR_DELIVERY', 'DELIVERED', 'FAILED', 'RESCHEDULED', 'RETURNED'] },
      occurredAt: { type: 'datetime', required: true },
      location: { type: 'object', required: false },
      failureReason: str(500, false),
      cod: { type: 'object', required: false },
    },
  },
  {
    name: 'PMP events',
    method: 'POST',
    path: () => '/api/pmp/events',
    roles: ['partner:pmp'],
    eventId: true,
    body: (orderId) => ({ eventId: `evt-${randomUUID()}`, orderId, partnerId: 'PTN-GRAB', type: 'delivery.failed', occurredAt: now(), amount: 10 }),
    fields: {
      eventId: str(128),
      orderId: str(64),
      partnerId: str(64),
      type: { type: 'enum', required: true, values: ['partner.assigned', 'delivery.update', 'delivery.delivered', 'delivery.failed', 'cod.collected'] },
      occurredAt: { type: 'datetime', required: true },
      partnerName: str(200, false),
      amount: { type: 'number', required: false, invalid: BAD_AMOUNTS },
    },
  },
  {
    name: 'order registration',
    method: 'POST',
    path: () => '/api/orders',
    roles: ['partner:mao', 'operator', 'admin'],
    body: () => ({
      orderId: newOrderId('HX'),
      shipFromLocationId: 'STORE-007',
      customer: { id: 'CUST-1', name: 'Somchai' },
      paymentMethod: 'COD',
      codAmount: 120.5,
    }),
    fields: {
      orderId: str(64),
      shipFromLocationId: str(64),
      customer: { type: 'object', required: true },
      paymentMethod: { type: 'enum', required: true, values: ['PREPAID', 'COD'] },
      codAmount: { type: 'number', required: false, invalid: BAD_AMOUNTS },
      status: { type: 'enum', required: false, values: [1000, 3000] },
    },
  },
  {
    name: 'cancellation',
    method: 'POST',
    path: (id) => `/api/orders/${id}/cancel`,
    hasId: true,
    roles: ['partner:mao', 'operator', 'admin'],
    body: () => ({ reasonCode: 'customer_request', note: 'called' }),
    fields: { reasonCode: str(64), note: str(1000, false) },
  },
  {
    name: 'status move',
    method: 'POST',
    path: (id) => `/api/orders/${id}/status`,
    hasId: true,
    roles: OPERATORS,
    body: () => ({ status: 3500, reasonCode: 'picking_started' }),
    fields: { status: { type: 'int', required: true, invalid: BAD_STATUSES }, reasonCode: str(64), note: str(1000, false) },
  },
  {
    name: 'bulk status move',
    method: 'POST',
    path: () => '/api/orders/bulk-status',
    roles: OPERATORS,
    body: () => ({ orderIds: [...orderIds], status: 3500, reasonCode: 'picking_started' }),
    fields: {
      orderIds: { type: 'array', required: true },
      status: { type: 'int', required: true, invalid: BAD_STATUSES },
      reasonCode: str(64),
      note: str(1000, false),
    },
  },
  {
    name: 'override',
    method: 'POST',
    path: (id) => `/api/orders/${id}/override`,
    hasId: true,
    roles: ['admin'],
    body: () => ({ status: 7500, reasonCode: 'fixed_by_hand', note: 'confirmed by phone' }),
    fields: { status: { type: 'int', required: true, invalid: BAD_STATUSES }, reasonCode: str(64), note: str(1000) },
  },
  {
    name: 'partner assignment',
    method: 'POST',
    path: (id) => `/api/orders/${id}/partner`,
    hasId: true,
    roles: OPERATORS,
    body: () => ({ partnerId: 'PTN-GRAB', partnerName: 'Grab Express', reason: 'PMP is down' }),
    fields: { partnerId: str(64), partnerName: str(200), reason: str(1000) },
  },
  {
    name: 'intervention resolution',
    method: 'POST',
    path: (id) => `/api/interventions/${id}/resolve`,
    hasId: true,
    roles: OPERATORS,
    body: () => ({ action: 'dismiss', note: 'handled' }),
    fields: { action: { type: 'enum', required: true, values: ['retry', 'dismiss', 'override'] }, note: str(1000) },
  },
  { name: 'dead letter retry', method: 'POST', path: (id) => `/api/dlq/${id}/retry`, hasId: true, roles: OPERATORS },
  { name: 'order', method: 'GET', path: (id) => `/api/orders/${id}`, hasId: true, roles: READERS },
  { name: 'order history', method: 'GET', path: (id) => `/api/orders/${id}/history`, hasId: true, roles: READERS },
  { name: 'order tiers', method: 'GET', path: (id) => `/api/orders/${id}/tiers`, hasId: true, roles: READERS },
  { name: 'order events', method: 'GET', path: (id) => `/api/orders/${id}/events`, hasId: true, roles: READERS },
  { name: 'order partner calls', method: 'GET', path: (id) => `/api/orders/${id}/partner-calls`, hasId: true, roles: READERS },
  { name: 'event outcome', method: 'GET', path: () => '/api/events/evt-none', roles: [...READERS, ...PARTNER_ROLES] },
  {
    name: 'order search',
    method: 'GET',
    path: () => '/api/orders',
    roles: READERS,
    badQueries: [
      { status: '1234' },
      { limit: '0' },
      { limit: '201' },
      { limit: 'ten' },
      { cursor: '!!!' },
      { from: 'soon' },
      { q: 'a\u0001b' },
      { q: 'x'.repeat(201) },
    ],
  },
  {
    name: 'order export',
    method: 'GET',
    path: () => '/api/orders/export',
    roles: READERS,
    badQueries: [{ format: 'xlsx' }, { status: 'shipped' }, { limit: '10' }],
  },
  {
    name: 'interventions',
    method: 'GET',
    path: () => '/api/interventions',
    roles: READERS,
    badQueries: [{ state: 'closed' }, { limit: '-1' }, { limit: '501' }],
  },
  { name: 'incidents', method: 'GET', path: () => '/api/incidents', roles: READERS, badQueries: [{ state: 'maybe' }, { limit: '1e3' }] },
  { name: 'dead letters', method: 'GET', path: () => '/api/dlq', roles: READERS, badQueries: [{ limit: '0' }, { limit: 'all' }] },
  { name: 'status summary', method: 'GET', path: () => '/api/analytics/status-summary', roles: READERS, badQueries: WINDOW_BAD },
  {
    name: 'delivery analytics',
    method: 'GET',
    path: () => '/api/analytics/delivery',
    roles: READERS,
    badQueries: [{ groupBy: 'moon' }, { groupBy: 'partner', ...WINDOW_BAD[0] }],
  },
  { name: 'flow analytics', method: 'GET', path: () => '/api/analytics/flow', roles: READERS, badQueries: WINDOW_BAD },
  { name: 'error analytics', method: 'GET', path: () => '/api/analytics/errors', roles: READERS, badQueries: WINDOW_BAD.slice(0, 4) },
  { name: 'live stream', method: 'GET', path: () => '/api/stream', roles: READERS, badQueries: [{ orderId: 'x'.repeat(65) }, { locationId: '' }] },
  { name: 'integration health', method: 'GET', path: () => '/api/health/integrations', roles: READERS },
  { name: 'locations', method: 'GET', path: () => '/api/locations', roles: [...READERS, ...PARTNER_ROLES] },
  { name: 'Bull Board', method: 'GET', path: () => '/admin/queues', roles: ['admin'] },
];

// ---- Requests and their defects -----------------------------------------------------------------

interface HostileRequest {
  endpoint: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  defects: string[];
}

const BAD_IDS = fc.oneof(
  fc.constantFrom('x'.repeat(301), '.hidden', '-dash', 'a%20b', 'a/b', '%ZZ', '%', '%C0%AE', '%00', '..', '%C3%BC', 'SO%20ONE', '%E2%80%AE', '%2e%2e'),
  nastyString
    .filter((s) => !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(s))
    .map((s) => [...Buffer.from(s, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('') || '%20'),
);
const NOT_JSON_TYPES = [
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/xml',
  'text/json',
  'application/jsonx',
  'application/json-patch',
  '*/*',
  'json',
  '',
];

/** A defect that makes the request invalid whatever else it carries, with what it does to it. */
type Defect =
  | { kind: 'no-key'; header?: string }
  | { kind: 'unknown-key'; key: string }
  | { kind: 'role'; role: Role }
  | {
      kind: 'signature';
      how: 'missing' | 'malformed' | 'foreign-secret' | 'stale' | 'future' | 'other-body';
      value: string;
      secretOf: Role;
      skewSeconds: number;
    }
  | { kind: 'content-type'; type: string }
  | { kind: 'content-encoding'; encoding: string }
  | { kind: 'too-large'; size: number }
  | { kind: 'malformed-json'; text: string }
  | { kind: 'invalid-utf8' }
  | { kind: 'not-an-object'; value: unknown }
  | { kind: 'missing-field'; pick: number }
  | { kind: 'wrong-type'; pick: number; value: unknown }
  | { kind: 'bad-value'; pick: number; value: unknown }
  | { kind: 'extra-field'; key: string; value: unknown }
  | { kind: 'nested-extra'; key: string }
  | { kind: 'idempotency-mismatch'; key: string }
  | { kind: 'bad-id'; id: string }
  | { kind: 'bad-query'; query: Record<string, string> }
  | { kind: 'unknown-query'; key: string }
  | { kind: 'wrong-method'; method: 'DELETE' | 'PATCH' | 'PUT' | 'POST' | 'GET' };

/**
 * Defects of the endpoint, weighted so that most requests get past authentication and reach the
 * checks behind it (a request's first failing check decides its answer).
 */
function defectsFor(e: Endpoint): fc.Arbitrary<Defect> {
  const disallowed = ALL_ROLES.filter((r) => !e.roles.includes(r));
  const signed = e.roles.some((r) => r.startsWith('partner:')) && e.body !== undefined;
  const list: fc.Arbitrary<Defect>[] = [
    fc.oneof(
      fc.constant<Defect>({ kind: 'no-key' }),
      fc
        .constantFrom(
          'Bearer',
          'Bearer ',
          'Basic',
          'Basic !!!',
          `Basic ${Buffer.from('user').toString('base64')}`,
          'Token abc',
          'bearer  x y',
          'Bearer\tdev-admin-key',
          'Basic Og==',
        )
        .map((header): Defect => ({ kind: 'no-key', header })),
    ),
    fc
      .oneof(
        fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 80 }),
        fc.constantFrom(
          ...DEVELOPMENT_CLIENTS.map((c) => `${c.key}x`),
          ...DEVELOPMENT_CLIENTS.map((c) => c.key!.slice(0, -1)),
          ...DEVELOPMENT_CLIENTS.map((c) => c.secret ?? 'nope0000'),
        ),
      )
      .filter((k) => /^[\x21-\x7e]+$/.test(k) && !DEVELOPMENT_CLIENTS.some((c) => c.key === k))
      .map((key): Defect => ({ kind: 'unknown-key', key })),
  ];
  if (disallowed.length) list.push(fc.constantFrom(...disallowed).map((role): Defect => ({ kind: 'role', role })));
  if (e.hasId) list.push(BAD_IDS.map((id): Defect => ({ kind: 'bad-id', id })));
  if (e.badQueries) {
    list.push(fc.constantFrom(...e.badQueries).map((query): Defect => ({ kind: 'bad-query', query })));
    list.push(
      fc
        .constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'statuses', 'limit[]', 'from ', '', 'a'.repeat(500))
        .map((key): Defect => ({ kind: 'unknown-query', key })),
    );
  }
  if (e.body) {
    const fieldNames = Object.keys(e.fields ?? {});
    const required = fieldNames.filter((f) => e.fields![f]!.required);
    list.push(
      fc.constantFrom(...NOT_JSON_TYPES).map((type): Defect => ({ kind: 'content-type', type })),
      fc.constantFrom('gzip', 'deflate', 'br', 'compress', 'identity, gzip', 'x-unknown').map((encoding): Defect => ({ kind: 'content-encoding', encoding })),
      fc.integer({ min: 64 * 1024 + 1, max: 200 * 1024 }).map((size): Defect => ({ kind: 'too-large', size })),
      fc
        .oneof(
          fc.constantFrom(
            '',
            '{',
            '{"a":}',
            "{'a':1}",
            '{"a":1,}',
            '[1,2',
            'NaN',
            'undefined',
            '{"a":1}{"b":2}',
            '\ufeff{}',
            '{"a":"\\x41"}',
            '{"a":"\\ud800"',
            '{"a":01}',
            '{"a":1e}',
            '\u0000',
          ),
          fc.string({ unit: 'binary', maxLength: 200 }).filter((s) => {
            try {
              JSON.parse(s);
              return false;
            } catch {
              return true;
            }
          }),
        )
        .map((text): Defect => ({ kind: 'malformed-json', text })),
      fc.constant<Defect>({ kind: 'invalid-utf8' }),
      fc
        .oneof(fc.constant(null), fc.integer(), fc.boolean(), nastyString, fc.array(fc.integer(), { maxLength: 3 }), deepValue)
        .map((value): Defect => ({ kind: 'not-an-object', value })),
      fc
        .tuple(
          fc.constantFrom(...PROTOTYPE_KEYS, ...NASTY_STRINGS.filter((s) => s !== '')),
          fc.oneof(fc.constant(null), fc.integer(), nastyString, fc.constant({ polluted: true })),
        )
        .map(([key, value]): Defect => ({ kind: 'extra-field', key, value })),
      fc.constantFrom(...PROTOTYPE_KEYS).map((key): Defect => ({ kind: 'nested-extra', key })),
      // GET /api/orders is the order search, which an operator may call.
      fc
        .constantFrom('DELETE', 'PATCH', e.method === 'POST' ? 'PUT' : 'POST', ...(e.name === 'order registration' ? [] : ['GET']))
        .map((method): Defect => ({ kind: 'wrong-method', method: method as 'GET' })),
    );
    if (required.length) list.push(fc.nat(required.length - 1).map((pick): Defect => ({ kind: 'missing-field', pick })));
    if (fieldNames.length) {
      list.push(
        fc.nat(fieldNames.length - 1).chain((pick) => {
          const field = e.fields![fieldNames[pick]!]!;
          return wrongType(field.type)
            .filter((v) => !field.values?.includes(v as string))
            .map((value): Defect => ({ kind: 'wrong-type', pick, value }));
        }),
      );
      const withBadValues = fieldNames.filter((f) => badValue(e.fields![f]!) !== undefined);
      if (withBadValues.length) {
        list.push(
          fc
            .nat(withBadValues.length - 1)
            .chain((i) =>
              badValue(e.fields![withBadValues[i]!]!)!.map((value): Defect => ({ kind: 'bad-value', pick: fieldNames.indexOf(withBadValues[i]!), value })),
            ),
        );
      }
    }
    if (e.eventId) list.push(nastyString.filter((k) => /^[\x21-\x7e]+$/.test(k)).map((key): Defect => ({ kind: 'idempotency-mismatch', key: `other-${key}` })));
    if (signed) {
      list.push(
        fc
          .tuple(
            fc.constantFrom('missing', 'malformed', 'foreign-secret', 'stale', 'future', 'other-body' as const),
            fc.constantFrom(
              't=,v1=',
              't=abc,v1=00',
              `v1=${'a'.repeat(64)}`,
              't=1',
              `t=${'9'.repeat(20)},v1=${'a'.repeat(64)}`,
              'garbage',
              't=1,v1=zz',
              `t=-5,v1=${'0'.repeat(64)}`,
              ',,,,=,=',
              't=1 v1=2',
            ),
            fc.constantFrom(...ALL_ROLES),
            fc.integer({ min: SIGNATURE_TOLERANCE_SECONDS + 1, max: 10 * 365 * 86_400 }),
          )
          .map(([how, value, secretOf, skewSeconds]): Defect => ({ kind: 'signature', how, value, secretOf, skewSeconds })),
      );
    }
  }
  const weight = (a: fc.Arbitrary<Defect>, i: number) => ({ arbitrary: a, weight: i < 2 ? 1 : 3 });
  return fc.oneof(...list.map(weight));
}

/** A value of the right type that the field still refuses; undefined if there is none to try. */
function badValue(f: Field): fc.Arbitrary<unknown> | undefined {
  switch (f.type) {
    case 'string':
      return f.max !== undefined ? fc.integer({ min: f.max + 1, max: Math.min(f.max + 2000, 60_000) }).map((n) => '€'.repeat(n).slice(0, n)) : undefined;
    case 'enum':
      return fc
        .oneof(nastyString, fc.constantFrom('Picking', 'PICKING ', 'shipped\u0000', 'SHIPPED\u200b', 'delivery.FAILED', 1500, 0, -1))
        .filter((v) => !f.values!.includes(v as string));
    case 'datetime':
      return fc.oneof(
        fc.constantFrom(
          '2025-02-30T00:00:00Z',
          '2025-03-01',
          '2025-03-01T25:00:00Z',
          '2025-03-01T00:00:00',
          'now',
          '0',
          '1741000000',
          '+275760-09-13T00:00:00.000Z',
          new Date(Date.now() + 86_400_000).toISOString(),
        ),
        nastyString,
      );
    case 'int':
    case 'number':
      return f.invalid ? fc.constantFrom(...f.invalid) : undefined;
    case 'array':
      return fc.constantFrom(
        [],
        ['a', 'a'],
        [''],
        ['x'.repeat(65)],
        Array.from({ length: 1001 }, (_, i) => `SO-${i}`),
      );
    default:
      return undefined;
  }
}

function applyBodyDefect(e: Endpoint, value: unknown, d: Defect): unknown {
  // Once the body is no object at all, it is as wrong as it gets.
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const body = value as Record<string, unknown>;
  const names = Object.keys(e.fields ?? {});
  switch (d.kind) {
    case 'not-an-object':
      return d.value;
    case 'missing-field': {
      const required = names.filter((n) => e.fields![n]!.required);
      const { [required[d.pick]!]: _gone, ...rest } = body;
      return rest;
    }
    case 'wrong-type':
    case 'bad-value':
      return { ...body, [names[d.pick]!]: d.value };
    case 'extra-field': {
      // Defined as an own property, as JSON.parse would: `{...}` and `[k]: v` would treat __proto__ alike.
      const out = { ...body };
      Object.defineProperty(out, d.key, { value: d.value, enumerable: true, configurable: true, writable: true });
      return out;
    }
    case 'nested-extra': {
      const target = names.find((n) => e.fields![n]!.type === 'object');
      const inner: Record<string, unknown> = { ...((target && (body[target] as Record<string, unknown>)) || {}) };
      Object.defineProperty(inner, d.key, { value: { polluted: true }, enumerable: true, configurable: true, writable: true });
      return { ...body, [target ?? d.key]: inner };
    }
    default:
      return body;
  }
}

function requestArb(): fc.Arbitrary<HostileRequest> {
  return fc
    .constantFrom(...ENDPOINTS)
    .chain((e) =>
      fc
        .tuple(
          fc.array(defectsFor(e), { minLength: 1, maxLength: 2 }),
          fc.constantFrom(...e.roles),
          fc.dictionary(
            fc.constantFrom(
              'x-forwarded-for',
              'x-request-id',
              'prefer',
              'accept',
              'accept-charset',
              'origin',
              'x-http-method-override',
              'cookie',
              'user-agent',
            ),
            fc.string({ unit: 'grapheme-ascii', maxLength: 300 }),
            { maxKeys: 3 },
          ),
          fc.nat(),
        )
        .map(([defects, role, noise, pick]) => buildRequest(e, defects, role, noise, orderIds[pick % orderIds.length]!)),
    );
}

function buildRequest(e: Endpoint, defects: Defect[], allowedRole: Role, noise: Record<string, string>, orderId: string): HostileRequest {
  const find = <K extends Defect['kind']>(kind: K) => defects.find((d) => d.kind === kind) as Extract<Defect, { kind: K }> | undefined;
  const roleDefect = find('role');
  // A signature defect needs a client that signs.
  const signer = find('signature') ? e.roles.find((r) => r.startsWith('partner:')) : undefined;
  const client = CLIENT_OF_ROLE[roleDefect?.role ?? signer ?? allowedRole];
  const method: string = find('wrong-method')?.method ?? e.method;
  const badId = find('bad-id');
  let path = e.path(badId?.id ?? orderId);
  const query = new URLSearchParams();
  const bad = find('bad-query');
  if (bad) for (const [k, v] of Object.entries(bad.query)) query.append(k, v);
  const unknownQuery = find('unknown-query');
  if (unknownQuery) query.append(unknownQuery.key, '1');
  if ([...query].length || unknownQuery) path += `?${query.toString()}`;

  const headers: Record<string, string> = { ...noise };
  for (const [k, v] of Object.entries(headers)) if (!/^[\t\x20-\x7e]*$/.test(v)) delete headers[k];
  let body: Buffer | undefined;
  if (e.body) {
    let value: unknown = e.body(orderId);
    for (const d of defects) value = applyBodyDefect(e, value, d);
    let raw = expandDeep(JSON.stringify(value) ?? 'null');
    const tooLarge = find('too-large');
    if (tooLarge) raw = JSON.stringify({ ...(typeof value === 'object' && value ? value : {}), padding: 'p'.repeat(tooLarge.size) });
    const malformed = find('malformed-json');
    if (malformed) raw = malformed.text;
    body = Buffer.from(raw, 'utf8');
    if (find('invalid-utf8'))
      body = Buffer.concat([
        body.subarray(0, Math.max(0, body.length - 2)),
        Buffer.from([0xc3, 0x28, 0xff, 0xfe]),
        body.subarray(Math.max(0, body.length - 2)),
      ]);
    headers['content-type'] = find('content-type')?.type ?? 'application/json';
    if (headers['content-type'] === '') delete headers['content-type'];
    const encoding = find('content-encoding');
    if (encoding) headers['content-encoding'] = encoding.encoding;
    const mismatch = find('idempotency-mismatch');
    if (mismatch) {
      headers['idempotency-key'] = mismatch.key;
      // Without an eventId in the body the header would supply it, which is allowed: make them differ.
      if (
        value !== null &&
        typeof value === 'object' &&
        !Array.isArray(value) &&
        !('eventId' in value) &&
        !find('too-large') &&
        !find('malformed-json') &&
        !find('invalid-utf8')
      ) {
        body = Buffer.from(expandDeep(JSON.stringify({ ...value, eventId: `body-${mismatch.key}` })), 'utf8');
      }
    }
    if (client.secret) {
      const sig = find('signature');
      const t = Math.floor(Date.now() / 1000);
      if (!sig) headers['x-signature'] = signatureHeader(client.secret, body, t);
      else if (sig.how === 'malformed') headers['x-signature'] = sig.value;
      else if (sig.how === 'foreign-secret') {
        const other =
          DEVELOPMENT_CLIENTS.find((c) => c.secret && c.secret !== client.secret && c.role === sig.secretOf) ??
          DEVELOPMENT_CLIENTS.find((c) => c.secret && c.secret !== client.secret)!;
        headers['x-signature'] = signatureHeader(other.secret!, body, t);
      } else if (sig.how === 'stale') headers['x-signature'] = signatureHeader(client.secret, body, t - sig.skewSeconds);
      else if (sig.how === 'future') headers['x-signature'] = signatureHeader(client.secret, body, t + sig.skewSeconds);
      else if (sig.how === 'other-body') headers['x-signature'] = signatureHeader(client.secret, Buffer.concat([body, Buffer.from(' ')]), t);
    }
  }
  headers.authorization = `Bearer ${client.key}`;
  if (e.name === 'Bull Board' && !roleDefect) headers.authorization = `Basic ${Buffer.from(`ops:${client.key}`).toString('base64')}`;
  const noKey = find('no-key');
  if (noKey) {
    if (noKey.header === undefined) delete headers.authorization;
    else headers.authorization = noKey.header;
  }
  const unknownKey = find('unknown-key');
  if (unknownKey)
    headers.authorization = e.name === 'Bull Board' ? `Basic ${Buffer.from(`ops:${unknownKey.key}`).toString('base64')}` : `Bearer ${unknownKey.key}`;
  const request: HostileRequest = { endpoint: e.name, method, path, headers, body, defects: defects.map((d) => d.kind) };
  // Counterexamples are printed this way, not byte by byte.
  Object.defineProperty(request, fc.toStringMethod, { value: () => describeRequest(request) });
  return request;
}

// ---- Sending and checking -----------------------------------------------------------------------

interface Answer {
  status: number;
  contentType: string;
  text: string;
}
async function send(r: HostileRequest): Promise<Answer> {
  const res = await pool.request({ method: r.method as 'GET', path: r.path, headers: r.headers, body: r.body });
  const text = await res.body.text();
  return { status: res.statusCode, contentType: String(res.headers['content-type'] ?? ''), text };
}

/** SPEC §3's error format, exactly. */
function errorFormatProblem(a: Answer): string | undefined {
  if (!a.contentType.startsWith('application/json')) return `content-type ${a.contentType}`;
  let body: unknown;
  try {
    body = JSON.parse(a.text);
  } catch {
    return 'not JSON';
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'not an object';
  const keys = Object.keys(body);
  if (keys.length !== 1 || keys[0] !== 'error') return `top-level keys ${keys.join(',')}`;
  const error = (body as { error: unknown }).error as Record<string, unknown>;
  if (typeof error !== 'object' || error === null) return 'error is not an object';
  if (typeof error.code !== 'string' || !/^[a-z][a-z0-9_]*$/.test(error.code)) return `code ${String(error.code)}`;
  if (typeof error.message !== 'string' || error.message.length === 0) return 'no message';
  if (Object.keys(error).some((k) => !['code', 'message', 'details'].includes(k))) return `error keys ${Object.keys(error).join(',')}`;
  if (/\n\s+at /.test(a.text)) return 'a stack trace';
  return undefined;
}

function describeRequest(r: HostileRequest): string {
  const body = r.body ? r.body.subarray(0, 300).toString('utf8') : '';
  return `${r.endpoint}: ${r.method} ${r.path.slice(0, 200)} defects=[${r.defects.join(', ')}] headers=${JSON.stringify(r.headers).slice(0, 400)} body=${JSON.stringify(body)}`;
}

describe('hostile input at scale', () => {
  it(`${TOTAL_REQUESTS} generated invalid requests across every endpoint: never a 5xx or a 2xx, always the error format, no row changed`, async () => {
    const before = await tableChecksums();
    const queuesBefore = await queueCounts();
    const perEndpoint = new Map<string, number>();
    const perStatus = new Map<number, number>();
    let sent = 0;

    await fc.assert(
      fc.asyncProperty(fc.array(requestArb(), { minLength: BATCH, maxLength: BATCH }), async (batch) => {
        const answers = await Promise.all(batch.map(send));
        batch.forEach((r, i) => {
          const a = answers[i]!;
          sent++;
          perEndpoint.set(r.endpoint, (perEndpoint.get(r.endpoint) ?? 0) + 1);
          perStatus.set(a.status, (perStatus.get(a.status) ?? 0) + 1);
          if (a.status < 400 || a.status >= 500 || a.status === 429) {
            const logged = hub.logLines
              .filter((l) => l.includes('"level":50'))
              .slice(-2)
              .join('\n')
              .slice(0, 1500);
            throw new Error(`HTTP ${a.status} ${a.text.slice(0, 300)} for ${describeRequest(r)}\nlogged: ${logged}`);
          }
          const problem = errorFormatProblem(a);
          if (problem) throw new Error(`error format (${problem}) of HTTP ${a.status} ${a.text.slice(0, 300)} for ${describeRequest(r)}`);
        });
      }),
      { numRuns: TOTAL_REQUESTS / BATCH, endOnFailure: true },
    );

    expect(sent).toBe(TOTAL_REQUESTS);
    for (const e of ENDPOINTS) expect(perEndpoint.get(e.name) ?? 0, e.name).toBeGreaterThan(TOTAL_REQUESTS / ENDPOINTS.length / 3);
    // Each of these was answered for some request (what a defect is answered with depends on which check sees it first).
    for (const status of [400, 401, 403, 404, 413, 415]) expect(perStatus.get(status) ?? 0, `HTTP ${status}`).toBeGreaterThan(0);
    expect(await tableChecksums()).toEqual(before);
    expect(await queueCounts()).toEqual(queuesBefore);
    // The web app runs in this process: no prototype was polluted by a __proto__ or constructor key.
    expect(Object.keys(Object.prototype)).toEqual([]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

// ---- Signatures, roles and partners, one by one ----------------------------------------------------

/** Every endpoint that writes, with a body it would take from an allowed caller. */
const WRITES = ENDPOINTS.filter((e) => e.body !== undefined || e.name === 'dead letter retry');
const SIGNED = WRITES.filter((e) => e.roles.some((r) => r.startsWith('partner:')));
const partnerOf = (e: Endpoint) => CLIENT_OF_ROLE[e.roles.find((r) => r.startsWith('partner:'))!];

function signedRequest(e: Endpoint, client: ApiClientConfig, options: { secret?: string; t?: number; body?: unknown } = {}) {
  const raw = Buffer.from(JSON.stringify(options.body ?? e.body?.(anyOrder()) ?? {}));
  const headers: Record<string, string> = { authorization: `Bearer ${client.key}`, 'content-type': 'application/json' };
  const secret = options.secret ?? client.secret;
  if (secret) headers['x-signature'] = signatureHeader(secret, raw, options.t ?? Math.floor(Date.now() / 1000));
  return { method: e.method, path: e.path(anyOrder()), headers, body: raw };
}
async function sendRaw(r: { method: string; path: string; headers: Record<string, string>; body?: Buffer }) {
  const res = await pool.request({ method: r.method as 'POST', path: r.path, headers: r.headers, body: r.body });
  const text = await res.body.text();
  const answer = { status: res.statusCode, contentType: String(res.headers['content-type'] ?? ''), text };
  expect(errorFormatProblem(answer) ?? 'ok', `${r.method} ${r.path}: ${text.slice(0, 200)}`).toBe(
    answer.status >= 400 ? 'ok' : (errorFormatProblem(answer) ?? 'ok'),
  );
  return { ...answer, body: JSON.parse(text || 'null') as { error?: { code: string } } & Record<string, unknown> };
}

describe('signatures', () => {
  it.each(SIGNED.map((e) => [e.name, e] as const))('%s: the same signed request after the 300 s window is 401; within it, a duplicate', async (_name, e) => {
    const client = partnerOf(e);
    const request = signedRequest(e, client, { body: e.body!(anyOrder()) });
    const first = await sendRaw(request);
    expect(first.status, first.text).toBeGreaterThanOrEqual(200);
    expect(first.status, first.text).toBeLessThan(300);
    const at = Date.now();
    try {
      // The hub in this process reads the time from Date: move it past the window.
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(at + (SIGNATURE_TOLERANCE_SECONDS + 2) * 1000);
      const replayed = await sendRaw(request);
      expect(replayed.status).toBe(401);
      expect(replayed.body.error?.code).toBe('invalid_signature');
      vi.setSystemTime(at - (SIGNATURE_TOLERANCE_SECONDS + 2) * 1000);
      expect((await sendRaw(request)).status).toBe(401);
    } finally {
      vi.useRealTimers();
    }
    // Inside the window the same request is what it was the first time (a duplicate, or the same refusal).
    const again = await sendRaw(request);
    expect(again.status, again.text).not.toBe(401);
    if (e.eventId) expect(again.body.duplicate).toBe(true);
  });

  it.each(SIGNED.map((e) => [e.name, e] as const))("%s: a signature made with another client's secret is 401, and changes nothing", async (_name, e) => {
    const before = await tableChecksums();
    const client = partnerOf(e);
    const others = DEVELOPMENT_CLIENTS.filter((c) => c.secret && c.id !== client.id);
    expect(others.length).toBeGreaterThanOrEqual(3);
    for (const other of [...others, { secret: `${client.secret}x` }, { secret: client.key! }]) {
      const res = await sendRaw(signedRequest(e, client, { secret: other.secret! }));
      expect(res.status, `signed with ${'id' in other ? other.id : 'a near miss'}`).toBe(401);
      expect(res.body.error?.code).toBe('invalid_signature');
    }
    expect(await tableChecksums()).toEqual(before);
  });
});

describe('roles and partners', () => {
  it('every cross-role and cross-partner write is 403, signed correctly by its caller, and changes nothing', async () => {
    const before = await tableChecksums();
    let checked = 0;
    for (const e of WRITES) {
      for (const role of ALL_ROLES.filter((r) => !e.roles.includes(r))) {
        const client = CLIENT_OF_ROLE[role];
        const res = await sendRaw(signedRequest(e, client));
        expect(res.status, `${role} → ${e.name}`).toBe(403);
        expect(res.body.error?.code).toBe('forbidden');
        checked++;
      }
    }
    // Each partner writes only its own endpoint: the three other partners' writes, and MAO's, are refused.
    expect(checked).toBe(57);
    expect(await tableChecksums()).toEqual(before);
  });
});

// ---- Lengths the client lies about -----------------------------------------------------------------

/** One request over a raw socket, so its Content-Length or framing can be wrong; the first answer. */
function rawExchange(port: number, head: string, body: Buffer): Promise<{ status: number; headers: string; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer to ${head.split('\r\n')[0]}`));
    }, 10_000);
    const tryParse = () => {
      const text = data.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const headers = text.slice(0, end);
      const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(headers)?.[1] ?? '0');
      if (data.length < end + 4 + length) return;
      clearTimeout(timer);
      socket.destroy();
      resolve({ status: Number(headers.split(' ')[1]), headers, body: data.subarray(end + 4, end + 4 + length).toString('utf8') });
    };
    socket.on('data', (d: Buffer) => {
      data = Buffer.concat([data, d]);
      tryParse();
    });
    socket.on('error', reject);
    socket.write(Buffer.concat([Buffer.from(head, 'latin1'), body]));
  });
}

describe('wrong lengths', () => {
  // A web app of this hub on its own server, set up as src/api/main.ts sets up its server.
  let server: Server;
  let port: number;
  beforeAll(async () => {
    server = createApp(hub.web, { waiters: new EventOutcomeWaiters(hub.web.redis, 'unused') }).listen(0, '127.0.0.1');
    answerClientErrorsAsJson(server);
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => {
    server?.closeAllConnections();
    server?.close();
  });
  const move = Buffer.from(JSON.stringify({ status: 3500, reasonCode: 'picking_started' }));
  const headFor = (path: string, lines: string[]) =>
    [`POST ${path} HTTP/1.1`, 'Host: hub', `Authorization: Bearer ${CLIENT_OF_ROLE.operator.key}`, 'Content-Type: application/json', ...lines, '', ''].join(
      '\r\n',
    );

  it('a Content-Length shorter than the body, a body cut short, or chunks past 64 KiB: a JSON 4xx, nothing changed', async () => {
    const before = await tableChecksums();
    const path = `/api/orders/${orderIds[0]}/status`;
    // The body's last bytes are left over as the start of a next request, which is not HTTP.
    const short = await rawExchange(port, headFor(path, [`Content-Length: ${move.length - 3}`]), move);
    expect(short.status, `${short.headers}\n${short.body}`).toBe(400);
    expect(short.headers).toMatch(/content-type: application\/json/i);
    expect(JSON.parse(short.body).error.code).toMatch(/^(malformed_json|bad_request)$/);

    const huge = await rawExchange(port, headFor(path, [`X-Padding: ${'p'.repeat(20 * 1024)}`, `Content-Length: ${move.length}`]), move);
    expect(huge.status).toBe(431);
    expect(JSON.parse(huge.body).error.code).toBe('headers_too_large');

    const zero = await rawExchange(port, headFor(path, ['Content-Length: 0']), Buffer.alloc(0));
    expect(zero.status, `${zero.headers}\n${zero.body}`).toBe(400);
    expect(JSON.parse(zero.body).error.code).toBe('malformed_json');

    // Says 64 KiB + 1, sends a valid body and stops: refused on the declared length alone.
    const declaredTooLarge = await rawExchange(port, headFor(path, [`Content-Length: ${64 * 1024 + 1}`]), move);
    expect(declaredTooLarge.status, `${declaredTooLarge.headers}\n${declaredTooLarge.body}`).toBe(413);
    expect(JSON.parse(declaredTooLarge.body).error.code).toBe('payload_too_large');

    const chunk = Buffer.from('x'.repeat(8 * 1024));
    const chunks = Buffer.concat([
      ...Array.from({ length: 9 }, () => Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')])),
      Buffer.from('0\r\n\r\n'),
    ]);
    const chunked = await rawExchange(port, headFor(path, ['Transfer-Encoding: chunked']), chunks);
    expect(chunked.status, `${chunked.headers}\n${chunked.body}`).toBe(413);
    expect(JSON.parse(chunked.body).error.code).toBe('payload_too_large');

    const signedPath = '/api/fulfillment/ship-events';
    const event = Buffer.from(JSON.stringify(ENDPOINTS[0]!.body!(orderIds[0]!)));
    const slick = CLIENT_OF_ROLE['partner:slick'];
    // Signed over the whole body but framed to cut it: what arrives is not what was signed.
    const cut = await rawExchange(
      port,
      [
        `POST ${signedPath} HTTP/1.1`,
        'Host: hub',
        `Authorization: Bearer ${slick.key}`,
        'Content-Type: application/json',
        `X-Signature: ${signatureHeader(slick.secret!, event)}`,
        `Content-Length: ${event.length - 1}`,
        '',
        '',
      ].join('\r\n'),
      event,
    );
    expect([400, 401], cut.body).toContain(cut.status);
    expect(JSON.parse(cut.body).error.code).toMatch(/^(malformed_json|invalid_signature|bad_request)$/);
    expect(await tableChecksums()).toEqual(before);
  });
});
