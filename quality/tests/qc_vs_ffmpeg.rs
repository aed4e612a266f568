//! QC metrics against FFmpeg's filters (the oracle) on clips generated here with lavfi:
//! blackdetect, freezedetect, blurdetect, silencedetect, ebur128 (integrated + true peak), psnr,
//! ssim.
//! Tolerances from the issue: intervals 0.1 s, PSNR 0.05 dB, SSIM 0.001, loudness 0.1 LU.
//! Skips with a printed reason when ffmpeg is missing.

use std::path::Path;
use std::process::Command;

use aiprod_quality::qc::{analyze_file, compare_files, decode, BlurConfig, BlurDetector, QcConfig};

mod common;
use common::{ffmpeg, ffmpeg_available, ffmpeg_log, value, values};

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

/// `lavfi.blur` of every frame: `ffmpeg -i clip -vf blurdetect=OPTS,metadata=print:file=-`.
fn ffmpeg_blur(clip: &Path, opts: &str) -> Vec<f64> {
    let filter = if opts.is_empty() {
        "blurdetect,metadata=print:file=-".to_string()
    } else {
        format!("blurdetect={opts},metadata=print:file=-")
    };
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(clip)
        .args(["-vf", &filter, "-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("lavfi.blur="))
        .map(|v| v.trim().parse().unwrap())
        .collect()
}

/// Our per-frame blur of `clip`, decoded by GStreamer.
fn our_blur(clip: &Path, cfg: BlurConfig) -> Vec<f64> {
    let values = std::sync::Arc::new(std::sync::Mutex::new(BlurDetector::new(cfg)));
    let v = values.clone();
    decode::decode(
        clip,
        Some(Box::new(move |f: decode::DecodedFrame| {
            if let (Ok(mut d), Some(view)) = (v.lock(), f.view()) {
                d.push(&view);
            }
        })),
        None,
    )
    .unwrap();
    let d = values.lock().unwrap();
    d.values.iter().map(|v| f64::from(*v)).collect()
}

/// Per-frame agreement: within 0.01 or 1e-3 relative (the tolerance) and, since this is
/// a port of the same arithmetic, within FFmpeg's printing precision; returns the largest
/// absolute difference.
fn blur_agrees(ours: &[f64], theirs: &[f64], what: &str) -> f64 {
    assert_eq!(ours.len(), theirs.len(), "{what}: frame counts");
    let mut worst = 0.0f64;
    for (n, (a, b)) in ours.iter().zip(theirs).enumerate() {
        let d = (a - b).abs();
        assert!(
            d <= 0.01 || d <= 1e-3 * b.abs(),
            "{what} frame {n}: ours {a} vs ffmpeg {b}"
        );
        worst = worst.max(d);
    }
    eprintln!(
        "{what}: {} frames, largest |ours - ffmpeg| {worst:.2e} (ffmpeg prints 6 decimals)",
        ours.len()
    );
    // A faithful port gives FFmpeg's own f32 value: equal to the printed 6 decimals.
    assert!(
        worst <= 1e-6,
        "{what}: differs beyond FFmpeg's printed precision"
    );
    worst
}

#[test]
fn blur_agrees_with_ffmpeg_blurdetect() {
    if !ffmpeg_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Lossless clips, so GStreamer and FFmpeg measure the same pixels: a sharp moving pattern
    // with noise, and a blurred one at an odd size (odd chroma sizes, partial blocks).
    let sharp = dir.path().join("sharp.mkv");
    ffmpeg(
        "-f lavfi -i testsrc2=size=320x240:rate=25,noise=alls=12:allf=t -t 1 -pix_fmt yuv420p -c:v ffv1",
        &sharp,
    );
    let soft = dir.path().join("soft.mkv");
    ffmpeg(
        "-f lavfi -i testsrc2=size=333x201:rate=25,gblur=sigma=2.5 -t 0.6 -pix_fmt yuv420p -c:v ffv1",
        &soft,
    );
    let theirs = ffmpeg_blur(&sharp, "");
    let ours = our_blur(&sharp, BlurConfig::default());
    assert_eq!(ours.len(), 25);
    blur_agrees(&ours, &theirs, "blurdetect defaults, 320x240 sharp");
    let theirs_soft = ffmpeg_blur(&soft, "");
    let ours_soft = our_blur(&soft, BlurConfig::default());
    blur_agrees(
        &ours_soft,
        &theirs_soft,
        "blurdetect defaults, 333x201 blurred",
    );
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(
        mean(&ours_soft) > mean(&ours) + 1.0,
        "the blurred clip must measure blurrier"
    );
    // Every option away from its default, all three planes.
    let opts = "low=0.1:high=0.25:radius=20:block_pct=50:block_width=64:block_height=48:planes=7";
    let cfg = BlurConfig {
        low: 0.1,
        high: 0.25,
        radius: 20,
        block_pct: 50,
        block_width: 64,
        block_height: 48,
        planes: 7,
    };
    blur_agrees(
        &our_blur(&soft, cfg.clone()),
        &ffmpeg_blur(&soft, opts),
        "blurdetect custom, 333x201 blurred",
    );
    blur_agrees(
        &our_blur(&sharp, cfg),
        &ffmpeg_blur(&sharp, opts),
        "blurdetect custom, 320x240 sharp",
    );
    // The report's mean is FFmpeg's "blur mean" when every frame has edges.
    let r = analyze_file(&sharp, &QcConfig::default()).unwrap();
    let b = r.blur.unwrap();
    close(b.mean, mean(&theirs), 1e-5, "blur mean");
}
