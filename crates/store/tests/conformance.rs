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
    assert!(found.iter().any(|c| c.record.id == rec.id && k.digest.ct_eq(&c.digest)));
    assert_eq!(store.list_keys(&org.id).await.unwrap(), vec![rec.clone()]);
    let revoked = store.revoke_key(&rec.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    let found = store.keys_by_prefix(&k.public_prefix).await.unwrap();
    assert!(found.iter().all(|c| c.record.revoked_at.is_some()), "revocation visible at once");
    assert!(matches!(store.revoke_key(&KeyId::generate()).await, Err(StoreError::NotFound)));
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
    assert!(matches!(bad, Err(StoreError::NotFound)), "a key needs an existing org");

    // Publishing, ordering, filters, isolation.
    let first = publish(&store, &org.id, (0..10).map(|n| msg("fan_checkin", &["venue:v"], n, None)).collect()).await;
    assert!(first.windows(2).all(|w| w[0].seq < w[1].seq));
    publish(&store, &other.id, vec![msg("fan_checkin", &["venue:v"], 100, None)]).await;
    publish(&store, &org.id, vec![msg("venue_opened", &["venue:w", "event:e"], 10, None)]).await;
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
    assert!(store.get_message(&other.id, &first[0].id).await.unwrap().is_none());
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
        vec![msg("t", &["venue:i"], 3, Some("k2")), msg("t", &["venue:i"], 3, Some("k2"))],
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
    assert!(notified.windows(2).all(|w| w[0] < w[1]), "announced in commit order");

    // Retention.
    let before = store.head_seq().await.unwrap();
    let deleted = store.prune(Timestamp::now().saturating_add_micros(1), 100_000).await.unwrap();
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
        let ms = publish(&store, &org.id, (0..5).map(|n| msg("t", &["a:b"], n, None)).collect()).await;
        store.prune(Timestamp::now().saturating_add_micros(1), 100).await.unwrap();
        ms[4].seq
    };
    let store: DynStore = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    let org = store.create_org("b").await.unwrap();
    let m = publish(&store, &org.id, vec![msg("t", &["a:b"], 9, None)]).await;
    assert!(m[0].seq > last, "an emptied log does not restart its sequence");
}
