//! The embedded SQLite backend.
//!
//! One dedicated writer thread owns the only write connection. Every write is
//! a job sent to it; the thread drains whatever jobs are queued, runs them in
//! one `BEGIN IMMEDIATE` transaction (each job inside its own savepoint, so one
//! failing job does not abort its neighbours), commits once — one fsync for
//! the whole group — and only then answers the waiting callers. This is group
//! commit: durability costs one fsync per group, not per message. Because one
//! thread assigns `seq` and commits, commit order and `seq` order are the same.
//!
//! Reads use a small pool of read-only connections (WAL lets them run beside
//! the writer). Point lookups run inline on the async task — they take a few
//! microseconds on a warm page cache — and scans run on the blocking pool.

mod attendance;
mod coalesce;
mod endpoints;
mod erasure;
mod eventory;
mod key_cache;
mod log;
mod reader;
mod rows;
mod rules;
mod webhooks;
mod writer;

use std::path::Path;

use async_trait::async_trait;
use marquee_core::ids::{KeyId, MessageId, OrgId};
use marquee_core::message::StoredMessage;
use marquee_core::timestamp::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use crate::{
    ApiKeyRecord, CommitListener, EventTypeRecord, KeyCandidate, MessagePage, MessageQuery, NewApiKey, Org,
    PublishOutcome, PublishRequest, Result, Store, StoreError,
};
use reader::ReaderPool;
use writer::Writer;

const SCHEMA: &str = include_str!("schema.sql");
/// Version 2: webhook endpoints, deliveries and attempts.
const SCHEMA_V2: &str = include_str!("schema_v2.sql");
/// Version 3: per-endpoint delivery counters (filled from existing rows).
const SCHEMA_V3: &str = include_str!("schema_v3.sql");
/// Version 4: organization profiles, event types, per-key stream limits.
const SCHEMA_V4: &str = include_str!("schema_v4.sql");
/// Version 5 (issue 11–12 read models and rules): dedup keys, projected
/// entities, coalescing's pending rows, attendance, erasures, Eventory
/// snapshots, watchlists and cooldowns.
const SCHEMA_V5: &str = include_str!("schema_v5.sql");
const SCHEMA_V6: &str = include_str!("schema_v6.sql");
const SCHEMA_VERSION: i64 = 6;
pub const DB_FILE: &str = "marquee.db";

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Internal(e.to_string())
    }
}

/// Tuning for the SQLite backend.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Read connections for inline lookups, and as many again for scans.
    pub readers: usize,
    /// Most jobs committed in one group.
    pub max_group: usize,
    /// `synchronous=FULL` (fsync every commit). Turning it off keeps data
    /// safe across a process crash but not across power loss.
    pub fsync: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            readers: 3,
            max_group: 2048,
            fsync: true,
        }
    }
}

pub struct SqliteStore {
    writer: Writer,
    readers: ReaderPool,
    keys: key_cache::KeyCache,
    /// The checkpoint thread: runs while the store lives (it stops when this
    /// sender is dropped) and takes `TRUNCATE` requests from `close`.
    checkpointer: std::sync::Mutex<std::sync::mpsc::Sender<TruncateRequest>>,
    hooks: crate::hooks::Hooks,
}

fn open_conn(path: &Path, fsync: bool) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", if fsync { "FULL" } else { "NORMAL" })?;
    conn.pragma_update(None, "cache_size", -32_000)?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database in `data_dir` and migrates it.
    pub fn open(data_dir: &Path, opts: SqliteOptions) -> Result<Self> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Internal(format!("creating {}: {e}", data_dir.display())))?;
        let path = data_dir.join(DB_FILE);
        let conn = open_conn(&path, opts.fsync)?;
        migrate(&conn)?;
        // Checkpoints (copying the WAL back into the database file, with its
        // own fsync) run on a separate thread so the writer only appends; the
        // writer still checkpoints itself if the WAL grows past ~40 MB.
        conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
        let checkpointer = spawn_checkpointer(&path, opts.fsync)?;
        let hooks = crate::hooks::Hooks::default();
        let writer = Writer::start(conn, opts.max_group, hooks.clone())?;
        let readers = ReaderPool::open(&path, opts.readers.max(1))?;
        let keys = key_cache::KeyCache::new(data_dir);
        keys.bump();
        Ok(SqliteStore {
            writer,
            readers,
            keys,
            checkpointer: std::sync::Mutex::new(checkpointer),
            hooks,
        })
    }
}

/// A request to checkpoint and truncate the WAL, answered when done.
type TruncateRequest = std::sync::mpsc::Sender<Result<()>>;

/// How often the checkpoint thread copies the WAL back (passively).
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Starts the checkpoint thread; it stops once the returned sender is
/// dropped. It is the only checkpointer besides the writer's own automatic
/// one, so a `TRUNCATE` asked of it never races a passive checkpoint.
fn spawn_checkpointer(path: &Path, fsync: bool) -> Result<std::sync::mpsc::Sender<TruncateRequest>> {
    use std::sync::mpsc::RecvTimeoutError;
    let conn = open_conn(path, fsync)?;
    let (tx, rx) = std::sync::mpsc::channel::<TruncateRequest>();
    std::thread::Builder::new()
        .name("marquee-sqlite-checkpoint".into())
        .spawn(move || {
            loop {
                match rx.recv_timeout(CHECKPOINT_EVERY) {
                    Ok(reply) => {
                        let _ = reply.send(checkpoint_truncate(&conn));
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                            tracing::warn!(error = %e, "background checkpoint failed");
                            std::thread::sleep(std::time::Duration::from_secs(5));
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        })
        .map_err(|e| StoreError::Internal(format!("spawning checkpointer: {e}")))?;
    Ok(tx)
}

/// Copies the whole WAL into the database and truncates it to zero bytes.
/// SQLite waits (the busy timeout) for a write in progress; a checkpoint
/// that still could not finish (a reader on an old snapshot, the writer's
/// own automatic checkpoint) is retried for a few seconds.
fn checkpoint_truncate(conn: &Connection) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (busy, frames, copied): (i64, i64, i64) =
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
        if busy == 0 {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(StoreError::Unavailable(format!(
                "the WAL checkpoint stayed blocked ({copied} of {frames} frames copied)"
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn migrate(conn: &Connection) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Internal(format!(
            "database schema version {version} is newer than this marquee ({SCHEMA_VERSION})"
        )));
    }
    if version < SCHEMA_VERSION {
        let v1 = if version < 1 { SCHEMA } else { "" };
        let v2 = if version < 2 { SCHEMA_V2 } else { "" };
        let v3 = if version < 3 { SCHEMA_V3 } else { "" };
        // v4 adds columns: ALTER TABLE is not idempotent, so it runs only
        // on a database below version 4 (the whole upgrade is one
        // transaction, so it never half-applies).
        let v4 = if version < 4 { SCHEMA_V4 } else { "" };
        let v5 = if version < 5 { SCHEMA_V5 } else { "" };
        let v6 = if version < 6 { SCHEMA_V6 } else { "" };
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {v1} {v2} {v3} {v4} {v5} {v6} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        ))?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn eventory_watch_create(
        &self,
        w: crate::eventory::WatchRecord,
        max: usize,
    ) -> Result<Option<crate::eventory::WatchRecord>> {
        self.ev_watch_create(w, max).await
    }
    async fn eventory_watch_list(&self, key: &KeyId) -> Result<Vec<crate::eventory::WatchRecord>> {
        self.ev_watch_list(key).await
    }
    async fn eventory_watch_get(
        &self,
        key: &KeyId,
        id: &str,
    ) -> Result<Option<crate::eventory::WatchRecord>> {
        self.ev_watch_get(key, id).await
    }
    async fn eventory_watch_update(
        &self,
        key: &KeyId,
        id: &str,
        entry: &str,
    ) -> Result<Option<crate::eventory::WatchRecord>> {
        self.ev_watch_update(key, id, entry).await
    }
    async fn eventory_watch_delete(&self, key: &KeyId, id: &str) -> Result<bool> {
        self.ev_watch_delete(key, id).await
    }
    async fn eventory_cooldown_claim(
        &self,
        key: &KeyId,
        content: [u8; 32],
        now: i64,
        window: i64,
    ) -> Result<bool> {
        self.ev_cooldown_claim(key, content, now, window).await
    }
    async fn eventory_cooldown_prune(&self, before: i64) -> Result<u64> {
        self.ev_cooldown_prune(before).await
    }

    async fn close(&self) -> Result<()> {
        let (reply, answer) = std::sync::mpsc::channel();
        let sent = self
            .checkpointer
            .lock()
            .map_err(|_| StoreError::Internal("checkpointer lock poisoned".into()))?
            .send(reply);
        if sent.is_err() {
            return Err(StoreError::Unavailable("the checkpoint thread is gone".into()));
        }
        tokio::task::spawn_blocking(move || answer.recv())
            .await
            .map_err(|e| StoreError::Internal(e.to_string()))?
            .map_err(|_| StoreError::Unavailable("the checkpoint thread is gone".into()))?
    }

    async fn ping(&self) -> Result<()> {
        self.readers
            .with(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(Into::into))?;
        self.writer.ping().await
    }

    async fn create_org(&self, name: &str, profiles: &[String]) -> Result<Org> {
        let org = Org {
            id: OrgId::generate(),
            name: name.to_owned(),
            profiles: crate::normalize_profiles(profiles),
            created_at: Timestamp::now(),
        };
        let o = org.clone();
        self.writer
            .write(move |ctx| {
                ctx.conn.execute(
                    "INSERT INTO orgs (id, name, created_at, profiles) VALUES (?1, ?2, ?3, ?4)",
                    params![
                        o.id.as_str(),
                        o.name,
                        o.created_at.as_micros(),
                        rows::profiles_text(&o.profiles)
                    ],
                )?;
                Ok(())
            })
            .await?;
        Ok(org)
    }

    async fn get_org(&self, id: &OrgId) -> Result<Option<Org>> {
        let id = id.as_str().to_owned();
        self.readers.with(move |c| {
            c.prepare_cached(&format!("SELECT {} FROM orgs WHERE id = ?1", rows::ORG_COLUMNS))?
                .query_row([id], rows::org)
                .optional()
                .map_err(Into::into)
        })
    }

    async fn list_orgs(&self) -> Result<Vec<Org>> {
        self.readers.with(|c| {
            let mut st = c.prepare_cached(&format!("SELECT {} FROM orgs ORDER BY id", rows::ORG_COLUMNS))?;
            let v = st
                .query_map([], rows::org)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    async fn set_org_profiles(&self, id: &OrgId, profiles: &[String]) -> Result<Org> {
        let id = id.as_str().to_owned();
        let text = rows::profiles_text(&crate::normalize_profiles(profiles));
        self.writer
            .write(move |ctx| {
                ctx.conn
                    .query_row(
                        &format!(
                            "UPDATE orgs SET profiles = ?2 WHERE id = ?1 RETURNING {}",
                            rows::ORG_COLUMNS
                        ),
                        params![id, text],
                        rows::org,
                    )
                    .optional()?
                    .ok_or(StoreError::NotFound)
            })
            .await
    }

    async fn put_event_type(
        &self,
        org: &OrgId,
        name: &str,
        description: &str,
        schema: &str,
        rules: Option<&str>,
    ) -> Result<(EventTypeRecord, bool)> {
        let (org, name, description, schema, rules) = (
            org.as_str().to_owned(),
            name.to_owned(),
            description.to_owned(),
            schema.to_owned(),
            rules.map(str::to_owned),
        );
        self.writer
            .write(move |ctx| {
                let exists: Option<i64> = ctx
                    .conn
                    .query_row("SELECT 1 FROM orgs WHERE id = ?1", [&org], |r| r.get(0))
                    .optional()?;
                if exists.is_none() {
                    return Err(StoreError::NotFound);
                }
                let now = Timestamp::now().as_micros();
                let created_at: Option<i64> = ctx
                    .conn
                    .query_row(
                        "SELECT created_at FROM event_types WHERE org_id = ?1 AND name = ?2",
                        params![org, name],
                        |r| r.get(0),
                    )
                    .optional()?;
                match created_at {
                    Some(_) => {
                        ctx.conn.execute(
                            "UPDATE event_types SET description = ?3, schema = ?4, updated_at = ?5, rules = ?6
                             WHERE org_id = ?1 AND name = ?2",
                            params![org, name, description, schema, now, rules],
                        )?;
                    }
                    None => {
                        ctx.conn.execute(
                            "INSERT INTO event_types (org_id, name, description, schema, created_at, updated_at, rules)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
                            params![org, name, description, schema, now, rules],
                        )?;
                    }
                }
                let record = EventTypeRecord {
                    created_at: Timestamp::from_micros(created_at.unwrap_or(now)),
                    updated_at: Timestamp::from_micros(now),
                    name,
                    description,
                    schema,
                    rules,
                };
                Ok((record, created_at.is_none()))
            })
            .await
    }

    async fn get_event_type(&self, org: &OrgId, name: &str) -> Result<Option<EventTypeRecord>> {
        let (org, name) = (org.as_str().to_owned(), name.to_owned());
        self.readers.with(move |c| {
            c.prepare_cached(&format!(
                "SELECT {} FROM event_types WHERE org_id = ?1 AND name = ?2",
                rows::EVENT_TYPE_COLUMNS
            ))?
            .query_row([org, name], rows::event_type)
            .optional()
            .map_err(Into::into)
        })
    }

    async fn list_event_types(&self, org: &OrgId) -> Result<Vec<EventTypeRecord>> {
        let org = org.as_str().to_owned();
        self.readers.with(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {} FROM event_types WHERE org_id = ?1 ORDER BY name",
                rows::EVENT_TYPE_COLUMNS
            ))?;
            let v = st
                .query_map([org], rows::event_type)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    async fn delete_event_type(&self, org: &OrgId, name: &str) -> Result<bool> {
        let (org, name) = (org.as_str().to_owned(), name.to_owned());
        self.writer
            .write(move |ctx| {
                let n = ctx.conn.execute(
                    "DELETE FROM event_types WHERE org_id = ?1 AND name = ?2",
                    params![org, name],
                )?;
                Ok(n > 0)
            })
            .await
    }

    async fn create_key(&self, key: NewApiKey) -> Result<ApiKeyRecord> {
        let record = ApiKeyRecord {
            id: key.id.clone(),
            org_id: key.org_id.clone(),
            tier: key.tier,
            name: key.name.clone(),
            public_prefix: key.public_prefix.clone(),
            created_at: Timestamp::now(),
            revoked_at: None,
            max_stream_connections: key.max_stream_connections,
        };
        let r = record.clone();
        self.writer
            .write(move |ctx| {
                let exists: Option<i64> = ctx
                    .conn
                    .query_row("SELECT 1 FROM orgs WHERE id = ?1", [r.org_id.as_str()], |row| {
                        row.get(0)
                    })
                    .optional()?;
                if exists.is_none() {
                    return Err(StoreError::NotFound);
                }
                ctx.conn.execute(
                    "INSERT INTO api_keys (id, org_id, tier, name, public_prefix, digest, created_at, max_stream_connections)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        r.id.as_str(),
                        r.org_id.as_str(),
                        r.tier.as_str(),
                        r.name,
                        r.public_prefix,
                        &key.digest.0[..],
                        r.created_at.as_micros(),
                        r.max_stream_connections.map(i64::from)
                    ],
                )?;
                Ok(())
            })
            .await?;
        self.keys.bump();
        Ok(record)
    }

    async fn list_keys(&self, org: &OrgId) -> Result<Vec<ApiKeyRecord>> {
        let org = org.as_str().to_owned();
        self.readers.with(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {} FROM api_keys WHERE org_id = ?1 ORDER BY created_at, id",
                rows::KEY_COLUMNS
            ))?;
            let v = st
                .query_map([org], rows::key)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    async fn get_key(&self, id: &KeyId) -> Result<Option<ApiKeyRecord>> {
        let id = id.as_str().to_owned();
        self.readers.with(move |c| {
            c.prepare_cached(&format!(
                "SELECT {} FROM api_keys WHERE id = ?1",
                rows::KEY_COLUMNS
            ))?
            .query_row([id], rows::key)
            .optional()
            .map_err(Into::into)
        })
    }

    async fn revoke_key(&self, id: &KeyId) -> Result<ApiKeyRecord> {
        let id_s = id.as_str().to_owned();
        let record = self
            .writer
            .write(move |ctx| {
                ctx.conn.execute(
                    "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                    params![id_s, Timestamp::now().as_micros()],
                )?;
                ctx.conn
                    .query_row(
                        &format!("SELECT {} FROM api_keys WHERE id = ?1", rows::KEY_COLUMNS),
                        [&id_s],
                        rows::key,
                    )
                    .optional()?
                    .ok_or(StoreError::NotFound)
            })
            .await;
        self.keys.bump();
        record
    }

    async fn set_key_stream_limit(&self, id: &KeyId, limit: Option<u32>) -> Result<ApiKeyRecord> {
        let id_s = id.as_str().to_owned();
        let record = self
            .writer
            .write(move |ctx| {
                ctx.conn
                    .query_row(
                        &format!(
                            "UPDATE api_keys SET max_stream_connections = ?2 WHERE id = ?1 RETURNING {}",
                            rows::KEY_COLUMNS
                        ),
                        params![id_s, limit.map(i64::from)],
                        rows::key,
                    )
                    .optional()?
                    .ok_or(StoreError::NotFound)
            })
            .await;
        // Every process's key cache (this server's, when the CLI made the
        // change) drops its rows: the next lookup reads the new limit.
        self.keys.bump();
        record
    }

    async fn keys_by_prefix(&self, prefix: &str) -> Result<Vec<KeyCandidate>> {
        let token = match self.keys.get(prefix) {
            Ok(hit) => return Ok(hit),
            Err(token) => token,
        };
        let rows = self.readers.with(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {}, digest FROM api_keys WHERE public_prefix = ?1",
                rows::KEY_COLUMNS
            ))?;
            let v = st
                .query_map([prefix], |row| {
                    Ok(KeyCandidate {
                        record: rows::key(row)?,
                        digest: row.get(8)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })?;
        self.keys.put(prefix, rows.clone(), token);
        Ok(rows)
    }

    async fn publish(&self, req: PublishRequest) -> Result<PublishOutcome> {
        self.writer
            .write_unguarded(move |ctx| log::publish(ctx, req))
            .await
    }

    async fn flush_coalesced(&self, now: Timestamp) -> Result<crate::coalesce::FlushReport> {
        self.writer.write(move |ctx| coalesce::flush(ctx, now)).await
    }

    async fn get_message(&self, org: &OrgId, id: &MessageId) -> Result<Option<StoredMessage>> {
        let (org, id) = (org.as_str().to_owned(), id.as_str().to_owned());
        self.readers.with(move |c| {
            c.prepare_cached(&format!(
                "SELECT {} FROM messages WHERE id = ?1 AND org_id = ?2",
                rows::MESSAGE_COLUMNS
            ))?
            .query_row([id, org], rows::message)
            .optional()
            .map_err(Into::into)
        })
    }

    async fn list_messages(&self, org: &OrgId, query: &MessageQuery) -> Result<MessagePage> {
        let org = org.as_str().to_owned();
        let query = query.clone();
        self.readers
            .with_blocking(move |c| reader::list_messages(c, &org, &query))
            .await
    }

    async fn get_entity(&self, org: &OrgId, kind: &str, id: &str) -> Result<Option<crate::rules::Entity>> {
        let (org, kind, id) = (org.as_str().to_owned(), kind.to_owned(), id.to_owned());
        self.readers.with(move |c| rules::get_entity(c, &org, &kind, &id))
    }

    async fn list_entities(
        &self,
        org: &OrgId,
        query: &crate::rules::EntityQuery,
    ) -> Result<crate::rules::EntityPage> {
        let (org, query) = (org.as_str().to_owned(), query.clone());
        self.readers
            .with_blocking(move |c| rules::list_entities(c, &org, &query))
            .await
    }

    async fn head_seq(&self) -> Result<u64> {
        Ok(self.writer.head_seq())
    }

    async fn retained_from_seq(&self) -> Result<u64> {
        self.readers.with(|c| {
            let v: Option<String> = c
                .query_row("SELECT v FROM meta WHERE k = 'pruned_through'", [], |r| r.get(0))
                .optional()?;
            Ok(v.and_then(|s| s.parse::<u64>().ok()).map(|s| s + 1).unwrap_or(0))
        })
    }

    async fn prune(&self, before: Timestamp, limit: usize) -> Result<u64> {
        self.writer
            .write(move |ctx| writer::prune(ctx, before, limit))
            .await
    }

    fn add_commit_listener(&self, listener: CommitListener) {
        self.hooks.add_listener(listener);
    }

    // ---- Erasure (issue 11): `erasure.rs` ----

    async fn create_erasure(
        &self,
        org: &OrgId,
        channel: &str,
        within: Option<&str>,
    ) -> Result<crate::erasure::ErasureRecord> {
        erasure::create(&self.writer, &self.readers, org, channel, within).await
    }

    async fn get_erasure(
        &self,
        org: &OrgId,
        id: &marquee_core::ids::ErasureId,
    ) -> Result<Option<crate::erasure::ErasureRecord>> {
        erasure::get(&self.readers, org, id)
    }

    async fn list_erasures(
        &self,
        org: &OrgId,
        before: Option<&marquee_core::ids::ErasureId>,
        limit: usize,
    ) -> Result<(Vec<crate::erasure::ErasureRecord>, bool)> {
        erasure::list(&self.readers, org, before, limit)
    }

    async fn claim_erasure(
        &self,
        token: &str,
        lease_micros: i64,
    ) -> Result<Option<crate::erasure::ErasureRecord>> {
        erasure::claim(&self.writer, token, lease_micros).await
    }

    async fn erase_step(
        &self,
        id: &marquee_core::ids::ErasureId,
        token: &str,
        lease_micros: i64,
        limit: usize,
    ) -> Result<Option<crate::erasure::ErasureStep>> {
        erasure::step(&self.writer, id, token, lease_micros, limit).await
    }

    async fn recently_erased(&self, since: Timestamp) -> Result<Vec<(u64, Timestamp)>> {
        erasure::recently_erased(&self.readers, since).await
    }
}
