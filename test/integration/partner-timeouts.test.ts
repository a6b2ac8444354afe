import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type IntegrationConfig } from '../../src/config.js';
import { PartnerHttp, type PartnerCallRecord } from '../../src/integrations/partner-http.js';
import { startSlickSimulator, type SlickSimulator } from '../../src/simulators/index.js';
import { eventually, registerOrder, shipEvent, startTestHub, type TestHub } from '../helpers/test-hub.js';

/**
 * SPEC §9 / story 3.7: an integration's timeout is how long each attempt may take, no less. A hanging
 * partner (the simulator's `hang` mode: it reads the request and never answers) must hold every attempt
 * for at least the configured time, the first on a cold connection pool included; the lower bound is
 * read from the latency the hub itself recorded for each attempt.
 */

const SHIP_PATH = '/api/fulfillment/ship-events';

describe('PartnerHttp against a hanging partner', () => {
  let slick: SlickSimulator;
  beforeAll(async () => {
    slick = await startSlickSimulator();
    slick.setFailureMode({ hang: true });
  });
  afterAll(async () => {
    await slick?.close();
  });

  // Below and above undici's 1 s boundary between its native and its coarse (500 ms) timers.
  it.each([800, 1200, 1700])('every attempt with a %i ms timeout lasts at least that long, on a cold pool and a warm one', async (timeoutMs) => {
    const integration: IntegrationConfig = { ...loadConfig({}).integrations.slick, baseUrl: slick.url, timeoutMs };
    const records: PartnerCallRecord[] = [];
    // A fresh pool per round: its first attempt connects while its clock runs.
    for (let round = 0; round < 2; round++) {
      const dispatcher = new Agent();
      const http = new PartnerHttp(integration, { dispatcher, observers: [(r) => void records.push(r)] });
      // Several at once and one after the other, as a worker's concurrent jobs and their retries do.
      await Promise.all(
        [0, 1, 2].map(async (i) => {
          for (let attempt = 1; attempt <= 2; attempt++) {
            await expect(
              http.call({ method: 'POST', path: SHIP_PATH, operation: 'ship-confirmation', body: { orderId: `T-${timeoutMs}-${round}-${i}` }, attempt }),
            ).rejects.toThrow('slick timed out');
          }
        }),
      );
      await dispatcher.close();
    }
    expect(records).toHaveLength(12);
    for (const r of records) {
      expect(r).toMatchObject({ status: null, errorClass: 'retriable', error: 'slick timed out' });
      expect(r.latencyMs, `attempt ${r.attempt} of ${(r.requestBody as { orderId: string }).orderId}`).toBeGreaterThanOrEqual(timeoutMs);
    }
  });
});

describe('the hub against a hanging Slick (SLICK_TIMEOUT_MS=800)', () => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startTestHub({
      env: { SLICK_TIMEOUT_MS: '800', SLICK_RETRY_DELAYS_MS: '50,50,50', CIRCUIT_FAILURE_THRESHOLD: '1000' },
    });
  });
  afterAll(async () => {
    await hub?.close();
  });

  it('each of the four attempts of every confirmation is recorded after at least 800 ms, "slick timed out"', async () => {
    hub.sims.slick.setFailureMode({ hang: true });
    const orders = await Promise.all(
      [0, 1, 2].map(async () => {
        const orderId = await registerOrder(hub);
        const packed = await hub.clients.slick.post(SHIP_PATH, shipEvent(orderId, 'packed'), { prefer: 'wait=10' });
        expect(packed.body.state).toBe('applied');
        const shipped = await hub.clients.slick.post(SHIP_PATH, shipEvent(orderId, 'shipped'), { prefer: 'wait=10' });
        expect(shipped.body.state).toBe('applied');
        return orderId;
      }),
    );
    for (const orderId of orders) {
      await eventually(
        async () => ((await hub.clients.viewer.get(`/api/orders/${orderId}`)).body.slickConfirmation === 'failed' ? true : undefined),
        `${orderId} confirmation failed`,
        30_000,
      );
      const rows = ((await hub.clients.viewer.get(`/api/orders/${orderId}/partner-calls`)).body.partnerCalls as Array<Record<string, any>>).filter(
        (r) => r.operation === 'ship-confirmation',
      );
      expect(rows.map((r) => r.attempt).sort()).toEqual([1, 2, 3, 4]);
      for (const r of rows) {
        expect(r).toMatchObject({ status: null, errorClass: 'retriable', error: 'slick timed out' });
        expect(r.latencyMs, `attempt ${r.attempt} of ${orderId}`).toBeGreaterThanOrEqual(800);
      }
    }
  });
});
