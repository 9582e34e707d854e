//! Eventory on SQLite: the snapshot hook of the log append, watchlists and
//! cooldowns (decisions in `crate::eventory`).

use marquee_core::ids::{KeyId, OrgId};
use marquee_core::message::StoredMessage;
use marquee_core::timestamp::Timestamp;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::writer::Ctx;
use crate::Result;
use crate::eventory::WatchRecord;

/// Called by `log::append` after each appended message: a snapshot replaces
/// the kept one for its key and, when something changed, appends its
/// notification (in the same transaction, so snapshots of one key are
/// diffed in commit order).
pub fn after_append(ctx: &mut Ctx<'_>, org: &OrgId, m: &StoredMessage, received: i64) -> Result<()> {
    let new = marquee_core::message::NewMessage {
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
    let prev: Option<String> = ctx
        .conn
        .prepare_cached(
            "SELECT data FROM eventory_snapshots WHERE org_id = ?1 AND website = ?2 AND event_id = ?3 AND region = ?4",
        )?
        .query_row(params![org.as_str(), key.website, key.event_id, key.region], |r| r.get(0))
        .optional()?;
    let n = crate::eventory::notification(&new, prev.as_deref(), Timestamp::from_micros(received));
    ctx.conn
        .prepare_cached(
            "INSERT OR REPLACE INTO eventory_snapshots (org_id, website, event_id, region, data, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            org.as_str(),
            key.website,
            key.event_id,
            key.region,
            m.data.get(),
            received
        ])?;
    if let Some(n) = n {
        super::log::append(ctx, org, n, received)?;
    }
    Ok(())
}

const COLUMNS: &str = "id, org_id, key_id, entry, created_at, updated_at";

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<WatchRecord> {
    let bad =
        |i, e: String| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into());
    Ok(WatchRecord {
        id: r.get(0)?,
        org_id: r
            .get::<_, String>(1)?
            .parse()
            .map_err(|_| bad(1, "org id".into()))?,
        key_id: r
            .get::<_, String>(2)?
            .parse()
            .map_err(|_| bad(2, "key id".into()))?,
        entry: r.get(3)?,
        created_at: Timestamp::from_micros(r.get(4)?),
        updated_at: Timestamp::from_micros(r.get(5)?),
    })
}

impl SqliteStore {
    pub(crate) async fn ev_watch_create(&self, w: WatchRecord, max: usize) -> Result<Option<WatchRecord>> {
        self.writer
            .write(move |ctx| {
                let n: i64 = ctx.conn.query_row(
                    "SELECT count(*) FROM eventory_watchlist WHERE key_id = ?1",
                    [w.key_id.as_str()],
                    |r| r.get(0),
                )?;
                if n as usize >= max {
                    return Ok(None);
                }
                ctx.conn.execute(
                    &format!("INSERT INTO eventory_watchlist ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
                    params![
                        w.id,
                        w.org_id.as_str(),
                        w.key_id.as_str(),
                        w.entry,
                        w.created_at.as_micros(),
                        w.updated_at.as_micros()
                    ],
                )?;
                Ok(Some(w))
            })
            .await
    }

    pub(crate) async fn ev_watch_list(&self, key: &KeyId) -> Result<Vec<WatchRecord>> {
        let key = key.as_str().to_owned();
        self.readers.with(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM eventory_watchlist WHERE key_id = ?1 ORDER BY created_at, id"
            ))?;
            let v = st
                .query_map([key], record)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    pub(crate) async fn ev_watch_get(&self, key: &KeyId, id: &str) -> Result<Option<WatchRecord>> {
        let (key, id) = (key.as_str().to_owned(), id.to_owned());
        self.readers.with(move |c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM eventory_watchlist WHERE key_id = ?1 AND id = ?2"
            ))?
            .query_row([key, id], record)
            .optional()
            .map_err(Into::into)
        })
    }

    pub(crate) async fn ev_watch_update(
        &self,
        key: &KeyId,
        id: &str,
        entry: &str,
    ) -> Result<Option<WatchRecord>> {
        let (key, id, entry) = (key.as_str().to_owned(), id.to_owned(), entry.to_owned());
        self.writer
            .write(move |ctx| {
                let now = Timestamp::now().as_micros();
                ctx.conn.execute(
                    "UPDATE eventory_watchlist SET entry = ?3, updated_at = ?4 WHERE key_id = ?1 AND id = ?2",
                    params![key, id, entry, now],
                )?;
                ctx.conn
                    .query_row(
                        &format!("SELECT {COLUMNS} FROM eventory_watchlist WHERE key_id = ?1 AND id = ?2"),
                        [key, id],
                        record,
                    )
                    .optional()
                    .map_err(Into::into)
            })
            .await
    }

    pub(crate) async fn ev_watch_delete(&self, key: &KeyId, id: &str) -> Result<bool> {
        let (key, id) = (key.as_str().to_owned(), id.to_owned());
        self.writer
            .write(move |ctx| {
                Ok(ctx.conn.execute(
                    "DELETE FROM eventory_watchlist WHERE key_id = ?1 AND id = ?2",
                    [key, id],
                )? > 0)
            })
            .await
    }

    pub(crate) async fn ev_cooldown_claim(
        &self,
        key: &KeyId,
        content: [u8; 32],
        now: i64,
        window: i64,
    ) -> Result<bool> {
        let key = key.as_str().to_owned();
        let since = crate::eventory::cooldown_since(now, window);
        self.writer
            .write_unguarded(move |ctx| {
                let n = ctx
                    .conn
                    .prepare_cached(
                        "INSERT INTO eventory_cooldowns (key_id, content, sent_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (key_id, content) DO UPDATE SET sent_at = excluded.sent_at
                         WHERE eventory_cooldowns.sent_at <= ?4",
                    )?
                    .execute(params![key, &content[..], now, since])?;
                Ok(n > 0)
            })
            .await
    }

    pub(crate) async fn ev_cooldown_prune(&self, before: i64) -> Result<u64> {
        self.writer
            .write_unguarded(move |ctx| {
                Ok(ctx
                    .conn
                    .execute("DELETE FROM eventory_cooldowns WHERE sent_at <= ?1", [before])?
                    as u64)
            })
            .await
    }
}
