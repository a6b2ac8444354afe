import { createServer } from 'node:http';
import postgres from 'postgres';
import { answer, stopOn } from './reference-common.js';

/**
 * Reference for the reads benchmark (bench/reads.ts, phase A0): what a read by id costs with nothing
 * around it. A bare node:http server; the Bearer key compared with one fixed key (READS_KEY); one
 * statement per request through postgres.js with the hub's pool size (10) — `select * from orders`
 * for `GET /api/orders/{id}`, the order's status_history rows for `/history` — and the rows as JSON, 404
 * when there is none. No Express, no roles, no rate limit, no metrics, no view of the row.
 * Env: DATABASE_URL, PORT, READS_KEY.
 */
const sql = postgres(process.env.DATABASE_URL!, { max: 10, onnotice: () => {} });
const key = `Bearer ${process.env.READS_KEY}`;
const ORDER_PATH = /^\/api\/orders\/([^/]+)(\/history)?$/;

const server = createServer((req, res) => {
  if (req.url === '/ready') return answer(res, 200, { status: 'ok' });
  if (req.headers.authorization !== key) return answer(res, 401, { error: { code: 'invalid_credentials' } });
  const match = req.method === 'GET' ? ORDER_PATH.exec(req.url ?? '') : null;
  if (!match) return answer(res, 404, { error: { code: 'not_found' } });
  const orderId = decodeURIComponent(match[1]!);
  const reading = match[2]
    ? sql`select * from status_history where order_id = ${orderId} order by seq`.then((rows) => (rows.length ? { orderId, history: rows } : undefined))
    : sql`select * from orders where order_id = ${orderId}`.then(([row]) => row);
  reading.then(
    (body) => (body ? answer(res, 200, body) : answer(res, 404, { error: { code: 'not_found' } })),
    (err: unknown) => answer(res, 503, { error: { code: 'unavailable', message: (err as Error).message } }),
  );
});
server.listen(Number(process.env.PORT));
stopOn(['SIGTERM', 'SIGINT'], () => sql.end({ timeout: 5 }), server);
