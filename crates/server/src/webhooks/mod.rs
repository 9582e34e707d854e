//! Webhook delivery: configuration, secret sealing, the guarded HTTP client
//! and the dispatcher.
//!
//! Layout:
//! - [`config`]: `WebhookConfig` and its command-line flags.
//! - [`seal`]: signing secrets encrypted at rest under a key derived from the
//!   server secret.
//! - [`client`]: the outbound HTTP client with the SSRF guard on resolved
//!   addresses, and one attempt (render, sign, POST, capture the response).
//! - [`dispatcher`]: takes deliveries handed over at commit and claims the
//!   rest, enforces per-endpoint limits, batches attempt results into the
//!   store, adapts each endpoint's concurrency to its receiver (`dispatcher/`:
//!   `limit`, `live`, `queues`, `recorder`).
//! - [`wake`]: NATS wake-ups from `--role api` nodes to delivering nodes.

pub mod client;
pub mod config;
pub mod dispatcher;
pub mod seal;
pub mod wake;

pub use config::{WebhookArgs, WebhookConfig};
pub use dispatcher::Dispatcher;
