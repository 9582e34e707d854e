/**
 * The Revolution "Event Stream" API of reference document 000, as the
 * document's SDK snippets use it:
 *
 * ```ts
 * const rev = revolution({ apiKey: 'sk_live_…', baseUrl: 'http://127.0.0.1:7400' });
 * const stream = rev.signal.connect({ venue: 'stubbs-austin' });
 * stream.on('fan_checkin', (e) => console.log(`Fan ${e.fanId} just walked in at gate ${e.gate}`));
 * stream.disconnect();
 * ```
 *
 * Events are the payloads with camelCase keys (`fan_id` → `fanId`,
 * `price_usd` → `priceUsd`); the envelope (type, message id, cursor,
 * channel, time) is the handler's second argument.
 */

import { camelize } from './camel.js';
import { MarqueeError } from './errors.js';
import { Marquee } from './client.js';
import type { FetchLike } from './http.js';
import type {
  DisconnectedInfo,
  ConnectedInfo,
  MarqueeStream,
  ReconnectingInfo,
  StreamError,
  StreamEvent,
  StreamOptions,
  WebSocketConstructor,
} from './stream.js';

// ---- the document's eight event types -------------------------------------

/** `fan_checkin`: fan scans QR at door. */
export interface FanCheckin {
  fanId: string;
  eventId: string | number;
  gate: string;
  /** Unix ms. */
  ts: number;
}

/** `drop_published`: artist publishes a drop. */
export interface DropPublished {
  artistId: string;
  dropId: string;
  title: string;
  priceUsd: number;
  quantity: number;
  ts?: number;
}

/** `drop_claimed`: fan claims a drop item. */
export interface DropClaimed {
  fanId: string;
  dropId: string;
  orderId: string;
  ts: number;
}

/** `autograph_requested`: fan requests an autograph. */
export interface AutographRequested {
  fanId: string;
  artistId: string;
  orderId: string;
  /** A delivery method, or an object (its keys camelCased too). */
  delivery: string | Record<string, unknown>;
  ts?: number;
}

/** `shoutout_requested`: fan requests a shoutout video. */
export interface ShoutoutRequested {
  fanId: string;
  artistId: string;
  orderId: string;
  instructions: string;
  ts?: number;
}

/** `signal_posted`: artist posts to the Crew feed. `type` is the post's type (not the event's). */
export interface SignalPosted {
  artistId: string;
  signalId: string;
  type: string;
  body: string;
  ts?: number;
}

/** `venue_opened`: venue marks doors as open. */
export interface VenueOpened {
  venueId: string;
  eventId: string | number;
  capacity: number;
  ts: number;
}

/**
 * `attendance_milestone`: attendance hits a threshold. `capacity` is the
 * payload's when the publisher includes it, else the `capacity` of the last
 * `venue_opened` of the same `eventId` this stream received (so the
 * document's `e.count / e.capacity` works); undefined when neither exists.
 */
export interface AttendanceMilestone {
  eventId: string | number;
  count: number;
  threshold: number;
  ts: number;
  capacity: number;
}

export interface RevolutionEventMap {
  fan_checkin: FanCheckin;
  drop_published: DropPublished;
  drop_claimed: DropClaimed;
  autograph_requested: AutographRequested;
  shoutout_requested: ShoutoutRequested;
  signal_posted: SignalPosted;
  venue_opened: VenueOpened;
  attendance_milestone: AttendanceMilestone;
}

export type RevolutionEventType = keyof RevolutionEventMap;

export const REVOLUTION_EVENT_TYPES: readonly RevolutionEventType[] = Object.freeze([
  'fan_checkin',
  'drop_published',
  'drop_claimed',
  'autograph_requested',
  'shoutout_requested',
  'signal_posted',
  'venue_opened',
  'attendance_milestone',
]);

/** The envelope of an event: the handler's second argument. */
export interface RevolutionEventMeta {
  type: string;
  /** marquee's message id (`msg_…`). */
  id: string;
  cursor: string;
  channel: string;
  occurredAt: string;
}

/** Any event, tagged with its type (the `'event'` handler's argument). */
export type AnyRevolutionEvent = {
  [K in RevolutionEventType]: { type: K; data: RevolutionEventMap[K]; meta: RevolutionEventMeta };
}[RevolutionEventType];

/** Converts one stream frame's payload to the camelCase event (what `.on(type)` handlers receive). */
export function toRevolutionEvent<K extends RevolutionEventType>(type: K, payload: unknown): RevolutionEventMap[K];
export function toRevolutionEvent(type: string, payload: unknown): Record<string, unknown>;
export function toRevolutionEvent(_type: string, payload: unknown): unknown {
  return camelize(payload ?? {});
}

// ---- the stream -------------------------------------------------------------

export interface ConnectTarget {
  venue?: string;
  artist?: string;
}

type Listener = (...args: never[]) => void;

/** A Revolution stream: `.on(type, handler)` and `.disconnect()`. */
export class RevolutionStream {
  /** The native stream underneath (cursors, state, raw frames). */
  readonly native: MarqueeStream;
  private readonly handlers = new Map<string, Set<Listener>>();
  private readonly capacities = new Map<string, number>();
  private readonly seen = new Set<string>();
  private readonly seenOrder: string[] = [];

  constructor(native: MarqueeStream) {
    this.native = native;
    native.on('message', (ev) => this.onMessage(ev));
    native.on('connected', (i) => this.emit('connected', i));
    native.on('reconnecting', (i) => this.emit('reconnecting', i));
    native.on('disconnected', (i) => this.emit('disconnected', i));
    native.on('error', (e) => this.emit('error', e));
  }

  on<K extends RevolutionEventType>(type: K, handler: (e: RevolutionEventMap[K], meta: RevolutionEventMeta) => void): this;
  /** Every event, tagged with its type. */
  on(type: 'event', handler: (e: AnyRevolutionEvent) => void): this;
  on(type: 'connected', handler: (info: ConnectedInfo) => void): this;
  on(type: 'reconnecting', handler: (info: ReconnectingInfo) => void): this;
  on(type: 'disconnected', handler: (info: DisconnectedInfo) => void): this;
  on(type: 'error', handler: (error: StreamError) => void): this;
  /** Any other event type published on the channel (camelCased payload). */
  on(type: string, handler: (e: Record<string, unknown>, meta: RevolutionEventMeta) => void): this;
  on(type: string, handler: Listener): this {
    let set = this.handlers.get(type);
    if (!set) this.handlers.set(type, (set = new Set()));
    set.add(handler);
    return this;
  }

  off(type: string, handler?: Listener): this {
    if (handler) this.handlers.get(type)?.delete(handler);
    else this.handlers.delete(type);
    return this;
  }

  /** Disconnects cleanly (no reconnect). */
  disconnect(): Promise<void> {
    return this.native.close();
  }

  private emit(type: string, ...args: unknown[]): void {
    const set = this.handlers.get(type);
    if (!set) return;
    for (const h of [...set]) {
      try {
        (h as (...a: unknown[]) => void)(...args);
      } catch (e) {
        setTimeout(() => {
          throw e;
        }, 0);
      }
    }
  }

  private onMessage(ev: StreamEvent): void {
    // A message on both the venue and the artist channel arrives once per
    // channel; a Revolution client sees it once.
    if (this.seen.has(ev.id)) return;
    this.seen.add(ev.id);
    this.seenOrder.push(ev.id);
    if (this.seenOrder.length > 10_000) this.seen.delete(this.seenOrder.shift()!);
    const e = toRevolutionEvent(ev.type, ev.payload) as Record<string, unknown>;
    if (ev.type === 'venue_opened' && typeof e['capacity'] === 'number' && e['eventId'] !== undefined) {
      this.capacities.set(String(e['eventId']), e['capacity']);
    }
    if (ev.type === 'attendance_milestone' && e['eventId'] !== undefined) {
      const key = String(e['eventId']);
      if (typeof e['capacity'] === 'number') this.capacities.set(key, e['capacity']);
      else if (this.capacities.has(key)) e['capacity'] = this.capacities.get(key);
    }
    const meta: RevolutionEventMeta = {
      type: ev.type,
      id: ev.id,
      cursor: ev.cursor,
      channel: ev.channel,
      occurredAt: ev.occurred_at,
    };
    this.emit(ev.type, e, meta);
    this.emit('event', { type: ev.type, data: e, meta });
  }
}

// ---- REST ---------------------------------------------------------------------

/** A camelCased list page. */
export interface RevolutionList<T> {
  object: 'list';
  data: T[];
  hasMore: boolean;
  nextCursor: string | null;
}

/**
 * One check-in of `rev.signal.checkins`: a recorded (deduplicated) door scan
 * of a `fan_checkin` (or another catalog scan type), camelCased.
 */
export interface Checkin {
  /** The scan message's id (`msg_…`). */
  id: string;
  fanId: string;
  /** The event id, always as a string (the path's id; `1042` → `'1042'`). */
  eventId: string;
  /** Null when the scan named no gate. */
  gate: string | null;
  direction: 'in' | 'out';
  /** The scan's own time, Unix ms (what `since` compares against). */
  ts: number;
  /** When marquee received it, Unix ms. */
  created: number;
}

export type DropStatus = 'active' | 'sold_out';

/** One drop of `rev.signal.drops`. */
export interface Drop {
  dropId: string;
  artistId: string;
  /** The `drop_published` payload's `title` (null when it had none). */
  title: string | null;
  /** The `drop_published` payload's `price_usd` (null when it had none). */
  priceUsd: number | null;
  quantity: number;
  /** `quantity` minus distinct `order_id` claims, never below 0. */
  remaining: number;
  /** `active` while `remaining > 0`. */
  status: DropStatus;
  /** Unix ms. */
  publishedAt: number;
}

/** `rev.signal.venueStatus(venueId)`. */
export interface VenueStatus {
  venueId: string;
  /** `open` for 12 h after the venue's latest `venue_opened`; `closed` (with nulls) when it never opened. */
  status: 'open' | 'closed';
  /** The event of the latest `venue_opened`, as a string. */
  eventId: string | null;
  capacity: number | null;
  /** Scans in − scans out of that event. */
  count: number;
  /** `count / capacity` in percent, one decimal; null without a capacity. */
  percent: number | null;
  /** Count per gate; the keys are the gate names as published (never renamed). */
  gates: Record<string, number>;
  /** Unix ms. */
  openedAt: number | null;
  /** Unix ms. */
  lastCheckinAt: number | null;
}

export interface CreateWebhookInput {
  url: string;
  /** Omitted or empty: all eight types. */
  events?: RevolutionEventType[];
  /** Scope to a venue, or omit for all. */
  venueId?: string;
  /** Used to verify the HMAC signature; omitted: marquee generates one and answers it once. */
  secret?: string;
}

export interface Webhook {
  id: string;
  url: string;
  events: RevolutionEventType[];
  venueId: string | null;
  createdAt: string;
  /** Only when marquee generated it. */
  secret?: string;
}

function iso(d: Date | string | number): string {
  return d instanceof Date ? d.toISOString() : typeof d === 'number' ? new Date(d).toISOString() : d;
}

function listOf<T>(body: unknown): RevolutionList<T> {
  return camelize<RevolutionList<T>>(body);
}

export interface RevolutionOptions {
  apiKey: string;
  /** The marquee server (the document's `signal.revolution.fan` host, changed). Default `http://127.0.0.1:7400`. */
  baseUrl?: string;
  fetch?: FetchLike;
  WebSocket?: WebSocketConstructor;
  timeoutMs?: number;
  maxRetries?: number;
  /** Reconnect, backoff and heartbeat settings of `signal.connect` streams. */
  stream?: Omit<StreamOptions, 'channels' | 'WebSocket'>;
}

export class Signal {
  constructor(
    private readonly mq: Marquee,
    private readonly streamDefaults: Omit<StreamOptions, 'channels' | 'WebSocket'>,
  ) {}

  /**
   * Opens the real-time feed of a venue or an artist (or both), with
   * automatic reconnection and resume by cursor.
   */
  connect(target: ConnectTarget, opts: Omit<StreamOptions, 'channels'> = {}): RevolutionStream {
    const channels: string[] = [];
    if (target?.venue !== undefined) channels.push(`venue:${target.venue}`);
    if (target?.artist !== undefined) channels.push(`artist:${target.artist}`);
    if (!channels.length) throw new TypeError('connect({ venue }) or connect({ artist })');
    return new RevolutionStream(this.mq.stream({ ...this.streamDefaults, ...opts, channels }));
  }

  /**
   * Recent check-ins of an event, oldest scan time first:
   * `GET /api/v1/signal/events/{eventId}/checkins?since=…`. `since` (a `Date`,
   * an RFC 3339 string or Unix ms) compares with the scan time; `limit` is
   * 1–100 (default 25); a page with `hasMore` continues with
   * `{ cursor: page.nextCursor }` (same `eventId` and `since`).
   */
  async checkins(p: CheckinsParams): Promise<RevolutionList<Checkin>> {
    const r = await this.mq.http.request('GET', `/api/v1/signal/events/${encodeURIComponent(String(p.eventId))}/checkins`, {
      query: { since: p.since === undefined ? undefined : iso(p.since), cursor: p.cursor, limit: p.limit },
    });
    return listOf<Checkin>(r.body);
  }

  /** Every check-in from `since` on, page by page (follows `nextCursor`). */
  async *iterateCheckins(p: Omit<CheckinsParams, 'cursor'>): AsyncGenerator<Checkin, void, undefined> {
    let cursor: string | undefined;
    for (;;) {
      const page = await this.checkins(cursor === undefined ? p : { ...p, cursor });
      yield* page.data;
      if (!page.hasMore) return;
      // Never loop on a server that does not move on.
      if (!page.nextCursor || page.nextCursor === cursor) {
        throw new MarqueeError(`the check-ins did not advance past cursor ${cursor ?? '(start)'}`);
      }
      cursor = page.nextCursor;
    }
  }

  /**
   * An artist's drops in publish order:
   * `GET /api/v1/signal/artists/{artistId}/drops?status=active|sold_out|all`
   * (default `active`). `limit` 1–100 (default 25); continue with
   * `{ cursor: page.nextCursor }`.
   */
  async drops(p: DropsParams): Promise<RevolutionList<Drop>> {
    const r = await this.mq.http.request('GET', `/api/v1/signal/artists/${encodeURIComponent(p.artistId)}/drops`, {
      query: { status: p.status, cursor: p.cursor, limit: p.limit },
    });
    return listOf<Drop>(r.body);
  }

  /** A venue's live status: `GET /api/v1/signal/venues/{venueId}/live`. */
  async venueStatus(venueId: string): Promise<VenueStatus> {
    const r = await this.mq.http.request<Record<string, unknown>>('GET', `/api/v1/signal/venues/${encodeURIComponent(venueId)}/live`);
    // Gate names are data: camelCase the fields, never the gates' keys.
    const { gates, ...rest } = r.body;
    return { ...camelize<Omit<VenueStatus, 'gates'>>(rest), gates: (gates ?? {}) as Record<string, number> };
  }
}

export interface CheckinsParams {
  eventId: string | number;
  since?: Date | string | number;
  /** A `nextCursor` of the previous page. */
  cursor?: string;
  /** 1–100 (default 25). */
  limit?: number;
}

export interface DropsParams {
  artistId: string;
  /** Default `active`. */
  status?: DropStatus | 'all';
  /** A `nextCursor` of the previous page. */
  cursor?: string;
  /** 1–100 (default 25). */
  limit?: number;
}

export class Developers {
  constructor(private readonly mq: Marquee) {}

  /** `POST /api/v1/developers/webhooks`. */
  async createWebhook(input: CreateWebhookInput): Promise<Webhook> {
    const body: Record<string, unknown> = { url: input.url };
    if (input.events !== undefined) body['events'] = input.events;
    if (input.venueId !== undefined) body['venueId'] = input.venueId;
    if (input.secret !== undefined) body['secret'] = input.secret;
    return (await this.mq.http.request<Webhook>('POST', '/api/v1/developers/webhooks', { body })).body;
  }

  /** `GET /api/v1/developers/webhooks` (100 a page; `after` a webhook id). */
  async listWebhooks(p: { after?: string } = {}): Promise<RevolutionList<Webhook>> {
    const r = await this.mq.http.request('GET', '/api/v1/developers/webhooks', { query: { after: p.after } });
    return listOf<Webhook>(r.body);
  }

  async getWebhook(id: string): Promise<Webhook> {
    return (await this.mq.http.request<Webhook>('GET', `/api/v1/developers/webhooks/${encodeURIComponent(id)}`)).body;
  }

  /** `DELETE /api/v1/developers/webhooks/{id}`. */
  async deleteWebhook(id: string): Promise<{ id: string; deleted: true }> {
    return (await this.mq.http.request<{ id: string; deleted: true }>('DELETE', `/api/v1/developers/webhooks/${encodeURIComponent(id)}`)).body;
  }
}

export interface Revolution {
  signal: Signal;
  developers: Developers;
  /** The native client on the same key (publish, endpoints, raw streams). */
  marquee: Marquee;
}

/** The Revolution client: `rev.signal.*` and `rev.developers.*`. */
export function revolution(opts: RevolutionOptions): Revolution {
  const { stream = {}, WebSocket, ...client } = opts;
  const mq = new Marquee(WebSocket ? { ...client, WebSocket } : client);
  return { signal: new Signal(mq, stream), developers: new Developers(mq), marquee: mq };
}
