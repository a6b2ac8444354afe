import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { HubDeps } from '../deps.js';
import { createCircuitBreakers } from '../integrations/circuit-breaker.js';
import { AuthenticationError, ForbiddenError, NotFoundError } from '../errors.js';
import type { EventOutcomeWaiters } from '../inbox/event-outcomes.js';
import { ApiClientDirectory, authenticate } from './auth.js';
import { errorHandler } from './error-handler.js';
import { createRateLimits } from './rate-limits.js';
import { openApiRoutes } from './openapi/openapi.routes.js';
import { consoleRoutes } from '../console/console.routes.js';
import { analyticsRoutes } from './routes/analytics.routes.js';
import { eventRoutes } from './routes/events.routes.js';
import { healthRoutes } from './routes/health.routes.js';
import { interventionRoutes } from './routes/interventions.routes.js';
import { locationRoutes } from './routes/locations.routes.js';
import { operationsRoutes } from './routes/operations.routes.js';
import { operatorMoveRoutes } from './routes/operator-moves.routes.js';
import { orderSearchRoutes } from './routes/order-search.routes.js';
import { orderReadRoutes, orderRoutes } from './routes/orders.routes.js';
import { partnerAssignmentRoutes } from './routes/partner-assignment.routes.js';
import { partnerEventRoutes } from './routes/partner-events.routes.js';
import { PartnerEventIntake } from '../inbox/intake.js';
import { streamRoutes } from './routes/stream.routes.js';
import type { StatusStream } from './status-stream.js';

export interface AppOptions {
  waiters: EventOutcomeWaiters;
  /** The live stream of status changes; without it `GET /api/stream` answers 503. */
  statusStream?: StatusStream;
  /** The partner events' intake (a new one when not given); its owner waits for it to drain before closing the pools. */
  intake?: PartnerEventIntake;
}

/** Builds the web app from its dependencies. Never listens: main.ts and the tests do that. */
export function createApp(deps: HubDeps, options: AppOptions): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false);
  // No ETag: the API answers with live state (an order's status, a queue's depth) that clients read
  // again rather than revalidate, and hashing every body cost the web ~2 % of its CPU on reads by id.
  app.set('etag', false);
  const directory = new ApiClientDirectory(deps.config.apiClients);
  const breakers = createCircuitBreakers(deps.redis, deps.config, deps.clock);

  const rateLimits = createRateLimits(deps); // src/api/rate-limits.ts: failed authentication per address, then per client
  const authenticated = authenticate(directory);

  app.use(requestMetrics(deps));
  // The reads of one order first, with the same checks as below (src/api/routes/orders.routes.ts).
  app.use(orderReadRoutes(deps, [rateLimits.failedAuthentication, authenticated, rateLimits.perClient]));
  app.use(healthRoutes(deps));
  // This process's own metrics only: what Postgres and Redis know is exported by the scheduler alone
  // (src/observability/store-gauges.ts), so several web processes never report it twice.
  app.get('/metrics', async (_req, res) => {
    res.setHeader('content-type', deps.metrics.registry.contentType);
    res.send(await deps.metrics.registry.metrics());
  });

  app.use(['/api', '/admin/queues', '/ops'], rateLimits.failedAuthentication);
  app.use('/admin/queues', adminOnly(directory), bullBoard(deps).getRouter());
  app.use(openApiRoutes()); // the document and its reference need no key
  app.use('/ops', consoleRoutes(deps)); // the operations console: HTTP Basic, and it calls the API below

  // Everything under /api past the health routes needs a key.
  app.use('/api', authenticated, rateLimits.perClient);
  app.use(partnerEventRoutes(deps, { intake: options.intake ?? new PartnerEventIntake(deps), waiters: options.waiters }));
  app.use(operatorMoveRoutes(deps)); // before any /api/orders/:orderId route, so bulk-status is never an order id
  app.use(orderSearchRoutes(deps)); // before orderRoutes, so export is never an order id
  app.use(orderRoutes(deps));
  app.use(partnerAssignmentRoutes(deps));
  app.use(eventRoutes(deps));
  app.use(interventionRoutes(deps));
  app.use(analyticsRoutes(deps));
  app.use(locationRoutes(deps));
  app.use(streamRoutes(deps, options.statusStream));
  app.use(operationsRoutes(deps, breakers));

  app.use((req: Request, _res: Response, next: NextFunction) => next(new NotFoundError('route', `${req.method} ${req.path}`)));
  app.use(errorHandler(deps.logger));
  return app;
}

function requestMetrics(deps: HubDeps) {
  return (req: Request, res: Response, next: NextFunction) => {
    const end = deps.metrics.httpRequestDuration.startTimer();
    res.on('finish', () => {
      // The matched route pattern keeps label cardinality bounded; unmatched paths share one label.
      const route = req.route?.path ? String(req.route.path) : req.path.startsWith('/admin/queues') ? '/admin/queues' : 'unmatched';
      end({ method: req.method, route, status: String(res.statusCode) });
    });
    next();
  };
}

function bullBoard(deps: HubDeps): ExpressAdapter {
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath('/admin/queues');
  createBullBoard({
    queues: [new BullMQAdapter(deps.queues.inboundEvents), new BullMQAdapter(deps.queues.partnerCalls)],
    serverAdapter,
  });
  return serverAdapter;
}

/** Bull Board: Bearer admin key, or HTTP Basic with any user name and the admin key as password (browsers). */
function adminOnly(directory: ApiClientDirectory) {
  return (req: Request, res: Response, next: NextFunction) => {
    const header = req.headers.authorization ?? '';
    let key: string | undefined;
    const bearer = /^Bearer\s+(\S+)$/i.exec(header);
    const basic = /^Basic\s+(\S+)$/i.exec(header);
    if (bearer) key = bearer[1];
    else if (basic) {
      const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
      key = decoded.slice(decoded.indexOf(':') + 1);
    }
    if (!key) {
      res.setHeader('WWW-Authenticate', 'Basic realm="fulfillment hub queues"');
      return next(new AuthenticationError('admin key required', 'missing_credentials'));
    }
    const client = directory.findByKey(key);
    if (!client) {
      res.setHeader('WWW-Authenticate', 'Basic realm="fulfillment hub queues"');
      return next(new AuthenticationError('unknown API key', 'invalid_credentials'));
    }
    if (client.role !== 'admin') return next(new ForbiddenError('Bull Board is for admins only'));
    next();
  };
}
