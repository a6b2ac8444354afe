// Live updates for the console: the hub's status stream (GET /ops/stream, the API's SSE passed
// through with the signed-in key). The overview lists changes as they arrive; an order page shows its
// own changes and the new status. No framework, no inline script (the CSP allows this file only).
(() => {
  'use strict';
  const body = document.body;
  if (!('liveOrder' in body.dataset) || typeof EventSource === 'undefined') return;
  const orderId = body.dataset.liveOrder || '';
  const locationId = body.dataset.liveLocation || '';
  const state = document.querySelector('[data-live-state]');
  const feed = document.querySelector('[data-live-feed]');
  const statusCell = document.querySelector('[data-order-status]');
  const params = new URLSearchParams();
  if (orderId) params.set('orderId', orderId);
  if (locationId) params.set('locationId', locationId);
  const query = params.toString();
  const source = new EventSource(`/ops/stream${query ? `?${query}` : ''}`);
  // The status names as the order machine has them, written into the page by the server.
  const NAMES = JSON.parse(body.dataset.statusNames || '{}');
  const label = (code) => (code === null || code === undefined ? '—' : `${code} ${NAMES[code] || ''}`);
  const say = (text) => {
    if (state) state.textContent = text;
  };

  source.addEventListener('open', () => {
    say(orderId ? '' : 'Live: changes appear here as they happen.');
  });
  source.addEventListener('error', () => {
    say('Live updates interrupted; reconnecting…');
  });
  source.addEventListener('status', (event) => {
    let change;
    try {
      change = JSON.parse(event.data);
    } catch {
      return;
    }
    const line = `${change.orderId}: ${label(change.from)} → ${label(change.to)} at ${String(change.at)
      .replace('T', ' ')
      .replace(/\.\d+Z$/, ' UTC')}`;
    if (feed) {
      const item = document.createElement('li');
      const link = document.createElement('a');
      link.href = `/ops/orders/${encodeURIComponent(change.orderId)}`;
      link.textContent = line;
      item.appendChild(link);
      feed.insertBefore(item, feed.firstChild);
      while (feed.children.length > 50) feed.removeChild(feed.lastChild);
    }
    if (orderId && change.orderId === orderId) {
      if (statusCell) {
        statusCell.textContent = '';
        const strong = document.createElement('strong');
        strong.textContent = label(change.to);
        statusCell.appendChild(strong);
      }
      say(`Status changed live: ${line}. Reload the page for its history.`);
    }
  });
})();
