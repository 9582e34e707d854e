//! The webhook dispatcher: turns pending deliveries into signed POSTs.
//!
//! Flow: the publish commit inserts deliveries. Those of unordered endpoints
//! are born leased to this process and handed straight to the endpoint's
//! queue after the commit (the store's delivery handoff): the hot path has
//! no claim query and no lease write. What the queue cannot take (a slow
//! endpoint already holding its share) is given back with `release_leases`
//! and claimed later. Everything else — ordered endpoints, retries, work of
//! other nodes or of a previous run — goes through claims: the store's
//! commit listener marks the matching endpoints due and wakes the loop (no
//! tight polling), and the loop claims, per due endpoint, a bounded batch under a lease (up to four
//! times `max_in_flight` or, for an adaptive endpoint, its cap, so slots
//! refill without a store round trip; exactly one for an ordered endpoint)
//! and starts attempts only into the endpoint's free slots, so a slow or dead
//! endpoint can only ever occupy its own slots and never delays another; a
//! global semaphore caps attempts in flight overall. An endpoint's slots are
//! its fixed `max_in_flight`, or (not set, the default) a limit that `limit`
//! adapts to the receiver from each attempt's latency and outcome: up while
//! latency holds and work waits, down on timeouts, 429/5xx and queueing.
//! Each attempt runs in its own task (paced by the endpoint's `rate_limit`),
//! and its result goes to one writer task that records results in batches —
//! one commit for many attempts. A periodic
//! sweep (and start-up) re-reads pending work from the store, which is what
//! makes the in-memory hints safe to lose: the store is the source of truth.
//!
//! Ordering (`ordered: true`): the store only offers an ordered endpoint its
//! oldest pending delivery by commit order, and the dispatcher runs at most
//! one attempt for it at a time. A later message is therefore never attempted
//! before every earlier delivery to that endpoint is delivered or exhausted.
//! After a crash an in-flight delivery may be sent again (at-least-once), but
//! never after a later one was first sent.
//!
//! Layout: this file is the loop (handoff, claims, attempts, stop);
//! `limit` the per-endpoint concurrency limit (fixed or adaptive), `live` an
//! endpoint as attempts see it, `queues` the per-endpoint bookkeeping,
//! `recorder` the batched writing of attempt results.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use marquee_core::ids::{DeliveryId, EndpointId, OrgId};
use marquee_core::message::StoredMessage;
use marquee_core::timestamp::Timestamp;
use marquee_core::webhook::ops;
use marquee_core::wire::Render;
use marquee_store::DynStore;
use marquee_store::webhooks::{
    AttemptOutcome, AttemptRecord, ClaimRequest, ClaimedDelivery, EndpointRecord, Transition,
};
use serde_json::value::RawValue;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

use super::client::{self, AttemptResult};
use super::config::WebhookConfig;
use super::seal::Sealer;
use crate::secrets::ServerSecrets;

mod limit;
mod live;
mod queues;
mod recorder;

pub use limit::{Concurrency, DEFAULT_CAP as DEFAULT_ADAPTIVE_CAP};
pub use live::Live;
use queues::{Ep, Start, State};
use recorder::{Done, RESULT_QUEUE, ResultMsg, attempt_record};

/// How often pending work is re-read from the store regardless of hints.
const SWEEP: Duration = Duration::from_secs(1);
/// How often endpoint settings are re-read from the store.
const RELOAD: Duration = Duration::from_secs(5);
/// Most deliveries claimed for one endpoint in one round.
const CLAIM_BATCH: usize = 256;
/// Future retry times remembered per endpoint (beyond: the sweep finds them).
const MAX_HINTS: usize = 10_000;

pub struct Dispatcher {
    store: DynStore,
    sealer: Sealer,
    config: WebhookConfig,
    http: reqwest::Client,
    notify: Notify,
    state: Mutex<State>,
    permits: Arc<Semaphore>,
    results_tx: mpsc::Sender<ResultMsg>,
    results_rx: Mutex<Option<mpsc::Receiver<ResultMsg>>>,
    reload_lock: tokio::sync::Mutex<()>,
    /// Endpoints whose queue overflowed at a handoff: the store stops
    /// birth-leasing their deliveries until the queue drains below the
    /// claim target (then they are claimed, not released one by one).
    /// Locked after `state` when both are held.
    saturated: Arc<Mutex<HashSet<EndpointId>>>,
    /// `run` is delivering (limits are live, not just loaded).
    running: std::sync::atomic::AtomicBool,
    /// Recently erased seqs: a queued delivery of one is dropped, not sent
    /// (its row is gone; `crate::erasure`).
    erased: Arc<crate::erasure::ErasedSeqs>,
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("building the webhook HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("reading the webhook CA file {0}: {1}")]
    CaFile(String, String),
    #[error(transparent)]
    Seal(#[from] super::seal::SealError),
    #[error(transparent)]
    Store(#[from] marquee_store::StoreError),
}

fn unit_random() -> f64 {
    let mut b = [0u8; 8];
    marquee_core::ids::random_bytes(&mut b);
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Dispatcher {
    pub fn new(
        store: DynStore,
        secrets: &ServerSecrets,
        config: WebhookConfig,
        erased: Arc<crate::erasure::ErasedSeqs>,
    ) -> Result<Arc<Self>, DispatchError> {
        let roots = match &config.ca_file {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| DispatchError::CaFile(path.display().to_string(), e.to_string()))?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| DispatchError::CaFile(path.display().to_string(), e.to_string()))?;
                if certs.is_empty() {
                    return Err(DispatchError::CaFile(
                        path.display().to_string(),
                        "no PEM certificate in it".into(),
                    ));
                }
                certs
            }
            None => Vec::new(),
        };
        let http = client::build(config.address_policy(), config.timeout, &roots)?;
        // Bounded: if results cannot be written (database down), attempts
        // wait here holding their worker permits, so no new ones start and
        // memory stays bounded.
        let (tx, rx) = mpsc::channel(RESULT_QUEUE);
        let d = Arc::new(Dispatcher {
            store: store.clone(),
            sealer: Sealer::new(secrets),
            permits: Arc::new(Semaphore::new(config.workers)),
            config,
            http,
            notify: Notify::new(),
            state: Mutex::new(State {
                reload: true,
                sweep: true,
                ..State::default()
            }),
            results_tx: tx,
            results_rx: Mutex::new(Some(rx)),
            reload_lock: tokio::sync::Mutex::new(()),
            saturated: Arc::default(),
            running: std::sync::atomic::AtomicBool::new(false),
            erased,
        });
        let weak: Weak<Dispatcher> = Arc::downgrade(&d);
        store.add_commit_listener(Arc::new(move |msgs: &[Arc<StoredMessage>]| {
            if let Some(d) = weak.upgrade() {
                d.on_commit(msgs);
            }
        }));
        Ok(d)
    }

    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    /// The concurrency limit this node applies to an endpoint now, if this
    /// node delivers and knows the endpoint.
    pub fn concurrency(&self, id: &EndpointId) -> Option<Concurrency> {
        if !self.running.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let st = self.state.lock().ok()?;
        st.endpoints.get(id).map(|ep| ep.limiter.concurrency())
    }

    /// One endpoint was created, changed or deleted through this node:
    /// re-read it before returning (so the next attempt already uses a
    /// rotated secret or a new URL) and look for work. Other endpoints are
    /// untouched; changes made through other nodes arrive with the periodic
    /// full reload.
    pub async fn endpoint_changed(&self, org: &OrgId, id: &EndpointId) {
        {
            let _serial = self.reload_lock.lock().await;
            match self.store.get_endpoint(org, id).await {
                Ok(Some(rec)) => match Live::open(&rec, &self.sealer) {
                    Ok(live) => {
                        if let Ok(mut st) = self.state.lock() {
                            st.broken.remove(&live.id);
                            let list = st.by_org.entry(live.org_id.clone()).or_default();
                            if !list.contains(&live.id) {
                                list.push(live.id.clone());
                            }
                            st.upsert(live, self.config.adaptive_cap);
                        }
                    }
                    Err(e) => {
                        tracing::error!(endpoint = %id, error = %e, "cannot open endpoint secret; skipping it");
                        if let Ok(mut st) = self.state.lock() {
                            st.remove(id, true);
                            st.broken.insert(id.clone());
                        }
                        self.unsaturate(id);
                    }
                },
                Ok(None) => {
                    if let Ok(mut st) = self.state.lock() {
                        st.remove(id, false);
                    }
                    self.unsaturate(id);
                }
                Err(e) => {
                    tracing::warn!(endpoint = %id, error = %e, "re-reading a webhook endpoint failed; reloading all");
                    if let Ok(mut st) = self.state.lock() {
                        st.reload = true;
                    }
                }
            }
        }
        if let Ok(mut st) = self.state.lock() {
            st.sweep = true;
        }
        self.notify.notify_one();
    }

    /// Another node committed messages of `org` (see `webhooks::wake`): its
    /// endpoints may have new deliveries; claim them now.
    pub fn wake_org(&self, org: &OrgId) {
        let now = Timestamp::now().as_micros();
        if let Ok(mut st) = self.state.lock() {
            let State {
                endpoints, by_org, ..
            } = &mut *st;
            for id in by_org.get(org).into_iter().flatten() {
                if let Some(ep) = endpoints.get_mut(id)
                    && ep.live.enabled
                {
                    ep.mark_due(now);
                }
            }
        }
        self.notify.notify_one();
    }

    /// Deliveries were queued outside a publish (resend, recover, replay).
    pub fn kick(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.sweep = true;
        }
        self.notify.notify_one();
    }

    /// Runs on the writer thread after each commit: cheap, never blocks long.
    fn on_commit(&self, msgs: &[Arc<StoredMessage>]) {
        let now = Timestamp::now().as_micros();
        let mut any = false;
        if let Ok(mut st) = self.state.lock() {
            let State {
                endpoints,
                by_org,
                handed_eps,
                ..
            } = &mut *st;
            for m in msgs {
                let Some(ids) = by_org.get(&m.org_id) else {
                    continue;
                };
                for id in ids {
                    if let Some(ep) = endpoints.get_mut(id)
                        && ep.live.enabled
                        && ep.just_handed.binary_search(&m.seq).is_err()
                        && ep.live.filter.matches(m.event_type.as_str(), &m.channels)
                    {
                        ep.mark_due(now);
                        any = true;
                    }
                }
            }
            // The handoff of this commit is accounted for. (Should another
            // commit's listener call come first, this commit's endpoints are
            // merely marked due: a wasted claim, never a missed delivery.)
            for id in handed_eps.drain(..) {
                if let Some(ep) = endpoints.get_mut(&id) {
                    ep.just_handed.clear();
                }
            }
        }
        if any {
            self.notify.notify_one();
        }
    }

    /// Runs on the committing thread right after a commit, before the commit
    /// listeners: queues the deliveries it created for this process, and
    /// sets aside for release what an endpoint's queue cannot take.
    fn on_handoff(&self, handed: Vec<ClaimedDelivery>) {
        let Ok(mut st) = self.state.lock() else { return };
        let State {
            endpoints,
            release,
            reload,
            handed_eps,
            broken,
            stopping,
            ..
        } = &mut *st;
        for d in handed {
            match endpoints.get_mut(&d.endpoint_id) {
                Some(ep) => {
                    if ep.just_handed.is_empty() {
                        handed_eps.push(d.endpoint_id.clone());
                    }
                    ep.just_handed.push(d.message.seq);
                    let room = ep.queue.len() + (ep.in_flight as usize) < 2 * Self::claim_target(ep);
                    if !*stopping && ep.live.enabled && !ep.live.ordered && room {
                        ep.queue.push_back(d);
                    } else {
                        if !room
                            && !ep.saturated
                            && let Ok(mut s) = self.saturated.lock()
                        {
                            ep.saturated = true;
                            s.insert(d.endpoint_id.clone());
                        }
                        release.push(d);
                    }
                }
                None => {
                    // Created a moment ago: learn its settings, then claim.
                    if !broken.contains(&d.endpoint_id) {
                        *reload = true;
                    }
                    release.push(d);
                }
            }
        }
        drop(st);
        self.notify.notify_one();
    }

    /// Gives back the leases set aside by [`Dispatcher::on_handoff`], then
    /// marks their endpoints due so they are claimed as slots free up.
    async fn release_leases(&self) {
        let list = match self.state.lock() {
            Ok(mut st) => std::mem::take(&mut st.release),
            Err(_) => return,
        };
        if list.is_empty() {
            return;
        }
        let leases: Vec<(DeliveryId, Timestamp)> =
            list.iter().map(|d| (d.id.clone(), d.lease_until)).collect();
        if let Err(e) = self.store.release_leases(leases).await {
            // Try again on the next round; past their lease they are
            // claimable anyway (and a release never touches a newer lease).
            tracing::warn!(error = %e, n = list.len(), "giving back webhook leases failed; will retry");
            let now = Timestamp::now();
            if let Ok(mut st) = self.state.lock() {
                st.release
                    .extend(list.into_iter().filter(|d| d.lease_until > now));
            }
            return;
        }
        let now = Timestamp::now().as_micros();
        if let Ok(mut st) = self.state.lock() {
            for d in list {
                if let Some(ep) = st.endpoints.get_mut(&d.endpoint_id) {
                    ep.mark_due(now);
                }
            }
        }
    }

    async fn reload(&self) {
        // Reloads are serialized: a reload that read the store earlier can
        // never overwrite one that read it later.
        let _serial = self.reload_lock.lock().await;
        let records = match self.store.all_endpoints().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "loading webhook endpoints failed; will retry");
                if let Ok(mut st) = self.state.lock() {
                    st.reload = true;
                }
                return;
            }
        };
        let mut lives = Vec::with_capacity(records.len());
        let mut broken = HashSet::new();
        for r in &records {
            match Live::open(r, &self.sealer) {
                Ok(l) => lives.push(l),
                Err(e) => {
                    tracing::error!(endpoint = %r.id, error = %e, "cannot open endpoint secret; skipping it");
                    broken.insert(r.id.clone());
                }
            }
        }
        let Ok(mut st) = self.state.lock() else { return };
        // Deleted endpoints go (their queued leases die with their rows),
        // unopenable ones give theirs back; the others keep their runtime
        // state under fresh settings.
        for id in &broken {
            st.remove(id, true);
        }
        st.broken = broken;
        let keep: HashSet<&EndpointId> = lives.iter().map(|l| &l.id).collect();
        st.endpoints.retain(|id, _| keep.contains(id));
        st.by_org.clear();
        for live in lives {
            st.by_org
                .entry(live.org_id.clone())
                .or_default()
                .push(live.id.clone());
            st.upsert(live, self.config.adaptive_cap);
        }
        if let Ok(mut s) = self.saturated.lock() {
            s.retain(|id| st.endpoints.get(id).is_some_and(|e| e.saturated));
        }
    }

    async fn sweep(&self) {
        match self.store.pending_endpoints().await {
            Ok(list) => {
                let now = Timestamp::now().as_micros();
                let retrying = list.iter().filter(|(_, at)| at.as_micros() > now).count();
                if let Ok(mut st) = self.state.lock() {
                    let (in_flight, queued) = st.endpoints.values().fold((0, 0), |(f, q), ep| {
                        (f + ep.in_flight as usize, q + ep.queue.len())
                    });
                    crate::metrics::pending(list.len(), retrying, in_flight, queued);
                    for (id, at) in list {
                        if !st.endpoints.contains_key(&id) && !st.broken.contains(&id) {
                            // Created on another node (or before a local
                            // change was seen): pick up the settings.
                            st.reload = true;
                        }
                        if let Some(ep) = st.endpoints.get_mut(&id) {
                            let at = at.as_micros();
                            if at <= now {
                                ep.mark_due(now);
                            } else if ep.later.len() < MAX_HINTS {
                                ep.later.push(Reverse(at));
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "webhook sweep failed"),
        }
    }

    /// How many deliveries an endpoint may hold claimed (in flight plus
    /// queued): claiming ahead keeps its slots busy without a store round
    /// trip per attempt. Rate-limited and ordered endpoints do not claim ahead;
    /// an adaptive endpoint claims for its cap (`Limiter::claim_limit`).
    fn claim_target(ep: &Ep) -> usize {
        if ep.live.ordered {
            1
        } else if ep.live.rate_limit.is_some() {
            ep.limiter.limit() as usize
        } else {
            (ep.limiter.claim_limit() as usize * 4).clamp(64, 2 * CLAIM_BATCH)
        }
    }

    /// Moves queued deliveries into free slots (per endpoint and global).
    fn take_startable(&self, st: &mut State) -> Vec<Start> {
        let mut out = Vec::new();
        let tnow = tokio::time::Instant::now();
        // A delivery must start with at least half its lease left.
        let fresh_after = Timestamp::now().saturating_add_micros(micros(self.config.lease / 2));
        let State {
            endpoints, release, ..
        } = st;
        // Out of global permits: start nothing more, but still do every
        // endpoint's bookkeeping below.
        let mut permits_left = true;
        for ep in endpoints.values_mut() {
            if !ep.live.enabled {
                // Give the queued leases back: the rows wait, pending, until
                // the endpoint is enabled again.
                release.extend(ep.queue.drain(..));
                continue;
            }
            let cap = if ep.live.ordered { 1 } else { ep.limiter.limit() };
            while permits_left && ep.in_flight < cap {
                let Some(front) = ep.queue.front() else {
                    break;
                };
                if self.erased.contains(front.message.seq) {
                    // Erased while queued: its row is gone, nothing to send
                    // or give back.
                    ep.queue.pop_front();
                    continue;
                }
                if front.lease_until < fresh_after {
                    // Too close to its lease expiring: give it back, to be
                    // claimed again with a fresh lease.
                    if let Some(d) = ep.queue.pop_front() {
                        release.push(d);
                    }
                    continue;
                }
                let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                    permits_left = false;
                    break;
                };
                let Some(d) = ep.queue.pop_front() else { break };
                ep.in_flight += 1;
                let slot = ep.live.rate_limit.map(|r| {
                    let slot = ep.next_slot.map_or(tnow, |s| s.max(tnow));
                    ep.next_slot = Some(slot + Duration::from_secs_f64(1.0 / f64::from(r)));
                    slot
                });
                out.push((ep.live.clone(), d, slot, permit, ep.limiter.epoch()));
            }
            if ep.saturated {
                self.unsaturate_if_drained(ep);
            }
        }
        out
    }

    /// Forgets an endpoint's saturation (it was removed).
    fn unsaturate(&self, id: &EndpointId) {
        if let Ok(mut s) = self.saturated.lock() {
            s.remove(id);
        }
    }

    /// Lets the store birth-lease an endpoint's deliveries again once its
    /// queue is below the claim target.
    fn unsaturate_if_drained(&self, ep: &mut Ep) {
        if ep.queue.len() + (ep.in_flight as usize) < Self::claim_target(ep)
            && let Ok(mut s) = self.saturated.lock()
        {
            s.remove(&ep.live.id);
            ep.saturated = false;
        }
    }

    fn spawn_starts(self: &Arc<Self>, starts: Vec<Start>) {
        for (live, d, slot, permit, epoch) in starts {
            let me = self.clone();
            tokio::spawn(async move { me.attempt(live, d, slot, permit, epoch).await });
        }
    }

    /// Starts queued work, claims what is due; returns how long until the
    /// next known due time.
    async fn dispatch_due(self: &Arc<Self>) -> Duration {
        let now = Timestamp::now().as_micros();
        let mut reqs: Vec<ClaimRequest> = Vec::new();
        let mut marks: HashMap<EndpointId, u64> = HashMap::new();
        let mut wait = SWEEP;
        let started;
        {
            let Ok(mut st) = self.state.lock() else {
                return SWEEP;
            };
            let starts = self.take_startable(&mut st);
            started = !starts.is_empty();
            self.spawn_starts(starts);
            for ep in st.endpoints.values_mut() {
                while let Some(Reverse(t)) = ep.later.peek().copied() {
                    if t > now {
                        break;
                    }
                    ep.later.pop();
                    ep.mark_due(now);
                }
                if !ep.live.enabled {
                    continue;
                }
                if let Some(Reverse(t)) = ep.later.peek() {
                    wait = wait.min(Duration::from_micros((t - now).max(0) as u64));
                }
                if ep.due_at.is_none_or(|t| t > now) {
                    continue;
                }
                let held = ep.in_flight as usize + ep.queue.len();
                let limit = Self::claim_target(ep).saturating_sub(held).min(CLAIM_BATCH);
                if limit == 0 {
                    continue;
                }
                marks.insert(ep.live.id.clone(), ep.marks);
                reqs.push(ClaimRequest {
                    endpoint_id: ep.live.id.clone(),
                    limit,
                    ordered: ep.live.ordered,
                });
            }
        }
        if reqs.is_empty() {
            return if started { Duration::ZERO } else { wait };
        }
        let lease_until = now.saturating_add(micros(self.config.lease));
        let claimed = match self
            .store
            .claim_deliveries(
                reqs.clone(),
                Timestamp::from_micros(now),
                Timestamp::from_micros(lease_until),
            )
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "claiming deliveries failed; will retry");
                return Duration::from_millis(100);
            }
        };
        let Ok(mut st) = self.state.lock() else {
            return SWEEP;
        };
        let mut per_ep: HashMap<EndpointId, usize> = HashMap::new();
        for c in &claimed {
            *per_ep.entry(c.endpoint_id.clone()).or_default() += 1;
        }
        for r in &reqs {
            if per_ep.get(&r.endpoint_id).copied().unwrap_or(0) < r.limit
                && let Some(ep) = st.endpoints.get_mut(&r.endpoint_id)
                && marks.get(&r.endpoint_id) == Some(&ep.marks)
            {
                // Nothing more is due now (and nothing was marked while the
                // claim ran); retries come back as hints.
                ep.due_at = None;
            }
        }
        for c in claimed {
            if let Some(ep) = st.endpoints.get_mut(&c.endpoint_id) {
                ep.queue.push_back(c);
            }
        }
        let starts = self.take_startable(&mut st);
        drop(st);
        self.spawn_starts(starts);
        Duration::ZERO
    }

    async fn attempt(
        self: Arc<Self>,
        live: Arc<Live>,
        d: ClaimedDelivery,
        slot: Option<tokio::time::Instant>,
        permit: OwnedSemaphorePermit,
        epoch: u64,
    ) {
        if let Some(s) = slot {
            tokio::time::sleep_until(s).await;
        }
        if self.erased.contains(d.message.seq) {
            // Erased while it waited for its rate-limit slot.
            drop(permit);
            if let Ok(mut st) = self.state.lock()
                && let Some(ep) = st.endpoints.get_mut(&live.id)
            {
                ep.in_flight = ep.in_flight.saturating_sub(1);
            }
            self.notify.notify_one();
            return;
        }
        let r = self
            .send(&live, d.id.as_str(), d.attempt_count + 1, &d.message)
            .await;
        let (transition, next_at) = self.decide(&d, &r);
        let disable = (r.status == Some(410)).then(|| "the endpoint answered 410 Gone".to_owned());
        let outcome = AttemptOutcome {
            attempt: attempt_record(
                &r,
                &live,
                d.id.clone(),
                Some(d.message.id.clone()),
                d.attempt_count + 1,
            ),
            transition,
            message_type: d.message.event_type.as_str().to_owned(),
            disable,
        };
        let _ = self
            .results_tx
            .send(ResultMsg::Done(Box::new(Done {
                outcome,
                ordered: live.ordered,
                next_at,
            })))
            .await;
        drop(permit);
        if let Ok(mut st) = self.state.lock()
            && let Some(ep) = st.endpoints.get_mut(&live.id)
        {
            // Work is waiting for this endpoint (queued, or in the store:
            // saturated or due), and not for a global permit.
            let now = Timestamp::now().as_micros();
            let waiting = !ep.queue.is_empty() || ep.saturated || ep.due_at.is_some_and(|t| t <= now);
            let global = ep.in_flight < ep.limiter.limit() && self.permits.available_permits() == 0;
            let sample = limit::Sample {
                epoch,
                latency: r.duration,
                backlogged: waiting && !global,
                signal: limit::Signal::of(r.status, r.error_kind),
            };
            if let Some(c) = ep.limiter.on_done(sample, std::time::Instant::now()) {
                tracing::debug!(
                    endpoint = %live.id,
                    from = c.from,
                    to = c.to,
                    reason = c.reason,
                    base_us = c.base_us,
                    "webhook endpoint concurrency limit"
                );
            }
            ep.in_flight = ep.in_flight.saturating_sub(1);
        }
        self.notify.notify_one();
    }

    /// Renders `message` in the endpoint's wire format, signs it with the
    /// secrets in force now, and POSTs it (one attempt).
    async fn send(
        &self,
        live: &Live,
        delivery: &str,
        attempt: u32,
        message: &StoredMessage,
    ) -> AttemptResult {
        let now = Timestamp::now();
        let secrets = live.signing_secrets(now);
        let req = live.format.wire().render(&Render {
            delivery_id: delivery,
            attempt,
            at: now,
            secrets: &secrets,
            message,
        });
        let r = client::post(
            &self.http,
            &live.url,
            self.config.address_policy(),
            &req.headers,
            req.body,
            now,
        )
        .await;
        client::log_attempt(&live.id, &live.url, delivery, &r);
        crate::metrics::attempt(r.succeeded(), r.error_kind, r.duration);
        r
    }

    fn decide(&self, d: &ClaimedDelivery, r: &AttemptResult) -> (Transition, Option<i64>) {
        if r.succeeded() {
            return (Transition::Delivered, None);
        }
        if r.status == Some(410) {
            return (Transition::Exhausted, None);
        }
        match self
            .config
            .retry_schedule
            .next_delay(d.attempts + 1, unit_random(), r.retry_after)
        {
            Some(delay) => {
                let at = Timestamp::now().saturating_add_micros(micros(delay));
                (Transition::Retry { next_at: at }, Some(at.as_micros()))
            }
            None => (Transition::Exhausted, None),
        }
    }
    /// The dispatcher loop; returns after `stop` once in-flight attempts
    /// have finished (or 10 s passed) and their results are recorded.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        match self.store.release_all_leases().await {
            Ok(n) if n > 0 => tracing::info!(released = n, "released webhook leases of a previous run"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "releasing webhook leases failed"),
        }
        self.running.store(true, std::sync::atomic::Ordering::Relaxed);
        let rx = self.results_rx.lock().ok().and_then(|mut r| r.take());
        let recorder = rx.map(|rx| tokio::spawn(self.clone().record_results(rx)));
        // From here on (after the start-up release above), deliveries this
        // process publishes come straight to the queues.
        let weak = Arc::downgrade(&self);
        let handoff: marquee_store::webhooks::DeliveryHandoff =
            Arc::new(move |handed: Vec<ClaimedDelivery>| {
                if let Some(d) = weak.upgrade() {
                    d.on_handoff(handed);
                }
            });
        self.store
            .set_delivery_handoff(Some(marquee_store::webhooks::Handoff {
                lease: self.config.lease,
                deliver: handoff.clone(),
                saturated: self.saturated.clone(),
            }));
        let mut last_sweep = tokio::time::Instant::now();
        let mut last_reload = tokio::time::Instant::now();
        loop {
            let (reload, sweep) = match self.state.lock() {
                Ok(mut st) => (std::mem::take(&mut st.reload), std::mem::take(&mut st.sweep)),
                Err(_) => break,
            };
            if reload {
                self.reload().await;
            }
            self.release_leases().await;
            if sweep || last_sweep.elapsed() >= SWEEP {
                self.sweep().await;
                last_sweep = tokio::time::Instant::now();
            }
            // Endpoint changes made through other nodes (PATCH, disable,
            // rotation) reach this node within RELOAD.
            if last_reload.elapsed() >= RELOAD {
                if let Ok(mut st) = self.state.lock() {
                    st.reload = true;
                }
                last_reload = tokio::time::Instant::now();
            }
            let wait = self
                .dispatch_due()
                .await
                .min(SWEEP.saturating_sub(last_sweep.elapsed()));
            if wait.is_zero() {
                tokio::task::yield_now().await;
                if *stop.borrow() {
                    break;
                }
                continue;
            }
            tokio::select! {
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => break,
            }
        }
        // Stop taking deliveries, and give back those not yet started so
        // another node (or the next run) can attempt them at once. A group
        // that picked up the handoff before it was removed still announces
        // to it: wait until no group holds it (each drops its copy after
        // announcing), so nothing handed arrives after the last release.
        if let Ok(mut st) = self.state.lock() {
            st.stopping = true;
        }
        self.store.set_delivery_handoff(None);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&handoff) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(handoff);
        if let Ok(mut st) = self.state.lock() {
            let State {
                endpoints, release, ..
            } = &mut *st;
            for ep in endpoints.values_mut() {
                release.extend(ep.queue.drain(..));
            }
        }
        self.release_leases().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.permits.available_permits() < self.config.workers && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Bounded: a recorder stuck on a failing store must not hold the
        // process past its shutdown.
        let (tx, rx) = oneshot::channel();
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            if self.results_tx.send(ResultMsg::Flush(tx)).await.is_ok() {
                let _ = rx.await;
            }
        })
        .await;
        if let Some(r) = recorder {
            r.abort();
        }
    }

    /// Sends a signed `marquee.test` ping now and logs the attempt.
    pub async fn test_ping(&self, rec: &EndpointRecord) -> Result<AttemptRecord, DispatchError> {
        let live = Live::open(rec, &self.sealer)?;
        let now = Timestamp::now();
        let data = serde_json::json!({"endpoint_id": rec.id.as_str(), "test": true}).to_string();
        // Ids marked test-only (`msg_test_…`, `dlv_test_…`): the ping is not
        // in the log, and its attempt says so (`"test": true`).
        let (message_id, delivery) = ops::test_ids();
        let message = StoredMessage {
            seq: 0,
            id: message_id.clone(),
            org_id: rec.org_id.clone(),
            event_type: marquee_core::EventType::from_trusted(ops::TEST.to_owned()),
            channels: vec![marquee_core::Channel::from_trusted(format!(
                "endpoint:{}",
                rec.id
            ))],
            data: RawValue::from_string(data)
                .map_err(|e| marquee_store::StoreError::Internal(e.to_string()))?,
            occurred_at: now,
            received_at: now,
        };
        let r = self.send(&live, delivery.as_str(), 1, &message).await;
        let attempt = attempt_record(&r, &live, delivery, Some(message_id), 1);
        self.store
            .record_attempts(
                vec![AttemptOutcome {
                    attempt: attempt.clone(),
                    transition: Transition::None,
                    message_type: ops::TEST.to_owned(),
                    disable: None,
                }],
                self.policy(),
            )
            .await?;
        Ok(attempt)
    }
}
