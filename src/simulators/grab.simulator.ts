import { startPartnerSimulator, type PartnerSimulator, type SimulatorListenOptions } from './partner-simulator.js';

/**
 * Grab calls the hub (SPEC §5.1); the hub only probes Grab's health, so this simulator has nothing
 * but `/health` and the admin API (set `paths: '/health'` to make the probe fail).
 */
export function startGrabSimulator(options: SimulatorListenOptions = {}): Promise<PartnerSimulator> {
  return startPartnerSimulator({ name: 'grab', port: options.port, host: options.host, routes: [] });
}
