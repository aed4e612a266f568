//! The wgpu QC engine, forced with `AIPROD_QC_ENGINE=wgpu` (lavapipe here), against the CPU path
//! and FFmpeg's filters on short lavfi clips: black/freeze segments identical to the CPU's, PSNR
//! equal, SSIM within 1e-6 of the CPU and both within 0.05 dB / 0.001 of ffmpeg's psnr/ssim.
//! Skips with a printed reason when ffmpeg or a wgpu adapter is missing.

use aiprod_quality::qc::{
    analyze_file, analyze_file_with, compare_files, compare_files_with, QcConfig, QcEngine,
};

/// Every test here wants the wgpu engine through the environment, the way an operator forces it.
fn force_wgpu() -> bool {
    if aiprod_kernels::test_context().is_none() {
        return false;
    }
    std::env::set_var("AIPROD_QC_ENGINE", "wgpu");
    match QcEngine::from_env().unwrap() {
        QcEngine::Wgpu(ctx) => {
            eprintln!("engine: wgpu on {}", ctx.adapter().name);
            true
        }
        QcEngine::Cpu => panic!("AIPROD_QC_ENGINE=wgpu must give the wgpu engine"),
    }
}

mod common;
use common::{ffmpeg, ffmpeg_available, ffmpeg_log, value, values};

#[test]
fn wgpu_psnr_and_ssim_equal_the_cpu_and_agree_with_ffmpeg() {
    if !ffmpeg_available() || !force_wgpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (w, h) in [(64, 48), (62, 46)] {
        let reference = dir.path().join(format!("ref{w}.mkv"));
        let main = dir.path().join(format!("main{w}.mp4"));
        ffmpeg(
            &format!("-f lavfi -i testsrc2=size={w}x{h}:rate=25 -frames:v 10 -c:v ffv1"),
            &reference,
        );
        ffmpeg(
            &format!(
                "-i {} -c:v libx264 -crf 40 -pix_fmt yuv420p",
                reference.display()
            ),
            &main,
        );
        let gpu = compare_files(&main, &reference).unwrap();
        let cpu = compare_files_with(&main, &reference, &QcEngine::Cpu).unwrap();
        eprintln!("{w}x{h}: wgpu {gpu:?}\n{w}x{h}: cpu  {cpu:?}");
        assert_eq!(gpu.frames, 10);
        assert_eq!(gpu.frames, cpu.frames);
        // PSNR from exact integer sums: equal bit for bit.
        assert_eq!(gpu.psnr_avg_db, cpu.psnr_avg_db);
        assert_eq!(gpu.psnr_y_db, cpu.psnr_y_db);
        assert!((gpu.ssim_all - cpu.ssim_all).abs() <= 1e-6, "SSIM all");
        assert!((gpu.ssim_y - cpu.ssim_y).abs() <= 1e-6, "SSIM Y");

        let log = ffmpeg_log(&[&main, &reference], &["-lavfi", "ssim;[0:v][1:v]psnr"]);
        let summary_ssim = &log[log.rfind("SSIM Y:").unwrap()..];
        let summary_psnr = &log[log.rfind("PSNR y:").unwrap()..];
        for (ours, theirs, tol, what) in [
            (gpu.ssim_y, value(summary_ssim, "SSIM Y:"), 0.001, "SSIM Y"),
            (gpu.ssim_all, value(summary_ssim, "All:"), 0.001, "SSIM All"),
            (
                gpu.psnr_y_db,
                value(summary_psnr, "PSNR y:"),
                0.05,
                "PSNR y",
            ),
            (
                gpu.psnr_avg_db,
                value(summary_psnr, "average:"),
                0.05,
                "PSNR average",
            ),
        ] {
            eprintln!("{w}x{h} {what}: wgpu {ours:.5} ffmpeg {theirs:.5}");
            assert!(
                (ours - theirs).abs() <= tol,
                "{what}: wgpu {ours} vs ffmpeg {theirs} (tolerance {tol})"
            );
        }
    }
}

#[test]
fn wgpu_black_and_freeze_segments_equal_the_cpu_and_agree_with_ffmpeg() {
    if !ffmpeg_available() || !force_wgpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("qc.mkv");
    // 5 s at 25 fps, 62x46 (rows padded on the device): black 0.5-2.7 s, frozen 3.0-4.8 s.
    ffmpeg(
        "-f lavfi -i testsrc2=size=62x46:rate=25,split[x][y];[x][y]freezeframes=first=75:last=120:replace=75,drawbox=color=black:t=fill:enable='between(t,0.5,2.68)' \
         -t 5 -c:v ffv1",
        &clip,
    );
    let cfg = QcConfig {
        black_min_duration_s: 1.0,
        freeze_min_duration_s: 1.0,
        blur: None,
        ..QcConfig::default()
    };
    let gpu = analyze_file(&clip, &cfg).unwrap();
    let cpu = analyze_file_with(&clip, &cfg, &QcEngine::Cpu).unwrap();
    eprintln!("wgpu: black {:?} frozen {:?}", gpu.black, gpu.frozen);
    assert_eq!(gpu.video_frames, 125);
    assert_eq!(gpu.black, cpu.black);
    assert_eq!(gpu.frozen, cpu.frozen);
    // The black stretch is still too, so freezedetect reports it as well.
    assert_eq!((gpu.black.len(), gpu.frozen.len()), (1, 2));

    let log = ffmpeg_log(&[&clip], &["-vf", "blackdetect=d=1,freezedetect=d=1"]);
    for (ours, start, end) in [
        (&gpu.black, "black_start:", "black_end:"),
        (&gpu.frozen, "freeze_start:", "freeze_end:"),
    ] {
        let (starts, ends) = (values(&log, start), values(&log, end));
        assert_eq!(starts.len(), ours.len(), "{start} {ours:?} in\n{log}");
        for (i, seg) in ours.iter().enumerate() {
            assert!(
                (seg.start_s - starts[i]).abs() <= 0.1,
                "{seg:?} vs {starts:?}"
            );
            let e = seg.end_s.unwrap_or(gpu.last_pts_s);
            assert!((e - ends[i]).abs() <= 0.1, "{seg:?} vs {ends:?}");
        }
    }
}
