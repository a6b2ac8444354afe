import { Router } from 'express';
import { z } from 'zod';
import type { HubDeps } from '../../deps.js';
import { UnavailableError } from '../../errors.js';
import { authorize, READERS } from '../auth.js';
import type { StatusStream } from '../status-stream.js';
import { parseWith } from '../request-body.js';

/** The query of `GET /api/stream` (also in the OpenAPI document). */
export const streamQuery = z
  .object({
    locationId: z.string().min(1).max(64).optional(),
    orderId: z.string().min(1).max(64).optional(),
  })
  .strict();

/** `GET /api/stream` (SPEC §6): Server-Sent Events, one `event: status` per status change, resumable by `Last-Event-ID`. */
export function streamRoutes(_deps: HubDeps, stream: StatusStream | undefined): Router {
  const router = Router();
  router.get('/api/stream', authorize(...READERS), async (req, res) => {
    if (!stream) throw new UnavailableError('the live stream is not served by this process');
    const filter = parseWith(streamQuery, req.query, 'query');
    await stream.serve(req, res, filter);
  });
  return router;
}
