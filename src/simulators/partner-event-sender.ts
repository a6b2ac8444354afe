import type { z } from 'zod';
import { HubClient, type HubResponse } from '../api/hub-client.js';
import { DEVELOPMENT_CLIENTS } from '../config.js';
import { parseWith, type AdminRoute } from './partner-simulator.js';

/**
 * What the simulators that call the hub as a partner share (Grab's courier statuses, PMP's events):
 * `sendPartnerEvents` sends a list of events one after the other, each only after the previous one
 * was answered, signed with the partner's secret (src/api/hub-client.ts); `createPartnerEventLog`
 * gives a started simulator its hub, its per-order event numbers, its record of what it sent and the
 * admin routes that make a run and list or clear that record. What an event looks like is the
 * partner's own, given as a `PartnerEventKind`.
 */

export interface PartnerHubOptions {
  /** Default: the kind's defaultHubUrl. */
  hubUrl?: string;
  /** The partner's API key and signing secret; default the kind's development client (src/config.ts). */
  key?: string;
  secret?: string;
}

export interface PartnerHub {
  hubUrl: string;
  key: string;
  secret: string;
}

/** The key and secret of a development client of src/config.ts. */
export function developmentClientKeys(id: string): { key: string; secret: string } {
  const client = DEVELOPMENT_CLIENTS.find((c) => c.id === id);
  if (!client?.key || !client.secret) throw new Error(`no development client "${id}" with a key and a secret in src/config.ts`);
  return { key: client.key, secret: client.secret };
}

/** One partner's events: where they go, and how the body of one is made. */
export interface PartnerEventKind<I, L, E extends { eventId: string }> {
  /** The development client that signs the calls when the options name no key or secret. */
  client: string;
  defaultHubUrl: string;
  method: 'POST' | 'PUT';
  path: string;
  /** The order an item is for: event numbers count per order. */
  orderOf: (item: I) => string;
  /** The fields a result starts with (what the item was), before the ones every result has. */
  lead: (item: I) => L;
  /** The body of the event for an item: n is its number within its order, sentAt the time it is sent. */
  build: (item: I, n: number, sentAt: Date) => E;
}

/** What every send result carries after the partner's own leading fields. */
export interface PartnerSendFields<E> {
  eventId: string;
  /** What was sent. */
  event: E;
  /** The hub's HTTP status; 0 when the call failed without an answer (see `error`). */
  httpStatus: number;
  /** The hub's answer: for `Prefer: wait`, the outcome (200) or the error with the outcome in details (422). */
  body: unknown;
  error?: string;
  sentAt: string;
  answeredAt: string;
}

export interface PartnerSendOptions<R> extends PartnerHubOptions {
  /** Sends `Prefer: wait=<seconds>` (the hub waits at most 10 s) so each answer carries the outcome. */
  wait?: number;
  /** Stop after the first answer that is not 2xx (the rest is not sent). A network error always stops. */
  stopOnError?: boolean;
  /** Called with each answer as it arrives, before the next event is sent. */
  onResult?: (result: R) => void;
}

/** n of an order's first event (default 1): one number for every order, or one per order id (others start at 1). */
export type FirstSequence = number | Readonly<Record<string, number>>;

function sequenceStart(first: FirstSequence | undefined, orderId: string): number {
  if (first === undefined) return 1;
  if (typeof first === 'number') return first;
  return first[orderId] ?? 1;
}

/**
 * Sends one event per item to the kind's path, signed: each only after the previous one was answered.
 * Returns every answer in order; a network error ends the run with a result whose httpStatus is 0.
 */
export async function sendPartnerEvents<I, L, E extends { eventId: string }>(
  kind: PartnerEventKind<I, L, E>,
  items: readonly I[],
  options: PartnerSendOptions<L & PartnerSendFields<E>> & { firstSequence?: FirstSequence },
): Promise<Array<L & PartnerSendFields<E>>> {
  const fallback = options.key === undefined || options.secret === undefined ? developmentClientKeys(kind.client) : undefined;
  const key = options.key ?? fallback!.key;
  const secret = options.secret ?? fallback!.secret;
  const hub = new HubClient(options.hubUrl ?? kind.defaultHubUrl, { key, secret });
  const headers: Record<string, string> = options.wait === undefined ? {} : { prefer: `wait=${options.wait}` };
  const next = new Map<string, number>();

  const results: Array<L & PartnerSendFields<E>> = [];
  for (const item of items) {
    const orderId = kind.orderOf(item);
    const n = next.get(orderId) ?? sequenceStart(options.firstSequence, orderId);
    next.set(orderId, n + 1);
    const sentAt = new Date();
    const event = kind.build(item, n, sentAt);
    let answer: HubResponse | undefined;
    let error: string | undefined;
    try {
      answer = await hub.send(kind.method, kind.path, event, headers);
    } catch (err) {
      error = `cannot reach the hub at ${hub.baseUrl}: ${err instanceof Error ? err.message : String(err)}`;
    }
    const result: L & PartnerSendFields<E> = {
      ...kind.lead(item),
      eventId: event.eventId,
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

/** A run as a started simulator makes it: the hub defaults and the event numbers are the simulator's. */
export interface PartnerRunOptions<R> extends PartnerSendOptions<R> {
  firstSequence?: number;
}

/** What a started simulator that sends partner events shows besides its own run method. */
export interface PartnerEventSimulatorLog<R, H extends PartnerHubOptions = PartnerHubOptions> {
  /** Changes the hub (and the partner's credentials) its runs use from now on. */
  configureHub(hub: H): void;
  /** Every event this simulator sent, in order, with the hub's answer. */
  readonly sent: readonly R[];
  clearSent(): void;
  /** Called with every event this simulator sent, once answered; returns a function that unsubscribes. */
  onSent(listener: (result: R) => void): () => void;
}

export interface PartnerEventLog<R extends PartnerSendFields<unknown>> extends PartnerEventSimulatorLog<R> {
  /** Where runs go when they name no hub; one object, changed in place by configureHub. */
  readonly hub: PartnerHub;
  /** The record itself (`sent` of the simulator), filled by `run`. */
  readonly sent: R[];
  /**
   * Reserves event numbers for `counts` (an order and how many of its events the run sends; an order
   * named twice counts both), then calls `send` with the options completed with this log's hub and an
   * onResult that records each result, and the first number of each order. Numbers continue per order
   * across runs unless the options name a firstSequence.
   */
  run<O extends PartnerRunOptions<R>>(
    options: O,
    counts: Iterable<readonly [string, number]>,
    send: (options: O & PartnerHub & { onResult: (result: R) => void }, firstSequence: Record<string, number>) => Promise<R[]>,
  ): Promise<R[]>;
  /**
   * `POST runPath` (a body parsed with `schema`, run by `runBody`; the answer lists each result's
   * `answerLead` fields, eventId, httpStatus, body and error), `GET recordPath` (the record) and
   * `DELETE recordPath` (clears it, answers `{ cleared }`).
   */
  adminRoutes<B>(routes: {
    runPath: string;
    recordPath: string;
    schema: z.ZodType<B>;
    runBody: (body: B) => Promise<R[]>;
    answerLead: (result: R) => object;
  }): AdminRoute[];
}

export function createPartnerEventLog<R extends PartnerSendFields<unknown>>(
  client: string,
  defaultHubUrl: string,
  initial: PartnerHubOptions,
): PartnerEventLog<R> {
  // One object, changed in place, so a simulator can hand it out live.
  const hub: PartnerHub = { hubUrl: defaultHubUrl, ...developmentClientKeys(client) };
  const configureHub = (next: PartnerHubOptions): void => {
    hub.hubUrl = next.hubUrl ?? hub.hubUrl;
    hub.key = next.key ?? hub.key;
    hub.secret = next.secret ?? hub.secret;
  };
  configureHub(initial);

  const sent: R[] = [];
  const sentListeners = new Set<(result: R) => void>();
  /** Last event number used per order. */
  const sequences = new Map<string, number>();
  const clearSent = (): void => {
    sent.length = 0;
  };

  const run: PartnerEventLog<R>['run'] = async (options, counts, send) => {
    const perOrder = new Map<string, number>();
    for (const [orderId, count] of counts) perOrder.set(orderId, (perOrder.get(orderId) ?? 0) + count);
    // Reserved before sending, so two overlapping runs for one order never share an event id.
    const firstSequence: Record<string, number> = {};
    for (const [orderId, count] of perOrder) {
      const first = options.firstSequence ?? (sequences.get(orderId) ?? 0) + 1;
      firstSequence[orderId] = first;
      sequences.set(orderId, Math.max(sequences.get(orderId) ?? 0, first + count - 1));
    }
    return send(
      {
        ...options,
        hubUrl: options.hubUrl ?? hub.hubUrl,
        key: options.key ?? hub.key,
        secret: options.secret ?? hub.secret,
        onResult: (result: R) => {
          sent.push(result);
          for (const listener of sentListeners) {
            try {
              listener(result);
            } catch {
              // A broken log line must not stop the run.
            }
          }
          options.onResult?.(result);
        },
      },
      firstSequence,
    );
  };

  const adminRoutes: PartnerEventLog<R>['adminRoutes'] = ({ runPath, recordPath, schema, runBody, answerLead }) => [
    {
      method: 'POST',
      path: runPath,
      handle: async (req) => {
        const parsed = parseWith(schema, req.body);
        if (!parsed.ok) return parsed.response;
        const results = await runBody(parsed.value);
        return {
          status: 200,
          body: results.map((r) => ({
            ...answerLead(r),
            eventId: r.eventId,
            httpStatus: r.httpStatus,
            body: r.body,
            ...(r.error === undefined ? {} : { error: r.error }),
          })),
        };
      },
    },
    { method: 'GET', path: recordPath, handle: () => ({ status: 200, body: sent }) },
    {
      method: 'DELETE',
      path: recordPath,
      handle: () => {
        const cleared = sent.length;
        sent.length = 0;
        return { status: 200, body: { cleared } };
      },
    },
  ];

  return {
    hub,
    configureHub,
    sent,
    clearSent,
    onSent: (listener) => {
      sentListeners.add(listener);
      return () => {
        sentListeners.delete(listener);
      };
    },
    run,
    adminRoutes,
  };
}
