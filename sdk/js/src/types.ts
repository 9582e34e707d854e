/**
 * The native API's resources, exactly as the server writes them (snake_case
 * field names, as in the README's "The native API"). `data` / `payload` are
 * yours and never rewritten.
 */

export type JsonObject = { [key: string]: unknown };

/** A stored message (`GET /v1/messages/{id}`, publish answers, list items). */
export interface Message<D = JsonObject> {
  object: 'message';
  /** `msg_…` */
  id: string;
  /** Its position in the log: pass it as `after` to continue behind it. */
  cursor: string;
  type: string;
  channels: string[];
  data: D;
  occurred_at: string;
  received_at: string;
}

/** What `POST /v1/messages` takes. */
export interface PublishInput<D = JsonObject> {
  /** `[a-z0-9][a-z0-9_.-]{0,63}` */
  type: string;
  /** 1–16 channels, `kind:id` (e.g. `venue:stubbs-austin`). */
  channels: string[];
  data: D;
  /** When it happened (default: when marquee received it). */
  occurred_at?: string | Date;
  /** Per-message idempotency key (24 h per organization). */
  idempotency_key?: string;
}

/** A page of a list: `{"object":"list","data","has_more","next_cursor"}`. */
export interface ListPage<T> {
  object: 'list';
  data: T[];
  has_more: boolean;
  /** Keep calling with it as `after`: it never skips or repeats an item. */
  next_cursor: string | null;
}

export interface ListMessagesParams {
  /** Start behind this cursor. */
  after?: string;
  /** Only messages marquee received at or after this time. */
  since?: string | Date;
  type?: string;
  channel?: string;
  /** 1–100 (default 25). */
  limit?: number;
}

export type EndpointFormat = 'standard' | 'revolution' | 'eventium' | 'revento' | 'attendee';

export interface Endpoint {
  object: 'endpoint';
  /** `ep_…` */
  id: string;
  url: string;
  description: string | null;
  types: string[];
  channels: string[];
  format: EndpointFormat;
  rate_limit: number | null;
  max_in_flight: number;
  ordered: boolean;
  enabled: boolean;
  disabled_reason: string | null;
  failing_since: string | null;
  created_at: string;
  updated_at: string;
  /** Shown on create, on rotate and when a format change issues a new one. */
  secret?: string;
  /** `attendee` only: the channel identifier signed with the secret (shown with it). */
  identifier?: string;
  /** On rotate: until when the previous secret still signs (multi-signature formats). */
  previous_secret_expires_at?: string | null;
}

export interface CreateEndpointInput {
  url: string;
  description?: string;
  /** Empty = all; a trailing `*` matches a prefix. */
  types?: string[];
  /** A message matches if it shares one; empty = all. */
  channels?: string[];
  format?: EndpointFormat;
  /** Your own secret: `whsec_…` for `standard`, any 8–256 printable characters for `revolution`. */
  secret?: string;
  rate_limit?: number;
  max_in_flight?: number;
  ordered?: boolean;
  enabled?: boolean;
}

export interface UpdateEndpointInput {
  url?: string;
  description?: string | null;
  types?: string[];
  channels?: string[];
  format?: EndpointFormat;
  rate_limit?: number | null;
  max_in_flight?: number;
  ordered?: boolean;
  enabled?: boolean;
}

export interface Attempt {
  object: 'attempt';
  id: string;
  delivery_id: string;
  endpoint_id: string;
  message_id: string | null;
  attempt: number;
  status: 'succeeded' | 'failed';
  started_at: string;
  duration_ms: number;
  status_code: number | null;
  error_kind: string | null;
  response_headers: Record<string, string>;
  response_body: string | null;
}

export interface AttemptsParams {
  status?: 'succeeded' | 'failed';
  after?: string;
  limit?: number;
}

export interface EndpointStats {
  object: 'endpoint_stats';
  endpoint_id: string;
  enabled: boolean;
  delivered: number;
  failed: number;
  pending: number;
  retrying: number;
  last_success_at: string | null;
  last_failure_at: string | null;
  attempts_last_hour: number;
  success_rate_last_hour: number | null;
}

export interface ReplayResult {
  object: 'replay';
  endpoint_id: string;
  queued: number;
  has_more: boolean;
  next_cursor: string | null;
}

export interface RecoverResult {
  object: 'recover';
  endpoint_id: string;
  queued: number;
}

export interface ResendResult {
  object: 'resend';
  message_id: string;
  queued: number;
}

export interface Deleted {
  object?: string;
  id: string;
  deleted: true;
}

/** An erasure (`POST /v1/erasures`, `GET /v1/erasures/{id}`); see the README, "Erasure". */
export interface Erasure {
  object: 'erasure';
  id: string;
  /** `running` until `completed`. */
  status: 'running' | 'completed' | (string & {});
  channel: string;
  within: string | null;
  messages_erased: number;
  /** Counted when the erasure was accepted. */
  messages_total: number;
  created_at: string;
  completed_at: string | null;
}

export interface CreateErasureInput {
  /** Erase every stored message on this channel… */
  channel: string;
  /** …that is also on this one (omitted: all of them). */
  within?: string;
}
