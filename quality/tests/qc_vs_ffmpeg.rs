//! QC metrics against FFmpeg's filters (the oracle) on clips generated here with lavfi:
//! blackdetect, freezedetect, silencedetect, ebur128 (integrated + true peak), psnr, ssim.
//! Tolerances from the issue: intervals 0.1 s, PSNR 0.05 dB, SSIM 0.001, loudness 0.1 LU.
//! Skips with a printed reason when ffmpeg is missing.

use std::path::Path;
use std::process::Command;

use aiprod_quality::qc::{analyze_file, compare_files, QcConfig};

fn ffmpeg_available() -> bool {
    let ok = Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: ffmpeg not installed; it makes the clips and is the oracle");
    }
    ok
}

fn ffmpeg(args: &str, out: &Path) {
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args.split(' '))
        .arg(out)
        .status()
        .unwrap();
    assert!(st.success(), "ffmpeg {args}");
}

/// Runs ffmpeg with filters on `inputs` and returns its log (stderr).
fn ffmpeg_log(inputs: &[&Path], filters: &[&str]) -> String {
    let mut c = Command::new("ffmpeg");
    c.args(["-nostdin", "-hide_banner", "-nostats"]);
    for i in inputs {
        c.arg("-i").arg(i);
    }
    c.args(filters).args(["-f", "null", "-"]);
    let out = c.output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// The number after `key` in FFmpeg's log.
fn value(log: &str, key: &str) -> f64 {
    let i = log
        .find(key)
        .unwrap_or_else(|| panic!("'{key}' not in ffmpeg log:\n{log}"));
    let rest = log[i + key.len()..].trim_start();
    let num: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
        .collect();
    num.parse().unwrap()
}

/// Every number after `key` in FFmpeg's log, in order.
fn values(log: &str, key: &str) -> Vec<f64> {
    log.match_indices(key)
        .map(|(i, _)| value(&log[i..], key))
        .collect()
}

fn close(ours: f64, theirs: f64, tol: f64, what: &str) {
    eprintln!("{what}: ours {ours:.4} ffmpeg {theirs:.4}");
    assert!(
        (ours - theirs).abs() <= tol,
        "{what}: ours {ours} vs ffmpeg {theirs} (tolerance {tol})"
    );
}

#[test]
fn detectors_agree_with_ffmpeg_filters() {
    if !ffmpeg_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("qc.mkv");
    // 8 s: black from 1.0 to 3.5 s, frozen from 4.0 to 6.4 s, audio silent from 1.0 to 3.5 s.
    ffmpeg(
        "-f lavfi -i testsrc2=size=160x120:rate=25,split[x][y];[x][y]freezeframes=first=100:last=160:replace=100,drawbox=color=black:t=fill:enable='between(t,1,3.48)'[out0] \
         -f lavfi -i sine=frequency=440:sample_rate=48000,volume=volume=0:enable='between(t,1,3.5)',volume=0.5 \
         -t 8 -c:v ffv1 -c:a pcm_s16le",
        &clip,
    );
    let log = ffmpeg_log(
        &[&clip],
        &[
            "-vf",
            "blackdetect=d=2,freezedetect=d=2",
            "-af",
            "silencedetect=d=2,ebur128=peak=true",
        ],
    );
    let r = analyze_file(&clip, &QcConfig::default()).unwrap();
    eprintln!("{r:#?}");
    for (ours, start, end, what) in [
        (&r.black, "black_start:", "black_end:", "black"),
        (&r.frozen, "freeze_start:", "freeze_end:", "freeze"),
        (&r.silence, "silence_start:", "silence_end:", "silence"),
    ] {
        let (starts, ends) = (values(&log, start), values(&log, end));
        assert_eq!(
            ours.len(),
            starts.len(),
            "{what} segments: ours {ours:?}, ffmpeg starts {starts:?}"
        );
        for (i, seg) in ours.iter().enumerate() {
            close(seg.start_s, starts[i], 0.1, &format!("{what} {i} start"));
            close(seg.end_s.unwrap(), ends[i], 0.1, &format!("{what} {i} end"));
        }
    }
    let l = r.loudness.unwrap();
    let summary = &log[log.rfind("Summary:").unwrap()..];
    close(
        l.integrated_lufs,
        value(summary, "I:"),
        0.1,
        "integrated loudness (LUFS)",
    );
    close(
        l.true_peak_dbtp,
        value(summary, "Peak:"),
        0.1,
        "true peak (dBTP)",
    );
}

#[test]
fn psnr_and_ssim_agree_with_ffmpeg() {
    if !ffmpeg_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("ref.mkv");
    let main = dir.path().join("main.mp4");
    ffmpeg(
        "-f lavfi -i testsrc2=size=320x240:rate=25 -t 2 -c:v ffv1",
        &reference,
    );
    ffmpeg(
        "-i REF -c:v libx264 -crf 38 -pix_fmt yuv420p"
            .replace("REF", &reference.display().to_string())
            .as_str(),
        &main,
    );
    let log = ffmpeg_log(&[&main, &reference], &["-lavfi", "ssim;[0:v][1:v]psnr"]);
    let f = compare_files(&main, &reference).unwrap();
    eprintln!("{f:?}");
    assert_eq!(f.frames, 50);
    close(
        f.psnr_avg_db,
        value(&log, "average:"),
        0.05,
        "PSNR average (dB)",
    );
    close(f.psnr_y_db, value(&log, "PSNR y:"), 0.05, "PSNR Y (dB)");
    close(f.ssim_all, value(&log, "All:"), 0.001, "SSIM All");
    close(f.ssim_y, value(&log, "SSIM Y:"), 0.001, "SSIM Y");
}
