import type { NextFunction, Request, Response } from 'express';
import type { Logger } from '../logger.js';
import { AppError } from '../errors.js';

/** The one place errors become HTTP answers, always in the JSON error format of SPEC §3. */
export function errorBody(code: string, message: string, details?: unknown) {
  return { error: { code, message, ...(details !== undefined ? { details } : {}) } };
}

export function errorHandler(logger: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (res.headersSent) return;
    if (err instanceof AppError) {
      if (err.httpStatus >= 500 && err.retryAfterSeconds === undefined) logger.error({ err: err.cause ?? err, path: req.path }, err.message);
      if (err.retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(Math.max(1, Math.ceil(err.retryAfterSeconds))));
      res.status(err.httpStatus).json(errorBody(err.code, err.message, err.details));
      return;
    }
    // body-parser errors carry a `type` and a status.
    const e = err as { type?: string; status?: number };
    if (e.type === 'entity.too.large') {
      res.status(413).json(errorBody('payload_too_large', 'request body is larger than 64 KiB'));
      return;
    }
    if (e.type === 'encoding.unsupported' || e.type === 'charset.unsupported') {
      res.status(415).json(errorBody('unsupported_media_type', 'unsupported body encoding'));
      return;
    }
    if (e.type === 'request.aborted' || e.type === 'request.size.invalid') {
      res.status(400).json(errorBody('bad_request', 'the request body was incomplete'));
      return;
    }
    logger.error({ err, path: req.path, method: req.method }, 'unhandled error');
    res.status(500).json(errorBody('internal_error', 'internal error'));
  };
}
