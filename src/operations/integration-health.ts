import type { Redis } from 'ioredis';
import { INTEGRATIONS, type Config, type IntegrationName } from '../config.js';
import type { Clock } from '../deps.js';
import type { BreakerSnapshot, CappedListEntry, CircuitBreaker } from '../integrations/circuit-breaker.js';

/**
 * Integration health from two sources, kept in Redis so every process contributes and any web process
 * can answer: the periodic probe of each partner's /health, and the outcome of every real call.
 */

export interface HealthSample {
  at: number;
  kind: 'probe' | 'call';
  ok: boolean;
  latencyMs: number;
  status: number | null;
}

const SAMPLES_KEPT = 1000;
/** Availability and error rates look at this much recent history. */
export const HEALTH_WINDOW_MS = 15 * 60_000;

function samplesKey(prefix: string, integration: IntegrationName) {
  return `${prefix}:integration-health:${integration}`;
}

/**
 * A real call's health sample as the entry its integration's list takes: what a partner call pushes
 * with its breaker's record of the outcome (CircuitBreaker.record), in the same script.
 */
export function callHealthSample(prefix: string, integration: IntegrationName, sample: Omit<HealthSample, 'kind'>): CappedListEntry {
  return {
    key: samplesKey(prefix, integration),
    entry: JSON.stringify({ at: sample.at, kind: 'call', ok: sample.ok, latencyMs: sample.latencyMs, status: sample.status } satisfies HealthSample),
    kept: SAMPLES_KEPT,
  };
}

/** A probe's sample (one MULTI: LPUSH and LTRIM). */
export async function recordHealthSample(redis: Redis, prefix: string, integration: IntegrationName, sample: HealthSample): Promise<void> {
  const key = samplesKey(prefix, integration);
  await redis
    .multi()
    .lpush(key, JSON.stringify(sample))
    .ltrim(key, 0, SAMPLES_KEPT - 1)
    .exec();
}

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export interface IntegrationHealth {
  integration: IntegrationName;
  configured: boolean;
  status: 'up' | 'degraded' | 'down' | 'unknown';
  circuit: Omit<BreakerSnapshot, 'integration'>;
  probe: { last: HealthSample | null; availability: number | null; samples: number };
  calls: { count: number; errorRate: number | null; latencyMs: { p50: number | null; p95: number | null; p99: number | null } };
}

export async function integrationHealth(
  redis: Redis,
  config: Pick<Config, 'redisPrefix' | 'integrations'>,
  breakers: Record<IntegrationName, CircuitBreaker>,
  clock: Clock,
): Promise<IntegrationHealth[]> {
  const since = clock.now() - HEALTH_WINDOW_MS;
  return Promise.all(
    INTEGRATIONS.map(async (integration) => {
      const [raw, breaker] = await Promise.all([redis.lrange(samplesKey(config.redisPrefix, integration), 0, -1), breakers[integration].snapshot()]);
      const samples = raw.map((r) => JSON.parse(r) as HealthSample).filter((s) => s.at >= since);
      const probes = samples.filter((s) => s.kind === 'probe');
      const calls = samples.filter((s) => s.kind === 'call');
      const latencies = calls.map((c) => c.latencyMs).sort((a, b) => a - b);
      const availability = probes.length ? probes.filter((p) => p.ok).length / probes.length : null;
      const errorRate = calls.length ? calls.filter((c) => !c.ok).length / calls.length : null;
      const lastProbe = probes[0] ?? null;
      const configured = config.integrations[integration].baseUrl !== undefined;
      const status: IntegrationHealth['status'] = !configured
        ? 'unknown'
        : breaker.state === 'open' || (lastProbe && !lastProbe.ok)
          ? 'down'
          : breaker.state === 'half_open' || (errorRate ?? 0) > 0.1 || (availability ?? 1) < 0.99
            ? 'degraded'
            : lastProbe || calls.length
              ? 'up'
              : 'unknown';
      const { integration: _, ...circuit } = breaker;
      return {
        integration,
        configured,
        status,
        circuit,
        probe: { last: lastProbe, availability, samples: probes.length },
        calls: {
          count: calls.length,
          errorRate,
          latencyMs: { p50: percentile(latencies, 50), p95: percentile(latencies, 95), p99: percentile(latencies, 99) },
        },
      };
    }),
  );
}
