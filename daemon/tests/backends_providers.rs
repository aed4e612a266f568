//! The remote backends (Runway, Veo via the Gemini API, Replicate) against loopback fakes that
//! follow the providers' documented shapes: the happy path with billing and checksums, credit
//! and budget refusals before any spend, 429/5xx retries, moderation and task failures,
//! timeouts, cancellation, broken and expired downloads, resumption after a crash.

mod fakes;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiprod_daemon::backends::ledger::Ledger;
use aiprod_daemon::backends::{BackendError, Backends, Generated, GenerationRequest, Quote};
use aiprod_daemon::config::{Config, ConfigLayer};
use aiprod_daemon::jobs::store::Store;
use aiprod_planner::PriceTable;
use fakes::{Canned, Fake, Outcome};

struct Rig {
    dir: tempfile::TempDir,
    fake: Fake,
    backends: Arc<Backends>,
    store: Arc<Store>,
    video_sha: String,
    video_len: u64,
}

async fn rig(provider: &'static str, extra: &str) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let video = fakes::test_video(dir.path(), 2);
    let video_sha = fakes::sha256_hex(&video);
    let video_len = video.len() as u64;
    let fake = fakes::start(provider, video).await;
    let key = match provider {
        "runway" => "key_test",
        "veo" => "gemini_test",
        _ => "r8_test",
    };
    let poll = if extra.contains("poll_interval_ms") {
        ""
    } else {
        "poll_interval_ms = 20\n"
    };
    let toml = format!(
        "[backends.{provider}]\napi_key = \"{key}\"\nbase_url = \"{}\"\n{poll}retry_base_ms = 20\n{extra}",
        fake.base
    );
    let layer = ConfigLayer::from_toml(&toml, Path::new("test.toml")).unwrap();
    let config = Config {
        data_dir: dir.path().into(),
        ..Default::default()
    }
    .apply(&layer)
    .validate()
    .unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let backends = Backends::from_config(
        &config,
        Arc::new(PriceTable::embedded().unwrap()),
        Arc::clone(&store),
    )
    .unwrap();
    Rig {
        dir,
        fake,
        backends: Arc::new(backends),
        store,
        video_sha,
        video_len,
    }
}

fn req(job: &str, model: &str, (w, h): (u32, u32), duration_s: f64) -> GenerationRequest {
    GenerationRequest {
        job_id: job.into(),
        prompt: "a red fox in snow".into(),
        seed: 7,
        model: model.into(),
        width: w,
        height: h,
        fps_num: 24,
        fps_den: 1,
        duration_s,
        max_charge_usd_micros: None,
    }
}

impl Rig {
    fn out(&self, job: &str) -> PathBuf {
        self.dir.path().join(format!("{job}.mp4"))
    }

    async fn generate_with(
        &self,
        backend: &'static str,
        r: GenerationRequest,
        cancel: Arc<AtomicBool>,
    ) -> Result<Generated, BackendError> {
        let backends = Arc::clone(&self.backends);
        let out = self.out(&r.job_id);
        tokio::task::spawn_blocking(move || {
            backends
                .get(backend)
                .unwrap()
                .generate(&r, &out, &mut |_| {}, &cancel)
        })
        .await
        .unwrap()
    }

    async fn generate(
        &self,
        backend: &'static str,
        r: GenerationRequest,
    ) -> Result<Generated, BackendError> {
        self.generate_with(backend, r, Arc::new(AtomicBool::new(false)))
            .await
    }

    async fn preflight(
        &self,
        backend: &'static str,
        r: GenerationRequest,
    ) -> Result<Quote, BackendError> {
        let backends = Arc::clone(&self.backends);
        tokio::task::spawn_blocking(move || backends.get(backend).unwrap().preflight(&r))
            .await
            .unwrap()
    }

    fn spent(&self, backend: &'static str, job: &str) -> i64 {
        self.backends
            .get(backend)
            .unwrap()
            .spent(job)
            .map_or(0, |s| s.usd_micros)
    }
}

const GEN45: (u32, u32) = (1280, 720);

// ---- Runway -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runway_generates_downloads_and_bills_documented_credits() {
    let rig = rig("runway", "").await;
    let g = rig
        .generate("runway", req("job-1", "gen4.5", GEN45, 2.0))
        .await
        .unwrap();
    // 12 credits/s × 2 s = 24 credits = $0.24, what the fake took from the balance.
    assert_eq!(rig.fake.lock().credit_balance, 1000 - 24);
    assert_eq!((g.billed_units, g.billed_unit.as_str()), (24.0, "credits"));
    assert_eq!(g.provider_charge_usd_micros, 240_000);
    assert_eq!(g.provider_task_id, "rw-task-0001");
    assert_eq!(g.sha256, rig.video_sha);
    assert_eq!(std::fs::metadata(&g.path).unwrap().len(), rig.video_len);
    // The documented request: version header, bearer key, camelCase body.
    let create = &rig.fake.requests("POST", "/v1/text_to_video")[0];
    assert_eq!(create.headers["x-runway-version"], "2024-11-06");
    assert_eq!(create.headers["authorization"], "Bearer key_test");
    assert_eq!(
        create.body,
        serde_json::json!({"model": "gen4.5", "promptText": "a red fox in snow", "ratio": "1280:720", "duration": 2, "seed": 7})
    );
    // The balance was checked before spending.
    assert_eq!(rig.fake.count("GET", "/v1/organization"), 1);
    // The key never reaches the (pre-signed) output host.
    let dl = &rig.fake.requests("GET", "/files/")[0];
    assert!(!dl.headers.contains_key("authorization"));
    assert_eq!(rig.spent("runway", "job-1"), 240_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runway_short_of_credits_is_refused_before_any_spend() {
    let rig = rig("runway", "").await;
    rig.fake.lock().credit_balance = 10;
    let err = rig
        .preflight("runway", req("job-1", "gen4.5", GEN45, 2.0))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "runway: insufficient credits: needed 24 credits ($0.240000), available 10 credits ($0.100000)"
    );
    assert!(err.is_precondition());
    let err = rig
        .generate("runway", req("job-1", "gen4.5", GEN45, 2.0))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BackendError::InsufficientFunds { .. }),
        "{err}"
    );
    assert_eq!(rig.fake.count("POST", "/v1/text_to_video"), 0);
    assert_eq!(rig.spent("runway", "job-1"), 0);
    // Runway's own refusal (balance spent elsewhere between check and create) is the same
    // error, and the reservation is released.
    rig.fake.lock().credit_balance = 1000;
    rig.fake.lock().create_script.push_back(Canned::new(
        400,
        r#"{"error":"You do not have enough credits to run this task."}"#,
    ));
    let err = rig
        .generate("runway", req("job-2", "gen4.5", GEN45, 2.0))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("insufficient credits"), "{err}");
    assert_eq!(rig.spent("runway", "job-2"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runway_daily_limit_and_unsupported_requests_are_refused_up_front() {
    let rig = rig("runway", "").await;
    rig.fake.lock().daily_limit = Some(3);
    rig.fake.lock().daily_used = 3;
    let err = rig
        .preflight("runway", req("j", "gen4.5", GEN45, 2.0))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("daily generation limit of 3"),
        "{err}"
    );
    // gen4.5 makes whole seconds 2..=10 only; gen4_turbo needs an image.
    let err = rig
        .preflight("runway", req("j", "gen4.5", GEN45, 2.5))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("duration 2.5 s"), "{err}");
    let err = rig
        .preflight("runway", req("j", "gen4_turbo", GEN45, 2.0))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs an input image"), "{err}");
    // A job's cap below the quote: refused, nothing created.
    let mut capped = req("j", "gen4.5", GEN45, 2.0);
    capped.max_charge_usd_micros = Some(100_000);
    rig.fake.lock().daily_used = 0;
    let err = rig.generate("runway", capped).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "runway: the generation costs 24 credits ($0.240000), more than the $0.100000 this job may spend (its plan's max_cost_usd)"
    );
    assert_eq!(rig.fake.count("POST", "/v1/text_to_video"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runway_429_retry_after_and_5xx_backoff_are_ridden_out() {
    let rig = rig("runway", "").await;
    {
        let mut s = rig.fake.lock();
        s.create_script.push_back(
            Canned::new(429, r#"{"error":"Too many requests"}"#).header("retry-after", "1"),
        );
        s.create_script
            .push_back(Canned::new(503, r#"{"error":"Runway is shedding load"}"#));
        s.poll_script.push_back(Canned::new(502, "bad gateway"));
        s.poll_script.push_back(Canned::new(504, "timeout"));
    }
    let t = Instant::now();
    let g = rig
        .generate("runway", req("job-1", "gen4.5", GEN45, 2.0))
        .await
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(g.sha256, rig.video_sha);
    // 3 creates (429, 503, ok), exactly one task and one charge.
    assert_eq!(rig.fake.count("POST", "/v1/text_to_video"), 3);
    assert_eq!(rig.fake.lock().tasks.len(), 1);
    assert_eq!(rig.fake.lock().credit_balance, 1000 - 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runway_moderation_and_failed_tasks_settle_as_documented() {
    let rig = rig("runway", "").await;
    rig.fake.lock().outcome = Some(Outcome::Fail {
        code: "SAFETY.INPUT.TEXT".into(),
        message: "The prompt was flagged".into(),
    });
    let err = rig
        .generate("runway", req("job-m", "gen4.5", GEN45, 2.0))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "runway: content refused by the provider's moderation (SAFETY.INPUT.TEXT): The prompt was flagged"
    );
    // Input moderation is not refunded: the ledger keeps the charge.
    assert_eq!(rig.spent("runway", "job-m"), 240_000);
    rig.fake.lock().outcome = Some(Outcome::Fail {
        code: "INTERNAL.BAD_OUTPUT.CODE01".into(),
        message: "bad output".into(),
    });
    let err = rig
        .generate("runway", req("job-f", "gen4.5", GEN45, 2.0))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BackendError::TaskFailed { code, .. } if code == "INTERNAL.BAD_OUTPUT.CODE01"),
        "{err}"
    );
    // Refunded: nothing spent.
    assert_eq!(rig.spent("runway", "job-f"), 0);
    assert_eq!(rig.fake.lock().credit_balance, 1000 - 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runway_broken_download_resumes_with_range_and_checksum_holds() {
    let rig = rig("runway", "").await;
    rig.fake.lock().break_first_download = true;
    let g = rig
        .generate("runway", req("job-1", "gen4.5", GEN45, 2.0))
        .await
        .unwrap();
    assert_eq!(g.sha256, rig.video_sha);
    let gets = rig.fake.requests("GET", "/files/");
    assert_eq!(gets.len(), 2, "one broken transfer, one resumed");
    let half = rig.video_len / 2;
    assert_eq!(gets[1].headers["range"], format!("bytes={half}-"));
    assert!(!rig.out("job-1").with_extension("partial").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runway_expired_output_url_is_refreshed_from_the_task() {
    let rig = rig("runway", "").await;
    rig.fake.lock().expire_first_download = true;
    let g = rig
        .generate("runway", req("job-1", "gen4.5", GEN45, 2.0))
        .await
        .unwrap();
    assert_eq!(g.sha256, rig.video_sha);
    let gets = rig.fake.requests("GET", "/files/");
    assert_eq!(gets.len(), 2);
    assert_ne!(
        gets[0].path, gets[1].path,
        "a fresh URL from a new GET /v1/tasks"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runway_timeout_and_cancellation_cancel_the_task() {
    let rig = rig("runway", "timeout_s = 1\n").await;
    rig.fake.lock().outcome = Some(Outcome::Hang);
    let err = rig
        .generate("runway", req("job-t", "gen4.5", GEN45, 2.0))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "runway: task rw-task-0001 did not finish within 1 s; cancelled it"
    );
    assert_eq!(rig.fake.count("DELETE", "/v1/tasks/rw-task-0001"), 1);
    // Cancelling the job cancels the provider task too.
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cancel);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        flag.store(true, Ordering::SeqCst);
    });
    let err = rig
        .generate_with("runway", req("job-c", "gen4.5", GEN45, 2.0), cancel)
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Cancelled), "{err}");
    assert_eq!(rig.fake.count("DELETE", "/v1/tasks/rw-task-0002"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_job_polls_the_task_it_paid_for_instead_of_paying_again() {
    let rig = rig("runway", "").await;
    // A previous run created the task (and wrote its id) before the daemon died.
    {
        let mut s = rig.fake.lock();
        s.tasks.insert(
            "rw-task-old".into(),
            fakes::Task {
                id: "rw-task-old".into(),
                polls: 5,
                cancelled: false,
                billed_credits: 24,
                duration_s: 2,
            },
        );
        s.credit_balance -= 24;
    }
    let ledger = Ledger::new(Arc::clone(&rig.store), "runway");
    let row = ledger
        .reserve("job-r", 240_000, None, aiprod_daemon::now_unix_ms())
        .unwrap()
        .unwrap();
    ledger
        .started(row, "rw-task-old", aiprod_daemon::now_unix_ms())
        .unwrap();
    let g = rig
        .generate("runway", req("job-r", "gen4.5", GEN45, 2.0))
        .await
        .unwrap();
    assert_eq!(g.provider_task_id, "rw-task-old");
    assert_eq!(rig.fake.count("POST", "/v1/text_to_video"), 0);
    assert_eq!(rig.fake.lock().credit_balance, 1000 - 24);
    assert_eq!(rig.spent("runway", "job-r"), 240_000);
}

// ---- Veo (Gemini API) -------------------------------------------------------------------

const VEO_FAST: &str = "veo-3.1-fast";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn veo_runs_an_operation_and_downloads_with_the_key_only_on_its_host() {
    let rig = rig("veo", "budget_usd = 5.0\n").await;
    rig.fake.lock().redirect_download = true;
    let g = rig
        .generate("veo", req("job-1", VEO_FAST, (1280, 720), 4.0))
        .await
        .unwrap();
    assert_eq!(g.sha256, rig.video_sha);
    assert_eq!(
        g.provider_task_id,
        "models/veo-3.1-fast-generate-preview/operations/op0001"
    );
    // $0.15/s × 4 s.
    assert_eq!(
        (g.provider_charge_usd_micros, g.billed_units),
        (600_000, 4.0)
    );
    let create = &rig.fake.requests("POST", "/v1beta/models/")[0];
    assert_eq!(
        create.path,
        "/v1beta/models/veo-3.1-fast-generate-preview:predictLongRunning"
    );
    assert_eq!(create.headers["x-goog-api-key"], "gemini_test");
    assert!(!create.path.contains("key="), "the key travels in a header");
    assert_eq!(
        create.body,
        serde_json::json!({"instances": [{"prompt": "a red fox in snow"}],
            "parameters": {"sampleCount": 1, "durationSeconds": 4, "aspectRatio": "16:9", "resolution": "720p"}})
    );
    // The API host got the key; the storage host it redirected to did not (the fake refuses
    // a request to /storage/ that carries one).
    assert_eq!(rig.fake.count("GET", "/v1beta/files/"), 1);
    assert_eq!(rig.fake.count("GET", "/storage/"), 1);
    // The budget tracks the spend: $5 - $0.60 left.
    assert_eq!(rig.spent("veo", "job-1"), 600_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn veo_budget_is_checked_and_reserved_before_spending() {
    let rig = rig("veo", "budget_usd = 1.0\n").await;
    rig.generate("veo", req("job-1", VEO_FAST, (1280, 720), 4.0))
        .await
        .unwrap();
    let err = rig
        .preflight("veo", req("job-2", VEO_FAST, (1280, 720), 4.0))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "veo: insufficient budget: needed $0.600000, available $0.400000 of the $1.000000 budget over 30 days"
    );
    let err = rig
        .generate("veo", req("job-2", VEO_FAST, (1280, 720), 4.0))
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::InsufficientFunds { .. }));
    assert_eq!(rig.fake.count("POST", "/v1beta/models/"), 1);
    // Durations Veo does not make are refused up front.
    let err = rig
        .preflight("veo", req("job-3", VEO_FAST, (1280, 720), 5.0))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("durations_s"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn veo_rai_filtering_is_a_moderation_refusal_and_not_charged() {
    let rig = rig("veo", "budget_usd = 5.0\n").await;
    rig.fake.lock().outcome = Some(Outcome::RaiFiltered(vec![
        "The input image resembles a public figure.\nPlease use another image.".into(),
    ]));
    let err = rig
        .generate("veo", req("job-1", VEO_FAST, (1280, 720), 4.0))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "veo: content refused by the provider's moderation (RAI_FILTERED): The input image resembles a public figure. Please use another image."
    );
    assert_eq!(rig.spent("veo", "job-1"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn veo_inline_video_and_operation_errors() {
    let rig = rig("veo", "budget_usd = 5.0\n").await;
    rig.fake.lock().inline_video = true;
    let g = rig
        .generate("veo", req("job-1", VEO_FAST, (1080, 1920), 4.0))
        .await
        .unwrap();
    assert_eq!(g.sha256, rig.video_sha);
    assert_eq!(
        rig.fake.requests("POST", "/v1beta/")[0].body["parameters"]["aspectRatio"],
        "9:16"
    );
    rig.fake.lock().outcome = Some(Outcome::Fail {
        code: "INTERNAL".into(),
        message: "Internal error encountered.".into(),
    });
    let err = rig
        .generate("veo", req("job-2", VEO_FAST, (1280, 720), 4.0))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("failed (INTERNAL): Internal error encountered."),
        "{err}"
    );
    // A bad key is a 400 INVALID_ARGUMENT with Google's message, not retried.
    rig.fake.lock().create_script.push_back(Canned::new(
        400,
        r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}"#,
    ));
    let before = rig.fake.count("POST", "/v1beta/");
    let err = rig
        .generate("veo", req("job-3", VEO_FAST, (1280, 720), 4.0))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("HTTP 400: INVALID_ARGUMENT: API key not valid"),
        "{err}"
    );
    assert_eq!(rig.fake.count("POST", "/v1beta/"), before + 1);
    assert_eq!(rig.spent("veo", "job-3"), 0);
}

// ---- Replicate --------------------------------------------------------------------------

const WAN: &str = "wan-2.1-t2v-480p";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicate_bills_predict_time_and_sends_the_cap_as_cancel_after() {
    let rig = rig("replicate", "budget_usd = 5.0\n").await;
    let mut r = req("job-1", WAN, (832, 480), 2.0);
    // Estimate: 30 hardware-s per output second × 2 s × $0.0014 = $0.084; cap $0.07.
    r.max_charge_usd_micros = Some(70_000);
    let err = rig.generate("replicate", r.clone()).await.unwrap_err();
    assert!(matches!(err, BackendError::OverJobCap { .. }), "{err}");
    r.max_charge_usd_micros = Some(100_000);
    let g = rig.generate("replicate", r).await.unwrap();
    // metrics.predict_time 31.25 s × $0.0014/s.
    assert_eq!(
        (
            g.provider_charge_usd_micros,
            g.billed_units,
            g.billed_unit.as_str()
        ),
        (43_750, 31.25, "predict_s")
    );
    assert_eq!(g.sha256, rig.video_sha);
    let create = &rig.fake.requests("POST", "/v1/models/")[0];
    assert_eq!(
        create.path,
        "/v1/models/wavespeedai/wan-2.1-t2v-480p/predictions"
    );
    // $0.10 at $0.0014/s = 71 s of hardware time at most.
    assert_eq!(create.headers["cancel-after"], "71s");
    assert_eq!(create.body["input"]["prompt"], "a red fox in snow");
    assert_eq!(create.body["input"]["aspect_ratio"], "16:9");
    // Output files want the bearer token (same host here).
    assert_eq!(
        rig.fake.requests("GET", "/files/")[0].headers["authorization"],
        "Bearer r8_test"
    );
    assert_eq!(rig.spent("replicate", "job-1"), 43_750);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicate_errors_follow_its_documented_bodies() {
    let rig = rig("replicate", "budget_usd = 5.0\n").await;
    rig.fake.lock().create_script.push_back(Canned::new(
        402,
        r#"{"title":"Insufficient credit","detail":"You have insufficient credit to run this model. Go to https://replicate.com/account/billing#billing to purchase credit. Once you purchase credit, please wait a few minutes before trying again.","status":402}"#,
    ));
    let err = rig
        .generate("replicate", req("job-1", WAN, (832, 480), 2.0))
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with("replicate: insufficient credit: needed about $0.084000 (estimate), available less (Replicate: You have insufficient credit"),
        "{err}"
    );
    assert_eq!(rig.spent("replicate", "job-1"), 0);
    // 429 with the wait only in the body text: retried after it.
    rig.fake.lock().create_script.push_back(Canned::new(
        429,
        r#"{"detail":"Request was throttled. Expected available in 1 second."}"#,
    ));
    let t = Instant::now();
    rig.generate("replicate", req("job-2", WAN, (832, 480), 2.0))
        .await
        .unwrap();
    assert!(t.elapsed() >= Duration::from_secs(1));
    // E005 is moderation; the hardware time it used is billed.
    rig.fake.lock().outcome = Some(Outcome::Fail {
        code: String::new(),
        message: "The input or output was flagged as sensitive. Please try again with different inputs. (E005)".into(),
    });
    let err = rig
        .generate("replicate", req("job-3", WAN, (832, 480), 2.0))
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Moderation { .. }), "{err}");
    assert_eq!(rig.spent("replicate", "job-3"), 2_100); // 1.5 s × $0.0014
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicate_webhook_wakes_the_poll_loop() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    // A slow poll interval: only the callback can make this fast.
    let rig = rig(
        "replicate",
        &format!(
            "budget_usd = 5.0\npoll_interval_ms = 60000\nwebhook_url = \"https://aiprod.example/webhooks/replicate\"\nwebhook_secret = \"{secret}\"\n"
        ),
    )
    .await;
    rig.fake.lock().running_polls = 1;
    let wakeups = rig
        .backends
        .get("replicate")
        .unwrap()
        .task_wakeups()
        .unwrap();
    let key = aiprod_daemon::webhooks::signing::SigningKey::parse(secret, false).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!(
        "http://{}/webhooks/replicate",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move {
        axum::serve(
            listener,
            aiprod_daemon::webhooks::inbound::replicate_router(key, wakeups),
        )
        .await
    });
    let gen = tokio::spawn({
        let backends = Arc::clone(&rig.backends);
        let out = rig.out("job-1");
        async move {
            tokio::task::spawn_blocking(move || {
                backends.get("replicate").unwrap().generate(
                    &req("job-1", WAN, (832, 480), 2.0),
                    &out,
                    &mut |_| {},
                    &AtomicBool::new(false),
                )
            })
            .await
            .unwrap()
        }
    });
    // Wait for the first poll, then call back.
    let t = Instant::now();
    while rig.fake.count("GET", "/v1/predictions/") == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let create = &rig.fake.requests("POST", "/v1/models/")[0];
    assert_eq!(
        create.body["webhook"],
        "https://aiprod.example/webhooks/replicate"
    );
    assert_eq!(
        create.body["webhook_events_filter"],
        serde_json::json!(["completed"])
    );
    // A forged callback is refused.
    assert_eq!(
        fakes::send_replicate_callback(&hook, "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "rp0001")
            .await,
        401
    );
    assert_eq!(
        fakes::send_replicate_callback(&hook, secret, "rp0001").await,
        200
    );
    let g = gen.await.unwrap().unwrap();
    assert_eq!(g.sha256, rig.video_sha);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

// ---- AUTO and health ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_backend_drops_out_of_auto_and_plans_fall_back() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1: every call is a connection failure.
    let layer = ConfigLayer::from_toml(
        "[backends.runway]\napi_key = \"key_test\"\nbase_url = \"http://127.0.0.1:1\"\nmax_retries = 0\n",
        Path::new("test.toml"),
    )
    .unwrap();
    let config = Config {
        data_dir: dir.path().into(),
        ..Default::default()
    }
    .apply(&layer)
    .validate()
    .unwrap();
    let prices = Arc::new(PriceTable::embedded().unwrap());
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let backends = Arc::new(Backends::from_config(&config, Arc::clone(&prices), store).unwrap());
    assert_eq!(backends.names(), vec!["local", "runway"]);
    for i in 0..3 {
        let b = Arc::clone(&backends);
        let err = tokio::task::spawn_blocking(move || {
            b.get("runway")
                .unwrap()
                .preflight(&req(&format!("j{i}"), "gen4.5", GEN45, 2.0))
        })
        .await
        .unwrap()
        .unwrap_err();
        assert!(matches!(err, BackendError::Unreachable { .. }), "{err}");
    }
    // Three failures in a row: the circuit opens and AUTO no longer offers runway, so the
    // BALANCED tier falls back to the next candidate (local).
    assert_eq!(backends.names(), vec!["local"]);
    assert_eq!(backends.all_names(), vec!["local", "runway"]);
    let catalog = aiprod_planner::ProfileCatalog::embedded().unwrap();
    let profile = catalog.get("WEB").unwrap();
    let names = backends.names();
    let cal = aiprod_planner::Calibration::default();
    let plan = aiprod_planner::estimate_plan(
        &aiprod_planner::PlanRequest {
            prompt: "a red fox",
            duration_s: 2.0,
            profile,
            constraints: Default::default(),
            preferences: Default::default(),
            available_backends: &names,
            node: aiprod_planner::NodeRates::from_defaults(&prices),
            calibration: &cal,
            max_duration_s: 120.0,
        },
        &prices,
        aiprod_planner::Tier::Balanced,
    )
    .unwrap();
    assert_eq!(plan.backend, "local");
}
