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

export interface MaoSimulator extends PartnerSimulator {
  /** The last status update MAO accepted for an order. */
  lastStatusFor(orderId: string): MaoStatusUpdate | undefined;
}

export async function startMaoSimulator(options: SimulatorListenOptions = {}): Promise<MaoSimulator> {
  const lastStatus = new Map<string, MaoStatusUpdate>();
  const sim = await startPartnerSimulator({
    name: 'mao',
    port: options.port,
    host: options.host,
    routes: [
      {
        method: 'POST',
        path: '/api/orders/:orderId/status',
        handle: (req) => {
          const parsed = parseWith(maoStatusUpdateSchema, req.body);
          if (!parsed.ok) return parsed.response;
          lastStatus.set(req.params.orderId ?? '', parsed.value);
          return { status: 200, body: { ok: true } };
        },
      },
    ],
  });
  return Object.assign(sim, {
    lastStatusFor: (orderId: string): MaoStatusUpdate | undefined => lastStatus.get(orderId),
  });
}
