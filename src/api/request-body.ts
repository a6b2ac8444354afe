import express, { type NextFunction, type Request, type Response } from 'express';
import type { z } from 'zod';
import { AppError, ValidationError } from '../errors.js';

export const MAX_BODY_BYTES = 64 * 1024;

function isJsonContentType(req: Request): boolean {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  return type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'));
}

const readRaw = express.raw({ type: () => true, limit: MAX_BODY_BYTES });

/** No body the hub takes nests deeper than a few levels; a deeper one is refused before any code walks it. */
export const MAX_BODY_DEPTH = 32;

/**
 * What a parsed JSON value must not hold: a string (or key) with U+0000, which Postgres cannot store
 * (text or jsonb), or nesting deeper than MAX_BODY_DEPTH. Walked with an explicit stack: a 64 KiB body
 * can nest ~30,000 levels, which a recursive walk (or JSON.stringify) cannot survive.
 */
function bodyProblem(root: unknown): string | undefined {
  const stack: Array<[unknown, number]> = [[root, 1]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!;
    if (typeof value === 'string') {
      if (value.includes('\u0000')) return 'request body holds a \\u0000 character, which cannot be stored';
      continue;
    }
    if (value === null || typeof value !== 'object') continue;
    if (depth > MAX_BODY_DEPTH) return `request body nests deeper than ${MAX_BODY_DEPTH} levels`;
    for (const [key, child] of Object.entries(value)) {
      if (key.includes('\u0000')) return 'request body holds a \\u0000 character, which cannot be stored';
      stack.push([child, depth + 1]);
    }
  }
  return undefined;
}

/** Bytes that are not UTF-8 are refused rather than replaced: what was signed is what is stored. */
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Reads a JSON body as raw bytes first (the signature is over the raw body): 415 if not JSON, 413 over
 * 64 KiB, 400 if it is not UTF-8, does not parse, holds a U+0000 character or nests too deep. The
 * parsed value is left in `res.locals.body`.
 */
export function readJsonBody(req: Request, res: Response, next: NextFunction) {
  if (!isJsonContentType(req)) {
    return next(new AppError('unsupported_media_type', 'Content-Type must be application/json', 415));
  }
  // A body declared too large is refused at once, and the connection closed rather than read to its
  // end (body-parser would read, and discard, all of it first).
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) {
    res.setHeader('Connection', 'close');
    return next(new AppError('payload_too_large', 'request body is larger than 64 KiB', 413));
  }
  readRaw(req, res, (err?: unknown) => {
    if (err) return next(err);
    // This callback runs outside Express's promise chain: nothing may throw out of it.
    try {
      const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      res.locals.rawBody = raw;
      let text: string;
      try {
        text = utf8.decode(raw);
      } catch {
        return next(new ValidationError('request body is not valid UTF-8', undefined, 'malformed_json'));
      }
      try {
        res.locals.body = JSON.parse(text);
      } catch {
        return next(new ValidationError('request body is not valid JSON', undefined, 'malformed_json'));
      }
      const problem = bodyProblem(res.locals.body);
      if (problem) return next(new ValidationError(problem, undefined, 'malformed_json'));
      next();
    } catch (unexpected) {
      next(unexpected);
    }
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
