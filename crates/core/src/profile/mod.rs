//! Platform profiles: what marquee serves for each reference platform.
//!
//! - [`catalog`]: each profile's event types with their payload schemas and delivery rules.

use std::sync::OnceLock;

use self::catalog::Catalog;

pub mod catalog;

/// Profiles that ship a built-in catalog (`catalogs/<profile>.json`).
pub const PROFILES_WITH_CATALOGS: &[&str] = &["revolution", "eventory", "eventium", "revento", "attendee"];

const CATALOG_SOURCES: &[(&str, &str)] = &[
    ("revolution", include_str!("catalogs/revolution.json")),
    ("eventory", include_str!("catalogs/eventory.json")),
    ("eventium", include_str!("catalogs/eventium.json")),
    ("revento", include_str!("catalogs/revento.json")),
    ("attendee", include_str!("catalogs/attendee.json")),
];

/// The built-in catalog of `profile`, parsed on first use.
pub fn builtin_catalog(profile: &str) -> Option<&'static Catalog> {
    static CATALOGS: OnceLock<Vec<Catalog>> = OnceLock::new();
    let catalogs = CATALOGS.get_or_init(|| {
        CATALOG_SOURCES
            .iter()
            .map(|(name, json)| {
                let catalog = Catalog::parse(json).unwrap_or_else(|e| panic!("built-in catalog {name}: {e}"));
                assert_eq!(
                    catalog.profile, *name,
                    "built-in catalog {name} names another profile"
                );
                catalog
            })
            .collect()
    });
    catalogs.iter().find(|c| c.profile == profile)
}
