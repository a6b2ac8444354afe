import express, { type NextFunction, type Request, type Response } from 'express';
import type { z } from 'zod';
import { AppError, ValidationError } from '../errors.js';

export const MAX_BODY_BYTES = 64 * 1024;

function isJsonContentType(req: Request): boolean {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  return type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'));
}

const readRaw = express.raw({ type: () => true, limit: MAX_BODY_BYTES });

/** Whether a parsed JSON value holds a string with U+0000, which Postgres cannot store (text or jsonb). */
function holdsNul(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (Array.isArray(value)) return value.some(holdsNul);
  if (value !== null && typeof value === 'object') return Object.entries(value).some(([k, v]) => k.includes('\u0000') || holdsNul(v));
  return false;
}

/**
 * Reads a JSON body as raw bytes first (the signature is over the raw body): 415 if not JSON, 413 over
 * 64 KiB, 400 if it does not parse or holds a U+0000 character. The parsed value is left in
 * `res.locals.body`.
 */
export function readJsonBody(req: Request, res: Response, next: NextFunction) {
  if (!isJsonContentType(req)) {
    return next(new AppError('unsupported_media_type', 'Content-Type must be application/json', 415));
  }
  readRaw(req, res, (err?: unknown) => {
    if (err) return next(err);
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    res.locals.rawBody = raw;
    try {
      res.locals.body = JSON.parse(raw.toString('utf8'));
    } catch {
      return next(new ValidationError('request body is not valid JSON', undefined, 'malformed_json'));
    }
    if (holdsNul(res.locals.body)) return next(new ValidationError('request body holds a \\u0000 character, which cannot be stored', undefined, 'malformed_json'));
    next();
  });
}

export function parseWith<S extends z.ZodType>(schema: S, value: unknown, what = 'request body'): z.infer<S> {
  const result = schema.safeParse(value);
  if (!result.success) {
    throw new ValidationError(
      `${what} is invalid`,
      result.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
    );
  }
  return result.data;
}
