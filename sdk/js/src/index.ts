/**
 * marquee's JavaScript / TypeScript SDK.
 *
 * - {@link Marquee}: the native API (messages, endpoints, streams).
 * - {@link revolution}: the Revolution Event Stream API of its document.
 * - {@link verifyWebhook}: webhook verification for every format.
 */

export { Marquee, Messages, Endpoints, Erasures } from './client.js';
export type { MarqueeOptions, PublishOptions, Published, PollOptions, WaitErasureOptions } from './client.js';
export { HttpClient, DEFAULT_BASE_URL } from './http.js';
export type { ClientOptions, FetchLike } from './http.js';
export { MarqueeError, MarqueeApiError, MarqueeConnectionError, WebhookVerificationError } from './errors.js';
export type { ApiErrorCode, WebhookFailure } from './errors.js';
export {
  MarqueeStream,
  CLOSE_CODES,
  describeCloseCode,
  backoffDelay,
  classifyFrame,
  channelName,
} from './stream.js';
export type {
  StreamEvent,
  StreamOptions,
  StreamEventMap,
  StreamError,
  StreamErrorKind,
  StreamState,
  ConnectedInfo,
  DisconnectedInfo,
  ReconnectingInfo,
  SubscribedInfo,
  BackoffOptions,
  ChannelSpec,
  CloseCodeInfo,
  WebSocketConstructor,
  WebSocketLike,
} from './stream.js';
export * from './types.js';
export { camelize, camelKey } from './camel.js';
export {
  revolution,
  RevolutionStream,
  Signal,
  Developers,
  REVOLUTION_EVENT_TYPES,
  toRevolutionEvent,
} from './revolution.js';
export type {
  Revolution,
  RevolutionOptions,
  RevolutionEventMap,
  RevolutionEventType,
  RevolutionEventMeta,
  AnyRevolutionEvent,
  FanCheckin,
  DropPublished,
  DropClaimed,
  AutographRequested,
  ShoutoutRequested,
  SignalPosted,
  VenueOpened,
  AttendanceMilestone,
  ConnectTarget,
  RevolutionList,
  Checkin,
  Drop,
  VenueStatus,
  DropStatus,
  CheckinsParams,
  DropsParams,
  CreateWebhookInput,
  Webhook,
} from './revolution.js';
export {
  verifyWebhook,
  isValidWebhook,
  webhookVerifier,
  signWebhook,
  timingSafeEqual,
  WEBHOOK_FORMATS,
  WEBHOOK_TOLERANCE_SECS,
} from './webhooks.js';
export type { WebhookFormat, VerifyOptions, HeadersInput, RawBody } from './webhooks.js';
