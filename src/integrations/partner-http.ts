import { performance } from 'node:perf_hooks';
import { Agent, request, type Dispatcher } from 'undici';
import type { z } from 'zod';
import type { IntegrationConfig } from '../config.js';
import { NonRetriableIntegrationError, RetriableIntegrationError, type IntegrationErrorClass } from '../errors.js';
import type { BreakerChange, CappedListEntry, CircuitBreaker } from './circuit-breaker.js';

/**
 * The one way the hub calls a partner: a single attempt with the integration's timeout, redirects
 * not followed, the response body size-limited, and the outcome classified retriable / non-retriable.
 * Retrying is the queue's job (BullMQ delays), not this function's.
 */

export const MAX_RESPONSE_BYTES = 256 * 1024;

export interface PartnerRequest<Answer = unknown> {
  method: 'GET' | 'POST' | 'PUT';
  path: string;
  /** What the call is for, in the audit log (e.g. ship-confirmation). */
  operation: string;
  body?: unknown;
  /** For the audit trail and logs. */
  orderId?: string | null;
  attempt?: number;
  /**
   * Sent as the `Idempotency-Key` header: the same for every attempt and retry of one call, so a
   * partner that took an attempt whose answer we lost (a timeout) can recognise the next one.
   */
  idempotencyKey?: string;
  /**
   * What a 2xx body must be for the call to count as done. A body that does not match fails the call
   * as non-retriable (the partner answered, but not in a way the hub can act on; asking again would
   * get the same), and the audit row says why. Without it the 2xx status alone is the answer.
   */
  answer?: z.ZodType<Answer>;
}

export interface PartnerResponse<Answer = unknown> {
  status: number;
  body: unknown;
  /** The body as `answer` parsed it (undefined when the request named no schema). */
  answer: Answer;
  latencyMs: number;
}

/** One record per attempt, success or not; the audit log and metrics are fed from it. */
export interface PartnerCallRecord {
  integration: IntegrationConfig['name'];
  operation: string;
  method: string;
  url: string;
  orderId: string | null;
  attempt: number;
  requestBody: unknown;
  status: number | null;
  responseBody: unknown;
  latencyMs: number;
  errorClass: IntegrationErrorClass | null;
  error: string | null;
}

export type PartnerCallObserver = (record: PartnerCallRecord) => void | Promise<void>;
export type BreakerObserver = (integration: IntegrationConfig['name'], change: BreakerChange) => void | Promise<void>;

/**
 * The call was not made because it is not due yet. Not a failure of the call: its job waits until
 * `retryAt` and uses none of its retries.
 */
export class CallNotDueError extends Error {
  constructor(
    readonly retryAt: number,
    message: string,
  ) {
    super(message);
    this.name = 'CallNotDueError';
  }
}

/** The breaker for this integration is open (or busy with its probe): the call was not made. */
export class CircuitOpenError extends CallNotDueError {
  constructor(
    readonly integration: string,
    retryAt: number,
    readonly state: string,
  ) {
    super(retryAt, `${integration} circuit is ${state}; next attempt at ${new Date(retryAt).toISOString()}`);
    this.name = 'CircuitOpenError';
  }
}

export interface PartnerHttpOptions {
  dispatcher?: Dispatcher;
  observers?: PartnerCallObserver[];
  breaker?: CircuitBreaker;
  /**
   * The health sample of a call the breaker admitted, pushed with the breaker's record of its outcome
   * (one script, one round trip). Calls without a breaker take no sample.
   */
  healthSample?: (record: PartnerCallRecord) => CappedListEntry;
  onBreakerChange?: BreakerObserver;
  /** Told when bookkeeping (breaker, observers) fails; the call's own outcome stands regardless. */
  onBookkeepingError?: (err: unknown) => void;
  now?: () => number;
}

export class PartnerHttp {
  constructor(
    readonly integration: IntegrationConfig,
    private readonly options: PartnerHttpOptions = {},
  ) {}

  get enabled(): boolean {
    return this.integration.baseUrl !== undefined;
  }

  async call<Answer = unknown>(req: PartnerRequest<Answer>): Promise<PartnerResponse<Answer>> {
    const { name, baseUrl, token, timeoutMs } = this.integration;
    if (!baseUrl) throw new NonRetriableIntegrationError(name, `${name} is not configured (no base URL)`, null);
    // An empty path calls the base URL itself (webhooks); otherwise the path is relative to it.
    const url = req.path === '' ? baseUrl : new URL(req.path, baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`).toString();
    const breaker = this.options.breaker;
    const admission = breaker ? await breaker.acquire(req.orderId ?? req.operation) : undefined;
    if (admission && !admission.allowed) throw new CircuitOpenError(name, admission.retryAt, admission.state);

    const now = this.options.now ?? Date.now;
    const started = now();
    const record: PartnerCallRecord = {
      integration: name,
      operation: req.operation,
      method: req.method,
      url,
      orderId: req.orderId ?? null,
      attempt: req.attempt ?? 1,
      requestBody: req.body ?? null,
      status: null,
      responseBody: null,
      latencyMs: 0,
      errorClass: null,
      error: null,
    };
    try {
      const response = await this.send(url, req, token, timeoutMs);
      record.status = response.status;
      record.responseBody = response.body;
      record.latencyMs = now() - started;
      const failure = classifyStatus(name, response.status, response.body, response.retryAfterMs);
      if (failure) throw failure;
      const answer = readAnswer(name, req.answer, response.status, response.body);
      return { status: response.status, body: response.body, answer, latencyMs: record.latencyMs };
    } catch (err) {
      const classified = classifyError(name, err);
      record.latencyMs = now() - started;
      record.errorClass = classified.errorClass;
      record.error = classified.message;
      throw classified;
    } finally {
      // Bookkeeping must not turn a call Slick accepted into a failure (that would call it again).
      try {
        if (breaker && admission?.allowed) {
          // Only failures that say the partner is unwell count; a 4xx answer means it is up.
          const outcome = record.errorClass === 'retriable' ? 'failure' : 'success';
          const change = await breaker.record(admission.lease, outcome, this.options.healthSample?.(record));
          if (change) await this.options.onBreakerChange?.(name, change);
        }
        for (const observe of this.options.observers ?? []) await observe(record);
      } catch (err) {
        this.options.onBookkeepingError?.(err);
      }
    }
  }

  private async send(url: string, req: PartnerRequest<unknown>, token: string | undefined, timeoutMs: number) {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    if (req.body !== undefined) headers['content-type'] = 'application/json';
    if (req.idempotencyKey !== undefined) headers['idempotency-key'] = req.idempotencyKey;
    // One clock for the whole attempt (connect, headers, body), started before the pool is asked for
    // a connection. undici's own headersTimeout / bodyTimeout are not used for it: they run on its
    // coarse timer (500 ms ticks, a timer's start rounded back to the previous tick), which cut
    // attempts up to ~300 ms short of an 800 ms timeout.
    const deadline = attemptDeadline(timeoutMs);
    try {
      const res = await request(url, {
        method: req.method,
        headers,
        body: req.body !== undefined ? JSON.stringify(req.body) : undefined,
        headersTimeout: 0,
        bodyTimeout: 0,
        signal: deadline.signal,
        dispatcher: this.options.dispatcher ?? partnerAgent(),
      });
      return await readResponse(res);
    } finally {
      deadline.clear();
    }
  }
}

/**
 * An AbortSignal that fires once at least `timeoutMs` have passed on the monotonic clock. A Node
 * timer alone can fire a little early: it counts from the event loop's cached time, which lags the
 * real time by however long the current turn of the loop has run; so when it fires early it is set
 * again for the rest.
 */
function attemptDeadline(timeoutMs: number): { signal: AbortSignal; clear(): void } {
  const controller = new AbortController();
  const started = performance.now();
  let timer: NodeJS.Timeout;
  const check = () => {
    const elapsed = performance.now() - started;
    if (elapsed >= timeoutMs) controller.abort(new AttemptTimeoutError(timeoutMs));
    else timer = setTimeout(check, Math.max(1, Math.ceil(timeoutMs - elapsed)));
  };
  timer = setTimeout(check, timeoutMs);
  return { signal: controller.signal, clear: () => clearTimeout(timer) };
}

class AttemptTimeoutError extends Error {
  constructor(timeoutMs: number) {
    super(`no complete answer within ${timeoutMs} ms`);
    this.name = 'TimeoutError';
  }
}

let sharedAgent: Agent | undefined;
/**
 * A partner's `Keep-Alive: timeout=N` hint is shortened by this much before a connection is reused
 * (room for the request to reach the partner before it closes the connection). undici's default, 2 s,
 * makes every connection to a partner that keeps connections 2 s or less single-use: a new TCP
 * connection for every call.
 */
export const PARTNER_KEEP_ALIVE_MARGIN_MS = 250;

/**
 * The pool partner calls go through unless a dispatcher is passed in (one per process, like undici's
 * global dispatcher it replaces): undici's own timeouts off, connect's 10 s included, since the
 * attempt's deadline above bounds every phase and none of them may end an attempt before it.
 */
export function partnerAgent(): Agent {
  sharedAgent ??= new Agent({ headersTimeout: 0, bodyTimeout: 0, connect: { timeout: 0 }, keepAliveTimeoutThreshold: PARTNER_KEEP_ALIVE_MARGIN_MS });
  return sharedAgent;
}

async function readResponse(res: Dispatcher.ResponseData) {
  const text = await readLimited(res.body, MAX_RESPONSE_BYTES);
  let body: unknown = text;
  if (text.length > 0 && String(res.headers['content-type'] ?? '').includes('json')) {
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  const retryAfter = res.headers['retry-after'];
  return { status: res.statusCode, body, retryAfterMs: parseRetryAfter(Array.isArray(retryAfter) ? retryAfter[0] : retryAfter) };
}

async function readLimited(body: Dispatcher.ResponseData['body'], limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      body.destroy();
      throw new ResponseTooLargeError(limit);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

class ResponseTooLargeError extends Error {
  constructor(limit: number) {
    super(`response body larger than ${limit} bytes`);
    this.name = 'ResponseTooLargeError';
  }
}

export function parseRetryAfter(value: string | undefined): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** SPEC §4.2: 2xx success; 5xx, 408, 429 retriable; other 4xx (and 3xx, since redirects are not followed) not. */
function classifyStatus(integration: string, status: number, body: unknown, retryAfterMs: number | undefined) {
  if (status >= 200 && status < 300) return undefined;
  const message = `${integration} answered ${status}`;
  if (status >= 500 || status === 408 || status === 429) return new RetriableIntegrationError(integration, message, status, retryAfterMs);
  return new NonRetriableIntegrationError(integration, `${message}: ${summarise(body)}`, status);
}

/** A 2xx body checked against what the caller needs from it; see PartnerRequest.answer. */
function readAnswer<Answer>(integration: string, schema: z.ZodType<Answer> | undefined, status: number, body: unknown): Answer {
  if (!schema) return undefined as Answer;
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ');
  throw new NonRetriableIntegrationError(
    integration,
    `${integration} answered ${status} with a body the hub cannot use (${issues}): ${summarise(body)}`,
    status,
  );
}

function classifyError(integration: string, err: unknown): RetriableIntegrationError | NonRetriableIntegrationError {
  if (err instanceof RetriableIntegrationError || err instanceof NonRetriableIntegrationError) return err;
  if (err instanceof ResponseTooLargeError) return new NonRetriableIntegrationError(integration, `${integration}: ${err.message}`, null);
  const e = err as { name?: string; code?: string; message?: string };
  const timedOut = e.name === 'TimeoutError';
  const reason = timedOut ? 'timed out' : `network error (${e.code ?? e.name ?? 'unknown'}: ${e.message ?? ''})`;
  return new RetriableIntegrationError(integration, `${integration} ${reason}`, null);
}

function summarise(body: unknown): string {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return (text ?? '').slice(0, 200);
}
