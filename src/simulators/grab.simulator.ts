import { z } from 'zod';
import { HubClient, type HubResponse } from '../api/hub-client.js';
import { DEVELOPMENT_CLIENTS } from '../config.js';
import { parseWith, startPartnerSimulator, type PartnerSimulator, type SimulatorListenOptions } from './partner-simulator.js';

/**
 * Grab, the last-mile courier (SPEC §5.1). The hub only probes Grab's health, so its partner side is
 * `/health` alone (set `paths: '/health'` to make the probe fail). Grab is also the caller of
 * `PUT /api/delivery/status`: `sendCourierStatuses` plays the courier and sends a status sequence to
 * the hub, signed like any partner call, one event after the other. A started simulator does the same
 * in-process or over `POST /__admin/courier-run`, and keeps a record of what it sent.
 */

export const DELIVERY_STATUS_PATH = '/api/delivery/status';
export const COURIER_RUN_PATH = '/__admin/courier-run';
export const DEFAULT_HUB_URL = 'http://127.0.0.1:3000';

export const COURIER_STATUSES = ['SHIPPED', 'IN_TRANSIT', 'OUT_FOR_DELIVERY', 'DELIVERED', 'FAILED', 'RESCHEDULED', 'RETURNED'] as const;
export type CourierStatus = (typeof COURIER_STATUSES)[number];

/** The main line a courier reports for a parcel that is delivered at the first attempt. */
export const COURIER_HAPPY_PATH: readonly CourierStatus[] = ['SHIPPED', 'IN_TRANSIT', 'OUT_FOR_DELIVERY', 'DELIVERED'];

/** Default failure reason for a FAILED event that names none. */
export const DEFAULT_FAILURE_REASON = 'recipient_unavailable';
/** A RESCHEDULED event without rescheduledFor is rescheduled to this long after it happened. */
export const DEFAULT_RESCHEDULE_MS = 24 * 3600_000;

export interface CourierLocation {
  lat: number;
  lng: number;
}

/** Fields a courier adds to an event besides its status (SPEC §5.1). */
export interface CourierStatusExtra {
  location?: CourierLocation;
  failureReason?: string;
  rescheduledFor?: string;
  proofOfDelivery?: { receivedBy?: string; photoUrl?: string };
  cod?: { amount: number; collected: boolean };
}

/** The body of `PUT /api/delivery/status`. */
export interface CourierStatusEvent extends CourierStatusExtra {
  eventId: string;
  orderId: string;
  trackingId: string;
  carrierCode: string;
  status: CourierStatus;
  occurredAt: string;
}

export interface CourierOrder {
  orderId: string;
  trackingId: string;
  carrierCode: string;
}

export interface CourierHubOptions {
  /** Default http://127.0.0.1:3000. */
  hubUrl?: string;
  /** Grab's API key and signing secret; default the development client `grab` (src/config.ts). */
  key?: string;
  secret?: string;
}

export interface SendCourierStatusesOptions extends CourierHubOptions {
  order: CourierOrder;
  statuses: readonly CourierStatus[];
  /** Sends `Prefer: wait=<seconds>` (the hub waits at most 10 s) so each answer carries the outcome. */
  wait?: number;
  /** Added to every event (a courier reports where it is), under the per-status extras. */
  location?: CourierLocation;
  /** Extra fields per status, e.g. `{ DELIVERED: { proofOfDelivery, location } }`. */
  extra?: Partial<Record<CourierStatus, CourierStatusExtra>>;
  /** Event ids are `<prefix>-<n>-<status>`; default `grab-<orderId>`. */
  eventIdPrefix?: string;
  /** n of the first event (default 1): a second run for the same order continues the count. */
  firstSequence?: number;
  /** Stop after the first answer that is not 2xx (the rest is not sent). A network error always stops. */
  stopOnError?: boolean;
  /** Called with each answer as it arrives, before the next event is sent. */
  onResult?: (result: CourierSendResult) => void;
}

export interface CourierSendResult {
  status: CourierStatus;
  eventId: string;
  /** What was sent. */
  event: CourierStatusEvent;
  /** The hub's HTTP status; 0 when the call failed without an answer (see `error`). */
  httpStatus: number;
  /** The hub's answer: for `Prefer: wait`, the outcome (200) or the error with the outcome in details (422). */
  body: unknown;
  error?: string;
  sentAt: string;
  answeredAt: string;
}

function defaultGrabClient(): { key: string; secret: string } {
  const grab = DEVELOPMENT_CLIENTS.find((client) => client.id === 'grab');
  if (!grab?.key || !grab.secret) throw new Error('no development client "grab" with a key and a secret in src/config.ts');
  return { key: grab.key, secret: grab.secret };
}

/** The event a courier sends for one status, with the status's defaults filled in. */
export function courierStatusEvent(
  order: CourierOrder,
  status: CourierStatus,
  eventId: string,
  occurredAt: Date,
  extra: CourierStatusExtra = {},
): CourierStatusEvent {
  const event: CourierStatusEvent = {
    eventId,
    orderId: order.orderId,
    trackingId: order.trackingId,
    carrierCode: order.carrierCode,
    status,
    occurredAt: occurredAt.toISOString(),
    ...extra,
  };
  if (status === 'FAILED') event.failureReason ??= DEFAULT_FAILURE_REASON;
  if (status === 'RESCHEDULED') event.rescheduledFor ??= new Date(occurredAt.getTime() + DEFAULT_RESCHEDULE_MS).toISOString();
  return event;
}

/**
 * Sends a courier's status sequence to the hub's `PUT /api/delivery/status`, signed with Grab's secret:
 * each event only after the previous one was answered, `occurredAt` the time it is sent. Returns every
 * answer in order; a network error ends the run with a result whose httpStatus is 0.
 */
export async function sendCourierStatuses(options: SendCourierStatusesOptions): Promise<CourierSendResult[]> {
  const fallback = options.key === undefined || options.secret === undefined ? defaultGrabClient() : undefined;
  const key = options.key ?? fallback!.key;
  const secret = options.secret ?? fallback!.secret;
  const hub = new HubClient(options.hubUrl ?? DEFAULT_HUB_URL, { key, secret });
  const headers: Record<string, string> = options.wait === undefined ? {} : { prefer: `wait=${options.wait}` };
  const prefix = options.eventIdPrefix ?? `grab-${options.order.orderId}`;
  const first = options.firstSequence ?? 1;

  const results: CourierSendResult[] = [];
  for (const [index, status] of options.statuses.entries()) {
    const sentAt = new Date();
    const eventId = `${prefix}-${first + index}-${status}`;
    const event = courierStatusEvent(options.order, status, eventId, sentAt, {
      ...(options.location ? { location: options.location } : {}),
      ...options.extra?.[status],
    });
    let answer: HubResponse | undefined;
    let error: string | undefined;
    try {
      answer = await hub.put(DELIVERY_STATUS_PATH, event, headers);
    } catch (err) {
      error = `cannot reach the hub at ${hub.baseUrl}: ${err instanceof Error ? err.message : String(err)}`;
    }
    const result: CourierSendResult = {
      status,
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

export interface GrabSimulatorOptions extends SimulatorListenOptions, CourierHubOptions {}

/** A courier run as the simulator makes it: the hub and the sequence numbers are the simulator's. */
export type CourierRunOptions = Omit<SendCourierStatusesOptions, 'firstSequence'> & { firstSequence?: number };

export interface GrabSimulator extends PartnerSimulator {
  /** Where courier runs go when they name no hub: the start options' values, or the defaults. */
  readonly hub: { hubUrl: string; key: string; secret: string };
  /** Changes the hub (and Grab's credentials) courier runs use from now on. */
  configureHub(hub: CourierHubOptions): void;
  /**
   * sendCourierStatuses with this simulator's hub and credentials; event numbers continue per order
   * across runs, so a second run never reuses an event id. Every result is added to `sent`.
   */
  sendCourierStatuses(options: CourierRunOptions): Promise<CourierSendResult[]>;
  /** Every courier event this simulator sent, in order, with the hub's answer. */
  readonly sent: readonly CourierSendResult[];
  clearSent(): void;
  /** Called with every courier event this simulator sent, once answered; returns a function that unsubscribes. */
  onSent(listener: (result: CourierSendResult) => void): () => void;
}

const locationSchema = z.strictObject({ lat: z.number().min(-90).max(90), lng: z.number().min(-180).max(180) });
const extraSchema = z.strictObject({
  location: locationSchema.optional(),
  failureReason: z.string().min(1).optional(),
  rescheduledFor: z.iso.datetime({ offset: true }).optional(),
  proofOfDelivery: z.strictObject({ receivedBy: z.string().optional(), photoUrl: z.string().optional() }).optional(),
  cod: z.strictObject({ amount: z.number().nonnegative(), collected: z.boolean() }).optional(),
});
const courierRunSchema = z.strictObject({
  hubUrl: z.url({ protocol: /^https?$/ }).optional(),
  key: z.string().min(1).optional(),
  secret: z.string().min(1).optional(),
  orderId: z.string().min(1),
  trackingId: z.string().min(1),
  carrierCode: z.string().min(1),
  statuses: z.array(z.enum(COURIER_STATUSES)).min(1).max(50),
  wait: z.number().int().min(0).max(10).optional(),
  stopOnError: z.boolean().optional(),
  eventIdPrefix: z.string().min(1).max(100).optional(),
  firstSequence: z.number().int().min(1).optional(),
  /** Shortcuts for the one event that uses them (FAILED, RESCHEDULED, DELIVERED); `extra` wins. */
  ...extraSchema.shape,
  extra: z.partialRecord(z.enum(COURIER_STATUSES), extraSchema).optional(),
});
type CourierRunBody = z.infer<typeof courierRunSchema>;

/** The admin body's top-level shortcuts, placed on the status they belong to. */
function extrasFromRunBody(body: CourierRunBody): Partial<Record<CourierStatus, CourierStatusExtra>> {
  const extra: Partial<Record<CourierStatus, CourierStatusExtra>> = {};
  const add = (status: CourierStatus, fields: CourierStatusExtra): void => {
    const defined = Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined));
    if (Object.keys(defined).length > 0) extra[status] = { ...defined, ...body.extra?.[status] };
  };
  add('FAILED', { failureReason: body.failureReason });
  add('RESCHEDULED', { rescheduledFor: body.rescheduledFor });
  add('DELIVERED', { proofOfDelivery: body.proofOfDelivery, cod: body.cod });
  for (const [status, fields] of Object.entries(body.extra ?? {}) as Array<[CourierStatus, CourierStatusExtra]>) {
    extra[status] ??= fields;
  }
  return extra;
}

export async function startGrabSimulator(options: GrabSimulatorOptions = {}): Promise<GrabSimulator> {
  let hub = { hubUrl: DEFAULT_HUB_URL, ...defaultGrabClient() };
  const configureHub = (next: CourierHubOptions): void => {
    hub = {
      hubUrl: next.hubUrl ?? hub.hubUrl,
      key: next.key ?? hub.key,
      secret: next.secret ?? hub.secret,
    };
  };
  configureHub(options);

  const sent: CourierSendResult[] = [];
  const sentListeners = new Set<(result: CourierSendResult) => void>();
  /** Last event number used per order. */
  const sequences = new Map<string, number>();

  async function run(runOptions: CourierRunOptions): Promise<CourierSendResult[]> {
    const { orderId } = runOptions.order;
    const firstSequence = runOptions.firstSequence ?? (sequences.get(orderId) ?? 0) + 1;
    // Reserved before sending, so two overlapping runs for one order never share an event id.
    sequences.set(orderId, Math.max(sequences.get(orderId) ?? 0, firstSequence + runOptions.statuses.length - 1));
    return sendCourierStatuses({
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

  const sim = await startPartnerSimulator({
    name: 'grab',
    port: options.port,
    host: options.host,
    routes: [],
    adminRoutes: [
      {
        method: 'POST',
        path: COURIER_RUN_PATH,
        handle: async (req) => {
          const parsed = parseWith(courierRunSchema, req.body);
          if (!parsed.ok) return parsed.response;
          const body = parsed.value;
          const results = await run({
            hubUrl: body.hubUrl,
            key: body.key,
            secret: body.secret,
            order: { orderId: body.orderId, trackingId: body.trackingId, carrierCode: body.carrierCode },
            statuses: body.statuses,
            wait: body.wait,
            stopOnError: body.stopOnError,
            eventIdPrefix: body.eventIdPrefix,
            firstSequence: body.firstSequence,
            location: body.location,
            extra: extrasFromRunBody(body),
          });
          return {
            status: 200,
            body: results.map((r) => ({
              status: r.status,
              eventId: r.eventId,
              httpStatus: r.httpStatus,
              body: r.body,
              ...(r.error === undefined ? {} : { error: r.error }),
            })),
          };
        },
      },
      { method: 'GET', path: '/__admin/courier-events', handle: () => ({ status: 200, body: sent }) },
      {
        method: 'DELETE',
        path: '/__admin/courier-events',
        handle: () => {
          const cleared = sent.length;
          sent.length = 0;
          return { status: 200, body: { cleared } };
        },
      },
    ],
  });

  // defineProperties, not Object.assign: assign would copy the getters' current values.
  return Object.defineProperties(sim, {
    hub: { get: () => ({ ...hub }), enumerable: true },
    sent: { get: () => sent, enumerable: true },
    configureHub: { value: configureHub, enumerable: true },
    sendCourierStatuses: { value: run, enumerable: true },
    clearSent: {
      value: (): void => {
        sent.length = 0;
      },
      enumerable: true,
    },
    onSent: {
      value: (listener: (result: CourierSendResult) => void): (() => void) => {
        sentListeners.add(listener);
        return () => {
          sentListeners.delete(listener);
        };
      },
      enumerable: true,
    },
  }) as GrabSimulator;
}

/** For code that holds the simulator as a plain PartnerSimulator (e.g. `startAllSimulators().grab`). */
export function isGrabSimulator(sim: PartnerSimulator): sim is GrabSimulator {
  return typeof (sim as Partial<GrabSimulator>).sendCourierStatuses === 'function';
}
