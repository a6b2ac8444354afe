import { request } from 'undici';
import type { ApiClientConfig } from '../config.js';
import { signatureHeader } from './signature.js';

/**
 * A small client of the hub's own API that authenticates and signs like a partner does. Used by the
 * demo, the benchmark and the tests; partners can read it as a reference of the signing rules.
 */
export interface HubResponse<T = any> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: T;
}

export class HubClient {
  constructor(
    readonly baseUrl: string,
    readonly client: Pick<ApiClientConfig, 'key' | 'secret'>,
  ) {}

  async send<T = any>(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown, headers: Record<string, string> = {}): Promise<HubResponse<T>> {
    const raw = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const h: Record<string, string> = { authorization: `Bearer ${this.client.key}`, ...headers };
    if (raw !== undefined) {
      h['content-type'] ??= 'application/json';
      if (this.client.secret && !('x-signature' in headers)) h['x-signature'] = signatureHeader(this.client.secret, raw);
    }
    const res = await request(new URL(path, this.baseUrl), { method, headers: h, body: raw });
    const text = await res.body.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON (e.g. /metrics): keep the text
    }
    return { status: res.statusCode, headers: res.headers, body: parsed as T };
  }

  get<T = any>(path: string, headers?: Record<string, string>) {
    return this.send<T>('GET', path, undefined, headers);
  }
  post<T = any>(path: string, body: unknown, headers?: Record<string, string>) {
    return this.send<T>('POST', path, body, headers);
  }
  put<T = any>(path: string, body: unknown, headers?: Record<string, string>) {
    return this.send<T>('PUT', path, body, headers);
  }
}
