//! The single writer thread and the context its write jobs run in (group
//! commit). The log append itself is in `log.rs`; this module imports
//! neither it nor the webhook jobs, which both build on [`Ctx`].

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use marquee_core::ids::{AttemptId, EndpointId};
use marquee_core::message::StoredMessage;
use marquee_core::timestamp::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use super::endpoints::{PublishEndpoint, endpoints_for_publish};
use crate::hooks::Hooks;
use crate::webhooks::ClaimedDelivery;
use crate::{IDEMPOTENCY_TTL_MICROS, Result, StoreError};

/// What a write job sees: the connection inside the open transaction and the
/// writer's sequence state.
pub struct Ctx<'a> {
    pub conn: &'a Connection,
    /// The next `seq` to assign (only `log.rs` assigns them).
    pub next_seq: &'a mut u64,
    /// The newest `received_at` assigned (non-decreasing in `seq`).
    pub last_received: &'a mut i64,
    /// Messages made durable by this group, announced after the commit.
    pub committed: &'a mut Vec<Arc<StoredMessage>>,
    /// Set when an unguarded job failed after writing: the group rolls back.
    poisoned: bool,
    /// Enabled endpoints per organization for the publish job. Every
    /// endpoint change is a guarded job on this thread, and guarded jobs
    /// clear it (hot jobs that change endpoints call
    /// [`Ctx::forget_endpoints`]), as does a failed group; so it is never
    /// stale.
    endpoint_cache: &'a mut HashMap<String, Arc<Vec<PublishEndpoint>>>,
    /// With a delivery handoff: the lease new deliveries are born with (µs).
    pub lease_until: Option<i64>,
    /// Endpoints whose new deliveries are not born leased (saturated).
    pub no_lease: &'a HashSet<EndpointId>,
    /// Deliveries born leased in this group, handed over after the commit.
    pub handed: &'a mut Vec<ClaimedDelivery>,
}

impl Ctx<'_> {
    /// The organization's enabled endpoints (cached between publishes).
    pub fn endpoints_for(&mut self, org: &str) -> Result<Arc<Vec<PublishEndpoint>>> {
        if let Some(e) = self.endpoint_cache.get(org) {
            return Ok(e.clone());
        }
        let e = Arc::new(endpoints_for_publish(self.conn, org)?);
        if self.endpoint_cache.len() > 10_000 {
            self.endpoint_cache.clear();
        }
        self.endpoint_cache.insert(org.to_owned(), e.clone());
        Ok(e)
    }

    /// A job changed endpoints: later publishes must read them again.
    pub fn forget_endpoints(&mut self) {
        self.endpoint_cache.clear();
    }
}

type Completion = Box<dyn FnOnce(bool) + Send>;
type Job = Box<dyn FnOnce(&mut Ctx<'_>) -> Completion + Send>;

pub struct Writer {
    tx: mpsc::Sender<Job>,
    head: Arc<AtomicU64>,
}

/// Jobs waiting for the writer; senders wait when it is full (back-pressure).
const QUEUE: usize = 4_096;

impl Writer {
    pub fn start(conn: Connection, max_group: usize, hooks: Hooks) -> Result<Self> {
        let max_seq: i64 = conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM messages", [], |r| r.get(0))?;
        let meta_seq: Option<String> = conn
            .query_row("SELECT v FROM meta WHERE k = 'last_seq'", [], |r| r.get(0))
            .optional()?;
        let last = (max_seq as u64).max(meta_seq.and_then(|s| s.parse().ok()).unwrap_or(0));
        // received_at is non-decreasing in seq: the newest row holds the max.
        let last_received: i64 = conn
            .query_row(
                "SELECT received_at FROM messages ORDER BY seq DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        let head = Arc::new(AtomicU64::new(last));
        let (tx, rx) = mpsc::channel::<Job>(QUEUE);
        let h = head.clone();
        std::thread::Builder::new()
            .name("marquee-sqlite-writer".into())
            .spawn(move || run(conn, rx, max_group.max(1), last + 1, last_received, h, hooks))
            .map_err(|e| StoreError::Internal(format!("spawning writer: {e}")))?;
        Ok(Writer { tx, head })
    }

    pub fn head_seq(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// Runs `f` in the next group commit and answers once it is durable.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Ctx<'_>) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |ctx| {
            let seq_before = *ctx.next_seq;
            let recv_before = *ctx.last_received;
            let committed_before = ctx.committed.len();
            let handed_before = ctx.handed.len();
            // A guarded job may change endpoints: forget them.
            ctx.endpoint_cache.clear();
            let result = match ctx.conn.execute_batch("SAVEPOINT job") {
                Ok(()) => {
                    let r = f(ctx);
                    let end = if r.is_ok() {
                        ctx.conn.execute_batch("RELEASE job")
                    } else {
                        ctx.conn.execute_batch("ROLLBACK TO job; RELEASE job")
                    };
                    match (r, end) {
                        (Ok(v), Ok(())) => Ok(v),
                        (Err(e), _) => Err(e),
                        (Ok(_), Err(e)) => Err(e.into()),
                    }
                }
                Err(e) => Err(e.into()),
            };
            if result.is_err() {
                *ctx.next_seq = seq_before;
                *ctx.last_received = recv_before;
                ctx.committed.truncate(committed_before);
                ctx.handed.truncate(handed_before);
            }
            Box::new(move |committed: bool| {
                let _ = tx.send(match result {
                    Ok(_) if !committed => Err(StoreError::Internal("commit failed".into())),
                    other => other,
                });
            })
        });
        self.tx
            .send(job)
            .await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?
    }

    /// Like [`Writer::write`] but without a savepoint, for hot jobs that do
    /// all their checks before their first write (publish). An error after a
    /// write poisons the whole group, which then rolls back and fails every
    /// job in it — correct, and only paid on genuine database errors.
    pub async fn write_unguarded<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Ctx<'_>) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |ctx| {
            let changes_before = ctx.conn.total_changes();
            let result = f(ctx);
            if result.is_err() && ctx.conn.total_changes() != changes_before {
                ctx.poisoned = true;
            }
            Box::new(move |committed: bool| {
                let _ = tx.send(match result {
                    Ok(_) if !committed => Err(StoreError::Internal("commit failed".into())),
                    other => other,
                });
            })
        });
        self.tx
            .send(job)
            .await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?
    }

    pub async fn ping(&self) -> Result<()> {
        self.write(|_| Ok(())).await
    }
}

fn run(
    conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    max_group: usize,
    mut next_seq: u64,
    mut last_received: i64,
    head: Arc<AtomicU64>,
    hooks: Hooks,
) {
    let mut jobs: Vec<Job> = Vec::with_capacity(max_group);
    let mut completions: Vec<Completion> = Vec::with_capacity(max_group);
    let mut committed: Vec<Arc<StoredMessage>> = Vec::new();
    let mut handed: Vec<ClaimedDelivery> = Vec::new();
    let no_skip: HashSet<EndpointId> = HashSet::new();
    let mut endpoint_cache: HashMap<String, Arc<Vec<PublishEndpoint>>> = HashMap::new();
    while let Some(first) = rx.blocking_recv() {
        jobs.push(first);
        while jobs.len() < max_group {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let group_seq = next_seq;
        let (group_jobs, group_started) = (jobs.len(), std::time::Instant::now());
        let handoff = hooks.lease();
        let ok = match conn.execute_batch("BEGIN IMMEDIATE") {
            Ok(()) => {
                let mut ctx = Ctx {
                    conn: &conn,
                    next_seq: &mut next_seq,
                    last_received: &mut last_received,
                    committed: &mut committed,
                    poisoned: false,
                    endpoint_cache: &mut endpoint_cache,
                    lease_until: handoff.as_ref().map(|h| h.until),
                    no_lease: handoff.as_ref().map_or(&no_skip, |h| &h.skip),
                    handed: &mut handed,
                };
                for job in jobs.drain(..) {
                    if ctx.poisoned {
                        // The group will roll back: answer without running.
                        drop(job);
                        continue;
                    }
                    match std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut ctx))) {
                        Ok(c) => completions.push(c),
                        Err(_) => {
                            tracing::error!("a write job panicked; rolling back its group");
                            ctx.poisoned = true;
                        }
                    }
                    // SQLite rolls a transaction back by itself on some errors
                    // (SQLITE_FULL, IOERR, NOMEM); later jobs would then run
                    // in autocommit mode. Detect it and fail the group.
                    if ctx.conn.is_autocommit() {
                        tracing::error!("transaction was rolled back by SQLite; failing the group");
                        ctx.poisoned = true;
                    }
                }
                let poisoned = ctx.poisoned;
                let result = if poisoned {
                    Err(rusqlite::Error::InvalidQuery)
                } else if next_seq != group_seq {
                    conn.execute(
                        "INSERT OR REPLACE INTO meta (k, v) VALUES ('last_seq', ?1)",
                        [(next_seq - 1).to_string()],
                    )
                    .map(|_| ())
                } else {
                    Ok(())
                };
                match result.and_then(|()| conn.execute_batch("COMMIT")) {
                    Ok(()) => true,
                    Err(e) => {
                        if !poisoned {
                            tracing::error!(error = %e, "group commit failed");
                        }
                        if !conn.is_autocommit() {
                            let _ = conn.execute_batch("ROLLBACK");
                        }
                        false
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "BEGIN IMMEDIATE failed");
                // Jobs are answered with a failure without running.
                jobs.clear();
                false
            }
        };
        if ok {
            head.store(next_seq - 1, Ordering::Release);
            hooks.announce(
                handoff.as_ref().map(|h| &h.deliver),
                std::mem::take(&mut handed),
                &committed,
            );
        }
        handed.clear();
        crate::metrics::group_committed(
            "sqlite",
            group_jobs,
            committed.len(),
            group_started.elapsed(),
            ok,
            next_seq - 1,
        );
        if !ok {
            // The caches may hold endpoints or thresholds read inside the
            // rolled-back group.
            endpoint_cache.clear();
            super::attendance::forget_thresholds();
        }
        // On failure the sequence numbers handed out in this group are *not*
        // reused: if a failed COMMIT in fact reached the disk, reusing them
        // would put new messages below cursors readers already hold. Gaps are
        // harmless; reuse is not.
        committed.clear();
        for c in completions.drain(..) {
            c(ok);
        }
    }
    tracing::debug!("sqlite writer stopped");
}

/// Deletes up to `limit` messages received before `before`, oldest first.
pub fn prune(ctx: &mut Ctx<'_>, before: Timestamp, limit: usize) -> Result<u64> {
    // received_at is non-decreasing in seq: the expired messages are a prefix.
    let oldest: Vec<(i64, String, String, i64)> = ctx
        .conn
        .prepare_cached("SELECT seq, org_id, channels, received_at FROM messages ORDER BY seq LIMIT ?1")?
        .query_map(params![limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let full = oldest.len() >= limit;
    let mut expired: Vec<(i64, String, String, i64)> = oldest
        .into_iter()
        .take_while(|v| v.3 < before.as_micros())
        .collect();
    // Messages committed together share one received_at. Never split such a
    // group (a batch) across two prune jobs, so a batch's idempotency record
    // never points at a half-deleted batch.
    if full && let Some(last) = expired.last().map(|v| v.3) {
        let keep = expired.iter().take_while(|v| v.3 < last).count();
        if keep > 0 {
            expired.truncate(keep);
        }
    }
    let victims: Vec<(i64, String, String)> = expired.into_iter().map(|(s, o, c, _)| (s, o, c)).collect();
    let mut del_ch = ctx
        .conn
        .prepare_cached("DELETE FROM message_channels WHERE org_id = ?1 AND channel = ?2 AND seq = ?3")?;
    let mut del_msg = ctx.conn.prepare_cached("DELETE FROM messages WHERE seq = ?1")?;
    let mut max_seq = None;
    for (seq, org, channels) in &victims {
        for c in channels.split(' ').filter(|c| !c.is_empty()) {
            del_ch.execute(params![org, c, seq])?;
        }
        del_msg.execute([seq])?;
        max_seq = Some(*seq);
    }
    if let Some(s) = max_seq {
        ctx.conn.execute(
            "INSERT OR REPLACE INTO meta (k, v) VALUES ('pruned_through', ?1)",
            [s.to_string()],
        )?;
        // Deliveries of pruned messages can never be attempted again (their
        // body is gone): they leave with the message. Per endpoint, so the
        // (endpoint_id, seq) index serves the delete.
        ctx.conn
            .prepare_cached(
                "DELETE FROM deliveries WHERE endpoint_id IN (SELECT id FROM endpoints) AND seq <= ?1",
            )?
            .execute([s])?;
    }
    super::rules::prune(ctx.conn, max_seq, limit)?;
    // Per-minute attempt counts are only read for the last hour.
    ctx.conn
        .prepare_cached("DELETE FROM endpoint_minutes WHERE minute < ?1")?
        .execute([crate::webhooks::minutes_kept_from(Timestamp::now())])?;
    // The attempt log follows the same retention. Attempt ids are
    // time-ordered, so the cutoff is a primary-key range; bounded per job.
    let boundary = AttemptId::lower_bound_at(before.as_millis().max(0) as u64);
    ctx.conn
        .prepare_cached(
            "DELETE FROM attempts WHERE id IN (SELECT id FROM attempts WHERE id < ?1 ORDER BY id LIMIT ?2)",
        )?
        .execute(params![boundary.as_str(), limit as i64])?;
    let cutoff = Timestamp::now().as_micros() - IDEMPOTENCY_TTL_MICROS;
    // Bounded, like the message deletes, so one prune job stays short.
    ctx.conn.execute(
        "DELETE FROM idempotency WHERE (org_id, key) IN \
         (SELECT org_id, key FROM idempotency WHERE created_at < ?1 LIMIT ?2)",
        params![cutoff, limit as i64],
    )?;
    Ok(victims.len() as u64)
}
