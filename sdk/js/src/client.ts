/**
 * The native client: messages (publish, batch, get, list, iterate, poll),
 * endpoints (webhooks), erasures and streams.
 */

import { MarqueeError } from './errors.js';
import { HttpClient, randomKey, sleep, type ClientOptions, type Query } from './http.js';
import { MarqueeStream, type StreamOptions } from './stream.js';
import type {
  Attempt,
  AttemptsParams,
  CreateEndpointInput,
  CreateErasureInput,
  Deleted,
  Endpoint,
  EndpointStats,
  Erasure,
  JsonObject,
  ListMessagesParams,
  ListPage,
  Message,
  PublishInput,
  RecoverResult,
  ReplayResult,
  ResendResult,
  UpdateEndpointInput,
} from './types.js';

export interface PublishOptions {
  /**
   * Sent as the `Idempotency-Key` header. Without one (and without a body
   * `idempotency_key`) the SDK generates one per call, so that its own
   * retries can never store a message twice.
   */
  idempotencyKey?: string;
  signal?: AbortSignal;
}

/** A publish answer: the stored message, and whether it was an idempotent replay. */
export type Published<D = JsonObject> = Message<D> & { readonly replayed?: boolean };

export interface PollOptions extends ListMessagesParams {
  /** Wait between polls once caught up (default 1000 ms). */
  intervalMs?: number;
  /** Ends the iteration. */
  signal?: AbortSignal;
}

function wireMessage(m: PublishInput): Record<string, unknown> {
  const out: Record<string, unknown> = { type: m.type, channels: m.channels, data: m.data };
  if (m.occurred_at !== undefined) {
    out['occurred_at'] = m.occurred_at instanceof Date ? m.occurred_at.toISOString() : m.occurred_at;
  }
  if (m.idempotency_key !== undefined) out['idempotency_key'] = m.idempotency_key;
  return out;
}

function listQuery(p: ListMessagesParams): Query {
  return { after: p.after, since: p.since, type: p.type, channel: p.channel, limit: p.limit };
}

function enc(id: string): string {
  return encodeURIComponent(id);
}

function markReplayed<T extends object>(v: T, replayed: boolean): T {
  Object.defineProperty(v, 'replayed', { value: replayed, enumerable: false });
  return v;
}

export class Messages {
  constructor(private readonly http: HttpClient) {}

  /** `POST /v1/messages`: answers once the message is durably committed. */
  async publish<D = JsonObject>(message: PublishInput<D>, opts: PublishOptions = {}): Promise<Published<D>> {
    const headers: Record<string, string> = {};
    const key = opts.idempotencyKey ?? (message.idempotency_key === undefined ? randomKey() : undefined);
    if (key !== undefined && message.idempotency_key === undefined) headers['idempotency-key'] = key;
    const r = await this.http.request<Message<D>>('POST', '/v1/messages', {
      body: wireMessage(message as PublishInput),
      headers,
      idempotent: true,
      signal: opts.signal,
    });
    return markReplayed(r.body, r.headers.get('idempotent-replayed') === 'true');
  }

  /** `POST /v1/messages/batch`: 1–1,000 messages, all or nothing, one commit. */
  async publishBatch<D = JsonObject>(messages: PublishInput<D>[], opts: PublishOptions = {}): Promise<Published<D>[]> {
    const headers: Record<string, string> = { 'idempotency-key': opts.idempotencyKey ?? randomKey() };
    const r = await this.http.request<ListPage<Message<D>>>('POST', '/v1/messages/batch', {
      body: { messages: messages.map((m) => wireMessage(m as PublishInput)) },
      headers,
      idempotent: true,
      signal: opts.signal,
    });
    const replayed = r.headers.get('idempotent-replayed') === 'true';
    return r.body.data.map((m) => markReplayed(m, replayed));
  }

  /** `GET /v1/messages/{id}`. */
  async get<D = JsonObject>(id: string, opts: { signal?: AbortSignal } = {}): Promise<Message<D>> {
    return (await this.http.request<Message<D>>('GET', `/v1/messages/${enc(id)}`, { signal: opts.signal })).body;
  }

  /** One page of `GET /v1/messages`, in commit order. */
  async list<D = JsonObject>(params: ListMessagesParams = {}, opts: { signal?: AbortSignal } = {}): Promise<ListPage<Message<D>>> {
    return (await this.http.request<ListPage<Message<D>>>('GET', '/v1/messages', { query: listQuery(params), signal: opts.signal }))
      .body;
  }

  /**
   * Every message from `params` on, following `next_cursor` page by page
   * until the log is caught up (`has_more: false`). Pages that come back
   * short or empty with `has_more: true` are followed, as the API asks.
   */
  async *iterate<D = JsonObject>(params: ListMessagesParams = {}, opts: { signal?: AbortSignal } = {}): AsyncGenerator<Message<D>, string | null> {
    let after = params.after ?? null;
    for (;;) {
      const page = await this.list<D>({ ...params, ...(after ? { after } : {}) }, opts);
      for (const m of page.data) yield m;
      if (page.next_cursor) after = page.next_cursor;
      if (!page.has_more) return after;
    }
  }

  /**
   * Polls forever (until `signal` aborts): like {@link iterate}, and once
   * caught up waits `intervalMs` and asks again from the last cursor, so no
   * message is skipped or repeated while publishes continue. Ends without an
   * error when aborted.
   */
  async *poll<D = JsonObject>(params: PollOptions = {}): AsyncGenerator<Message<D>, void> {
    const { intervalMs = 1000, signal, ...list } = params;
    let after = list.after ?? null;
    while (!signal?.aborted) {
      let page: ListPage<Message<D>>;
      try {
        page = await this.list<D>({ ...list, ...(after ? { after } : {}) }, { signal });
      } catch (e) {
        if (signal?.aborted) return;
        throw e;
      }
      for (const m of page.data) {
        yield m;
        after = m.cursor;
      }
      if (page.next_cursor) after = page.next_cursor;
      if (!page.has_more) {
        try {
          await sleep(intervalMs, signal);
        } catch {
          return;
        }
      }
    }
  }

  /** `GET /v1/messages/{id}/attempts`: the webhook attempts of one message. */
  async attempts(id: string, params: AttemptsParams = {}): Promise<ListPage<Attempt>> {
    return (await this.http.request<ListPage<Attempt>>('GET', `/v1/messages/${enc(id)}/attempts`, { query: { ...params } })).body;
  }

  /** `POST /v1/messages/{id}/resend`: delivers it again to every matching endpoint (or one). */
  async resend(id: string, opts: { endpointId?: string } = {}): Promise<ResendResult> {
    const body = opts.endpointId ? { endpoint_id: opts.endpointId } : {};
    return (await this.http.request<ResendResult>('POST', `/v1/messages/${enc(id)}/resend`, { body })).body;
  }
}

export class Endpoints {
  constructor(private readonly http: HttpClient) {}

  /** `POST /v1/endpoints`; the answer carries `secret` (and `identifier` for `attendee`) once. */
  async create(input: CreateEndpointInput): Promise<Endpoint> {
    return (await this.http.request<Endpoint>('POST', '/v1/endpoints', { body: input })).body;
  }

  async list(params: { after?: string; limit?: number } = {}): Promise<ListPage<Endpoint>> {
    return (await this.http.request<ListPage<Endpoint>>('GET', '/v1/endpoints', { query: { ...params } })).body;
  }

  /** Every endpoint, page by page. */
  async *iterate(params: { limit?: number } = {}): AsyncGenerator<Endpoint> {
    let after: string | undefined;
    for (;;) {
      const page = await this.list({ ...params, ...(after ? { after } : {}) });
      for (const e of page.data) yield e;
      if (!page.has_more || !page.next_cursor) return;
      after = page.next_cursor;
    }
  }

  async get(id: string): Promise<Endpoint> {
    return (await this.http.request<Endpoint>('GET', `/v1/endpoints/${enc(id)}`)).body;
  }

  /** `PATCH /v1/endpoints/{id}`; a format change to another secret scheme answers the new `secret`. */
  async update(id: string, patch: UpdateEndpointInput): Promise<Endpoint> {
    return (await this.http.request<Endpoint>('PATCH', `/v1/endpoints/${enc(id)}`, { body: patch })).body;
  }

  async delete(id: string): Promise<Deleted> {
    return (await this.http.request<Deleted>('DELETE', `/v1/endpoints/${enc(id)}`)).body;
  }

  /** `POST /v1/endpoints/{id}/secret/rotate`: the new `secret` (and until when the old one signs). */
  async rotateSecret(id: string): Promise<Endpoint> {
    return (await this.http.request<Endpoint>('POST', `/v1/endpoints/${enc(id)}/secret/rotate`)).body;
  }

  async attempts(id: string, params: AttemptsParams = {}): Promise<ListPage<Attempt>> {
    return (await this.http.request<ListPage<Attempt>>('GET', `/v1/endpoints/${enc(id)}/attempts`, { query: { ...params } })).body;
  }

  async stats(id: string): Promise<EndpointStats> {
    return (await this.http.request<EndpointStats>('GET', `/v1/endpoints/${enc(id)}/stats`)).body;
  }

  /** `POST /v1/endpoints/{id}/test`: sends a test delivery now and answers its attempt. */
  async test(id: string): Promise<Attempt> {
    return (await this.http.request<Attempt>('POST', `/v1/endpoints/${enc(id)}/test`)).body;
  }

  /**
   * `POST /v1/endpoints/{id}/replay` from the durable log. One call examines
   * a bounded slice; continue with `{ after: result.next_cursor }` while
   * `has_more` (or use {@link replayAll}).
   */
  async replay(id: string, from: { since: string | Date } | { after: string }): Promise<ReplayResult> {
    const body = 'since' in from ? { since: from.since instanceof Date ? from.since.toISOString() : from.since } : { after: from.after };
    return (await this.http.request<ReplayResult>('POST', `/v1/endpoints/${enc(id)}/replay`, { body })).body;
  }

  /** Replays until `has_more` is false; answers the total queued. */
  async replayAll(id: string, from: { since: string | Date } | { after: string }): Promise<number> {
    let queued = 0;
    let r = await this.replay(id, from);
    queued += r.queued;
    let prev: string | undefined;
    while (r.has_more) {
      // Never loop on a server that does not move on.
      if (!r.next_cursor) throw new MarqueeError('the replay answered has_more without a next_cursor');
      if (r.next_cursor === prev) throw new MarqueeError(`the replay did not advance past cursor ${prev}`);
      prev = r.next_cursor;
      r = await this.replay(id, { after: r.next_cursor });
      queued += r.queued;
    }
    return queued;
  }

  /** `POST /v1/endpoints/{id}/recover`: re-queues the failed deliveries of a time range. */
  async recover(id: string, range: { since: string | Date; until?: string | Date }): Promise<RecoverResult> {
    const iso = (d: string | Date) => (d instanceof Date ? d.toISOString() : d);
    const body: Record<string, string> = { since: iso(range.since) };
    if (range.until !== undefined) body['until'] = iso(range.until);
    return (await this.http.request<RecoverResult>('POST', `/v1/endpoints/${enc(id)}/recover`, { body })).body;
  }
}

export interface WaitErasureOptions {
  /** Between polls (default 250 ms). */
  intervalMs?: number;
  /** Called with every state seen, the last one `completed`. */
  onProgress?: (e: Erasure) => void;
  /** Stops waiting, also during a request (rejects with the signal's reason). */
  signal?: AbortSignal;
  /** Gives up after this long (rejects with a MarqueeError; the erasure goes on in the server). */
  timeoutMs?: number;
}

/** `/v1/erasures`: erase a channel's stored messages, worked through in the background. */
export class Erasures {
  constructor(private readonly http: HttpClient) {}

  /** `POST /v1/erasures`: accepted at once (`status: 'running'`, `messages_total` counted now). */
  async create(input: CreateErasureInput): Promise<Erasure> {
    const body: Record<string, string> = { channel: input.channel };
    if (input.within !== undefined) body['within'] = input.within;
    return (await this.http.request<Erasure>('POST', '/v1/erasures', { body })).body;
  }

  /** `GET /v1/erasures/{id}`: its progress (`messages_erased` of `messages_total`). */
  async get(id: string, opts: { signal?: AbortSignal } = {}): Promise<Erasure> {
    return (await this.http.request<Erasure>('GET', `/v1/erasures/${enc(id)}`, { signal: opts.signal })).body;
  }

  /** `GET /v1/erasures`, newest first (`limit` 1–100, `before` an erasure id). */
  async list(params: { limit?: number; before?: string } = {}): Promise<ListPage<Erasure>> {
    return (await this.http.request<ListPage<Erasure>>('GET', '/v1/erasures', { query: { limit: params.limit, before: params.before } })).body;
  }

  /** Polls an erasure until it is `completed`; answers the completed erasure. */
  async wait(id: string, opts: WaitErasureOptions = {}): Promise<Erasure> {
    const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
    for (;;) {
      const e = await this.get(id, { signal: opts.signal });
      opts.onProgress?.(e);
      if (e.status === 'completed') return e;
      if (Date.now() >= deadline) {
        throw new MarqueeError(`gave up waiting for erasure ${id}: ${e.messages_erased}/${e.messages_total} erased, it goes on in the server`);
      }
      await sleep(opts.intervalMs ?? 250, opts.signal);
    }
  }
}

export type MarqueeOptions = ClientOptions & {
  /** A WebSocket constructor for streams (default: the global one, else the `ws` package). */
  WebSocket?: StreamOptions['WebSocket'];
};

/** The native client. */
export class Marquee {
  readonly http: HttpClient;
  readonly messages: Messages;
  readonly endpoints: Endpoints;
  readonly erasures: Erasures;
  private readonly wsImpl: StreamOptions['WebSocket'];

  constructor(opts: MarqueeOptions) {
    this.http = new HttpClient(opts);
    this.messages = new Messages(this.http);
    this.endpoints = new Endpoints(this.http);
    this.erasures = new Erasures(this.http);
    this.wsImpl = opts.WebSocket;
  }

  /** `GET /ping` (no auth needed): true when the server answers. */
  async ping(): Promise<boolean> {
    try {
      await this.http.request('GET', '/ping');
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Opens a live stream (`/v1/stream`). It connects at once, subscribes to
   * `options.channels`, and keeps itself connected until `close()`.
   */
  stream(options: StreamOptions = {}): MarqueeStream {
    const o: StreamOptions = { ...options };
    if (o.WebSocket === undefined && this.wsImpl !== undefined) o.WebSocket = this.wsImpl;
    return new MarqueeStream(this.http, o);
  }
}
