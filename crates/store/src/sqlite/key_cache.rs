//! A cache of API-key rows by public prefix, so authenticating a request
//! usually costs no database read.
//!
//! Revocation must still take effect on the very next request, including a
//! revocation made by another process on the same data dir (the CLI). Every
//! key write therefore replaces the `keys.epoch` file beside the database
//! with a fresh random token (written to a temp file and renamed into place,
//! so readers never see a torn write); a lookup reads that small file and
//! drops the whole cache when the token changed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::KeyCandidate;

const EPOCH_FILE: &str = "keys.epoch";
const MAX_ENTRIES: usize = 50_000;

pub struct KeyCache {
    epoch_path: PathBuf,
    inner: Mutex<Inner>,
}

struct Inner {
    stamp: Option<Stamp>,
    by_prefix: HashMap<String, Vec<KeyCandidate>>,
}

type Stamp = u128;

fn stamp(path: &Path) -> Option<Stamp> {
    let text = std::fs::read_to_string(path).ok()?;
    u128::from_str_radix(text.trim(), 16).ok()
}

impl KeyCache {
    pub fn new(data_dir: &Path) -> Self {
        KeyCache {
            epoch_path: data_dir.join(EPOCH_FILE),
            inner: Mutex::new(Inner {
                stamp: None,
                by_prefix: HashMap::new(),
            }),
        }
    }

    /// Cached candidates for a prefix (`Ok`), or on a miss the stamp under
    /// which a fresh lookup may be remembered (`Err`).
    pub fn get(&self, prefix: &str) -> Result<Vec<KeyCandidate>, Option<Stamp>> {
        let now = stamp(&self.epoch_path);
        let Ok(mut inner) = self.inner.lock() else {
            return Err(None);
        };
        if inner.stamp != now || now.is_none() {
            inner.by_prefix.clear();
            inner.stamp = now;
            return Err(now);
        }
        inner.by_prefix.get(prefix).cloned().ok_or(now)
    }

    /// Remembers a lookup, unless a key write happened since its `get`.
    pub fn put(&self, prefix: &str, rows: Vec<KeyCandidate>, token: Option<Stamp>) {
        if let Ok(mut inner) = self.inner.lock() {
            if token.is_none() || inner.stamp != token {
                return;
            }
            if inner.by_prefix.len() >= MAX_ENTRIES {
                inner.by_prefix.clear();
            }
            inner.by_prefix.insert(prefix.to_owned(), rows);
        }
    }

    /// Called after any committed key write, in whichever process made it.
    pub fn bump(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.by_prefix.clear();
            inner.stamp = None;
        }
        let tmp = self
            .epoch_path
            .with_extension(format!("tmp{}", std::process::id()));
        let mut token = [0u8; 16];
        marquee_core::ids::random_bytes(&mut token);
        let token = u128::from_le_bytes(token);
        let written = std::fs::write(&tmp, format!("{token:032x}"))
            .and_then(|()| std::fs::rename(&tmp, &self.epoch_path));
        if let Err(e) = written {
            // Other processes' caches would not notice this key change.
            tracing::error!(error = %e, path = %self.epoch_path.display(), "could not publish the key-change token");
        }
    }
}
