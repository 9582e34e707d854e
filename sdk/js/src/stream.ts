/**
 * The live stream (`GET /v1/stream`, WebSocket) with automatic reconnection.
 *
 * - Subscriptions survive reconnects: after every reconnect each channel is
 *   subscribed again with `"after": <the last cursor received on it>`, so the
 *   server replays what was missed — no gap — and the client drops anything
 *   at or below that cursor — no duplicate.
 * - A channel that had received nothing yet when the connection dropped has
 *   no cursor to resume from; it is subscribed again live and the messages
 *   committed while disconnected are fetched from the REST log (`since` the
 *   moment it was first subscribed), merged with the live frames by cursor.
 * - Capped exponential backoff with jitter between attempts; a ping every
 *   `heartbeatIntervalMs`, and a connection that answers nothing within
 *   `heartbeatTimeoutMs` is dropped and replaced.
 * - Close codes (ARCHITECTURE.md, "Streams") are reported with their
 *   meaning; 4003 (key revoked) and refusals of the key (401 / 403) are not
 *   retried; everything else, including 4008 (slow consumer), resumes.
 * - Only frames carrying a message `id` and `cursor` are events. Everything
 *   else (acknowledgements, pongs, error frames) is a control frame and is
 *   never emitted as `message`.
 */

import { Emitter } from './emitter.js';
import { MarqueeApiError } from './errors.js';
import { parseRetryAfter, type HttpClient } from './http.js';
import type { JsonObject, ListPage, Message } from './types.js';

/** One event frame: `{"type","id","cursor","channel","payload","occurred_at"}`. */
export interface StreamEvent<P = JsonObject> {
  type: string;
  /** The message id, `msg_…`. */
  id: string;
  cursor: string;
  /** The channel this copy was delivered on (`venue:stubbs-austin`). */
  channel: string;
  payload: P;
  occurred_at: string;
}

/** What a close code means and whether the stream reconnects after it. */
export interface CloseCodeInfo {
  code: number;
  meaning: string;
  reconnect: boolean;
}

/** The close codes of ARCHITECTURE.md, "Streams" (plus the WebSocket standard ones a client sees). */
export const CLOSE_CODES: Readonly<Record<number, { meaning: string; reconnect: boolean }>> = Object.freeze({
  1000: { meaning: 'closed normally', reconnect: false },
  1001: { meaning: 'server shutting down; resuming by cursor', reconnect: true },
  1005: { meaning: 'closed without a status code', reconnect: true },
  1006: { meaning: 'connection lost (closed abnormally, without a close frame)', reconnect: true },
  1009: { meaning: 'an inbound frame exceeded the server limit (it is not resent)', reconnect: true },
  1011: { meaning: 'server error (e.g. the store failed during replay); retrying with backoff', reconnect: true },
  1012: { meaning: 'server restarting', reconnect: true },
  1013: { meaning: 'server overloaded; try again later', reconnect: true },
  4000: { meaning: 'idle: nothing received within the idle / heartbeat timeout', reconnect: true },
  4003: { meaning: 'the API key was revoked; not retried with this key', reconnect: false },
  4008: { meaning: 'slow consumer: the outbound backlog passed its bound; resuming by cursor', reconnect: true },
});

/** The meaning of a close code and whether the stream retries after it. */
export function describeCloseCode(code: number): CloseCodeInfo {
  const known = CLOSE_CODES[code];
  if (known) return { code, ...known };
  if (code >= 4000 && code <= 4999) return { code, meaning: `application close code ${code}`, reconnect: true };
  return { code, meaning: `close code ${code}`, reconnect: true };
}

export interface BackoffOptions {
  /** First delay (default 500 ms). */
  initialMs?: number;
  /** Cap (default 30 000 ms). */
  maxMs?: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /** 0 = none, 1 = full jitter; the delay is `base × (1 − jitter × random)` (default 0.5). */
  jitter?: number;
}

/** The wait before reconnect attempt `attempt` (0-based). */
export function backoffDelay(attempt: number, o: BackoffOptions = {}, random: () => number = Math.random): number {
  const initial = o.initialMs ?? 500;
  const max = o.maxMs ?? 30_000;
  const factor = o.factor ?? 2;
  const jitter = Math.min(1, Math.max(0, o.jitter ?? 0.5));
  const base = Math.min(max, initial * factor ** Math.max(0, attempt));
  return Math.round(base * (1 - jitter * random()));
}

/** A WebSocket constructor: the browser's, Node ≥ 22's global, or the `ws` package's. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type WebSocketConstructor = new (url: string, ...rest: any[]) => WebSocketLike;

export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string; wasClean?: boolean }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  /** The `ws` package only. */
  terminate?: () => void;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  on?: (event: string, listener: (...args: any[]) => void) => unknown;
}

export type ChannelSpec = string | { channel: string; id?: string; after?: string };

export interface StreamOptions {
  /** Subscribed at once (`'venue:stubbs-austin'`, `{ channel: 'venue', id: 'stubbs-austin' }`, `{ channel, after }`). */
  channels?: ChannelSpec[];
  backoff?: BackoffOptions;
  /** Give up after this many consecutive failed attempts (default: never). */
  maxReconnectAttempts?: number;
  /** A connection open this long resets the backoff (default 5 000 ms). */
  stableAfterMs?: number;
  /** Ping interval (default 20 000 ms). */
  heartbeatIntervalMs?: number;
  /** Nothing heard this long after a ping ends the connection (default 10 000 ms). */
  heartbeatTimeoutMs?: number;
  /** Opening handshake timeout (default 10 000 ms). */
  connectTimeoutMs?: number;
  /**
   * Fill the gap of a channel that had no cursor yet when the connection
   * dropped from the REST log (default true).
   */
  backfill?: boolean;
  /** Clock allowance for that REST backfill's `since` (default 2 000 ms). */
  backfillSkewMs?: number;
  /** The WebSocket implementation (default: global `WebSocket`, else the `ws` package). */
  WebSocket?: WebSocketConstructor;
}

export interface ConnectedInfo {
  /** 0 for the first connection, then 1, 2… */
  reconnects: number;
  url: string;
}

export interface DisconnectedInfo {
  code: number;
  reason: string;
  meaning: string;
  /** False when the stream has ended for good (closed by you, 4003, refused key, attempts exhausted). */
  willReconnect: boolean;
  /** The HTTP status when the server refused the upgrade (401, 403, 429). */
  status?: number;
}

export interface ReconnectingInfo {
  /** 1 for the first retry after a drop. */
  attempt: number;
  delayMs: number;
  code: number;
  reason: string;
  meaning: string;
}

export type StreamErrorKind =
  /** The connection closed (`closeCode`, `meaning`). */
  | 'close'
  /** The connection could not be opened (`status` when the server refused the upgrade). */
  | 'connect'
  /** An error frame from the server (`code`, `channel`). */
  | 'frame'
  /** No answer to a ping within the heartbeat timeout. */
  | 'heartbeat'
  /** The REST backfill of a cursorless channel failed; the channel continues live (`gap: true`). */
  | 'backfill';

export interface StreamError {
  kind: StreamErrorKind;
  message: string;
  /** Whether the stream keeps going (reconnects or carries on). */
  retry: boolean;
  closeCode?: number;
  meaning?: string;
  /** The error frame's code (`cursor_expired`, `invalid_cursor`, `too_many_subscriptions`, `rate_limited`…). */
  code?: string;
  channel?: string;
  status?: number;
  /** `cursor_expired` / `invalid_cursor` / a failed backfill: the channel continues live and messages may be missing. */
  gap?: boolean;
  cause?: unknown;
}

export interface SubscribedInfo {
  channel: string;
  /** The cursor the subscription resumed after (null: live from now). */
  after: string | null;
}

export interface StreamEventMap {
  /** An event frame (never an ack or error frame). */
  message: (event: StreamEvent) => void;
  connected: (info: ConnectedInfo) => void;
  reconnecting: (info: ReconnectingInfo) => void;
  disconnected: (info: DisconnectedInfo) => void;
  error: (error: StreamError) => void;
  subscribed: (info: SubscribedInfo) => void;
  unsubscribed: (info: { channel: string }) => void;
  /** Any other non-event frame (pongs excluded), as received. */
  control: (frame: JsonObject) => void;
}

export type StreamState = 'connecting' | 'open' | 'waiting' | 'closed';

const KIND_RE = /^[a-z][a-z0-9_]{0,31}$/;
const ID_RE = /^[A-Za-z0-9._~-]{1,128}$/;

/** `'venue:stubbs-austin'` from any {@link ChannelSpec}; throws on an invalid name. */
export function channelName(spec: ChannelSpec): string {
  const s = typeof spec === 'string' ? spec : spec.id !== undefined ? `${spec.channel}:${spec.id}` : spec.channel;
  const i = s.indexOf(':');
  if (i < 0 || !KIND_RE.test(s.slice(0, i)) || !ID_RE.test(s.slice(i + 1))) {
    throw new TypeError(`invalid channel ${JSON.stringify(s)}: expected kind:id, e.g. venue:stubbs-austin`);
  }
  return s;
}

export type Classified =
  | { kind: 'event'; event: StreamEvent }
  | { kind: 'subscribed'; channel: string | undefined; after: string | undefined; cursor: string | undefined }
  | { kind: 'unsubscribed'; channel: string | undefined }
  | { kind: 'pong' }
  | { kind: 'error'; code: string; message: string; channel: string | undefined }
  | { kind: 'control'; frame: JsonObject };

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/**
 * Sorts a frame into an event or a control frame. An event has a non-empty
 * string `id` and `cursor` and no acknowledgement marker (`ack` / `action`
 * fields); anything else is never an event, whatever its `type`.
 */
export function classifyFrame(frame: unknown): Classified | null {
  if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) return null;
  const f = frame as JsonObject;
  const type = str(f['type']);
  // marquee's control frames (acks, pong, errors) name themselves in `event`
  // and carry no `type`; older servers used `type`, `ack` or `action`.
  const event = str(f['event']);
  const marker = event ?? str(f['ack']) ?? str(f['action']) ?? str(f['status']);
  const isError =
    type === 'error' || event === 'error' || (typeof f['error'] === 'object' && f['error'] !== null);
  const id = str(f['id']);
  const cursor = str(f['cursor']);
  if (
    id &&
    cursor &&
    type &&
    !isError &&
    event === undefined &&
    f['ack'] === undefined &&
    f['action'] === undefined &&
    str(f['channel'])
  ) {
    return {
      kind: 'event',
      event: {
        type,
        id,
        cursor,
        channel: f['channel'] as string,
        payload: (f['payload'] ?? {}) as JsonObject,
        occurred_at: str(f['occurred_at']) ?? '',
      },
    };
  }
  if (isError) {
    const e = (typeof f['error'] === 'object' && f['error'] !== null ? f['error'] : f) as JsonObject;
    return {
      kind: 'error',
      code: str(e['code']) ?? 'error',
      message: str(e['message']) ?? '',
      channel: str(e['channel']) ?? str(f['channel']),
    };
  }
  const what = [type, marker].filter((x): x is string => !!x).map((x) => x.toLowerCase());
  if (what.some((x) => x === 'subscribed' || x === 'subscribe')) {
    return { kind: 'subscribed', channel: str(f['channel']), after: str(f['after']), cursor };
  }
  if (what.some((x) => x === 'unsubscribed' || x === 'unsubscribe')) {
    return { kind: 'unsubscribed', channel: str(f['channel']) };
  }
  if (what.some((x) => x === 'pong' || x === 'ping')) return { kind: 'pong' };
  return { kind: 'control', frame: f };
}

interface Sub {
  channel: string;
  /** Last cursor delivered on this channel (the resume position). */
  cursor: string | null;
  /** When it was first subscribed live (no cursor): the REST backfill's lower bound. */
  liveSince: number | null;
  /** While a REST backfill runs: live frames held back until it is done. */
  buffer: StreamEvent[] | null;
  /** A backfill is owed once the subscription is live. */
  backfillPending: boolean;
  ackTimer: ReturnType<typeof setTimeout> | null;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
let wsModule: Promise<any> | null = null;

async function defaultWebSocket(): Promise<WebSocketConstructor> {
  const g = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (typeof g === 'function') return g;
  wsModule ??= import('ws');
  const m = await wsModule;
  return (m.WebSocket ?? m.default) as WebSocketConstructor;
}

const OPEN = 1;
const CONNECTING = 0;

/** A live stream. Create it with `marquee.stream(…)`. */
export class MarqueeStream extends Emitter<StreamEventMap> {
  private readonly http: HttpClient;
  private readonly opts: StreamOptions;
  private readonly subs = new Map<string, Sub>();
  private socket: WebSocketLike | null = null;
  private gen = 0;
  private _state: StreamState = 'connecting';
  private attempt = 0;
  private reconnects = 0;
  private openedAt: number | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private connectTimer: ReturnType<typeof setTimeout> | null = null;
  private heartbeatTimer: ReturnType<typeof setInterval> | null = null;
  private pongTimer: ReturnType<typeof setTimeout> | null = null;
  private sendTimer: ReturnType<typeof setTimeout> | null = null;
  private outbox: string[] = [];
  private tokens = 0;
  private tokensAt = 0;
  private refusal: { status: number; retryAfter?: number | undefined } | null = null;
  private closeWaiters: (() => void)[] = [];
  private _duplicatesDropped = 0;

  constructor(http: HttpClient, opts: StreamOptions = {}) {
    super();
    this.http = http;
    this.opts = opts;
    for (const spec of opts.channels ?? []) {
      const after = typeof spec === 'string' ? undefined : spec.after;
      this.addSub(channelName(spec), after ?? null);
    }
    // Connect on the next tick, so handlers attached right after creation see `connected`.
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.connect();
    }, 0);
  }

  get state(): StreamState {
    return this._state;
  }

  /** Channels subscribed (or to be subscribed on the next connection). */
  get channels(): string[] {
    return [...this.subs.keys()];
  }

  /** Frames dropped because they were at or below a channel's cursor. */
  get duplicatesDropped(): number {
    return this._duplicatesDropped;
  }

  /** The last cursor received on a channel (save it to resume in another process). */
  cursor(channel: ChannelSpec): string | null {
    return this.subs.get(channelName(channel))?.cursor ?? null;
  }

  /** Every channel's last cursor. */
  cursors(): Record<string, string | null> {
    return Object.fromEntries([...this.subs].map(([k, s]) => [k, s.cursor]));
  }

  /**
   * Subscribes to a channel (kept across reconnects). With `after`, the
   * server first replays what came after that cursor.
   */
  subscribe(channel: ChannelSpec, opts: { after?: string } = {}): this {
    const name = channelName(channel);
    const after = opts.after ?? (typeof channel === 'object' ? channel.after : undefined);
    const existing = this.subs.get(name);
    if (existing) {
      if (after !== undefined) {
        existing.cursor = after;
        existing.buffer = null;
        existing.backfillPending = false;
        this.sendSubscribe(existing);
      }
      return this;
    }
    const sub = this.addSub(name, after ?? null);
    this.sendSubscribe(sub);
    return this;
  }

  unsubscribe(channel: ChannelSpec): this {
    const name = channelName(channel);
    const sub = this.subs.get(name);
    if (!sub) return this;
    if (sub.ackTimer) clearTimeout(sub.ackTimer);
    this.subs.delete(name);
    if (this.isOpen()) this.enqueue({ action: 'unsubscribe', channel: name });
    return this;
  }

  /** Closes the stream for good. Resolves once the socket has closed (at most ~1 s). */
  close(): Promise<void> {
    if (this._state === 'closed') return Promise.resolve();
    const socket = this.socket;
    const done = new Promise<void>((resolve) => {
      if (!socket) return resolve();
      this.closeWaiters.push(resolve);
      setTimeout(resolve, 1000);
    });
    this.finish();
    if (socket) {
      try {
        if (socket.readyState === OPEN || socket.readyState === CONNECTING) socket.close(1000, 'client closed');
      } catch {
        /* already closing */
      }
    }
    this.emit('disconnected', { code: 1000, reason: 'client closed', meaning: CLOSE_CODES[1000]!.meaning, willReconnect: false });
    return done;
  }

  /** Same as {@link close}. */
  disconnect(): Promise<void> {
    return this.close();
  }

  // ---- connection -------------------------------------------------------

  private addSub(channel: string, after: string | null): Sub {
    const sub: Sub = { channel, cursor: after, liveSince: null, buffer: null, backfillPending: false, ackTimer: null };
    this.subs.set(channel, sub);
    return sub;
  }

  /** Read through a method: handlers may close the stream while a method runs. */
  private isClosed(): boolean {
    return this._state === 'closed';
  }

  private isOpen(): boolean {
    return this._state === 'open' && this.socket !== null && this.socket.readyState === OPEN;
  }

  private wsUrl(query: boolean): string {
    const u = new URL(this.http.baseUrl + '/v1/stream');
    u.protocol = u.protocol === 'https:' ? 'wss:' : u.protocol === 'http:' ? 'ws:' : u.protocol;
    if (query) u.searchParams.set('apiKey', this.http.apiKey);
    return u.toString();
  }

  private async connect(): Promise<void> {
    if (this._state === 'closed') return;
    const gen = ++this.gen;
    this._state = 'connecting';
    this.openedAt = null;
    this.refusal = null;
    let Ctor: WebSocketConstructor;
    try {
      Ctor = this.opts.WebSocket ?? (await defaultWebSocket());
    } catch (e) {
      this.emit('error', { kind: 'connect', message: `no WebSocket implementation: ${String(e)}`, retry: false, cause: e });
      this.finish();
      this.emit('disconnected', { code: 1006, reason: 'no WebSocket implementation', meaning: CLOSE_CODES[1006]!.meaning, willReconnect: false });
      return;
    }
    if (gen !== this.gen || this.isClosed()) return;
    // The `ws` package takes headers (the key stays out of URLs and logs); browsers cannot.
    const nodeWs = typeof (Ctor as { prototype?: { terminate?: unknown } }).prototype?.terminate === 'function';
    const url = this.wsUrl(!nodeWs);
    let socket: WebSocketLike;
    try {
      socket = nodeWs ? new Ctor(url, { headers: { 'x-api-key': this.http.apiKey } }) : new Ctor(url);
    } catch (e) {
      this.emit('error', { kind: 'connect', message: `cannot open ${url}: ${String(e)}`, retry: false, cause: e });
      this.finish();
      this.emit('disconnected', { code: 1006, reason: String(e), meaning: CLOSE_CODES[1006]!.meaning, willReconnect: false });
      return;
    }
    this.socket = socket;
    const safeUrl = this.wsUrl(false);
    this.connectTimer = setTimeout(() => {
      if (gen === this.gen) this.abandon(gen, 1006, `connect timeout after ${this.connectTimeoutMs()} ms`);
    }, this.connectTimeoutMs());
    if (nodeWs && socket.on) {
      socket.on('unexpected-response', (_req: unknown, res: { statusCode?: number; headers?: Record<string, string | string[] | undefined> }) => {
        const ra = res.headers?.['retry-after'];
        this.refusal = { status: res.statusCode ?? 0, retryAfter: parseRetryAfter(Array.isArray(ra) ? ra[0] ?? null : ra ?? null) };
        try {
          socket.terminate?.();
        } catch {
          /* closing anyway */
        }
      });
      socket.on('error', () => {
        /* reported through close */
      });
    }
    socket.onopen = () => {
      if (gen !== this.gen) return;
      this.clearConnectTimer();
      this._state = 'open';
      this.openedAt = Date.now();
      this.tokens = BURST;
      this.tokensAt = Date.now();
      this.emit('connected', { reconnects: this.reconnects, url: safeUrl });
      for (const sub of this.subs.values()) this.sendSubscribe(sub);
      this.startHeartbeat(gen);
    };
    socket.onmessage = (ev) => {
      if (gen !== this.gen) return;
      this.onFrame(gen, ev.data);
    };
    socket.onerror = () => {
      // A close event normally follows. Some WebSocket implementations
      // (undici in Node 20) report a refused upgrade with an error and never
      // close: give up on the attempt shortly after.
      if (this.openedAt !== null) return;
      setTimeout(() => {
        if (gen === this.gen && this.openedAt === null && !this.isClosed()) this.abandon(gen, 1006, 'connection failed', true);
      }, 200);
    };
    socket.onclose = (ev) => {
      const waiters = this.closeWaiters.splice(0);
      for (const w of waiters) w();
      if (gen !== this.gen) return;
      void this.onClosed(gen, ev.code || 1005, ev.reason || '');
    };
  }

  private connectTimeoutMs(): number {
    return this.opts.connectTimeoutMs ?? 10_000;
  }

  private clearConnectTimer(): void {
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
  }

  private stopTimers(): void {
    this.clearConnectTimer();
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.pongTimer) clearTimeout(this.pongTimer);
    if (this.sendTimer) clearTimeout(this.sendTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.heartbeatTimer = this.pongTimer = this.sendTimer = this.retryTimer = null;
    for (const s of this.subs.values()) {
      if (s.ackTimer) clearTimeout(s.ackTimer);
      s.ackTimer = null;
    }
    this.outbox = [];
  }

  /** Ends the stream for good. */
  private finish(): void {
    this._state = 'closed';
    this.gen++;
    this.stopTimers();
    this.socket = null;
    for (const s of this.subs.values()) {
      s.buffer = null;
      s.backfillPending = false;
    }
  }

  /**
   * Drops a connection that is not answering (or that failed without
   * closing) and handles it as closed with `code`; `probe`: ask over HTTP
   * why, as for a refused upgrade.
   */
  private abandon(gen: number, code: number, reason: string, probe = false): void {
    const socket = this.socket;
    this.gen++;
    this.socket = null;
    if (socket) {
      try {
        if (socket.terminate) socket.terminate();
        else socket.close(4000, reason.slice(0, 100));
      } catch {
        /* gone already */
      }
    }
    void this.onClosed(gen, code, reason, true, probe);
  }

  private async onClosed(gen: number, code: number, reason: string, abandoned = false, probe = !abandoned): Promise<void> {
    if (!abandoned && gen !== this.gen) return;
    if (this._state === 'closed') return;
    const wasOpen = this.openedAt !== null;
    const openFor = wasOpen ? Date.now() - (this.openedAt as number) : 0;
    this.stopTimers();
    this.socket = null;
    for (const s of this.subs.values()) {
      // Live frames held for a backfill are dropped: the next connection
      // resumes from the cursor delivered so far (or backfills again).
      s.buffer = null;
      s.backfillPending = false;
    }
    const info = describeCloseCode(code);
    let status: number | undefined;
    let retryAfter: number | undefined;
    let fatal = !info.reconnect;
    let meaning = info.meaning;
    if (!wasOpen) {
      let refusal = this.refusal;
      // A connection given up on (timeout) means an unresponsive server: a probe would hang too.
      if (!refusal && probe) refusal = await this.probe();
      if (this.isClosed()) return;
      if (refusal) {
        status = refusal.status;
        retryAfter = refusal.retryAfter;
        if (status === 401) {
          fatal = true;
          meaning = 'the server refused the API key (401 invalid_api_key); not retried';
        } else if (status === 403) {
          fatal = true;
          meaning = 'the key may not stream (403 forbidden: free tier); not retried';
        } else if (status === 429) {
          meaning = 'too many stream connections for this key (429 rate_limited); retrying';
        } else if (status) {
          meaning = `the server refused the upgrade (HTTP ${status}); retrying`;
        }
      }
    }
    const attempts = this.opts.maxReconnectAttempts ?? Infinity;
    if (openFor >= (this.opts.stableAfterMs ?? 5000)) this.attempt = 0;
    if (!fatal && this.attempt >= attempts) {
      fatal = true;
      meaning += `; gave up after ${attempts} attempts`;
    }
    const err: StreamError = {
      kind: wasOpen ? 'close' : 'connect',
      message: `stream ${wasOpen ? 'closed' : 'could not connect'}: ${code}${reason ? ` ${reason}` : ''} (${meaning})`,
      retry: !fatal,
      closeCode: code,
      meaning,
    };
    if (status !== undefined) err.status = status;
    this.emit('error', err);
    const disc: DisconnectedInfo = { code, reason, meaning, willReconnect: !fatal };
    if (status !== undefined) disc.status = status;
    if (fatal) {
      this.finish();
      this.emit('disconnected', disc);
      return;
    }
    this._state = 'waiting';
    this.emit('disconnected', disc);
    if (this.isClosed()) return; // closed by a handler
    let delay = backoffDelay(this.attempt, this.opts.backoff);
    if (retryAfter !== undefined) delay = Math.max(delay, retryAfter * 1000);
    this.attempt++;
    this.emit('reconnecting', { attempt: this.attempt, delayMs: delay, code, reason, meaning });
    if (this.isClosed()) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.reconnects++;
      void this.connect();
    }, delay);
  }

  /**
   * A socket that closed before opening says nothing about why (browsers):
   * ask the same URL over plain HTTP. 400 (not an upgrade) means the key is
   * fine; 401 / 403 / 429 are the refusal.
   */
  private async probe(): Promise<{ status: number; retryAfter?: number | undefined } | null> {
    try {
      await this.http.request('GET', '/v1/stream', { idempotent: false, timeoutMs: 5000 });
      return null;
    } catch (e) {
      if (e instanceof MarqueeApiError && (e.status === 401 || e.status === 403 || e.status === 429)) {
        return { status: e.status, retryAfter: e.retryAfter };
      }
      return null;
    }
  }

  // ---- heartbeat and sending ---------------------------------------------

  private startHeartbeat(gen: number): void {
    const every = this.opts.heartbeatIntervalMs ?? 20_000;
    const timeout = this.opts.heartbeatTimeoutMs ?? 10_000;
    this.heartbeatTimer = setInterval(() => {
      if (gen !== this.gen || this.pongTimer) return;
      this.enqueue({ action: 'ping' }, true);
      this.pongTimer = setTimeout(() => {
        this.pongTimer = null;
        if (gen !== this.gen) return;
        this.emit('error', {
          kind: 'heartbeat',
          message: `no answer to a ping within ${timeout} ms; reconnecting`,
          retry: true,
          closeCode: 4000,
          meaning: CLOSE_CODES[4000]!.meaning,
        });
        this.abandon(gen, 4000, 'heartbeat timeout');
      }, timeout);
    }, every);
  }

  /**
   * Sends a frame within the server's inbound budget (20 frames/s, burst
   * 40): excess frames would be dropped by the server, so they wait here.
   */
  private enqueue(frame: JsonObject, front = false): void {
    const text = JSON.stringify(frame);
    if (front) this.outbox.unshift(text);
    else this.outbox.push(text);
    this.flush();
  }

  private flush(): void {
    if (this.sendTimer) return;
    const now = Date.now();
    this.tokens = Math.min(BURST, this.tokens + ((now - this.tokensAt) / 1000) * RATE);
    this.tokensAt = now;
    while (this.outbox.length && this.tokens >= 1) {
      if (!this.isOpen()) {
        this.outbox = [];
        return;
      }
      this.tokens -= 1;
      try {
        this.socket!.send(this.outbox.shift()!);
      } catch {
        return; // the close event handles it
      }
    }
    if (this.outbox.length) {
      this.sendTimer = setTimeout(() => {
        this.sendTimer = null;
        this.flush();
      }, Math.ceil(((1 - this.tokens) / RATE) * 1000));
    }
  }

  private sendSubscribe(sub: Sub): void {
    if (!this.isOpen()) return;
    const frame: JsonObject = { action: 'subscribe', channel: sub.channel };
    if (sub.cursor) {
      frame['after'] = sub.cursor;
    } else if (sub.liveSince !== null && this.opts.backfill !== false) {
      // Was live before, received nothing: backfill the gap once live again.
      sub.backfillPending = true;
      sub.buffer = [];
    } else if (sub.liveSince === null) {
      sub.liveSince = Date.now();
    }
    this.enqueue(frame);
    if (sub.backfillPending) {
      // Should the acknowledgement never be recognised, start anyway.
      if (sub.ackTimer) clearTimeout(sub.ackTimer);
      const gen = this.gen;
      sub.ackTimer = setTimeout(() => {
        sub.ackTimer = null;
        if (gen === this.gen && sub.backfillPending) void this.backfill(gen, sub);
      }, 5000);
    }
  }

  // ---- frames -------------------------------------------------------------

  private onFrame(gen: number, data: unknown): void {
    if (this.pongTimer) {
      clearTimeout(this.pongTimer);
      this.pongTimer = null;
    }
    let text: string;
    if (typeof data === 'string') text = data;
    else if (data instanceof ArrayBuffer) text = new TextDecoder().decode(data);
    else if (ArrayBuffer.isView(data)) text = new TextDecoder().decode(data as Uint8Array);
    else text = String(data);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      this.emit('control', { type: 'unparseable', text });
      return;
    }
    const c = classifyFrame(parsed);
    if (!c) return;
    switch (c.kind) {
      case 'event': {
        const sub = this.subs.get(c.event.channel);
        if (!sub) return; // unsubscribed meanwhile
        if (sub.backfillPending) {
          // A live frame proves the subscription is live: the backfill can start.
          sub.buffer!.push(c.event);
          void this.backfill(gen, sub);
          return;
        }
        if (sub.buffer) {
          sub.buffer.push(c.event);
          return;
        }
        this.deliver(sub, c.event);
        return;
      }
      case 'subscribed': {
        const sub = c.channel ? this.subs.get(c.channel) : undefined;
        if (!sub) return;
        if (sub.ackTimer) clearTimeout(sub.ackTimer);
        sub.ackTimer = null;
        if (!sub.cursor && c.cursor && !sub.backfillPending) sub.cursor = c.cursor;
        this.emit('subscribed', { channel: sub.channel, after: c.after ?? null });
        if (sub.backfillPending) void this.backfill(gen, sub);
        return;
      }
      case 'unsubscribed':
        if (c.channel) this.emit('unsubscribed', { channel: c.channel });
        return;
      case 'pong':
        return;
      case 'error':
        this.onErrorFrame(gen, c.code, c.message, c.channel);
        return;
      case 'control':
        this.emit('control', c.frame);
        return;
    }
  }

  private deliver(sub: Sub, ev: StreamEvent): void {
    // Cursors are fixed-width base32 of the commit sequence: string order is log order.
    if (sub.cursor !== null && ev.cursor <= sub.cursor) {
      this._duplicatesDropped++;
      return;
    }
    sub.cursor = ev.cursor;
    this.emit('message', ev);
  }

  private onErrorFrame(gen: number, code: string, message: string, channel: string | undefined): void {
    const sub = channel ? this.subs.get(channel) : undefined;
    const err: StreamError = { kind: 'frame', code, message, retry: true };
    if (channel) err.channel = channel;
    if (sub && (code === 'cursor_expired' || code === 'invalid_cursor')) {
      // Nothing to resume from: carry on live, and say there may be a gap.
      err.gap = true;
      err.message = `${message} (resubscribed live from now: messages may be missing)`;
      this.emit('error', err);
      sub.cursor = null;
      sub.liveSince = null;
      sub.buffer = null;
      sub.backfillPending = false;
      if (gen === this.gen) this.sendSubscribe(sub);
      return;
    }
    if (sub && code === 'too_many_subscriptions') {
      err.retry = false;
      this.subs.delete(sub.channel);
      this.emit('error', err);
      return;
    }
    if (sub && code === 'unavailable') {
      this.emit('error', err);
      setTimeout(() => {
        if (gen === this.gen && this.subs.get(sub.channel) === sub) this.sendSubscribe(sub);
      }, backoffDelay(1, this.opts.backoff));
      return;
    }
    this.emit('error', err);
  }

  /** Messages of `sub.channel` committed while it had no cursor, from the REST log. */
  private async backfill(gen: number, sub: Sub): Promise<void> {
    if (!sub.backfillPending) return;
    sub.backfillPending = false;
    if (sub.ackTimer) clearTimeout(sub.ackTimer);
    sub.ackTimer = null;
    const since = new Date((sub.liveSince ?? Date.now()) - (this.opts.backfillSkewMs ?? 2000));
    const alive = () => gen === this.gen && this.subs.get(sub.channel) === sub && sub.buffer !== null;
    try {
      let after: string | undefined;
      for (;;) {
        const q = { channel: sub.channel, since, limit: 100, after };
        const page = (await this.http.request<ListPage<Message>>('GET', '/v1/messages', { query: q })).body;
        if (!alive()) return;
        for (const m of page.data) {
          this.deliver(sub, {
            type: m.type,
            id: m.id,
            cursor: m.cursor,
            channel: sub.channel,
            payload: m.data,
            occurred_at: m.occurred_at,
          });
          if (!alive()) return;
        }
        if (page.next_cursor) after = page.next_cursor;
        if (!page.has_more) break;
      }
    } catch (e) {
      // Often the server went away: the socket's own close follows, and the
      // next connection backfills again from the same point.
      await new Promise((r) => setTimeout(r, 250));
      if (!alive() || !this.isOpen()) return;
      // The stream works but the REST log does not answer (after the
      // client's retries; e.g. a browser page on another origin, as marquee
      // sends no CORS headers): carry on live and say what may be missing.
      this.emit('error', {
        kind: 'backfill',
        message: `could not backfill ${sub.channel} from the REST log (${String((e as Error)?.message ?? e)}); continuing live: messages committed while disconnected may be missing`,
        retry: true,
        gap: true,
        channel: sub.channel,
        cause: e,
      });
    }
    const held = sub.buffer ?? [];
    sub.buffer = null;
    for (const ev of held) this.deliver(sub, ev);
  }
}

const BURST = 30;
const RATE = 15;
