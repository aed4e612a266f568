//! The gRPC `Probe` against a real `aiprodd`: the same JSON as the in-process probe, and a
//! per-call overhead of a round trip, not of a timer. A server socket with Nagle's algorithm on
//! answered every unary call ~40 ms late (the response's frames waited for the client's delayed
//! ACK); this test holds the overhead well under that.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use aiprod_daemon::proto;
use common::Daemon;

/// Sequential calls timed.
const CALLS: u32 = 100;
/// Highest acceptable mean overhead of one Probe RPC over the in-process probe. A loopback
/// round trip plus protobuf costs about a millisecond even in a debug build on a busy machine;
/// Nagle + delayed ACK costs 40 ms.
const MAX_OVERHEAD_MS: f64 = 15.0;

fn make_clip(path: &Path) -> bool {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc=size=320x240:rate=25:duration=1")
        .args(["-f", "lavfi", "-i", "sine=frequency=440:duration=1"])
        .args([
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
        ])
        .arg(path)
        .output();
    match out {
        Ok(o) if o.status.success() => true,
        Ok(o) => panic!("ffmpeg failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            eprintln!("SKIPPED: ffmpeg not installed ({e}); it makes the probed clip");
            false
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_rpc_matches_in_process_and_adds_only_a_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    if !make_clip(&clip) {
        return;
    }
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    let mut client = daemon.client().await;
    let request = proto::ProbeRequest {
        path: clip.display().to_string(),
        ..Default::default()
    };
    let local = || {
        aiprod_quality::probe_json_named(
            &clip,
            &clip.display().to_string(),
            &aiprod_quality::ProbeOptions::default(),
        )
        .map(|v| aiprod_quality::probe::to_ffprobe_string(&v))
        .expect("in-process probe")
    };

    let remote = client.probe(request.clone()).await.unwrap().into_inner();
    assert_eq!(remote.ffprobe_json, local());

    // Warm both paths (connection, page cache, GStreamer registry), then time each alone.
    for _ in 0..5 {
        client.probe(request.clone()).await.unwrap();
        local();
    }
    let started = Instant::now();
    for _ in 0..CALLS {
        client.probe(request.clone()).await.unwrap();
    }
    let rpc = started.elapsed();
    let started = Instant::now();
    for _ in 0..CALLS {
        std::hint::black_box(local());
    }
    let in_process = started.elapsed();
    let per_call_ms = |d: Duration| d.as_secs_f64() * 1e3 / f64::from(CALLS);
    let overhead_ms = per_call_ms(rpc) - per_call_ms(in_process);
    println!(
        "Probe x{CALLS}: gRPC {:.2} ms/call, in-process {:.2} ms/call, overhead {overhead_ms:.2} ms/call",
        per_call_ms(rpc),
        per_call_ms(in_process)
    );
    assert!(
        overhead_ms < MAX_OVERHEAD_MS,
        "a Probe RPC costs {overhead_ms:.1} ms more than the in-process probe (limit {MAX_OVERHEAD_MS} ms)"
    );
}
