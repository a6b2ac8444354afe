import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from '../logger.js';

export interface MetricsServer {
  /** The port it listens on (the configured one, or the one the system chose for 0). */
  port: number;
  close(): Promise<void>;
}

/**
 * `GET /metrics` of a process without a web app (worker, scheduler), for Prometheus to scrape. It
 * answers nothing else. A scrape that fails to collect is a 500 with the reason, logged. A port set
 * explicitly that is taken stops start-up; the default port taken (a second worker on one host) falls
 * back to any free port, with a warning naming it.
 */
export async function startMetricsServer(
  registry: Registry,
  setting: { port: number; explicit: boolean },
  logger: Logger,
  host?: string,
): Promise<MetricsServer> {
  try {
    return await listen(registry, setting.port, logger, host);
  } catch (err) {
    if (setting.explicit || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    const server = await listen(registry, 0, logger, host);
    logger.warn({ defaultPort: setting.port, metricsPort: server.port }, 'default metrics port taken; serving /metrics on a free port');
    return server;
  }
}

async function listen(registry: Registry, port: number, logger: Logger, host?: string): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: only GET /metrics here\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => {
        logger.warn({ err: (err as Error).message }, 'metrics collection failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics collection failed: ${(err as Error).message}\n`);
      },
    );
  });
  server.listen(port, host);
  try {
    await once(server, 'listening'); // rejects with the 'error' event's error
  } catch (err) {
    throw Object.assign(new Error(`cannot serve /metrics on port ${port}: ${(err as Error).message}`), { code: (err as NodeJS.ErrnoException).code });
  }
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** For process entry points: a metrics port that cannot be served ends start-up with one clear line. */
export async function startMetricsServerOrExit(registry: Registry, setting: { port: number; explicit: boolean }, logger: Logger): Promise<MetricsServer> {
  try {
    return await startMetricsServer(registry, setting, logger);
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, 'cannot start: /metrics not served');
    process.exit(1);
  }
}
