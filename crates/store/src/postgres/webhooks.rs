//! The webhook part of the store contract on PostgreSQL.
//!
//! NOT YET IMPLEMENTED beyond what the publish path needs: every method
//! answers `StoreError::Unavailable` with a clear message, so a cluster on
//! PostgreSQL serves messages, keys and streams while webhook endpoints are
//! refused instead of silently dropped. The SQLite implementation
//! (`sqlite/webhooks.rs`) is the reference to port.

use async_trait::async_trait;
use marquee_core::ids::{EndpointId, MessageId, OrgId};
use marquee_core::names::Channel;
use marquee_core::timestamp::Timestamp;
use tokio_postgres::Transaction;

use super::PgStore;
use crate::webhooks::*;
use crate::{Result, StoreError};

/// An enabled endpoint as the publish path needs it.
pub struct PublishEndpoint {
    _id: String,
}

/// The organization's enabled endpoints (none until webhooks are ported).
pub async fn endpoints_for_publish(_tx: &Transaction<'_>, _org: &str) -> Result<Vec<PublishEndpoint>> {
    Ok(Vec::new())
}

/// Inserts the deliveries of one message inside the publish transaction.
#[allow(clippy::too_many_arguments)]
pub async fn insert_deliveries(
    _tx: &Transaction<'_>,
    _endpoints: &[PublishEndpoint],
    _org: &str,
    _seq: u64,
    _message_id: &str,
    _event_type: &str,
    _channels: &[Channel],
    _now: i64,
) -> Result<()> {
    Ok(())
}

fn unsupported<T>() -> Result<T> {
    Err(StoreError::Unavailable(
        "webhook endpoints are not yet available on the PostgreSQL store".into(),
    ))
}

#[async_trait]
impl WebhookStore for PgStore {
    async fn create_endpoint(&self, _ep: EndpointRecord) -> Result<()> {
        unsupported()
    }
    async fn get_endpoint(&self, _org: &OrgId, _id: &EndpointId) -> Result<Option<EndpointRecord>> {
        unsupported()
    }
    async fn list_endpoints(
        &self,
        _org: &OrgId,
        _after: Option<&EndpointId>,
        _limit: usize,
    ) -> Result<EndpointPage> {
        unsupported()
    }
    async fn all_endpoints(&self) -> Result<Vec<EndpointRecord>> {
        // The dispatcher asks at start-up: with no endpoints it idles.
        Ok(Vec::new())
    }
    async fn update_endpoint(&self, _ep: EndpointRecord) -> Result<()> {
        unsupported()
    }
    async fn delete_endpoint(&self, _org: &OrgId, _id: &EndpointId) -> Result<bool> {
        unsupported()
    }
    async fn claim_deliveries(
        &self,
        _reqs: Vec<ClaimRequest>,
        _now: Timestamp,
        _lease_until: Timestamp,
    ) -> Result<Vec<ClaimedDelivery>> {
        Ok(Vec::new())
    }
    async fn release_all_leases(&self) -> Result<u64> {
        Ok(0)
    }
    async fn pending_endpoints(&self) -> Result<Vec<(EndpointId, Timestamp)>> {
        Ok(Vec::new())
    }
    async fn record_attempts(
        &self,
        _outcomes: Vec<AttemptOutcome>,
        _policy: OutcomePolicy,
    ) -> Result<RecordSummary> {
        unsupported()
    }
    async fn list_attempts(&self, _org: &OrgId, _q: &AttemptQuery) -> Result<AttemptPage> {
        unsupported()
    }
    async fn resend(
        &self,
        _org: &OrgId,
        _message: &MessageId,
        _endpoint: Option<&EndpointId>,
    ) -> Result<u64> {
        unsupported()
    }
    async fn recover(
        &self,
        _org: &OrgId,
        _endpoint: &EndpointId,
        _since: Timestamp,
        _until: Timestamp,
    ) -> Result<u64> {
        unsupported()
    }
    async fn replay_chunk(
        &self,
        _org: &OrgId,
        _endpoint: &EndpointId,
        _from: ReplayFrom,
        _chunk: usize,
    ) -> Result<ReplayProgress> {
        unsupported()
    }
    async fn endpoint_stats(
        &self,
        _org: &OrgId,
        _endpoint: &EndpointId,
        _now: Timestamp,
    ) -> Result<EndpointStats> {
        unsupported()
    }
}
