//! Shared application state handed to every handler.

use std::sync::Arc;

use marquee_store::DynStore;

use crate::config::ServeConfig;
use crate::ingest::IngestRules;
use crate::ratelimit::RateLimits;
use crate::secrets::ServerSecrets;

#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    pub secrets: ServerSecrets,
    pub limits: Arc<RateLimits>,
    pub config: Arc<ServeConfig>,
    pub ingest: Arc<IngestRules>,
    /// Live streams: the bus, connection limits, shutdown.
    pub streams: Arc<crate::stream::StreamHub>,
    /// The webhook dispatcher (also holds the secret sealer).
    pub webhooks: Arc<crate::webhooks::Dispatcher>,
    /// Erasure: the worker's wake-up and this node's filter of erased seqs.
    pub erasures: Arc<crate::erasure::Erasures>,
}
