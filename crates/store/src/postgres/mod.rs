//! The PostgreSQL backend, for several marquee nodes sharing one database.
//!
//! Publishing goes through one group-commit task per node ([`writer`]) that
//! serializes commits cluster-wide with an advisory lock, which is what makes
//! seq order equal commit order across nodes (see `writer.rs`). Everything
//! else uses a connection pool. Migrations run under an advisory lock, so
//! several nodes starting at once migrate exactly once. Every object lives in
//! the connection's `search_path` schema, which is how tests isolate
//! themselves (`PgStore::connect(url, Some(schema))`).

mod attendance;
mod coalesce;
mod erasure;
mod eventory;
mod log;
mod rows;
mod rules;
mod webhooks;
mod writer;

use std::str::FromStr;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use marquee_core::ids::{KeyId, MessageId, OrgId};
use marquee_core::message::StoredMessage;
use marquee_core::timestamp::Timestamp;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

use crate::{
    ApiKeyRecord, CommitListener, EventTypeRecord, KeyCandidate, MessagePage, MessageQuery, NewApiKey, Org,
    PublishOutcome, PublishRequest, Result, Store, StoreError,
};

const SCHEMA_V1: &str = include_str!("schema.sql");
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
const SCHEMA_VERSION: i32 = 6;

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            // character_not_in_repertoire (NUL in text), untranslatable_character (`\u0000` in jsonb).
            Some(db) if matches!(db.code().code(), "22021" | "22P05") => StoreError::Invalid(
                "A value contains NUL (U+0000), which the PostgreSQL store cannot hold.".into(),
            ),
            Some(db) => StoreError::Internal(format!("postgres: {} ({})", db.message(), db.code().code())),
            None => StoreError::Internal(format!("postgres: {e}")),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Unavailable(format!("postgres pool: {e}"))
    }
}

pub struct PgStore {
    pool: Pool,
    publisher: mpsc::Sender<writer::Job>,
    hooks: crate::hooks::Hooks,
}

/// A schema name a test may create (letters, digits, underscore).
fn valid_schema(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl PgStore {
    /// Connects, creates `schema` if given (and uses it), and migrates.
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<Self> {
        let mut cfg = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Internal(format!("bad database URL: {e}")))?;
        if let Some(s) = schema {
            if !valid_schema(s) {
                return Err(StoreError::Internal(format!("bad schema name {s:?}")));
            }
            let (client, conn) = cfg.connect(NoTls).await?;
            let task = tokio::spawn(conn);
            // Concurrent `CREATE SCHEMA IF NOT EXISTS` can still collide in
            // PostgreSQL: nodes starting together take turns.
            client
                .batch_execute(&format!(
                    "BEGIN; SELECT pg_advisory_xact_lock(hashtext('marquee-create-schema')); \
                     CREATE SCHEMA IF NOT EXISTS {s}; COMMIT;"
                ))
                .await?;
            drop(client);
            let _ = task.await;
            cfg.options(format!("-c search_path={s}"));
        }
        let mgr = Manager::from_config(
            cfg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(16)
            .build()
            .map_err(|e| StoreError::Internal(format!("building pool: {e}")))?;
        migrate(&pool).await?;
        let hooks = crate::hooks::Hooks::default();
        let publisher = writer::start(pool.clone(), hooks.clone());
        Ok(PgStore {
            pool,
            publisher,
            hooks,
        })
    }

    /// Reads a cluster-wide setting from `meta`.
    pub async fn meta_get(&self, k: &str) -> Result<Option<String>> {
        let c = self.pool.get().await?;
        Ok(c.query_opt("SELECT v FROM meta WHERE k = $1", &[&k])
            .await?
            .map(|r| r.get(0)))
    }

    /// Sets `k` to `v` unless it is already set; returns the value in force.
    pub async fn meta_init(&self, k: &str, v: &str) -> Result<String> {
        let c = self.pool.get().await?;
        c.execute(
            "INSERT INTO meta (k, v) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING",
            &[&k, &v],
        )
        .await?;
        let r = c.query_one("SELECT v FROM meta WHERE k = $1", &[&k]).await?;
        Ok(r.get(0))
    }
}

async fn migrate(pool: &Pool) -> Result<()> {
    let mut c = pool.get().await?;
    let tx = c.transaction().await?;
    // Serializes nodes that start together; the lock ends with the transaction.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '/marquee-migrate'))",
        &[],
    )
    .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INT NOT NULL)")
        .await?;
    let v: Option<i32> = tx
        .query_opt("SELECT version FROM schema_version", &[])
        .await?
        .map(|r| r.get(0));
    let v = v.unwrap_or(0);
    if v > SCHEMA_VERSION {
        return Err(StoreError::Internal(format!(
            "database schema version {v} is newer than this marquee ({SCHEMA_VERSION})"
        )));
    }
    if v < 1 {
        tx.batch_execute(SCHEMA_V1).await?;
    }
    if v < 2 {
        tx.batch_execute(SCHEMA_V2).await?;
    }
    if v < 3 {
        tx.batch_execute(SCHEMA_V3).await?;
    }
    if v < 4 {
        tx.batch_execute(SCHEMA_V4).await?;
    }
    if v < 5 {
        tx.batch_execute(SCHEMA_V5).await?;
    }
    if v < 6 {
        tx.batch_execute(SCHEMA_V6).await?;
    }
    if v == 0 {
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&SCHEMA_VERSION],
        )
        .await?;
    } else if v < SCHEMA_VERSION {
        tx.execute("UPDATE schema_version SET version = $1", &[&SCHEMA_VERSION])
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[async_trait]
impl Store for PgStore {
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

    async fn ping(&self) -> Result<()> {
        let c = self.pool.get().await?;
        c.query_one("SELECT 1", &[]).await?;
        Ok(())
    }

    async fn create_org(&self, name: &str, profiles: &[String]) -> Result<Org> {
        let org = Org {
            id: OrgId::generate(),
            name: name.to_owned(),
            profiles: crate::normalize_profiles(profiles),
            created_at: Timestamp::now(),
        };
        let c = self.pool.get().await?;
        c.execute(
            "INSERT INTO orgs (id, name, created_at, profiles) VALUES ($1, $2, $3, $4)",
            &[
                &org.id.as_str(),
                &org.name,
                &org.created_at.as_micros(),
                &org.profiles,
            ],
        )
        .await?;
        Ok(org)
    }

    async fn get_org(&self, id: &OrgId) -> Result<Option<Org>> {
        let c = self.pool.get().await?;
        c.query_opt(
            &format!("SELECT {} FROM orgs WHERE id = $1", rows::ORG_COLUMNS),
            &[&id.as_str()],
        )
        .await?
        .map(|r| rows::org(&r))
        .transpose()
    }

    async fn list_orgs(&self) -> Result<Vec<Org>> {
        let c = self.pool.get().await?;
        c.query(
            &format!("SELECT {} FROM orgs ORDER BY id", rows::ORG_COLUMNS),
            &[],
        )
        .await?
        .iter()
        .map(rows::org)
        .collect()
    }

    async fn set_org_profiles(&self, id: &OrgId, profiles: &[String]) -> Result<Org> {
        let profiles = crate::normalize_profiles(profiles);
        let c = self.pool.get().await?;
        c.query_opt(
            &format!(
                "UPDATE orgs SET profiles = $2 WHERE id = $1 RETURNING {}",
                rows::ORG_COLUMNS
            ),
            &[&id.as_str(), &profiles],
        )
        .await?
        .map(|r| rows::org(&r))
        .transpose()?
        .ok_or(StoreError::NotFound)
    }

    async fn put_event_type(
        &self,
        org: &OrgId,
        name: &str,
        description: &str,
        schema: &str,
        rules: Option<&str>,
    ) -> Result<(EventTypeRecord, bool)> {
        let c = self.pool.get().await?;
        let now = Timestamp::now().as_micros();
        // `xmax = 0` holds for a row this statement inserted (an updated
        // row carries the updating transaction's id).
        let row = c
            .query_opt(
                &format!(
                    "INSERT INTO event_types (org_id, name, description, schema, created_at, updated_at, rules)
                     SELECT $1, $2, $3, $4, $5, $5, $6 WHERE EXISTS (SELECT 1 FROM orgs WHERE id = $1)
                     ON CONFLICT (org_id, name) DO UPDATE
                       SET description = EXCLUDED.description, schema = EXCLUDED.schema,
                           rules = EXCLUDED.rules,
                           updated_at = GREATEST(EXCLUDED.updated_at, event_types.updated_at)
                     RETURNING {}, (xmax = 0) AS created",
                    rows::EVENT_TYPE_COLUMNS
                ),
                &[&org.as_str(), &name, &description, &schema, &now, &rules],
            )
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok((rows::event_type(&row)?, row.try_get(6)?))
    }

    async fn get_event_type(&self, org: &OrgId, name: &str) -> Result<Option<EventTypeRecord>> {
        let c = self.pool.get().await?;
        c.query_opt(
            &format!(
                "SELECT {} FROM event_types WHERE org_id = $1 AND name = $2",
                rows::EVENT_TYPE_COLUMNS
            ),
            &[&org.as_str(), &name],
        )
        .await?
        .map(|r| rows::event_type(&r))
        .transpose()
    }

    async fn list_event_types(&self, org: &OrgId) -> Result<Vec<EventTypeRecord>> {
        let c = self.pool.get().await?;
        c.query(
            &format!(
                "SELECT {} FROM event_types WHERE org_id = $1 ORDER BY name",
                rows::EVENT_TYPE_COLUMNS
            ),
            &[&org.as_str()],
        )
        .await?
        .iter()
        .map(rows::event_type)
        .collect()
    }

    async fn delete_event_type(&self, org: &OrgId, name: &str) -> Result<bool> {
        let c = self.pool.get().await?;
        let n = c
            .execute(
                "DELETE FROM event_types WHERE org_id = $1 AND name = $2",
                &[&org.as_str(), &name],
            )
            .await?;
        Ok(n > 0)
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
        let c = self.pool.get().await?;
        let n = c
            .execute(
                "INSERT INTO api_keys (id, org_id, tier, name, public_prefix, digest, created_at, max_stream_connections)
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE EXISTS (SELECT 1 FROM orgs WHERE id = $2)",
                &[
                    &record.id.as_str(),
                    &record.org_id.as_str(),
                    &record.tier.as_str(),
                    &record.name,
                    &record.public_prefix,
                    &&key.digest.0[..],
                    &record.created_at.as_micros(),
                    &record.max_stream_connections.map(i64::from),
                ],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(record)
    }

    async fn list_keys(&self, org: &OrgId) -> Result<Vec<ApiKeyRecord>> {
        let c = self.pool.get().await?;
        c.query(
            &format!(
                "SELECT {} FROM api_keys WHERE org_id = $1 ORDER BY created_at, id",
                rows::KEY_COLUMNS
            ),
            &[&org.as_str()],
        )
        .await?
        .iter()
        .map(rows::key)
        .collect()
    }

    async fn get_key(&self, id: &KeyId) -> Result<Option<ApiKeyRecord>> {
        let c = self.pool.get().await?;
        c.query_opt(
            &format!("SELECT {} FROM api_keys WHERE id = $1", rows::KEY_COLUMNS),
            &[&id.as_str()],
        )
        .await?
        .map(|r| rows::key(&r))
        .transpose()
    }

    async fn revoke_key(&self, id: &KeyId) -> Result<ApiKeyRecord> {
        let c = self.pool.get().await?;
        c.execute(
            "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            &[&id.as_str(), &Timestamp::now().as_micros()],
        )
        .await?;
        drop(c);
        self.get_key(id).await?.ok_or(StoreError::NotFound)
    }

    async fn set_key_stream_limit(&self, id: &KeyId, limit: Option<u32>) -> Result<ApiKeyRecord> {
        // No key cache on PostgreSQL: every node reads the new limit on the
        // key's next request.
        let c = self.pool.get().await?;
        c.query_opt(
            &format!(
                "UPDATE api_keys SET max_stream_connections = $2 WHERE id = $1 RETURNING {}",
                rows::KEY_COLUMNS
            ),
            &[&id.as_str(), &limit.map(i64::from)],
        )
        .await?
        .map(|r| rows::key(&r))
        .transpose()?
        .ok_or(StoreError::NotFound)
    }

    async fn keys_by_prefix(&self, prefix: &str) -> Result<Vec<KeyCandidate>> {
        // No cache: a revocation through any node is refused by every node on
        // the next request, because every request reads the shared row.
        let c = self.pool.get().await?;
        c.query(
            &format!(
                "SELECT {}, digest FROM api_keys WHERE public_prefix = $1",
                rows::KEY_COLUMNS
            ),
            &[&prefix],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(KeyCandidate {
                record: rows::key(r)?,
                digest: r.try_get(8)?,
            })
        })
        .collect()
    }

    async fn publish(&self, req: PublishRequest) -> Result<PublishOutcome> {
        let (reply, rx) = oneshot::channel();
        self.publisher
            .send(writer::Job { req, reply })
            .await
            .map_err(|_| StoreError::Unavailable("publisher stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("publisher stopped".into()))?
    }

    async fn flush_coalesced(&self, now: Timestamp) -> Result<crate::coalesce::FlushReport> {
        coalesce::flush(&self.pool, &self.hooks, now).await
    }

    async fn get_message(&self, org: &OrgId, id: &MessageId) -> Result<Option<StoredMessage>> {
        let c = self.pool.get().await?;
        c.query_opt(
            &format!(
                "SELECT {} FROM messages WHERE id = $1 AND org_id = $2",
                rows::MESSAGE_COLUMNS
            ),
            &[&id.as_str(), &org.as_str()],
        )
        .await?
        .map(|r| rows::message(&r))
        .transpose()
    }

    async fn list_messages(&self, org: &OrgId, q: &MessageQuery) -> Result<MessagePage> {
        let empty = || MessagePage {
            messages: vec![],
            has_more: false,
            scanned_to: None,
        };
        let c = self.pool.get().await?;
        let mut lower = q.after_seq.unwrap_or(0).min(i64::MAX as u64) as i64;
        let upper = q.before_seq.map_or(i64::MAX, |s| s.min(i64::MAX as u64) as i64);
        if let Some(since) = q.since {
            let first: Option<i64> = c
                .query_one(
                    "SELECT MIN(seq) FROM messages WHERE received_at >= $1",
                    &[&since.as_micros()],
                )
                .await?
                .get(0);
            match first {
                Some(s) => lower = lower.max(s - 1),
                None => return Ok(empty()),
            }
        }
        if upper <= lower.saturating_add(1) {
            return Ok(empty());
        }
        let dir = if q.descending { "DESC" } else { "ASC" };
        let cols = rows::MESSAGE_COLUMNS
            .split(", ")
            .map(|c| format!("m.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let limit = (q.limit + 1) as i64;
        if let (Some(ch), Some(t)) = (&q.channel, &q.event_type) {
            // A type within a channel: no index serves both, so the
            // channel's entries are examined in order (from the newest,
            // descending), a bounded number per page (see
            // `MessagePage::scanned_to`).
            let budget = crate::FILTER_SCAN_BUDGET as i64;
            let agg = if q.descending { "MIN" } else { "MAX" };
            // The window first: what this page examines is fixed before the
            // matches are read (READ COMMITTED gives each statement its own
            // snapshot; anything committed later has a higher seq).
            let w = c
                .query_one(
                    &format!(
                        "SELECT COUNT(*), {agg}(seq) FROM (SELECT seq FROM message_channels
                             WHERE org_id = $1 AND channel = $2 AND seq > $3 AND seq < $4
                             ORDER BY seq {dir} LIMIT $5) s"
                    ),
                    &[&org.as_str(), ch, &lower, &upper, &budget],
                )
                .await?;
            let examined: i64 = w.try_get(0)?;
            let Some(end) = w.try_get::<_, Option<i64>>(1)? else {
                return Ok(empty());
            };
            // The examined window: (lower, end] ascending, [end, upper) descending.
            let (lo, hi) = if q.descending {
                (end - 1, upper)
            } else {
                (lower, end + 1)
            };
            let sql = format!(
                "SELECT {cols} FROM message_channels mc JOIN messages m ON m.seq = mc.seq \
                 WHERE mc.org_id = $1 AND mc.channel = $2 AND mc.seq > $3 AND mc.seq < $4 AND m.type = $5 \
                 ORDER BY mc.seq {dir} LIMIT $6"
            );
            let found = c.query(&sql, &[&org.as_str(), ch, &lo, &hi, t, &limit]).await?;
            let mut messages = found.iter().map(rows::message).collect::<Result<Vec<_>>>()?;
            if messages.len() > q.limit {
                messages.truncate(q.limit);
                return Ok(MessagePage {
                    messages,
                    has_more: true,
                    scanned_to: None,
                });
            }
            let scanned_to = (examined >= budget).then_some(end as u64);
            return Ok(MessagePage {
                messages,
                has_more: scanned_to.is_some(),
                scanned_to,
            });
        }
        let org_s = org.as_str().to_owned();
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> =
            vec![Box::new(org_s), Box::new(lower), Box::new(upper)];
        let mut sql = match &q.channel {
            Some(ch) => {
                params.push(Box::new(ch.clone()));
                format!(
                    "SELECT {cols} FROM message_channels mc JOIN messages m ON m.seq = mc.seq \
                     WHERE mc.org_id = $1 AND mc.seq > $2 AND mc.seq < $3 AND mc.channel = $4"
                )
            }
            None => {
                format!("SELECT {cols} FROM messages m WHERE m.org_id = $1 AND m.seq > $2 AND m.seq < $3")
            }
        };
        if let Some(t) = &q.event_type {
            params.push(Box::new(t.clone()));
            sql.push_str(&format!(" AND m.type = ${}", params.len()));
        }
        params.push(Box::new(limit));
        sql.push_str(&format!(" ORDER BY m.seq {dir} LIMIT ${}", params.len()));
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        let found = c.query(&sql, &refs).await?;
        let mut messages = found.iter().map(rows::message).collect::<Result<Vec<_>>>()?;
        let has_more = messages.len() > q.limit;
        messages.truncate(q.limit);
        Ok(MessagePage {
            messages,
            has_more,
            scanned_to: None,
        })
    }

    async fn head_seq(&self) -> Result<u64> {
        let c = self.pool.get().await?;
        let r = c.query_one("SELECT seq FROM log_head WHERE id = 1", &[]).await?;
        Ok(r.get::<_, i64>(0) as u64)
    }

    async fn retained_from_seq(&self) -> Result<u64> {
        let c = self.pool.get().await?;
        let r = c
            .query_one("SELECT pruned_through FROM log_head WHERE id = 1", &[])
            .await?;
        let p: i64 = r.get(0);
        Ok(if p == 0 { 0 } else { p as u64 + 1 })
    }

    async fn prune(&self, before: Timestamp, limit: usize) -> Result<u64> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        // Per-minute attempt counts are only read for the last hour.
        tx.execute(
            "DELETE FROM endpoint_minutes WHERE minute < $1",
            &[&crate::webhooks::minutes_kept_from(Timestamp::now())],
        )
        .await?;
        // Whole commit groups only (they share received_at), oldest first.
        let victims = tx
            .query(
                "SELECT seq, org_id, channels, received_at FROM messages
                 WHERE received_at < $1 ORDER BY seq LIMIT $2",
                &[&before.as_micros(), &(limit as i64)],
            )
            .await?;
        let mut rows_: Vec<(i64, String, String, i64)> = victims
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect();
        if rows_.len() >= limit
            && let Some(last) = rows_.last().map(|v| v.3)
        {
            let keep = rows_.iter().take_while(|v| v.3 < last).count();
            if keep > 0 {
                rows_.truncate(keep);
            }
        }
        let Some(max_seq) = rows_.last().map(|v| v.0) else {
            rules::prune(&tx, None, limit).await?;
            tx.commit().await?;
            return Ok(0);
        };
        let seqs: Vec<i64> = rows_.iter().map(|v| v.0).collect();
        tx.execute("DELETE FROM message_channels WHERE seq = ANY($1)", &[&seqs])
            .await?;
        tx.execute("DELETE FROM messages WHERE seq = ANY($1)", &[&seqs])
            .await?;
        tx.execute(
            "UPDATE log_head SET pruned_through = GREATEST(pruned_through, $1) WHERE id = 1",
            &[&max_seq],
        )
        .await?;
        webhooks::prune(&tx, max_seq, before, limit).await?;
        rules::prune(&tx, Some(max_seq), limit).await?;
        let cutoff = Timestamp::now().as_micros() - crate::IDEMPOTENCY_TTL_MICROS;
        tx.execute(
            "DELETE FROM idempotency WHERE (org_id, key) IN
             (SELECT org_id, key FROM idempotency WHERE created_at < $1 LIMIT $2)",
            &[&cutoff, &(limit as i64)],
        )
        .await?;
        tx.commit().await?;
        Ok(rows_.len() as u64)
    }

    fn add_commit_listener(&self, listener: CommitListener) {
        self.hooks.add_listener(listener);
    }

    async fn get_entity(&self, org: &OrgId, kind: &str, id: &str) -> Result<Option<crate::rules::Entity>> {
        rules::get_entity(&self.pool, org.as_str(), kind, id).await
    }

    async fn list_entities(
        &self,
        org: &OrgId,
        query: &crate::rules::EntityQuery,
    ) -> Result<crate::rules::EntityPage> {
        rules::list_entities(&self.pool, org.as_str(), query).await
    }

    // ---- Erasure (issue 11): `erasure.rs` ----

    async fn create_erasure(
        &self,
        org: &OrgId,
        channel: &str,
        within: Option<&str>,
    ) -> Result<crate::erasure::ErasureRecord> {
        erasure::create(&self.pool, org, channel, within).await
    }

    async fn get_erasure(
        &self,
        org: &OrgId,
        id: &marquee_core::ids::ErasureId,
    ) -> Result<Option<crate::erasure::ErasureRecord>> {
        erasure::get(&self.pool, org, id).await
    }

    async fn list_erasures(
        &self,
        org: &OrgId,
        before: Option<&marquee_core::ids::ErasureId>,
        limit: usize,
    ) -> Result<(Vec<crate::erasure::ErasureRecord>, bool)> {
        erasure::list(&self.pool, org, before, limit).await
    }

    async fn claim_erasure(
        &self,
        token: &str,
        lease_micros: i64,
    ) -> Result<Option<crate::erasure::ErasureRecord>> {
        erasure::claim(&self.pool, token, lease_micros).await
    }

    async fn erase_step(
        &self,
        id: &marquee_core::ids::ErasureId,
        token: &str,
        lease_micros: i64,
        limit: usize,
    ) -> Result<Option<crate::erasure::ErasureStep>> {
        erasure::step(&self.pool, id, token, lease_micros, limit).await
    }

    async fn recently_erased(&self, since: Timestamp) -> Result<Vec<(u64, Timestamp)>> {
        erasure::recently_erased(&self.pool, since).await
    }
}
