import { z } from 'zod';
import { INTEGRATIONS } from '../../config.js';
import { STATUS_CODES, STATUS_NAMES } from '../../machines/order.machine.js';

/**
 * What the API answers, as zod schemas, for the OpenAPI document. Requests are described by the very
 * schemas the routes validate with (imported in document.ts); answers are built by view functions,
 * so they are described here. They are strict objects: `test/integration/openapi.test.ts` parses real
 * answers with them, so a field a view adds or drops without this file following fails that test.
 */

const instant = z.iso.datetime({ offset: true });
const nullableInstant = instant.nullable();

/**
 * A status code, described rather than enumerated: the generator folds a nullable use into a named
 * component and drops null from an enum, so either would misstate the fields that may be null.
 */
export const statusCodeSchema = z
  .number()
  .int()
  .meta({ description: `An order status: ${STATUS_CODES.map((c) => `${c} ${STATUS_NAMES[c]}`).join(', ')}.` });

export const errorResponseSchema = z
  .strictObject({
    error: z.strictObject({
      code: z.string().meta({ description: 'A stable snake_case code; see the document description for the list.' }),
      message: z.string(),
      details: z.unknown().optional(),
    }),
  })
  .meta({ id: 'Error', description: 'Every error the hub answers, whatever the status (SPEC §3).' });

const location = z.strictObject({ lat: z.number(), lng: z.number() });

export const orderSchema = z
  .strictObject({
    orderId: z.string(),
    shipFromLocationId: z.string(),
    status: statusCodeSchema,
    statusName: z.string(),
    subStep: z.string().nullable(),
    customer: z.strictObject({
      id: z.string(),
      name: z.string().optional(),
      phone: z.string().optional(),
      email: z.string().optional(),
    }),
    paymentMethod: z.enum(['PREPAID', 'COD']),
    codAmount: z.number().nullable(),
    tracking: z.strictObject({ trackingId: z.string(), carrierCode: z.string().nullable(), estimatedDelivery: nullableInstant }).nullable(),
    slickConfirmation: z.enum(['pending', 'confirmed', 'failed']).nullable().meta({ description: 'The Slick ship confirmation; null until `shipped`.' }),
    partner: z.strictObject({ partnerId: z.string(), partnerName: z.string().nullable() }).nullable(),
    cod: z
      .strictObject({
        expectedAmount: z.number().nullable(),
        collectedAmount: z.number().nullable(),
        collectedAt: nullableInstant,
        collectedBy: z.string().nullable(),
        eventId: z.string().nullable(),
        relay: z.string().nullable(),
        confirmedAt: nullableInstant,
      })
      .nullable()
      .meta({ description: 'The COD ledger; null for a prepaid order.' }),
    deliveryAttempts: z.number().int(),
    delivery: z.strictObject({
      courierStatus: z.string().nullable(),
      courierStatusAt: z.string().nullable(),
      estimatedDelivery: nullableInstant,
      location: location.nullable(),
      locationAt: z.string().nullable(),
      deliveredAt: z.string().nullable(),
      proofOfDelivery: z.strictObject({ receivedBy: z.string().optional(), photoUrl: z.string().optional() }).nullable(),
      lastFailure: z.strictObject({ reason: z.string().nullable(), occurredAt: z.string() }).nullable(),
      rescheduledFor: z.string().nullable(),
      returnedAt: z.string().nullable(),
    }),
    version: z.number().int(),
    createdAt: instant,
    updatedAt: instant,
    statusChangedAt: instant,
  })
  .meta({ id: 'Order' });

export const historyEntrySchema = z
  .strictObject({
    seq: z.number().int(),
    from: statusCodeSchema.nullable(),
    to: statusCodeSchema,
    subStep: z.string().nullable(),
    occurredAt: nullableInstant,
    recordedAt: instant,
    actor: z.string(),
    source: z.enum(['slick', 'grab', 'pmp', 'mao', 'operator', 'system']),
    reasonCode: z.string().nullable(),
    eventId: z.string().nullable(),
    note: z.string().nullable(),
    implied: z.boolean().meta({ description: 'A status skipped by a partner event, written so history stays sequential.' }),
    override: z.boolean().meta({ description: 'Set by the admin override.' }),
  })
  .meta({ id: 'HistoryEntry' });

export const orderHistorySchema = z.strictObject({ orderId: z.string(), history: z.array(historyEntrySchema) }).meta({ id: 'OrderHistory' });

export const eventOutcomeSchema = z
  .strictObject({
    eventId: z.string(),
    orderId: z.string(),
    source: z.string(),
    type: z.string().meta({ description: "The partner's own event type (`picking`, `SHIPPED`, `delivery.delivered`)." }),
    state: z.enum(['queued', 'applied', 'ignored', 'rejected', 'failed']),
    reason: z.string().nullable(),
    orderStatus: statusCodeSchema.nullable(),
    receivedAt: instant,
    processedAt: nullableInstant,
    duplicate: z.literal(true).optional(),
  })
  .meta({ id: 'EventOutcome' });

export const eventAcceptedSchema = z
  .strictObject({ eventId: z.string(), state: z.enum(['queued', 'applied', 'ignored', 'rejected', 'failed']), duplicate: z.literal(true).optional() })
  .meta({
    id: 'EventAccepted',
    description:
      'The event is committed to Postgres, in the state it was committed in: `queued` when it waits for a worker, or its outcome when the web stored and applied it in one transaction (INTAKE_APPLY=web, the default). `GET /api/events/{eventId}` reads the outcome.',
  });

export const orderEventsSchema = z.strictObject({ orderId: z.string(), events: z.array(eventOutcomeSchema) }).meta({ id: 'OrderEvents' });

export const orderTiersSchema = z
  .strictObject({
    orderId: z.string(),
    tiers: z.array(
      z.strictObject({
        tier: z.union([z.literal(1), z.literal(2), z.literal(3)]),
        name: z.string(),
        state: z.enum(['pending', 'ready', 'done', 'failed', 'not_applicable']),
        updatedAt: nullableInstant,
        detail: z.record(z.string(), z.unknown()),
      }),
    ),
    discrepancies: z.array(
      z.strictObject({
        code: z.string(),
        tier: z.number().int().nullable(),
        detail: z.unknown(),
        openedAt: instant,
        resolvedAt: nullableInstant,
      }),
    ),
  })
  .meta({ id: 'OrderTiers' });

export const partnerCallSchema = z
  .strictObject({
    id: z.number().int(),
    integration: z.string(),
    operation: z.string(),
    orderId: z.string().nullable(),
    method: z.string(),
    url: z.string(),
    attempt: z.number().int(),
    status: z.number().int().nullable(),
    latencyMs: z.number().int(),
    errorClass: z.enum(['retriable', 'non_retriable']).nullable(),
    error: z.string().nullable(),
    requestBody: z.unknown(),
    responseBody: z.unknown(),
    createdAt: instant,
  })
  .meta({ id: 'PartnerCall', description: 'One attempt of a call to a partner, with secrets redacted.' });

export const orderPartnerCallsSchema = z.strictObject({ orderId: z.string(), partnerCalls: z.array(partnerCallSchema) }).meta({ id: 'OrderPartnerCalls' });

export const orderPageSchema = z.strictObject({ orders: z.array(orderSchema), nextCursor: z.string().nullable() }).meta({ id: 'OrderPage' });

export const bulkMoveResultSchema = z.strictObject({ moved: z.number().int(), orders: z.array(orderSchema) }).meta({ id: 'BulkMoveResult' });

export const locationsSchema = z
  .strictObject({ locations: z.array(z.strictObject({ locationId: z.string(), name: z.string(), region: z.string() })) })
  .meta({ id: 'Locations' });

export const interventionSchema = z
  .strictObject({
    id: z.uuid(),
    orderId: z.string(),
    cause: z.string().meta({ description: 'What the hub could not finish, e.g. `slick_confirmation_failed`, `pmp_delivery_failed`, a discrepancy code.' }),
    state: z.enum(['open', 'resolved', 'dismissed']),
    detail: z.unknown(),
    createdAt: instant,
    updatedAt: instant,
    resolvedAt: nullableInstant,
    resolvedBy: z.string().nullable(),
    resolution: z.string().nullable(),
    note: z.string().nullable(),
  })
  .meta({ id: 'Intervention' });

export const interventionListSchema = z.strictObject({ interventions: z.array(interventionSchema) }).meta({ id: 'Interventions' });

export const incidentSchema = z
  .strictObject({
    id: z.string(),
    cause: z.string().meta({ description: '`circuit_open:<integration>`, dead letters above the threshold, events past their SLA.' }),
    state: z.enum(['open', 'resolved']),
    severity: z.string(),
    summary: z.string(),
    detail: z.unknown(),
    openedAt: instant,
    resolvedAt: nullableInstant,
  })
  .meta({ id: 'Incident' });

export const incidentListSchema = z.strictObject({ incidents: z.array(incidentSchema) }).meta({ id: 'Incidents' });

export const deadLetterSchema = z
  .strictObject({
    id: z.string().meta({ description: '`<queue>:<job id>`' }),
    queue: z.string(),
    jobId: z.string().optional(),
    name: z.string(),
    data: z.unknown(),
    error: z.string().optional(),
    attemptsMade: z.number().int(),
    createdAt: instant,
    failedAt: nullableInstant,
  })
  .meta({ id: 'DeadLetter' });

export const deadLetterListSchema = z.strictObject({ deadLetters: z.array(deadLetterSchema) }).meta({ id: 'DeadLetters' });
export const deadLetterRetriedSchema = z.strictObject({ retried: deadLetterSchema }).meta({ id: 'DeadLetterRetried' });

const healthSample = z.strictObject({
  at: z.number().meta({ description: 'Unix milliseconds.' }),
  kind: z.enum(['probe', 'call']),
  ok: z.boolean(),
  latencyMs: z.number(),
  status: z.number().int().nullable(),
  error: z.string().optional(),
});

export const integrationHealthSchema = z
  .strictObject({
    integrations: z.array(
      z.strictObject({
        integration: z.enum(INTEGRATIONS),
        configured: z.boolean(),
        status: z.enum(['up', 'degraded', 'down', 'unknown']),
        circuit: z.strictObject({
          state: z.enum(['closed', 'half_open', 'open']),
          failures: z.number().int(),
          openUntil: z.number().nullable().meta({ description: 'Unix milliseconds until which an open breaker holds calls.' }),
          inFlight: z.number().int(),
        }),
        probe: z.strictObject({ last: healthSample.nullable(), availability: z.number().nullable(), samples: z.number().int() }),
        calls: z.strictObject({
          count: z.number().int(),
          errorRate: z.number().nullable(),
          latencyMs: z.strictObject({ p50: z.number().nullable(), p95: z.number().nullable(), p99: z.number().nullable() }),
        }),
      }),
    ),
  })
  .meta({ id: 'IntegrationHealth' });

export const liveSchema = z.strictObject({ status: z.literal('ok') }).meta({ id: 'Liveness' });
export const readySchema = z
  .strictObject({
    status: z.enum(['ready', 'not_ready']),
    checks: z.array(z.strictObject({ name: z.string(), ok: z.boolean(), latencyMs: z.number(), error: z.string().optional() })),
  })
  .meta({ id: 'Readiness' });

export const statusSummarySchema = z
  .strictObject({
    asOf: instant,
    total: z.number().int(),
    byStatus: z.array(z.strictObject({ status: statusCodeSchema, name: z.string(), count: z.number().int() })),
    byLocation: z.array(
      z.strictObject({
        locationId: z.string(),
        name: z.string(),
        region: z.string(),
        total: z.number().int(),
        byStatus: z.array(z.strictObject({ status: statusCodeSchema, count: z.number().int() })),
      }),
    ),
  })
  .meta({ id: 'StatusSummary' });

export const deliveryAnalyticsSchema = z
  .strictObject({
    groupBy: z.enum(['partner', 'location', 'carrier']),
    rows: z.array(
      z.strictObject({
        key: z.string(),
        orders: z.number().int(),
        delivered: z.number().int(),
        failedAttempts: z.number().int(),
        returned: z.number().int(),
        inDelivery: z.number().int(),
        successRate: z.number().nullable(),
        avgAttempts: z.number().nullable(),
        pickupToDeliveredP50Ms: z.number().nullable(),
        pickupToDeliveredP90Ms: z.number().nullable(),
      }),
    ),
  })
  .meta({ id: 'DeliveryAnalytics' });

export const flowAnalyticsSchema = z
  .strictObject({
    stages: z.array(
      z.strictObject({ from: statusCodeSchema, to: statusCodeSchema, count: z.number().int(), p50Ms: z.number(), p90Ms: z.number(), maxMs: z.number() }),
    ),
  })
  .meta({ id: 'FlowAnalytics' });

export const errorAnalyticsSchema = z
  .strictObject({
    rows: z.array(
      z.strictObject({ integration: z.string(), errorClass: z.string(), count: z.number().int(), lastAt: instant, lastError: z.string().nullable() }),
    ),
  })
  .meta({ id: 'ErrorAnalytics' });

export const statusChangeEventSchema = z
  .strictObject({ orderId: z.string(), from: statusCodeSchema.nullable(), to: statusCodeSchema, at: z.string(), locationId: z.string().nullable() })
  .meta({ id: 'StatusChange', description: 'The `data` of one `event: status` of the live stream.' });
