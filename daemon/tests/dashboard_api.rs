//! The dashboard's HTTP API against a real aiprodd: the same answers as the gRPC service
//! (compared field by field through the proto3 JSON mapping), errors as HTTP statuses, the
//! video with Range requests, job events as SSE, the embedded page and /ws/metrics.

mod common;
mod dashboard_support;

use std::time::Duration;

use aiprod_daemon::proto::{self, JobState};
use common::*;
use dashboard_support::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_answers_as_the_grpc_service_and_serves_the_video() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let mut client = daemon.client().await;
    let base = daemon.http.clone();

    // Options: the node's profiles and the planner's preference presets.
    let options = get(&base, "/api/options").json();
    let profiles: Vec<&str> = options["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        profiles.contains(&"SOCIAL") && profiles.contains(&"WEB"),
        "{profiles:?}"
    );
    let presets: Vec<&str> = options["preferences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(presets, ["balanced", "cheapest", "best_quality", "fastest"]);
    assert_eq!(options["preferences"][1]["cost_weight"], 0.7);

    // Plan over HTTP = Plan over gRPC (but for the fresh plan ids and expiry).
    let req = json!({"prompt": "a lighthouse at night", "duration_s": 1.0, "profile": "WEB"});
    let http_plans = post_json(&base, "/api/plan", &req).json();
    let grpc_plans = client
        .plan(serde_json::from_value::<proto::PlanRequest>(req.clone()).unwrap())
        .await
        .unwrap()
        .into_inner();
    let mut grpc_json = serde_json::to_value(&grpc_plans).unwrap();
    let mut http_cmp = http_plans.clone();
    for v in [&mut grpc_json, &mut http_cmp] {
        v["recommended_plan_id"] = json!("");
        v["expires_unix_ms"] = json!("0");
        for p in v["plans"].as_array_mut().unwrap() {
            p["plan_id"] = json!("");
            p["expires_unix_ms"] = json!("0");
        }
    }
    assert_same_json(&http_cmp, &grpc_json);
    let plans = http_plans["plans"].as_array().unwrap();
    assert_eq!(
        plans
            .iter()
            .map(|p| p["tier"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["TIER_PREMIUM", "TIER_BALANCED", "TIER_ECONOMY"]
    );
    for p in plans {
        let lines: i64 = p["cost_breakdown"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| micros(&c["usd_micros"]))
            .sum();
        assert_eq!(lines, micros(&p["total_cost_usd_micros"]));
    }

    // Errors: the service's own validation, as HTTP statuses with the gRPC code and message.
    let bad = post_json(
        &base,
        "/api/plan",
        &json!({"prompt": "x", "duration_s": -3.0, "profile": "WEB"}),
    );
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"]["code"], "INVALID_ARGUMENT");
    assert!(bad.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("duration_s"));
    let garbage = request(&base, "POST", "/api/plan", &[], Some("{not json"));
    assert_eq!(garbage.status, 400);
    assert_eq!(garbage.json()["error"]["code"], "INVALID_ARGUMENT");
    let unknown_profile = post_json(
        &base,
        "/api/plan",
        &json!({"prompt": "x", "duration_s": 1.0, "profile": "CINEMA_8K"}),
    );
    assert_eq!(unknown_profile.status, 400);
    let missing = get(&base, "/api/jobs/no-such-job");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["code"], "NOT_FOUND");
    let expired = post_json(&base, "/api/generate", &json!({"plan_id": "no-such-plan"}));
    assert_eq!(expired.status, 404);
    assert_eq!(get(&base, "/api/jobs?states=done").status, 400);
    assert_eq!(get(&base, "/api/jobs?colour=red").status, 400);

    // Generate the ECONOMY plan; the job runs to SUCCEEDED.
    let economy = &plans[2];
    let job = post_json(
        &base,
        "/api/generate",
        &json!({"plan_id": economy["plan_id"], "seed": "3", "idempotency_key": "dash-1"}),
    );
    assert_eq!(job.status, 200, "{}", job.text());
    let job_id = job.json()["job_id"].as_str().unwrap().to_string();
    // The same idempotency key is the same job.
    let again = post_json(
        &base,
        "/api/generate",
        &json!({"plan_id": economy["plan_id"], "seed": "3", "idempotency_key": "dash-1"}),
    );
    assert_eq!(again.json()["job_id"], job_id.as_str());
    // A job without a receipt yet is a conflict, not an error of the server.
    let early = get(&base, &format!("/api/jobs/{job_id}/receipt"));
    if early.status != 200 {
        assert_eq!(early.status, 409, "{}", early.text());
        assert_eq!(early.json()["error"]["code"], "FAILED_PRECONDITION");
    }
    let done = wait_final(&mut client, &job_id, Duration::from_secs(180)).await;
    assert_eq!(state(&done), JobState::Succeeded, "{done:?}");

    // Job, receipt, list and usage: the gRPC answers, as JSON.
    let http_job = get(&base, &format!("/api/jobs/{job_id}")).json();
    assert_same_json(&http_job, &serde_json::to_value(&done).unwrap());
    let receipt = client
        .get_receipt(proto::GetReceiptRequest {
            job_id: job_id.clone(),
            user_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let http_receipt = get(&base, &format!("/api/jobs/{job_id}/receipt")).json();
    assert_same_json(&http_receipt, &serde_json::to_value(&receipt).unwrap());
    assert!(receipt.actual_total_usd_micros > 0);
    let listed = get(
        &base,
        "/api/jobs?states=succeeded,JOB_STATE_FAILED&page_size=10",
    )
    .json();
    assert_eq!(listed["jobs"][0]["job_id"], job_id.as_str());
    let none = get(&base, "/api/jobs?states=cancelled").json();
    assert_eq!(none["jobs"].as_array().unwrap().len(), 0);
    let usage = get(&base, "/api/usage").json();
    assert_eq!(
        micros(&usage["spent_usd_micros"]),
        receipt.actual_total_usd_micros
    );
    assert_eq!(usage["rows"][0]["tier"], "TIER_ECONOMY");

    // Events of a finished job: its current state, then the stream ends.
    let events = get(&base, &format!("/api/jobs/{job_id}/events"));
    assert_eq!(events.status, 200);
    assert!(events
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let text = events.text();
    let data: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(data.len(), 1, "{text}");
    assert!(text.contains("event: job"));
    assert_eq!(data[0]["job"]["state"], "JOB_STATE_SUCCEEDED");

    // The video: the job's output file, whole or by range.
    let file = std::fs::read(&done.output_path).unwrap();
    let video = get(&base, &format!("/api/jobs/{job_id}/video"));
    assert_eq!(video.status, 200);
    assert_eq!(video.header("content-type"), Some("video/mp4"));
    assert_eq!(video.header("accept-ranges"), Some("bytes"));
    assert_eq!(video.body, file);
    let part = request(
        &base,
        "GET",
        &format!("/api/jobs/{job_id}/video"),
        &[("Range", "bytes=100-199")],
        None,
    );
    assert_eq!(part.status, 206);
    assert_eq!(
        part.header("content-range").unwrap(),
        format!("bytes 100-199/{}", file.len())
    );
    assert_eq!(part.body, &file[100..200]);
    let tail = request(
        &base,
        "GET",
        &format!("/api/jobs/{job_id}/video"),
        &[("Range", "bytes=-10")],
        None,
    );
    assert_eq!(tail.status, 206);
    assert_eq!(tail.body, &file[file.len() - 10..]);
    assert_eq!(get(&base, "/api/jobs/no-such-job/video").status, 404);

    // /ws/metrics: the history holds the finished job and its cost, as /metrics counts them.
    let msgs = ws_messages(&base, "/ws/metrics", 2);
    assert_eq!(msgs[0]["type"], "history");
    assert_eq!(msgs[0]["interval_ms"], 1000);
    assert_eq!(msgs[1]["type"], "sample");
    let sample = &msgs[1]["sample"];
    assert_eq!(sample["jobs_by_state"]["succeeded"], 1);
    let cost = sample["cost"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["backend"] == "local" && c["tier"] == "TIER_ECONOMY")
        .expect("cost series of the job");
    let actual_usd = cost["actual_usd_total"].as_f64().unwrap();
    assert!(
        (actual_usd - receipt.actual_total_usd_micros as f64 / 1e6).abs() < 1e-9,
        "{actual_usd} vs {}",
        receipt.actual_total_usd_micros
    );
    let est_usd = cost["estimated_usd_total"].as_f64().unwrap();
    assert!((est_usd - receipt.estimated_total_usd_micros as f64 / 1e6).abs() < 1e-9);
    let ratio = cost["actual_over_estimate"].as_f64().unwrap();
    assert!((ratio - actual_usd / est_usd).abs() < 1e-9);
    assert!(sample["cpu_busy"].is_number(), "{sample}");
    assert!(sample["gpu_busy"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_and_assets_are_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let page = get(&daemon.http, "/");
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'self'"));
    let html = page.text();
    assert!(html.contains(r#"name="aiprod-dashboard""#), "{html}");
    if html.contains(r#"content="placeholder""#) {
        // Built without Node.js: the placeholder says how to build the assets.
        assert!(html.contains("scripts/build-dashboard.sh"));
        assert_eq!(
            get(&daemon.http, "/api/options").json()["assets_built"],
            false
        );
        eprintln!("dashboard assets not built: checked the placeholder page only");
        return;
    }
    assert_eq!(
        get(&daemon.http, "/api/options").json()["assets_built"],
        true
    );
    // Every asset the page references is served, hashed names cached for good.
    let refs: Vec<&str> = html
        .split('"')
        .filter(|s| s.starts_with("./assets/"))
        .collect();
    assert!(refs.len() >= 2, "{html}");
    for r in refs {
        let a = get(&daemon.http, r.trim_start_matches('.'));
        assert_eq!(a.status, 200, "{r}");
        assert!(a.header("cache-control").unwrap().contains("immutable"));
        assert!(!a.body.is_empty());
    }
    assert_eq!(get(&daemon.http, "/assets/missing.js").status, 404);
    // /metrics and /healthz still answer next to the dashboard.
    assert!(get(&daemon.http, "/metrics")
        .text()
        .contains("aiprod_build_info"));
    assert_eq!(get(&daemon.http, "/healthz").status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_goes_through_the_grpc_auth() {
    let dir = tempfile::tempdir().unwrap();
    let key = "aiprod_dashboard-test-key";
    let config = dir.path().join("aiprodd.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\napi_keys = [{{ tenant = \"studio-a\", sha256 = \"{}\" }}]\n",
            aiprod_daemon::auth::hash_api_key(key)
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let daemon = Daemon::start(&data, &["--config", config.to_str().unwrap()]);
    let base = daemon.http.clone();
    let bearer = format!("Bearer {key}");
    let auth = [("Authorization", bearer.as_str())];
    let plan_body =
        json!({"prompt": "a tenant's clip", "duration_s": 1.0, "profile": "WEB"}).to_string();

    // No token, a wrong one, a malformed one: 401 with the interceptor's reason.
    let none = request(&base, "POST", "/api/plan", &[], Some(&plan_body));
    assert_eq!(none.status, 401, "{}", none.text());
    assert_eq!(none.json()["error"]["code"], "UNAUTHENTICATED");
    let wrong = request(
        &base,
        "GET",
        "/api/jobs",
        &[("Authorization", "Bearer aiprod_nope")],
        None,
    );
    assert_eq!(wrong.status, 401);
    let malformed = request(
        &base,
        "GET",
        "/api/jobs",
        &[("Authorization", "Basic abc")],
        None,
    );
    assert_eq!(malformed.status, 401);
    assert_eq!(get(&base, "/api/jobs/x/video").status, 401);

    // With the key: the call acts as its tenant.
    let plans = request(&base, "POST", "/api/plan", &auth, Some(&plan_body));
    assert_eq!(plans.status, 200, "{}", plans.text());
    let plan_id = plans.json()["plans"][2]["plan_id"]
        .as_str()
        .unwrap()
        .to_string();
    let job = request(
        &base,
        "POST",
        "/api/generate",
        &auth,
        Some(&json!({"plan_id": plan_id}).to_string()),
    );
    assert_eq!(job.status, 200, "{}", job.text());
    assert_eq!(job.json()["user_id"], "studio-a");
    let listed = request(&base, "GET", "/api/jobs", &auth, None).json();
    assert_eq!(listed["jobs"][0]["user_id"], "studio-a");
    // A tenant cannot read as another user.
    let other = request(&base, "GET", "/api/jobs?user_id=studio-b", &auth, None);
    assert_eq!(other.status, 403, "{}", other.text());
    assert_eq!(other.json()["error"]["code"], "PERMISSION_DENIED");

    // The page and the aggregate metrics need no token, like /metrics.
    assert_eq!(get(&base, "/").status, 200);
    let msgs = ws_messages(&base, "/ws/metrics", 1);
    assert_eq!(msgs[0]["type"], "history");
}
