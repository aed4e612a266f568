//! Webhooks end to end: subscriptions through aiprodctl, Standard Webhooks signatures checked
//! by an independent HMAC, every event exactly once per attempt with retries after failures,
//! the delivery log, the SSRF guard, and redelivery after a SIGKILL mid-delivery.

mod common;
mod receiver;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use aiprod_daemon::proto::{self, JobState, Tier};
use common::*;
use receiver::Mode;
use tonic::Code;

fn config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("aiprodd.toml");
    std::fs::write(
        &path,
        format!("[webhooks]\nallow_private_targets = true\nretry_base_ms = 200\nretry_max_ms = 1000\n{extra}"),
    )
    .unwrap();
    path
}

fn ctl(daemon: &Daemon, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_aiprodctl"))
        .args(["--addr", &daemon.grpc, "--json"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "aiprodctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn local_job(
    client: &mut proto::control_client::ControlClient<tonic::transport::Channel>,
) -> proto::Job {
    let job = client
        .generate(proto::GenerateRequest {
            prompt: "webhook test".into(),
            tier: Tier::Economy as i32,
            profile: "SOCIAL".into(),
            duration_s: 1.0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let done = wait_final(client, &job.job_id, Duration::from_secs(120)).await;
    assert_eq!(state(&done), JobState::Succeeded, "{}", done.error);
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_signed_once_per_attempt_and_the_log_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let rx = receiver::start(Mode::FailFirst).await;
    let cfg = config(dir.path(), "");
    let daemon = Daemon::start(
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let mut client = daemon.client().await;
    let (secret, _) = receiver::secret();
    let sub = ctl(
        &daemon,
        &["webhooks", "add", "--url", &rx.url, "--secret", &secret],
    );
    let sub_id = sub["subscription_id"].as_str().unwrap().to_string();
    assert_eq!(sub["secret"], secret.as_str());
    assert_eq!(sub["tenant"], "default");

    let job = local_job(&mut client).await;
    rx.wait_for(Duration::from_secs(30), |r| r.successes().len() >= 3)
        .await;
    // Give a duplicate the chance to show up before counting.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let per_msg = rx.per_message();
    assert_eq!(per_msg.len(), 3, "{per_msg:#?}");
    let mut events = BTreeSet::new();
    for (id, attempts) in &per_msg {
        // Attempt 1 got 500, attempt 2 got 200: each attempt carried the message once, with
        // the same webhook-id, a valid signature and a fresh timestamp.
        let answers: Vec<u16> = attempts.iter().map(|d| d.answered).collect();
        assert_eq!(answers, vec![500, 200], "{id}");
        assert!(attempts.iter().all(|d| d.signature_ok), "{id}");
        let now = aiprod_daemon::now_unix_ms() / 1000;
        assert!(attempts.iter().all(|d| (now - d.timestamp).abs() < 300));
        assert!(id.starts_with("msg_"));
        let body = &attempts[1].body;
        events.insert(body["type"].as_str().unwrap().to_string());
        match body["type"].as_str().unwrap() {
            "job.created" => {
                assert_eq!(body["data"]["job"]["job_id"], job.job_id.as_str());
                assert_eq!(body["data"]["job"]["state"], "JOB_STATE_QUEUED");
            }
            "job.succeeded" => {
                assert_eq!(body["data"]["job"]["state"], "JOB_STATE_SUCCEEDED");
                assert_eq!(body["data"]["job"]["output_path"], job.output_path.as_str());
            }
            "video.cost_receipt" => {
                let receipt = receipt(&mut client, &job.job_id).await;
                let r = &body["data"]["receipt"];
                assert_eq!(r["job_id"], job.job_id.as_str());
                // proto3 JSON: int64 as strings.
                assert_eq!(
                    r["actual_total_usd_micros"],
                    receipt.actual_total_usd_micros.to_string().as_str()
                );
                assert_eq!(
                    r["estimated_total_usd_micros"],
                    receipt.estimated_total_usd_micros.to_string().as_str()
                );
                assert_eq!(r["lines"].as_array().unwrap().len(), receipt.lines.len());
            }
            other => panic!("unexpected event {other}"),
        }
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(
        events,
        BTreeSet::from([
            "job.created".into(),
            "job.succeeded".into(),
            "video.cost_receipt".into()
        ])
    );

    // The delivery log, over the CLI: three messages, two attempts each.
    let log = ctl(
        &daemon,
        &["webhooks", "deliveries", "--subscription-id", &sub_id],
    );
    let deliveries = log["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 3);
    for d in deliveries {
        assert_eq!(d["state"], "delivered");
        assert_eq!(d["attempts"], 2);
        assert_eq!(d["job_id"], job.job_id.as_str());
        let codes: Vec<u64> = d["attempt_log"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["status_code"].as_u64().unwrap())
            .collect();
        assert_eq!(codes, vec![500, 200]);
        assert!(per_msg.contains_key(d["message_id"].as_str().unwrap()));
    }
    // List hides the secret; remove deletes.
    let list = ctl(&daemon, &["webhooks", "list"]);
    assert_eq!(list["subscriptions"][0]["subscription_id"], sub_id.as_str());
    assert_eq!(list["subscriptions"][0]["secret"], "");
    ctl(&daemon, &["webhooks", "remove", &sub_id]);
    let list = ctl(&daemon, &["webhooks", "list"]);
    assert!(list["subscriptions"].as_array().unwrap().is_empty());
    // An event filter: only receipts.
    let sub = client
        .create_webhook(proto::CreateWebhookRequest {
            url: rx.url.clone(),
            secret: secret.clone(),
            events: vec!["video.cost_receipt".into()],
            description: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let before = rx.successes().len();
    let job2 = local_job(&mut client).await;
    rx.wait_for(Duration::from_secs(30), |r| r.successes().len() > before)
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let new: Vec<_> = rx.successes().into_iter().skip(before).collect();
    assert_eq!(new.len(), 1);
    assert_eq!(new[0].body["type"], "video.cost_receipt");
    assert_eq!(new[0].body["data"]["job_id"], job2.job_id.as_str());
    assert!(!sub.subscription_id.is_empty());
    // Unknown events and bad secrets name the field.
    let err = client
        .create_webhook(proto::CreateWebhookRequest {
            url: rx.url.clone(),
            secret: "nope".into(),
            events: vec![],
            description: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("invalid secret"),
        "{}",
        err.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssrf_guard_refuses_private_targets_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    let mut client = daemon.client().await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:9/",
        "http://10.0.0.1/x",
    ] {
        let err = client
            .create_webhook(proto::CreateWebhookRequest {
                url: url.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{url}");
        assert!(
            err.message().contains("allow_private_targets")
                || err.message().contains("does not resolve"),
            "{url}: {}",
            err.message()
        );
    }
    let err = client
        .create_webhook(proto::CreateWebhookRequest {
            url: "file:///etc/passwd".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_delivery_then_restart_delivers_everything() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rx = receiver::start(Mode::Hang).await;
    let cfg = config(dir.path(), "");
    let mut daemon = Daemon::start(&data, &["--config", cfg.to_str().unwrap()]);
    let mut client = daemon.client().await;
    let (secret, _) = receiver::secret();
    ctl(
        &daemon,
        &["webhooks", "add", "--url", &rx.url, "--secret", &secret],
    );
    let job = local_job(&mut client).await;
    // All three messages are in flight, the receiver holding each request open.
    rx.wait_for(Duration::from_secs(30), |r| r.per_message().len() == 3)
        .await;
    let in_flight: BTreeSet<String> = rx.per_message().into_keys().collect();
    assert!(rx.successes().is_empty());
    daemon.kill(); // SIGKILL
    rx.set_mode(Mode::Ok);

    let daemon = Daemon::start(&data, &["--config", cfg.to_str().unwrap()]);
    rx.wait_for(Duration::from_secs(30), |r| r.successes().len() >= 3)
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let delivered: BTreeSet<String> = rx.successes().into_iter().map(|d| d.msg_id).collect();
    // The same messages (same webhook-id), each delivered once after the restart.
    assert_eq!(delivered, in_flight);
    assert_eq!(rx.successes().len(), 3);
    assert!(rx.successes().iter().all(|d| d.signature_ok));
    let log = ctl(
        &daemon,
        &["webhooks", "deliveries", "--job-id", &job.job_id],
    );
    let deliveries = log["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 3);
    assert!(deliveries.iter().all(|d| d["state"] == "delivered"));
}
