//! Eventory "Real-Time Notifications" (ticket-inventory monitor; reference
//! 001). Its real-time surface is a WebSocket stream with watchlists and
//! cooldowns (served by the server's `platforms/eventory`); it has no
//! webhooks, so no wire format here — only its catalog.

use super::Profile;

pub static PROFILE: Profile = Profile {
    name: "eventory",
    title: "Eventory Real-Time Notifications (ticket inventory monitor)",
    format: None,
    enableable: true,
    catalog_source: Some(include_str!("catalogs/eventory.json")),
    catalog_cell: std::sync::OnceLock::new(),
};
