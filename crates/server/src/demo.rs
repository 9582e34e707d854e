//! `marquee serve --demo`: a demo organization and key on first start, and a
//! simulated door opening so a newcomer sees messages flowing at once.
//!
//! The simulation publishes through the same ingest and store path as the
//! HTTP API: a venue opens, fans check in through several gates at a rate
//! that ramps up to a peak and tails off (1,920 of the venue's 2,200 places),
//! the attendance engine fires its milestones (the demo sets the
//! organization's thresholds, it never publishes a milestone itself), an artist publishes a merch drop that fans
//! claim, and the doors close. Then the next show starts, with a new event
//! id. Everything goes to the venue channel (`venue:stubbs-austin`, the one
//! the printed examples read) and the show's `event:<id>` channel; the drop
//! also to `artist:khruangbin`.
//!
//! Restarts resume the show where it stopped, never repeat it: where it
//! stands is read back from the log (the newest `venue_opened`, check-in,
//! milestone of that event; a `doors_closed` means it is over), and every
//! step carries an idempotency key (`demo:<event>:<step>`), so a step that
//! was published just before a stop is not published again.
//!
//! Demo mode also lets webhooks reach loopback receivers (127.0.0.0/8,
//! `::1`, `localhost`), so a first webhook to a local receiver works.

use std::net::SocketAddr;
use std::time::Duration;

use marquee_core::Tier;
use marquee_core::cidr::Cidr;
use marquee_core::ids::OrgId;
use marquee_core::message::StoredMessage;
use marquee_store::{MessageQuery, PublishRequest, StoreError};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::admin_ops;
use crate::error::ApiError;
use crate::ingest::PublishBody;
use crate::state::AppState;
use crate::webhooks::WebhookConfig;

const DEMO_FILE: &str = "demo-org";
pub const VENUE: &str = "stubbs-austin";
const ARTIST: &str = "khruangbin";
const GATES: [&str; 4] = ["MAIN", "NORTH", "SOUTH", "VIP"];
pub const CAPACITY: u64 = 2_200;
const MILESTONES: [u64; 5] = [100, 250, 500, 1000, 1500];
/// One-second ticks per show.
const TICKS: u64 = 120;
/// The tick after whose check-ins the drop is published.
const DROP_TICK: u64 = 8;
/// Pause between two shows.
const INTERMISSION: Duration = Duration::from_secs(5);

/// Check-ins in one tick: ramping up to 31/s at minute one, then tailing off.
pub fn rate(tick: u64) -> u64 {
    if tick < 60 {
        1 + tick / 2
    } else {
        31 - (tick - 60) / 2
    }
}

/// Fans checked in over a whole show (1,920: under the capacity).
pub fn show_attendance() -> u64 {
    (0..TICKS).map(rate).sum()
}

/// Lets webhooks reach loopback receivers (unless everything is allowed
/// already), and says so.
pub fn allow_local_receivers(webhooks: &mut WebhookConfig) {
    if webhooks.allow_private {
        return;
    }
    for net in ["127.0.0.0/8", "::1/128"] {
        if let Ok(c) = net.parse::<Cidr>() {
            webhooks.allowed_cidrs.push(c);
        }
    }
    tracing::info!(
        "demo mode: webhooks may go to loopback receivers (127.0.0.0/8, ::1, localhost); \
         without --demo that needs --allow-private-endpoints or --allow-endpoint-cidr"
    );
}

/// How to run the `marquee` command that is running now: `marquee` when
/// that is what PATH finds, else its path.
fn marquee_command() -> String {
    let Ok(exe) = std::env::current_exe().and_then(std::fs::canonicalize) else {
        return "marquee".into();
    };
    let on_path = std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p)
            .any(|d| std::fs::canonicalize(d.join("marquee")).is_ok_and(|found| found == exe))
    });
    if on_path {
        return "marquee".into();
    }
    match std::env::current_dir()
        .ok()
        .and_then(|cwd| exe.strip_prefix(cwd).ok().map(|r| format!("./{}", r.display())))
    {
        Some(rel) => rel,
        None => exe.display().to_string(),
    }
}

fn banner(state: &AppState, addr: SocketAddr, org: &OrgId, key: Option<&str>) -> String {
    // A wildcard listen address is reached on loopback.
    let host = if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    let base = format!("http://{host}");
    let key_text = key.unwrap_or("<the demo key printed on first start>");
    let mut cli = marquee_command();
    let dir = &state.config.data_dir;
    if dir != std::path::Path::new("./marquee-data") && dir != std::path::Path::new("marquee-data") {
        cli.push_str(&format!(" --data-dir {}", dir.display()));
    }
    let mut out = String::from("marquee demo\n");
    out.push_str(&format!("  organization: {org}\n"));
    match key {
        Some(k) => out.push_str(&format!("  API key (pro, shown once): {k}\n")),
        None => out.push_str("  API key: printed on first start; make another (below)\n"),
    }
    out.push_str(&format!(
        "  a door opening at venue:{VENUE} is being simulated; webhooks may go to local receivers\n\n"
    ));
    out.push_str(&format!(
        "what is flowing now (Server-Sent Events; Ctrl-C to stop):\n  \
         curl -N -H 'x-api-key: {key_text}' '{base}/v1/stream/sse?channel=venue:{VENUE}'\n"
    ));
    out.push_str(&format!(
        "the five newest messages:\n  \
         curl -s -H 'x-api-key: {key_text}' '{base}/v1/messages?channel=venue:{VENUE}&order=desc&limit=5'\n"
    ));
    out.push_str(&format!(
        "another key (the CLI works on the data dir while the server runs):\n  \
         {cli} key create --org {org} --tier pro\n"
    ));
    out
}

/// Creates the demo organization and key on first start; prints how to use it.
pub async fn setup(state: &AppState, addr: SocketAddr) -> Result<OrgId, ApiError> {
    let path = state.config.data_dir.join(DEMO_FILE);
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(org) = text.trim().parse::<OrgId>()
        && state.store.get_org(&org).await?.is_some()
    {
        println!("{}", banner(state, addr, &org, None));
        return Ok(org);
    }
    let org = admin_ops::create_org(
        state.store.as_ref(),
        "Demo Venue Group",
        &["revolution".to_owned()],
    )
    .await?;
    let (_, key) = admin_ops::create_key(
        state.store.as_ref(),
        &state.secrets,
        &org.id,
        Tier::Pro,
        Some("demo".into()),
        None,
    )
    .await?;
    std::fs::write(&path, org.id.as_str()).map_err(|e| ApiError::Internal(e.to_string()))?;
    println!("{}", banner(state, addr, &org.id, Some(&key)));
    Ok(org.id)
}

/// Publishes one step of the show under its idempotency key. A step
/// already published (the same key: replayed, or a conflict because its
/// random fields differ this time) is not published again.
async fn publish(state: &AppState, org: &OrgId, step: &Step<'_>, ty: &str, channels: &[String], data: Value) {
    let body = PublishBody {
        event_type: ty.to_owned(),
        channels: channels.to_vec(),
        data: serde_json::value::to_raw_value(&data).expect("json"),
        occurred_at: None,
        idempotency_key: Some(format!("demo:{}:{}", step.event_id, step.name)),
    };
    let rules = match state.ingest.catalogs.org(&state.store, org).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "demo: loading the catalog failed");
            return;
        }
    };
    let result = match state.ingest.validate(body, "", None, &rules) {
        Ok(m) => state
            .store
            .publish(PublishRequest {
                org_id: org.clone(),
                messages: vec![m],
                request_idempotency: None,
            })
            .await
            .map(|_| ()),
        Err(e) => {
            tracing::warn!(error = %e, "demo publish refused");
            return;
        }
    };
    match result {
        Ok(()) | Err(StoreError::Conflict(_)) => {}
        Err(e) => tracing::warn!(error = %e, "demo publish failed"),
    }
}

/// A step of a show: its idempotency key is `demo:<event_id>:<name>`.
struct Step<'a> {
    event_id: &'a str,
    name: String,
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    marquee_core::ids::random_bytes(&mut b);
    u64::from_le_bytes(b)
}

fn now_ms() -> i64 {
    marquee_core::Timestamp::now().as_millis()
}

/// Where a show stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Show {
    pub number: u64,
    pub event_id: String,
    /// Fans checked in so far.
    pub count: u64,
    /// `venue_opened` is published (a resumed show does not open again).
    pub opened: bool,
}

impl Show {
    pub fn fresh(number: u64) -> Self {
        Show {
            number,
            event_id: format!("evt_demo{number}"),
            count: 0,
            opened: false,
        }
    }

    /// The tick and the check-in within it that come next: the tick whose
    /// check-ins reach `count` (at its end, its end-of-tick steps are
    /// repeated, harmlessly: they carry idempotency keys).
    fn position(&self) -> (u64, u64) {
        let mut before = 0;
        for tick in 0..TICKS {
            if self.count <= before + rate(tick) {
                return (tick, self.count - before);
            }
            before += rate(tick);
        }
        (TICKS, 0)
    }
}

/// The newest message of the demo organization matching the filters.
async fn newest(
    state: &AppState,
    org: &OrgId,
    channel: Option<&str>,
    ty: Option<&str>,
) -> Option<StoredMessage> {
    let mut q = MessageQuery {
        channel: channel.map(str::to_owned),
        event_type: ty.map(str::to_owned),
        descending: true,
        limit: 1,
        ..MessageQuery::default()
    };
    // A type within a channel pages by a bounded scan: follow it back.
    for _ in 0..100 {
        let page = state.store.list_messages(org, &q).await.ok()?;
        if let Some(m) = page.messages.into_iter().next() {
            return Some(m);
        }
        match page.scanned_to {
            Some(s) if page.has_more => q.before_seq = Some(s),
            _ => return None,
        }
    }
    None
}

fn data_u64(m: &StoredMessage, field: &str) -> Option<u64> {
    serde_json::from_str::<Value>(m.data.get())
        .ok()?
        .get(field)?
        .as_u64()
}

/// Where the demo stands, read back from the log: the show in progress, or
/// a fresh one after the last that closed.
pub async fn resume_point(state: &AppState, org: &OrgId) -> Show {
    let Some(opened) = newest(state, org, None, Some("venue_opened")).await else {
        return Show::fresh(1);
    };
    let event_id = serde_json::from_str::<Value>(opened.data.get())
        .ok()
        .and_then(|v| v["event_id"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let number = event_id
        .strip_prefix("evt_demo")
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(1);
    let channel = format!("event:{event_id}");
    let last = newest(state, org, Some(&channel), None).await;
    if last.is_none_or(|m| m.event_type.as_str() == "doors_closed") {
        return Show::fresh(number + 1);
    }
    let count = match newest(state, org, Some(&channel), Some("fan_checkin")).await {
        Some(m) => data_u64(&m, "attendance").unwrap_or(0),
        None => 0,
    };
    Show {
        number,
        event_id,
        count,
        opened: true,
    }
}

/// Runs door openings back to back until `stop` flips, resuming the show a
/// previous run left unfinished.
pub async fn simulate(state: AppState, org: OrgId, mut stop: watch::Receiver<bool>) {
    // Milestones are the attendance engine's: the demo only sets its thresholds.
    let thresholds = marquee_core::attendance::Thresholds {
        counts: MILESTONES.to_vec(),
        capacity_percents: Vec::new(),
    };
    if let Err(e) = state.store.put_attendance_settings(&org, &thresholds).await {
        tracing::warn!(error = %e, "demo: setting the milestone thresholds failed");
    }
    let mut show = resume_point(&state, &org).await;
    if show.opened {
        tracing::info!(event = %show.event_id, checked_in = show.count, "demo: resuming the show in progress");
    }
    loop {
        if !run_show(&state, &org, &mut show, &mut stop).await {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(INTERMISSION) => {}
            _ = stop.changed() => return,
        }
        show = Show::fresh(show.number + 1);
    }
}

/// One show from where it stands to its close; false when stopped.
async fn run_show(state: &AppState, org: &OrgId, show: &mut Show, stop: &mut watch::Receiver<bool>) -> bool {
    let event_id = show.event_id.clone();
    let step = |name: String| Step {
        event_id: &event_id,
        name,
    };
    let channels = vec![format!("venue:{VENUE}"), format!("event:{event_id}")];
    let drop_channels = vec![
        format!("venue:{VENUE}"),
        format!("artist:{ARTIST}"),
        format!("event:{event_id}"),
    ];
    let drop_id = format!("drp_demo{}", show.number);
    if !show.opened {
        let data = json!({"venue_id": VENUE, "event_id": event_id, "capacity": CAPACITY, "ts": now_ms()});
        publish(
            state,
            org,
            &step("opened".into()),
            "venue_opened",
            &channels,
            data,
        )
        .await;
        show.opened = true;
    }
    let (first_tick, mut index) = show.position();
    for tick in first_tick..TICKS {
        let rate = rate(tick);
        while index < rate {
            show.count += 1;
            let gate = GATES[(rand_u64() % GATES.len() as u64) as usize];
            let data = json!({
                "fan_id": format!("fan_{:08x}", rand_u64() as u32),
                "event_id": event_id,
                "gate": gate,
                "attendance": show.count,
                "ts": now_ms(),
            });
            publish(
                state,
                org,
                &step(format!("checkin:{}", show.count)),
                "fan_checkin",
                &channels,
                data,
            )
            .await;
            index += 1;
            if index < rate {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(1000 / rate)) => {}
                    _ = stop.changed() => return false,
                }
            }
        }
        index = 0;
        if tick == DROP_TICK {
            let data = json!({"artist_id": ARTIST, "drop_id": drop_id, "event_id": event_id, "title": "Tour poster, signed", "price_usd": 35, "quantity": 200});
            publish(
                state,
                org,
                &step("drop".into()),
                "drop_published",
                &drop_channels,
                data,
            )
            .await;
        }
        if tick > DROP_TICK && tick % 3 == 0 {
            let data = json!({"fan_id": format!("fan_{:08x}", rand_u64() as u32), "drop_id": drop_id, "event_id": event_id, "order_id": format!("ord_{:08x}", rand_u64() as u32), "ts": now_ms()});
            publish(
                state,
                org,
                &step(format!("claim:{tick}")),
                "drop_claimed",
                &drop_channels,
                data,
            )
            .await;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = stop.changed() => return false,
        }
    }
    let data = json!({"venue_id": VENUE, "event_id": event_id, "attendance": show.count, "capacity": CAPACITY, "ts": now_ms()});
    publish(
        state,
        org,
        &step("closed".into()),
        "doors_closed",
        &channels,
        data,
    )
    .await;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_show_stays_under_capacity_and_reaches_its_milestones() {
        let total = show_attendance();
        assert_eq!(total, 1_920);
        assert!(total <= CAPACITY);
        assert!(MILESTONES.iter().all(|m| *m <= total));
    }

    #[test]
    fn a_resumed_show_continues_at_the_next_check_in() {
        let at = |count| {
            Show {
                count,
                ..Show::fresh(1)
            }
            .position()
        };
        assert_eq!(at(0), (0, 0));
        // Tick 0 has one check-in, tick 1 one, tick 2 two.
        assert_eq!(at(1), (0, 1));
        assert_eq!(at(2), (1, 1));
        assert_eq!(at(3), (2, 1));
        assert_eq!(at(show_attendance()), (TICKS - 1, rate(TICKS - 1)));
        assert_eq!(at(show_attendance() + 5), (TICKS, 0));
    }
}
