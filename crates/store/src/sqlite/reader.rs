//! A small pool of read-only connections.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, params_from_iter, types::Value};

use super::rows;
use crate::{FILTER_SCAN_BUDGET, MessagePage, MessageQuery, Result, StoreError};

/// Two sets of read connections: `point` for short lookups run inline on the
/// async task, `scan` for page queries run on the blocking pool. Keeping them
/// apart means a slow scan can never make an inline lookup wait (and so never
/// blocks an async worker thread behind it).
#[derive(Clone)]
pub struct ReaderPool {
    point: Arc<Vec<Mutex<Connection>>>,
    scan: Arc<Vec<Mutex<Connection>>>,
    next: Arc<AtomicUsize>,
}

fn open_readers(path: &Path, n: usize) -> Result<Vec<Mutex<Connection>>> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let c = Connection::open(path)?;
        c.busy_timeout(std::time::Duration::from_secs(10))?;
        c.pragma_update(None, "query_only", true)?;
        c.pragma_update(None, "cache_size", -16_000)?;
        conns.push(Mutex::new(c));
    }
    Ok(conns)
}

fn pick<T>(conns: &[Mutex<Connection>], start: usize, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    let n = conns.len();
    for i in 0..n {
        if let Ok(c) = conns[(start + i) % n].try_lock() {
            return f(&c);
        }
    }
    let c = conns[start % n]
        .lock()
        .map_err(|_| StoreError::Internal("reader connection poisoned".into()))?;
    f(&c)
}

impl ReaderPool {
    /// `n` connections for each of the two sets.
    pub fn open(path: &Path, n: usize) -> Result<Self> {
        Ok(ReaderPool {
            point: Arc::new(open_readers(path, n.max(1))?),
            scan: Arc::new(open_readers(path, n.max(1))?),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Runs a short query (an indexed point lookup) on the calling thread.
    pub fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        pick(&self.point, self.next.fetch_add(1, Ordering::Relaxed), f)
    }

    /// Runs a possibly long query on the blocking pool.
    pub async fn with_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || pick(&pool.scan, pool.next.fetch_add(1, Ordering::Relaxed), f))
            .await
            .map_err(|e| StoreError::Internal(format!("reader task failed: {e}")))?
    }
}

/// One page of an organization's log in commit order (or newest first),
/// with optional filters.
pub fn list_messages(c: &Connection, org: &str, q: &MessageQuery) -> Result<MessagePage> {
    let empty = || MessagePage {
        messages: vec![],
        has_more: false,
        scanned_to: None,
    };
    let mut lower = q.after_seq.unwrap_or(0).min(i64::MAX as u64) as i64;
    let upper = q.before_seq.map_or(i64::MAX, |s| s.min(i64::MAX as u64) as i64);
    if let Some(since) = q.since {
        // received_at is non-decreasing in seq (the writer assigns both), so a
        // time bound becomes a seq bound through the received_at index.
        match first_seq_received_since(c, since.as_micros())? {
            Some(s) => lower = lower.max(s - 1),
            None => return Ok(empty()),
        }
    }
    if upper <= lower.saturating_add(1) {
        return Ok(empty());
    }
    let dir = if q.descending { "DESC" } else { "ASC" };
    if let (Some(ch), Some(t)) = (&q.channel, &q.event_type) {
        return channel_type_page(c, org, ch, t, (lower, upper), q.limit, q.descending);
    }
    let mut args: Vec<Value> = vec![Value::Text(org.to_owned())];
    let mut sql = if let Some(ch) = &q.channel {
        args.push(Value::Text(ch.clone()));
        args.push(Value::Integer(lower));
        args.push(Value::Integer(upper));
        format!(
            "SELECT {} FROM message_channels mc JOIN messages m ON m.seq = mc.seq \
             WHERE mc.org_id = ?1 AND mc.channel = ?2 AND mc.seq > ?3 AND mc.seq < ?4 ORDER BY mc.seq {dir}",
            prefixed(rows::MESSAGE_COLUMNS)
        )
    } else {
        args.push(Value::Integer(lower));
        args.push(Value::Integer(upper));
        let mut sql = format!(
            "SELECT {} FROM messages m WHERE m.org_id = ?1 AND m.seq > ?2 AND m.seq < ?3",
            prefixed(rows::MESSAGE_COLUMNS)
        );
        if let Some(t) = &q.event_type {
            sql.push_str(" AND m.type = ?4");
            args.push(Value::Text(t.clone()));
        }
        sql.push_str(&format!(" ORDER BY m.seq {dir}"));
        sql
    };
    sql.push_str(&format!(" LIMIT {}", q.limit + 1));
    let mut st = c.prepare_cached(&sql)?;
    let mut messages = st
        .query_map(params_from_iter(args), rows::message)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let has_more = messages.len() > q.limit;
    messages.truncate(q.limit);
    Ok(MessagePage {
        messages,
        has_more,
        scanned_to: None,
    })
}

/// A type within a channel: no index serves both, so the channel's entries
/// are examined in order (from the newest, descending), at most
/// [`FILTER_SCAN_BUDGET`] per page, strictly inside `(lower, upper)`.
fn channel_type_page(
    c: &Connection,
    org: &str,
    channel: &str,
    event_type: &str,
    (lower, upper): (i64, i64),
    limit: usize,
    descending: bool,
) -> Result<MessagePage> {
    // The window first: what this page examines is fixed before the matches
    // are read (the two reads need not share a snapshot: anything committed
    // later has a higher seq than the window's end, and a descending page
    // examines only seqs below an end it has already seen).
    let budget = FILTER_SCAN_BUDGET as i64;
    let (agg, dir) = if descending {
        ("MIN", "DESC")
    } else {
        ("MAX", "ASC")
    };
    let (examined, end): (i64, Option<i64>) = c
        .prepare_cached(&format!(
            "SELECT COUNT(*), {agg}(seq) FROM (SELECT seq FROM message_channels
                 WHERE org_id = ?1 AND channel = ?2 AND seq > ?3 AND seq < ?4 ORDER BY seq {dir} LIMIT ?5)"
        ))?
        .query_row(rusqlite::params![org, channel, lower, upper, budget], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let Some(end) = end else {
        return Ok(MessagePage {
            messages: vec![],
            has_more: false,
            scanned_to: None,
        });
    };
    // The examined window: (lower, end] ascending, [end, upper) descending.
    let (lo, hi) = if descending {
        (end - 1, upper)
    } else {
        (lower, end + 1)
    };
    let sql = format!(
        "SELECT {} FROM message_channels mc JOIN messages m ON m.seq = mc.seq
         WHERE mc.org_id = ?1 AND mc.channel = ?2 AND mc.seq > ?3 AND mc.seq < ?4 AND m.type = ?5
         ORDER BY mc.seq {dir} LIMIT ?6",
        prefixed(rows::MESSAGE_COLUMNS)
    );
    let mut messages = c
        .prepare_cached(&sql)?
        .query_map(
            rusqlite::params![org, channel, lo, hi, event_type, (limit + 1) as i64],
            rows::message,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if messages.len() > limit {
        messages.truncate(limit);
        return Ok(MessagePage {
            messages,
            has_more: true,
            scanned_to: None,
        });
    }
    // Not full: if the window was cut by the budget, continue past it.
    let scanned_to = (examined >= budget).then_some(end as u64);
    Ok(MessagePage {
        messages,
        has_more: scanned_to.is_some(),
        scanned_to,
    })
}

/// The first seq whose received_at is at or after `t`, by binary search over
/// seq (received_at is non-decreasing in seq).
pub fn first_seq_received_since(c: &Connection, t: i64) -> Result<Option<i64>> {
    let mut at_or_after =
        c.prepare_cached("SELECT seq, received_at FROM messages WHERE seq >= ?1 ORDER BY seq LIMIT 1")?;
    let mut probe = |s: i64| -> Result<Option<(i64, i64)>> {
        let mut rows = at_or_after.query([s])?;
        Ok(match rows.next()? {
            Some(r) => Some((r.get(0)?, r.get(1)?)),
            None => None,
        })
    };
    let (mut lo, mut hi): (i64, i64) = c.query_row(
        "SELECT COALESCE(MIN(seq), 0), COALESCE(MAX(seq), -1) FROM messages",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if hi < lo {
        return Ok(None);
    }
    // Invariant: the answer, if any, is the first row with seq in [lo, hi].
    let mut answer = None;
    while lo <= hi {
        let mid = lo + (hi - lo) / 2;
        match probe(mid)? {
            Some((seq, received)) if seq <= hi => {
                if received >= t {
                    answer = Some(seq);
                    hi = mid - 1;
                } else {
                    lo = seq + 1;
                }
            }
            _ => hi = mid - 1,
        }
    }
    Ok(answer)
}

fn prefixed(cols: &str) -> String {
    cols.split(", ")
        .map(|c| format!("m.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}
