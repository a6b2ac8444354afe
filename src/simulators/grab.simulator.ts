import { z } from 'zod';
import {
  createPartnerEventLog,
  sendPartnerEvents,
  type PartnerEventSimulatorLog,
  type PartnerSendFields,
  type PartnerSendOptions,
} from './partner-event-sender.js';
import { startPartnerSimulator, type PartnerSimulator, type SimulatorListenOptions } from './partner-simulator.js';

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

/** `wait`, `stopOnError` and `onResult` as in PartnerSendOptions (src/simulators/partner-event-sender.ts). */
export interface SendCourierStatusesOptions extends CourierHubOptions, PartnerSendOptions<CourierSendResult> {
  order: CourierOrder;
  statuses: readonly CourierStatus[];
  /** Added to every event (a courier reports where it is), under the per-status extras. */
  location?: CourierLocation;
  /** Extra fields per status, e.g. `{ DELIVERED: { proofOfDelivery, location } }`. */
  extra?: Partial<Record<CourierStatus, CourierStatusExtra>>;
  /** Event ids are `<prefix>-<n>-<status>`; default `grab-<orderId>`. */
  eventIdPrefix?: string;
  /** n of the first event (default 1): a second run for the same order continues the count. */
  firstSequence?: number;
}

/** What was sent for a status (`event`, with its `eventId`) and the hub's answer (see PartnerSendFields). */
export interface CourierSendResult extends PartnerSendFields<CourierStatusEvent> {
  status: CourierStatus;
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
  const prefix = options.eventIdPrefix ?? `grab-${options.order.orderId}`;
  return sendPartnerEvents(
    {
      client: 'grab',
      defaultHubUrl: DEFAULT_HUB_URL,
      method: 'PUT',
      path: DELIVERY_STATUS_PATH,
      // One order: n is firstSequence + the status's index.
      orderOf: () => options.order.orderId,
      lead: (status: CourierStatus) => ({ status }),
      build: (status, n, sentAt) =>
        courierStatusEvent(options.order, status, `${prefix}-${n}-${status}`, sentAt, {
          ...(options.location ? { location: options.location } : {}),
          ...options.extra?.[status],
        }),
    },
    options.statuses,
    options,
  );
}

export interface GrabSimulatorOptions extends SimulatorListenOptions, CourierHubOptions {}

/** A courier run as the simulator makes it: the hub and the sequence numbers are the simulator's. */
export type CourierRunOptions = Omit<SendCourierStatusesOptions, 'firstSequence'> & { firstSequence?: number };

/** configureHub, sent, clearSent and onSent: see PartnerEventSimulatorLog (src/simulators/partner-event-sender.ts). */
export interface GrabSimulator extends PartnerSimulator, PartnerEventSimulatorLog<CourierSendResult, CourierHubOptions> {
  /** Where courier runs go when they name no hub: the start options' values, or the defaults. A copy. */
  readonly hub: { hubUrl: string; key: string; secret: string };
  /**
   * sendCourierStatuses with this simulator's hub and credentials; event numbers continue per order
   * across runs, so a second run never reuses an event id. Every result is added to `sent`.
   */
  sendCourierStatuses(options: CourierRunOptions): Promise<CourierSendResult[]>;
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
  const log = createPartnerEventLog<CourierSendResult>('grab', DEFAULT_HUB_URL, options);

  const run = async (runOptions: CourierRunOptions): Promise<CourierSendResult[]> => {
    const { orderId } = runOptions.order;
    return log.run(runOptions, [[orderId, runOptions.statuses.length]], (withHub, firstSequence) =>
      sendCourierStatuses({ ...withHub, firstSequence: firstSequence[orderId] }),
    );
  };

  const sim = await startPartnerSimulator({
    name: 'grab',
    port: options.port,
    host: options.host,
    routes: [],
    adminRoutes: log.adminRoutes({
      runPath: COURIER_RUN_PATH,
      recordPath: '/__admin/courier-events',
      schema: courierRunSchema,
      runBody: (body) =>
        run({
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
        }),
      answerLead: (r) => ({ status: r.status }),
    }),
  });

  // defineProperties, not Object.assign: assign would copy the getters' current values.
  return Object.defineProperties(sim, {
    hub: { get: () => ({ ...log.hub }), enumerable: true },
    sent: { get: () => log.sent, enumerable: true },
    configureHub: { value: log.configureHub, enumerable: true },
    sendCourierStatuses: { value: run, enumerable: true },
    clearSent: { value: log.clearSent, enumerable: true },
    onSent: { value: log.onSent, enumerable: true },
  }) as GrabSimulator;
}

/** For code that holds the simulator as a plain PartnerSimulator (e.g. `startAllSimulators().grab`). */
export function isGrabSimulator(sim: PartnerSimulator): sim is GrabSimulator {
  return typeof (sim as Partial<GrabSimulator>).sendCourierStatuses === 'function';
}
