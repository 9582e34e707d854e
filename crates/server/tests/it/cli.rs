//! The administrative CLI works on the data dir with no server running, and
//! the key it prints authenticates against the real `marquee` process.

use std::process::Command;

use serde_json::Value;

use crate::helpers::*;

fn cli(data_dir: &std::path::Path, args: &[&str]) -> Value {
    let out = Command::new(marquee_bin())
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--json")
        .env("MARQUEE_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.trim().lines().count(),
        1,
        "--json prints exactly one object: {stdout}"
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

#[tokio::test]
async fn cli_creates_lists_and_revokes_keys() {
    let dir = tempfile::tempdir().unwrap();
    let org = cli(dir.path(), &["org", "create", "Stubb's"]);
    let org_id = org["id"].as_str().unwrap().to_owned();
    assert!(org_id.starts_with("org_"));
    let key = cli(
        dir.path(),
        &[
            "key", "create", "--org", &org_id, "--tier", "pro", "--name", "door app",
        ],
    );
    let plaintext = key["key"].as_str().unwrap().to_owned();
    let key_id = key["id"].as_str().unwrap().to_owned();
    assert_eq!(plaintext.len(), 51);
    let list = cli(dir.path(), &["key", "list", "--org", &org_id]);
    assert_eq!(list["data"][0]["id"], key_id.as_str());
    assert!(!list.to_string().contains(&plaintext[8..]));

    // The on-disk database never holds the plaintext key.
    let db = std::fs::read(dir.path().join("marquee.db")).unwrap();
    let needle = plaintext.as_bytes();
    assert!(!db.windows(needle.len()).any(|w| w == needle));

    let s = TestServer::start_in(dir.path(), |_| {}).await;
    assert_eq!(
        s.get(&plaintext, "/v1/messages").send().await.unwrap().status(),
        200
    );
    // Revoking through the CLI while the server runs takes effect at once.
    cli(dir.path(), &["key", "revoke", &key_id]);
    assert_error(
        s.get(&plaintext, "/v1/messages").send().await.unwrap(),
        401,
        "invalid_api_key",
    )
    .await;
    s.stop().await;
}

#[test]
fn cli_reports_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(marquee_bin())
        .args(["key", "create", "--org", "nope", "--tier", "pro", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an organization id"));
}
