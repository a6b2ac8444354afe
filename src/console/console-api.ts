import type { Request } from 'express';
import { request, type Dispatcher } from 'undici';
import { AppError } from '../errors.js';

/**
 * The console's only way to read or change anything: the hub's public API, over HTTP to the very
 * web process that serves the page, with the signed-in person's key as Bearer. So a console action
 * is exactly what any API client could do (same roles, same validation, same transition path), and
 * an API error reaches the page as the API answered it.
 */
export class ConsoleApi {
  constructor(
    readonly baseUrl: string,
    private readonly key: string,
  ) {}

  /** The address this request came in on: the API is served by the same process. */
  static baseUrlOf(req: Request): string {
    let host = req.socket.localAddress ?? '127.0.0.1';
    if (host.startsWith('::ffff:')) host = host.slice(7);
    if (host.includes(':')) host = `[${host}]`;
    return `http://${host}:${req.socket.localPort}`;
  }

  private async call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const res = await this.raw(method, path, body === undefined ? undefined : JSON.stringify(body));
    const text = await res.body.text();
    let parsed: any;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (res.statusCode >= 400) {
      const e = parsed?.error;
      throw new AppError(e?.code ?? 'api_error', e?.message ?? `the API answered ${res.statusCode}`, res.statusCode, e?.details);
    }
    return parsed as T;
  }

  raw(method: 'GET' | 'POST', path: string, body?: string, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Dispatcher.ResponseData> {
    return request(new URL(path, this.baseUrl), {
      method,
      headers: { authorization: `Bearer ${this.key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      body,
      signal,
      headersTimeout: 30_000,
    });
  }

  get<T = any>(path: string): Promise<T> {
    return this.call<T>('GET', path);
  }

  post<T = any>(path: string, body?: unknown): Promise<T> {
    return this.call<T>('POST', path, body);
  }
}

/** `?a=1&b=2` from the entries that have a value (repeated keys for arrays). */
export function queryString(params: Record<string, string | string[] | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    for (const one of Array.isArray(v) ? v : [v]) if (one !== undefined && one !== '') q.append(k, one);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}
