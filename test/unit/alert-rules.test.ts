import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

/**
 * The Prometheus side, checked by Prometheus's own tool (installed by .ci/run from Debian's package):
 * the scrape configs and rule files are valid, every alert has a promtool unit test that fires it and
 * one where it stays quiet, and each alert says what it means and links its runbook in the README.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PROMETHEUS = join(ROOT, 'ops/prometheus');
const RULE_FILES = readdirSync(join(PROMETHEUS, 'rules')).filter((f) => f.endsWith('.rules.yml'));
const TEST_FILES = readdirSync(join(PROMETHEUS, 'tests')).filter((f) => f.endsWith('.test.yml'));

function promtool(...args: string[]) {
  const run = spawnSync('promtool', args, { cwd: PROMETHEUS, encoding: 'utf8' });
  if (run.error) throw new Error(`promtool not runnable (${run.error.message}): install Debian's prometheus package (.ci/run does)`);
  return { code: run.status, output: `${run.stdout}${run.stderr}` };
}

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rules: Rule[] = RULE_FILES.flatMap((f) =>
  (parse(readFileSync(join(PROMETHEUS, 'rules', f), 'utf8')) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap((g) => g.rules),
);
const alerts = rules.filter((r): r is Rule & { alert: string } => r.alert !== undefined);

interface AlertTest {
  alertname: string;
  exp_alerts?: unknown[];
}
const alertTests: AlertTest[] = TEST_FILES.flatMap((f) =>
  (parse(readFileSync(join(PROMETHEUS, 'tests', f), 'utf8')) as { tests: Array<{ alert_rule_test?: AlertTest[] }> }).tests.flatMap(
    (t) => t.alert_rule_test ?? [],
  ),
);

describe('Prometheus configuration and alert rules', () => {
  it('promtool accepts both scrape configurations, with their rule files', () => {
    for (const config of ['prometheus.yml', 'prometheus.host.yml']) {
      const { code, output } = promtool('check', 'config', config);
      expect(output).toContain('SUCCESS');
      expect(code, output).toBe(0);
    }
  });

  it('promtool accepts every rule file', () => {
    expect(RULE_FILES.length).toBeGreaterThan(0);
    const { code, output } = promtool('check', 'rules', ...RULE_FILES.map((f) => join('rules', f)));
    expect(code, output).toBe(0);
  });

  it('every promtool unit test passes', () => {
    expect(TEST_FILES.length).toBeGreaterThan(0);
    const { code, output } = promtool('test', 'rules', ...TEST_FILES.map((f) => join('tests', f)));
    expect(code, output).toBe(0);
    expect(output).toContain('SUCCESS');
  });

  it('a promtool unit test that expects the wrong alert fails (the tests can fail)', () => {
    const test = readFileSync(join(PROMETHEUS, 'tests', TEST_FILES[0]!), 'utf8').replace(
      'exp_labels: { severity: critical }',
      'exp_labels: { severity: info }',
    );
    const run = spawnSync('promtool', ['test', 'rules', '/dev/stdin'], { cwd: join(PROMETHEUS, 'tests'), input: test, encoding: 'utf8' });
    expect(run.status).not.toBe(0);
  });

  it('the issue’s alerts are all there', () => {
    expect(alerts.map((a) => a.alert).sort()).toEqual(
      [
        'CircuitBreakerOpen',
        'DeadLettersAboveThreshold',
        'EventCommitSlaP99Breached',
        'EventsWaitingPastSla',
        'HubProcessDown',
        'IntegrationDown',
        'IntegrationErrorRateHigh',
        'NoShipEventsDuringTradingHours',
        'QueueBacklogGrowing',
        'TierDiscrepanciesOpen',
      ].sort(),
    );
  });

  it.each(alerts.map((a) => [a.alert, a] as const))('%s has a test that fires it and one that does not', (name) => {
    const mine = alertTests.filter((t) => t.alertname === name);
    expect(
      mine.some((t) => (t.exp_alerts ?? []).length > 0),
      `${name}: no test case expects it to fire`,
    ).toBe(true);
    expect(
      mine.some((t) => (t.exp_alerts ?? []).length === 0),
      `${name}: no test case expects it to stay quiet`,
    ).toBe(true);
  });

  it.each(alerts.map((a) => [a.alert, a] as const))('%s has a severity, a summary, a description and a runbook section in the README', (name, rule) => {
    expect(['critical', 'error', 'warning']).toContain(rule.labels?.severity);
    expect(rule.annotations?.summary).toBeTruthy();
    expect(rule.annotations?.description).toBeTruthy();
    expect(rule.annotations?.runbook).toBe(`README.md#${name.toLowerCase()}`);
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    expect(readme).toMatch(new RegExp(`^#+ \`?${name}\`?\\s*$`, 'm'));
  });

  it('the compose file runs Prometheus with these files and Grafana provisioned from ops/grafana', () => {
    const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, { volumes?: string[]; command?: string[] }> };
    expect(compose.services.prometheus?.volumes).toContain('./ops/prometheus:/etc/prometheus:ro');
    expect(compose.services.prometheus?.command?.join(' ')).toContain('--config.file=/etc/prometheus/');
    expect(compose.services.grafana?.volumes).toEqual(
      expect.arrayContaining(['./ops/grafana/provisioning:/etc/grafana/provisioning:ro', './ops/grafana/dashboards:/var/lib/grafana/dashboards:ro']),
    );
    // The scrape targets are the compose file's service names.
    const scrape = parse(readFileSync(join(PROMETHEUS, 'prometheus.yml'), 'utf8')) as {
      scrape_configs: Array<{ job_name: string; static_configs?: Array<{ targets: string[] }>; dns_sd_configs?: Array<{ names: string[] }> }>;
    };
    const hosts = scrape.scrape_configs.flatMap((j) => [
      ...(j.static_configs ?? []).flatMap((s) => s.targets.map((t) => t.split(':')[0]!)),
      ...(j.dns_sd_configs ?? []).flatMap((d) => d.names),
    ]);
    expect(scrape.scrape_configs.map((j) => j.job_name).sort()).toEqual(['scheduler', 'web', 'worker']);
    for (const host of hosts) expect(Object.keys(compose.services)).toContain(host);
    execFileSync('promtool', ['--version']);
  });
});
