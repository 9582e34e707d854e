//! Organization profiles and per-key stream limits through the admin API
//! and the CLI: create, update, JSON renderings and input errors.

use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

fn cli_out(data_dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(marquee_bin())
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--json")
        .env("MARQUEE_LOG", "warn")
        .env_remove("MARQUEE_STREAM_MAX_CONNECTIONS_PER_KEY")
        .output()
        .unwrap()
}

fn cli(data_dir: &std::path::Path, args: &[&str]) -> Value {
    let out = cli_out(data_dir, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap()
}

#[tokio::test]
async fn admin_api_creates_and_updates_org_profiles() {
    let s = TestServer::start().await;
    let r = s
        .admin(Method::POST, "/admin/v1/orgs")
        .json(&json!({"name": "Fan Co", "profiles": ["revento", "eventium", "revento"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let org: Value = r.json().await.unwrap();
    assert_eq!(org["profiles"], json!(["eventium", "revento"]));
    let id = org["id"].as_str().unwrap().to_owned();
    let got: Value = s
        .admin(Method::GET, &format!("/admin/v1/orgs/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got, org);
    // Without profiles: none enabled.
    let r = s
        .admin(Method::POST, "/admin/v1/orgs")
        .json(&json!({"name": "Plain"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["profiles"], json!([]));

    // PATCH replaces them.
    let r = s
        .admin(Method::PATCH, &format!("/admin/v1/orgs/{id}"))
        .json(&json!({"profiles": ["revolution"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["profiles"].clone(), v["name"].clone()),
        (json!(["revolution"]), json!("Fan Co"))
    );
    let listed: Value = s
        .admin(Method::GET, "/admin/v1/orgs")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mine = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == id.as_str())
        .unwrap();
    assert_eq!(mine["profiles"], json!(["revolution"]));

    // Bad input: 400 invalid_request naming the parameter and the choices.
    let r = s
        .admin(Method::POST, "/admin/v1/orgs")
        .json(&json!({"name": "x", "profiles": ["eventium", "nope"]}))
        .send()
        .await
        .unwrap();
    let e = assert_error(r, 400, "invalid_request").await;
    assert_eq!(e["error"]["param"], "profiles");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("nope") && msg.contains("attendee, eventium, eventory, revento, revolution"),
        "{msg}"
    );
    let r = s
        .admin(Method::POST, "/admin/v1/orgs")
        .json(&json!({"name": "x", "profiles": "eventium"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        assert_error(r, 400, "invalid_request").await["error"]["param"],
        "profiles"
    );
    for body in [
        json!({}),
        json!({"profiles": ["bogus"]}),
        json!({"profiles": [1]}),
    ] {
        let r = s
            .admin(Method::PATCH, &format!("/admin/v1/orgs/{id}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let e = assert_error(r, 400, "invalid_request").await;
        assert!(
            e["error"]["param"].as_str().unwrap().starts_with("profiles"),
            "{e}"
        );
    }
    let r = s
        .admin(Method::PATCH, "/admin/v1/orgs/org_01HZZZZZZZZZZZZZZZZZZZZZZZ")
        .json(&json!({"profiles": []}))
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "not_found").await;
    // The change is unchanged by the refused requests.
    let got: Value = s
        .admin(Method::GET, &format!("/admin/v1/orgs/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["profiles"], json!(["revolution"]));
}

#[tokio::test]
async fn admin_api_sets_key_stream_limits() {
    let s = TestServer::start().await;
    let org = s.create_org("keys").await;
    let r = s
        .admin(Method::POST, &format!("/admin/v1/orgs/{org}/keys"))
        .json(&json!({"tier": "pro", "max_stream_connections": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let k: Value = r.json().await.unwrap();
    assert_eq!(
        (
            k["max_stream_connections"].clone(),
            k["stream_connection_limit"].clone()
        ),
        (json!(2), json!(2))
    );
    let id = k["id"].as_str().unwrap().to_owned();
    let r = s
        .admin(Method::POST, &format!("/admin/v1/orgs/{org}/keys"))
        .json(&json!({"tier": "pro"}))
        .send()
        .await
        .unwrap();
    let plain: Value = r.json().await.unwrap();
    assert_eq!(plain["max_stream_connections"], Value::Null);
    assert_eq!(plain["stream_connection_limit"], 50_000);
    let (_, _) = s.create_key(&org, "free").await;
    let (_, _) = s.create_key(&org, "enterprise").await;
    let list: Value = s
        .admin(Method::GET, &format!("/admin/v1/orgs/{org}/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let limits: Vec<(String, Value)> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["tier"].as_str().unwrap().to_owned(),
                k["stream_connection_limit"].clone(),
            )
        })
        .collect();
    assert!(limits.contains(&("free".into(), json!(0))), "{limits:?}");
    assert!(
        limits.contains(&("enterprise".into(), json!(100_000))),
        "{limits:?}"
    );

    let patch = |body: Value| {
        s.admin(Method::PATCH, &format!("/admin/v1/keys/{id}"))
            .json(&body)
            .send()
    };
    let v: Value = patch(json!({"max_stream_connections": 7}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            v["max_stream_connections"].clone(),
            v["stream_connection_limit"].clone()
        ),
        (json!(7), json!(7))
    );
    let v: Value = patch(json!({"max_stream_connections": null}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            v["max_stream_connections"].clone(),
            v["stream_connection_limit"].clone()
        ),
        (Value::Null, json!(50_000))
    );
    for body in [
        json!({}),
        json!({"max_stream_connections": -1}),
        json!({"max_stream_connections": "many"}),
        json!({"max_stream_connections": 4_294_967_296u64}),
    ] {
        let e = assert_error(patch(body.clone()).await.unwrap(), 400, "invalid_request").await;
        assert_eq!(e["error"]["param"], "max_stream_connections", "{body}: {e}");
    }
    let e = assert_error(
        patch(json!({"tier": "free"})).await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert!(e["error"]["message"].as_str().unwrap().contains("tier"), "{e}");
    let r = s
        .admin(Method::POST, &format!("/admin/v1/orgs/{org}/keys"))
        .json(&json!({"tier": "pro", "max_stream_connections": -3}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        assert_error(r, 400, "invalid_request").await["error"]["param"],
        "max_stream_connections"
    );
    let r = s
        .admin(Method::PATCH, "/admin/v1/keys/key_01HZZZZZZZZZZZZZZZZZZZZZZZ")
        .json(&json!({"max_stream_connections": 1}))
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "not_found").await;
}

#[tokio::test]
async fn cli_creates_orgs_with_profiles_and_sets_key_limits() {
    let dir = tempfile::tempdir().unwrap();
    let org = cli(
        dir.path(),
        &[
            "org",
            "create",
            "Arena",
            "--profile",
            "revento,eventium",
            "--profile",
            "attendee",
        ],
    );
    assert_eq!(org["profiles"], json!(["attendee", "eventium", "revento"]));
    let id = org["id"].as_str().unwrap().to_owned();
    let updated = cli(
        dir.path(),
        &["org", "set-profiles", &id, "--profile", "revolution"],
    );
    assert_eq!(updated["profiles"], json!(["revolution"]));
    let list = cli(dir.path(), &["org", "list"]);
    assert_eq!(list["data"][0]["profiles"], json!(["revolution"]));
    let cleared = cli(dir.path(), &["org", "set-profiles", &id]);
    assert_eq!(cleared["profiles"], json!([]));

    // An unknown profile is refused with the valid ones listed.
    let out = cli_out(
        dir.path(),
        &["org", "create", "Bad", "--profile", "eventium,evntory"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("evntory") && err.contains("attendee, eventium, eventory, revento, revolution"),
        "{err}"
    );
    assert_eq!(
        cli(dir.path(), &["org", "list"])["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Keys: an own limit, shown with the effective one; `default` clears it.
    let key = cli(
        dir.path(),
        &[
            "key",
            "create",
            "--org",
            &id,
            "--tier",
            "pro",
            "--max-stream-connections",
            "2",
        ],
    );
    assert_eq!(
        (
            key["max_stream_connections"].clone(),
            key["stream_connection_limit"].clone()
        ),
        (json!(2), json!(2))
    );
    let key_id = key["id"].as_str().unwrap().to_owned();
    let v = cli(
        dir.path(),
        &["key", "set-limit", &key_id, "--max-stream-connections", "30000"],
    );
    assert_eq!(v["max_stream_connections"], 30_000);
    let v = cli(
        dir.path(),
        &["key", "set-limit", &key_id, "--max-stream-connections", "default"],
    );
    assert_eq!(
        (
            v["max_stream_connections"].clone(),
            v["stream_connection_limit"].clone()
        ),
        (Value::Null, json!(50_000))
    );
    let out = cli_out(
        dir.path(),
        &["key", "set-limit", &key_id, "--max-stream-connections", "lots"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("default"));
    // The per-tier defaults the output reports follow the serve flag's env.
    let out = Command::new(marquee_bin())
        .args(["key", "list", "--org", &id, "--json", "--data-dir"])
        .arg(dir.path())
        .env("MARQUEE_LOG", "warn")
        .env("MARQUEE_STREAM_MAX_CONNECTIONS_PER_KEY", "pro=70000")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["data"][0]["stream_connection_limit"], 70_000);
}
