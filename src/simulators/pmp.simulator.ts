import { createHash } from 'node:crypto';
import { z } from 'zod';
import {
  createPartnerEventLog,
  sendPartnerEvents,
  type FirstSequence,
  type PartnerEventKind,
  type PartnerEventSimulatorLog,
  type PartnerSendFields,
  type PartnerSendOptions,
} from './partner-event-sender.js';
import { parseWith, startPartnerSimulator, type PartnerSimulator, type SimulatorListenOptions } from './partner-simulator.js';

/**
 * PMP's side of SPEC §5.2: it assigns a delivery partner to an order, and answers the hub's
 * reconciliation with the delivery state a test (or `PUT /__admin/deliveries/:orderId`) set.
 */

export const PMP_ASSIGNMENTS_PATH = '/api/assignments';
export const PMP_DELIVERIES_PATH = '/api/deliveries';

export const PMP_DELIVERY_PARTNERS = [
  { partnerId: 'PTN-GRAB', partnerName: 'Grab Express' },
  { partnerId: 'PTN-LALAMOVE', partnerName: 'Lalamove' },
  { partnerId: 'PTN-KERRY', partnerName: 'Kerry Express' },
  { partnerId: 'PTN-FLASH', partnerName: 'Flash Express' },
] as const;
export type DeliveryPartner = (typeof PMP_DELIVERY_PARTNERS)[number];

export const PMP_DELIVERY_STATUSES = ['ASSIGNED', 'PICKED_UP', 'IN_TRANSIT', 'OUT_FOR_DELIVERY', 'DELIVERED', 'FAILED'] as const;
export type PmpDeliveryStatus = (typeof PMP_DELIVERY_STATUSES)[number];

export interface PmpDelivery {
  orderId: string;
  partnerId: string;
  status: PmpDeliveryStatus;
  occurredAt: string;
}

export interface PmpDeliveryUpdate {
  status: PmpDeliveryStatus;
  /** Defaults to the partner PMP assigns this order. */
  partnerId?: string;
  /** Defaults to now. */
  occurredAt?: string;
}

const assignmentRequestSchema = z.looseObject({
  orderId: z.string().min(1),
  locationId: z.string().min(1),
  codAmount: z.number().nonnegative().nullable().optional(),
});

const deliveryUpdateSchema = z.strictObject({
  status: z.enum(PMP_DELIVERY_STATUSES),
  partnerId: z.string().min(1).optional(),
  occurredAt: z.iso.datetime({ offset: true }).optional(),
});

/** The same order always gets the same partner, so a test can predict it and a retry changes nothing. */
export function partnerForOrder(orderId: string): DeliveryPartner {
  const bucket = createHash('sha256').update(orderId).digest().readUInt32BE(0) % PMP_DELIVERY_PARTNERS.length;
  return PMP_DELIVERY_PARTNERS[bucket] ?? PMP_DELIVERY_PARTNERS[0];
}

/**
 * PMP is also a caller of the hub (SPEC §5.2): `sendPmpEvents` plays PMP and sends a sequence of its
 * events to `POST /api/pmp/events`, signed with PMP's secret like any partner call, each event only
 * after the previous one was answered. A started simulator does the same in-process or over
 * `POST /__admin/events-run`, and keeps a record of what it sent.
 */

export const PMP_EVENTS_PATH = '/api/pmp/events';
export const PMP_EVENTS_RUN_PATH = '/__admin/events-run';
export const PMP_DEFAULT_HUB_URL = 'http://127.0.0.1:3000';

export const PMP_EVENT_TYPES = ['partner.assigned', 'delivery.update', 'delivery.delivered', 'delivery.failed', 'cod.collected'] as const;
export type PmpEventType = (typeof PMP_EVENT_TYPES)[number];

/** Failure reason of a `delivery.failed` event that names none. */
export const PMP_DEFAULT_FAILURE_REASON = 'recipient_unavailable';

export interface PmpLocation {
  lat: number;
  lng: number;
}

export interface PmpTracking {
  trackingId: string;
  carrierCode: string;
}

/** The body of `POST /api/pmp/events`. */
export interface PmpEvent {
  eventId: string;
  orderId: string;
  partnerId: string;
  occurredAt: string;
  type: PmpEventType;
  /** partner.assigned */
  partnerName?: string;
  location?: PmpLocation;
  /** delivery.update */
  tracking?: PmpTracking;
  /** delivery.failed */
  failureReason?: string;
  /** cod.collected */
  amount?: number;
}

/** One event of a run: its type and order; everything else has a default or is left out. */
export interface PmpEventInput {
  type: PmpEventType;
  orderId: string;
  /** Default: the partner PMP assigns this order (partnerForOrder). */
  partnerId?: string;
  /** Default `pmp-<orderId>-<n>-<type>`. */
  eventId?: string;
  /** Default: the time the event is sent. */
  occurredAt?: string;
  /** partner.assigned; default the name of partnerForOrder's partner when partnerId is that partner's. */
  partnerName?: string;
  location?: PmpLocation;
  tracking?: PmpTracking;
  /** delivery.failed; default PMP_DEFAULT_FAILURE_REASON. */
  failureReason?: string;
  /** cod.collected: required there. */
  amount?: number;
}

export interface PmpHubOptions {
  /** Default http://127.0.0.1:3000. */
  hubUrl?: string;
  /** PMP's API key and signing secret; default the development client `pmp` (src/config.ts). */
  key?: string;
  secret?: string;
}

/** `wait`, `stopOnError` and `onResult` as in PartnerSendOptions (src/simulators/partner-event-sender.ts). */
export interface SendPmpEventsOptions extends PmpHubOptions, PartnerSendOptions<PmpSendResult> {
  events: readonly PmpEventInput[];
  /**
   * n of an order's first event in this run (default 1), counted per order: a number for every order,
   * or one per order id (orders not named start at 1).
   */
  firstSequence?: FirstSequence;
}

/** What was sent for an input (`event`, with its `eventId`) and the hub's answer (see PartnerSendFields). */
export interface PmpSendResult extends PartnerSendFields<PmpEvent> {
  type: PmpEventType;
  orderId: string;
}

/** The event PMP sends for one input, with the type's defaults filled in and no undefined fields. */
export function pmpEvent(input: PmpEventInput, eventId: string, occurredAt: Date): PmpEvent {
  const assigned = partnerForOrder(input.orderId);
  const partnerId = input.partnerId ?? assigned.partnerId;
  if (input.type === 'cod.collected' && input.amount === undefined) {
    throw new Error(`PMP event cod.collected for ${input.orderId} needs an amount`);
  }
  const event: PmpEvent = {
    eventId,
    orderId: input.orderId,
    partnerId,
    occurredAt: input.occurredAt ?? occurredAt.toISOString(),
    type: input.type,
  };
  const partnerName = input.partnerName ?? (input.type === 'partner.assigned' && partnerId === assigned.partnerId ? assigned.partnerName : undefined);
  if (partnerName !== undefined) event.partnerName = partnerName;
  if (input.location !== undefined) event.location = input.location;
  if (input.tracking !== undefined) event.tracking = input.tracking;
  const failureReason = input.failureReason ?? (input.type === 'delivery.failed' ? PMP_DEFAULT_FAILURE_REASON : undefined);
  if (failureReason !== undefined) event.failureReason = failureReason;
  if (input.amount !== undefined) event.amount = input.amount;
  return event;
}

const pmpEventKind: PartnerEventKind<PmpEventInput, Pick<PmpSendResult, 'type' | 'orderId'>, PmpEvent> = {
  client: 'pmp',
  defaultHubUrl: PMP_DEFAULT_HUB_URL,
  method: 'POST',
  path: PMP_EVENTS_PATH,
  orderOf: (input) => input.orderId,
  lead: (input) => ({ type: input.type, orderId: input.orderId }),
  build: (input, n, sentAt) => pmpEvent(input, input.eventId ?? `pmp-${input.orderId}-${n}-${input.type}`, sentAt),
};

/**
 * Sends PMP's events to the hub's `POST /api/pmp/events`, signed with PMP's secret: each only after
 * the previous one was answered, `occurredAt` the time it is sent unless the input names one. Event
 * ids are `pmp-<orderId>-<n>-<type>`, n counting each order's events from `firstSequence`. Returns
 * every answer in order; a network error ends the run with a result whose httpStatus is 0.
 * The ids are deterministic, so two senders for one order (this function from a script, and a running
 * simulator's events-run, which counts from 1 too) reuse each other's ids: the hub answers a reused
 * id with another body 409 idempotency_conflict. Give the later one a `firstSequence` past the first's.
 */
export async function sendPmpEvents(options: SendPmpEventsOptions): Promise<PmpSendResult[]> {
  return sendPartnerEvents(pmpEventKind, options.events, options);
}

/** A run as the simulator makes it: the hub defaults and the sequence numbers are the simulator's. */
export type PmpEventsRunOptions = Omit<SendPmpEventsOptions, 'firstSequence'> & { firstSequence?: number };

const pmpLocationSchema = z.strictObject({ lat: z.number().min(-90).max(90), lng: z.number().min(-180).max(180) });
const pmpEventInputSchema = z
  .strictObject({
    type: z.enum(PMP_EVENT_TYPES),
    /** May be left out when the run names one for all its events. */
    orderId: z.string().min(1).optional(),
    partnerId: z.string().min(1).optional(),
    eventId: z.string().min(1).max(200).optional(),
    occurredAt: z.iso.datetime({ offset: true }).optional(),
    partnerName: z.string().min(1).optional(),
    location: pmpLocationSchema.optional(),
    tracking: z.strictObject({ trackingId: z.string().min(1), carrierCode: z.string().min(1) }).optional(),
    failureReason: z.string().min(1).optional(),
    amount: z.number().nonnegative().optional(),
  })
  .refine((e) => e.type !== 'cod.collected' || e.amount !== undefined, { message: 'amount is required for cod.collected', path: ['amount'] });
const pmpEventsRunSchema = z
  .strictObject({
    hubUrl: z.url({ protocol: /^https?$/ }).optional(),
    key: z.string().min(1).optional(),
    secret: z.string().min(1).optional(),
    /** Defaults for every event of the run. */
    orderId: z.string().min(1).optional(),
    partnerId: z.string().min(1).optional(),
    events: z.array(pmpEventInputSchema).min(1).max(50),
    wait: z.number().int().min(0).max(10).optional(),
    stopOnError: z.boolean().optional(),
    firstSequence: z.number().int().min(1).optional(),
  })
  .refine((run) => run.orderId !== undefined || run.events.every((e) => e.orderId !== undefined), {
    message: 'every event needs an orderId when the run names none',
    path: ['events'],
  });

/** configureHub, sent, clearSent and onSent: see PartnerEventSimulatorLog (src/simulators/partner-event-sender.ts). */
export interface PmpSimulator extends PartnerSimulator, PartnerEventSimulatorLog<PmpSendResult, PmpHubOptions> {
  setDelivery(orderId: string, update: PmpDeliveryUpdate): PmpDelivery;
  getDelivery(orderId: string): PmpDelivery | undefined;
  deleteDelivery(orderId: string): void;
  clearDeliveries(): void;
  /** Where event runs go when they name no hub: the start options' values, or the defaults. Live. */
  readonly hub: { hubUrl: string; key: string; secret: string };
  /**
   * sendPmpEvents with this simulator's hub and credentials; event numbers continue per order across
   * runs, so a second run never reuses an event id. Every result is added to `sent`.
   */
  sendPmpEvents(options: PmpEventsRunOptions): Promise<PmpSendResult[]>;
}

export interface PmpSimulatorOptions extends SimulatorListenOptions, PmpHubOptions {}

export async function startPmpSimulator(options: PmpSimulatorOptions = {}): Promise<PmpSimulator> {
  const deliveries = new Map<string, PmpDelivery>();

  // `log.hub` is one object, changed in place, so `sim.hub` stays live.
  const log = createPartnerEventLog<PmpSendResult>('pmp', PMP_DEFAULT_HUB_URL, options);

  async function runEvents(runOptions: PmpEventsRunOptions): Promise<PmpSendResult[]> {
    const counts = runOptions.events.map((e) => [e.orderId, 1] as const);
    return log.run(runOptions, counts, (withHub, firstSequence) => sendPmpEvents({ ...withHub, firstSequence }));
  }

  function setDelivery(orderId: string, update: PmpDeliveryUpdate): PmpDelivery {
    const delivery: PmpDelivery = {
      orderId,
      partnerId: update.partnerId ?? partnerForOrder(orderId).partnerId,
      status: update.status,
      occurredAt: update.occurredAt ?? new Date().toISOString(),
    };
    deliveries.set(orderId, delivery);
    return delivery;
  }

  const sim = await startPartnerSimulator({
    name: 'pmp',
    port: options.port,
    host: options.host,
    routes: [
      {
        method: 'POST',
        path: PMP_ASSIGNMENTS_PATH,
        handle: (req) => {
          const parsed = parseWith(assignmentRequestSchema, req.body);
          if (!parsed.ok) return parsed.response;
          const partner = partnerForOrder(parsed.value.orderId);
          return { status: 200, body: { partnerId: partner.partnerId, partnerName: partner.partnerName } };
        },
      },
      {
        method: 'GET',
        path: `${PMP_DELIVERIES_PATH}/:orderId`,
        handle: (req) => {
          const orderId = req.params.orderId ?? '';
          const delivery = deliveries.get(orderId);
          if (!delivery) return { status: 404, body: { error: 'delivery_not_found', orderId } };
          return { status: 200, body: delivery };
        },
      },
    ],
    adminRoutes: [
      { method: 'GET', path: '/__admin/deliveries', handle: () => ({ status: 200, body: [...deliveries.values()] }) },
      {
        method: 'PUT',
        path: '/__admin/deliveries/:orderId',
        handle: (req) => {
          const parsed = parseWith(deliveryUpdateSchema, req.body);
          if (!parsed.ok) return parsed.response;
          return { status: 200, body: setDelivery(req.params.orderId ?? '', parsed.value) };
        },
      },
      {
        method: 'DELETE',
        path: '/__admin/deliveries',
        handle: () => {
          const cleared = deliveries.size;
          deliveries.clear();
          return { status: 200, body: { cleared } };
        },
      },
      ...log.adminRoutes({
        runPath: PMP_EVENTS_RUN_PATH,
        recordPath: '/__admin/events',
        schema: pmpEventsRunSchema,
        runBody: (body) =>
          runEvents({
            hubUrl: body.hubUrl,
            key: body.key,
            secret: body.secret,
            // The schema made sure an event without an orderId has the run's.
            events: body.events.map((e) => ({ ...e, orderId: e.orderId ?? body.orderId ?? '', partnerId: e.partnerId ?? body.partnerId })),
            wait: body.wait,
            stopOnError: body.stopOnError,
            firstSequence: body.firstSequence,
          }),
        answerLead: (r) => ({ type: r.type, orderId: r.orderId }),
      }),
    ],
  });

  return Object.assign(sim, {
    setDelivery,
    getDelivery: (orderId: string): PmpDelivery | undefined => deliveries.get(orderId),
    deleteDelivery: (orderId: string): void => {
      deliveries.delete(orderId);
    },
    clearDeliveries: (): void => deliveries.clear(),
    // Live: the same objects the runs use and fill.
    hub: log.hub,
    sent: log.sent,
    configureHub: log.configureHub,
    sendPmpEvents: runEvents,
    clearSent: log.clearSent,
    onSent: log.onSent,
  });
}
