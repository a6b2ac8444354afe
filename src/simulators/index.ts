import { startGrabSimulator } from './grab.simulator.js';
import { startMaoSimulator, type MaoSimulator } from './mao.simulator.js';
import type { PartnerSimulator } from './partner-simulator.js';
import { startPmpSimulator, type PmpSimulator } from './pmp.simulator.js';
import { startSlickSimulator, type SlickSimulator } from './slick.simulator.js';
import { startWebhookReceiver } from './webhook-receiver.simulator.js';

export * from './partner-simulator.js';
export * from './slick.simulator.js';
export * from './pmp.simulator.js';
export * from './mao.simulator.js';
export * from './grab.simulator.js';
export * from './webhook-receiver.simulator.js';

export const SIMULATOR_NAMES = ['slick', 'pmp', 'mao', 'grab', 'notify', 'incident'] as const;
export type SimulatorName = (typeof SIMULATOR_NAMES)[number];

export interface AllSimulatorsOptions {
  /** Slick answers 401 to calls without `Authorization: Bearer <slickToken>` when this is set. */
  slickToken?: string;
  host?: string;
  /** Fixed ports (the standalone process); every simulator not named here picks a free port. */
  ports?: Partial<Record<SimulatorName, number>>;
}

export interface AllSimulators {
  slick: SlickSimulator;
  pmp: PmpSimulator;
  mao: MaoSimulator;
  grab: PartnerSimulator;
  /** Receives customer notifications (NOTIFY_WEBHOOK_URL). */
  notify: PartnerSimulator;
  /** Receives incidents (INCIDENT_WEBHOOK_URL). */
  incident: PartnerSimulator;
  /**
   * Clears every recorded request, failure mode, PMP delivery, event PMP sent and status call MAO
   * recorded, for a clean slate between tests.
   */
  reset(): void;
  close(): Promise<void>;
}

/**
 * The hub's configuration that points every integration at these simulators (Slick with `slickToken`,
 * the notification and incident receivers at their webhook paths): what a test, the chaos run and the
 * benchmarks give the hub's processes.
 */
export function hubPartnerEnv(sims: AllSimulators, slickToken: string): Record<string, string> {
  return {
    SLICK_BASE_URL: sims.slick.url,
    SLICK_API_TOKEN: slickToken,
    PMP_BASE_URL: sims.pmp.url,
    MAO_BASE_URL: sims.mao.url,
    GRAB_BASE_URL: sims.grab.url,
    NOTIFY_WEBHOOK_URL: `${sims.notify.url}/notifications`,
    INCIDENT_WEBHOOK_URL: `${sims.incident.url}/incidents`,
  };
}

export async function startAllSimulators(options: AllSimulatorsOptions = {}): Promise<AllSimulators> {
  const { host, ports = {} } = options;
  const started = await Promise.allSettled([
    startSlickSimulator({ host, port: ports.slick, token: options.slickToken }),
    startPmpSimulator({ host, port: ports.pmp }),
    startMaoSimulator({ host, port: ports.mao }),
    startGrabSimulator({ host, port: ports.grab }),
    startWebhookReceiver({ name: 'notify', host, port: ports.notify }),
    startWebhookReceiver({ name: 'incident', host, port: ports.incident }),
  ]);
  const [slick, pmp, mao, grab, notify, incident] = started;
  if (
    slick.status === 'rejected' ||
    pmp.status === 'rejected' ||
    mao.status === 'rejected' ||
    grab.status === 'rejected' ||
    notify.status === 'rejected' ||
    incident.status === 'rejected'
  ) {
    // Do not leave the ones that did start listening behind.
    await Promise.all(started.map((result) => (result.status === 'fulfilled' ? result.value.close() : undefined)));
    const failures = started.flatMap((result) => (result.status === 'rejected' ? [result.reason] : []));
    throw new AggregateError(failures, `could not start the simulators: ${failures.map((f) => (f instanceof Error ? f.message : String(f))).join('; ')}`);
  }

  const all = [slick.value, pmp.value, mao.value, grab.value, notify.value, incident.value];
  let closing: Promise<void> | undefined;
  return {
    slick: slick.value,
    pmp: pmp.value,
    mao: mao.value,
    grab: grab.value,
    notify: notify.value,
    incident: incident.value,
    reset() {
      for (const sim of all) {
        sim.clearRequests();
        sim.resetFailureMode();
      }
      pmp.value.clearDeliveries();
      pmp.value.clearSent();
      mao.value.clearStatusCalls();
    },
    close() {
      // allSettled: one simulator failing to close must not leave the others listening.
      closing ??= Promise.allSettled(all.map((sim) => sim.close())).then(() => undefined);
      return closing;
    },
  };
}
