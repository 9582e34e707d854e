//! `--role`: an API node serves HTTP but delivers no webhooks; a worker node
//! delivers webhooks and answers only health checks. Both share one data set
//! (here one SQLite data dir, started one after the other).

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;
use crate::webhooks::{Receiver, create_endpoint};
use marquee_server::config::Role;

#[tokio::test]
async fn api_nodes_do_not_deliver_and_worker_nodes_serve_only_health() {
    let receiver = Receiver::ok().await;
    let api = TestServer::start_with(|c| {
        c.role = Role::Api;
        c.webhooks.allow_private = true;
    })
    .await;
    let (_, key) = api.tenant().await;
    create_endpoint(&api, &key, json!({"url": receiver.url()})).await;
    api.publish(&key, checkin("venue:v", 1)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.count(), 0, "an api node runs no dispatcher");

    let data_dir = api.data_dir.clone();
    let dir = api.stop().await;
    let worker = TestServer::start_in(&data_dir, |c| {
        c.role = Role::Worker;
        c.webhooks.allow_private = true;
    })
    .await;
    let hits = receiver.wait_for(1, 10).await;
    assert_eq!(
        hits[0].json["data"]["n"], 1,
        "the worker delivers what the api node accepted"
    );
    assert_error(
        worker.get(&key, "/v1/messages").send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    assert_eq!(
        worker
            .http
            .get(worker.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    worker.stop().await;
    drop(dir);
}
