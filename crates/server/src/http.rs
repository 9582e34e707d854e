//! The HTTP listener: marquee's own accept loop around hyper.
//!
//! Why not `axum::serve`: it sets no timer, so a client that opens a socket
//! and sends its request headers one byte a minute (slowloris) holds the
//! connection and its buffers forever, and it accepts without limit. Here:
//!
//! - at most `max_connections` HTTP connections are open; further clients
//!   wait in the kernel's accept backlog instead of costing memory;
//! - request headers must arrive within `header_read_timeout` (also between
//!   keep-alive requests), at most 100 of them totalling at most 32 KiB (431 in
//!   the envelope; a bare 431 from hyper past its 64 KiB read buffer); bodies are capped by the API's body limit and must arrive
//!   within `extract::BODY_READ_TIMEOUT` (30 s);
//! - HTTP/1.1 only (the API and streams need nothing else); there is no
//!   per-client-address cap — put a proxy in front for that;
//! - an upgraded connection (WebSocket) leaves this count when it upgrades:
//!   streams are authenticated and capped per key by the stream hub.
//!
//! With `--tls-cert`/`--tls-key` every connection is TLS (see [`crate::tls`]):
//! the TLS handshake counts against the connection cap and must finish
//! within `header_read_timeout` too; a plain-HTTP client gets one `400`
//! saying to use https, then the connection closes.
//!
//! Shutdown: stop accepting, ask every connection to finish its request in
//! flight and close (hyper's graceful shutdown), and return once all have;
//! the caller bounds that wait with its grace period.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

/// Connection limits of the HTTP listener.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub max_connections: usize,
    /// `--max-connections` was given (not the default): it is never lowered
    /// to fit the open-files limit, only warned about.
    pub max_connections_explicit: bool,
    pub header_read_timeout: Duration,
    /// PEM certificate chain and private key: serve HTTPS/WSS only.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

/// `--max-connections` when not given.
pub const DEFAULT_MAX_CONNECTIONS: usize = 50_000;

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_explicit: false,
            header_read_timeout: Duration::from_secs(10),
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// What the open-files limit means for `--max-connections`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionCap {
    /// The limit leaves room for this many connections: fine.
    Fits,
    /// The default did not fit: use this many instead (say so at info).
    Lowered(usize),
    /// An explicit value does not fit: keep it, warn with what to do; this
    /// many would fit.
    TooHigh(usize),
}

/// Connections the open-files `limit` leaves room for, beside the store,
/// the webhook client and the listener (a quarter of the limit, at most
/// 1,024 descriptors).
pub fn connection_room(limit: u64) -> usize {
    let reserve = (limit / 4).min(1_024);
    usize::try_from(limit.saturating_sub(reserve))
        .unwrap_or(usize::MAX)
        .max(1)
}

pub fn connection_cap(limit: u64, config: &HttpConfig) -> ConnectionCap {
    let room = connection_room(limit);
    if config.max_connections <= room {
        ConnectionCap::Fits
    } else if config.max_connections_explicit {
        ConnectionCap::TooHigh(room)
    } else {
        ConnectionCap::Lowered(room)
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct HttpArgs {
    /// Most HTTP connections open at once (upgraded WebSocket streams are
    /// counted by the stream limits instead); more clients wait to be
    /// accepted. Default 50000, lowered to what the open-files limit allows.
    #[arg(long, env = "MARQUEE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// How long a client may take to send a request's headers (e.g. 10s).
    #[arg(long, env = "MARQUEE_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// PEM certificate chain for HTTPS/WSS on the listener (with --tls-key);
    /// plain HTTP is then refused. Without both: plain HTTP.
    #[arg(long, env = "MARQUEE_TLS_CERT", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, env = "MARQUEE_TLS_KEY", value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    match marquee_core::duration::parse(s) {
        Ok(d) if d.is_zero() => Err("must be more than zero".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

impl HttpArgs {
    pub fn into_config(self) -> HttpConfig {
        HttpConfig {
            max_connections: self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS).max(1),
            max_connections_explicit: self.max_connections.is_some(),
            header_read_timeout: self.header_read_timeout,
            tls_cert: self.tls_cert,
            tls_key: self.tls_key,
        }
    }
}

/// Most request headers accepted.
const MAX_HEADERS: usize = 100;
/// Total request header bytes the API accepts (names, values, separators);
/// larger requests get 431 `headers_too_large` in the error envelope.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// hyper's read buffer: past this it answers a bare 431 itself.
const HYPER_MAX_BUF: usize = 64 * 1024;

/// Serves `app` on `listener` until `shutdown` resolves, then lets the
/// connections finish their requests in flight and returns once they have.
/// With `tls`, every connection must be TLS.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: HttpConfig,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                // A client that gave up during the handshake: next.
                Err(e) if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionRefused
                ) => continue,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly
                    // instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let closing = closing_rx.clone();
        let header_timeout = config.header_read_timeout;
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tls {
                None => connection(stream, app, header_timeout, closing).await,
                Some(tls) => tls_connection(stream, tls, app, header_timeout, closing).await,
            }
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    // Every connection holds a slot until it ends.
    let all = u32::try_from(config.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// A connection on a TLS listener: plain HTTP is answered with a refusal;
/// the first byte and the handshake must arrive within `header_timeout`.
async fn tls_connection(
    stream: TcpStream,
    tls: TlsAcceptor,
    app: Router,
    header_timeout: Duration,
    closing: watch::Receiver<bool>,
) {
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout(header_timeout, stream.peek(&mut first)).await;
    match peeked {
        Ok(Ok(1)) if crate::tls::starts_tls(first[0]) => {}
        Ok(Ok(1)) => return refuse_plain(stream, header_timeout).await,
        // Closed, failed or silent: nothing to answer.
        _ => return,
    }
    match tokio::time::timeout(header_timeout, tls.accept(stream)).await {
        Ok(Ok(stream)) => connection(stream, app, header_timeout, closing).await,
        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!("TLS handshake timed out"),
    }
}

/// Answers every request on a plain connection to a TLS listener with 400
/// in the error envelope, then closes.
async fn refuse_plain(stream: TcpStream, header_timeout: Duration) {
    let refusal = Router::new().fallback(|| async {
        crate::error::ApiError::invalid("this server only accepts TLS: use https:// (or wss:// for streams)")
    });
    let service = TowerToHyperService::new(refusal);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(false)
        .max_headers(MAX_HEADERS)
        .max_buf_size(HYPER_MAX_BUF);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    // The body is never read: bound the whole exchange.
    let _ = tokio::time::timeout(header_timeout * 2, conn).await;
}

/// Serves HTTP/1.1 (and upgrades) on one connection until it ends or the
/// listener closes.
async fn connection<I>(io: I, app: Router, header_timeout: Duration, mut closing: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(app);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_headers(MAX_HEADERS)
        // Past this hyper itself answers a bare 431; between
        // MAX_HEADER_BYTES and here the API answers it in the envelope.
        .max_buf_size(HYPER_MAX_BUF);
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let mut asked = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::trace!(error = %e, "connection ended with an error");
                }
                break;
            }
            _ = closing.wait_for(|c| *c), if !asked => {
                asked = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_connection_cap_follows_the_open_files_limit() {
        let default = HttpConfig::default();
        assert_eq!(connection_cap(1_048_576, &default), ConnectionCap::Fits);
        assert_eq!(connection_cap(20_000, &default), ConnectionCap::Lowered(18_976));
        assert_eq!(connection_cap(1_024, &default), ConnectionCap::Lowered(768));
        let explicit = HttpConfig {
            max_connections_explicit: true,
            ..HttpConfig::default()
        };
        assert_eq!(connection_cap(20_000, &explicit), ConnectionCap::TooHigh(18_976));
        let small = HttpConfig {
            max_connections: 100,
            max_connections_explicit: true,
            ..HttpConfig::default()
        };
        assert_eq!(connection_cap(1_024, &small), ConnectionCap::Fits);
    }
}
