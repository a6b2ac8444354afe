import { z } from 'zod';
import { parseWith, startPartnerSimulator, type PartnerSimulator, type SimulatorListenOptions } from './partner-simulator.js';

/** MAO's side of SPEC §5.3 tier 2: the hub tells it an order shipped. */

export const maoStatusUpdateSchema = z.looseObject({
  status: z.string().min(1),
  trackingId: z.string().min(1),
  carrierCode: z.string().min(1),
  occurredAt: z.iso.datetime({ offset: true }),
});
export type MaoStatusUpdate = z.infer<typeof maoStatusUpdateSchema>;

/** A tier-2 status call as MAO's route saw it (calls cut by a failure mode never reach the route). */
export interface MaoStatusCall {
  /** Arrival time, Date.now(). */
  at: number;
  orderId: string;
  method: string;
  path: string;
  body: unknown;
  /** What MAO answered: 200 when accepted, 400 for an invalid body. */
  status: number;
}

export interface MaoSimulator extends PartnerSimulator {
  /** The last status update MAO accepted for an order. */
  lastStatusFor(orderId: string): MaoStatusUpdate | undefined;
  /** Every status call that reached MAO's route, in arrival order. The same array stays live across clearStatusCalls. */
  readonly statusCalls: readonly MaoStatusCall[];
  statusCallsFor(orderId: string): MaoStatusCall[];
  /** Forgets the recorded status calls and the last status per order. */
  clearStatusCalls(): void;
}

export async function startMaoSimulator(options: SimulatorListenOptions = {}): Promise<MaoSimulator> {
  const lastStatus = new Map<string, MaoStatusUpdate>();
  const statusCalls: MaoStatusCall[] = [];
  const clearStatusCalls = (): void => {
    statusCalls.length = 0;
    lastStatus.clear();
  };
  const sim = await startPartnerSimulator({
    name: 'mao',
    port: options.port,
    host: options.host,
    routes: [
      {
        method: 'POST',
        path: '/api/orders/:orderId/status',
        handle: (req) => {
          const orderId = req.params.orderId ?? '';
          const parsed = parseWith(maoStatusUpdateSchema, req.body);
          statusCalls.push({ at: Date.now(), orderId, method: req.method, path: req.path, body: req.body, status: parsed.ok ? 200 : parsed.response.status });
          if (!parsed.ok) return parsed.response;
          lastStatus.set(orderId, parsed.value);
          return { status: 200, body: { ok: true, orderId, status: parsed.value.status, accepted: true } };
        },
      },
    ],
    adminRoutes: [
      { method: 'GET', path: '/__admin/status-calls', handle: () => ({ status: 200, body: statusCalls }) },
      {
        method: 'DELETE',
        path: '/__admin/status-calls',
        handle: () => {
          const cleared = statusCalls.length;
          clearStatusCalls();
          return { status: 200, body: { cleared } };
        },
      },
    ],
  });
  return Object.assign(sim, {
    lastStatusFor: (orderId: string): MaoStatusUpdate | undefined => lastStatus.get(orderId),
    statusCalls,
    statusCallsFor: (orderId: string): MaoStatusCall[] => statusCalls.filter((c) => c.orderId === orderId),
    clearStatusCalls,
  });
}
