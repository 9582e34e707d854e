//! SQLite SQL of per-type rules (issue 11): dedup records and projected
//! entities. The decisions are in [`crate::rules`]; the publish job plans
//! with [`find_dedup`] and the log append calls [`on_append`] once per
//! message.

use marquee_core::message::{NewMessage, StoredMessage};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use super::rows;
use crate::Result;
use crate::rules::{ENTITY_APPLIES, ENTITY_COLUMNS, Entity, EntityOrder, EntityPage, EntityQuery};

/// The retained message a live dedup record of `key` points at.
pub fn find_dedup(conn: &Connection, org: &str, key: &[u8; 32], now: i64) -> Result<Option<StoredMessage>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {} FROM messages WHERE seq = (SELECT seq FROM dedup
               WHERE org_id = ?1 AND key = ?2 AND (expires_at IS NULL OR expires_at >= ?3))",
            rows::MESSAGE_COLUMNS
        ))?
        .query_row(params![org, &key[..], now], rows::message)
        .optional()?)
}

/// Records the message's dedup key and applies its projection, in the
/// append's transaction.
pub fn on_append(conn: &Connection, org: &str, m: &NewMessage, seq: u64, received: i64) -> Result<()> {
    if let Some(k) = &m.dedup {
        conn.prepare_cached(
            "INSERT OR REPLACE INTO dedup (org_id, key, seq, expires_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            org,
            &k.key[..],
            seq as i64,
            crate::rules::dedup_expiry(k.window_micros, received)
        ])?;
    }
    if let Some(p) = &m.project {
        conn.prepare_cached(&format!(
            "INSERT INTO entities (org_id, kind, entity_id, version, deleted, data, seq, created_seq, sort_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9)
             ON CONFLICT (org_id, kind, entity_id) DO UPDATE SET
               version = excluded.version, deleted = excluded.deleted, data = excluded.data,
               seq = excluded.seq, sort_at = COALESCE(excluded.sort_at, entities.sort_at),
               updated_at = excluded.updated_at
             WHERE {ENTITY_APPLIES}"
        ))?
        .execute(params![
            org,
            p.kind,
            p.entity_id,
            p.version,
            p.delete as i64,
            m.data.get(),
            seq as i64,
            p.sort_at,
            received
        ])?;
    }
    Ok(())
}

/// Drops the dedup records of pruned messages (seq ≤ `pruned_through`)
/// and up to `limit` whose window closed.
pub fn prune(conn: &Connection, pruned_through: Option<i64>, limit: usize) -> Result<()> {
    if let Some(s) = pruned_through {
        conn.prepare_cached("DELETE FROM dedup WHERE seq <= ?1")?
            .execute([s])?;
    }
    conn.prepare_cached(
        "DELETE FROM dedup WHERE (org_id, key) IN
           (SELECT org_id, key FROM dedup WHERE expires_at < ?1 LIMIT ?2)",
    )?
    .execute(params![
        marquee_core::timestamp::Timestamp::now().as_micros(),
        limit as i64
    ])?;
    Ok(())
}

fn entity(r: &Row<'_>) -> rusqlite::Result<Entity> {
    Ok(Entity {
        kind: r.get(0)?,
        id: r.get(1)?,
        data: r.get(2)?,
        version: r.get(3)?,
        seq: r.get::<_, i64>(4)? as u64,
        created_seq: r.get::<_, i64>(5)? as u64,
        sort_at: r.get(6)?,
        updated_at: marquee_core::timestamp::Timestamp::from_micros(r.get(7)?),
    })
}

pub fn get_entity(conn: &Connection, org: &str, kind: &str, id: &str) -> Result<Option<Entity>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {ENTITY_COLUMNS} FROM entities
             WHERE org_id = ?1 AND kind = ?2 AND entity_id = ?3 AND deleted = 0"
        ))?
        .query_row(params![org, kind, id], entity)
        .optional()?)
}

pub fn list_entities(conn: &Connection, org: &str, q: &EntityQuery) -> Result<EntityPage> {
    let limit = crate::rules::page_limit(q);
    let mut args: Vec<Value> = vec![org.to_owned().into(), q.kind.clone().into()];
    let mut sql =
        format!("SELECT {ENTITY_COLUMNS} FROM entities WHERE org_id = ?1 AND kind = ?2 AND deleted = 0");
    if let Some((name, value)) = &q.field {
        args.push(format!("$.\"{}\"", name.replace('"', "")).into());
        args.push(value.clone().into());
        sql.push_str(&format!(
            " AND json_extract(data, ?{}) = ?{}",
            args.len() - 1,
            args.len()
        ));
    }
    match &q.order {
        EntityOrder::ById { after } => {
            if let Some(a) = after {
                args.push(a.clone().into());
                sql.push_str(&format!(" AND entity_id > ?{}", args.len()));
            }
            sql.push_str(" ORDER BY entity_id");
        }
        EntityOrder::BySortDesc { before } => {
            sql.push_str(" AND sort_at IS NOT NULL");
            match before {
                None => {}
                Some((at, None)) => {
                    args.push((*at).into());
                    sql.push_str(&format!(" AND sort_at < ?{}", args.len()));
                }
                Some((at, Some(seq))) => {
                    args.push((*at).into());
                    args.push((*seq as i64).into());
                    let (a, s) = (args.len() - 1, args.len());
                    sql.push_str(&format!(
                        " AND (sort_at < ?{a} OR (sort_at = ?{a} AND created_seq < ?{s}))"
                    ));
                }
            }
            sql.push_str(" ORDER BY sort_at DESC, created_seq DESC");
        }
    }
    args.push(((limit + 1) as i64).into());
    sql.push_str(&format!(" LIMIT ?{}", args.len()));
    let mut entities: Vec<Entity> = conn
        .prepare_cached(&sql)?
        .query_map(params_from_iter(args), entity)?
        .collect::<rusqlite::Result<_>>()?;
    let has_more = entities.len() > limit;
    entities.truncate(limit);
    Ok(EntityPage { entities, has_more })
}
