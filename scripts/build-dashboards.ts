/**
 * Writes the hub's Grafana dashboard (src/observability/dashboard.ts) to
 * ops/grafana/dashboards/fulfillment-hub.json, which the compose file's Grafana loads at start.
 *   npm run dashboards
 * test/integration/observability.test.ts fails while the committed JSON differs from what this writes.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildDashboard } from '../src/observability/dashboard.js';

export const DASHBOARD_FILE = fileURLToPath(new URL('../ops/grafana/dashboards/fulfillment-hub.json', import.meta.url));
export const dashboardText = () => `${JSON.stringify(buildDashboard(), null, 2)}\n`;

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(DASHBOARD_FILE, dashboardText());
  console.log(`wrote ${DASHBOARD_FILE}`);
}
