//! Eventory on PostgreSQL: the snapshot hook of the log append (under the
//! log lock, so snapshots of one key are diffed in commit order across
//! nodes), watchlists and cooldowns (decisions in `crate::eventory`).

use marquee_core::ids::{KeyId, OrgId};
use marquee_core::message::{NewMessage, StoredMessage};
use marquee_core::timestamp::Timestamp;
use tokio_postgres::Transaction;

use super::PgStore;
use super::log::LogAppend;
use crate::Result;
use crate::eventory::WatchRecord;

/// Called by `LogAppend::append` after each appended message: a snapshot
/// replaces the kept one for its key and, when something changed, appends
/// its notification in the same transaction.
pub async fn after_append(
    log: &mut LogAppend,
    tx: &Transaction<'_>,
    org: &OrgId,
    m: &StoredMessage,
) -> Result<()> {
    let new = NewMessage {
        id: m.id.clone(),
        event_type: m.event_type.clone(),
        channels: m.channels.clone(),
        data: m.data.clone(),
        occurred_at: m.occurred_at,
        idempotency: None,
        dedup: None,
        project: None,
        coalesce: None,
        derived: None,
    };
    let Some(key) = crate::eventory::snapshot_of(&new) else {
        return Ok(());
    };
    let prev: Option<String> = tx
        .query_opt(
            "SELECT data FROM eventory_snapshots WHERE org_id = $1 AND website = $2 AND event_id = $3 AND region = $4",
            &[&org.as_str(), &key.website, &key.event_id, &key.region],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    let at = m.received_at;
    let n = crate::eventory::notification(&new, prev.as_deref(), at);
    tx.execute(
        "INSERT INTO eventory_snapshots (org_id, website, event_id, region, data, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (org_id, website, event_id, region) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
        &[&org.as_str(), &key.website, &key.event_id, &key.region, &m.data.get(), &at.as_micros()],
    )
    .await?;
    if let Some(n) = n {
        Box::pin(log.append(tx, org, n)).await?;
    }
    Ok(())
}

const COLUMNS: &str = "id, org_id, key_id, entry, created_at, updated_at";

fn record(r: &tokio_postgres::Row) -> Result<WatchRecord> {
    let bad = |w: &str| crate::StoreError::Internal(format!("corrupt eventory_watchlist {w}"));
    Ok(WatchRecord {
        id: r.try_get(0)?,
        org_id: r.try_get::<_, String>(1)?.parse().map_err(|_| bad("org_id"))?,
        key_id: r.try_get::<_, String>(2)?.parse().map_err(|_| bad("key_id"))?,
        entry: r.try_get(3)?,
        created_at: Timestamp::from_micros(r.try_get(4)?),
        updated_at: Timestamp::from_micros(r.try_get(5)?),
    })
}

impl PgStore {
    pub(crate) async fn ev_watch_create(&self, w: WatchRecord, max: usize) -> Result<Option<WatchRecord>> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        // One creator per identity at a time, so the bound holds cluster-wide.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('eventory-watch/' || $1))",
            &[&w.key_id.as_str()],
        )
        .await?;
        let n: i64 = tx
            .query_one(
                "SELECT count(*) FROM eventory_watchlist WHERE key_id = $1",
                &[&w.key_id.as_str()],
            )
            .await?
            .try_get(0)?;
        if n as usize >= max {
            return Ok(None);
        }
        tx.execute(
            &format!("INSERT INTO eventory_watchlist ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"),
            &[
                &w.id,
                &w.org_id.as_str(),
                &w.key_id.as_str(),
                &w.entry,
                &w.created_at.as_micros(),
                &w.updated_at.as_micros(),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(Some(w))
    }

    pub(crate) async fn ev_watch_list(&self, key: &KeyId) -> Result<Vec<WatchRecord>> {
        let c = self.pool.get().await?;
        c.query(
            &format!("SELECT {COLUMNS} FROM eventory_watchlist WHERE key_id = $1 ORDER BY created_at, id"),
            &[&key.as_str()],
        )
        .await?
        .iter()
        .map(record)
        .collect()
    }

    pub(crate) async fn ev_watch_get(&self, key: &KeyId, id: &str) -> Result<Option<WatchRecord>> {
        let c = self.pool.get().await?;
        c.query_opt(
            &format!("SELECT {COLUMNS} FROM eventory_watchlist WHERE key_id = $1 AND id = $2"),
            &[&key.as_str(), &id],
        )
        .await?
        .map(|r| record(&r))
        .transpose()
    }

    pub(crate) async fn ev_watch_update(
        &self,
        key: &KeyId,
        id: &str,
        entry: &str,
    ) -> Result<Option<WatchRecord>> {
        let c = self.pool.get().await?;
        c.query_opt(
            &format!(
                "UPDATE eventory_watchlist SET entry = $3, updated_at = $4 WHERE key_id = $1 AND id = $2 RETURNING {COLUMNS}"
            ),
            &[&key.as_str(), &id, &entry, &Timestamp::now().as_micros()],
        )
        .await?
        .map(|r| record(&r))
        .transpose()
    }

    pub(crate) async fn ev_watch_delete(&self, key: &KeyId, id: &str) -> Result<bool> {
        let c = self.pool.get().await?;
        let n = c
            .execute(
                "DELETE FROM eventory_watchlist WHERE key_id = $1 AND id = $2",
                &[&key.as_str(), &id],
            )
            .await?;
        Ok(n > 0)
    }

    pub(crate) async fn ev_cooldown_claim(
        &self,
        key: &KeyId,
        content: [u8; 32],
        now: i64,
        window: i64,
    ) -> Result<bool> {
        let c = self.pool.get().await?;
        let since = crate::eventory::cooldown_since(now, window);
        // The conflicting row is locked by the upsert: of two nodes claiming
        // the same content at once, the second re-reads the first's sent_at.
        let n = c
            .execute(
                "INSERT INTO eventory_cooldowns (key_id, content, sent_at) VALUES ($1, $2, $3)
                 ON CONFLICT (key_id, content) DO UPDATE SET sent_at = excluded.sent_at
                 WHERE eventory_cooldowns.sent_at <= $4",
                &[&key.as_str(), &&content[..], &now, &since],
            )
            .await?;
        Ok(n > 0)
    }

    pub(crate) async fn ev_cooldown_prune(&self, before: i64) -> Result<u64> {
        let c = self.pool.get().await?;
        Ok(
            c.execute("DELETE FROM eventory_cooldowns WHERE sent_at <= $1", &[&before])
                .await?,
        )
    }
}
