/**
 * Errors thrown by the SDK.
 *
 * Every API error answer is `{"error":{"code","message","param"?}}`; it is
 * thrown as a {@link MarqueeApiError} carrying the HTTP status and those fields.
 */

/** Base class of every error the SDK throws. */
export class MarqueeError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MarqueeError';
  }
}

/** The API's error codes (README, "The native API"). */
export type ApiErrorCode =
  | 'invalid_request'
  | 'invalid_api_key'
  | 'forbidden'
  | 'not_found'
  | 'method_not_allowed'
  | 'conflict'
  | 'payload_too_large'
  | 'rate_limited'
  | 'internal_error'
  | 'unavailable'
  | (string & {});

/** An error answer from the server. */
export class MarqueeApiError extends MarqueeError {
  /** HTTP status (400, 401, 403, 404, 409, 413, 429, 500, 503…). */
  readonly status: number;
  /** The error code, e.g. `invalid_request` or `conflict`. */
  readonly code: ApiErrorCode;
  /** The offending parameter, e.g. `messages[3].channels[0]` or `data.fan_id`. */
  readonly param: string | undefined;
  /** Seconds to wait, from `Retry-After` (429 / 503). */
  readonly retryAfter: number | undefined;
  /** The parsed answer body (or its text when it was not JSON). */
  readonly body: unknown;

  constructor(status: number, code: string, message: string, param?: string, retryAfter?: number, body?: unknown) {
    super(`${status} ${code}: ${message}${param ? ` (param: ${param})` : ''}`);
    this.name = 'MarqueeApiError';
    this.status = status;
    this.code = code;
    this.param = param;
    this.retryAfter = retryAfter;
    this.body = body;
  }
}

/** The request never got an answer (DNS, refused connection, reset, timeout). */
export class MarqueeConnectionError extends MarqueeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MarqueeConnectionError';
  }
}

/** Why a webhook failed verification. */
export type WebhookFailure =
  /** A header the format needs is absent. */
  | 'missing_header'
  /** A header is present but not in the format's shape. */
  | 'malformed'
  /** No signature matches the body with the given secret(s). */
  | 'mismatch'
  /** The signature is authentic but its timestamp is outside the tolerance. */
  | 'stale'
  /** The body is not the raw request body (e.g. an already parsed object). */
  | 'invalid_body';

/** A webhook request that did not verify. */
export class WebhookVerificationError extends MarqueeError {
  readonly reason: WebhookFailure;
  /** The header concerned, for `missing_header` / `malformed`. */
  readonly header: string | undefined;

  constructor(reason: WebhookFailure, message: string, header?: string) {
    super(message);
    this.name = 'WebhookVerificationError';
    this.reason = reason;
    this.header = header;
  }
}
