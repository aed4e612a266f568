//! End to end: a real aiprodd on loopback, driven by a real gRPC client; ffprobe is the oracle.

mod common;

use std::path::Path;
use std::time::Duration;

use aiprod_daemon::proto::{self, JobState, Tier};
use common::*;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_generate_social_clip_with_receipt_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let mut client = daemon.client().await;

    // grpc.health.v1 says SERVING for the Control service.
    let channel = tonic::transport::Channel::from_shared(daemon.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let h = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "aiprod.v1.Control".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        h.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // Three plans, in tier order, one recommended, for a use case that maps to SOCIAL.
    let plans = client
        .plan(proto::PlanRequest {
            prompt: "a red fox in snow".into(),
            duration_s: 2.0,
            use_case: "tiktok".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plans.profile, "SOCIAL");
    let tiers: Vec<i32> = plans.plans.iter().map(|p| p.tier).collect();
    assert_eq!(
        tiers,
        vec![
            Tier::Premium as i32,
            Tier::Balanced as i32,
            Tier::Economy as i32
        ]
    );
    assert!(plans
        .plans
        .iter()
        .all(|p| p.feasible && p.total_cost_usd_micros > 0 && !p.plan_id.is_empty()));
    assert_ne!(plans.recommended, Tier::Unspecified as i32);
    assert!(!plans.rationale.is_empty());
    let economy = &plans.plans[2];
    let gen = economy.generated_resolution.unwrap();
    assert_eq!((gen.width, gen.height), (270, 480));
    let out = economy.output_resolution.unwrap();
    assert_eq!((out.width, out.height), (1080, 1920));
    // Line items add up to the total.
    let sum: i64 = economy.cost_breakdown.iter().map(|c| c.usd_micros).sum();
    assert_eq!(sum, economy.total_cost_usd_micros);

    // Generate from the ECONOMY plan id; the job runs to SUCCEEDED.
    let job = client
        .generate(proto::GenerateRequest {
            plan_id: economy.plan_id.clone(),
            seed: 7,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&job), JobState::Queued);
    let done = wait_final(&mut client, &job.job_id, Duration::from_secs(300)).await;
    assert_eq!(
        state(&done),
        JobState::Succeeded,
        "job failed: {}",
        done.error
    );
    assert!((done.progress - 1.0).abs() < 1e-9);

    // ffprobe as oracle: 1080×1920 H.264 + AAC, 2 s.
    let probe = ffprobe(&done.output_path);
    let streams = probe["streams"].as_array().unwrap();
    let video = streams.iter().find(|s| s["codec_type"] == "video").unwrap();
    assert_eq!(video["codec_name"], "h264");
    assert_eq!(video["width"], 1080);
    assert_eq!(video["height"], 1920);
    assert_eq!(video["pix_fmt"], "yuv420p");
    let audio = streams.iter().find(|s| s["codec_type"] == "audio").unwrap();
    assert_eq!(audio["codec_name"], "aac");
    let duration: f64 = probe["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((duration - 2.0).abs() <= 0.1, "duration {duration}");

    // The receipt: every planned line item, estimated next to actual; the probe summary agrees
    // with ffprobe.
    let receipt = receipt(&mut client, &job.job_id).await;
    assert_eq!(receipt.final_state, JobState::Succeeded as i32);
    let items: Vec<&str> = receipt.lines.iter().map(|l| l.item.as_str()).collect();
    let planned: Vec<&str> = economy
        .cost_breakdown
        .iter()
        .map(|c| c.item.as_str())
        .collect();
    assert_eq!(items, planned);
    assert_eq!(
        receipt.estimated_total_usd_micros,
        economy.total_cost_usd_micros
    );
    assert_eq!(
        receipt.actual_total_usd_micros,
        receipt
            .lines
            .iter()
            .map(|l| l.actual_usd_micros)
            .sum::<i64>()
    );
    assert!(receipt.actual_total_usd_micros > 0);
    assert!(
        receipt.stages.iter().all(|s| s.actual_s > 0.0),
        "{:?}",
        receipt.stages
    );
    let p = receipt.probe.as_ref().unwrap();
    assert_eq!(
        (p.width, p.height, p.video_codec.as_str()),
        (1080, 1920, "h264")
    );
    assert!(
        (p.duration_s - duration).abs() < 0.05,
        "probe {} vs ffprobe {duration}",
        p.duration_s
    );
    let size: u64 = probe["format"]["size"].as_str().unwrap().parse().unwrap();
    assert_eq!(p.size_bytes, size);
    assert_eq!(receipt.output_path, done.output_path);

    // The validation report: every check of SOCIAL/ECONOMY's QualitySpec, measured by aiprodqc
    // inside the pipeline (no second decode), agrees with validating the file by decoding it:
    // same checks, thresholds and verdicts; format facts equal; content values within the QC
    // tolerances (0.1 s, 0.1 LU) plus the printed rounding.
    let report = receipt.validation.as_ref().expect("validation report");
    let spec = aiprod_quality::spec::QualitySpec::builtin("SOCIAL", "ECONOMY").unwrap();
    let opts = aiprod_quality::spec::ValidateOptions {
        expected_duration_s: Some(2.0),
        reference: None,
    };
    let decoded =
        aiprod_quality::spec::validate_with_spec(Path::new(&done.output_path), &spec, &opts)
            .unwrap();
    assert_eq!(
        report.checks.iter().map(|c| &c.name).collect::<Vec<_>>(),
        decoded.checks.iter().map(|c| &c.name).collect::<Vec<_>>()
    );
    assert!(report.checks.len() >= 12, "{report:?}");
    for (ours, file) in report.checks.iter().zip(&decoded.checks) {
        assert_eq!(ours.threshold, file.threshold, "{}", ours.name);
        assert_eq!(ours.pass, file.pass, "{ours:?} vs decoded {file:?}");
        let tolerance = match ours.name.as_str() {
            "longest_black_s" | "longest_frozen_s" | "longest_silence_s" => 0.11,
            "loudness_integrated_lufs" => 0.2,
            // AAC's reconstruction overshoots a little: the encoder's input peaks lower.
            "true_peak_dbtp" => 0.5,
            _ => 0.0,
        };
        if tolerance == 0.0 {
            assert_eq!(ours.measured, file.measured, "{}", ours.name);
        } else {
            let (a, b): (f64, f64) = (
                ours.measured.parse().unwrap(),
                file.measured.parse().unwrap(),
            );
            assert!((a - b).abs() <= tolerance, "{ours:?} vs decoded {file:?}");
        }
    }

    // ListJobs and GetUsage see it.
    let list = client
        .list_jobs(proto::ListJobsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.jobs.len(), 1);
    let usage = client
        .get_usage(proto::GetUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(usage.jobs_total, 1);
    assert_eq!(usage.spent_usd_micros, receipt.actual_total_usd_micros);

    // Prometheus: jobs by state, stage histograms, cost counters, build info; no job ids.
    let metrics = http_get(&daemon.http, "/metrics");
    assert!(
        metrics.contains("aiprod_jobs{state=\"succeeded\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "aiprod_stage_duration_seconds_count{backend=\"local\",stage=\"generate\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("aiprod_cost_usd_total{backend=\"local\",stage=\"compute.generate\",tier=\"TIER_ECONOMY\"}"), "{metrics}");
    assert!(metrics.contains("aiprod_build_info{version="), "{metrics}");
    assert!(!metrics.contains(&job.job_id));
    assert!(http_get(&daemon.http, "/healthz").ends_with("ok\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_are_refused_naming_the_field_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &["--max-duration-s", "60"]);
    let mut client = daemon.client().await;
    let good = plan_request("a lighthouse at dusk", "WEB", 2.0);
    let cases: Vec<(&str, proto::PlanRequest)> = vec![
        (
            "prompt",
            proto::PlanRequest {
                prompt: "   ".into(),
                ..good.clone()
            },
        ),
        (
            "duration_s",
            proto::PlanRequest {
                duration_s: 0.0,
                ..good.clone()
            },
        ),
        (
            "duration_s",
            proto::PlanRequest {
                duration_s: 61.0,
                ..good.clone()
            },
        ),
        (
            "duration_s",
            proto::PlanRequest {
                duration_s: f64::NAN,
                ..good.clone()
            },
        ),
        (
            "profile",
            proto::PlanRequest {
                profile: "CINEMA_8K".into(),
                ..good.clone()
            },
        ),
        (
            "constraints.max_cost_usd",
            proto::PlanRequest {
                constraints: Some(proto::Constraints {
                    max_cost_usd: Some(-1.0),
                    ..Default::default()
                }),
                ..good.clone()
            },
        ),
        (
            "constraints.min_quality",
            proto::PlanRequest {
                constraints: Some(proto::Constraints {
                    min_quality: Some(1.5),
                    ..Default::default()
                }),
                ..good.clone()
            },
        ),
        (
            "user_id",
            proto::PlanRequest {
                user_id: "bad user".into(),
                ..good.clone()
            },
        ),
    ];
    for (field, req) in cases {
        let err = client.plan(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert!(err.message().contains(field), "{field}: {}", err.message());
    }
    let gen_cases: Vec<(&str, proto::GenerateRequest)> = vec![
        (
            "tier",
            proto::GenerateRequest {
                prompt: "x".into(),
                profile: "WEB".into(),
                duration_s: 2.0,
                ..Default::default()
            },
        ),
        (
            "tier",
            proto::GenerateRequest {
                prompt: "x".into(),
                tier: 42,
                duration_s: 2.0,
                ..Default::default()
            },
        ),
        (
            "prompt",
            proto::GenerateRequest {
                prompt: "".into(),
                tier: Tier::Economy as i32,
                duration_s: 2.0,
                ..Default::default()
            },
        ),
        (
            "duration_s",
            proto::GenerateRequest {
                prompt: "x".into(),
                tier: Tier::Economy as i32,
                duration_s: -3.0,
                ..Default::default()
            },
        ),
        (
            "profile",
            proto::GenerateRequest {
                prompt: "x".into(),
                tier: Tier::Economy as i32,
                duration_s: 2.0,
                profile: "nope".into(),
                ..Default::default()
            },
        ),
    ];
    for (field, req) in gen_cases {
        let err = client.generate(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert!(err.message().contains(field), "{field}: {}", err.message());
    }
    let err = client
        .generate(proto::GenerateRequest {
            plan_id: "no-such-plan".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .get_job(proto::GetJobRequest {
            job_id: "nope".into(),
            user_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .list_jobs(proto::ListJobsRequest {
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("page_token"));
    // Nothing was written: no job, no job directory.
    let list = client
        .list_jobs(proto::ListJobsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(list.jobs.is_empty());
    assert!(!dir.path().join("jobs").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_job_loses_nothing_and_the_job_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(dir.path(), &[]);
    let mut client = daemon.client().await;

    // A finished job with a receipt before the crash.
    let first = client
        .generate(proto::GenerateRequest {
            prompt: "first clip".into(),
            tier: Tier::Economy as i32,
            profile: "SOCIAL".into(),
            duration_s: 1.0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let first_done = wait_final(&mut client, &first.job_id, Duration::from_secs(300)).await;
    assert_eq!(
        state(&first_done),
        JobState::Succeeded,
        "{}",
        first_done.error
    );
    let first_receipt = receipt(&mut client, &first.job_id).await;

    // A longer job, killed with SIGKILL while it runs.
    let job = client
        .generate(proto::GenerateRequest {
            prompt: "interrupted clip".into(),
            tier: Tier::Premium as i32,
            profile: "WEB".into(),
            duration_s: 4.0,
            idempotency_key: "crash-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    wait_until(&mut client, &job.job_id, Duration::from_secs(120), |j| {
        matches!(state(j), JobState::Generating | JobState::Processing) && j.progress > 0.05
    })
    .await;
    daemon.kill();
    drop(client);

    let daemon = Daemon::start(dir.path(), &[]);
    let mut client = daemon.client().await;
    // The finished job and its receipt are intact.
    let again = receipt(&mut client, &first.job_id).await;
    assert_eq!(again, first_receipt);
    // The same idempotency key still names the interrupted job, not a new one.
    let twin = client
        .generate(proto::GenerateRequest {
            prompt: "interrupted clip".into(),
            tier: Tier::Premium as i32,
            profile: "WEB".into(),
            duration_s: 4.0,
            idempotency_key: "crash-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(twin.job_id, job.job_id);
    // The interrupted job resumes and finishes with a receipt; nothing stays running.
    let done = wait_final(&mut client, &job.job_id, Duration::from_secs(300)).await;
    assert_eq!(state(&done), JobState::Succeeded, "{}", done.error);
    assert!(done.attempts >= 2, "attempts {}", done.attempts);
    let receipt = receipt(&mut client, &job.job_id).await;
    assert_eq!(receipt.final_state, JobState::Succeeded as i32);
    let probe = ffprobe(&done.output_path);
    let duration: f64 = probe["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((duration - 4.0).abs() <= 0.1, "duration {duration}");
    let list = client
        .list_jobs(proto::ListJobsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.jobs.len(), 2);
    assert!(list.jobs.iter().all(|j| state(j) == JobState::Succeeded));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_running_job_ends_cancelled_with_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let mut client = daemon.client().await;
    let job = client
        .generate(proto::GenerateRequest {
            prompt: "to be cancelled".into(),
            tier: Tier::Premium as i32,
            profile: "WEB".into(),
            duration_s: 10.0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    wait_until(&mut client, &job.job_id, Duration::from_secs(60), |j| {
        state(j) == JobState::Generating
    })
    .await;
    client
        .cancel_job(proto::CancelJobRequest {
            job_id: job.job_id.clone(),
            user_id: String::new(),
        })
        .await
        .unwrap();
    let done = wait_final(&mut client, &job.job_id, Duration::from_secs(30)).await;
    assert_eq!(state(&done), JobState::Cancelled);
    let receipt = receipt(&mut client, &job.job_id).await;
    assert_eq!(receipt.final_state, JobState::Cancelled as i32);
    assert!(receipt.output_path.is_empty());
    // Cancelling again is a precondition failure, not a crash.
    let err = client
        .cancel_job(proto::CancelJobRequest {
            job_id: job.job_id.clone(),
            user_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    // Another user cannot see the job.
    let err = client
        .get_job(proto::GetJobRequest {
            job_id: job.job_id.clone(),
            user_id: "mallory".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiprodctl_generate_wait_json_prints_job_output_and_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    // The example command, verbatim but for the address.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aiprodctl"))
        .args([
            "--addr",
            &daemon.grpc,
            "generate",
            "--prompt",
            "a red fox in snow",
            "--tier",
            "economy",
        ])
        .args([
            "--profile",
            "social",
            "--duration-s",
            "2",
            "--wait",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "aiprodctl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("aiprodctl --json prints JSON");
    assert_eq!(v["state"], "succeeded");
    let path = v["output_path"].as_str().unwrap();
    assert_eq!(v["job"]["output_path"], path);
    assert_eq!(v["receipt"]["job_id"], v["job_id"]);
    assert_eq!(v["receipt"]["final_state"], "JOB_STATE_SUCCEEDED");
    assert_eq!(v["receipt"]["tier"], "TIER_ECONOMY");
    assert_eq!(v["receipt"]["lines"].as_array().unwrap().len(), 7);
    let probe = ffprobe(path);
    let video = probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == "video")
        .unwrap()
        .clone();
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(1080), Some(1920))
    );
    assert_eq!(v["receipt"]["probe"]["size_bytes"], probe["format"]["size"]);

    // A BROADCAST clip through the CLI: H.264 4:2:2 10-bit + PCM in MOV, validated by the daemon.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aiprodctl"))
        .args([
            "--addr",
            &daemon.grpc,
            "--json",
            "generate",
            "--prompt",
            "news at ten",
            "--tier",
            "balanced",
        ])
        .args(["--use-case", "tv spot", "--duration-s", "1", "--wait"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "aiprodctl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let probe = ffprobe(v["output_path"].as_str().unwrap());
    let streams = probe["streams"].as_array().unwrap();
    let video = streams.iter().find(|s| s["codec_type"] == "video").unwrap();
    assert_eq!(video["pix_fmt"], "yuv422p10le");
    assert_eq!(video["profile"], "High 4:2:2");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(1920), Some(1080))
    );
    let audio = streams.iter().find(|s| s["codec_type"] == "audio").unwrap();
    assert_eq!(audio["codec_name"], "pcm_s24le");

    // Bad CLI input: a clear message and a non-zero exit, no panic.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aiprodctl"))
        .args([
            "--addr",
            &daemon.grpc,
            "plan",
            "--prompt",
            "x",
            "--duration-s",
            "-1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("InvalidArgument") && err.contains("duration_s"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_preferences_apply_when_the_request_has_none() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let mut client = daemon.client().await;
    let stored = client
        .set_preferences(proto::SetPreferencesRequest {
            user_id: "alice".into(),
            constraints: Some(proto::Constraints {
                max_cost_usd: Some(0.000001),
                ..Default::default()
            }),
            preferences: Some(proto::Preferences {
                cost_weight: 0.0,
                quality_weight: 1.0,
                speed_weight: 0.0,
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let got = client
        .get_preferences(proto::GetPreferencesRequest {
            user_id: "alice".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, stored);
    // Alice's stored cap makes every plan infeasible; the answer says what to relax.
    let alice = client
        .plan(proto::PlanRequest {
            user_id: "alice".into(),
            ..plan_request("a quiet harbour", "WEB", 2.0)
        })
        .await
        .unwrap()
        .into_inner();
    assert!(alice.plans.iter().all(|p| !p.feasible));
    assert_eq!(alice.recommended, Tier::Unspecified as i32);
    assert!(
        alice.relaxations.iter().any(|r| r.contains("max_cost_usd")),
        "{:?}",
        alice.relaxations
    );
    // Explicit constraints in the request win over the stored ones; the stored quality-only
    // weights then pick PREMIUM.
    let explicit = client
        .plan(proto::PlanRequest {
            user_id: "alice".into(),
            constraints: Some(proto::Constraints::default()),
            ..plan_request("a quiet harbour", "WEB", 2.0)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(explicit.recommended, Tier::Premium as i32);
    // Bob has no stored preferences: defaults, everything feasible.
    let bob = client
        .plan(proto::PlanRequest {
            user_id: "bob".into(),
            ..plan_request("a quiet harbour", "WEB", 2.0)
        })
        .await
        .unwrap()
        .into_inner();
    assert!(bob.plans.iter().all(|p| p.feasible));
    // Alice cannot generate Bob's plan.
    let err = client
        .generate(proto::GenerateRequest {
            plan_id: bob.plans[0].plan_id.clone(),
            user_id: "alice".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // Invalid stored preferences are refused naming the field.
    let err = client
        .set_preferences(proto::SetPreferencesRequest {
            user_id: "alice".into(),
            constraints: Some(proto::Constraints {
                max_cost_usd: Some(-5.0),
                ..Default::default()
            }),
            preferences: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("constraints.max_cost_usd"));
}
