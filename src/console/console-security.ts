import { createHmac, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { Role } from '../config.js';
import { READERS, type ApiClientDirectory } from '../api/auth.js';
import { AppError, AuthenticationError, ForbiddenError } from '../errors.js';

/** Who is signed in to the console: a viewer, operator or admin client, and the key the API is called with. */
export interface ConsoleUser {
  id: string;
  role: Role;
  key: string;
  csrfToken: string;
}

export const CONSOLE_REALM = 'fulfillment hub operations';

/**
 * The pages: only this origin's scripts, styles and connections; forms post only here; no other site
 * may frame them (clickjacking).
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * Headers on every console answer. Pages show one person's view with their token: `no-store` keeps
 * them out of every cache (a shared proxy, the back button after someone else signs in), and
 * `Vary: Authorization` says the answer depends on who asks.
 */
export function consoleHeaders(_req: Request, res: Response, next: NextFunction) {
  res.setHeader('content-security-policy', CONSOLE_CSP);
  res.setHeader('x-frame-options', 'DENY');
  res.setHeader('x-content-type-options', 'nosniff');
  res.setHeader('referrer-policy', 'same-origin');
  res.setHeader('cross-origin-opener-policy', 'same-origin');
  res.setHeader('cross-origin-resource-policy', 'same-origin');
  res.setHeader('cache-control', 'no-store');
  res.setHeader('vary', 'Authorization');
  next();
}

/**
 * The CSRF token of a key: an HMAC of a fixed label under the key itself. Another site can neither
 * read it (the page is same-origin only) nor compute it (it does not know the key), every web process
 * derives the same one, and it reveals nothing of the key.
 */
export function csrfTokenOf(key: string): string {
  return createHmac('sha256', key).update('fulfillment-hub/ops/csrf/v1').digest('base64url');
}

/** HTTP Basic, any user name, the role's key as password (as for Bull Board). */
export function consoleAuth(directory: ApiClientDirectory) {
  return (req: Request, res: Response, next: NextFunction) => {
    const basic = /^Basic\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    const decoded = basic ? Buffer.from(basic[1]!, 'base64').toString('utf8') : '';
    const key = basic ? decoded.slice(decoded.indexOf(':') + 1) : '';
    const client = key ? directory.findByKey(key) : undefined;
    if (!client) {
      res.setHeader('www-authenticate', `Basic realm="${CONSOLE_REALM}", charset="UTF-8"`);
      return next(
        new AuthenticationError(
          basic ? 'unknown key' : 'sign in with your viewer, operator or admin key as the password',
          basic ? 'invalid_credentials' : 'missing_credentials',
        ),
      );
    }
    if (!READERS.includes(client.role)) return next(new ForbiddenError(`the console is for viewers, operators and admins, not ${client.role}`));
    res.locals.consoleUser = { id: client.id, role: client.role, key, csrfToken: csrfTokenOf(key) } satisfies ConsoleUser;
    next();
  };
}

export function userOf(res: Response): ConsoleUser {
  const user = res.locals.consoleUser as ConsoleUser | undefined;
  if (!user) throw new AuthenticationError('not signed in');
  return user;
}

function sameToken(given: unknown, expected: string): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Every write must prove it comes from a console page of this origin: a browser attaches its cached
 * Basic credentials to any request to the hub, including a form another site posts or a fetch it
 * makes. Refused unless the browser says the request is same-origin (`Sec-Fetch-Site`, `Origin`, when
 * sent) and the form carries the key's CSRF token, which only a page of ours has.
 */
export function requireSameOrigin(req: Request, res: Response, next: NextFunction) {
  const user = userOf(res);
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') return next(crossSite(`a ${site} request may not change anything`));
  // The host, not the scheme: behind a TLS-terminating proxy the page is https while this process sees http.
  const origin = req.headers.origin;
  if (origin !== undefined && hostOf(origin) !== req.headers.host) return next(crossSite(`requests from ${origin} may not change anything`));
  const token = (req.body as Record<string, unknown> | undefined)?._csrf;
  if (!sameToken(token, user.csrfToken)) return next(crossSite('the form is missing its console token; reload the page and try again'));
  next();
}

function hostOf(origin: string): string | undefined {
  try {
    return new URL(origin).host;
  } catch {
    return undefined; // "null" (a sandboxed or privacy-restricted page) matches no host
  }
}

function crossSite(message: string): AppError {
  return new AppError('cross_site_request_refused', message, 403);
}
