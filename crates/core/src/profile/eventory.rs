//! Eventory "Real-Time Notifications" (ticket-inventory monitor; reference
//! 001). Its real-time surface is a WebSocket stream with watchlists and
//! cooldowns (served by the server's `platforms/eventory`); it has no
//! webhooks, so no wire format here — its catalog, and the pure rules the
//! monitor runs on: [`diff`] turns two inventory snapshots into the
//! document's notification, [`watch`] validates and evaluates watchlist
//! entries. The store calls [`diff`] on the publish path (it keeps the last
//! snapshot); the server's stream calls [`watch`].

use super::Profile;

pub mod diff;
pub mod watch;

pub static PROFILE: Profile = Profile {
    name: "eventory",
    title: "Eventory Real-Time Notifications (ticket inventory monitor)",
    format: None,
    enableable: true,
    catalog_source: Some(include_str!("catalogs/eventory.json")),
    catalog_cell: std::sync::OnceLock::new(),
};

/// The type platforms publish; marquee diffs it against the last one.
pub const SNAPSHOT_TYPE: &str = "inventory.snapshot";
/// The document's notification envelope (§4), computed or passed through.
pub const NOTIFICATION_TYPE: &str = "inventory.notification";
/// The envelope's `version`.
pub const VERSION: &str = "1.0";
