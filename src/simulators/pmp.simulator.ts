import { createHash } from 'node:crypto';
import { z } from 'zod';
import { HubClient, type HubResponse } from '../api/hub-client.js';
import { DEVELOPMENT_CLIENTS } from '../config.js';
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

export interface SendPmpEventsOptions extends PmpHubOptions {
  events: readonly PmpEventInput[];
  /** Sends `Prefer: wait=<seconds>` (the hub waits at most 10 s) so each answer carries the outcome. */
  wait?: number;
  /**
   * n of an order's first event in this run (default 1), counted per order: a number for every order,
   * or one per order id (orders not named start at 1).
   */
  firstSequence?: number | Readonly<Record<string, number>>;
  /** Stop after the first answer that is not 2xx (the rest is not sent). A network error always stops. */
  stopOnError?: boolean;
  /** Called with each answer as it arrives, before the next event is sent. */
  onResult?: (result: PmpSendResult) => void;
}

export interface PmpSendResult {
  type: PmpEventType;
  orderId: string;
  eventId: string;
  /** What was sent. */
  event: PmpEvent;
  /** The hub's HTTP status; 0 when the call failed without an answer (see `error`). */
  httpStatus: number;
  /** The hub's answer: for `Prefer: wait`, the outcome (200) or the error with the outcome in details (422). */
  body: unknown;
  error?: string;
  sentAt: string;
  answeredAt: string;
}

function defaultPmpClient(): { key: string; secret: string } {
  const pmp = DEVELOPMENT_CLIENTS.find((client) => client.id === 'pmp');
  if (!pmp?.key || !pmp.secret) throw new Error('no development client "pmp" with a key and a secret in src/config.ts');
  return { key: pmp.key, secret: pmp.secret };
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

function sequenceStart(first: SendPmpEventsOptions['firstSequence'], orderId: string): number {
  if (first === undefined) return 1;
  if (typeof first === 'number') return first;
  return first[orderId] ?? 1;
}

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
  const fallback = options.key === undefined || options.secret === undefined ? defaultPmpClient() : undefined;
  const key = options.key ?? fallback!.key;
  const secret = options.secret ?? fallback!.secret;
  const hub = new HubClient(options.hubUrl ?? PMP_DEFAULT_HUB_URL, { key, secret });
  const headers: Record<string, string> = options.wait === undefined ? {} : { prefer: `wait=${options.wait}` };
  const next = new Map<string, number>();

  const results: PmpSendResult[] = [];
  for (const input of options.events) {
    const n = next.get(input.orderId) ?? sequenceStart(options.firstSequence, input.orderId);
    next.set(input.orderId, n + 1);
    const sentAt = new Date();
    const eventId = input.eventId ?? `pmp-${input.orderId}-${n}-${input.type}`;
    const event = pmpEvent(input, eventId, sentAt);
    let answer: HubResponse | undefined;
    let error: string | undefined;
    try {
      answer = await hub.post(PMP_EVENTS_PATH, event, headers);
    } catch (err) {
      error = `cannot reach the hub at ${hub.baseUrl}: ${err instanceof Error ? err.message : String(err)}`;
    }
    const result: PmpSendResult = {
      type: input.type,
      orderId: input.orderId,
      eventId,
      event,
      httpStatus: answer?.status ?? 0,
      body: answer?.body,
      ...(error === undefined ? {} : { error }),
      sentAt: sentAt.toISOString(),
      answeredAt: new Date().toISOString(),
    };
    results.push(result);
    options.onResult?.(result);
    if (!answer) break;
    if (options.stopOnError && (answer.status < 200 || answer.status > 299)) break;
  }
  return results;
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

export interface PmpSimulator extends PartnerSimulator {
  setDelivery(orderId: string, update: PmpDeliveryUpdate): PmpDelivery;
  getDelivery(orderId: string): PmpDelivery | undefined;
  deleteDelivery(orderId: string): void;
  clearDeliveries(): void;
  /** Where event runs go when they name no hub: the start options' values, or the defaults. Live. */
  readonly hub: { hubUrl: string; key: string; secret: string };
  /** Changes the hub (and PMP's credentials) event runs use from now on. */
  configureHub(hub: PmpHubOptions): void;
  /**
   * sendPmpEvents with this simulator's hub and credentials; event numbers continue per order across
   * runs, so a second run never reuses an event id. Every result is added to `sent`.
   */
  sendPmpEvents(options: PmpEventsRunOptions): Promise<PmpSendResult[]>;
  /** Every event this simulator sent to the hub, in order, with the hub's answer. */
  readonly sent: readonly PmpSendResult[];
  clearSent(): void;
  /** Called with every event this simulator sent, once answered; returns a function that unsubscribes. */
  onSent(listener: (result: PmpSendResult) => void): () => void;
}

export interface PmpSimulatorOptions extends SimulatorListenOptions, PmpHubOptions {}

export async function startPmpSimulator(options: PmpSimulatorOptions = {}): Promise<PmpSimulator> {
  const deliveries = new Map<string, PmpDelivery>();

  // One object, changed in place, so `sim.hub` stays live.
  const hub = { hubUrl: PMP_DEFAULT_HUB_URL, ...defaultPmpClient() };
  const configureHub = (next: PmpHubOptions): void => {
    hub.hubUrl = next.hubUrl ?? hub.hubUrl;
    hub.key = next.key ?? hub.key;
    hub.secret = next.secret ?? hub.secret;
  };
  configureHub(options);
  const sent: PmpSendResult[] = [];
  const sentListeners = new Set<(result: PmpSendResult) => void>();
  /** Last event number used per order. */
  const sequences = new Map<string, number>();

  async function runEvents(runOptions: PmpEventsRunOptions): Promise<PmpSendResult[]> {
    // Reserved before sending, so two overlapping runs for one order never share an event id.
    const counts = new Map<string, number>();
    for (const e of runOptions.events) counts.set(e.orderId, (counts.get(e.orderId) ?? 0) + 1);
    const firstSequence: Record<string, number> = {};
    for (const [orderId, count] of counts) {
      const first = runOptions.firstSequence ?? (sequences.get(orderId) ?? 0) + 1;
      firstSequence[orderId] = first;
      sequences.set(orderId, Math.max(sequences.get(orderId) ?? 0, first + count - 1));
    }
    return sendPmpEvents({
      ...runOptions,
      hubUrl: runOptions.hubUrl ?? hub.hubUrl,
      key: runOptions.key ?? hub.key,
      secret: runOptions.secret ?? hub.secret,
      firstSequence,
      onResult: (result) => {
        sent.push(result);
        for (const listener of sentListeners) {
          try {
            listener(result);
          } catch {
            // A broken log line must not stop the run.
          }
        }
        runOptions.onResult?.(result);
      },
    });
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
      {
        method: 'POST',
        path: PMP_EVENTS_RUN_PATH,
        handle: async (req) => {
          const parsed = parseWith(pmpEventsRunSchema, req.body);
          if (!parsed.ok) return parsed.response;
          const body = parsed.value;
          const results = await runEvents({
            hubUrl: body.hubUrl,
            key: body.key,
            secret: body.secret,
            // The schema made sure an event without an orderId has the run's.
            events: body.events.map((e) => ({ ...e, orderId: e.orderId ?? body.orderId ?? '', partnerId: e.partnerId ?? body.partnerId })),
            wait: body.wait,
            stopOnError: body.stopOnError,
            firstSequence: body.firstSequence,
          });
          return {
            status: 200,
            body: results.map((r) => ({
              type: r.type,
              orderId: r.orderId,
              eventId: r.eventId,
              httpStatus: r.httpStatus,
              body: r.body,
              ...(r.error === undefined ? {} : { error: r.error }),
            })),
          };
        },
      },
      { method: 'GET', path: '/__admin/events', handle: () => ({ status: 200, body: sent }) },
      {
        method: 'DELETE',
        path: '/__admin/events',
        handle: () => {
          const cleared = sent.length;
          sent.length = 0;
          return { status: 200, body: { cleared } };
        },
      },
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
    hub,
    sent,
    configureHub,
    sendPmpEvents: runEvents,
    clearSent: (): void => {
      sent.length = 0;
    },
    onSent: (listener: (result: PmpSendResult) => void): (() => void) => {
      sentListeners.add(listener);
      return () => {
        sentListeners.delete(listener);
      };
    },
  });
}
