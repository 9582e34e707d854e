//! Enabled endpoints as the publish path reads them (a leaf module: it needs
//! only a connection, so the writer's endpoint cache, the log append and the
//! webhook jobs all import it without importing each other).

use marquee_core::ids::EndpointId;
use marquee_core::webhook::EndpointFilter;
use rusqlite::Connection;

use crate::Result;

/// An enabled endpoint as the publish job needs it.
pub struct PublishEndpoint {
    pub id: EndpointId,
    pub filter: EndpointFilter,
    pub ordered: bool,
}

/// The organization's enabled endpoints, read once per publish job.
pub fn endpoints_for_publish(conn: &Connection, org: &str) -> Result<Vec<PublishEndpoint>> {
    let mut st = conn.prepare_cached(
        "SELECT id, types, channels, ordered FROM endpoints WHERE org_id = ?1 AND enabled = 1",
    )?;
    let v = st
        .query_map([org], |r| {
            let types: String = r.get(1)?;
            let channels: String = r.get(2)?;
            Ok(PublishEndpoint {
                id: EndpointId::from_trusted(r.get(0)?),
                filter: EndpointFilter::from_texts(&types, &channels),
                ordered: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}
