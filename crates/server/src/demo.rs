//! `marquee serve --demo`: a demo organization and key on first start, and a
//! simulated door opening so a newcomer sees messages flowing at once.
//!
//! The simulation publishes through the same ingest and store path as the
//! HTTP API: a venue opens, fans check in through several gates at a rate
//! that ramps up to a peak and tails off, attendance milestones fire, and an
//! artist publishes a merch drop that fans claim. Then the next show starts.

use std::net::SocketAddr;
use std::time::Duration;

use marquee_core::Tier;
use marquee_core::ids::OrgId;
use marquee_store::PublishRequest;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::admin_ops;
use crate::error::ApiError;
use crate::ingest::PublishBody;
use crate::state::AppState;

const DEMO_FILE: &str = "demo-org";
const VENUE: &str = "stubbs-austin";
const ARTIST: &str = "khruangbin";
const GATES: [&str; 4] = ["MAIN", "NORTH", "SOUTH", "VIP"];
const CAPACITY: u64 = 2_200;

/// Creates the demo organization and key on first start; prints how to use it.
pub async fn setup(state: &AppState, addr: SocketAddr) -> Result<OrgId, ApiError> {
    let path = state.config.data_dir.join(DEMO_FILE);
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(org) = text.trim().parse::<OrgId>()
        && state.store.get_org(&org).await?.is_some()
    {
        println!(
            "marquee demo: organization {org} (its key was printed on first start; \
             make another with `marquee key create --org {org} --tier pro`)"
        );
        return Ok(org);
    }
    let org = admin_ops::create_org(state.store.as_ref(), "Demo Venue Group", &[]).await?;
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
    println!("marquee demo organization: {}", org.id);
    println!("demo API key (shown once): {key}");
    println!(
        "try:\n  curl -s -H 'x-api-key: {key}' 'http://{addr}/v1/messages?channel=venue:{VENUE}&limit=5'"
    );
    Ok(org.id)
}

async fn publish(state: &AppState, org: &OrgId, ty: &str, channels: &[String], data: Value) {
    let body = PublishBody {
        event_type: ty.to_owned(),
        channels: channels.to_vec(),
        data: serde_json::value::to_raw_value(&data).expect("json"),
        occurred_at: None,
        idempotency_key: None,
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
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "demo publish failed");
    }
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    marquee_core::ids::random_bytes(&mut b);
    u64::from_le_bytes(b)
}

fn now_ms() -> i64 {
    marquee_core::Timestamp::now().as_millis()
}

/// Runs door openings back to back until `stop` flips.
pub async fn simulate(state: AppState, org: OrgId, mut stop: watch::Receiver<bool>) {
    let mut show = 0u64;
    loop {
        show += 1;
        let event_id = format!("evt_demo{show}");
        let channels = vec![format!("venue:{VENUE}"), format!("event:{event_id}")];
        let artist_channels = vec![format!("artist:{ARTIST}"), format!("event:{event_id}")];
        publish(
            &state,
            &org,
            "venue_opened",
            &channels,
            json!({"venue_id": VENUE, "event_id": event_id, "capacity": CAPACITY, "ts": now_ms()}),
        )
        .await;
        let mut count = 0u64;
        let mut milestones = [100u64, 250, 500, 1000, 1500, 2000].into_iter().peekable();
        let drop_id = format!("drp_demo{show}");
        // 120 one-second ticks: the rate ramps up to ~40/s at minute one, then tails off.
        for tick in 0..120u64 {
            let rate = if tick < 60 {
                1 + tick * 2 / 3
            } else {
                41 - (tick - 60) * 2 / 3
            };
            for i in 0..rate {
                count += 1;
                let gate = GATES[(rand_u64() % GATES.len() as u64) as usize];
                publish(
                    &state,
                    &org,
                    "fan_checkin",
                    &channels,
                    json!({"fan_id": format!("fan_{:08x}", rand_u64() as u32), "event_id": event_id, "gate": gate, "ts": now_ms()}),
                )
                .await;
                if milestones.peek().is_some_and(|m| count >= *m) {
                    let threshold = milestones.next().unwrap_or(count);
                    publish(
                        &state,
                        &org,
                        "attendance_milestone",
                        &channels,
                        json!({"event_id": event_id, "count": count, "capacity": CAPACITY, "threshold": threshold, "ts": now_ms()}),
                    )
                    .await;
                }
                let pause = Duration::from_millis(1000 / rate.max(1));
                if i + 1 < rate {
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = stop.changed() => return,
                    }
                }
            }
            if tick == 20 {
                publish(
                    &state,
                    &org,
                    "drop_published",
                    &artist_channels,
                    json!({"artist_id": ARTIST, "drop_id": drop_id, "title": "Tour poster, signed", "price_usd": 35, "quantity": 200}),
                )
                .await;
            }
            if tick > 20 && tick % 3 == 0 {
                publish(
                    &state,
                    &org,
                    "drop_claimed",
                    &artist_channels,
                    json!({"fan_id": format!("fan_{:08x}", rand_u64() as u32), "drop_id": drop_id, "order_id": format!("ord_{:08x}", rand_u64() as u32), "ts": now_ms()}),
                )
                .await;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = stop.changed() => return,
            }
        }
    }
}
