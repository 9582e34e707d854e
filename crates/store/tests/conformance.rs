//! The store contract, as one story run against every backend: SQLite
//! always; PostgreSQL joins when its backend exists and
//! `MARQUEE_TEST_DATABASE_URL` is set.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use marquee_core::Tier;
use marquee_core::apikey::{self, Pepper};
use marquee_core::ids::{KeyId, MessageId, OrgId};
use marquee_core::message::{Idempotency, NewMessage, StoredMessage};
use marquee_core::timestamp::Timestamp;
use marquee_store::sqlite::{SqliteOptions, SqliteStore};
use marquee_store::{DynStore, MessageQuery, NewApiKey, PublishRequest, StoreError};
use serde_json::value::RawValue;

fn msg(ty: &str, channels: &[&str], n: u64, key: Option<&str>) -> NewMessage {
    let data = RawValue::from_string(format!("{{\"n\":{n}}}")).unwrap();
    let channels: Vec<_> = channels.iter().map(|c| c.parse().unwrap()).collect();
    NewMessage {
        id: MessageId::generate(),
        event_type: ty.parse().unwrap(),
        idempotency: key.map(|k| Idempotency {
            key: k.into(),
            fingerprint: marquee_core::message::fingerprint(ty, &channels, &data, None),
        }),
        channels,
        data,
        occurred_at: Timestamp::now(),
        dedup: None,
        project: None,
        coalesce: None,
        derived: None,
    }
}

fn n_of(m: &StoredMessage) -> u64 {
    let v: serde_json::Value = serde_json::from_str(m.data.get()).unwrap();
    v["n"].as_u64().unwrap()
}

async fn publish(store: &DynStore, org: &OrgId, messages: Vec<NewMessage>) -> Vec<StoredMessage> {
    store
        .publish(PublishRequest {
            org_id: org.clone(),
            messages,
            request_idempotency: None,
        })
        .await
        .unwrap()
        .messages
}

async fn all(store: &DynStore, org: &OrgId, mut q: MessageQuery) -> Vec<StoredMessage> {
    let mut out = Vec::new();
    q.limit = 7;
    loop {
        let page = store.list_messages(org, &q).await.unwrap();
        if let Some(last) = page.scanned_to.or(page.messages.last().map(|m| m.seq)) {
            q.after_seq = Some(last);
        }
        out.extend(page.messages);
        if !page.has_more {
            return out;
        }
    }
}

/// A type within a channel examines a bounded number of entries per page:
/// a rare type in a big channel answers short pages with `scanned_to`, and
/// following them still finds every match.
async fn filter_scan_is_bounded(store: DynStore) {
    let org = store.create_org("scan", &[]).await.unwrap();
    let first = publish(&store, &org.id, vec![msg("rare", &["venue:big"], 0, None)]).await;
    for chunk in 0..11 {
        let batch = (0..1000)
            .map(|n| msg("common", &["venue:big"], 1 + chunk * 1000 + n, None))
            .collect();
        publish(&store, &org.id, batch).await;
    }
    let last = publish(&store, &org.id, vec![msg("rare", &["venue:big"], 99_999, None)]).await;
    let q = MessageQuery {
        channel: Some("venue:big".into()),
        event_type: Some("rare".into()),
        limit: 10,
        ..MessageQuery::default()
    };
    let page = store.list_messages(&org.id, &q).await.unwrap();
    assert_eq!(page.messages.len(), 1);
    assert_eq!(page.messages[0].seq, first[0].seq);
    assert!(page.has_more, "stopped at the budget, not at the end");
    let resume = page.scanned_to.expect("where the scan stopped");
    assert!(resume > first[0].seq && resume < last[0].seq);
    let rest = store
        .list_messages(
            &org.id,
            &MessageQuery {
                after_seq: Some(resume),
                ..q.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        rest.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![last[0].seq]
    );
    assert!(!rest.has_more && rest.scanned_to.is_none());
    let found = all(&store, &org.id, q).await;
    assert_eq!(
        found.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![first[0].seq, last[0].seq]
    );
    // A full page never needs the budget.
    let common = MessageQuery {
        channel: Some("venue:big".into()),
        event_type: Some("common".into()),
        limit: 5,
        ..MessageQuery::default()
    };
    let page = store.list_messages(&org.id, &common).await.unwrap();
    assert_eq!(page.messages.len(), 5);
    assert!(page.has_more && page.scanned_to.is_none());
}

/// Schema v4: organization profiles, organization-defined event types and
/// per-key stream connection limits.
async fn v4_story(store: DynStore) {
    // Profiles are stored sorted and unique, and can be replaced.
    let profiles = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let org = store
        .create_org("festival", &profiles(&["revento", "eventium", "revento"]))
        .await
        .unwrap();
    assert_eq!(org.profiles, profiles(&["eventium", "revento"]));
    assert_eq!(store.get_org(&org.id).await.unwrap(), Some(org.clone()));
    let listed = store.list_orgs().await.unwrap();
    assert_eq!(listed.iter().find(|o| o.id == org.id), Some(&org));
    let changed = store
        .set_org_profiles(&org.id, &profiles(&["revolution", "attendee"]))
        .await
        .unwrap();
    assert_eq!(changed.profiles, profiles(&["attendee", "revolution"]));
    assert_eq!(
        (changed.id.clone(), changed.name.clone()),
        (org.id.clone(), org.name.clone())
    );
    assert_eq!(store.get_org(&org.id).await.unwrap(), Some(changed));
    let none = store.set_org_profiles(&org.id, &[]).await.unwrap();
    assert!(none.profiles.is_empty());
    assert!(matches!(
        store
            .set_org_profiles(&OrgId::generate(), &profiles(&["eventium"]))
            .await,
        Err(StoreError::NotFound)
    ));
    let plain = store.create_org("plain", &[]).await.unwrap();
    assert!(
        store
            .get_org(&plain.id)
            .await
            .unwrap()
            .unwrap()
            .profiles
            .is_empty()
    );

    // Event types: upsert with a created flag, sorted lists, isolation.
    let schema = r#"{"type":"object","properties":{"gate":{"type":"string"}}}"#;
    let (t, created) = store
        .put_event_type(&org.id, "gate_opened", "A gate opened", schema, None)
        .await
        .unwrap();
    assert!(created);
    assert_eq!(
        (t.name.as_str(), t.description.as_str(), t.schema.as_str()),
        ("gate_opened", "A gate opened", schema)
    );
    assert_eq!(t.created_at, t.updated_at);
    let (a, created) = store
        .put_event_type(&org.id, "attendee_checked_in", "", "{}", None)
        .await
        .unwrap();
    assert!(created);
    let (t2, created) = store
        .put_event_type(
            &org.id,
            "gate_opened",
            "A gate opened (v2)",
            r#"{"type":"object"}"#,
            Some(r#"{"dedup":["/gate"]}"#),
        )
        .await
        .unwrap();
    assert!(!created, "the second put of a name updates it");
    assert_eq!(t.rules, None);
    assert_eq!(
        t2.rules.as_deref(),
        Some(r#"{"dedup":["/gate"]}"#),
        "rules are stored with the schema"
    );
    assert_eq!(t2.created_at, t.created_at, "an update keeps created_at");
    assert!(t2.updated_at >= t.updated_at);
    assert_eq!(t2.description, "A gate opened (v2)");
    assert_eq!(
        store.get_event_type(&org.id, "gate_opened").await.unwrap(),
        Some(t2.clone())
    );
    assert_eq!(
        store.list_event_types(&org.id).await.unwrap(),
        vec![a.clone(), t2.clone()]
    );
    // Another organization sees none of them, and its own type of the same
    // name is a different record.
    assert_eq!(
        store.get_event_type(&plain.id, "gate_opened").await.unwrap(),
        None
    );
    assert!(store.list_event_types(&plain.id).await.unwrap().is_empty());
    assert!(!store.delete_event_type(&plain.id, "gate_opened").await.unwrap());
    let (mine, created) = store
        .put_event_type(&plain.id, "gate_opened", "theirs", "{}", None)
        .await
        .unwrap();
    assert!(created, "the same name in another organization is another type");
    assert_eq!(
        store.get_event_type(&org.id, "gate_opened").await.unwrap(),
        Some(t2)
    );
    assert_eq!(store.list_event_types(&plain.id).await.unwrap(), vec![mine]);
    assert!(matches!(
        store
            .put_event_type(&OrgId::generate(), "x", "", "{}", None)
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(store.delete_event_type(&org.id, "gate_opened").await.unwrap());
    assert!(!store.delete_event_type(&org.id, "gate_opened").await.unwrap());
    assert_eq!(store.get_event_type(&org.id, "gate_opened").await.unwrap(), None);
    assert_eq!(store.list_event_types(&org.id).await.unwrap(), vec![a]);
    assert_eq!(store.list_event_types(&plain.id).await.unwrap().len(), 1);

    // Per-key stream connection limits round-trip, also through the
    // authentication lookup (a cache must not keep the old value).
    let pepper = Pepper::new(b"p4".to_vec());
    let k = apikey::generate(&pepper);
    let rec = store
        .create_key(NewApiKey {
            id: KeyId::generate(),
            org_id: org.id.clone(),
            tier: Tier::Pro,
            name: None,
            public_prefix: k.public_prefix.clone(),
            digest: k.digest.clone(),
            max_stream_connections: Some(2),
        })
        .await
        .unwrap();
    assert_eq!(rec.max_stream_connections, Some(2));
    assert_eq!(store.get_key(&rec.id).await.unwrap(), Some(rec.clone()));
    let by_prefix = |found: Vec<marquee_store::KeyCandidate>| {
        found
            .into_iter()
            .find(|c| c.record.id == rec.id)
            .map(|c| c.record.max_stream_connections)
    };
    assert_eq!(
        by_prefix(store.keys_by_prefix(&k.public_prefix).await.unwrap()),
        Some(Some(2))
    );
    let raised = store.set_key_stream_limit(&rec.id, Some(50_000)).await.unwrap();
    assert_eq!(raised.max_stream_connections, Some(50_000));
    assert_eq!(
        by_prefix(store.keys_by_prefix(&k.public_prefix).await.unwrap()),
        Some(Some(50_000))
    );
    let big = store.set_key_stream_limit(&rec.id, Some(u32::MAX)).await.unwrap();
    assert_eq!(big.max_stream_connections, Some(u32::MAX));
    let cleared = store.set_key_stream_limit(&rec.id, None).await.unwrap();
    assert_eq!(cleared.max_stream_connections, None);
    assert_eq!(
        by_prefix(store.keys_by_prefix(&k.public_prefix).await.unwrap()),
        Some(None)
    );
    assert_eq!(store.list_keys(&org.id).await.unwrap(), vec![cleared]);
    assert!(matches!(
        store.set_key_stream_limit(&KeyId::generate(), Some(1)).await,
        Err(StoreError::NotFound)
    ));
}

/// Newest first: `descending` pages walk back from the head (or from
/// `before_seq`), with every filter, and a bounded channel + type scan walks
/// back by `scanned_to` without missing a match.
async fn descending_pages(store: DynStore) {
    let org = store.create_org("desc", &[]).await.unwrap();
    let mut seqs = Vec::new();
    for n in 0..10u64 {
        let ty = if n % 2 == 0 { "even" } else { "odd" };
        let ch = if n < 5 { "venue:a" } else { "venue:b" };
        seqs.push(publish(&store, &org.id, vec![msg(ty, &[ch], n, None)]).await[0].seq);
    }
    let page = |q: MessageQuery| {
        let store = store.clone();
        let org = org.id.clone();
        async move {
            let p = store.list_messages(&org, &q).await.unwrap();
            (p.messages.iter().map(n_of).collect::<Vec<_>>(), p.has_more)
        }
    };
    let newest = MessageQuery {
        descending: true,
        limit: 3,
        ..MessageQuery::default()
    };
    assert_eq!(page(newest.clone()).await, (vec![9, 8, 7], true));
    let back = MessageQuery {
        before_seq: Some(seqs[7]),
        ..newest.clone()
    };
    assert_eq!(page(back.clone()).await, (vec![6, 5, 4], true));
    let bounded = MessageQuery {
        after_seq: Some(seqs[4]),
        ..back
    };
    assert_eq!(page(bounded).await, (vec![6, 5], false));
    let by_channel = MessageQuery {
        channel: Some("venue:a".into()),
        ..newest.clone()
    };
    assert_eq!(page(by_channel.clone()).await, (vec![4, 3, 2], true));
    let by_type = MessageQuery {
        event_type: Some("odd".into()),
        ..newest.clone()
    };
    assert_eq!(page(by_type).await, (vec![9, 7, 5], true));
    let both = MessageQuery {
        event_type: Some("even".into()),
        ..by_channel
    };
    assert_eq!(page(both).await, (vec![4, 2, 0], false));
    // Ascending with an upper bound.
    let asc = MessageQuery {
        before_seq: Some(seqs[3]),
        limit: 10,
        ..MessageQuery::default()
    };
    assert_eq!(page(asc).await, (vec![0, 1, 2], false));
    // A rare type in a big channel, newest first: short pages, and following
    // `scanned_to` backwards finds both matches.
    let rare_old = publish(&store, &org.id, vec![msg("rare", &["venue:big"], 100, None)]).await;
    for chunk in 0..11u64 {
        let batch = (0..1000)
            .map(|n| msg("common", &["venue:big"], 1000 + chunk * 1000 + n, None))
            .collect();
        publish(&store, &org.id, batch).await;
    }
    let rare_new = publish(&store, &org.id, vec![msg("rare", &["venue:big"], 101, None)]).await;
    let mut q = MessageQuery {
        channel: Some("venue:big".into()),
        event_type: Some("rare".into()),
        descending: true,
        limit: 10,
        ..MessageQuery::default()
    };
    let mut found = Vec::new();
    let mut pages = 0;
    loop {
        pages += 1;
        let p = store.list_messages(&org.id, &q).await.unwrap();
        found.extend(p.messages.iter().map(|m| m.seq));
        if let Some(s) = p.scanned_to.or(p.messages.last().map(|m| m.seq)) {
            q.before_seq = Some(s);
        }
        if !p.has_more {
            break;
        }
    }
    assert_eq!(found, vec![rare_new[0].seq, rare_old[0].seq]);
    assert!(pages >= 2, "the budget bounds each page");
}

/// The story every backend must pass.
async fn story(store: DynStore) {
    // Organizations and keys.
    let org = store.create_org("a", &[]).await.unwrap();
    let other = store.create_org("b", &[]).await.unwrap();
    assert_eq!(store.get_org(&org.id).await.unwrap(), Some(org.clone()));
    assert!(store.list_orgs().await.unwrap().len() >= 2);
    let pepper = Pepper::new(b"p".to_vec());
    let k = apikey::generate(&pepper);
    let rec = store
        .create_key(NewApiKey {
            id: KeyId::generate(),
            org_id: org.id.clone(),
            tier: Tier::Pro,
            name: Some("door".into()),
            public_prefix: k.public_prefix.clone(),
            digest: k.digest.clone(),
            max_stream_connections: None,
        })
        .await
        .unwrap();
    let found = store.keys_by_prefix(&k.public_prefix).await.unwrap();
    assert!(
        found
            .iter()
            .any(|c| c.record.id == rec.id && k.digest.ct_eq(&c.digest))
    );
    assert_eq!(store.list_keys(&org.id).await.unwrap(), vec![rec.clone()]);
    let revoked = store.revoke_key(&rec.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    let found = store.keys_by_prefix(&k.public_prefix).await.unwrap();
    assert!(
        found.iter().all(|c| c.record.revoked_at.is_some()),
        "revocation visible at once"
    );
    assert!(matches!(
        store.revoke_key(&KeyId::generate()).await,
        Err(StoreError::NotFound)
    ));
    let bad = store
        .create_key(NewApiKey {
            id: KeyId::generate(),
            org_id: OrgId::generate(),
            tier: Tier::Free,
            name: None,
            public_prefix: "abcd".into(),
            digest: k.digest.clone(),
            max_stream_connections: None,
        })
        .await;
    assert!(
        matches!(bad, Err(StoreError::NotFound)),
        "a key needs an existing org"
    );

    // Publishing, ordering, filters, isolation.
    let first = publish(
        &store,
        &org.id,
        (0..10)
            .map(|n| msg("fan_checkin", &["venue:v"], n, None))
            .collect(),
    )
    .await;
    assert!(first.windows(2).all(|w| w[0].seq < w[1].seq));
    publish(
        &store,
        &other.id,
        vec![msg("fan_checkin", &["venue:v"], 100, None)],
    )
    .await;
    publish(
        &store,
        &org.id,
        vec![msg("venue_opened", &["venue:w", "event:e"], 10, None)],
    )
    .await;
    assert_eq!(all(&store, &org.id, MessageQuery::default()).await.len(), 11);
    let by_channel = MessageQuery {
        channel: Some("venue:w".into()),
        ..Default::default()
    };
    assert_eq!(all(&store, &org.id, by_channel).await.len(), 1);
    let by_type = MessageQuery {
        event_type: Some("fan_checkin".into()),
        ..Default::default()
    };
    assert_eq!(all(&store, &org.id, by_type).await.len(), 10);
    assert_eq!(all(&store, &other.id, MessageQuery::default()).await.len(), 1);
    let got = store.get_message(&org.id, &first[0].id).await.unwrap().unwrap();
    assert_eq!(got.id, first[0].id);
    assert_eq!(got.data.get(), first[0].data.get());
    assert!(
        store
            .get_message(&other.id, &first[0].id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.head_seq().await.unwrap() >= first[9].seq);
    let since = MessageQuery {
        since: Some(first[5].received_at),
        ..Default::default()
    };
    let s = all(&store, &org.id, since).await;
    assert!(s.iter().all(|m| m.received_at >= first[5].received_at));
    assert!(s.iter().any(|m| m.id == first[5].id));

    // Idempotency: replay, conflict, duplicates inside one request.
    let a = publish(&store, &org.id, vec![msg("t", &["venue:i"], 1, Some("k1"))]).await;
    let again = store
        .publish(PublishRequest {
            org_id: org.id.clone(),
            messages: vec![msg("t", &["venue:i"], 1, Some("k1"))],
            request_idempotency: None,
        })
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.messages[0].id, a[0].id);
    let conflict = store
        .publish(PublishRequest {
            org_id: org.id.clone(),
            messages: vec![msg("t", &["venue:i"], 2, Some("k1"))],
            request_idempotency: None,
        })
        .await;
    assert!(matches!(conflict, Err(StoreError::Conflict(_))));
    let twice = publish(
        &store,
        &org.id,
        vec![
            msg("t", &["venue:i"], 3, Some("k2")),
            msg("t", &["venue:i"], 3, Some("k2")),
        ],
    )
    .await;
    assert_eq!(twice[0].id, twice[1].id);
    // The key is per organization.
    let theirs = publish(&store, &other.id, vec![msg("t", &["venue:i"], 1, Some("k1"))]).await;
    assert_ne!(theirs[0].id, a[0].id);

    // Concurrent publishers: seq order = commit order, every message listed once.
    let seen = Arc::new(Mutex::new(Vec::<u64>::new()));
    let s2 = seen.clone();
    store.add_commit_listener(Arc::new(move |ms: &[Arc<StoredMessage>]| {
        s2.lock().unwrap().extend(ms.iter().map(|m| m.seq));
    }));
    let mut tasks = Vec::new();
    for w in 0..8u64 {
        let (store, org) = (store.clone(), org.id.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                publish(&store, &org, vec![msg("c", &["venue:c"], w * 1000 + i, None)]).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let q = MessageQuery {
        channel: Some("venue:c".into()),
        ..Default::default()
    };
    let c = all(&store, &org.id, q).await;
    assert_eq!(c.len(), 400);
    assert_eq!(c.iter().map(n_of).collect::<HashSet<_>>().len(), 400);
    let notified = seen.lock().unwrap().clone();
    assert_eq!(notified.len(), 400, "every commit is announced");
    assert!(
        notified.windows(2).all(|w| w[0] < w[1]),
        "announced in commit order"
    );

    // Retention.
    let before = store.head_seq().await.unwrap();
    let deleted = store
        .prune(Timestamp::now().saturating_add_micros(1), 100_000)
        .await
        .unwrap();
    assert!(deleted >= 400);
    assert!(all(&store, &org.id, MessageQuery::default()).await.is_empty());
    assert_eq!(store.retained_from_seq().await.unwrap(), before + 1);
    let next = publish(&store, &org.id, vec![msg("t", &["venue:z"], 1, None)]).await;
    assert!(next[0].seq > before, "seq is never reused after pruning");
    store.ping().await.unwrap();
}

#[tokio::test]
async fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store: DynStore = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    story(store.clone()).await;
    v4_story(store.clone()).await;
    descending_pages(store.clone()).await;
    filter_scan_is_bounded(store).await;
}

#[tokio::test]
async fn sqlite_keeps_its_sequence_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let last = {
        let store: DynStore = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
        let org = store.create_org("a", &[]).await.unwrap();
        let ms = publish(
            &store,
            &org.id,
            (0..5).map(|n| msg("t", &["a:b"], n, None)).collect(),
        )
        .await;
        store
            .prune(Timestamp::now().saturating_add_micros(1), 100)
            .await
            .unwrap();
        ms[4].seq
    };
    let store: DynStore = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    let org = store.create_org("b", &[]).await.unwrap();
    let m = publish(&store, &org.id, vec![msg("t", &["a:b"], 9, None)]).await;
    assert!(m[0].seq > last, "an emptied log does not restart its sequence");
}

/// A fresh schema on the test database, or `None` (with the reason printed)
/// when `MARQUEE_TEST_DATABASE_URL` is not set.
async fn pg_store(tag: &str) -> Option<(marquee_store::postgres::PgStore, String, String)> {
    let Ok(url) = std::env::var("MARQUEE_TEST_DATABASE_URL") else {
        skip(NO_PG);
        return None;
    };
    let schema = format!("mq_{tag}_{}", MessageId::generate().as_str()[4..].to_lowercase());
    let store = marquee_store::postgres::PgStore::connect(&url, Some(&schema))
        .await
        .unwrap();
    Some((store, url, schema))
}

async fn drop_schema(url: &str, schema: &str) {
    if let Ok((client, conn)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await {
        tokio::spawn(conn);
        let _ = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await;
    }
}

#[tokio::test]
async fn postgres_store_conforms() {
    let Some((store, url, schema)) = pg_store("conf").await else {
        return;
    };
    let store: DynStore = Arc::new(store);
    story(store.clone()).await;
    v4_story(store.clone()).await;
    descending_pages(store.clone()).await;
    filter_scan_is_bounded(store).await;
    drop_schema(&url, &schema).await;
}

/// Two nodes commit concurrently, one of them through a transaction that
/// takes the log lock and commits late on purpose, while a reader follows
/// cursors: it must see every message exactly once.
#[tokio::test]
async fn postgres_interleaved_commits_never_skip_a_cursor() {
    let Some((a, url, schema)) = pg_store("interleave").await else {
        return;
    };
    let b = marquee_store::postgres::PgStore::connect(&url, Some(&schema))
        .await
        .unwrap();
    let a: DynStore = Arc::new(a);
    let b: DynStore = Arc::new(b);
    let org = a.create_org("o", &[]).await.unwrap().id;
    // A slow transaction: holds the log lock for 300 ms before node B's
    // publishes may proceed.
    let mut cfg: tokio_postgres::Config = url.parse().unwrap();
    cfg.options(format!("-c search_path={schema}"));
    let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let slow = tokio::spawn(async move {
        client.batch_execute("BEGIN").await.unwrap();
        client
            .batch_execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '/marquee-log'))")
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        client.batch_execute("COMMIT").await.unwrap();
    });
    let mut writers = Vec::new();
    for (w, node) in [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
    {
        let org = org.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..60u64 {
                publish(
                    &node,
                    &org,
                    vec![msg("t", &["venue:x"], w as u64 * 1000 + i, None)],
                )
                .await;
            }
        }));
    }
    let reader = {
        let (b, org) = (b.clone(), org.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut after = None;
            for _ in 0..2_000 {
                let page = b
                    .list_messages(
                        &org,
                        &MessageQuery {
                            after_seq: after,
                            limit: 13,
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap();
                if let Some(last) = page.messages.last() {
                    after = Some(last.seq);
                }
                seen.extend(page.messages.iter().map(n_of));
                if seen.len() >= 240 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            seen
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    slow.await.unwrap();
    let seen = reader.await.unwrap();
    assert_eq!(seen.len(), 240, "the cursor reader missed messages");
    assert_eq!(
        seen.iter().collect::<HashSet<_>>().len(),
        240,
        "the cursor reader saw a message twice"
    );
    drop_schema(&url, &schema).await;
}

// ---------------------------------------------------------------------------
// Webhooks: the same story against every backend.

mod webhook_story {
    use std::sync::{Arc, Mutex};

    use marquee_core::ids::{AttemptId, EndpointId, OrgId};
    use marquee_core::timestamp::Timestamp;
    use marquee_core::webhook::EndpointFilter;
    use marquee_core::wire::Format;
    use marquee_store::webhooks::{
        AttemptOutcome, AttemptQuery, AttemptRecord, ClaimRequest, ClaimedDelivery, EndpointRecord, Handoff,
        OutcomePolicy, ReplayFrom, Transition,
    };
    use marquee_store::{DynStore, MessageQuery, StoreError};

    use super::{msg, publish};

    fn endpoint(org: &OrgId, types: &str, ordered: bool) -> EndpointRecord {
        EndpointRecord {
            id: EndpointId::generate(),
            org_id: org.clone(),
            url: "https://example.com/hook".into(),
            description: Some("d".into()),
            filter: EndpointFilter::from_texts(types, ""),
            format: Format::standard(),
            rate_limit: None,
            max_in_flight: 8,
            ordered,
            enabled: true,
            disabled_reason: None,
            secret_sealed: vec![1, 2, 3],
            previous_secret_sealed: None,
            previous_secret_until: None,
            failing_since: None,
            created_at: Timestamp::now(),
            updated_at: Timestamp::now(),
        }
    }

    fn req(ep: &EndpointRecord, limit: usize) -> Vec<ClaimRequest> {
        vec![ClaimRequest {
            endpoint_id: ep.id.clone(),
            limit,
            ordered: ep.ordered,
        }]
    }

    async fn claim(store: &DynStore, ep: &EndpointRecord, limit: usize) -> Vec<ClaimedDelivery> {
        let now = Timestamp::now();
        store
            .claim_deliveries(req(ep, limit), now, now.saturating_add_micros(60_000_000))
            .await
            .unwrap()
    }

    fn outcome(d: &ClaimedDelivery, status: u16, transition: Transition) -> AttemptOutcome {
        AttemptOutcome {
            attempt: AttemptRecord {
                id: AttemptId::generate(),
                delivery_id: d.id.clone(),
                org_id: d.message.org_id.clone(),
                endpoint_id: d.endpoint_id.clone(),
                message_id: Some(d.message.id.clone()),
                attempt_no: d.attempt_count + 1,
                started_at: Timestamp::now(),
                duration_us: 1_000,
                status_code: Some(status),
                succeeded: (200..300).contains(&status),
                error_kind: (!(200..300).contains(&status)).then(|| "http_status".to_owned()),
                response_headers: "{}".into(),
                response_body: "ok".into(),
            },
            transition,
            message_type: d.message.event_type.as_str().to_owned(),
            disable: None,
        }
    }

    const POLICY: OutcomePolicy = OutcomePolicy {
        disable_after_us: i64::MAX,
        failing_after: 4,
    };

    pub async fn run(store: DynStore) {
        let announced: Arc<Mutex<Vec<String>>> = Arc::default();
        {
            let announced = announced.clone();
            store.add_commit_listener(Arc::new(move |ms| {
                if let Ok(mut a) = announced.lock() {
                    a.extend(ms.iter().map(|m| m.event_type.as_str().to_owned()));
                }
            }));
        }
        let org = store.create_org("hooks", &[]).await.unwrap();
        let other = store.create_org("other", &[]).await.unwrap();
        // Endpoints: create, read, list, update; scoped to their organization.
        let fans = endpoint(&org.id, "fan_*", false);
        // Adaptive concurrency is the sentinel 0, stored and read back as is.
        let orders = EndpointRecord {
            max_in_flight: marquee_store::webhooks::ADAPTIVE_MAX_IN_FLIGHT,
            ..endpoint(&org.id, "order.*", true)
        };
        let elsewhere = endpoint(&other.id, "", false);
        for e in [&fans, &orders, &elsewhere] {
            store.create_endpoint(e.clone()).await.unwrap();
        }
        let got = store.get_endpoint(&org.id, &fans.id).await.unwrap().unwrap();
        assert_eq!(got.filter, fans.filter);
        assert_eq!((got.url.as_str(), got.max_in_flight), (fans.url.as_str(), 8));
        let got = store.get_endpoint(&org.id, &orders.id).await.unwrap().unwrap();
        assert_eq!(got.max_in_flight, 0);
        assert_eq!(got.secret_sealed, vec![1, 2, 3]);
        assert!(store.get_endpoint(&other.id, &fans.id).await.unwrap().is_none());
        let page = store.list_endpoints(&org.id, None, 1).await.unwrap();
        assert_eq!((page.endpoints.len(), page.has_more), (1, true));
        let page2 = store
            .list_endpoints(&org.id, Some(&page.endpoints[0].id), 10)
            .await
            .unwrap();
        assert_eq!((page2.endpoints.len(), page2.has_more), (1, false));
        assert!(store.all_endpoints().await.unwrap().len() >= 3);
        let mut changed = fans.clone();
        changed.description = Some("fans".into());
        changed.rate_limit = Some(50);
        changed.updated_at = fans.updated_at.saturating_add_micros(1);
        store
            .update_endpoint(changed.clone(), fans.updated_at)
            .await
            .unwrap();
        // An update based on a stale read is refused, not applied.
        let mut stale = fans.clone();
        stale.enabled = false;
        assert!(matches!(
            store.update_endpoint(stale, fans.updated_at).await,
            Err(StoreError::Conflict(_))
        ));
        let got = store.get_endpoint(&org.id, &fans.id).await.unwrap().unwrap();
        assert_eq!(
            (got.description.as_deref(), got.rate_limit),
            (Some("fans"), Some(50))
        );
        let mut foreign = fans.clone();
        foreign.org_id = other.id.clone();
        assert!(matches!(
            store.update_endpoint(foreign, changed.updated_at).await,
            Err(StoreError::NotFound)
        ));

        // Publishing creates one delivery per matching endpoint, in the commit.
        let published = publish(
            &store,
            &org.id,
            vec![
                msg("fan_checkin", &["venue:a"], 0, None),
                msg("order.completed", &["event:e"], 1, None),
                msg("fan_checkin", &["venue:a"], 2, None),
                msg("venue_opened", &["venue:a"], 3, None),
                msg("order.completed", &["event:e"], 4, None),
                msg("fan_checkin", &["venue:b"], 5, None),
            ],
        )
        .await;
        let pending = store.pending_endpoints().await.unwrap();
        assert!(pending.iter().any(|(e, _)| *e == fans.id));
        assert!(pending.iter().any(|(e, _)| *e == orders.id));
        assert!(!pending.iter().any(|(e, _)| *e == elsewhere.id));

        // Claimed once: a second claim gets nothing while leased.
        let c = claim(&store, &fans, 10).await;
        assert_eq!(c.len(), 3);
        assert!(c.iter().all(|d| d.message.event_type.as_str() == "fan_checkin"));
        assert!(c.iter().all(|d| d.attempts == 0 && d.attempt_count == 0));
        assert!(claim(&store, &fans, 10).await.is_empty(), "leased");
        // Ordered: only the oldest, and nothing more while it is in flight.
        let o = claim(&store, &orders, 10).await;
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].message.id, published[1].id);
        assert!(
            claim(&store, &orders, 10).await.is_empty(),
            "ordered: one in flight"
        );

        // Results: delivered, retry (due at once), exhausted.
        let by_n = |n: usize| c.iter().find(|d| d.message.id == published[n].id).unwrap();
        let (d0, d2, d5) = (by_n(0), by_n(2), by_n(5));
        let head_before = store.head_seq().await.unwrap();
        let summary = store
            .record_attempts(
                vec![
                    outcome(d0, 200, Transition::Delivered),
                    outcome(
                        d2,
                        500,
                        Transition::Retry {
                            next_at: Timestamp::now().saturating_sub_micros(1),
                        },
                    ),
                    outcome(d5, 500, Transition::Exhausted),
                    outcome(&o[0], 204, Transition::Delivered),
                ],
                POLICY,
            )
            .await
            .unwrap();
        assert!(summary.disabled.is_empty());
        // The exhaustion is an operational message in the org's own log,
        // after everything committed before it.
        let ops = super::all(
            &store,
            &org.id,
            MessageQuery {
                channel: Some(format!("endpoint:{}", fans.id).parse().unwrap()),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].event_type.as_str(), "message.attempt.exhausted");
        assert!(ops[0].seq > head_before);
        assert!(
            announced
                .lock()
                .unwrap()
                .iter()
                .any(|t| t == "message.attempt.exhausted"),
            "operational messages reach the commit listeners"
        );
        // The ordered endpoint's next one goes once the head is settled.
        let o2 = claim(&store, &orders, 10).await;
        assert_eq!(o2.len(), 1);
        assert_eq!(o2[0].message.id, published[4].id);
        // The retry is due again, with its schedule position.
        let r = claim(&store, &fans, 10).await;
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].id, d2.id, "the delivery keeps its id across retries");
        assert_eq!((r[0].attempts, r[0].attempt_count), (1, 1));
        // A lease that expired (the node died) is claimed again.
        let later = Timestamp::now().saturating_add_micros(61_000_000);
        let again = store
            .claim_deliveries(req(&fans, 10), later, later.saturating_add_micros(60_000_000))
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].id, d2.id);

        // Stats and the attempt log.
        let s = store
            .endpoint_stats(&org.id, &fans.id, Timestamp::now())
            .await
            .unwrap();
        assert_eq!((s.delivered, s.exhausted, s.pending, s.retrying), (1, 1, 1, 1));
        assert!(s.last_success_at.is_some() && s.last_failure_at.is_some());
        assert_eq!((s.attempts_last_hour, s.succeeded_last_hour), (3, 1));
        assert!(matches!(
            store.endpoint_stats(&other.id, &fans.id, Timestamp::now()).await,
            Err(StoreError::NotFound)
        ));
        let q = AttemptQuery {
            endpoint_id: Some(fans.id.clone()),
            succeeded: Some(false),
            limit: 1,
            ..Default::default()
        };
        let p1 = store.list_attempts(&org.id, &q).await.unwrap();
        assert_eq!((p1.attempts.len(), p1.has_more), (1, true));
        let p2 = store
            .list_attempts(
                &org.id,
                &AttemptQuery {
                    after: Some(p1.attempts[0].id.clone()),
                    ..q.clone()
                },
            )
            .await
            .unwrap();
        assert_eq!((p2.attempts.len(), p2.has_more), (1, false));
        assert!(!p2.attempts[0].succeeded);
        assert_eq!(p2.attempts[0].status_code, Some(500));
        let by_msg = store
            .list_attempts(
                &org.id,
                &AttemptQuery {
                    message_id: Some(published[0].id.clone()),
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(by_msg.attempts.len(), 1);
        assert_eq!(by_msg.attempts[0].response_body, "ok");
        assert!(
            store
                .list_attempts(&other.id, &q)
                .await
                .unwrap()
                .attempts
                .is_empty()
        );

        // Recover re-queues the exhausted one (the leased retry is in flight).
        let n = store
            .recover(
                &org.id,
                &fans.id,
                Timestamp::from_micros(0),
                Timestamp::now().saturating_add_micros(1_000_000),
            )
            .await
            .unwrap();
        assert_eq!(n, 1);
        let rec = claim(&store, &fans, 10).await;
        assert_eq!(rec.len(), 1);
        assert_eq!((rec[0].id.clone(), rec[0].attempts), (d5.id.clone(), 0));
        // Resend a delivered message: same delivery row, pending again.
        assert_eq!(
            store
                .resend(&org.id, &published[0].id, Some(&fans.id))
                .await
                .unwrap(),
            1
        );
        let rs = claim(&store, &fans, 10).await;
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].id, d0.id);
        assert!(matches!(
            store.resend(&other.id, &published[0].id, None).await,
            Err(StoreError::NotFound)
        ));
        // Replay: every logged message matching the endpoint, in chunks.
        let first = store
            .replay_chunk(&org.id, &orders.id, ReplayFrom::AfterSeq(0), 2)
            .await
            .unwrap();
        let mut queued = first.queued;
        let mut next = first.next;
        while let Some(after) = next {
            let p = store
                .replay_chunk(&org.id, &orders.id, ReplayFrom::AfterSeq(after), 2)
                .await
                .unwrap();
            queued += p.queued;
            next = p.next;
        }
        assert_eq!(queued, 2);
        let since = store
            .replay_chunk(
                &org.id,
                &orders.id,
                ReplayFrom::Since(Timestamp::from_micros(0)),
                100,
            )
            .await
            .unwrap();
        assert_eq!((since.queued, since.next), (2, None));

        // 410 Gone disables the endpoint, announced in the log; a disabled
        // endpoint gets no new deliveries.
        let mut gone = outcome(&rs[0], 410, Transition::Exhausted);
        gone.disable = Some("the endpoint answered 410 Gone".into());
        let summary = store.record_attempts(vec![gone], POLICY).await.unwrap();
        assert_eq!(summary.disabled, vec![fans.id.clone()]);
        let got = store.get_endpoint(&org.id, &fans.id).await.unwrap().unwrap();
        assert!(!got.enabled);
        assert!(got.failing_since.is_some());
        let types: Vec<String> = super::all(
            &store,
            &org.id,
            MessageQuery {
                channel: Some(format!("endpoint:{}", fans.id).parse().unwrap()),
                ..Default::default()
            },
        )
        .await
        .iter()
        .map(|m| m.event_type.as_str().to_owned())
        .collect();
        assert!(types.contains(&"endpoint.disabled".to_owned()), "{types:?}");
        assert!(
            !store
                .pending_endpoints()
                .await
                .unwrap()
                .iter()
                .any(|(e, _)| *e == fans.id)
        );
        // A test ping is logged without touching deliveries.
        let mut ping = outcome(&o2[0], 200, Transition::None);
        ping.attempt.message_id = None;
        ping.message_type = "marquee.test".into();
        store.record_attempts(vec![ping], POLICY).await.unwrap();

        // Delete takes the deliveries along.
        assert!(store.delete_endpoint(&org.id, &orders.id).await.unwrap());
        assert!(!store.delete_endpoint(&org.id, &orders.id).await.unwrap());
        assert!(!store.delete_endpoint(&org.id, &elsewhere.id).await.unwrap());
        assert!(store.get_endpoint(&org.id, &orders.id).await.unwrap().is_none());
        assert!(claim(&store, &orders, 10).await.is_empty());
        store.release_all_leases().await.unwrap();
    }

    /// The delivery handoff: deliveries of unordered endpoints are born
    /// leased and handed over after the commit; ordered ones are claimed;
    /// released leases are claimable at once; without a handoff nothing is
    /// born leased.
    pub async fn handoff(store: DynStore) {
        let org = store.create_org("handoff", &[]).await.unwrap();
        let fans = endpoint(&org.id, "fan_*", false);
        let queue = endpoint(&org.id, "fan_*", true);
        store.create_endpoint(fans.clone()).await.unwrap();
        store.create_endpoint(queue.clone()).await.unwrap();
        let handed: Arc<Mutex<Vec<ClaimedDelivery>>> = Arc::default();
        let saturated: Arc<Mutex<std::collections::HashSet<EndpointId>>> = Arc::default();
        {
            let handed = handed.clone();
            store.set_delivery_handoff(Some(Handoff {
                lease: std::time::Duration::from_secs(60),
                deliver: Arc::new(move |v: Vec<ClaimedDelivery>| handed.lock().unwrap().extend(v)),
                saturated: saturated.clone(),
            }));
        }
        let published = publish(
            &store,
            &org.id,
            vec![
                msg("fan_checkin", &[], 1, None),
                msg("fan_checkin", &[], 2, None),
                msg("order_completed", &[], 3, None),
            ],
        )
        .await;
        let got: Vec<ClaimedDelivery> = handed.lock().unwrap().clone();
        assert_eq!(
            got.len(),
            2,
            "one per matching message, only for the unordered endpoint"
        );
        for (d, m) in got.iter().zip(&published) {
            assert_eq!(d.endpoint_id, fans.id);
            assert_eq!(d.message.seq, m.seq);
            assert_eq!(d.message.id, m.id);
            assert_eq!((d.attempts, d.attempt_count), (0, 0));
            assert!(d.lease_until > Timestamp::now(), "leased into the future");
        }
        assert!(claim(&store, &fans, 10).await.is_empty(), "born leased");
        let head = claim(&store, &queue, 10).await;
        assert_eq!(head.len(), 1, "the ordered endpoint is claimed, head first");
        assert_eq!(head[0].message.seq, published[0].seq);
        // Giving a lease back makes the delivery claimable at once.
        // Only the lease that was given can be given back.
        let wrong = got[1].lease_until.saturating_add_micros(1);
        assert_eq!(
            store
                .release_leases(vec![(got[1].id.clone(), wrong)])
                .await
                .unwrap(),
            0
        );
        assert!(claim(&store, &fans, 10).await.is_empty());
        assert_eq!(
            store
                .release_leases(vec![(got[1].id.clone(), got[1].lease_until)])
                .await
                .unwrap(),
            1
        );
        let again = claim(&store, &fans, 10).await;
        assert_eq!(
            again.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
            vec![got[1].id.clone()]
        );
        // Handed deliveries settle like claimed ones.
        store
            .record_attempts(vec![outcome(&got[0], 204, Transition::Delivered)], POLICY)
            .await
            .unwrap();
        let stats = store
            .endpoint_stats(&org.id, &fans.id, Timestamp::now())
            .await
            .unwrap();
        assert_eq!((stats.delivered, stats.pending), (1, 1));
        // A saturated endpoint's new deliveries are not born leased: they
        // wait to be claimed.
        let other = endpoint(&org.id, "fan_*", false);
        store.create_endpoint(other.clone()).await.unwrap();
        saturated.lock().unwrap().insert(fans.id.clone());
        publish(&store, &org.id, vec![msg("fan_checkin", &[], 5, None)]).await;
        {
            let h = handed.lock().unwrap();
            assert_eq!(h.len(), 3, "only the unsaturated endpoint's delivery is handed");
            assert_eq!(h[2].endpoint_id, other.id);
        }
        let waiting = claim(&store, &fans, 10).await;
        assert_eq!(waiting.len(), 1, "claimable at once");
        store
            .record_attempts(vec![outcome(&waiting[0], 204, Transition::Delivered)], POLICY)
            .await
            .unwrap();
        saturated.lock().unwrap().clear();
        // Without a handoff nothing is born leased.
        store.set_delivery_handoff(None);
        publish(&store, &org.id, vec![msg("fan_checkin", &[], 4, None)]).await;
        assert_eq!(handed.lock().unwrap().len(), 3);
        assert_eq!(claim(&store, &fans, 10).await.len(), 1);
    }
}

#[tokio::test]
async fn sqlite_webhooks_conform() {
    let dir = tempfile::tempdir().unwrap();
    let store: DynStore = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    webhook_story::run(store.clone()).await;
    webhook_story::handoff(store).await;
}

#[tokio::test]
async fn postgres_webhooks_conform() {
    let Some((store, url, schema)) = pg_store("hooks").await else {
        return;
    };
    let store: DynStore = Arc::new(store);
    webhook_story::run(store.clone()).await;
    webhook_story::handoff(store).await;
    drop_schema(&url, &schema).await;
}

/// Two nodes claim the same queue concurrently: every delivery is handed out
/// exactly once, and an ordered endpoint never has two in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_nodes_claim_each_delivery_once() {
    use marquee_core::ids::EndpointId;
    use marquee_core::webhook::EndpointFilter;
    use marquee_core::wire::Format;
    use marquee_store::webhooks::{ClaimRequest, EndpointRecord};

    let Some((a, url, schema)) = pg_store("claims").await else {
        return;
    };
    let b = marquee_store::postgres::PgStore::connect(&url, Some(&schema))
        .await
        .unwrap();
    let a: DynStore = Arc::new(a);
    let b: DynStore = Arc::new(b);
    let org = a.create_org("o", &[]).await.unwrap().id;
    let mk = |ordered: bool| EndpointRecord {
        id: EndpointId::generate(),
        org_id: org.clone(),
        url: "https://example.com/h".into(),
        description: None,
        filter: EndpointFilter::from_texts(if ordered { "order.*" } else { "fan_*" }, ""),
        format: Format::standard(),
        rate_limit: None,
        max_in_flight: 8,
        ordered,
        enabled: true,
        disabled_reason: None,
        secret_sealed: vec![0],
        previous_secret_sealed: None,
        previous_secret_until: None,
        failing_since: None,
        created_at: Timestamp::now(),
        updated_at: Timestamp::now(),
    };
    let (fans, orders) = (mk(false), mk(true));
    a.create_endpoint(fans.clone()).await.unwrap();
    b.create_endpoint(orders.clone()).await.unwrap();
    for chunk in 0..10u64 {
        let node = if chunk % 2 == 0 { &a } else { &b };
        publish(
            node,
            &org,
            (0..50)
                .map(|n| msg("fan_checkin", &["venue:v"], chunk * 100 + n, None))
                .chain((0..5).map(|n| msg("order.completed", &["event:e"], n, None)))
                .collect(),
        )
        .await;
    }
    let mut tasks = Vec::new();
    for (i, node) in [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
    {
        let (fans, orders) = (fans.id.clone(), orders.id.clone());
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            let mut ordered_claims = 0;
            for _ in 0..200 {
                let now = Timestamp::now();
                let c = node
                    .claim_deliveries(
                        vec![
                            ClaimRequest {
                                endpoint_id: fans.clone(),
                                limit: 3 + i,
                                ordered: false,
                            },
                            ClaimRequest {
                                endpoint_id: orders.clone(),
                                limit: 1,
                                ordered: true,
                            },
                        ],
                        now,
                        now.saturating_add_micros(60_000_000),
                    )
                    .await
                    .unwrap();
                for d in c {
                    if d.endpoint_id == orders {
                        ordered_claims += 1;
                    } else {
                        got.push(d.id);
                    }
                }
            }
            (got, ordered_claims)
        }));
    }
    let mut all_ids = Vec::new();
    let mut ordered_total = 0;
    for t in tasks {
        let (got, o) = t.await.unwrap();
        all_ids.extend(got);
        ordered_total += o;
    }
    assert_eq!(all_ids.len(), 500, "every delivery claimed");
    assert_eq!(
        all_ids.iter().collect::<HashSet<_>>().len(),
        500,
        "no delivery claimed twice"
    );
    assert_eq!(ordered_total, 1, "an ordered endpoint has one delivery in flight");
    drop_schema(&url, &schema).await;
}

/// An idempotency key is remembered for 24 hours: before, a different body
/// under it is a conflict and the same body replays; after, the key is free
/// again. `age` moves the organization's records 24 h (and a second) back.
async fn idempotency_keys_expire(store: DynStore, age: impl AsyncFnOnce()) {
    let org = store.create_org("expiry", &[]).await.unwrap();
    let first = publish(&store, &org.id, vec![msg("t", &["a:b"], 1, Some("k-1"))]).await;
    let replay = publish(&store, &org.id, vec![msg("t", &["a:b"], 1, Some("k-1"))]).await;
    assert_eq!(replay[0].seq, first[0].seq, "same key, same body: replayed");
    let conflict = store
        .publish(PublishRequest {
            org_id: org.id.clone(),
            messages: vec![msg("t", &["a:b"], 2, Some("k-1"))],
            request_idempotency: None,
        })
        .await;
    assert!(matches!(conflict, Err(StoreError::Conflict(_))), "{conflict:?}");
    age().await;
    let again = publish(&store, &org.id, vec![msg("t", &["a:b"], 2, Some("k-1"))]).await;
    assert!(
        again[0].seq > first[0].seq,
        "after 24 h the key is free: a new message"
    );
    let replay = publish(&store, &org.id, vec![msg("t", &["a:b"], 2, Some("k-1"))]).await;
    assert_eq!(replay[0].seq, again[0].seq, "and remembered again from now");
}

const DAY_AND_A_SECOND_US: i64 = 86_401_000_000;

#[tokio::test]
async fn sqlite_idempotency_keys_expire_after_24_hours() {
    let dir = tempfile::tempdir().unwrap();
    let store: DynStore = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    let path = dir.path().join(marquee_store::sqlite::DB_FILE);
    idempotency_keys_expire(store, async || {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
        c.execute(
            "UPDATE idempotency SET created_at = created_at - ?1",
            [DAY_AND_A_SECOND_US],
        )
        .unwrap();
    })
    .await;
}

#[tokio::test]
async fn postgres_idempotency_keys_expire_after_24_hours() {
    let Some((store, url, schema)) = pg_store("idem").await else {
        return;
    };
    let (u, s) = (url.clone(), schema.clone());
    idempotency_keys_expire(Arc::new(store), async move || {
        let (client, conn) = tokio_postgres::connect(&u, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client
            .execute(
                &format!("UPDATE {s}.idempotency SET created_at = created_at - $1"),
                &[&DAY_AND_A_SECOND_US],
            )
            .await
            .unwrap();
    })
    .await;
    drop_schema(&url, &schema).await;
}

/// A version-3 SQLite database (built from the v1–v3 migrations, with an
/// organization and a key) is upgraded to v4 on open: no profiles, no key
/// limit, and event types work.
#[tokio::test]
async fn sqlite_a_version_3_database_upgrades_to_4() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = rusqlite::Connection::open(dir.path().join(marquee_store::sqlite::DB_FILE)).unwrap();
        c.execute_batch(include_str!("../src/sqlite/schema.sql")).unwrap();
        c.execute_batch(include_str!("../src/sqlite/schema_v2.sql"))
            .unwrap();
        c.execute_batch(include_str!("../src/sqlite/schema_v3.sql"))
            .unwrap();
        c.execute_batch(
            "INSERT INTO orgs (id, name, created_at) VALUES ('org_01HZZZZZZZZZZZZZZZZZZZZZZZ', 'old', 1);
             INSERT INTO api_keys (id, org_id, tier, name, public_prefix, digest, created_at)
               VALUES ('key_01HZZZZZZZZZZZZZZZZZZZZZZZ', 'org_01HZZZZZZZZZZZZZZZZZZZZZZZ', 'pro', NULL, 'abcd', x'00', 1);
             PRAGMA user_version = 3;",
        )
        .unwrap();
    }
    let store: DynStore = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    upgraded_to_4(&store).await;
    drop(store);
    let c = rusqlite::Connection::open(dir.path().join(marquee_store::sqlite::DB_FILE)).unwrap();
    let v: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(v, 6);
    drop(c);
    // Opening a v4 database again migrates nothing (and does not fail).
    let store: DynStore = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    upgraded_to_4(&store).await;
}

/// What a database upgraded from v3 must answer (the old org and key).
async fn upgraded_to_4(store: &DynStore) {
    let org = OrgId::from_trusted("org_01HZZZZZZZZZZZZZZZZZZZZZZZ".into());
    let key = KeyId::from_trusted("key_01HZZZZZZZZZZZZZZZZZZZZZZZ".into());
    let o = store.get_org(&org).await.unwrap().expect("the old organization");
    assert_eq!(o.name, "old");
    assert!(o.profiles.is_empty());
    let k = store.get_key(&key).await.unwrap().expect("the old key");
    assert_eq!(k.max_stream_connections, None);
    let found = store.keys_by_prefix("abcd").await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].digest, vec![0u8]);
    store
        .set_org_profiles(&org, &["eventium".to_string()])
        .await
        .unwrap();
    store.set_key_stream_limit(&key, Some(3)).await.unwrap();
    store.put_event_type(&org, "t", "", "{}", None).await.unwrap();
    assert_eq!(store.list_event_types(&org).await.unwrap().len(), 1);
    // Back to the upgraded state, so this can be asserted again.
    store.set_key_stream_limit(&key, None).await.unwrap();
    store.set_org_profiles(&org, &[]).await.unwrap();
    assert!(store.delete_event_type(&org, "t").await.unwrap());
}

/// The same upgrade on PostgreSQL: a schema at version 3 (built from the
/// v1–v3 migrations) is migrated to 4 by the next node that connects.
#[tokio::test]
async fn postgres_a_version_3_schema_upgrades_to_4() {
    let Ok(url) = std::env::var("MARQUEE_TEST_DATABASE_URL") else {
        skip(NO_PG);
        return;
    };
    let schema = format!("mq_up4_{}", MessageId::generate().as_str()[4..].to_lowercase());
    {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!(
                "CREATE SCHEMA {schema}; SET search_path = {schema}; {} {} {}
                 CREATE TABLE schema_version (version INT NOT NULL);
                 INSERT INTO schema_version (version) VALUES (3);
                 INSERT INTO orgs (id, name, created_at) VALUES ('org_01HZZZZZZZZZZZZZZZZZZZZZZZ', 'old', 1);
                 INSERT INTO api_keys (id, org_id, tier, name, public_prefix, digest, created_at)
                   VALUES ('key_01HZZZZZZZZZZZZZZZZZZZZZZZ', 'org_01HZZZZZZZZZZZZZZZZZZZZZZZ', 'pro', NULL, 'abcd', '\\x00', 1);",
                include_str!("../src/postgres/schema.sql"),
                include_str!("../src/postgres/schema_v2.sql"),
                include_str!("../src/postgres/schema_v3.sql"),
            ))
            .await
            .unwrap();
    }
    let store = marquee_store::postgres::PgStore::connect(&url, Some(&schema))
        .await
        .unwrap();
    let store: DynStore = Arc::new(store);
    upgraded_to_4(&store).await;
    drop(store);
    let again: DynStore = Arc::new(
        marquee_store::postgres::PgStore::connect(&url, Some(&schema))
            .await
            .unwrap(),
    );
    upgraded_to_4(&again).await;
    {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let v: i32 = client
            .query_one(&format!("SELECT version FROM {schema}.schema_version"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(v, 6);
    }
    drop_schema(&url, &schema).await;
}

/// Says that the running test is skipped, and why, where a plain `cargo
/// test` shows it (stderr directly, past the harness's capture), naming the
/// test; under `MARQUEE_TEST_STRICT=1` (CI) a skip is a failure.
fn skip(reason: &str) {
    use std::io::Write;
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("a test");
    if std::env::var("MARQUEE_TEST_STRICT").is_ok_and(|v| v == "1") {
        panic!("MARQUEE_TEST_STRICT=1 but {name} cannot run: {reason}");
    }
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {name}: {reason}");
}

const NO_PG: &str = "MARQUEE_TEST_DATABASE_URL is not set (PostgreSQL tests need it; .ci/run sets it)";

/// A version-5 database's coalescing rule of an own type (the v5
/// `coalesce_rules` table) becomes that type's `rules` in v6.
const V5_RULE: &str =
    "INSERT INTO orgs (id, name, created_at) VALUES ('org_01HZZZZZZZZZZZZZZZZZZZZZZZ', 'old', 1);
     INSERT INTO event_types (org_id, name, description, schema, created_at, updated_at)
       VALUES ('org_01HZZZZZZZZZZZZZZZZZZZZZZZ', 'seat.state', '', '{}', 1, 1),
              ('org_01HZZZZZZZZZZZZZZZZZZZZZZZ', 'plain', '', '{}', 1, 1);
     INSERT INTO coalesce_rules (org_id, type, key, window_ms)
       VALUES ('org_01HZZZZZZZZZZZZZZZZZZZZZZZ', 'seat.state', '/seat', 2000);";

async fn upgraded_to_6(store: &DynStore) {
    let org = OrgId::from_trusted("org_01HZZZZZZZZZZZZZZZZZZZZZZZ".into());
    let types = store.list_event_types(&org).await.unwrap();
    let rules: Vec<(&str, Option<serde_json::Value>)> = types
        .iter()
        .map(|t| {
            (
                t.name.as_str(),
                t.rules.as_deref().map(|r| serde_json::from_str(r).unwrap()),
            )
        })
        .collect();
    assert_eq!(
        rules,
        vec![
            ("plain", None),
            (
                "seat.state",
                Some(serde_json::json!({"coalesce": {"key": "/seat", "window_ms": 2000}}))
            ),
        ]
    );
}

#[tokio::test]
async fn sqlite_a_version_5_coalesce_rule_becomes_the_types_rules() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = rusqlite::Connection::open(dir.path().join(marquee_store::sqlite::DB_FILE)).unwrap();
        for sql in [
            include_str!("../src/sqlite/schema.sql"),
            include_str!("../src/sqlite/schema_v2.sql"),
            include_str!("../src/sqlite/schema_v3.sql"),
            include_str!("../src/sqlite/schema_v4.sql"),
            include_str!("../src/sqlite/schema_v5.sql"),
            V5_RULE,
            "PRAGMA user_version = 5;",
        ] {
            c.execute_batch(sql).unwrap();
        }
    }
    let store: DynStore = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    upgraded_to_6(&store).await;
}

#[tokio::test]
async fn postgres_a_version_5_coalesce_rule_becomes_the_types_rules() {
    let Ok(url) = std::env::var("MARQUEE_TEST_DATABASE_URL") else {
        skip(NO_PG);
        return;
    };
    let schema = format!("mq_up6_{}", MessageId::generate().as_str()[4..].to_lowercase());
    {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!(
                "CREATE SCHEMA {schema}; SET search_path = {schema}; {} {} {} {} {} {V5_RULE}
                 CREATE TABLE schema_version (version INT NOT NULL);
                 INSERT INTO schema_version (version) VALUES (5);",
                include_str!("../src/postgres/schema.sql"),
                include_str!("../src/postgres/schema_v2.sql"),
                include_str!("../src/postgres/schema_v3.sql"),
                include_str!("../src/postgres/schema_v4.sql"),
                include_str!("../src/postgres/schema_v5.sql"),
            ))
            .await
            .unwrap();
    }
    let store: DynStore = Arc::new(
        marquee_store::postgres::PgStore::connect(&url, Some(&schema))
            .await
            .unwrap(),
    );
    upgraded_to_6(&store).await;
    drop(store);
    drop_schema(&url, &schema).await;
}
