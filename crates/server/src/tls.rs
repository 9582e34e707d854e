//! TLS on the listener (`--tls-cert`, `--tls-key`): marquee terminates
//! HTTPS and WSS itself on its one port, for deployments without a proxy
//! (the eventory document accepts no `ws://`).
//!
//! The files are read once at start; a missing or unreadable file, or one
//! without a certificate or private key, stops `serve` with a message that
//! names the file. Reloading a renewed certificate needs a restart.
//!
//! With TLS on, a client speaking plain HTTP is told so: the listener looks
//! at the connection's first byte (a TLS record starts with 0x16, an HTTP
//! request with a method's letter) and answers plain requests with one
//! `400` in the error envelope, then closes (see `http::serve`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The PEM files of the listener's certificate chain and private key.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("--tls-cert and --tls-key go together: {0} is missing")]
    Half(&'static str),
    #[error("cannot read the TLS {what} file {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("the TLS {what} file {path} holds no PEM {expected}")]
    Empty {
        what: &'static str,
        path: String,
        expected: &'static str,
    },
    #[error("the TLS {what} file {path} is not valid PEM: {detail}")]
    Pem {
        what: &'static str,
        path: String,
        detail: String,
    },
    #[error("the TLS certificate {cert} and key {key} do not make a usable server identity: {detail}")]
    Config {
        cert: String,
        key: String,
        detail: String,
    },
}

/// `Some` only when both files are given; one without the other is an error.
pub fn files(cert: Option<PathBuf>, key: Option<PathBuf>) -> Result<Option<TlsFiles>, TlsError> {
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
        (Some(_), None) => Err(TlsError::Half("--tls-key")),
        (None, Some(_)) => Err(TlsError::Half("--tls-cert")),
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.display().to_string(),
        source,
    })
}

/// Reads both files and builds the acceptor (HTTP/1.1 only, as the listener).
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let cert_pem = read("certificate", &files.cert)?;
    let key_pem = read("key", &files.key)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what: "certificate",
            path: files.cert.display().to_string(),
            detail: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Empty {
            what: "certificate",
            path: files.cert.display().to_string(),
            expected: "CERTIFICATE",
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Empty {
            what: "key",
            path: files.key.display().to_string(),
            expected: "PRIVATE KEY",
        },
        e => TlsError::Pem {
            what: "key",
            path: files.key.display().to_string(),
            detail: e.to_string(),
        },
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| TlsError::Config {
            cert: files.cert.display().to_string(),
            key: files.key.display().to_string(),
            detail: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The first byte of a TLS connection: a handshake record.
pub fn starts_tls(first: u8) -> bool {
    first == 0x16
}
