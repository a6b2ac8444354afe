import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_RATE_LIMITS, DEVELOPMENT_CLIENTS, loadConfig } from '../../src/config.js';

describe('configuration', () => {
  it('uses documented defaults and the development clients outside production', () => {
    const c = loadConfig({});
    expect(c.port).toBe(3000);
    expect(c.topicStream).toBe('order.fulfillment.v1');
    expect(c.integrations.slick).toMatchObject({ timeoutMs: 30_000, retryDelaysMs: [1000, 2000, 4000] });
    expect(c.circuitFailureThreshold).toBe(5);
    expect(c.circuitOpenMs).toBe(30_000);
    expect(c.usingDevelopmentClients).toBe(true);
    expect(c.apiClients).toEqual(DEVELOPMENT_CLIENTS);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('refuses to start in production without API_CLIENTS', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(/API_CLIENTS/);
  });

  it('requires DATABASE_URL and REDIS_URL in production, naming each missing one', () => {
    const clients = JSON.stringify([{ id: 'ops', role: 'operator', key: 'ops-key-0123456789abcdef' }]);
    const db = 'postgres://hub@db.internal:5432/hub';
    const redis = 'redis://cache.internal:6379';
    expect(() => loadConfig({ NODE_ENV: 'production', API_CLIENTS: clients, REDIS_URL: redis })).toThrow(/^DATABASE_URL: required when NODE_ENV=production$/);
    expect(() => loadConfig({ NODE_ENV: 'production', API_CLIENTS: clients, DATABASE_URL: db })).toThrow(/^REDIS_URL: required when NODE_ENV=production$/);
    // An empty value is unset, as in a process manager's env file.
    expect(() => loadConfig({ NODE_ENV: 'production', API_CLIENTS: clients, DATABASE_URL: '', REDIS_URL: '' })).toThrow(
      /DATABASE_URL: required.*; REDIS_URL: required/,
    );
    const c = loadConfig({ NODE_ENV: 'production', API_CLIENTS: clients, DATABASE_URL: db, REDIS_URL: redis });
    expect(c).toMatchObject({ databaseUrl: db, redisUrl: redis, usingDevelopmentClients: false });
    // Outside production the local defaults stand in.
    expect(loadConfig({ NODE_ENV: 'development' }).databaseUrl).toMatch(/^postgres:\/\/.*127\.0\.0\.1/);
  });

  it('rate limits per role: defaults, overrides of some roles, and a bad value named', () => {
    const c = loadConfig({ RATE_LIMITS: 'viewer=50/1, partner:grab=200/10', FAILED_AUTH_LIMIT: '10/300' });
    expect(c.rateLimits.viewer).toEqual({ points: 50, durationSeconds: 1 });
    expect(c.rateLimits['partner:grab']).toEqual({ points: 200, durationSeconds: 10 });
    expect(c.rateLimits.operator).toEqual(DEFAULT_RATE_LIMITS.operator);
    expect(c.failedAuthLimit).toEqual({ points: 10, durationSeconds: 300 });
    expect(loadConfig({}).rateLimits).toEqual(DEFAULT_RATE_LIMITS);
    for (const bad of ['viewer=50', 'god=1/1', 'viewer=0/1', 'viewer=1/0', 'viewer:50/1']) {
      expect(() => loadConfig({ RATE_LIMITS: bad })).toThrow(/RATE_LIMITS/);
    }
    expect(() => loadConfig({ FAILED_AUTH_LIMIT: 'ten' })).toThrow(/FAILED_AUTH_LIMIT/);
  });

  it('names the variable that is wrong', () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ SLICK_TIMEOUT_MS: 'soon' }, /SLICK_TIMEOUT_MS/],
      [{ SLICK_RETRY_DELAYS_MS: '1000,,x' }, /SLICK_RETRY_DELAYS_MS/],
      [{ SLICK_BASE_URL: 'not a url' }, /SLICK_BASE_URL/],
      [{ PORT: '70000' }, /PORT/],
      [{ REDIS_URL: 'http://x' }, /REDIS_URL/],
      [{ API_CLIENTS: '{' }, /API_CLIENTS: not valid JSON/],
      [{ API_CLIENTS: '[{"id":"a","role":"god","key":"0123456789abcdef"}]' }, /API_CLIENTS/],
      [{ API_CLIENTS: '[{"id":"s","role":"partner:slick","key":"0123456789abcdef"}]' }, /partner clients need a secret/],
      // An event may wait for a held order twice before it is stored alone: within the store deadline.
      [{ INTAKE_BATCH_LOCK_WAIT_MS: '2500' }, /INTAKE_BATCH_LOCK_WAIT_MS: 2500 ms waited twice reaches INTAKE_STORE_DEADLINE_MS \(5000 ms\)/],
    ];
    for (const [env, message] of cases) {
      expect(() => loadConfig(env)).toThrow(ConfigError);
      expect(() => loadConfig(env)).toThrow(message);
    }
  });

  it('accepts keySha256 in place of a key, and custom retry delays', () => {
    const c = loadConfig({
      API_CLIENTS: JSON.stringify([{ id: 'ops', role: 'operator', keySha256: 'a'.repeat(64) }]),
      PMP_RETRY_DELAYS_MS: '10, 20',
      REDIS_URL: 'redis://127.0.0.1:6379/5',
    });
    expect(c.apiClients[0]!.keySha256).toBe('a'.repeat(64));
    expect(c.integrations.pmp.retryDelaysMs).toEqual([10, 20]);
    expect(c.usingDevelopmentClients).toBe(false);
  });
});
