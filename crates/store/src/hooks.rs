//! What a backend tells the rest of the process after a durable commit: the
//! delivery handoff (deliveries born leased to this process) and the commit
//! listeners (stream fan-out, dispatcher wake-ups). Shared by both backends
//! so the order and the panic containment are decided once.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use marquee_core::message::StoredMessage;
use marquee_core::timestamp::Timestamp;

use crate::CommitListener;
use marquee_core::ids::EndpointId;

use crate::webhooks::{ClaimedDelivery, DeliveryHandoff, Handoff};

#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub listeners: Arc<Mutex<Vec<CommitListener>>>,
    pub handoff: Arc<Mutex<Option<Handoff>>>,
}

/// What one commit group uses of the handoff, read when the group starts.
pub(crate) struct GroupLease {
    /// The lease new deliveries are born with (µs).
    pub until: i64,
    pub deliver: DeliveryHandoff,
    /// Endpoints not to lease (saturated when the group started).
    pub skip: HashSet<EndpointId>,
}

impl Hooks {
    pub fn add_listener(&self, l: CommitListener) {
        if let Ok(mut v) = self.listeners.lock() {
            v.push(l);
        }
    }

    pub fn set_handoff(&self, h: Option<Handoff>) {
        if let Ok(mut v) = self.handoff.lock() {
            *v = h;
        }
    }

    /// The lease deliveries created now are born with (µs), and where they
    /// go after the commit; `None` without a handoff.
    pub fn lease(&self) -> Option<GroupLease> {
        let h = self.handoff.lock().ok()?.clone()?;
        let until = Timestamp::now()
            .as_micros()
            .saturating_add(i64::try_from(h.lease.as_micros()).unwrap_or(i64::MAX));
        let skip = h.saturated.lock().map(|s| s.clone()).unwrap_or_default();
        Some(GroupLease {
            until,
            deliver: h.deliver,
            skip,
        })
    }

    /// After a durable commit: hands over the born-leased deliveries first
    /// (so a listener that wakes the dispatcher finds them queued), then
    /// tells the listeners.
    pub fn announce(
        &self,
        handoff: Option<&DeliveryHandoff>,
        handed: Vec<ClaimedDelivery>,
        committed: &[Arc<StoredMessage>],
    ) {
        if let Some(h) = handoff
            && !handed.is_empty()
            && std::panic::catch_unwind(AssertUnwindSafe(|| h(handed))).is_err()
        {
            tracing::error!("the delivery handoff panicked; its leases will expire");
        }
        if committed.is_empty() {
            return;
        }
        let ls: Vec<CommitListener> = self.listeners.lock().map(|l| l.clone()).unwrap_or_default();
        for l in ls {
            if std::panic::catch_unwind(AssertUnwindSafe(|| l(committed))).is_err() {
                tracing::error!("a commit listener panicked; the commit itself is durable");
            }
        }
    }
}
