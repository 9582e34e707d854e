//! The dispatcher's in-memory bookkeeping per endpoint: its settings, the
//! deliveries it holds leased (queued or in flight), due times and retry
//! hints, and what is waiting to be given back. Only hints: the store stays
//! the source of truth, so all of this may be lost at any time.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use marquee_core::ids::{EndpointId, OrgId};
use marquee_store::webhooks::ClaimedDelivery;
use tokio::sync::OwnedSemaphorePermit;

use super::limit::Limiter;
use super::live::Live;

pub(super) struct Ep {
    pub(super) live: Arc<Live>,
    pub(super) in_flight: u32,
    /// How many attempts may be in flight (fixed or adaptive).
    pub(super) limiter: Limiter,
    /// Known to have due work now (or at this time, µs).
    pub(super) due_at: Option<i64>,
    /// Bumped whenever the endpoint is marked due, so a claim that found
    /// less than it asked for clears `due_at` only if nothing marked the
    /// endpoint while the claim ran.
    pub(super) marks: u64,
    /// Known future retry times.
    pub(super) later: BinaryHeap<Reverse<i64>>,
    pub(super) next_slot: Option<tokio::time::Instant>,
    /// Claimed (leased) deliveries waiting for a free slot.
    pub(super) queue: VecDeque<ClaimedDelivery>,
    /// Seqs (ascending) whose deliveries the commit being announced handed
    /// over: its commit listener call need not mark the endpoint due for
    /// them. Cleared by that call.
    pub(super) just_handed: Vec<u64>,
    /// In the shared `saturated` set (new deliveries are not born leased).
    pub(super) saturated: bool,
}

impl Ep {
    /// The endpoint has work due at `at` (or earlier, if already known).
    pub(super) fn mark_due(&mut self, at: i64) {
        self.due_at = Some(self.due_at.map_or(at, |t| t.min(at)));
        self.marks += 1;
    }

    pub(super) fn new(live: Live, adaptive_cap: u32) -> Self {
        Ep {
            limiter: Limiter::new(live.max_in_flight, adaptive_cap, Instant::now()),
            live: Arc::new(live),
            in_flight: 0,
            due_at: None,
            marks: 0,
            later: BinaryHeap::new(),
            next_slot: None,
            queue: VecDeque::new(),
            just_handed: Vec::new(),
            saturated: false,
        }
    }
}

/// A delivery ready to attempt: endpoint, delivery, rate-limit slot, permit,
/// and the endpoint's limiter epoch at the start.
pub(super) type Start = (
    Arc<Live>,
    ClaimedDelivery,
    Option<tokio::time::Instant>,
    OwnedSemaphorePermit,
    u64,
);

#[derive(Default)]
pub(super) struct State {
    pub(super) endpoints: HashMap<EndpointId, Ep>,
    pub(super) by_org: HashMap<OrgId, Vec<EndpointId>>,
    pub(super) reload: bool,
    pub(super) sweep: bool,
    /// Leases to give back (handed deliveries the queue could not take,
    /// queues of endpoints disabled or made ordered).
    pub(super) release: Vec<ClaimedDelivery>,
    /// Endpoints with a non-empty `just_handed`.
    pub(super) handed_eps: Vec<EndpointId>,
    /// Endpoints whose secret could not be opened (they are skipped; their
    /// deliveries are released instead of triggering reloads).
    pub(super) broken: HashSet<EndpointId>,
    /// The dispatcher is stopping: handed deliveries go to `release`.
    pub(super) stopping: bool,
}

impl State {
    /// Installs an endpoint's fresh settings, keeping its runtime state
    /// (its adaptive limit too, unless its `max_in_flight` changed).
    pub(super) fn upsert(&mut self, live: Live, adaptive_cap: u32) {
        match self.endpoints.get_mut(&live.id) {
            Some(e) => {
                if live.ordered && !e.live.ordered {
                    // Now ordered: what was queued unordered goes back to
                    // the store, to be claimed head first.
                    self.release.extend(e.queue.drain(..));
                }
                if e.limiter.differs(live.max_in_flight, adaptive_cap) {
                    e.limiter = Limiter::new(live.max_in_flight, adaptive_cap, Instant::now());
                }
                e.live = Arc::new(live);
            }
            None => {
                self.endpoints
                    .insert(live.id.clone(), Ep::new(live, adaptive_cap));
            }
        }
    }

    /// Drops an endpoint; its queued leases are given back when `release`
    /// (its row still exists) or die with its deleted rows.
    pub(super) fn remove(&mut self, id: &EndpointId, release: bool) {
        if let Some(mut ep) = self.endpoints.remove(id) {
            if let Some(list) = self.by_org.get_mut(&ep.live.org_id) {
                list.retain(|e| e != id);
            }
            if release {
                self.release.extend(ep.queue.drain(..));
            }
        }
    }
}
