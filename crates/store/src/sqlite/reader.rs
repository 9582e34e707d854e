//! A small pool of read-only connections.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, params_from_iter, types::Value};

use super::rows;
use crate::{MessagePage, MessageQuery, Result, StoreError};

#[derive(Clone)]
pub struct ReaderPool {
    conns: Arc<Vec<Mutex<Connection>>>,
    next: Arc<AtomicUsize>,
}

impl ReaderPool {
    pub fn open(path: &Path, n: usize) -> Result<Self> {
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n {
            let c = Connection::open(path)?;
            c.busy_timeout(std::time::Duration::from_secs(10))?;
            c.pragma_update(None, "query_only", true)?;
            c.pragma_update(None, "cache_size", -16_000)?;
            conns.push(Mutex::new(c));
        }
        Ok(ReaderPool {
            conns: Arc::new(conns),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Runs a short query on the calling thread.
    pub fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let n = self.conns.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Ok(c) = self.conns[(start + i) % n].try_lock() {
                return f(&c);
            }
        }
        let c = self.conns[start % n]
            .lock()
            .map_err(|_| StoreError::Internal("reader connection poisoned".into()))?;
        f(&c)
    }

    /// Runs a possibly long query on the blocking pool.
    pub async fn with_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || pool.with(f))
            .await
            .map_err(|e| StoreError::Internal(format!("reader task failed: {e}")))?
    }
}

/// One page of an organization's log in commit order, with optional filters.
pub fn list_messages(c: &Connection, org: &str, q: &MessageQuery) -> Result<MessagePage> {
    let mut lower = q.after_seq.unwrap_or(0) as i64;
    if let Some(since) = q.since {
        // received_at is non-decreasing in seq (the writer assigns both), so a
        // time bound becomes a seq bound through the received_at index.
        let first: Option<i64> = c
            .prepare_cached("SELECT MIN(seq) FROM messages WHERE received_at >= ?1")?
            .query_row([since.as_micros()], |r| r.get(0))?;
        match first {
            Some(s) => lower = lower.max(s - 1),
            None => {
                return Ok(MessagePage {
                    messages: vec![],
                    has_more: false,
                });
            }
        }
    }
    let mut sql = format!(
        "SELECT {} FROM messages m WHERE ",
        prefixed(rows::MESSAGE_COLUMNS)
    );
    let mut args: Vec<Value> = Vec::new();
    if let Some(ch) = &q.channel {
        sql = format!(
            "SELECT {} FROM message_channels mc JOIN messages m ON m.seq = mc.seq \
             WHERE mc.org_id = ?1 AND mc.channel = ?2 AND mc.seq > ?3",
            prefixed(rows::MESSAGE_COLUMNS)
        );
        args.push(Value::Text(org.to_owned()));
        args.push(Value::Text(ch.clone()));
        args.push(Value::Integer(lower));
        if let Some(t) = &q.event_type {
            sql.push_str(" AND m.type = ?4");
            args.push(Value::Text(t.clone()));
        }
        sql.push_str(" ORDER BY mc.seq");
    } else {
        sql.push_str("m.org_id = ?1 AND m.seq > ?2");
        args.push(Value::Text(org.to_owned()));
        args.push(Value::Integer(lower));
        if let Some(t) = &q.event_type {
            sql.push_str(" AND m.type = ?3");
            args.push(Value::Text(t.clone()));
        }
        sql.push_str(" ORDER BY m.seq");
    }
    sql.push_str(&format!(" LIMIT {}", q.limit + 1));
    let mut st = c.prepare_cached(&sql)?;
    let mut messages = st
        .query_map(params_from_iter(args), rows::message)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let has_more = messages.len() > q.limit;
    messages.truncate(q.limit);
    Ok(MessagePage { messages, has_more })
}

fn prefixed(cols: &str) -> String {
    cols.split(", ")
        .map(|c| format!("m.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}
