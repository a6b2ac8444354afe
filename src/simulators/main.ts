import { pino } from 'pino';
import { isGrabSimulator, SIMULATOR_NAMES, startAllSimulators, type AllSimulators, type SimulatorName } from './index.js';

/**
 * Standalone partner simulators for a demo on one machine: `tsx src/simulators/main.ts`.
 * A dev tool beside the hub, not part of it, so it reads process.env itself. The Grab simulator's
 * courier runs (`POST /__admin/courier-run`) go to HUB_URL (default http://127.0.0.1:3000) as the
 * development client `grab`, or as SIM_GRAB_KEY / SIM_GRAB_SECRET when the hub runs with API_CLIENTS.
 * The PMP simulator's event runs (`POST /__admin/events-run`) go to the same hub as the development
 * client `pmp`, or as SIM_PMP_KEY / SIM_PMP_SECRET.
 */

const DEFAULT_PORTS: Record<SimulatorName, number> = {
  slick: 4101,
  pmp: 4102,
  mao: 4103,
  grab: 4104,
  notify: 4105,
  incident: 4106,
};

const logger = pino({ base: { role: 'simulators' }, timestamp: pino.stdTimeFunctions.isoTime });

function portFromEnv(name: SimulatorName): number {
  const variable = `SIM_${name.toUpperCase()}_PORT`;
  const raw = process.env[variable];
  if (raw === undefined || raw === '') return DEFAULT_PORTS[name];
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || port > 65_535) {
    throw new Error(`${variable} must be a port number (0-65535), got "${raw}"`);
  }
  return port;
}

async function main(): Promise<void> {
  const ports = Object.fromEntries(SIMULATOR_NAMES.map((name) => [name, portFromEnv(name)])) as Record<SimulatorName, number>;
  const host = process.env.SIM_HOST || '127.0.0.1';
  const slickToken = process.env.SLICK_API_TOKEN || undefined;
  const sims: AllSimulators = await startAllSimulators({ host, ports, slickToken });
  if (isGrabSimulator(sims.grab)) {
    sims.grab.configureHub({
      hubUrl: process.env.HUB_URL || undefined,
      key: process.env.SIM_GRAB_KEY || undefined,
      secret: process.env.SIM_GRAB_SECRET || undefined,
    });
  }
  sims.pmp.configureHub({
    hubUrl: process.env.HUB_URL || undefined,
    key: process.env.SIM_PMP_KEY || undefined,
    secret: process.env.SIM_PMP_SECRET || undefined,
  });

  for (const name of SIMULATOR_NAMES) {
    const sim = sims[name];
    const extra =
      name === 'slick'
        ? { tokenRequired: slickToken !== undefined }
        : isGrabSimulator(sim)
          ? { courierRunsTo: sim.hub.hubUrl }
          : name === 'pmp'
            ? { eventRunsTo: sims.pmp.hub.hubUrl }
            : {};
    logger.info({ simulator: name, url: sim.url, ...extra }, 'simulator listening');
    sim.onRequest((request) => {
      logger.info({ simulator: name, method: request.method, path: request.path, status: request.status }, 'request');
    });
    if (isGrabSimulator(sim)) {
      sim.onSent((sent) => {
        logger.info({ simulator: name, sent: sent.status, eventId: sent.eventId, httpStatus: sent.httpStatus, error: sent.error }, 'courier status sent');
      });
    }
    if (name === 'pmp') {
      sims.pmp.onSent((sent) => {
        logger.info(
          { simulator: name, sent: sent.type, orderId: sent.orderId, eventId: sent.eventId, httpStatus: sent.httpStatus, error: sent.error },
          'PMP event sent',
        );
      });
    }
  }

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping simulators');
    sims.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'simulators did not close cleanly');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((error: unknown) => {
  logger.fatal({ err: error }, 'simulators could not start');
  process.exit(1);
});
