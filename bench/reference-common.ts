import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type postgres from 'postgres';

/**
 * What the two reference servers (stripped, naive) share: reading a body with no checks at all, the
 * single INSERT that stores the event as the hub's intake would (state queued, received_at =
 * clock_timestamp(), the same columns), and shutdown on SIGTERM/SIGINT.
 */

export interface MinimalShipEvent {
  eventId: string;
  orderId: string;
  eventType: string;
}

export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** One statement, one round trip: no idempotency read-back, no body hash, no validation. */
export async function insertEvent(sql: postgres.Sql, raw: string): Promise<MinimalShipEvent> {
  const event = JSON.parse(raw) as MinimalShipEvent;
  await insertEventOfKind(sql, { kind: 'ship-event', source: 'slick', type: event.eventType, raw, eventId: event.eventId, orderId: event.orderId });
  return event;
}

/** The same single INSERT for an event of any kind. */
export async function insertEventOfKind(
  sql: postgres.Sql,
  e: { kind: string; source: string; type: string; raw: string; eventId: string; orderId: string },
): Promise<void> {
  await sql`insert into inbound_events (event_id, kind, source, type, order_id, actor, body_hash, payload, state, received_at)
    values (${e.eventId}, ${e.kind}, ${e.source}, ${e.type}, ${e.orderId}, ${e.source}, '-', ${e.raw}::jsonb, 'queued', clock_timestamp())`;
}

export function answer(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

export function stopOn(signals: NodeJS.Signals[], stop: () => Promise<void>, server?: Server): void {
  let stopping = false;
  for (const s of signals) {
    process.on(s, () => {
      if (stopping) return;
      stopping = true;
      setTimeout(() => process.exit(1), 10_000).unref();
      if (server) {
        server.close();
        server.closeAllConnections();
      }
      stop().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    });
  }
}

/**
 * Serves a reference handler: GET answers 200 (readiness), any other request's raw body goes to
 * `handle` (with the request, for its method and path), whose [status, body] is the answer; a failure
 * answers 503. Runs `close` on SIGTERM/SIGINT.
 */
export async function serveReference(
  port: number,
  handle: (raw: string, req: IncomingMessage) => Promise<[number, unknown]>,
  close: () => Promise<void>,
): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method === 'GET') return answer(res, 200, { status: 'ok' });
    readBody(req)
      .then(async (raw) => answer(res, ...(await handle(raw, req))))
      .catch((err: unknown) => answer(res, 503, { error: { code: 'unavailable', message: (err as Error).message } }));
  });
  server.keepAliveTimeout = 60_000;
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  stopOn(['SIGTERM', 'SIGINT'], close, server);
  return server;
}
