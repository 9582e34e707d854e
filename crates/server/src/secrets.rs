//! Server secrets: the key pepper and the master secret that later derives
//! the key encrypting webhook secrets at rest.
//!
//! On first start a random 32-byte master secret is written to
//! `<data-dir>/secret.key` (mode 0600). The pepper is derived from it unless
//! `MARQUEE_KEY_PEPPER` gives one explicitly (which a cluster shares). The
//! CLI reads the same file, so keys it creates verify on the server.

use std::path::Path;

use hmac::{Hmac, Mac};
use marquee_core::apikey::Pepper;
use sha2::Sha256;

pub const SECRET_FILE: &str = "secret.key";

#[derive(Clone)]
pub struct ServerSecrets {
    master: [u8; 32],
    pub pepper: Pepper,
}

impl std::fmt::Debug for ServerSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerSecrets(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("reading or writing {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is corrupt: expected 64 hex characters")]
    Corrupt { path: String },
}

impl ServerSecrets {
    pub fn load_or_create(data_dir: &Path, pepper_override: Option<&str>) -> Result<Self, SecretsError> {
        let path = data_dir.join(SECRET_FILE);
        let io = |source| SecretsError::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(io)?;
        let master = match std::fs::read_to_string(&path) {
            Ok(text) => decode_hex32(text.trim()).ok_or_else(|| SecretsError::Corrupt {
                path: path.display().to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut m = [0u8; 32];
                marquee_core::ids::random_bytes(&mut m);
                match write_private(&path, &encode_hex(&m)) {
                    Ok(()) => m,
                    // Another process (a CLI command, a second start) created
                    // it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let text = std::fs::read_to_string(&path).map_err(io)?;
                        decode_hex32(text.trim()).ok_or_else(|| SecretsError::Corrupt {
                            path: path.display().to_string(),
                        })?
                    }
                    Err(e) => return Err(io(e)),
                }
            }
            Err(e) => return Err(io(e)),
        };
        Ok(Self::from_master(master, pepper_override))
    }

    pub fn from_master(master: [u8; 32], pepper_override: Option<&str>) -> Self {
        let pepper = match pepper_override {
            Some(p) if !p.is_empty() => Pepper::new(p.as_bytes().to_vec()),
            _ => Pepper::new(derive(&master, b"marquee/key-pepper/v1").to_vec()),
        };
        ServerSecrets { master, pepper }
    }

    /// Secrets from a cluster secret given as 64 hex characters.
    pub fn from_hex(hex: &str, pepper_override: Option<&str>) -> Option<Self> {
        decode_hex32(hex.trim()).map(|m| Self::from_master(m, pepper_override))
    }

    /// A value every node of a cluster computes identically from its
    /// secrets, stored in the shared database: a node whose value differs
    /// has another secret or pepper and must not serve. It reveals neither.
    pub fn cluster_check(&self) -> String {
        let a = encode_hex(&self.subkey(b"marquee/cluster-check/v1"));
        let b = encode_hex(&marquee_core::apikey::digest(&self.pepper, "marquee/cluster-check/v1").0);
        format!("v1:{a}:{b}")
    }

    /// A purpose-bound subkey of the master secret.
    pub fn subkey(&self, purpose: &[u8]) -> [u8; 32] {
        derive(&self.master, purpose)
    }
}

fn derive(master: &[u8; 32], purpose: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(master).expect("any key length");
    mac.update(purpose);
    mac.finalize().into_bytes().into()
}

/// Creates `path` with `contents` atomically and durably, never replacing an
/// existing file: write a private temp file, fsync it, hard-link it into
/// place (which fails if another process won the race), fsync the directory.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{SECRET_FILE}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    drop(f);
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    linked?;
    std::fs::File::open(dir)?.sync_all()
}

fn encode_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = ServerSecrets::load_or_create(dir.path(), None).unwrap();
        let b = ServerSecrets::load_or_create(dir.path(), None).unwrap();
        assert_eq!(a.subkey(b"x"), b.subkey(b"x"));
        let k = marquee_core::apikey::generate(&a.pepper);
        assert!(marquee_core::apikey::digest(&b.pepper, &k.plaintext).ct_eq(&k.digest.0));
    }
}
