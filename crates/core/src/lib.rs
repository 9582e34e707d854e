//! marquee's pure domain model.
//!
//! Everything here is plain data and pure functions: identifiers, the names of
//! types and channels, cursors, the API-key format, the native message model,
//! error codes and timestamps. No network, no disk, no async runtime — so the
//! rules that define marquee's wire contract are table-tested in isolation and
//! shared by the store, the server and (later) the client crate.
//!
//! The one concession is randomness for fresh ids and keys (`getrandom`), which
//! is a system call but not I/O in the sense that matters here.
//!
//! Layout:
//! - [`cidr`]: CIDR networks for the webhook address allowlist.
//! - [`ids`]: prefixed, time-sortable identifiers (`msg_…`, `org_…`, `key_…`).
//! - [`ijson`]: I-JSON (RFC 7493) checks on published data.
//! - [`names`]: validated message types and `kind:id` channels.
//! - [`cursor`]: opaque, order-preserving cursors over the commit log.
//! - [`duration`]: human durations (`5s`, `30d`) for configuration.
//! - [`apikey`]: `sk_live_` keys, their public prefix and peppered digest.
//! - [`message`]: the native message model and its JSON rendering.
//! - [`error`]: the error codes of the HTTP envelope.
//! - [`timestamp`]: microsecond UTC timestamps and RFC 3339.
//! - [`tier`]: key tiers.
//! - [`pattern`]: type patterns (`order.*`) used by subscriptions.
//! - [`webhook`]: endpoint filters, delivery states, the retry schedule.
//! - [`wire`]: the webhook wire-format trait, signing secrets and their schemes.
//! - [`profile`]: one module per platform (its wire format, its event catalog
//!   with payload schemas), and the registry.

pub mod apikey;
pub mod attendance;
pub mod cidr;
pub mod cursor;
pub mod duration;
pub mod error;
pub mod ids;
pub mod ijson;
pub mod message;
pub mod names;
pub mod pattern;
pub mod profile;
pub mod rules;
pub mod tier;
pub mod timestamp;
pub mod webhook;
pub mod wire;

pub use cursor::Cursor;
pub use error::ErrorCode;
pub use names::{Channel, EventType};
pub use tier::Tier;
pub use timestamp::Timestamp;
