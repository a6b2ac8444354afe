import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createMetrics, STATUS_READ_SLA_SECONDS } from '../../src/metrics.js';
import { countCustomerNotifications } from '../../src/observability/customer-notifications.js';
import { startMetricsServer, type MetricsServer } from '../../src/observability/metrics-server.js';

/** The metrics server of worker and scheduler, and the counters that the hub's code feeds indirectly. */
const logger = pino({ level: 'silent' });
const opened: Array<MetricsServer | Server> = [];
afterEach(async () => {
  for (const s of opened.splice(0)) await new Promise<void>((r) => ('port' in s ? s.close().then(() => r()) : s.close(() => r())));
});

async function takenPort(): Promise<number> {
  const blocker = createServer().listen(0);
  await once(blocker, 'listening');
  opened.push(blocker);
  return (blocker.address() as { port: number }).port;
}

describe('the metrics server', () => {
  it('serves the registry at GET /metrics and nothing else', async () => {
    const metrics = createMetrics('worker');
    metrics.eventsProcessed.inc({ kind: 'ship-event', state: 'applied', reason: '' });
    const server = await startMetricsServer(metrics.registry, { port: 0, explicit: true }, logger);
    opened.push(server);
    const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    expect(await res.text()).toMatch(/hub_events_processed_total\{kind="ship-event",state="applied",reason="",role="worker"\} 1/);
    expect((await fetch(`http://127.0.0.1:${server.port}/other`)).status).toBe(404);
  });

  it('takes a free port when the default one is taken, and refuses a taken port set explicitly', async () => {
    const port = await takenPort();
    const fallback = await startMetricsServer(createMetrics('worker').registry, { port, explicit: false }, logger);
    opened.push(fallback);
    expect(fallback.port).not.toBe(port);
    expect((await fetch(`http://127.0.0.1:${fallback.port}/metrics`)).status).toBe(200);
    await expect(startMetricsServer(createMetrics('worker').registry, { port, explicit: true }, logger)).rejects.toThrow(/cannot serve \/metrics on port/);
  });

  it('defaults: 9101 and 9102, 0 under NODE_ENV=test, explicit when set', () => {
    expect(loadConfig({ NODE_ENV: 'development' })).toMatchObject({
      workerMetricsPort: { port: 9101, explicit: false },
      schedulerMetricsPort: { port: 9102, explicit: false },
    });
    expect(loadConfig({ NODE_ENV: 'test' })).toMatchObject({ workerMetricsPort: { port: 0 }, schedulerMetricsPort: { port: 0 } });
    expect(loadConfig({ NODE_ENV: 'test', WORKER_METRICS_PORT: '9200' }).workerMetricsPort).toEqual({ port: 9200, explicit: true });
    expect(() => loadConfig({ SCHEDULER_METRICS_PORT: '70000' })).toThrow(/SCHEDULER_METRICS_PORT/);
  });
});

describe('counters fed by other metrics', () => {
  const valueIn = async (metric: { get(): Promise<{ values: Array<{ labels: Record<string, unknown>; value: number }> }> }, labels: Record<string, string>) =>
    (await metric.get()).values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value ?? 0;

  it('an event slower than 50 ms counts as an event SLA breach; one within does not', async () => {
    const m = createMetrics('worker');
    m.eventReceiptToCommit.observe({ kind: 'ship-event', state: 'applied' }, 0.049);
    m.eventReceiptToCommit.observe({ kind: 'ship-event', state: 'applied' }, 0.051);
    m.eventReceiptToCommit.observe({ kind: 'courier-status', state: 'applied' }, 0.2);
    expect(await valueIn(m.eventSlaBreaches, { kind: 'ship-event' })).toBe(1);
    expect(await valueIn(m.eventSlaBreaches, { kind: 'courier-status' })).toBe(1);
  });

  it('a status read over 10 ms counts as a breach of its route; other routes and methods do not', async () => {
    const m = createMetrics('web');
    const over = STATUS_READ_SLA_SECONDS * 2;
    m.httpRequestDuration.observe({ method: 'GET', route: '/api/orders/:orderId', status: '200' }, over);
    m.httpRequestDuration.observe({ method: 'GET', route: '/api/orders/:orderId/history', status: '200' }, STATUS_READ_SLA_SECONDS / 2);
    m.httpRequestDuration.observe({ method: 'POST', route: '/api/orders/:orderId/cancel', status: '200' }, over);
    m.httpRequestDuration.observe({ method: 'GET', route: '/api/orders', status: '200' }, over);
    expect(await valueIn(m.statusReadSlaBreaches, { route: '/api/orders/:orderId' })).toBe(1);
    expect(await valueIn(m.statusReadSlaBreaches, { route: '/api/orders/:orderId/history' })).toBe(0);
    const all = (await m.statusReadSlaBreaches.get()).values.reduce((a, v) => a + v.value, 0);
    expect(all).toBe(1);
    // A timer ends through observe too.
    const end = m.httpRequestDuration.startTimer({ method: 'GET', route: '/api/events/:eventId' });
    end({ status: '200' });
    expect((await m.httpRequestDuration.get()).values.some((v) => v.labels.route === '/api/events/:eventId')).toBe(true);
  });

  it('customer notifications: a status already recorded for the order is a suppressed duplicate', async () => {
    const m = createMetrics('scheduler');
    const call = (orderId: string, status: number) => ({ kind: 'notify.customer' as const, orderId, key: String(status), data: { orderId, status } });
    const pmp = { kind: 'pmp.assignment' as const, orderId: 'SO-1', key: '', data: { orderId: 'SO-1' } };
    countCustomerNotifications(m, [call('SO-1', 7300), call('SO-2', 7300), pmp], [call('SO-1', 7300), pmp]);
    expect(await valueIn(m.customerNotifications, { status: '7300', result: 'owed' })).toBe(1);
    expect(await valueIn(m.customerNotifications, { status: '7300', result: 'suppressed_duplicate' })).toBe(1);
    expect((await m.customerNotifications.get()).values.reduce((a, v) => a + v.value, 0)).toBe(2);
  });
});
