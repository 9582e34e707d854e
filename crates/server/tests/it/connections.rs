//! The HTTP listener's limits: slow header senders are cut off, and the
//! connection cap makes further clients wait instead of costing memory.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::TestServer;

fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// Reads until the server closes the socket; what it sent and how long it took.
async fn read_to_close(s: &mut TcpStream, max: Duration) -> (String, Duration) {
    let t0 = Instant::now();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(max, s.read_to_end(&mut buf)).await;
    (String::from_utf8_lossy(&buf).into_owned(), t0.elapsed())
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off() {
    let server = TestServer::start_with(|c| c.http.header_read_timeout = Duration::from_millis(700)).await;
    // Slowloris: a request line, then one header byte at a time, too slowly.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let writer = async {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if s.write_all(b"a").await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    let (got, _) = read_to_close(&mut s, Duration::from_secs(5)).await;
    assert!(
        got.is_empty() || got.starts_with("HTTP/1.1 408"),
        "a slow client gets no answer or 408, got {got:?}"
    );
    // An idle socket that never sends anything is closed within the timeout.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    let (got, took) = read_to_close(&mut idle, Duration::from_secs(5)).await;
    assert!(
        took < Duration::from_secs(3),
        "idle connection closed after {took:?}"
    );
    assert!(got.is_empty() || got.starts_with("HTTP/1.1 408"), "{got:?}");
    // Well-behaved clients are unaffected.
    let r = fresh_client().get(server.url("/ping")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn the_connection_cap_makes_further_clients_wait() {
    let server = TestServer::start_with(|c| {
        c.http.max_connections = 2;
        c.http.header_read_timeout = Duration::from_secs(2);
    })
    .await;
    // The start-up check's keep-alive connection idles out first, so the
    // two sockets below hold every slot.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let client = fresh_client();
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let blocked = tokio::time::timeout(
        Duration::from_millis(1_000),
        client.get(server.url("/ping")).send(),
    )
    .await;
    assert!(
        blocked.is_err(),
        "a third connection is not served while two are held"
    );
    // Freeing a slot lets the next client in.
    held.clear();
    let r = tokio::time::timeout(Duration::from_secs(5), client.get(server.url("/ping")).send())
        .await
        .expect("served once a slot is free")
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop().await;
}
