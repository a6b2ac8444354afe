import type { EventKind } from '../inbox/event-kind.js';
import { courierStatus } from './courier-status.js';
import { pmpDeliveryStates } from './pmp-delivery-state.js';
import { pmpEvents } from './pmp-events.js';
import { shipEvents } from './ship-events.js';

/**
 * Every inbound event kind the hub takes, by name (inbound_events.kind). A kind is one file of this
 * folder: its route and role (or what stores it), schema and rules. The intake routes, the inbox engine, the sweeper and the
 * metrics read this registry and nothing else, so a new partner event is a new entry here.
 */
export const EVENT_KINDS = {
  'ship-event': shipEvents,
  'courier-status': courierStatus,
  'pmp-event': pmpEvents,
  'pmp-delivery-state': pmpDeliveryStates,
} as const satisfies Record<string, EventKind<any>>;

export type EventKindName = keyof typeof EVENT_KINDS;

export function eventKind(name: string): EventKind<any> | undefined {
  return Object.hasOwn(EVENT_KINDS, name) ? EVENT_KINDS[name as EventKindName] : undefined;
}

export const ALL_EVENT_KINDS: ReadonlyArray<EventKind<any>> = Object.values(EVENT_KINDS);
