import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { raiseIncident, resolveIncident } from '../../src/operations/incidents.js';
import { readStoreGauges } from '../../src/observability/store-gauges.js';
import { eventually, registerOrder, shipEvent, startTestHub, type TestHub } from '../helpers/test-hub.js';

let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub({
    inProcessWorkers: false,
    env: { DLQ_ALERT_THRESHOLD: '1', EVENT_SLA_MS: '300', SWEEP_INTERVAL_MS: '100', SWEEP_AFTER_MS: '60000', HEALTH_PROBE_INTERVAL_MS: '100' },
  });
});
afterAll(async () => {
  await hub?.close();
});

const openIncidents = async () => (await hub.clients.viewer.get('/api/incidents?state=open')).body.incidents as Array<Record<string, any>>;

describe('incidents raised by watching, and integration health', () => {
  it('raises an SLA incident while accepted events wait too long, and resolves it once they are applied', async () => {
    const orderId = await registerOrder(hub);
    expect((await hub.clients.slick.post('/api/fulfillment/ship-events', shipEvent(orderId, 'picking'))).status).toBe(202);
    const [sla] = await eventually(async () => {
      const open = (await openIncidents()).filter((i) => i.cause === 'event_sla_breach');
      return open.length ? open : undefined;
    }, 'SLA incident');
    expect(sla).toMatchObject({ severity: 'critical', detail: { waiting: 1, slaMs: 300 } });

    // Workers come back: the event is applied, the incident resolves, and the receiver is paged for both.
    hub.startInProcessWorkers();
    await eventually(async () => ((await openIncidents()).some((i) => i.cause === 'event_sla_breach') ? undefined : true), 'SLA incident resolved');
    const pages = await hub.sims.incident.waitForRequests(2);
    expect(pages.map((p) => (p.body as { event_action: string }).event_action)).toEqual(['trigger', 'resolve']);
    expect(pages[0]!.body).toMatchObject({ payload: { severity: 'critical', custom_details: { cause: 'event_sla_breach' } } });
    const all = (await hub.clients.viewer.get('/api/incidents')).body.incidents;
    expect(all.find((i: any) => i.id === sla!.id)).toMatchObject({ state: 'resolved', resolvedAt: expect.any(String) });
  });

  it('raises one DLQ incident above DLQ_ALERT_THRESHOLD and resolves it when the dead letters are retried', async () => {
    hub.sims.slick.setFailureMode({ status: 400 });
    const orders = [await registerOrder(hub), await registerOrder(hub)];
    for (const o of orders) {
      await hub.clients.slick.post('/api/fulfillment/ship-events', shipEvent(o, 'packed'), { prefer: 'wait=10' });
      await hub.clients.slick.post('/api/fulfillment/ship-events', shipEvent(o, 'shipped'), { prefer: 'wait=10' });
    }
    const dlq = await eventually(async () => {
      const list = (await hub.clients.operator.get('/api/dlq')).body.deadLetters;
      return list.length === 2 ? list : undefined;
    }, 'two dead letters');
    await eventually(async () => ((await openIncidents()).filter((i) => i.cause === 'dlq_above_threshold').length === 1 ? true : undefined), 'DLQ incident');

    hub.sims.slick.resetFailureMode();
    for (const d of dlq) expect((await hub.clients.operator.post(`/api/dlq/${encodeURIComponent(d.id)}/retry`, {})).status).toBe(202);
    await eventually(async () => ((await openIncidents()).some((i) => i.cause === 'dlq_above_threshold') ? undefined : true), 'DLQ incident resolved');
    for (const o of orders) {
      await eventually(async () => ((await hub.clients.viewer.get(`/api/orders/${o}`)).body.status === 7000 ? true : undefined), `${o} at 7000`);
    }
    expect((await hub.clients.viewer.get('/api/incidents')).body.incidents.filter((i: any) => i.cause === 'dlq_above_threshold')).toHaveLength(1);
  });

  it('reports availability from the /health probe and latency from real calls', async () => {
    hub.sims.pmp.setFailureMode({ status: 503, paths: '/health' });
    const health = await eventually(async () => {
      const list = (await hub.clients.viewer.get('/api/health/integrations')).body.integrations as Array<Record<string, any>>;
      const pmp = list.find((i) => i.integration === 'pmp');
      return pmp?.probe.last && !pmp.probe.last.ok ? list : undefined;
    }, 'failed PMP probe');
    const slick = health.find((i) => i.integration === 'slick')!;
    // Its /health answers, but half of the real calls above were refused with 400: degraded, not down.
    expect(slick).toMatchObject({ configured: true, status: 'degraded', circuit: { state: 'closed' } });
    expect(slick.probe.availability).toBe(1);
    expect(slick.calls.count).toBe(4);
    expect(slick.calls.errorRate).toBe(0.5);
    expect(slick.calls.latencyMs.p50).toEqual(expect.any(Number));
    expect(health.find((i) => i.integration === 'pmp')).toMatchObject({ status: 'down', probe: { last: { ok: false, status: 503 } } });
    expect(await readStoreGauges(hub.worker)).toMatch(/hub_dead_letter_jobs\{[^}]*queue="partner-calls"/);
    expect(await hub.worker.metrics.registry.metrics()).toMatch(/hub_integration_up\{[^}]*integration="pmp"[^}]*\} 0/);
  });
  it('never pages a resolve before its trigger, even when the trigger page has to be retried', async () => {
    hub.startInProcessWorkers();
    // The trigger page's first delivery fails, so it waits for its retry while the resolve page is due.
    hub.sims.incident.setFailureMode({ status: 503, failTimes: 1 });
    const cause = `page_order_check:${Date.now()}`;
    const incident = await raiseIncident(hub.worker, { cause, severity: 'warning', summary: 'page order check', detail: {} });
    expect(incident).toBeDefined();
    expect(await resolveIncident(hub.worker, cause, 'checked')).toBeDefined();

    const delivered = await eventually(async () => {
      const pages = hub.sims.incident.requests.filter(
        (r) => r.status === 202 && (r.body as { payload: { custom_details: { incidentId: string } } }).payload.custom_details.incidentId === incident!.id,
      );
      return pages.length >= 2 ? pages : undefined;
    }, 'trigger and resolve pages delivered');
    expect(delivered.map((p) => (p.body as { event_action: string }).event_action)).toEqual(['trigger', 'resolve']);
    // The failed first try was the trigger: the receiver saw it before anything else of this incident.
    const all = hub.sims.incident.requests.filter(
      (r) => (r.body as { payload: { custom_details: { incidentId: string } } }).payload.custom_details.incidentId === incident!.id,
    );
    expect(all.map((r) => [(r.body as { event_action: string }).event_action, r.status])).toEqual([
      ['trigger', 503],
      ['trigger', 202],
      ['resolve', 202],
    ]);
  });
});
