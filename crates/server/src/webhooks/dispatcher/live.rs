//! An endpoint as the dispatcher uses it: secrets opened, settings parsed,
//! shared by every attempt to it (`Arc<Live>`), replaced whole on reload.

use marquee_core::ids::{EndpointId, OrgId};
use marquee_core::timestamp::Timestamp;
use marquee_core::webhook::EndpointFilter;
use marquee_core::wire::{Format, SigningSecret};
use marquee_store::webhooks::EndpointRecord;

use crate::webhooks::seal::{SealError, Sealer};

/// An endpoint as the dispatcher uses it: secrets opened, settings parsed.
pub struct Live {
    pub id: EndpointId,
    pub org_id: OrgId,
    pub url: String,
    pub format: Format,
    pub filter: EndpointFilter,
    secret: SigningSecret,
    previous: Option<(SigningSecret, Timestamp)>,
    pub ordered: bool,
    /// As stored: 0 = adaptive (see `limit`), else a fixed limit.
    pub max_in_flight: u32,
    pub rate_limit: Option<u32>,
    pub enabled: bool,
}

impl Live {
    pub fn open(rec: &EndpointRecord, sealer: &Sealer) -> Result<Self, SealError> {
        let scheme = rec.format.wire().secret_scheme();
        let secret = sealer.open(&rec.id, scheme, &rec.secret_sealed)?;
        let previous = match (&rec.previous_secret_sealed, rec.previous_secret_until) {
            (Some(p), Some(until)) => Some((sealer.open(&rec.id, scheme, p)?, until)),
            _ => None,
        };
        Ok(Live {
            id: rec.id.clone(),
            org_id: rec.org_id.clone(),
            url: rec.url.clone(),
            format: rec.format,
            filter: rec.filter.clone(),
            secret,
            previous,
            ordered: rec.ordered,
            max_in_flight: rec.max_in_flight,
            rate_limit: rec.rate_limit.filter(|r| *r > 0),
            enabled: rec.enabled,
        })
    }

    /// The secrets that sign at `at`: the current one, plus the rotated-out
    /// one during its overlap where the format carries several signatures
    /// (single-signature formats switch to the new secret at once).
    pub fn signing_secrets(&self, at: Timestamp) -> Vec<&SigningSecret> {
        let mut v = vec![&self.secret];
        if let Some((prev, until)) = &self.previous
            && at < *until
            && self.format.wire().multi_signature()
        {
            v.push(prev);
        }
        v
    }
}
