import { and, desc, eq, sql } from 'drizzle-orm';
import type { HubDeps } from '../deps.js';
import { incidents } from '../db/schema/index.js';
import { scheduleUnrecordedCall } from '../partner-calls/schedule.js';

/**
 * Incidents: raised automatically, one open per cause, posted to INCIDENT_WEBHOOK_URL (as a queue job,
 * so it is retried like any partner call), and resolved when their cause clears.
 */

export type IncidentSeverity = 'critical' | 'error' | 'warning';
export type IncidentRow = typeof incidents.$inferSelect;

export async function raiseIncident(
  deps: HubDeps,
  input: { cause: string; severity: IncidentSeverity; summary: string; detail: Record<string, unknown> },
): Promise<IncidentRow | undefined> {
  const [opened] = await deps.db
    .insert(incidents)
    .values(input)
    .onConflictDoNothing({ target: incidents.cause, where: sql`${incidents.state} = 'open'` })
    .returning();
  if (!opened) return undefined;
  deps.logger.error({ incidentId: opened.id, cause: opened.cause, summary: opened.summary }, 'incident opened');
  await announceIncident(deps, opened, 'trigger');
  return opened;
}

export async function resolveIncident(deps: HubDeps, cause: string, why: string): Promise<IncidentRow | undefined> {
  const [resolved] = await deps.db
    .update(incidents)
    .set({ state: 'resolved', resolvedAt: new Date(), detail: sql`${incidents.detail} || ${JSON.stringify({ resolution: why })}::jsonb` })
    .where(and(eq(incidents.cause, cause), eq(incidents.state, 'open')))
    .returning();
  if (!resolved) return undefined;
  deps.logger.info({ incidentId: resolved.id, cause, why }, 'incident resolved');
  await announceIncident(deps, resolved, 'resolve');
  return resolved;
}

async function announceIncident(deps: HubDeps, incident: IncidentRow, action: 'trigger' | 'resolve'): Promise<void> {
  if (!deps.config.integrations.incident.baseUrl) return;
  try {
    await scheduleUnrecordedCall(deps, 'incident.notify', { incidentId: incident.id, action });
  } catch (err) {
    // The incident is recorded in Postgres and listed by the API; only the page is lost.
    deps.logger.error({ err: (err as Error).message, incidentId: incident.id }, 'could not schedule the incident webhook');
  }
}

export async function listIncidents(deps: Pick<HubDeps, 'db'>, filter: { state?: 'open' | 'resolved'; limit: number }) {
  return deps.db
    .select()
    .from(incidents)
    .where(filter.state ? eq(incidents.state, filter.state) : undefined)
    .orderBy(desc(incidents.openedAt))
    .limit(filter.limit);
}

export function incidentView(i: IncidentRow) {
  return {
    id: i.id,
    cause: i.cause,
    state: i.state,
    severity: i.severity,
    summary: i.summary,
    detail: i.detail,
    openedAt: i.openedAt.toISOString(),
    resolvedAt: i.resolvedAt?.toISOString() ?? null,
  };
}
