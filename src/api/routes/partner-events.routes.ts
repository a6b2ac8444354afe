import { Router, type Request, type Response } from 'express';
import type { HubDeps } from '../../deps.js';
import { ValidationError } from '../../errors.js';
import { ALL_EVENT_KINDS } from '../../event-kinds/index.js';
import type { EventKind } from '../../inbox/event-kind.js';
import type { EventOutcomeWaiters } from '../../inbox/event-outcomes.js';
import { eventOutcomeView, findInboundEvent } from '../../inbox/event-store.js';
import { authorize, clientOf, requireSignature } from '../auth.js';
import { errorBody } from '../error-handler.js';
import type { PartnerEventIntake } from '../../inbox/intake.js';
import { parseWith, readJsonBody } from '../request-body.js';

export const MAX_PREFER_WAIT_SECONDS = 10;

/** `Prefer: wait=N` (RFC 7240), capped at 10 s; undefined when absent. */
export function preferWaitSeconds(req: Request): number | undefined {
  const header = req.header('prefer');
  if (!header) return undefined;
  const m = /(?:^|[,;\s])wait\s*=\s*"?(\d+)"?/i.exec(header);
  if (!m) return undefined;
  return Math.min(Number(m[1]), MAX_PREFER_WAIT_SECONDS);
}

/** The eventId may come in the body, in `Idempotency-Key`, or both (then they must match). */
export function withIdempotencyKey(req: Request, body: unknown): unknown {
  const key = req.header('idempotency-key');
  if (key === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) return body;
  const given = (body as { eventId?: unknown }).eventId;
  if (given !== undefined && given !== key) {
    throw new ValidationError('Idempotency-Key and eventId differ', { idempotencyKey: key, eventId: given }, 'idempotency_key_mismatch');
  }
  return { ...body, eventId: key };
}

/**
 * The common path of every partner event endpoint, for any event kind: store (commit) first, then
 * hand on (see PartnerEventIntake.accept); answer 202, or with `Prefer: wait=N` the outcome once known.
 */
export async function acceptPartnerEvent(
  deps: HubDeps,
  { intake, waiters }: PartnerEventRouteContext,
  kind: EventKind,
  req: Request,
  res: Response,
  body: { eventId: string; orderId: string },
) {
  const client = clientOf(res);
  const wait = preferWaitSeconds(req);
  const { stored, outcome } = await intake.accept(
    {
      eventId: body.eventId,
      kind: kind.name,
      source: kind.source,
      type: kind.partnerType(body as never),
      orderId: body.orderId,
      actor: client.id,
      payload: body as unknown as Record<string, unknown>,
    },
    Boolean(wait),
  );
  deps.metrics.eventsReceived.inc({ kind: kind.name, result: stored.duplicate ? 'duplicate' : 'new' });

  let current = stored.event;
  if (outcome !== undefined && outcome !== 'already_processed') {
    // Stored and applied in one transaction by this web: the outcome is committed.
    current = { ...current, ...outcome };
    if (wait !== undefined) current = (await findInboundEvent(deps.db, body.eventId)) ?? current; // with its processedAt
  } else if (wait !== undefined && wait > 0 && current.state === 'queued') {
    // In the queue: a worker announces the outcome.
    await waiters.wait(body.eventId, wait * 1000, async () => (await findInboundEvent(deps.db, body.eventId))?.state !== 'queued');
    current = (await findInboundEvent(deps.db, body.eventId)) ?? current;
  }
  const view = { ...eventOutcomeView(current), ...(stored.duplicate ? { duplicate: true } : {}) };
  if (wait !== undefined && current.state !== 'queued') {
    res.setHeader('Preference-Applied', `wait=${wait}`);
    if (current.state === 'rejected' || current.state === 'failed') {
      res.status(422).json(errorBody(current.reason ?? 'rejected', `event ${current.state}: ${current.reason ?? 'no reason given'}`, view));
      return;
    }
    res.status(200).json(view);
    return;
  }
  res.status(202).json({ eventId: current.eventId, state: current.state, ...(stored.duplicate ? { duplicate: true } : {}) });
}

/** What the partner event routes of one web process share. */
export interface PartnerEventRouteContext {
  intake: PartnerEventIntake;
  waiters: EventOutcomeWaiters;
}

/** One endpoint per inbound event kind, all with the same guarantees: role, signature, schema, store before answer. */
export function partnerEventRoutes(deps: HubDeps, context: PartnerEventRouteContext): Router {
  const router = Router();
  for (const kind of ALL_EVENT_KINDS) {
    if (!kind.route) continue;
    router[kind.route.method](kind.route.path, authorize(kind.route.role), readJsonBody, requireSignature, async (req, res) => {
      const body = parseWith(kind.schema, withIdempotencyKey(req, res.locals.body));
      await acceptPartnerEvent(deps, context, kind, req, res, body);
    });
  }
  return router;
}
