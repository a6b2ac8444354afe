import { createHash } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { ApiClientConfig, Role } from '../config.js';
import { AuthenticationError, ForbiddenError } from '../errors.js';
import { verifySignature } from './signature.js';

/** The authenticated caller of a request, set by `authenticate`. */
export interface ApiClient {
  id: string;
  role: Role;
  secret: string | undefined;
}

export const READERS: Role[] = ['viewer', 'operator', 'admin'];
export const OPERATORS: Role[] = ['operator', 'admin'];
export const PARTNERS: Role[] = ['partner:slick', 'partner:grab', 'partner:pmp', 'partner:mao'];

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/**
 * Keys are looked up by their SHA-256: the process keeps no plaintext key, and a lookup compares
 * digests, so its timing says nothing about how close a guessed key was.
 */
export class ApiClientDirectory {
  private readonly byKeyHash = new Map<string, ApiClient>();

  constructor(clients: readonly ApiClientConfig[]) {
    for (const c of clients) {
      const hash = c.keySha256 ? c.keySha256.toLowerCase() : sha256(c.key!).toString('hex');
      this.byKeyHash.set(hash, { id: c.id, role: c.role, secret: c.secret });
    }
  }

  findByKey(key: string): ApiClient | undefined {
    return this.byKeyHash.get(sha256(key).toString('hex'));
  }
}

export function clientOf(res: Response): ApiClient {
  const client = res.locals.client as ApiClient | undefined;
  if (!client) throw new AuthenticationError('not authenticated');
  return client;
}

export function authenticate(directory: ApiClientDirectory) {
  return (req: Request, res: Response, next: NextFunction) => {
    const header = req.headers.authorization;
    const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match) return next(new AuthenticationError('Authorization: Bearer <key> is required', 'missing_credentials'));
    const client = directory.findByKey(match[1]!);
    if (!client) return next(new AuthenticationError('unknown API key', 'invalid_credentials'));
    res.locals.client = client;
    next();
  };
}

export function authorize(...roles: Role[]) {
  return (_req: Request, res: Response, next: NextFunction) => {
    const client = clientOf(res);
    if (!roles.includes(client.role)) {
      return next(new ForbiddenError(`role ${client.role} may not call this endpoint`));
    }
    next();
  };
}

/** Partner calls are signed over the raw body; runs after the body was read. */
export function requireSignature(req: Request, res: Response, next: NextFunction) {
  const client = clientOf(res);
  if (!client.role.startsWith('partner:')) return next();
  const raw = (res.locals.rawBody as Buffer | undefined) ?? Buffer.alloc(0);
  const check = verifySignature(client.secret ?? '', raw, req.header('x-signature'));
  if (!check.ok) return next(new AuthenticationError(check.reason, 'invalid_signature'));
  next();
}
