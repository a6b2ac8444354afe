import { Router } from 'express';
import { sql } from 'drizzle-orm';
import type { HubDeps } from '../../deps.js';

async function check(name: string, probe: () => Promise<unknown>, timeoutMs = 2000) {
  const started = Date.now();
  try {
    await Promise.race([probe(), new Promise((_, reject) => setTimeout(() => reject(new Error('timed out')), timeoutMs).unref())]);
    return { name, ok: true, latencyMs: Date.now() - started };
  } catch (err) {
    return { name, ok: false, latencyMs: Date.now() - started, error: (err as Error).message };
  }
}

/** Liveness (the process answers) and readiness (Postgres and Redis answer). No key needed. */
export function healthRoutes(deps: HubDeps): Router {
  const router = Router();
  router.get('/api/health', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/api/health/ready', async (_req, res) => {
    const checks = await Promise.all([check('postgres', () => deps.db.execute(sql`select 1`)), check('redis', () => deps.redis.ping())]);
    const ready = checks.every((c) => c.ok);
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not_ready', checks });
  });
  return router;
}
