//! TLS trust for `https://` servers: the public web roots (as reqwest's
//! rustls), plus any private CA the application names, shared by REST and
//! `wss://` streams so both trust the same servers.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::{ConnectError, ConnectErrorKind, Error};

/// The certificates of a PEM bundle; at least one.
pub(crate) fn roots_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, ConnectError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::new(
                ConnectErrorKind::InvalidCa,
                format!("the CA bundle is not valid PEM: {e}"),
            )
        })?;
    if certs.is_empty() {
        return Err(Error::new(
            ConnectErrorKind::InvalidCa,
            "the CA bundle holds no PEM CERTIFICATE",
        ));
    }
    Ok(certs)
}

/// The rustls settings of streams: web roots plus `extra`.
pub(crate) fn stream_config(
    extra: &[CertificateDer<'static>],
) -> Result<Arc<rustls::ClientConfig>, ConnectError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for cert in extra {
        roots.add(cert.clone()).map_err(|e| {
            Error::new(
                ConnectErrorKind::InvalidCa,
                format!("a CA certificate was refused: {e}"),
            )
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(ConnectErrorKind::Build, format!("TLS settings: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
