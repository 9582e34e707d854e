//! The outbound HTTP client and one webhook attempt.
//!
//! SSRF guard: every hostname is resolved by [`GuardedResolver`], which drops
//! loopback, private, link-local, shared, multicast and unspecified addresses
//! *after* resolution — so a public name pointing at 10.0.0.1 (or rebinding
//! to it between checks) is refused at connect time, not just at creation.
//! IP-literal URLs never reach a resolver, so [`check_literal`] applies the
//! same rule to them before connecting. Redirects are not followed (a 3xx is
//! a failed attempt) and proxies from the environment are ignored, so neither
//! can route around the guard.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use marquee_core::ids::AttemptId;
use marquee_core::timestamp::Timestamp;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Response bytes kept in the attempt log.
pub const BODY_CAPTURE: usize = 4096;
/// Response headers kept in the attempt log.
const KEPT_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "retry-after",
    "server",
    "date",
    "location",
    "x-request-id",
];

#[derive(Debug, thiserror::Error)]
#[error("destination address is not allowed (private, loopback, link-local or similar)")]
pub struct BlockedAddress;

/// True when an address may receive webhooks without the private allowance.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return public_v4(v4);
            }
            let seg = v6.segments();
            let embedded =
                |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
            // Translated or tunnelled IPv4 (NAT64 64:ff9b::/96 and
            // 64:ff9b:1::/48, 6to4 2002::/16) is judged by the IPv4 inside.
            if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return public_v4(embedded(seg[6], seg[7]));
            }
            if seg[..3] == [0x64, 0xff9b, 1] {
                return false;
            }
            if seg[0] == 0x2002 {
                return public_v4(embedded(seg[1], seg[2]));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg[0] & 0xffc0) == 0xfe80) // link-local fe80::/10
        }
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)) // IETF protocol assignments
}

/// Resolves with the system resolver and keeps only permitted addresses.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow_private;
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let ok: Vec<SocketAddr> = found.filter(|a| allow || is_public(a.ip())).collect();
            if ok.is_empty() {
                return Err(Box::new(BlockedAddress) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(ok.into_iter()) as Addrs)
        })
    }
}

/// Refuses an IP-literal URL whose address is not permitted.
pub fn check_literal(url: &reqwest::Url, allow_private: bool) -> Result<(), BlockedAddress> {
    if allow_private {
        return Ok(());
    }
    let host = url.host_str().unwrap_or("");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let Ok(ip) = host.parse::<IpAddr>() else {
        return Ok(());
    };
    if is_public(ip) {
        Ok(())
    } else {
        Err(BlockedAddress)
    }
}

pub fn build(allow_private: bool, timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("marquee-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// What one POST produced.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub id: AttemptId,
    pub started_at: Timestamp,
    pub duration: Duration,
    pub status: Option<u16>,
    pub error_kind: Option<&'static str>,
    pub retry_after: Option<Duration>,
    pub headers_json: String,
    pub body: String,
}

impl AttemptResult {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

fn classify(e: &reqwest::Error) -> &'static str {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if s.downcast_ref::<BlockedAddress>().is_some() {
            return "blocked_address";
        }
        src = s.source();
    }
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "response_body"
    } else {
        "request"
    }
}

/// POSTs `body` with `headers` to `url` and captures the outcome. Never
/// fails: every error becomes an `error_kind`.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    allow_private: bool,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
    started_at: Timestamp,
) -> AttemptResult {
    let t0 = Instant::now();
    let mut out = AttemptResult {
        id: AttemptId::generate(),
        started_at,
        duration: Duration::ZERO,
        status: None,
        error_kind: None,
        retry_after: None,
        headers_json: "{}".into(),
        body: String::new(),
    };
    let parsed = match reqwest::Url::parse(url) {
        Ok(u) => u,
        Err(_) => {
            out.error_kind = Some("invalid_url");
            return out;
        }
    };
    if check_literal(&parsed, allow_private).is_err() {
        out.error_kind = Some("blocked_address");
        return out;
    }
    let mut req = client.post(parsed).body(body);
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    match req.send().await {
        Err(e) => out.error_kind = Some(classify(&e)),
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            out.status = Some(status);
            let mut kept = serde_json::Map::new();
            for name in KEPT_HEADERS {
                if let Some(v) = resp.headers().get(*name).and_then(|v| v.to_str().ok()) {
                    kept.insert(
                        (*name).to_owned(),
                        serde_json::Value::String(v.chars().take(256).collect()),
                    );
                }
            }
            if matches!(status, 429 | 503) {
                out.retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(marquee_core::webhook::parse_retry_after);
            }
            out.headers_json = serde_json::Value::Object(kept).to_string();
            let mut buf: Vec<u8> = Vec::new();
            loop {
                match resp.chunk().await {
                    Ok(Some(c)) => {
                        let room = BODY_CAPTURE - buf.len();
                        buf.extend_from_slice(&c[..c.len().min(room)]);
                        if buf.len() >= BODY_CAPTURE {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        // A 2xx whose body then times out still counts as
                        // received: the receiver answered success.
                        if !out.succeeded() {
                            out.error_kind = Some(classify(&e));
                        }
                        break;
                    }
                }
            }
            out.body = String::from_utf8_lossy(&buf).into_owned();
            if !out.succeeded() && out.error_kind.is_none() {
                out.error_kind = Some("http_status");
            }
        }
    }
    out.duration = t0.elapsed();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_classes() {
        let cases = [
            ("127.0.0.1", false),
            ("10.1.2.3", false),
            ("172.16.0.1", false),
            ("192.168.1.1", false),
            ("169.254.169.254", false),
            ("100.64.0.1", false),
            ("0.0.0.0", false),
            ("224.0.0.1", false),
            ("255.255.255.255", false),
            ("::1", false),
            ("::", false),
            ("fd00::1", false),
            ("fe80::1", false),
            ("::ffff:127.0.0.1", false),
            ("::ffff:10.0.0.1", false),
            ("64:ff9b::a00:1", false),
            ("64:ff9b::a9fe:a9fe", false),
            ("64:ff9b::808:808", true),
            ("64:ff9b:1::1", false),
            ("2002:a00:1::1", false),
            ("2002:808:808::1", true),
            ("93.184.216.34", true),
            ("8.8.8.8", true),
            ("2606:4700::1111", true),
        ];
        for (ip, public) in cases {
            assert_eq!(is_public(ip.parse().unwrap()), public, "{ip}");
        }
    }

    #[test]
    fn literal_urls_are_checked() {
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(check_literal(&u("http://127.0.0.1:8080/x"), false).is_err());
        assert!(check_literal(&u("http://[::1]/x"), false).is_err());
        assert!(check_literal(&u("http://127.0.0.1/x"), true).is_ok());
        assert!(check_literal(&u("https://example.com/x"), false).is_ok());
        assert!(check_literal(&u("http://8.8.8.8/x"), false).is_ok());
    }
}
