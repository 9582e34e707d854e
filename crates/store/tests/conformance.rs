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
        if let Some(last) = page.messages.last() {
            q.after_seq = Some(last.seq);
        }
        out.extend(page.messages);
        if !page.has_more {
            return out;
        }
    }
}

/// The story every backend must pass.
async fn story(store: DynStore) {
    // Organizations and keys.
    let org = store.create_org("a").await.unwrap();
    let other = store.create_org("b").await.unwrap();
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
    story(store).await;
}

#[tokio::test]
async fn sqlite_keeps_its_sequence_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let last = {
        let store: DynStore = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
        let org = store.create_org("a").await.unwrap();
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
    let org = store.create_org("b").await.unwrap();
    let m = publish(&store, &org.id, vec![msg("t", &["a:b"], 9, None)]).await;
    assert!(m[0].seq > last, "an emptied log does not restart its sequence");
}

/// A fresh schema on the test database, or `None` (with the reason printed)
/// when `MARQUEE_TEST_DATABASE_URL` is not set.
async fn pg_store(tag: &str) -> Option<(marquee_store::postgres::PgStore, String, String)> {
    let Ok(url) = std::env::var("MARQUEE_TEST_DATABASE_URL") else {
        eprintln!("skipping PostgreSQL conformance: MARQUEE_TEST_DATABASE_URL is not set");
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
    story(Arc::new(store)).await;
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
    let org = a.create_org("o").await.unwrap().id;
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
