//! PostgreSQL SQL of per-type rules (issue 11): dedup records and projected
//! entities. The decisions are in [`crate::rules`]. Within one group commit
//! the dedup records are buffered ([`RuleRows`]) and written in one
//! statement by the log append's `finish`; [`RuleRows::seen`] lets a later
//! request of the same group find a key an earlier one used. Everything runs
//! under the log lock, so the check and the record are atomic cluster-wide.

use std::collections::HashMap;
use std::sync::Arc;

use deadpool_postgres::Pool;
use marquee_core::message::{NewMessage, StoredMessage};
use marquee_core::rules::ProjectOp;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Row, Transaction};

use super::rows;
use crate::Result;
use crate::rules::{ENTITY_APPLIES, ENTITY_COLUMNS, Entity, EntityOrder, EntityPage, EntityQuery};

/// The rule rows one transaction appends.
#[derive(Default)]
pub struct RuleRows {
    orgs: Vec<String>,
    keys: Vec<Vec<u8>>,
    seqs: Vec<i64>,
    expires: Vec<Option<i64>>,
    /// (org, key) → seq of the dedup keys recorded in this transaction.
    seen: HashMap<(String, [u8; 32]), u64>,
    projections: Vec<(String, u64, ProjectOp, String)>,
}

impl RuleRows {
    /// Buffers the message's dedup record and projection.
    pub fn add(&mut self, org: &str, seq: u64, received: i64, m: &NewMessage) {
        if let Some(k) = &m.dedup {
            self.orgs.push(org.to_owned());
            self.keys.push(k.key.to_vec());
            self.seqs.push(seq as i64);
            self.expires
                .push(crate::rules::dedup_expiry(k.window_micros, received));
            self.seen.insert((org.to_owned(), k.key), seq);
        }
        if let Some(p) = &m.project {
            self.projections
                .push((org.to_owned(), seq, p.clone(), m.data.get().to_owned()));
        }
    }

    /// The seq of the message of this transaction that recorded `key`.
    pub fn seen(&self, org: &str, key: &[u8; 32]) -> Option<u64> {
        self.seen.get(&(org.to_owned(), *key)).copied()
    }

    pub async fn flush(&self, tx: &Transaction<'_>, received: i64) -> Result<()> {
        if !self.keys.is_empty() {
            // Keys are unique within a transaction (a repeat is planned as a
            // duplicate); a conflicting row is a stale one (expired window or
            // pruned message) and is replaced.
            tx.query_typed(
                "INSERT INTO dedup (org_id, key, seq, expires_at)
                 SELECT * FROM unnest($1::text[], $2::bytea[], $3::int8[], $4::int8[])
                 ON CONFLICT (org_id, key) DO UPDATE SET seq = EXCLUDED.seq, expires_at = EXCLUDED.expires_at",
                &[
                    (&self.orgs, Type::TEXT_ARRAY),
                    (&self.keys, Type::BYTEA_ARRAY),
                    (&self.seqs, Type::INT8_ARRAY),
                    (&self.expires, Type::INT8_ARRAY),
                ],
            )
            .await?;
        }
        // One statement per projected message, in seq order: two updates of
        // one entity in a group must apply in turn.
        for (org, seq, p, data) in &self.projections {
            let seq = *seq as i64;
            let deleted: i32 = p.delete.into();
            tx.query_typed(
                &format!(
                    "INSERT INTO entities (org_id, kind, entity_id, version, deleted, data, seq, created_seq, sort_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9)
                     ON CONFLICT (org_id, kind, entity_id) DO UPDATE SET
                       version = EXCLUDED.version, deleted = EXCLUDED.deleted, data = EXCLUDED.data,
                       seq = EXCLUDED.seq, sort_at = COALESCE(EXCLUDED.sort_at, entities.sort_at),
                       updated_at = EXCLUDED.updated_at
                     WHERE {ENTITY_APPLIES}"
                ),
                &[
                    (org, Type::TEXT),
                    (&p.kind, Type::TEXT),
                    (&p.entity_id, Type::TEXT),
                    (&p.version, Type::INT8),
                    (&deleted, Type::INT4),
                    (data, Type::TEXT),
                    (&seq, Type::INT8),
                    (&p.sort_at, Type::INT8),
                    (&received, Type::INT8),
                ],
            )
            .await?;
        }
        Ok(())
    }
}

/// The retained message a live dedup record of `key` points at: first among
/// this transaction's own records, then the table.
pub async fn find_dedup(
    tx: &Transaction<'_>,
    org: &str,
    key: &[u8; 32],
    now: i64,
    group: &RuleRows,
    committed: &[Arc<StoredMessage>],
) -> Result<Option<StoredMessage>> {
    if let Some(seq) = group.seen(org, key) {
        return Ok(committed
            .binary_search_by_key(&seq, |m| m.seq)
            .ok()
            .map(|i| (*committed[i]).clone()));
    }
    let key = key.to_vec();
    tx.query_typed(
        &format!(
            "SELECT {} FROM messages WHERE seq = (SELECT seq FROM dedup
               WHERE org_id = $1 AND key = $2 AND (expires_at IS NULL OR expires_at >= $3))",
            rows::MESSAGE_COLUMNS
        ),
        &[(&org, Type::TEXT), (&key, Type::BYTEA), (&now, Type::INT8)],
    )
    .await?
    .first()
    .map(rows::message)
    .transpose()
}

/// Drops the dedup records of pruned messages and up to `limit` whose
/// window closed.
pub async fn prune(tx: &Transaction<'_>, pruned_through: Option<i64>, limit: usize) -> Result<()> {
    if let Some(s) = pruned_through {
        tx.execute("DELETE FROM dedup WHERE seq <= $1", &[&s]).await?;
    }
    let now = marquee_core::timestamp::Timestamp::now().as_micros();
    tx.execute(
        "DELETE FROM dedup WHERE (org_id, key) IN
           (SELECT org_id, key FROM dedup WHERE expires_at < $1 LIMIT $2)",
        &[&now, &(limit as i64)],
    )
    .await?;
    Ok(())
}

fn entity(r: &Row) -> Result<Entity> {
    Ok(Entity {
        kind: r.try_get(0)?,
        id: r.try_get(1)?,
        data: r.try_get(2)?,
        version: r.try_get(3)?,
        seq: r.try_get::<_, i64>(4)? as u64,
        created_seq: r.try_get::<_, i64>(5)? as u64,
        sort_at: r.try_get(6)?,
        updated_at: marquee_core::timestamp::Timestamp::from_micros(r.try_get(7)?),
    })
}

pub async fn get_entity(pool: &Pool, org: &str, kind: &str, id: &str) -> Result<Option<Entity>> {
    let c = pool.get().await?;
    c.query_opt(
        &format!(
            "SELECT {ENTITY_COLUMNS} FROM entities
             WHERE org_id = $1 AND kind = $2 AND entity_id = $3 AND deleted = 0"
        ),
        &[&org, &kind, &id],
    )
    .await?
    .map(|r| entity(&r))
    .transpose()
}

pub async fn list_entities(pool: &Pool, org: &str, q: &EntityQuery) -> Result<EntityPage> {
    let limit = crate::rules::page_limit(q);
    let c = pool.get().await?;
    let mut args: Vec<Box<dyn ToSql + Sync + Send>> =
        vec![Box::new(org.to_owned()), Box::new(q.kind.clone())];
    let mut sql =
        format!("SELECT {ENTITY_COLUMNS} FROM entities WHERE org_id = $1 AND kind = $2 AND deleted = 0");
    if let Some((name, value)) = &q.field {
        args.push(Box::new(name.clone()));
        args.push(Box::new(value.clone()));
        sql.push_str(&format!(
            " AND (data::jsonb ->> ${}) = ${}",
            args.len() - 1,
            args.len()
        ));
    }
    match &q.order {
        EntityOrder::ById { after } => {
            if let Some(a) = after {
                args.push(Box::new(a.clone()));
                sql.push_str(&format!(" AND entity_id > ${}", args.len()));
            }
            // entity_id is COLLATE "C": byte order, as SQLite compares text.
            sql.push_str(" ORDER BY entity_id");
        }
        EntityOrder::BySortDesc { before } => {
            sql.push_str(" AND sort_at IS NOT NULL");
            match before {
                None => {}
                Some((at, None)) => {
                    args.push(Box::new(*at));
                    sql.push_str(&format!(" AND sort_at < ${}", args.len()));
                }
                Some((at, Some(seq))) => {
                    args.push(Box::new(*at));
                    args.push(Box::new(*seq as i64));
                    let (a, s) = (args.len() - 1, args.len());
                    sql.push_str(&format!(
                        " AND (sort_at < ${a} OR (sort_at = ${a} AND created_seq < ${s}))"
                    ));
                }
            }
            sql.push_str(" ORDER BY sort_at DESC, created_seq DESC");
        }
    }
    args.push(Box::new((limit + 1) as i64));
    sql.push_str(&format!(" LIMIT ${}", args.len()));
    let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|b| b.as_ref() as &(dyn ToSql + Sync)).collect();
    let mut entities = c
        .query(&sql, &refs)
        .await?
        .iter()
        .map(entity)
        .collect::<Result<Vec<_>>>()?;
    let has_more = entities.len() > limit;
    entities.truncate(limit);
    Ok(EntityPage { entities, has_more })
}
