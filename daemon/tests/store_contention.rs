//! A slow store must not stall the daemon's other calls: while another connection holds
//! SQLite's write lock, many SetPreferences calls wait for it (on the store's mutex and in
//! SQLite's busy handler), and Health/Check and GetNodeStatus, which never touch the store,
//! still answer at once, because store work runs on the blocking pool and not on the async
//! workers. Then the lock is released and every waiting write lands.

mod common;

use std::time::{Duration, Instant};

use aiprod_daemon::proto;
use common::*;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// Concurrent writers: more than any test machine's async workers (aiprodd runs one per core),
/// so that with store calls on the workers every worker would be stuck behind the lock.
const WRITERS: usize = 64;
/// How long the writers get to reach the daemon and queue behind the lock.
const SETTLE: Duration = Duration::from_millis(500);
/// How long the cheap calls may take while the lock is held. Far above their usual
/// milliseconds, and well below the store's 5 s busy timeout, so the writers still succeed.
const PROBE_LIMIT: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cheap_calls_answer_while_store_writes_wait_for_the_sqlite_lock() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let mut client = daemon.client().await;
    let mut health = HealthClient::new(
        tonic::transport::Endpoint::from_shared(daemon.grpc.clone())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    // Served before the lock: both calls work, and the schema exists.
    health
        .check(HealthCheckRequest {
            service: "aiprod.v1.Control".into(),
        })
        .await
        .unwrap();

    // Another process's writer: holds SQLite's write lock until released below.
    let lock = rusqlite::Connection::open(dir.path().join("aiprod.db")).unwrap();
    lock.busy_timeout(Duration::from_secs(5)).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let locked_at = Instant::now();

    let writers: Vec<_> = (0..WRITERS)
        .map(|i| {
            let mut c = client.clone();
            tokio::spawn(async move {
                c.set_preferences(proto::SetPreferencesRequest {
                    user_id: format!("writer-{i}"),
                    ..Default::default()
                })
                .await
            })
        })
        .collect();
    tokio::time::sleep(SETTLE).await;

    let probe = tokio::time::timeout(PROBE_LIMIT, async {
        let t = Instant::now();
        let serving = health
            .check(HealthCheckRequest {
                service: "aiprod.v1.Control".into(),
            })
            .await
            .map(|r| r.into_inner().status);
        let health_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let status = client
            .get_node_status(proto::GetNodeStatusRequest {})
            .await
            .map(|r| r.into_inner());
        (serving, health_ms, status, t.elapsed().as_secs_f64() * 1e3)
    })
    .await;
    // Nothing written yet: every writer is still waiting for the lock.
    let finished_early = writers.iter().filter(|w| w.is_finished()).count();
    lock.execute_batch("COMMIT").unwrap();
    let held_ms = locked_at.elapsed().as_secs_f64() * 1e3;

    let (serving, health_ms, status, status_ms) = probe.unwrap_or_else(|_| {
        panic!(
            "Health/Check + GetNodeStatus did not answer within {PROBE_LIMIT:?} while {WRITERS} \
             SetPreferences calls waited for the SQLite lock: store calls are blocking the \
             async workers"
        )
    });
    println!(
        "lock held {held_ms:.0} ms; Health/Check {health_ms:.1} ms, GetNodeStatus {status_ms:.1} ms"
    );
    assert_eq!(
        serving.unwrap(),
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let status = status.unwrap();
    assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
    assert!(!status.draining);
    assert_eq!(
        finished_early, 0,
        "a write finished while the lock was held"
    );

    // The lock is gone: every write lands, and reads back as written.
    for (i, w) in writers.into_iter().enumerate() {
        let prefs = w.await.unwrap().unwrap().into_inner();
        assert_eq!(prefs.user_id, format!("writer-{i}"));
        assert!(prefs.updated_unix_ms > 0);
    }
    for i in [0, WRITERS / 2, WRITERS - 1] {
        let prefs = client
            .get_preferences(proto::GetPreferencesRequest {
                user_id: format!("writer-{i}"),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(prefs.user_id, format!("writer-{i}"));
        assert!(
            prefs.updated_unix_ms > 0,
            "writer-{i} has no stored preferences: {prefs:?}"
        );
    }
}
