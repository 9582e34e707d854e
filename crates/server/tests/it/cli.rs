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

/// Runs the CLI; (success, stdout, stderr).
fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(marquee_bin())
        .args(args)
        .env("MARQUEE_LOG", "warn")
        .env_remove("MARQUEE_DATA_DIR")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn read_commands_never_create_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo");
    let m = missing.to_str().unwrap();
    let org = "org_01M89JVQM538DR69SR2HYPCXS4";
    for args in [
        vec!["org", "list"],
        vec!["org", "list", "--json"],
        vec!["key", "list", "--org", org],
        vec!["key", "create", "--org", org, "--tier", "pro"],
        vec!["key", "revoke", "key_01M89JVQM538DR69SR2HYPCXS4"],
    ] {
        let mut a = args.clone();
        a.extend(["--data-dir", m]);
        let (ok, stdout, stderr) = run(&a);
        assert!(!ok, "{args:?} succeeded on a missing data dir");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
        assert!(
            stderr.contains(&format!("no data dir at {m}")),
            "{args:?}: {stderr}"
        );
        assert!(!missing.exists(), "{args:?} created {m}");
    }
    // A directory that holds no database is not a data dir either.
    let (ok, _, stderr) = run(&["org", "list", "--data-dir", dir.path().to_str().unwrap()]);
    assert!(!ok && stderr.contains("no marquee database in"), "{stderr}");
    assert!(!dir.path().join("marquee.db").exists());
}

#[test]
fn key_commands_agree_about_an_unknown_organization() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (ok, _, _) = run(&["org", "create", "real", "--data-dir", d]);
    assert!(ok);
    let unknown = "org_01M89JVQM538DR69SR2HYPCXS4";
    for args in [
        vec!["key", "list", "--org", unknown],
        vec!["key", "list", "--org", unknown, "--json"],
        vec!["key", "create", "--org", unknown, "--tier", "pro"],
    ] {
        let mut a = args.clone();
        a.extend(["--data-dir", d]);
        let (ok, stdout, stderr) = run(&a);
        assert!(!ok && stdout.is_empty(), "{args:?}: {stdout}");
        assert!(stderr.contains("No such organization"), "{args:?}: {stderr}");
    }
}

#[test]
fn duplicate_organization_names_warn_or_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (ok, first, stderr) = run(&["org", "create", "Stubb's", "--data-dir", d]);
    assert!(ok && !stderr.contains("warning"), "{stderr}");
    let first = first.trim().to_owned();
    let (ok, _, stderr) = run(&["org", "create", "Stubb's", "--data-dir", d]);
    assert!(ok, "a duplicate name is allowed");
    assert!(stderr.contains("warning") && stderr.contains(&first), "{stderr}");
    let (ok, stdout, stderr) = run(&["org", "create", "Stubb's", "--unique", "--data-dir", d]);
    assert!(!ok && stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("already exists"), "{stderr}");
    let (ok, list, _) = run(&["org", "list", "--data-dir", d]);
    assert!(ok);
    assert_eq!(list.lines().count(), 2, "{list}");
    let (ok, _, _) = run(&["org", "create", "Elsewhere", "--unique", "--data-dir", d]);
    assert!(ok);
}

#[test]
fn text_output_is_scriptable_and_key_list_shows_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (ok, org, stderr) = run(&["org", "create", "Stubb's", "--data-dir", d]);
    assert!(ok && stderr.contains("created organization"), "{stderr}");
    let org = org.trim();
    assert!(
        org.starts_with("org_") && !org.contains(' '),
        "stdout is the id alone: {org}"
    );
    let (ok, key, stderr) = run(&[
        "key",
        "create",
        "--org",
        org,
        "--tier",
        "pro",
        "--name",
        "door app",
        "--data-dir",
        d,
    ]);
    assert!(ok && stderr.contains("shown only this once"), "{stderr}");
    let key = key.trim();
    assert!(
        key.starts_with("sk_live_") && key.len() == 51,
        "stdout is the key alone: {key}"
    );
    let (ok, list, _) = run(&["key", "list", "--org", org, "--data-dir", d]);
    assert!(ok);
    let fields: Vec<&str> = list.trim().split('\t').collect();
    assert_eq!(fields.len(), 5, "{list}");
    assert!(fields[0].starts_with("key_"));
    assert_eq!(&fields[1..3], ["pro", "door app"]);
    assert!(key.starts_with(fields[3].trim_end_matches('…')), "{list}");
    assert_eq!(fields[4], "active");
    assert!(!list.contains(&key[12..]), "never the key");
    // An organization without keys says so (on stderr) and lists nothing.
    let (_, other, _) = run(&["org", "create", "empty", "--data-dir", d]);
    let (ok, list, stderr) = run(&["key", "list", "--org", other.trim(), "--data-dir", d]);
    assert!(
        ok && list.is_empty() && stderr.contains("no keys yet"),
        "{stderr}"
    );
}

#[test]
fn every_cli_argument_has_help() {
    for cmd in [
        &["org", "create"][..],
        &["org", "list"],
        &["key", "create"],
        &["key", "list"],
        &["key", "revoke"],
        &["migrate"],
    ] {
        let mut a = cmd.to_vec();
        a.push("-h");
        let (ok, help, _) = run(&a);
        assert!(ok, "{cmd:?}");
        let mut args = 0;
        let lines: Vec<&str> = help.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim_start();
            let indent = line.len() - t.len();
            if (2..=6).contains(&indent) && (t.starts_with('-') || t.starts_with('<')) {
                args += 1;
                // The text follows on the same line, or (clap's layout for
                // long texts) on the next, indented further.
                let (_, same) = t.split_once("  ").unwrap_or((t, ""));
                let next = lines.get(i + 1).filter(|n| {
                    let nt = n.trim_start();
                    n.len() - nt.len() > indent + 2 && !nt.is_empty()
                });
                assert!(
                    !same.trim().is_empty() || next.is_some(),
                    "{cmd:?}: no help for `{t}`\n{help}"
                );
            }
        }
        assert!(args >= 2, "{cmd:?}\n{help}");
    }
}
