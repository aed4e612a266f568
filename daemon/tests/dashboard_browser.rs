//! The dashboard in a real browser: Debian's Chromium, headless, driven by playwright-core
//! (dashboard/tests/browser.mjs) against a real aiprodd. Three plan cards appear, generating
//! one runs to a receipt whose actual total is the daemon's, the video plays, the metrics charts
//! receive samples, and nothing scrolls sideways at phone width. Screenshots (desktop and phone)
//! are left in `<target>/dashboard-screenshots/`.
//!
//! Needs Chromium, Node.js and the dashboard's npm packages (scripts/install-deps.sh) and the
//! built assets (scripts/build-dashboard.sh). Without them it skips with the reason — except
//! under CI (CI=true), where it fails.

mod common;
mod dashboard_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use aiprod_daemon::proto::{self, JobState};
use common::*;
use dashboard_support::*;

fn dashboard_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboard")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Why the browser test cannot run here, if it cannot.
fn missing_prerequisite() -> Option<String> {
    if !chromium().is_file() {
        return Some(format!(
            "no Chromium at {} (apt-get install chromium, or set CHROMIUM)",
            chromium().display()
        ));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("no node on PATH".into());
    }
    if !dashboard_dir()
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        return Some(
            "dashboard/node_modules lacks playwright-core (run scripts/build-dashboard.sh)".into(),
        );
    }
    None
}

/// Skips (prints why) where the prerequisites are missing; fails instead under CI.
fn skip_unless_ready(extra: Option<String>) -> bool {
    match missing_prerequisite().or(extra) {
        None => false,
        Some(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("browser test cannot run under CI: {why}")
        }
        Some(why) => {
            eprintln!("SKIPPED dashboard browser test: {why}");
            true
        }
    }
}

/// The usd() of dashboard/src/format.ts below $100: 4 decimals from a cent, else exact micros.
fn usd_text(micros: i64) -> String {
    assert!(micros.abs() < 100_000_000);
    let sign = if micros < 0 { "−" } else { "" };
    let digits = if micros.abs() >= 10_000 { 4 } else { 6 };
    format!("{sign}${:.*}", digits, micros.abs() as f64 / 1e6)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_chromium_plans_generates_and_charts() {
    if skip_unless_ready(None) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let page = get(&daemon.http, "/").text();
    if skip_unless_ready(page.contains(r#"content="placeholder""#).then(|| {
        "aiprodd was built without dashboard/dist (run scripts/build-dashboard.sh)".into()
    })) {
        return;
    }
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("dashboard-screenshots");
    let _ = std::fs::remove_dir_all(&shots);

    let run = tokio::task::spawn_blocking({
        let http = daemon.http.clone();
        let shots = shots.clone();
        move || {
            Command::new("node")
                .arg("tests/browser.mjs")
                .current_dir(dashboard_dir())
                .env("AIPROD_URL", http)
                .env("SCREENSHOT_DIR", shots)
                .env("CHROMIUM", chromium())
                .output()
                .expect("run node")
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let result: serde_json::Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .map(|j| serde_json::from_str(j).expect("RESULT json"))
        .unwrap_or(serde_json::Value::Null);
    assert!(
        run.status.success(),
        "browser script failed ({}); screenshots in {}\nresult: {result}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        run.status,
        shots.display()
    );
    eprintln!("browser result: {result}\nscreenshots: {}", shots.display());

    // Planner: three cards in tier order, one recommended with its rationale.
    assert_eq!(result["cards"], 3);
    assert_eq!(
        result["tiers"],
        serde_json::json!(["Premium", "Balanced", "Economy"])
    );
    assert_eq!(result["recommended"].as_array().unwrap().len(), 1);
    assert!(!result["rationale"].as_str().unwrap().is_empty());
    assert_eq!(result["feasible"], serde_json::json!([true, true, true]));
    // A cost cap nobody meets greys every card out, with reasons, and disables Generate.
    assert_eq!(result["infeasible_cards"], 3);
    assert!(result["infeasible_reasons"].as_u64().unwrap() >= 3);
    assert_eq!(result["generate_disabled"], true);

    // The job the page started ran to SUCCEEDED; the receipt on the page is the daemon's.
    let job_id = result["job_id"].as_str().unwrap();
    let mut client = daemon.client().await;
    let job = client
        .get_job(proto::GetJobRequest {
            job_id: job_id.into(),
            user_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&job), JobState::Succeeded);
    assert_eq!(job.tier, proto::Tier::Economy as i32);
    let receipt = client
        .get_receipt(proto::GetReceiptRequest {
            job_id: job_id.into(),
            user_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(receipt.actual_total_usd_micros > 0);
    assert_eq!(
        result["receipt_actual_total"],
        usd_text(receipt.actual_total_usd_micros)
    );
    assert_eq!(
        result["receipt_estimated_total"],
        usd_text(receipt.estimated_total_usd_micros)
    );
    assert_eq!(result["receipt_lines"], receipt.lines.len());
    assert!(result["progress_seen"].as_f64().unwrap() > 0.0);

    // The QC table shows the receipt's validation report: every check in order, with its
    // measured value and threshold, and the verdict in words; a caption and column headers.
    let validation = receipt.validation.clone().expect("validation report");
    assert!(!validation.checks.is_empty());
    for qc in [&result["qc"], &result["phone_qc"]] {
        let rows = qc["rows"].as_array().expect("QC rows");
        assert_eq!(rows.len(), validation.checks.len(), "{qc}");
        for (row, check) in rows.iter().zip(&validation.checks) {
            assert_eq!(row["name"], check.name.as_str(), "{row}");
            assert!(!row["label"].as_str().unwrap().is_empty(), "{row}");
            assert_eq!(
                row["verdict"],
                if check.pass { "✓ Pass" } else { "✗ Fail" },
                "{row}"
            );
            // Shown with a unit and typographic signs, the measured figures are the daemon's.
            let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
            let measured = row["measured"].as_str().unwrap();
            if check.name != "video_bitrate_bps" {
                assert_eq!(digits(measured), digits(&check.measured), "{row}");
                assert_eq!(
                    digits(row["threshold"].as_str().unwrap()),
                    digits(&check.threshold),
                    "{row}"
                );
            } else {
                let bps: f64 = check.measured.parse().unwrap();
                assert_eq!(measured, format!("{:.2} Mb/s", bps / 1e6), "{row}");
            }
        }
        let passed = validation.checks.iter().filter(|c| c.pass).count();
        let caption = qc["caption"].as_str().unwrap();
        assert!(
            caption.contains(&format!(
                "{passed} of {} checks passed",
                validation.checks.len()
            )),
            "{caption}"
        );
        assert_eq!(
            qc["headers"],
            serde_json::json!(["Check|col", "Measured|col", "Threshold|col", "Result|col"])
        );
        assert_eq!(qc["overflows"], false, "QC table wider than its box: {qc}");
    }
    let names: Vec<&str> = validation.checks.iter().map(|c| c.name.as_str()).collect();
    for name in [
        "container",
        "video_codec",
        "resolution",
        "duration_s",
        "longest_black_s",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }

    // The <video> loaded the output: its size and length are the probe's.
    let probe = receipt.probe.expect("probe");
    assert_eq!(result["video"]["width"], probe.width);
    assert_eq!(result["video"]["height"], probe.height);
    let d = result["video"]["duration_s"].as_f64().unwrap();
    assert!(
        (d - probe.duration_s).abs() < 0.1,
        "{d} vs {}",
        probe.duration_s
    );

    // Live metrics: the charts grew while the page watched, and show the job's spend.
    let points: Vec<u64> = result["chart_points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert!(points[1] >= points[0] + 2, "{points:?}");
    assert!(result["cost_series"].as_u64().unwrap() >= 1);
    assert!(result["accuracy_series"].as_u64().unwrap() >= 1);
    assert!(result["canvases"].as_u64().unwrap() >= 5);

    // Jobs: listed, with the total spent from GetUsage.
    assert!(result["jobs_rows"].as_u64().unwrap() >= 1);
    assert_eq!(
        result["total_spent"],
        usd_text(receipt.actual_total_usd_micros)
    );
    assert!(result["usage_rows"].as_u64().unwrap() >= 1);

    // The token entered once travels as a bearer token and stays in the tab's session.
    assert_eq!(result["authorization"], "Bearer dashboard-test-token");
    assert_eq!(result["token_stored"], "dashboard-test-token");

    // Phone width: no sideways scrolling on any page.
    assert_eq!(
        result["phone_overflow"],
        serde_json::json!({"plans": false, "receipt": false, "metrics": false})
    );
    // No script errors in the page.
    assert_eq!(result["errors"], serde_json::json!([]), "{result}");
    for name in [
        "desktop-plans.png",
        "desktop-receipt.png",
        "desktop-metrics.png",
        "phone-plans.png",
        "phone-metrics.png",
        "desktop-qc.png",
        "phone-qc.png",
    ] {
        assert!(shots.join(name).is_file(), "{name}");
    }
}
