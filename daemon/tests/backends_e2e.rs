//! End to end with a remote backend: a real aiprodd configured with Runway pointed at a loopback
//! fake; a BALANCED job goes through the fake, the pipeline and validation, and its receipt's
//! generation line is what the fake billed; a plan the credits do not cover is shown
//! infeasible and its Generate refused before anything is spent.

mod common;
mod fakes;

use std::time::Duration;

use aiprod_daemon::proto::{self, JobState, Tier};
use common::*;
use tonic::Code;

fn config_file(dir: &std::path::Path, runway_base: &str) -> std::path::PathBuf {
    let path = dir.join("aiprodd.toml");
    std::fs::write(
        &path,
        format!(
            "[backends.runway]\napi_key = \"key_test\"\nbase_url = \"{runway_base}\"\npoll_interval_ms = 50\nretry_base_ms = 50\n"
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balanced_job_on_fake_runway_bills_its_credits_and_short_credit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let video = fakes::test_video(dir.path(), 2);
    let video_sha = fakes::sha256_hex(&video);
    let fake = fakes::start("runway", video).await;
    let data = dir.path().join("data");
    let cfg = config_file(dir.path(), &fake.base);
    let daemon = Daemon::start(&data, &["--config", cfg.to_str().unwrap()]);
    let mut client = daemon.client().await;

    // BALANCED on this node is Runway gen4.5 at its native 1280×720 (no Veo configured),
    // upscaled to WEB's 1920×1080.
    let plans = client
        .plan(plan_request("a red fox in snow", "WEB", 2.0))
        .await
        .unwrap()
        .into_inner();
    let balanced = plans
        .plans
        .iter()
        .find(|p| p.tier == Tier::Balanced as i32)
        .unwrap()
        .clone();
    assert_eq!(
        (balanced.backend.as_str(), balanced.model.as_str()),
        ("runway", "gen4.5")
    );
    assert!(balanced.feasible, "{:?}", balanced.infeasible_reasons);
    let generation = |lines: &[proto::CostLine]| {
        lines
            .iter()
            .find(|c| c.item == "generation")
            .map(|c| c.usd_micros)
            .unwrap()
    };
    // 12 credits/s × 2 s × $0.01.
    assert_eq!(generation(&balanced.cost_breakdown), 240_000);

    let job = client
        .generate(proto::GenerateRequest {
            plan_id: balanced.plan_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let done = wait_final(&mut client, &job.job_id, Duration::from_secs(300)).await;
    assert_eq!(state(&done), JobState::Succeeded, "{}", done.error);

    // The delivered file is the profile's, by ffprobe.
    let probe = ffprobe(&done.output_path);
    let v = &probe["streams"][0];
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(1920), Some(1080))
    );

    // The receipt: generation actual = what the fake took off the balance, with its task id.
    let billed_credits = 1000 - fake.lock().credit_balance;
    assert_eq!(billed_credits, 24);
    let receipt = receipt(&mut client, &job.job_id).await;
    let line = receipt
        .lines
        .iter()
        .find(|l| l.item == "generation")
        .unwrap();
    assert_eq!(line.actual_usd_micros, billed_credits * 10_000);
    assert_eq!(line.estimated_usd_micros, 240_000);
    assert_eq!(
        line.basis,
        "provider charge: 24 credits billed for task rw-task-0001"
    );
    assert_eq!(receipt.provider_task_id, "rw-task-0001");
    assert_eq!(
        (
            receipt.provider_billed_units,
            receipt.provider_billed_unit.as_str()
        ),
        (24.0, "credits")
    );
    assert_eq!(receipt.generated_sha256, video_sha);

    // Credits run short: the plan says so, Generate refuses, the fake sees no new task.
    fake.lock().credit_balance = 10;
    let plans = client
        .plan(plan_request("a red fox in snow", "WEB", 2.0))
        .await
        .unwrap()
        .into_inner();
    let balanced = plans
        .plans
        .iter()
        .find(|p| p.tier == Tier::Balanced as i32)
        .unwrap();
    assert!(!balanced.feasible);
    let needed = "needed 24 credits ($0.240000), available 10 credits ($0.100000)";
    assert!(
        balanced
            .infeasible_reasons
            .iter()
            .any(|r| r.contains(needed)),
        "{:?}",
        balanced.infeasible_reasons
    );
    assert_ne!(plans.recommended_plan_id, balanced.plan_id);
    let err = client
        .generate(proto::GenerateRequest {
            prompt: "a red fox in snow".into(),
            tier: Tier::Balanced as i32,
            profile: "WEB".into(),
            duration_s: 2.0,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains(needed), "{}", err.message());
    assert_eq!(fake.count("POST", "/v1/text_to_video"), 1);
    // The node lists the remote backend.
    let status = client
        .get_node_status(proto::GetNodeStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        status.backends.contains(&"runway".to_string()),
        "{:?}",
        status.backends
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_failure_fails_the_job_with_a_receipt_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fakes::start("runway", fakes::test_video(dir.path(), 2)).await;
    fake.lock().outcome = Some(fakes::Outcome::Fail {
        code: "SAFETY.INPUT.TEXT".into(),
        message: "The prompt was flagged".into(),
    });
    let data = dir.path().join("data");
    let cfg = config_file(dir.path(), &fake.base);
    let daemon = Daemon::start(&data, &["--config", cfg.to_str().unwrap()]);
    let mut client = daemon.client().await;
    let job = client
        .generate(proto::GenerateRequest {
            prompt: "a red fox in snow".into(),
            tier: Tier::Balanced as i32,
            profile: "WEB".into(),
            duration_s: 2.0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let done = wait_final(&mut client, &job.job_id, Duration::from_secs(60)).await;
    assert_eq!(state(&done), JobState::Failed);
    assert_eq!(
        done.error,
        "runway: content refused by the provider's moderation (SAFETY.INPUT.TEXT): The prompt was flagged"
    );
    // Input moderation is not refunded by Runway: the receipt shows the charge.
    let receipt = receipt(&mut client, &job.job_id).await;
    let line = receipt
        .lines
        .iter()
        .find(|l| l.item == "generation")
        .unwrap();
    assert_eq!(line.actual_usd_micros, 240_000);
    assert_eq!(receipt.provider_task_id, "rw-task-0001");
}
