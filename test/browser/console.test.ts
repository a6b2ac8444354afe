import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEVELOPMENT_CLIENTS } from '../../src/config.js';
import { eventually, REPO_ROOT, registerOrder, shipEvent, startTestHub, type TestHub } from '../helpers/test-hub.js';

/**
 * The operations console (SPEC §11) in a real browser: Debian's Chromium driven by playwright-core
 * against a whole hub (database, Redis, workers, simulators) started here. Sign in as each role,
 * search, an order with implied and override rows, a status change arriving live, a case resolved and
 * a dead letter retried from the pages, a viewer without action buttons whom the server refuses
 * anyway, and another site's form post and fetch refused. `UPDATE_SCREENSHOTS=1` also writes the
 * README's screenshots to docs/.
 */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
/** Polls with a deadline that holds on a busy shared machine (the default is 1 s). */
const POLL = { timeout: 15_000, interval: 50 };
const KEYS = Object.fromEntries(DEVELOPMENT_CLIENTS.map((c) => [c.id, c.key!])) as Record<'viewer' | 'operator' | 'admin', string>;

let hub: TestHub;
let browser: Browser;
let attacker: Server;
let attackerUrl: string;
const contexts: BrowserContext[] = [];

const roleContexts = new Map<string, BrowserContext>();

/**
 * A page signed in as `role` (HTTP Basic, sent to the hub's origin only). One browser context per
 * role, as one person's browser: it answers the first challenge and then keeps the credentials, so
 * the hub sees one 401 per role (it limits failed sign-ins per address).
 */
async function signedIn(role: 'viewer' | 'operator' | 'admin'): Promise<Page> {
  let context = roleContexts.get(role);
  if (!context) {
    context = await browser.newContext({
      httpCredentials: { username: role, password: KEYS[role], origin: hub.baseUrl },
      viewport: { width: 1360, height: 900 },
    });
    contexts.push(context);
    roleContexts.set(role, context);
  }
  return context.newPage();
}

/** Console status moves the web process answered 403 (its request metric): what the server did with a request the other site cannot read. */
async function refusedWrites(): Promise<number> {
  const metric = await hub.web.metrics.registry.getSingleMetric('hub_http_request_duration_seconds')!.get();
  return metric.values
    .filter(
      (v) =>
        (v as { metricName?: string }).metricName === 'hub_http_request_duration_seconds_count' &&
        v.labels.method === 'POST' &&
        String(v.labels.route).endsWith('/orders/:orderId/status') &&
        v.labels.status === '403',
    )
    .reduce((sum, v) => sum + v.value, 0);
}

/** Form controls a person cannot tell apart by ear: no label, no aria-label. */
async function unlabelledControls(page: Page): Promise<string[]> {
  return page.locator('input:not([type="hidden"]), select, textarea, button').evaluateAll((els) =>
    els
      .filter((el) => {
        const field = el as HTMLInputElement;
        const name =
          (field.labels?.length ? [...field.labels].map((l) => l.textContent ?? '').join(' ') : '') +
          (el.getAttribute('aria-label') ?? '') +
          (el.tagName === 'BUTTON' ? (el.textContent ?? '') : '');
        return name.trim() === '';
      })
      .map((el) => el.outerHTML.slice(0, 120)),
  );
}

async function orderStatus(orderId: string): Promise<number> {
  return (await hub.clients.viewer.get(`/api/orders/${orderId}`)).body.status;
}

async function sendAndWait(event: Record<string, unknown>) {
  const res = await hub.clients.slick.post('/api/fulfillment/ship-events', event, { prefer: 'wait=5' });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
}

/** An order whose Slick ship confirmation failed for good (Slick answered 400): a case and a dead letter. */
async function failedConfirmation(): Promise<string> {
  const orderId = await registerOrder(hub);
  await sendAndWait(shipEvent(orderId, 'packed'));
  await sendAndWait(shipEvent(orderId, 'shipped'));
  await eventually(async () => (await hub.clients.viewer.get(`/api/orders/${orderId}`)).body.slickConfirmation === 'failed', `${orderId} confirmation failed`);
  return orderId;
}

const available = existsSync(CHROMIUM);
if (!available) console.warn(`browser tests skipped: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);

describe.skipIf(!available)('the operations console in Chromium', () => {
  let caseOrder: string;
  let overrideOrder: string;
  let dismissOrder: string;
  let deadLetterOrder: string;
  let markedOrder: string;

  beforeAll(async () => {
    hub = await startTestHub();
    // launch() starts Chromium on a fresh temporary profile (user-data-dir) and removes it on close.
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
    // Another site, on another host name (localhost is not the same site as 127.0.0.1): its pages try to act with the operator's credentials.
    attacker = createServer((req, res) => {
      const target = new URL(req.url ?? '/', 'http://x').searchParams.get('target') ?? '';
      res.setHeader('content-type', 'text/html');
      if (req.url?.startsWith('/form')) {
        res.end(
          `<!doctype html><form id="f" method="post" action="${target}"><input name="status" value="9000"><input name="reasonCode" value="hijacked"><input name="_csrf" value="guessed"></form><script>document.getElementById('f').submit()</script>`,
        );
      } else {
        res.end('<!doctype html><title>elsewhere</title><p>another site</p>');
      }
    }).listen(0, '127.0.0.1');
    await once(attacker, 'listening');
    attackerUrl = `http://localhost:${(attacker.address() as AddressInfo).port}`;

    hub.sims.slick.setFailureMode({ status: 400 });
    caseOrder = await failedConfirmation();
    deadLetterOrder = await failedConfirmation();
    overrideOrder = await failedConfirmation();
    dismissOrder = await failedConfirmation();
    hub.sims.slick.resetFailureMode();

    // Implied steps (3000 → 3600 skips 3500) and an admin override.
    markedOrder = await registerOrder(hub);
    await sendAndWait(shipEvent(markedOrder, 'picked'));
    const override = await hub.clients.admin.post(`/api/orders/${markedOrder}/override`, {
      status: 3000,
      reasonCode: 'picked_wrong_items',
      note: 'repick from shelf',
    });
    expect(override.status).toBe(200);
  }, 120_000);

  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    attacker?.close();
    await hub?.close();
  });

  it('asks for a key, and signs each role in with the role it has', async () => {
    const refused = await fetch(`${hub.baseUrl}/ops`);
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    expect(await refused.text()).not.toContain('csrf-token');
    const partner = await fetch(`${hub.baseUrl}/ops`, {
      headers: { authorization: `Basic ${Buffer.from(`slick:${DEVELOPMENT_CLIENTS.find((c) => c.id === 'slick')!.key}`).toString('base64')}` },
    });
    expect(partner.status).toBe(403);

    for (const role of ['viewer', 'operator', 'admin'] as const) {
      const page = await signedIn(role);
      const res = await page.goto(`${hub.baseUrl}/ops`);
      expect(res!.status()).toBe(200);
      expect(await page.locator('[data-role]').textContent()).toBe(role);
      const headers = res!.headers();
      expect(headers['content-security-policy']).toContain("frame-ancestors 'none'");
      expect(headers['content-security-policy']).toContain("script-src 'self'");
      expect(headers['cache-control']).toBe('no-store');
      await page.close();
    }
  });

  it('overview: the stuck orders with why and since when, each integration with its breaker, orders per status and location', async () => {
    const page = await signedIn('viewer');
    await page.goto(`${hub.baseUrl}/ops`);
    const cases = page.locator('section[aria-labelledby="cases-h"] tbody tr');
    await expect.poll(() => cases.count(), POLL).toBeGreaterThanOrEqual(2);
    const caseRow = cases.filter({ hasText: caseOrder });
    expect(await caseRow.textContent()).toMatch(/slick/i);
    expect(await caseRow.locator('time').count()).toBe(1);
    const slick = page.locator('tr[data-integration="slick"]');
    expect(await slick.textContent()).toMatch(/closed|open/);
    expect(await slick.textContent()).toMatch(/400/); // its last error, from the audit
    const pile = page.locator('table.matrix tbody tr', { hasText: 'STORE-007' });
    expect(await pile.count()).toBe(1);
    expect(await pile.locator('a').count()).toBeGreaterThan(0);
    await page.close();
  });

  it('search finds an order; its page marks implied and override rows', async () => {
    const page = await signedIn('viewer');
    await page.goto(`${hub.baseUrl}/ops/orders`);
    await page.getByLabel('Order, tracking id, phone, e-mail or name').fill(markedOrder);
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('link', { name: markedOrder }).click();
    await expect.poll(() => page.locator('h1').textContent(), POLL).toBe(`Order ${markedOrder}`);
    const history = page.locator('section[aria-labelledby="history-h"] tbody tr');
    expect(await history.filter({ hasText: 'implied' }).count()).toBe(1); // 3500, skipped by `picked`
    const override = history.filter({ hasText: 'override' });
    expect(await override.count()).toBe(1);
    expect(await override.textContent()).toContain('repick from shelf');
    expect(await page.locator('[data-order-status]').textContent()).toContain('3000 Released');
    // The export link carries the same filters.
    expect(await page.goto(`${hub.baseUrl}/ops/orders?q=${markedOrder}`).then(() => page.getByRole('link', { name: /Export/ }).getAttribute('href'))).toBe(
      `/ops/orders/export?q=${markedOrder}`,
    );
    // A search the API refuses comes back as the form with the API's reason.
    const bad = await page.goto(`${hub.baseUrl}/ops/orders?from=yesterday`);
    expect(bad!.status()).toBe(400);
    expect(await page.getByRole('alert').textContent()).toContain('query is invalid');
    expect(await page.getByRole('button', { name: 'Search' }).count()).toBe(1);
    const csv = await page.request.get(`${hub.baseUrl}/ops/orders/export?q=${markedOrder}`);
    expect(csv.headers()['content-type']).toMatch(/^text\/csv/);
    expect((await csv.text()).split('\n')[1]).toMatch(new RegExp(`^${markedOrder},3000,Released,STORE-007`));
    await page.close();
  });

  it('shows a status change live on the order page and the overview', async () => {
    const orderId = await registerOrder(hub);
    const page = await signedIn('viewer');
    const overview = await signedIn('viewer');
    await page.goto(`${hub.baseUrl}/ops/orders/${orderId}`);
    await overview.goto(`${hub.baseUrl}/ops`);
    await expect.poll(() => overview.locator('[data-live-state]').textContent(), POLL).toContain('Live');
    await sendAndWait(shipEvent(orderId, 'picking'));
    await expect.poll(() => page.locator('[data-order-status]').textContent(), POLL).toBe('3500 Picking');
    expect(await page.locator('[data-live-state]').textContent()).toContain('3000 Released → 3500 Picking');
    await expect.poll(() => overview.locator('[data-live-feed] li').filter({ hasText: orderId }).count(), POLL).toBe(1);
    await page.close();
    await overview.close();
  });

  it('an operator goes from the open case to the order and retries it: the order reaches 7000', async () => {
    const page = await signedIn('operator');
    const started = Date.now();
    await page.goto(`${hub.baseUrl}/ops`);
    await page.locator('section[aria-labelledby="cases-h"]').getByRole('link', { name: caseOrder }).click();
    const caseBox = page.locator('article.case.open');
    await expect.poll(() => caseBox.count(), POLL).toBe(1);
    await caseBox.getByLabel('Retry (run the failed call again)').check();
    await caseBox.getByLabel('Note (needed to override or dismiss)').fill('Slick fixed the location mapping');
    await caseBox.getByRole('button', { name: 'Resolve' }).click();
    await expect.poll(() => page.locator('.notice').textContent(), POLL).toBe('Case resolved.');
    await eventually(async () => (await orderStatus(caseOrder)) === 7000, `${caseOrder} at 7000`);
    expect(Date.now() - started, 'from the overview to a fixed order').toBeLessThan(60_000);
    await page.reload();
    expect(await page.locator('[data-order-status]').textContent()).toContain('7000 Fulfilled');
    expect(await page.locator('article.case', { hasText: 'Slick fixed the location mapping' }).textContent()).toContain('resolved');
    await page.close();
  });

  it('an operator overrides one stuck order and dismisses another from their cases', async () => {
    const page = await signedIn('operator');
    await page.goto(`${hub.baseUrl}/ops/orders/${overrideOrder}`);
    let caseBox = page.locator('article.case.open');
    await caseBox.getByLabel('Override the status to').check();
    await caseBox.getByLabel('Override status').selectOption('7000');
    await caseBox.getByLabel('Note (needed to override or dismiss)').fill('Slick confirmed by phone');
    await caseBox.getByRole('button', { name: 'Resolve' }).click();
    await expect.poll(() => page.locator('.notice').textContent(), POLL).toBe('Case resolved.');
    expect(await orderStatus(overrideOrder)).toBe(7000);
    // Every field of the page's forms has a label.
    await page.goto(`${hub.baseUrl}/ops/orders/${dismissOrder}`);
    expect(await page.locator('form[method="post"]').count()).toBeGreaterThanOrEqual(3);
    expect(await unlabelledControls(page)).toEqual([]);
    await page.goto(`${hub.baseUrl}/ops/orders/${overrideOrder}`);
    const overridden = page.locator('section[aria-labelledby="history-h"] tbody tr').filter({ hasText: 'override' });
    expect(await overridden.textContent()).toContain('Slick confirmed by phone');

    // Dismiss without the note it needs is refused by the API, and the page says why.
    await page.goto(`${hub.baseUrl}/ops/orders/${dismissOrder}`);
    caseBox = page.locator('article.case.open');
    await caseBox.getByLabel('Dismiss (settled another way)').check();
    await caseBox.getByRole('button', { name: 'Resolve' }).click();
    await expect.poll(() => page.getByRole('alert').textContent(), POLL).toContain('request body is invalid');
    await page.getByRole('link', { name: 'Back' }).click();
    caseBox = page.locator('article.case.open');
    // This time by keyboard only: focus the choice, then Tab to the note and to the button.
    await caseBox.getByLabel('Dismiss (settled another way)').focus();
    await page.keyboard.press('Space');
    await page.keyboard.press('Tab');
    await page.keyboard.type('customer collected in store');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('.notice').textContent(), POLL).toBe('Case resolved.');
    const open = (await hub.clients.viewer.get(`/api/interventions?orderId=${dismissOrder}&state=open`)).body.interventions;
    expect(open).toEqual([]);
    expect(await orderStatus(dismissOrder)).toBe(3700);
    await page.close();
  });

  it('an operator retries a dead letter from its page: the call runs again', async () => {
    const page = await signedIn('operator');
    await page.goto(`${hub.baseUrl}/ops/dead-letters`);
    const row = page.locator('tbody tr', { hasText: deadLetterOrder });
    await expect.poll(() => row.count(), POLL).toBe(1);
    await row.getByRole('button', { name: /^Retry / }).click();
    await expect.poll(() => page.locator('.notice').textContent(), POLL).toBe('Dead letter sent back to its queue.');
    await eventually(async () => (await orderStatus(deadLetterOrder)) === 7000, `${deadLetterOrder} at 7000`);
    await page.close();
  });

  it('a viewer has no action buttons, and the server refuses the action anyway', async () => {
    const orderId = await registerOrder(hub, { status: 1000 });
    const page = await signedIn('viewer');
    await page.goto(`${hub.baseUrl}/ops/orders/${orderId}`);
    expect(await page.locator('form[method="post"]').count()).toBe(0);
    expect(await page.getByRole('button').count()).toBe(0);
    // The same request an operator's form makes, with the viewer's own token, from the console's origin.
    const answer = await page.evaluate(async (id) => {
      const token = document.querySelector('meta[name="csrf-token"]')!.getAttribute('content')!;
      const res = await fetch(`/ops/orders/${id}/status`, { method: 'POST', body: new URLSearchParams({ _csrf: token, status: '1500', reasonCode: 'x' }) });
      return { status: res.status, text: await res.text() };
    }, orderId);
    expect(answer.status).toBe(403);
    expect(answer.text).toContain('forbidden');
    expect(await orderStatus(orderId)).toBe(1000);

    // The operator's page for the same order has the forms.
    const operator = await signedIn('operator');
    await operator.goto(`${hub.baseUrl}/ops/orders/${orderId}`);
    await operator.getByLabel('Reason code').first().fill('address_checked');
    await operator.getByRole('button', { name: 'Move' }).click();
    await expect.poll(() => operator.locator('.notice').textContent(), POLL).toBe('Status moved.');
    expect(await orderStatus(orderId)).toBe(1500);
    await page.close();
    await operator.close();
  });

  it('an operator moves several found orders at once from the search page', async () => {
    const name = `Bulkmove ${process.pid} ${Date.now().toString(36)}`;
    const orders = [
      await registerOrder(hub, { status: 1000, customer: { id: 'C-B1', name } }),
      await registerOrder(hub, { status: 1000, customer: { id: 'C-B2', name } }),
    ];
    const page = await signedIn('operator');
    await page.goto(`${hub.baseUrl}/ops/orders?q=${encodeURIComponent(name)}`);
    expect(await unlabelledControls(page)).toEqual([]);
    for (const id of orders) await page.getByLabel(`Select ${id}`).check();
    await page.getByLabel('To status').selectOption('1500');
    await page.getByRole('button', { name: 'Move selected' }).click();
    await expect.poll(() => page.locator('.notice').textContent(), POLL).toBe('Orders moved.');
    for (const id of orders) expect(await orderStatus(id)).toBe(1500);
    // Back on the same search, which now shows them at 1500.
    expect(await page.locator('tbody tr', { hasText: orders[0]! }).textContent()).toContain('1500 Validated');
    await page.close();
  });

  it("refuses another site's form post and fetch made with the operator's credentials", async () => {
    const orderId = await registerOrder(hub, { status: 1000 });
    const target = `${hub.baseUrl}/ops/orders/${orderId}/status`;
    // A browser that attaches the operator's cached Basic credentials to every request to the hub,
    // whichever site makes it (the worst case): only the console's own checks stand in the way.
    const basic = `Basic ${Buffer.from(`operator:${KEYS.operator}`).toString('base64')}`;
    const context = await browser.newContext({ extraHTTPHeaders: { authorization: basic } });
    contexts.push(context);
    const page = await context.newPage();
    expect((await page.goto(`${hub.baseUrl}/ops`))!.status()).toBe(200);

    // A form on the other site that posts itself to the hub.
    const posted = page.waitForResponse((r) => r.url() === target && r.request().method() === 'POST' && r.status() !== 401);
    await page.goto(`${attackerUrl}/form?target=${encodeURIComponent(target)}`);
    const formAnswer = await posted;
    expect(formAnswer.status()).toBe(403);
    expect(await formAnswer.text()).toContain('cross_site_request_refused');

    // A fetch from the other site: a "simple" one that needs no preflight, and one that would.
    await page.goto(`${attackerUrl}/`);
    const refusedBefore = await refusedWrites();
    const outcome = await page.evaluate(async (url) => {
      const simple = await fetch(url, {
        method: 'POST',
        mode: 'no-cors',
        credentials: 'include',
        body: new URLSearchParams({ status: '1500', reasonCode: 'x' }),
      })
        .then((r) => `read ${r.type}`)
        .catch(() => 'unreadable');
      const preflighted = await fetch(url, {
        method: 'POST',
        credentials: 'include',
        headers: { 'content-type': 'application/json', 'x-requested-with': 'fetch' },
        body: '{"status":1500,"reasonCode":"x"}',
      })
        .then((r) => `answered ${r.status}`)
        .catch(() => 'blocked');
      return { simple, preflighted };
    }, target);
    // The simple one reached the hub with the credentials and was answered 403 (counted by the hub);
    // its answer is not even readable there (Cross-Origin-Resource-Policy).
    await eventually(async () => (await refusedWrites()) === refusedBefore + 1, 'the cross-site fetch refused with 403');
    expect(outcome.simple).toBe('unreadable');
    // The other needs a CORS preflight, which the hub never grants: the POST is never sent.
    expect(outcome.preflighted).toBe('blocked');
    // And from the console's own origin, a write without the page's token is refused too.
    await page.goto(`${hub.baseUrl}/ops`);
    const tokenless = await page.evaluate(async (url) => {
      const res = await fetch(url, { method: 'POST', body: new URLSearchParams({ status: '1500', reasonCode: 'x' }) });
      return { status: res.status, text: await res.text() };
    }, target);
    expect(tokenless.status).toBe(403);
    expect(tokenless.text).toContain('missing its console token');
    expect(await orderStatus(orderId)).toBe(1000);
    await page.close();
  });

  it('shows what partners and people typed as text, never as markup', async () => {
    const hostile = "<img src=x onerror=\"document.title='owned'\"><script>document.title='owned'</script>";
    const orderId = await registerOrder(hub, { customer: { id: 'C-XSS', name: hostile } });
    const page = await signedIn('viewer');
    const dialogs: string[] = [];
    page.on('dialog', (d) => void dialogs.push(d.message()));
    await page.goto(`${hub.baseUrl}/ops/orders/${orderId}`);
    expect(await page.locator('.summary dd', { hasText: 'onerror' }).textContent()).toBe(hostile);
    await page.goto(`${hub.baseUrl}/ops/orders?q=${encodeURIComponent(hostile)}`);
    expect(await page.getByLabel('Order, tracking id, phone, e-mail or name').inputValue()).toBe(hostile);
    expect(await page.title()).not.toBe('owned');
    expect(await page.locator('img[src="x"]').count()).toBe(0);
    expect(dialogs).toEqual([]);
    await page.close();
  });

  it('renders the API reference from the document, and the console pages for the README', async () => {
    const page = await signedIn('admin');
    await page.goto(`${hub.baseUrl}/api/docs`);
    await expect.poll(() => page.locator('.swagger-ui .title').first().textContent(), POLL).toContain('Fulfillment hub API');
    expect(await page.locator('.opblock-summary-path').filter({ hasText: '/api/fulfillment/ship-events' }).count()).toBe(1);

    await page.goto(`${hub.baseUrl}/ops`);
    await expect.poll(() => page.locator('[data-live-state]').textContent(), POLL).toContain('Live');
    // Keyboard: the skip link is the first stop and lands on the content.
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Skip to content');
    if (process.env.UPDATE_SCREENSHOTS) {
      // A stuck order to look at: Slick refuses one more confirmation.
      hub.sims.slick.setFailureMode({ status: 400 });
      const stuck = await failedConfirmation();
      hub.sims.slick.resetFailureMode();
      await page.reload();
      await mkdir(join(REPO_ROOT, 'docs'), { recursive: true });
      await page.screenshot({ path: join(REPO_ROOT, 'docs/console-overview.png'), fullPage: true });
      await page.goto(`${hub.baseUrl}/ops/orders/${stuck}`);
      await page.screenshot({ path: join(REPO_ROOT, 'docs/console-order.png'), fullPage: true });
      await page.goto(`${hub.baseUrl}/ops/orders/${markedOrder}`);
      await page.locator('#history-h').scrollIntoViewIfNeeded();
      await page.locator('section[aria-labelledby="history-h"]').screenshot({ path: join(REPO_ROOT, 'docs/console-order-history.png') });
    }
    await page.close();
  });
});
