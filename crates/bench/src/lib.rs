//! Shared pieces of marquee's benchmark harness: a lean keep-alive HTTP/1.1
//! load generator (closed loop and fixed-rate), latency percentiles, and
//! helpers that start the real `marquee` binary on a temp data dir.
//!
//! The harness always measures a baseline in the same run (this machine is
//! shared and noisy), so results are quoted as ratios, not absolutes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { sender })
    }

    /// Sends one request and reads the whole response; returns the status.
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<(u16, Bytes), hyper::Error> {
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// A request template, cloned per send.
#[derive(Clone)]
pub struct Template {
    pub method: hyper::Method,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Template {
    pub fn build(&self, host: &str) -> Request<Full<Bytes>> {
        let mut b = Request::builder()
            .method(self.method.clone())
            .uri(&self.path)
            .header("host", host);
        for (k, v) in &self.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        b.body(Full::new(self.body.clone())).expect("valid request")
    }
}

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub ok: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Latencies in microseconds (sorted by `finish`).
    pub latencies_us: Vec<u64>,
}

impl Stats {
    pub fn per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn finish(mut self) -> Self {
        self.latencies_us.sort_unstable();
        self
    }

    pub fn pct_ms(&self, p: f64) -> f64 {
        percentile(&self.latencies_us, p) as f64 / 1000.0
    }
}

/// The p-th percentile (0–100) of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// `conns` connections each sending back-to-back for `duration`.
pub async fn closed_loop(addr: SocketAddr, conns: usize, duration: Duration, tpl: Template) -> Stats {
    let tpl = Arc::new(tpl);
    let host = addr.to_string();
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (tpl, host) = (tpl.clone(), host.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = Stats::default();
            let Ok(mut c) = Conn::open(addr).await else {
                s.errors += 1;
                return s;
            };
            while Instant::now() < deadline {
                let t = Instant::now();
                match c.send(tpl.build(&host)).await {
                    Ok((st, _)) if (200..300).contains(&st) => {
                        s.ok += 1;
                        s.latencies_us.push(t.elapsed().as_micros() as u64);
                    }
                    Ok(_) => s.errors += 1,
                    Err(_) => {
                        s.errors += 1;
                        match Conn::open(addr).await {
                            Ok(n) => c = n,
                            Err(_) => return s,
                        }
                    }
                }
            }
            s
        }));
    }
    let mut total = Stats::default();
    for t in tasks {
        if let Ok(s) = t.await {
            total.ok += s.ok;
            total.errors += s.errors;
            total.latencies_us.extend(s.latencies_us);
        }
    }
    total.elapsed = start.elapsed();
    total.finish()
}

/// [`closed_loop`] where every request's body is `tpl`'s with each `@N@`
/// replaced by a number unique to the request (distinct dedup keys and
/// entity ids for the per-type rules benchmark, issue 11).
pub async fn closed_loop_varying(addr: SocketAddr, conns: usize, duration: Duration, tpl: Template) -> Stats {
    let tpl = Arc::new(tpl);
    let text = Arc::new(String::from_utf8_lossy(&tpl.body).into_owned());
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let host = addr.to_string();
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (tpl, host, text, counter) = (tpl.clone(), host.clone(), text.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = Stats::default();
            let Ok(mut c) = Conn::open(addr).await else {
                s.errors += 1;
                return s;
            };
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut req = tpl.build(&host);
                *req.body_mut() = Full::new(Bytes::from(text.replace("@N@", &n.to_string())));
                let t = Instant::now();
                match c.send(req).await {
                    Ok((st, _)) if (200..300).contains(&st) => {
                        s.ok += 1;
                        s.latencies_us.push(t.elapsed().as_micros() as u64);
                    }
                    Ok(_) => s.errors += 1,
                    Err(_) => {
                        s.errors += 1;
                        match Conn::open(addr).await {
                            Ok(n) => c = n,
                            Err(_) => return s,
                        }
                    }
                }
            }
            s
        }));
    }
    let mut total = Stats::default();
    for t in tasks {
        if let Ok(s) = t.await {
            total.ok += s.ok;
            total.errors += s.errors;
            total.latencies_us.extend(s.latencies_us);
        }
    }
    total.elapsed = start.elapsed();
    total.finish()
}

/// A fixed aggregate `rate` (requests/s) spread over `conns` connections.
/// Latency is measured from each request's scheduled time, so a stall shows
/// up in the tail instead of being hidden (no coordinated omission).
pub async fn fixed_rate(
    addr: SocketAddr,
    conns: usize,
    rate: f64,
    duration: Duration,
    tpl: Template,
) -> Stats {
    let tpl = Arc::new(tpl);
    let host = addr.to_string();
    let start = Instant::now();
    let per_conn_interval = Duration::from_secs_f64(conns as f64 / rate);
    let mut tasks = Vec::new();
    for i in 0..conns {
        let (tpl, host) = (tpl.clone(), host.clone());
        let offset = per_conn_interval.mul_f64(i as f64 / conns as f64);
        tasks.push(tokio::spawn(async move {
            let mut s = Stats::default();
            let Ok(mut c) = Conn::open(addr).await else {
                s.errors += 1;
                return s;
            };
            let mut next = start + offset;
            while next < start + duration {
                tokio::time::sleep_until(next.into()).await;
                match c.send(tpl.build(&host)).await {
                    Ok((st, _)) if (200..300).contains(&st) => {
                        s.ok += 1;
                        s.latencies_us.push(next.elapsed().as_micros() as u64);
                    }
                    _ => s.errors += 1,
                }
                next += per_conn_interval;
            }
            s
        }));
    }
    let mut total = Stats::default();
    for t in tasks {
        if let Ok(s) = t.await {
            total.ok += s.ok;
            total.errors += s.errors;
            total.latencies_us.extend(s.latencies_us);
        }
    }
    total.elapsed = start.elapsed();
    total.finish()
}

/// Like [`fixed_rate`], but sends until `stop` is set (or `max` passed):
/// the window of a background job (an erasure) whose length is not known
/// in advance.
pub async fn fixed_rate_until(
    addr: SocketAddr,
    conns: usize,
    rate: f64,
    max: Duration,
    stop: Arc<std::sync::atomic::AtomicBool>,
    tpl: Template,
) -> Stats {
    let tpl = Arc::new(tpl);
    let host = addr.to_string();
    let start = Instant::now();
    let per_conn_interval = Duration::from_secs_f64(conns as f64 / rate);
    let mut tasks = Vec::new();
    for i in 0..conns {
        let (tpl, host, stop) = (tpl.clone(), host.clone(), stop.clone());
        let offset = per_conn_interval.mul_f64(i as f64 / conns as f64);
        tasks.push(tokio::spawn(async move {
            let mut s = Stats::default();
            let Ok(mut c) = Conn::open(addr).await else {
                s.errors += 1;
                return s;
            };
            let mut next = start + offset;
            while next < start + max && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep_until(next.into()).await;
                match c.send(tpl.build(&host)).await {
                    Ok((st, _)) if (200..300).contains(&st) => {
                        s.ok += 1;
                        s.latencies_us.push(next.elapsed().as_micros() as u64);
                    }
                    _ => s.errors += 1,
                }
                next += per_conn_interval;
            }
            s
        }));
    }
    let mut total = Stats::default();
    for t in tasks {
        if let Ok(s) = t.await {
            total.ok += s.ok;
            total.errors += s.errors;
            total.latencies_us.extend(s.latencies_us);
        }
    }
    total.elapsed = start.elapsed();
    total.finish()
}

/// Like [`fixed_rate`], but request `k` of the run sends `tpls[k % len]`
/// (coalescing: publishes spread over many keys).
pub async fn fixed_rate_rotating(
    addr: SocketAddr,
    conns: usize,
    rate: f64,
    duration: Duration,
    tpls: Vec<Template>,
) -> Stats {
    let tpls = Arc::new(tpls);
    let host = addr.to_string();
    let start = Instant::now();
    let per_conn_interval = Duration::from_secs_f64(conns as f64 / rate);
    let mut tasks = Vec::new();
    for i in 0..conns {
        let (tpls, host) = (tpls.clone(), host.clone());
        let offset = per_conn_interval.mul_f64(i as f64 / conns as f64);
        tasks.push(tokio::spawn(async move {
            let mut s = Stats::default();
            let Ok(mut c) = Conn::open(addr).await else {
                s.errors += 1;
                return s;
            };
            let mut next = start + offset;
            let mut k = i;
            while next < start + duration {
                tokio::time::sleep_until(next.into()).await;
                match c.send(tpls[k % tpls.len()].build(&host)).await {
                    Ok((st, _)) if (200..300).contains(&st) => {
                        s.ok += 1;
                        s.latencies_us.push(next.elapsed().as_micros() as u64);
                    }
                    _ => s.errors += 1,
                }
                next += per_conn_interval;
                k += conns;
            }
            s
        }));
    }
    let mut total = Stats::default();
    for t in tasks {
        if let Ok(s) = t.await {
            total.ok += s.ok;
            total.errors += s.errors;
            total.latencies_us.extend(s.latencies_us);
        }
    }
    total.elapsed = start.elapsed();
    total.finish()
}

/// A `marquee serve` child process on a temp data dir, killed on drop.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a marquee CLI command with `--json` and parses its one object.
pub fn cli_json(bin: &Path, data_dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(bin)
        .args(args)
        .arg("--json")
        .arg("--data-dir")
        .arg(data_dir)
        .env("MARQUEE_LOG", "warn")
        .output()
        .expect("run marquee CLI");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("CLI JSON")
}

/// Creates an org and an enterprise key on `data_dir`; returns the key.
pub fn provision_key(bin: &Path, data_dir: &Path) -> String {
    provision_key_with(bin, data_dir, &[])
}

/// Like [`provision_key`], for an organization with `profiles` enabled.
pub fn provision_key_with(bin: &Path, data_dir: &Path, profiles: &[&str]) -> String {
    let mut args = vec!["org", "create", "bench"];
    let joined = profiles.join(",");
    if !profiles.is_empty() {
        args.extend(["--profile", joined.as_str()]);
    }
    let org = cli_json(bin, data_dir, &args);
    let org = org["id"].as_str().expect("org id").to_owned();
    let key = cli_json(
        bin,
        data_dir,
        &["key", "create", "--org", &org, "--tier", "enterprise"],
    );
    key["key"].as_str().expect("key").to_owned()
}

/// Starts `marquee serve` on a free port with extra args/env.
pub async fn start_server(
    bin: &Path,
    data_dir: Option<&Path>,
    args: &[&str],
    env: &[(&str, &str)],
) -> ServerProcess {
    let (dir, data_dir) = match data_dir {
        Some(d) => (None, d.to_path_buf()),
        None => {
            let d = tempfile::tempdir().expect("tempdir");
            let p = d.path().to_path_buf();
            (Some(d), p)
        }
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(&data_dir)
        .args(args)
        .env("MARQUEE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawn marquee");
    let server = ServerProcess {
        child,
        addr,
        data_dir,
        _dir: dir,
    };
    for _ in 0..400 {
        if let Ok(mut c) = Conn::open(addr).await {
            let tpl = Template {
                method: hyper::Method::GET,
                path: "/readyz".into(),
                headers: vec![],
                body: Bytes::new(),
            };
            if let Ok((200, _)) = c.send(tpl.build(&addr.to_string())).await {
                return server;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("marquee did not become ready on {addr}");
}

/// Resident set size of a process in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit (children
/// inherit it) with util-linux `prlimit` on our own pid (the crate has no
/// libc binding); returns the soft limit now in force.
pub fn raise_nofile() -> Option<u64> {
    let read = || -> Option<(String, String)> {
        let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
        let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
        let f: Vec<&str> = line.split_whitespace().collect();
        Some((f.get(3)?.to_string(), f.get(4)?.to_string()))
    };
    let (soft, hard) = read()?;
    if soft != hard {
        let ok = Command::new("prlimit")
            .arg("--pid")
            .arg(std::process::id().to_string())
            .arg(format!("--nofile={hard}:{hard}"))
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("warning: could not raise the open-files limit from {soft} to {hard}");
        }
    }
    read()?.0.parse().ok()
}

/// The release `marquee` binary next to this harness binary.
pub fn default_marquee_bin() -> PathBuf {
    let me = std::env::current_exe().expect("current exe");
    me.with_file_name("marquee")
}

/// CPU time (user + system) a process has used, in clock ticks, from
/// `/proc/PID/stat` (fields 14 and 15, counted after the `)` that ends the
/// command name, which may itself contain spaces).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 if that fails).
pub fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Pids of the processes whose `comm` starts with `prefix` (e.g. `postgres`).
pub fn pids_by_comm(prefix: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.starts_with(prefix))
        })
        .collect()
}

/// Machine-wide (busy, total) jiffies from the first line of `/proc/stat`;
/// busy excludes idle and iowait.
pub fn machine_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 5 {
        return None;
    }
    let total: u64 = v.iter().sum();
    Some((total - v[3] - v[4], total))
}

/// The first three fields of `/proc/loadavg`.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Socket inodes held open by a process (`/proc/PID/fd/* -> socket:[N]`).
pub fn socket_inodes(pid: u32) -> std::collections::HashSet<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Default::default();
    };
    dir.filter_map(|e| {
        let target = std::fs::read_link(e.ok()?.path()).ok()?;
        let t = target.to_str()?;
        t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
    })
    .collect()
}

/// Local TCP port → socket inode for every IPv4/IPv6 TCP socket in this
/// network namespace (`/proc/net/tcp{,6}`).
pub fn tcp_port_inodes() -> std::collections::HashMap<u16, u64> {
    let mut out = std::collections::HashMap::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                continue;
            }
            if let Some(port) = f[1].rsplit(':').next()
                && let Ok(port) = u16::from_str_radix(port, 16)
                && let Ok(inode) = f[9].parse::<u64>()
                && inode != 0
            {
                out.insert(port, inode);
            }
        }
    }
    out
}
