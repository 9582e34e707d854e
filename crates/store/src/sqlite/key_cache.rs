//! A cache of API-key rows by public prefix, so authenticating a request
//! usually costs no database read.
//!
//! Revocation must still take effect on the very next request, including a
//! revocation made by another process on the same data dir (the CLI). Every
//! key write therefore overwrites the token in the `keys.epoch` file beside
//! the database with a fresh random one; a lookup reads it with one `pread`
//! on a handle kept open (no path walk) and drops the whole cache when the
//! token changed. A torn read can only produce a token that matches nothing,
//! which drops the cache: it never keeps a stale one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::KeyCandidate;

const EPOCH_FILE: &str = "keys.epoch";
const MAX_ENTRIES: usize = 50_000;

pub struct KeyCache {
    epoch_path: PathBuf,
    epoch: Option<std::fs::File>,
    inner: Mutex<Inner>,
}

struct Inner {
    stamp: Option<Stamp>,
    by_prefix: HashMap<String, Vec<KeyCandidate>>,
}

type Stamp = u128;

const TOKEN_LEN: usize = 32;

fn stamp(file: Option<&std::fs::File>) -> Option<Stamp> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; TOKEN_LEN];
    file?.read_exact_at(&mut buf, 0).ok()?;
    u128::from_str_radix(std::str::from_utf8(&buf).ok()?, 16).ok()
}

fn open_epoch(path: &Path) -> Option<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(
            |e| tracing::error!(error = %e, path = %path.display(), "cannot open the key-change token file"),
        )
        .ok()
}

impl KeyCache {
    pub fn new(data_dir: &Path) -> Self {
        let epoch_path = data_dir.join(EPOCH_FILE);
        KeyCache {
            epoch: open_epoch(&epoch_path),
            epoch_path,
            inner: Mutex::new(Inner {
                stamp: None,
                by_prefix: HashMap::new(),
            }),
        }
    }

    /// Cached candidates for a prefix (`Ok`), or on a miss the stamp under
    /// which a fresh lookup may be remembered (`Err`).
    pub fn get(&self, prefix: &str) -> Result<Vec<KeyCandidate>, Option<Stamp>> {
        let now = stamp(self.epoch.as_ref());
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
        let mut token = [0u8; 16];
        marquee_core::ids::random_bytes(&mut token);
        let token = format!("{:032x}", u128::from_le_bytes(token));
        let written = match &self.epoch {
            Some(f) => {
                use std::os::unix::fs::FileExt;
                f.write_all_at(token.as_bytes(), 0)
            }
            None => Err(std::io::Error::other("token file not open")),
        };
        if let Err(e) = written {
            // Other processes' caches would not notice this key change.
            tracing::error!(error = %e, path = %self.epoch_path.display(), "could not publish the key-change token");
        }
    }
}
