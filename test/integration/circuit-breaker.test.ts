import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { CircuitBreaker } from '../../src/integrations/circuit-breaker.js';
import { readStoreGauges } from '../../src/observability/store-gauges.js';
import { expectSequentialHistory } from '../helpers/history-checks.js';
import { eventually, REDIS_URL, registerOrder, shipEvent, startTestHub, type TestHub } from '../helpers/test-hub.js';

describe('the breaker state machine on real Redis, with a clock the test moves', () => {
  let redis: Redis;
  let now = 1_000_000;
  const prefix = `hubtest:${inject('runId')}:breaker-unit:${process.pid}`;
  const clock = { now: () => now };
  const breaker = () => new CircuitBreaker(redis, prefix, 'slick', { threshold: 3, openMs: 30_000, leaseMs: 10_000 }, clock);
  beforeAll(() => {
    redis = new Redis(REDIS_URL);
  });
  afterAll(async () => {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  });

  it('opens after the threshold of consecutive failures, lets one probe through after the open period, then closes', async () => {
    const b = breaker();
    const changes = [];
    for (let i = 0; i < 3; i++) {
      const a = await b.acquire(`call-${i}`);
      expect(a.allowed).toBe(true);
      if (a.allowed) changes.push(await b.record(a.lease, 'failure'));
    }
    expect(changes).toEqual([undefined, undefined, { from: 'closed', to: 'open', failures: 3 }]);
    const denied = await b.acquire('x');
    expect(denied).toEqual({ allowed: false, state: 'open', retryAt: now + 30_000 });

    now += 29_999;
    expect((await b.acquire('x')).allowed).toBe(false);
    now += 1;
    const probe = await b.acquire('probe');
    expect(probe).toMatchObject({ allowed: true, probe: true });
    // While the probe is out, nobody else passes.
    expect((await b.acquire('other')).allowed).toBe(false);
    if (!probe.allowed) throw new Error('unreachable');
    expect(await b.record(probe.lease, 'failure')).toEqual({ from: 'half_open', to: 'open', failures: 4 });
    expect((await b.snapshot()).state).toBe('open');

    now += 30_000;
    const second = await b.acquire('probe-2');
    if (!second.allowed) throw new Error('probe expected');
    expect(await b.record(second.lease, 'success')).toEqual({ from: 'half_open', to: 'closed', failures: 0 });
    expect(await b.snapshot()).toMatchObject({ state: 'closed', failures: 0 });
  });

  it("pushes a call's list entry with its outcome in the same script, keeping only the newest", async () => {
    const b = new CircuitBreaker(redis, `${prefix}:with-entry`, 'mao', { threshold: 3, openMs: 1000, leaseMs: 5000 }, clock);
    const list = `${prefix}:with-entry:samples`;
    for (let i = 0; i < 4; i++) {
      const a = await b.acquire(`c${i}`);
      if (!a.allowed) throw new Error('admission expected');
      const change = await b.record(a.lease, i === 3 ? 'failure' : 'success', { key: list, entry: `sample-${i}`, kept: 3 });
      expect(change).toBeUndefined();
    }
    expect(await redis.lrange(list, 0, -1)).toEqual(['sample-3', 'sample-2', 'sample-1']);
    // The entry changes nothing of the decision: the failure was counted, the in-flight slots are free.
    expect(await b.snapshot()).toMatchObject({ state: 'closed', failures: 1, inFlight: 0 });
    const a = await b.acquire('c4');
    if (!a.allowed) throw new Error('admission expected');
    await b.record(a.lease, 'success');
    expect(await redis.llen(list)).toBe(3);
  });

  it('never has more calls in flight than failures still needed to open it', async () => {
    const b = new CircuitBreaker(redis, `${prefix}:inflight`, 'pmp', { threshold: 3, openMs: 1000, leaseMs: 5000 }, clock);
    const a1 = await b.acquire('1');
    const a2 = await b.acquire('2');
    const a3 = await b.acquire('3');
    expect([a1.allowed, a2.allowed, a3.allowed]).toEqual([true, true, true]);
    expect((await b.acquire('4')).allowed).toBe(false);
    if (!a1.allowed) throw new Error('unreachable');
    await b.record(a1.lease, 'failure');
    // One failure recorded, two calls still out: two more failures would open it, so no new call.
    expect((await b.acquire('5')).allowed).toBe(false);
    // A crashed caller's lease expires.
    now += 5001;
    expect((await b.acquire('6')).allowed).toBe(true);
  });
});

describe('the breaker shared by two worker processes', () => {
  const OPEN_MS = 1000;
  const THRESHOLD = 3;
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startTestHub({
      inProcessWorkers: false,
      env: {
        CIRCUIT_FAILURE_THRESHOLD: String(THRESHOLD),
        CIRCUIT_OPEN_MS: String(OPEN_MS),
        // Enough retries that the outage, not the retry budget, decides what happens.
        SLICK_RETRY_DELAYS_MS: '50,50,50,50,50,50,50,50,50,50',
        SWEEP_INTERVAL_MS: '200',
      },
    });
  });
  afterAll(async () => {
    await hub?.close();
  });

  it('while Slick fails it sees at most the threshold plus one probe per open period; one incident; all orders complete after recovery', async () => {
    await Promise.all([hub.spawnWorker(), hub.spawnWorker()]);
    hub.sims.slick.setFailureMode({ status: 500 });
    const orders = await Promise.all(Array.from({ length: 8 }, () => registerOrder(hub)));
    for (const orderId of orders) {
      expect((await hub.clients.slick.post('/api/fulfillment/ship-events', shipEvent(orderId, 'packed'), { prefer: 'wait=10' })).status).toBe(200);
    }
    await Promise.all(orders.map((o) => hub.clients.slick.post('/api/fulfillment/ship-events', shipEvent(o, 'shipped'))));

    const PATH = '/api/fulfillment/ship-events';
    // Two probes after the opening burst means at least two open periods went by.
    await hub.sims.slick.waitForRequests(THRESHOLD + 2, { path: PATH, timeoutMs: 20_000 });
    const health = (await hub.clients.viewer.get('/api/health/integrations')).body.integrations;
    const slick = health.find((i: { integration: string }) => i.integration === 'slick');
    expect(['open', 'half_open']).toContain(slick.circuit.state);
    expect(slick.status).toMatch(/down|degraded/);
    const incidents = await eventually(async () => {
      const open = (await hub.clients.viewer.get('/api/incidents?state=open')).body.incidents;
      return open.length ? open : undefined;
    }, 'incident');
    expect(incidents).toHaveLength(1);
    expect(incidents[0]).toMatchObject({ cause: 'circuit_open:slick', severity: 'critical' });
    const paged = await hub.sims.incident.waitForRequests(1);
    expect(paged[0]!.body).toMatchObject({ event_action: 'trigger', payload: { source: 'fulfillment-hub', severity: 'critical' } });
    const metrics = await readStoreGauges(hub.worker);
    expect(metrics).toMatch(/hub_circuit_state\{[^}]*integration="slick"[^}]*\} [12]/);

    const recoveredAt = Date.now();
    hub.sims.slick.resetFailureMode();
    const failing = hub.sims.slick.requests.filter((r) => r.path === PATH && r.at < recoveredAt);
    const firstAt = failing[0]!.at;
    const openPeriods = Math.ceil((recoveredAt - firstAt) / OPEN_MS);
    expect(failing.length).toBeLessThanOrEqual(THRESHOLD + openPeriods);
    // Probes (every call after the opening burst) are at least one open period apart.
    const probes = failing.slice(THRESHOLD);
    for (let i = 1; i < probes.length; i++) expect(probes[i]!.at - probes[i - 1]!.at).toBeGreaterThanOrEqual(OPEN_MS * 0.9);

    for (const orderId of orders) {
      await eventually(
        async () => ((await hub.clients.viewer.get(`/api/orders/${orderId}`)).body.status === 7000 ? true : undefined),
        `${orderId} at 7000`,
        30_000,
      );
      const history = await expectSequentialHistory(hub, orderId);
      expect(history.filter((h) => h.to === 7000)).toHaveLength(1);
    }
    const successes = hub.sims.slick.requests.filter((r) => r.path === PATH && r.status === 200);
    expect(new Set(successes.map((r) => (r.body as { orderId: string }).orderId)).size).toBe(8);
    expect(successes).toHaveLength(8);

    await eventually(async () => {
      const open = (await hub.clients.viewer.get('/api/incidents?state=open')).body.incidents;
      return open.length === 0 ? true : undefined;
    }, 'incident resolved');
    const resolvedPage = await hub.sims.incident.waitForRequests(2);
    expect(resolvedPage[1]!.body).toMatchObject({ event_action: 'resolve', dedup_key: (paged[0]!.body as { dedup_key: string }).dedup_key });
    expect((await hub.clients.operator.get('/api/dlq')).body.deadLetters).toHaveLength(0);
    expect((await hub.clients.operator.get('/api/interventions?state=open')).body.interventions).toHaveLength(0);
  });
});
