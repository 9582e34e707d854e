//! API keys: both header forms, revocation, organization scoping, tiers.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn both_header_forms_work_and_bad_keys_are_refused() {
    let s = TestServer::start().await;
    let (_org, key) = s.tenant().await;
    assert_eq!(key.len(), 51);
    assert!(key.starts_with("sk_live_"));
    let r = s
        .http
        .get(s.url("/v1/messages"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "private, no-store");
    let r = s
        .http
        .get(s.url("/v1/messages"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Missing, malformed, and well-formed but unknown keys.
    assert_error(
        s.http.get(s.url("/v1/messages")).send().await.unwrap(),
        401,
        "invalid_api_key",
    )
    .await;
    assert_error(
        s.http
            .get(s.url("/v1/messages"))
            .header("x-api-key", "nope")
            .send()
            .await
            .unwrap(),
        401,
        "invalid_api_key",
    )
    .await;
    let mut forged = key.clone();
    forged.replace_range(50..51, if key.ends_with('A') { "B" } else { "A" });
    assert_error(
        s.http
            .get(s.url("/v1/messages"))
            .header("x-api-key", &forged)
            .send()
            .await
            .unwrap(),
        401,
        "invalid_api_key",
    )
    .await;
}

#[tokio::test]
async fn a_revoked_key_stops_working_on_the_next_request() {
    let s = TestServer::start().await;
    let org = s.create_org("acme").await;
    let (key_id, key) = s.create_key(&org, "pro").await;
    assert_eq!(s.get(&key, "/v1/messages").send().await.unwrap().status(), 200);
    let r = s
        .admin(Method::POST, &format!("/admin/v1/keys/{key_id}/revoke"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["revoked_at"].is_string());
    assert!(v.get("key").is_none(), "secret never shown again");
    assert_error(
        s.get(&key, "/v1/messages").send().await.unwrap(),
        401,
        "invalid_api_key",
    )
    .await;
    // The listing shows the key, its prefix and status, never the secret.
    let list: Value = s
        .admin(Method::GET, &format!("/admin/v1/orgs/{org}/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = list.to_string();
    assert!(!text.contains(&key[8..]), "listing leaks the key");
    assert_eq!(list["data"][0]["prefix"], format!("sk_live_{}", &key[8..12]));
}

#[tokio::test]
async fn another_organizations_message_answers_as_missing() {
    let s = TestServer::start().await;
    let (_a, key_a) = s.tenant().await;
    let (_b, key_b) = s.tenant().await;
    let m = s.publish(&key_a, checkin("venue:shared-name", 1)).await;
    let id = m["id"].as_str().unwrap();
    assert_eq!(
        s.get(&key_a, &format!("/v1/messages/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let theirs = assert_error(
        s.get(&key_b, &format!("/v1/messages/{id}")).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    let missing = assert_error(
        s.get(&key_b, "/v1/messages/msg_01M89JVQM538DR69SR2HYPCXS4")
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    assert_eq!(
        theirs, missing,
        "another org's resource must look exactly like a missing one"
    );
    assert!(s.list_all(&key_b, "").await.is_empty());
    assert!(s.list_all(&key_b, "&channel=venue:shared-name").await.is_empty());
}

#[tokio::test]
async fn admin_api_requires_the_admin_token() {
    let s = TestServer::start().await;
    let r = s
        .http
        .post(s.url("/admin/v1/orgs"))
        .json(&serde_json::json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_error(r, 401, "invalid_api_key").await;
    let r = s
        .http
        .post(s.url("/admin/v1/orgs"))
        .bearer_auth("wrong")
        .json(&serde_json::json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_error(r, 401, "invalid_api_key").await;
    let org = s.create_org("ok").await;
    let r = s
        .admin(Method::POST, &format!("/admin/v1/orgs/{org}/keys"))
        .json(&serde_json::json!({"tier": "platinum"}))
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "invalid_request").await;
    let r = s
        .admin(Method::POST, "/admin/v1/orgs/org_01M89JVQM538DR69SR2HYPCXS4/keys")
        .json(&serde_json::json!({"tier": "pro"}))
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "not_found").await;
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let s = TestServer::start_with(|c| c.rates.free = 1).await;
    let org = s.create_org("small").await;
    let (_, key) = s.create_key(&org, "free").await;
    let mut limited = None;
    for _ in 0..10 {
        let r = s.get(&key, "/v1/messages").send().await.unwrap();
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("a free key at 1 req/s must be limited within 10 requests");
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    assert_error(r, 429, "rate_limited").await;
}

#[tokio::test]
async fn admin_api_is_forbidden_without_a_configured_token() {
    let s = TestServer::start_with(|c| c.admin_token = None).await;
    let r = s.admin(Method::GET, "/admin/v1/orgs").send().await.unwrap();
    assert_error(r, 403, "forbidden").await;
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_is_refused() {
    let s = TestServer::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = marquee_server::ServeConfig::with_data_dir(&s.data_dir);
    let err = marquee_server::run(config, listener, std::future::ready(()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already using the data dir"), "{err}");
}
