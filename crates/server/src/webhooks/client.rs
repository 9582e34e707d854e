//! The outbound HTTP client and one webhook attempt.
//!
//! SSRF guard: every hostname is resolved by [`GuardedResolver`], which drops
//! loopback, private, link-local, shared, multicast and unspecified addresses
//! *after* resolution — so a public name pointing at 10.0.0.1 (or rebinding
//! to it between checks) is refused at connect time, not just at creation.
//! IP-literal URLs never reach a resolver, so [`check_literal`] applies the
//! same rule to them before connecting (and the endpoint API refuses them at
//! creation). Which addresses pass is an [`AddressPolicy`]: public ones,
//! those inside an `--allow-endpoint-cidr` network, or all of them with
//! `--allow-private-endpoints`. Redirects are not followed (a 3xx is
//! a failed attempt) and proxies from the environment are ignored, so neither
//! can route around the guard.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use marquee_core::cidr::Cidr;
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

/// A destination the [`AddressPolicy`] refuses, with what was refused (for
/// the attempt's error reason: host names and addresses, nothing secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedAddress {
    /// The host name that resolved to `refused`; `None` for an IP literal.
    pub host: Option<String>,
    pub refused: Vec<IpAddr>,
}

impl std::fmt::Display for BlockedAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let addrs = self
            .refused
            .iter()
            .take(3)
            .map(|ip| format!("{ip} ({})", address_class(*ip)))
            .collect::<Vec<_>>()
            .join(", ");
        match &self.host {
            Some(h) => write!(f, "{h} resolved to {addrs}")?,
            None => write!(f, "{addrs}")?,
        }
        f.write_str(", refused by policy (see --allow-private-endpoints, --allow-endpoint-cidr)")
    }
}

impl std::error::Error for BlockedAddress {}

/// Why an address is not public, in a word or two.
pub fn address_class(ip: IpAddr) -> &'static str {
    let v4 = match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    };
    match (v4, ip) {
        (Some(v4), _) if v4.is_loopback() => "loopback",
        (Some(v4), _) if v4.is_private() => "private",
        (Some(v4), _) if v4.is_link_local() => "link-local",
        (Some(v4), _) if v4.is_multicast() => "multicast",
        (Some(v4), _) if v4.is_unspecified() => "unspecified",
        (Some(v4), _) if v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64 => "shared",
        (None, IpAddr::V6(v6)) if v6.is_loopback() => "loopback",
        (None, IpAddr::V6(v6)) if v6.is_unspecified() => "unspecified",
        (None, IpAddr::V6(v6)) if v6.is_multicast() => "multicast",
        (None, IpAddr::V6(v6)) if (v6.segments()[0] & 0xfe00) == 0xfc00 => "unique local",
        (None, IpAddr::V6(v6)) if (v6.segments()[0] & 0xffc0) == 0xfe80 => "link-local",
        _ if is_public(ip) => "public",
        _ => "reserved",
    }
}

/// Names that always mean this machine (RFC 6761: `localhost` and
/// `*.localhost` resolve to loopback), so they can be judged when an
/// endpoint is created, exactly as the resolver will judge them.
pub fn is_localhost_name(host: &str) -> bool {
    let h = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    h == "localhost" || h.ends_with(".localhost")
}

/// The addresses a `localhost` name resolves to.
pub const LOOPBACK: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
];

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

/// Which destination addresses webhook attempts may reach: a borrowed view
/// of the configuration, cheap to copy. See [`AddressPolicy::permits`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AddressPolicy<'a> {
    /// `--allow-private-endpoints`: every address is permitted.
    pub allow_private: bool,
    /// `--allow-endpoint-cidr`: networks permitted although not public.
    pub allowed: &'a [Cidr],
}

impl AddressPolicy<'_> {
    /// The allowance, a public address, or one inside an allowed network.
    pub fn permits(self, ip: IpAddr) -> bool {
        self.allow_private || is_public(ip) || self.allowed.iter().any(|c| c.contains(ip))
    }
}

/// Resolves with the system resolver and keeps only permitted addresses.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub allow_private: bool,
    pub allowed: Arc<[Cidr]>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let allowed = self.allowed.clone();
        Box::pin(async move {
            let policy = AddressPolicy {
                allow_private,
                allowed: &allowed,
            };
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let (ok, refused): (Vec<SocketAddr>, Vec<SocketAddr>) =
                found.into_iter().partition(|a| policy.permits(a.ip()));
            if ok.is_empty() {
                let blocked = BlockedAddress {
                    host: Some(name.as_str().to_owned()),
                    refused: refused.iter().map(SocketAddr::ip).collect(),
                };
                return Err(Box::new(blocked) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(ok.into_iter()) as Addrs)
        })
    }
}

/// The address of an IP-literal URL (`http://10.0.0.5/`, `http://[::1]/`),
/// `None` for a hostname. The URL parser has already normalized IPv4 spellings (`127.1`,
/// `0x7f.0.0.1`, `2130706433`) to dotted quads.
pub fn literal_ip(url: &reqwest::Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.parse().ok()
}

/// Refuses an IP-literal URL whose address `policy` does not permit;
/// hostnames pass here (the resolver checks them at connect time).
pub fn check_literal(url: &reqwest::Url, policy: AddressPolicy<'_>) -> Result<(), BlockedAddress> {
    match literal_ip(url) {
        Some(ip) if !policy.permits(ip) => Err(BlockedAddress {
            host: None,
            refused: vec![ip],
        }),
        _ => Ok(()),
    }
}

/// What creating or updating an endpoint decides about its URL's host, as
/// attempts will: an IP literal by its address, a `localhost` name by the
/// loopback addresses it always resolves to (refused unless one of them is
/// permitted). Other names pass: what they resolve to can change, so they
/// are judged at connect time.
pub fn check_destination(url: &reqwest::Url, policy: AddressPolicy<'_>) -> Result<(), BlockedAddress> {
    check_literal(url, policy)?;
    match url.host_str() {
        Some(h) if is_localhost_name(h) && !LOOPBACK.iter().any(|ip| policy.permits(*ip)) => {
            Err(BlockedAddress {
                host: Some(h.to_owned()),
                refused: LOOPBACK.to_vec(),
            })
        }
        _ => Ok(()),
    }
}

/// The attempt client. `extra_roots` (PEM certificates of a private CA) are
/// trusted beside the bundled public roots.
pub fn build(
    policy: AddressPolicy<'_>,
    timeout: Duration,
    extra_roots: &[reqwest::Certificate],
) -> Result<reqwest::Client, reqwest::Error> {
    let resolver = GuardedResolver {
        allow_private: policy.allow_private,
        allowed: policy.allowed.into(),
    };
    let mut builder = reqwest::Client::builder();
    for root in extra_roots {
        builder = builder.add_root_certificate(root.clone());
    }
    builder
        .dns_resolver(Arc::new(resolver))
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
    /// A short, secret-free reason for a failure ("connection refused",
    /// "localhost resolved to 127.0.0.1 (loopback), refused by policy …");
    /// never a URL, so never its credentials or query.
    pub error: Option<String>,
    pub retry_after: Option<Duration>,
    pub headers_json: String,
    pub body: String,
}

impl AttemptResult {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Longest error reason kept.
const MAX_REASON: usize = 200;

/// The most specific message in `e`'s source chain, never `e`'s own (a
/// `reqwest::Error` prints the URL, which may carry a token in its query).
fn reason(e: &reqwest::Error) -> String {
    let mut deepest: Option<String> = None;
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(b) = s.downcast_ref::<BlockedAddress>() {
            return b.to_string();
        }
        let mut inner: &(dyn std::error::Error + 'static) = s;
        loop {
            if let Some(t) = inner.downcast_ref::<rustls::Error>() {
                return clip(format!("TLS: {t}"));
            }
            if let Some(io) = inner.downcast_ref::<std::io::Error>() {
                deepest = Some(io_reason(io));
                match io.get_ref() {
                    Some(i) => inner = i,
                    None => break,
                }
            } else {
                deepest = Some(inner.to_string());
                break;
            }
        }
        src = s.source();
    }
    let text = if e.is_timeout() {
        "no response within the attempt timeout".to_owned()
    } else {
        deepest.unwrap_or_else(|| "the request failed".to_owned())
    };
    clip(text)
}

fn io_reason(io: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match io.kind() {
        K::ConnectionRefused => "connection refused".into(),
        K::ConnectionReset => "connection reset by the receiver".into(),
        K::ConnectionAborted => "connection aborted".into(),
        K::TimedOut => "timed out".into(),
        K::UnexpectedEof => "connection closed before a response".into(),
        _ => {
            let t = io.to_string();
            // "… (os error 111)": the number adds nothing for a reader.
            match t.find(" (os error") {
                Some(i) => t[..i].to_owned(),
                None => t,
            }
        }
    }
}

/// Bounded, one line, and never anything URL-shaped.
fn clip(text: String) -> String {
    let one_line = text.replace(['\n', '\r'], " ");
    if one_line.contains("://") {
        return "the request failed".into();
    }
    if one_line.len() <= MAX_REASON {
        return one_line;
    }
    let mut end = MAX_REASON;
    while !one_line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &one_line[..end])
}

/// The error text of a logged attempt: for one that got no response, the
/// reason recorded with it (kept where the absent response body would be);
/// for one that did, its status.
pub fn attempt_error(status: Option<u16>, error_kind: Option<&str>, recorded: &str) -> Option<String> {
    let kind = error_kind?;
    let Some(code) = status else {
        return (!recorded.is_empty()).then(|| recorded.to_owned());
    };
    let phrase = reqwest::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map(|r| format!("HTTP {code} {r}"))
        .unwrap_or_else(|| format!("HTTP {code}"));
    Some(match kind {
        "response_body" => format!("{phrase}; reading the response body failed"),
        _ => phrase,
    })
}

fn classify(e: &reqwest::Error) -> &'static str {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if s.downcast_ref::<BlockedAddress>().is_some() {
            return "blocked_address";
        }
        // A TLS failure (an untrusted or expired certificate, a name
        // mismatch, a handshake error) is a connect error to reqwest; say so.
        // It sits inside nested io::Errors, whose `source()` skips the
        // error they wrap, so unwrap those by hand.
        let mut e: &(dyn std::error::Error + 'static) = s;
        loop {
            if e.downcast_ref::<rustls::Error>().is_some() {
                return "tls";
            }
            match e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
                Some(inner) => e = inner,
                None => break,
            }
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

/// Logs an attempt: a failure at `info` with the endpoint, the URL's host
/// (never the whole URL: its path or query may carry a token), status,
/// error kind and reason; a success at `debug`.
pub fn log_attempt(endpoint: &marquee_core::ids::EndpointId, url: &str, delivery: &str, r: &AttemptResult) {
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let ms = r.duration.as_secs_f64() * 1000.0;
    if r.succeeded() {
        tracing::debug!(endpoint = %endpoint, host, delivery, status = r.status, duration_ms = ms, "webhook delivered");
    } else {
        tracing::info!(
            endpoint = %endpoint,
            host,
            delivery,
            status = r.status,
            error_kind = r.error_kind.unwrap_or("unknown"),
            error = r.error.as_deref().unwrap_or(""),
            duration_ms = ms,
            "webhook attempt failed"
        );
    }
}

/// POSTs `body` with `headers` to `url` and captures the outcome. Never
/// fails: every error becomes an `error_kind`.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    policy: AddressPolicy<'_>,
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
        error: None,
        retry_after: None,
        headers_json: "{}".into(),
        body: String::new(),
    };
    let parsed = match reqwest::Url::parse(url) {
        Ok(u) => u,
        Err(_) => {
            out.error_kind = Some("invalid_url");
            out.error = Some("the endpoint URL does not parse".into());
            return out;
        }
    };
    if let Err(b) = check_literal(&parsed, policy) {
        out.error_kind = Some("blocked_address");
        out.error = Some(b.to_string());
        return out;
    }
    let mut req = client.post(parsed).body(body);
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    match req.send().await {
        Err(e) => {
            out.error_kind = Some(classify(&e));
            out.error = Some(reason(&e));
        }
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
                // An HTTP-date is relative to when the answer arrived (the
                // dispatcher schedules the retry from about then, too).
                let answered_at = Timestamp::now();
                out.retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| marquee_core::webhook::parse_retry_after(v, answered_at));
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
                            out.error = Some(format!("reading the response body failed: {}", reason(&e)));
                        }
                        break;
                    }
                }
            }
            out.body = String::from_utf8_lossy(&buf).into_owned();
            if !out.succeeded() && out.error_kind.is_none() {
                out.error_kind = Some("http_status");
                out.error = attempt_error(Some(status), out.error_kind, "");
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
        let none = AddressPolicy::default();
        let all = AddressPolicy {
            allow_private: true,
            allowed: &[],
        };
        let nets: Vec<Cidr> = ["127.0.0.1/32", "10.20.0.0/16", "fd00:1::/64"]
            .iter()
            .map(|c| c.parse().unwrap())
            .collect();
        let some = AddressPolicy {
            allow_private: false,
            allowed: &nets,
        };
        let cases = [
            ("http://127.0.0.1:8080/x", [false, true, true]),
            ("http://127.1/x", [false, true, true]),
            ("http://2130706433/x", [false, true, true]),
            ("http://127.0.0.2/x", [false, true, false]),
            ("http://[::1]/x", [false, true, false]),
            ("http://[::ffff:127.0.0.1]/x", [false, true, true]),
            ("http://10.20.30.40/x", [false, true, true]),
            ("http://10.21.0.1/x", [false, true, false]),
            ("http://[fd00:1::7]:9/x", [false, true, true]),
            ("http://[fd00:2::7]/x", [false, true, false]),
            ("http://169.254.169.254/x", [false, true, false]),
            ("https://example.com/x", [true, true, true]),
            ("http://localhost/x", [true, true, true]),
            ("http://8.8.8.8/x", [true, true, true]),
            ("http://[2606:4700::1111]/x", [true, true, true]),
        ];
        for (url, want) in cases {
            for (policy, ok) in [none, all, some].into_iter().zip(want) {
                assert_eq!(check_literal(&u(url), policy).is_ok(), ok, "{url} {policy:?}");
            }
        }
        assert_eq!(literal_ip(&u("http://[::1]:80/")), Some("::1".parse().unwrap()));
        assert_eq!(literal_ip(&u("http://example.com/")), None);
    }

    #[test]
    fn the_policy_admits_public_allowed_or_everything() {
        let nets: Vec<Cidr> = vec!["10.20.0.0/16".parse().unwrap()];
        let p = AddressPolicy {
            allow_private: false,
            allowed: &nets,
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(p.permits(ip("8.8.8.8")));
        assert!(p.permits(ip("10.20.1.1")));
        assert!(p.permits(ip("::ffff:10.20.1.1")));
        assert!(!p.permits(ip("10.30.1.1")));
        assert!(!p.permits(ip("127.0.0.1")));
        assert!(!AddressPolicy::default().permits(ip("10.20.1.1")));
        assert!(
            AddressPolicy {
                allow_private: true,
                allowed: &[],
            }
            .permits(ip("10.30.1.1"))
        );
    }
}
