import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';

/**
 * A real HTTP server standing in for one partner (SPEC §10). Each partner simulator is a list of routes
 * on top of this block, which adds what every partner needs in tests and demos: a record of the calls
 * it received, failure modes that can be switched at run time (in-process or over `/__admin`), a
 * `/health` endpoint, and a close that never waits for a hung call.
 */

/** Bodies above this are refused with 413: the hub never sends anything near it, so a bigger one is a bug. */
export const MAX_BODY_BYTES = 1024 * 1024;
export const ADMIN_PREFIX = '/__admin';
export const HEALTH_PATH = '/health';
export const DEFAULT_WAIT_TIMEOUT_MS = 10_000;

/** What a route handler sees of a call. */
export interface SimRequest {
  method: string;
  /** The path without its query string. */
  path: string;
  query: URLSearchParams;
  /** Named groups of the route's pattern (`:orderId` in a string path becomes the group `orderId`). */
  params: Record<string, string>;
  /** Parsed JSON (whatever the content type), the raw text when it is not JSON, or undefined when empty. */
  body: unknown;
  /** Lower-cased header names; repeated headers are joined with ", ". */
  headers: Record<string, string>;
}

export interface SimResponse {
  status: number;
  /** Sent as JSON; undefined sends no body. */
  body?: unknown;
  headers?: Record<string, string>;
}

export interface SimRoute {
  /** HTTP method, or `*` for any. */
  method: string;
  /** An exact path, where a `:name` segment matches one segment as a param, or a RegExp (named groups are params). */
  path: string | RegExp;
  /** Synchronous on purpose: the answer's status is recorded before anyone waiting for the call is told. */
  handle: (request: SimRequest) => SimResponse;
}

/**
 * An admin route may answer later (e.g. after calling the hub itself): admin calls are never recorded,
 * so nothing waits on their status. Every SimRoute is also an AdminRoute.
 */
export interface AdminRoute extends Omit<SimRoute, 'handle'> {
  handle: (request: SimRequest) => SimResponse | Promise<SimResponse>;
}

export interface RecordedRequest {
  /** Arrival time, Date.now(). */
  readonly at: number;
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: unknown;
  /**
   * The status the simulator answers, decided on arrival (with `latencyMs` it goes out later), or null
   * when the call was hung or its connection dropped.
   */
  readonly status: number | null;
}

export const failureModeSchema = z.strictObject({
  /** Answer this status to every matching call (or, with errorRate/failTimes, to the failing ones). */
  status: z.number().int().min(400).max(599).optional(),
  /** Fraction of matching calls answered with `status ?? 500`. */
  errorRate: z.number().min(0).max(1).optional(),
  /** Delay added before answering (or before dropping the connection). */
  latencyMs: z.number().int().min(0).max(600_000).optional(),
  /** Never answer; the caller's timeout has to cut the call. */
  hang: z.boolean().optional(),
  /** Answer `status ?? 500` to the next N matching calls, then succeed. Takes precedence over errorRate. */
  failTimes: z.number().int().min(0).optional(),
  /** Add `Retry-After: <seconds>` to simulated failures. */
  retryAfterSeconds: z.number().int().min(0).optional(),
  /** Destroy the socket without answering, so the caller sees a network error. */
  dropConnection: z.boolean().optional(),
  /**
   * Only calls whose path starts with this are affected. Default: every path except `/health`;
   * `/health` is affected only when this starts with `/health`. `/__admin` is never affected.
   */
  paths: z.string().startsWith('/').optional(),
});
export type FailureMode = z.infer<typeof failureModeSchema>;

export interface WaitForRequestsOptions {
  timeoutMs?: number;
  /** A path prefix (string) or a pattern the path must match. */
  path?: string | RegExp;
}

export interface PartnerSimulatorOptions {
  name: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  host?: string;
  routes: SimRoute[];
  /**
   * Extra admin routes (paths must start with `/__admin/`): never recorded, never affected by failure
   * modes; their handlers may be async.
   */
  adminRoutes?: AdminRoute[];
}

/** Port and host of a partner simulator; 0 (the default) picks a free port, for tests. */
export interface SimulatorListenOptions {
  port?: number;
  host?: string;
}

export interface PartnerSimulator {
  readonly name: string;
  /** Base URL, e.g. `http://127.0.0.1:4101`, without a trailing slash. */
  readonly url: string;
  readonly port: number;
  /** Calls received (admin calls excluded), in arrival order. The same array stays live across clearRequests. */
  readonly requests: readonly RecordedRequest[];
  clearRequests(): void;
  /** Resolves with the matching requests once at least n were recorded; rejects on timeout or close. */
  waitForRequests(n: number, options?: WaitForRequestsOptions): Promise<RecordedRequest[]>;
  /** Replaces the failure mode (validated; throws on bad input) and restarts the failTimes count. */
  setFailureMode(mode: FailureMode): void;
  resetFailureMode(): void;
  /** The current mode, with failTimes showing how many failures are left; undefined when healthy. */
  readonly failureMode: FailureMode | undefined;
  /** Called for every recorded call; returns a function that unsubscribes. */
  onRequest(listener: (request: RecordedRequest) => void): () => void;
  /** Stops listening and destroys every open connection, hung calls included, so it never blocks. */
  close(): Promise<void>;
}

type BodyParse = { ok: true; body: unknown } | { ok: false; body: string; reason: string };

interface CompiledRoute<H extends AdminRoute['handle'] = SimRoute['handle']> {
  method: string;
  pattern: RegExp;
  handle: H;
}

interface Waiter {
  onRecorded(): void;
  onClosed(): void;
}

/** Turns zod issues into short `path: message` lines for 400 answers. */
export function describeIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(body)'}: ${issue.message}`);
}

export function badRequest(error: string, details?: string[]): SimResponse {
  return { status: 400, body: details ? { error, details } : { error } };
}

/** Parses a body with a schema; on failure gives the 400 answer to send instead. */
export function parseWith<T>(schema: z.ZodType<T>, body: unknown): { ok: true; value: T } | { ok: false; response: SimResponse } {
  const result = schema.safeParse(body);
  if (result.success) return { ok: true, value: result.data };
  return { ok: false, response: badRequest('invalid_body', describeIssues(result.error)) };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function compilePath(path: string | RegExp): RegExp {
  if (path instanceof RegExp) return path;
  const source = path
    .split('/')
    .map((segment) => {
      if (!segment.startsWith(':')) return escapeRegExp(segment);
      const param = segment.slice(1);
      if (!/^[A-Za-z_]\w*$/.test(param)) throw new Error(`route ${path}: bad param name "${param}"`);
      return `(?<${param}>[^/]+)`;
    })
    .join('/');
  return new RegExp(`^${source}$`);
}

function compileRoutes<H extends AdminRoute['handle']>(routes: Array<{ method: string; path: string | RegExp; handle: H }>): CompiledRoute<H>[] {
  return routes.map((route) => ({ method: route.method.toUpperCase(), pattern: compilePath(route.path), handle: route.handle }));
}

function isAdminPath(path: string): boolean {
  return path === ADMIN_PREFIX || path.startsWith(`${ADMIN_PREFIX}/`);
}

function isHealthPath(path: string): boolean {
  return path === HEALTH_PATH || path.startsWith(`${HEALTH_PATH}/`);
}

function failureModeAppliesTo(mode: FailureMode, path: string): boolean {
  if (isAdminPath(path)) return false;
  // A health probe stays green during a simulated outage unless the test asks for it explicitly,
  // so "partner failing its calls" and "partner reported down" can be simulated separately.
  if (isHealthPath(path)) return mode.paths?.startsWith(HEALTH_PATH) === true && path.startsWith(mode.paths);
  return mode.paths === undefined || path.startsWith(mode.paths);
}

function pathMatches(path: string, filter: string | RegExp | undefined): boolean {
  if (filter === undefined) return true;
  return typeof filter === 'string' ? path.startsWith(filter) : filter.test(path);
}

function lowerCasedHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    out[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

function parseBody(raw: Buffer, contentType: string | undefined): BodyParse {
  if (raw.length === 0) return { ok: true, body: undefined };
  const text = raw.toString('utf8');
  try {
    return { ok: true, body: JSON.parse(text) as unknown };
  } catch (error) {
    // Only a body that claims to be JSON is invalid JSON; anything else (curl's default form type
    // included) is kept as the text that was sent.
    if (contentType === undefined || !/json/i.test(contentType)) return { ok: true, body: text };
    return { ok: false, body: text, reason: error instanceof Error ? error.message : String(error) };
  }
}

type BodyRead = { tooLarge: false; raw: Buffer } | { tooLarge: true };

function readBody(req: IncomingMessage): Promise<BodyRead> {
  return new Promise((resolve) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) {
      // Discard the upload so the 413 can still reach the caller.
      req.resume();
      resolve({ tooLarge: true });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    req.on('data', (chunk: Buffer) => {
      if (settled) return;
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        settled = true;
        resolve({ tooLarge: true });
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (settled) return;
      settled = true;
      resolve({ tooLarge: false, raw: Buffer.concat(chunks) });
    });
    // A caller that gives up mid-upload gets nothing: its socket is gone.
    req.on('error', () => {
      if (settled) return;
      settled = true;
      resolve({ tooLarge: false, raw: Buffer.concat(chunks) });
    });
  });
}

function writeResponse(res: ServerResponse, response: SimResponse): void {
  if (res.headersSent || res.destroyed) return;
  const headers: Record<string, string | number> = { ...response.headers };
  const bodyless = response.body === undefined || response.status === 204 || response.status === 304;
  if (bodyless) {
    res.writeHead(response.status, headers);
    res.end();
    return;
  }
  const payload = JSON.stringify(response.body);
  res.writeHead(response.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(payload),
    ...headers,
  });
  res.end(payload);
}

function urlFor(host: string, port: number): string {
  const reachableHost = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${reachableHost.includes(':') ? `[${reachableHost}]` : reachableHost}:${port}`;
}

function decodeParams(groups: Record<string, string> | undefined): Record<string, string> {
  const params: Record<string, string> = {};
  for (const [name, value] of Object.entries(groups ?? {})) {
    if (value === undefined) continue;
    try {
      params[name] = decodeURIComponent(value);
    } catch {
      params[name] = value;
    }
  }
  return params;
}

/** Picks the route for a call: 404 when no pattern matches the path, 405 when only the method is wrong. */
function dispatch<R extends SimResponse | Promise<SimResponse>>(
  routes: CompiledRoute<(request: SimRequest) => R>[],
  request: Omit<SimRequest, 'params'>,
): R | SimResponse {
  const allowed: string[] = [];
  for (const route of routes) {
    const match = route.pattern.exec(request.path);
    if (!match) continue;
    if (route.method !== '*' && route.method !== request.method) {
      allowed.push(route.method);
      continue;
    }
    try {
      return route.handle({ ...request, params: decodeParams(match.groups) });
    } catch (error) {
      return { status: 500, body: { error: 'simulator_handler_failed', message: error instanceof Error ? error.message : String(error) } };
    }
  }
  if (allowed.length > 0) return { status: 405, body: { error: 'method_not_allowed' }, headers: { allow: [...new Set(allowed)].join(', ') } };
  return { status: 404, body: { error: 'not_found', path: request.path } };
}

export async function startPartnerSimulator(options: PartnerSimulatorOptions): Promise<PartnerSimulator> {
  const { name } = options;
  const host = options.host ?? '127.0.0.1';
  for (const route of options.adminRoutes ?? []) {
    if (typeof route.path === 'string' && !route.path.startsWith(`${ADMIN_PREFIX}/`)) {
      throw new Error(`${name} simulator: admin route ${route.path} must start with ${ADMIN_PREFIX}/`);
    }
  }

  const requests: RecordedRequest[] = [];
  const listeners = new Set<(request: RecordedRequest) => void>();
  const waiters = new Set<Waiter>();
  const delayedAnswers = new Set<NodeJS.Timeout>();
  let failureMode: FailureMode | undefined;
  let failuresLeft = 0;
  let closing: Promise<void> | undefined;

  function setFailureMode(mode: FailureMode): void {
    const parsed = failureModeSchema.safeParse(mode);
    if (!parsed.success) throw new Error(`${name} simulator: invalid failure mode: ${describeIssues(parsed.error).join('; ')}`);
    failureMode = parsed.data;
    failuresLeft = parsed.data.failTimes ?? 0;
  }

  function resetFailureMode(): void {
    failureMode = undefined;
    failuresLeft = 0;
  }

  function currentFailureMode(): FailureMode | undefined {
    if (!failureMode) return undefined;
    return failureMode.failTimes === undefined ? { ...failureMode } : { ...failureMode, failTimes: failuresLeft };
  }

  /** Whether this call is one of the simulated failures; consumes one of failTimes. */
  function failsThisCall(mode: FailureMode): boolean {
    if (mode.failTimes !== undefined) {
      if (failuresLeft <= 0) return false;
      failuresLeft -= 1;
      return true;
    }
    // Math.random() is in [0, 1), so a rate of 1 always fails and a rate of 0 never does.
    if (mode.errorRate !== undefined) return Math.random() < mode.errorRate;
    return mode.status !== undefined;
  }

  function simulatedFailure(mode: FailureMode): SimResponse {
    const status = mode.status ?? 500;
    const headers: Record<string, string> = {};
    if (mode.retryAfterSeconds !== undefined) headers['retry-after'] = String(mode.retryAfterSeconds);
    return { status, body: { error: 'simulated_failure', simulator: name, status }, headers };
  }

  function record(request: RecordedRequest): void {
    requests.push(request);
    for (const listener of listeners) {
      try {
        listener(request);
      } catch {
        // A broken log line must not break the simulated partner.
      }
    }
    for (const waiter of [...waiters]) waiter.onRecorded();
  }

  const routes = compileRoutes([...options.routes, { method: 'GET', path: HEALTH_PATH, handle: () => ({ status: 200, body: { status: 'ok' } }) }]);

  const adminRoutes = compileRoutes<AdminRoute['handle']>([
    ...(options.adminRoutes ?? []),
    { method: 'GET', path: `${ADMIN_PREFIX}/requests`, handle: () => ({ status: 200, body: requests }) },
    {
      method: 'DELETE',
      path: `${ADMIN_PREFIX}/requests`,
      handle: () => {
        const cleared = requests.length;
        requests.length = 0;
        return { status: 200, body: { cleared } };
      },
    },
    { method: 'GET', path: `${ADMIN_PREFIX}/failure-mode`, handle: () => ({ status: 200, body: currentFailureMode() ?? {} }) },
    {
      method: 'PUT',
      path: `${ADMIN_PREFIX}/failure-mode`,
      handle: (req) => {
        if (req.body === undefined) return badRequest('invalid_failure_mode', ['(body): a JSON failure mode is required']);
        const parsed = failureModeSchema.safeParse(req.body);
        if (!parsed.success) return badRequest('invalid_failure_mode', describeIssues(parsed.error));
        setFailureMode(parsed.data);
        return { status: 200, body: currentFailureMode() };
      },
    },
    {
      method: 'DELETE',
      path: `${ADMIN_PREFIX}/failure-mode`,
      handle: () => {
        resetFailureMode();
        return { status: 200, body: {} };
      },
    },
  ]);

  async function handleAdmin(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<void> {
    const read = await readBody(req);
    if (read.tooLarge) {
      writeResponse(res, { status: 413, body: { error: 'body_too_large', limitBytes: MAX_BODY_BYTES }, headers: { connection: 'close' } });
      return;
    }
    const headers = lowerCasedHeaders(req.headers);
    const parsed = parseBody(read.raw, headers['content-type']);
    if (!parsed.ok) {
      writeResponse(res, badRequest('invalid_json', [parsed.reason]));
      return;
    }
    let response: SimResponse;
    try {
      response = await dispatch(adminRoutes, { method: req.method ?? 'GET', path, query, body: parsed.body, headers });
    } catch (error) {
      // A synchronous throw is answered by dispatch; this is an async handler's rejection.
      response = { status: 500, body: { error: 'simulator_handler_failed', message: error instanceof Error ? error.message : String(error) } };
    }
    writeResponse(res, response);
  }

  async function handlePartnerCall(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<void> {
    const at = Date.now();
    const method = req.method ?? 'GET';
    const headers = lowerCasedHeaders(req.headers);
    const read = await readBody(req);
    if (read.tooLarge) {
      const response: SimResponse = { status: 413, body: { error: 'body_too_large', limitBytes: MAX_BODY_BYTES }, headers: { connection: 'close' } };
      record({ at, method, path, headers, body: undefined, status: response.status });
      writeResponse(res, response);
      return;
    }
    const parsed = parseBody(read.raw, headers['content-type']);
    const mode = failureMode && failureModeAppliesTo(failureMode, path) ? failureMode : undefined;

    // Decide the whole outcome before recording, so whoever waits on the record sees its status.
    let outcome: { kind: 'drop' } | { kind: 'hang' } | { kind: 'answer'; response: SimResponse };
    if (mode?.dropConnection) outcome = { kind: 'drop' };
    else if (mode?.hang) outcome = { kind: 'hang' };
    else if (mode && failsThisCall(mode)) outcome = { kind: 'answer', response: simulatedFailure(mode) };
    else if (!parsed.ok) outcome = { kind: 'answer', response: badRequest('invalid_json', [parsed.reason]) };
    else outcome = { kind: 'answer', response: dispatch(routes, { method, path, query, body: parsed.body, headers }) };

    record({ at, method, path, headers, body: parsed.body, status: outcome.kind === 'answer' ? outcome.response.status : null });

    // A hung call is left open on purpose; close() destroys its socket.
    if (outcome.kind === 'hang') return;
    const deliver = (): void => {
      if (outcome.kind === 'drop') req.socket.destroy();
      else if (outcome.kind === 'answer') writeResponse(res, outcome.response);
    };
    const latencyMs = mode?.latencyMs ?? 0;
    if (latencyMs <= 0) {
      deliver();
      return;
    }
    const timer = setTimeout(() => {
      delayedAnswers.delete(timer);
      deliver();
    }, latencyMs);
    delayedAnswers.add(timer);
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://simulator.local');
    const path = url.pathname;
    const handled = isAdminPath(path) ? handleAdmin(req, res, path, url.searchParams) : handlePartnerCall(req, res, path, url.searchParams);
    handled.catch((error: unknown) => {
      writeResponse(res, { status: 500, body: { error: 'simulator_failed', message: error instanceof Error ? error.message : String(error) } });
    });
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void => {
      reject(new Error(`${name} simulator could not listen on ${host}:${options.port ?? 0}: ${error.message}`, { cause: error }));
    };
    server.once('error', onError);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    name,
    url: urlFor(host, port),
    port,
    get requests(): readonly RecordedRequest[] {
      return requests;
    },
    get failureMode(): FailureMode | undefined {
      return currentFailureMode();
    },
    clearRequests(): void {
      requests.length = 0;
    },
    setFailureMode,
    resetFailureMode,
    onRequest(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    waitForRequests(n, waitOptions = {}) {
      const timeoutMs = waitOptions.timeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS;
      const matching = (): RecordedRequest[] => requests.filter((r) => pathMatches(r.path, waitOptions.path));
      const already = matching();
      if (already.length >= n) return Promise.resolve(already);
      if (closing) return Promise.reject(new Error(`${name} simulator is closed`));
      return new Promise<RecordedRequest[]>((resolve, reject) => {
        const target = waitOptions.path === undefined ? 'any path' : String(waitOptions.path);
        const waiter: Waiter = {
          onRecorded() {
            const found = matching();
            if (found.length < n) return;
            finish();
            resolve(found);
          },
          onClosed() {
            finish();
            reject(new Error(`${name} simulator closed while waiting for ${n} request(s) to ${target}`));
          },
        };
        const timer = setTimeout(() => {
          finish();
          const seen = requests.map((r) => `${r.method} ${r.path} → ${r.status ?? 'no answer'}`);
          reject(
            new Error(
              `${name} simulator: expected at least ${n} request(s) to ${target} within ${timeoutMs} ms, ` +
                `got ${matching().length}; all recorded: [${seen.join(', ')}]`,
            ),
          );
        }, timeoutMs);
        function finish(): void {
          clearTimeout(timer);
          waiters.delete(waiter);
        }
        waiters.add(waiter);
      });
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const timer of delayedAnswers) clearTimeout(timer);
        delayedAnswers.clear();
        for (const waiter of [...waiters]) waiter.onClosed();
        // close() alone would wait for keep-alive and hung connections; destroying them is the point.
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
