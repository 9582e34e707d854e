/**
 * The HTTP transport: `fetch`, the API key, JSON in and out, timeouts and
 * retries of requests that are safe to repeat.
 */

import { MarqueeApiError, MarqueeConnectionError } from './errors.js';

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface ClientOptions {
  /** An API key, `sk_live_…`. */
  apiKey: string;
  /** The server, e.g. `https://marquee.example.com` or `http://127.0.0.1:7400`. */
  baseUrl?: string;
  /** A `fetch` implementation (default: the global one). */
  fetch?: FetchLike;
  /** Per-request timeout in ms (default 30 000). */
  timeoutMs?: number;
  /**
   * Retries of a request that failed with a network error, 429, 500, 502,
   * 503 or 504 — only for requests that are safe to repeat: GET / DELETE,
   * and publishes, which always carry an idempotency key (default 2).
   */
  maxRetries?: number;
  /** Extra headers sent with every request. */
  headers?: Record<string, string>;
}

export const DEFAULT_BASE_URL = 'http://127.0.0.1:7400';

export type Query = Record<string, string | number | boolean | Date | undefined | null>;

export interface RequestOptions {
  query?: Query | undefined;
  body?: unknown;
  headers?: Record<string, string> | undefined;
  /** Safe to repeat (GET/DELETE are; a POST with an idempotency key is). */
  idempotent?: boolean;
  signal?: AbortSignal | undefined;
  /** Overrides the client's timeout for this request. */
  timeoutMs?: number | undefined;
}

export interface HttpResponse<T> {
  status: number;
  headers: Headers;
  body: T;
}

const RETRYABLE = new Set([429, 500, 502, 503, 504]);

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export { sleep };

function encodeQueryValue(v: string | number | boolean | Date): string {
  return v instanceof Date ? v.toISOString() : String(v);
}

/** `Retry-After` as seconds (a number or an HTTP date). */
export function parseRetryAfter(h: string | null, now = Date.now()): number | undefined {
  if (!h) return undefined;
  const n = Number(h);
  if (Number.isFinite(n) && n >= 0) return n;
  const t = Date.parse(h);
  if (Number.isFinite(t)) return Math.max(0, (t - now) / 1000);
  return undefined;
}

export class HttpClient {
  readonly baseUrl: string;
  readonly apiKey: string;
  private readonly fetchImpl: FetchLike;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly extraHeaders: Record<string, string>;

  constructor(opts: ClientOptions) {
    if (!opts || typeof opts.apiKey !== 'string' || opts.apiKey === '') {
      throw new TypeError('apiKey is required');
    }
    this.apiKey = opts.apiKey;
    this.baseUrl = (opts.baseUrl ?? DEFAULT_BASE_URL).replace(/\/+$/, '');
    const f = opts.fetch ?? (globalThis.fetch as FetchLike | undefined);
    if (!f) throw new TypeError('no fetch implementation: pass options.fetch');
    this.fetchImpl = opts.fetch ? opts.fetch : (input, init) => globalThis.fetch(input, init);
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.maxRetries = opts.maxRetries ?? 2;
    this.extraHeaders = { ...(opts.headers ?? {}) };
  }

  url(path: string, query?: Query): string {
    let u = this.baseUrl + path;
    if (query) {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) {
        if (v !== undefined && v !== null) params.append(k, encodeQueryValue(v));
      }
      const s = params.toString();
      if (s) u += (u.includes('?') ? '&' : '?') + s;
    }
    return u;
  }

  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<HttpResponse<T>> {
    const idempotent = opts.idempotent ?? (method === 'GET' || method === 'DELETE');
    const retries = idempotent ? this.maxRetries : 0;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.once<T>(method, path, opts);
      } catch (e) {
        const retryable =
          e instanceof MarqueeConnectionError || (e instanceof MarqueeApiError && RETRYABLE.has(e.status));
        if (!retryable || attempt >= retries || opts.signal?.aborted) throw e;
        const backoff = Math.min(8000, 250 * 2 ** attempt) * (0.5 + Math.random() / 2);
        const wait =
          e instanceof MarqueeApiError && e.retryAfter !== undefined ? Math.min(e.retryAfter * 1000, 60_000) : backoff;
        await sleep(wait, opts.signal);
      }
    }
  }

  private async once<T>(method: string, path: string, opts: RequestOptions): Promise<HttpResponse<T>> {
    const headers: Record<string, string> = {
      accept: 'application/json',
      ...this.extraHeaders,
      ...(opts.headers ?? {}),
      'x-api-key': this.apiKey,
    };
    let body: string | undefined;
    if (opts.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.body);
    }
    const ctrl = new AbortController();
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    const timer = setTimeout(() => ctrl.abort(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    const onAbort = () => ctrl.abort(opts.signal?.reason);
    if (opts.signal) {
      if (opts.signal.aborted) onAbort();
      else opts.signal.addEventListener('abort', onAbort, { once: true });
    }
    let res: Response;
    let text: string;
    try {
      const init: RequestInit = { method, headers, signal: ctrl.signal };
      if (body !== undefined) init.body = body;
      res = await this.fetchImpl(this.url(path, opts.query), init);
      text = await res.text();
    } catch (e) {
      if (opts.signal?.aborted) throw opts.signal.reason ?? e;
      const why = ctrl.signal.aborted ? String((ctrl.signal.reason as Error)?.message ?? 'aborted') : String((e as Error)?.message ?? e);
      throw new MarqueeConnectionError(`${method} ${path}: ${why}`, { cause: e });
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    }
    let parsed: unknown = text;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        /* keep the text */
      }
    } else {
      parsed = undefined;
    }
    if (res.status >= 400) {
      const err = (parsed as { error?: { code?: string; message?: string; param?: string } } | undefined)?.error;
      throw new MarqueeApiError(
        res.status,
        err?.code ?? `http_${res.status}`,
        err?.message ?? (typeof parsed === 'string' && parsed ? parsed : res.statusText || 'request failed'),
        err?.param,
        parseRetryAfter(res.headers.get('retry-after')),
        parsed,
      );
    }
    return { status: res.status, headers: res.headers, body: parsed as T };
  }
}

/** A random idempotency key (`sdk_` + UUID v4). */
export function randomKey(): string {
  const c = globalThis.crypto as Crypto | undefined;
  if (c?.randomUUID) return `sdk_${c.randomUUID()}`;
  const b = new Uint8Array(16);
  if (c?.getRandomValues) c.getRandomValues(b);
  else for (let i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
  return `sdk_${Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')}`;
}
