//! aiprodqc in real pipelines: passthrough (buffers untouched), and element messages whose
//! segments match what the pipeline feeds it (3 s of black after 1 s of pattern; 2.5 s of silence
//! after 1 s of tone). The detectors themselves are checked against FFmpeg in aiprod-quality.

use gstreamer as gst;
use gstreamer::prelude::*;

fn run(description: &str) -> Vec<gst::Structure> {
    gst::init().unwrap();
    gstaiprod::plugin_register_static().unwrap();
    let pipeline = gst::parse::launch(description).unwrap();
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut out = Vec::new();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure() {
                    if s.name().starts_with("aiprodqc") {
                        out.push(s.to_owned());
                    }
                }
            }
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{}: {:?}", e.error(), e.debug()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    out
}

#[test]
fn video_black_segment_is_reported_and_frames_pass_through() {
    // 25 frames of pattern, then 75 black frames (3 s at 25 fps): concat via a videotestsrc
    // pattern switch is not possible in a launch line, so use two sources and concat.
    let msgs = run(
        "concat name=c ! aiprodqc black-min-duration=2.0 ! checksumsink \
         videotestsrc pattern=ball num-buffers=25 ! video/x-raw,format=I420,width=64,height=48,framerate=25/1 ! c. \
         videotestsrc pattern=black num-buffers=75 ! video/x-raw,format=I420,width=64,height=48,framerate=25/1 ! c.",
    );
    let summary = msgs
        .iter()
        .find(|s| s.name() == "aiprodqc")
        .expect("summary message");
    assert_eq!(summary.get::<&str>("media").unwrap(), "video");
    assert_eq!(summary.get::<u64>("frames").unwrap(), 100);
    assert_eq!(summary.get::<u32>("black-count").unwrap(), 1);
    let longest: f64 = summary.get("black-longest-s").unwrap();
    // Open at end of stream: FFmpeg closes it at the last frame's timestamp (3.96 s).
    assert!((longest - 2.96).abs() < 0.05, "{summary}");
    assert_eq!(
        summary.get::<&str>("black").unwrap(),
        "1.000-3.960",
        "{summary}"
    );
    // The black frames are also identical: one frozen segment over them.
    assert_eq!(
        summary.get::<&str>("frozen").unwrap(),
        "1.000-4.000",
        "{summary}"
    );
    let segment = msgs.iter().find(|s| s.name() == "aiprodqc-segment");
    assert!(
        segment.is_none(),
        "segments open at EOS are only in the summary: {segment:?}"
    );
}

#[test]
fn audio_silence_and_loudness_are_reported() {
    let msgs = run(
        "concat name=c ! aiprodqc silence-min-duration=2.0 ! fakesink \
         audiotestsrc num-buffers=48 samplesperbuffer=1000 volume=0.5 ! audio/x-raw,format=F32LE,rate=48000,channels=1 ! c. \
         audiotestsrc wave=silence num-buffers=120 samplesperbuffer=1000 ! audio/x-raw,format=F32LE,rate=48000,channels=1 ! c.",
    );
    let summary = msgs
        .iter()
        .find(|s| s.name() == "aiprodqc")
        .expect("summary message");
    assert_eq!(summary.get::<&str>("media").unwrap(), "audio");
    assert_eq!(summary.get::<u32>("silence-count").unwrap(), 1, "{summary}");
    assert_eq!(
        summary.get::<&str>("silence").unwrap(),
        "1.000-3.500",
        "{summary}"
    );
    // The same signal through the library meter (itself checked against FFmpeg's ebur128).
    let mut meter = aiprod_quality::qc::LoudnessMeter::new(1, 48000);
    let tone: Vec<f32> = (0..48000)
        .map(|i| 0.5 * (2.0 * std::f64::consts::PI * 440.0 * f64::from(i) / 48000.0).sin() as f32)
        .collect();
    meter.push(&tone);
    meter.push(&vec![0.0; 120_000]);
    let want = meter.result().unwrap();
    let lufs: f64 = summary.get("integrated-lufs").unwrap();
    assert!(
        (lufs - want.integrated_lufs).abs() < 0.05,
        "{summary} vs {want:?}"
    );
    let peak: f64 = summary.get("true-peak-dbtp").unwrap();
    assert!(
        (peak - want.true_peak_dbtp).abs() < 0.05,
        "{summary} vs {want:?}"
    );
}

#[test]
fn blur_mean_matches_ffmpeg_blurdetect() {
    let ffmpeg_ok = std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ffmpeg_ok {
        eprintln!("SKIPPED: ffmpeg not installed; it makes the clip and is the oracle");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("blur.mkv");
    let st = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=160x120:rate=25,gblur=sigma=1.5")
        .args(["-t", "0.4", "-pix_fmt", "yuv420p", "-c:v", "ffv1"])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(st.success());
    let out = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-i"])
        .arg(&clip)
        .args(["-vf", "blurdetect", "-f", "null", "-"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    let theirs: f64 = log
        .split("blur mean: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no 'blur mean' in ffmpeg's log:\n{log}"));
    let msgs = run(&format!(
        "filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=I420 \
         ! aiprodqc blur=true ! fakesink",
        clip.display()
    ));
    let summary = msgs
        .iter()
        .find(|s| s.name() == "aiprodqc")
        .expect("summary message");
    assert_eq!(summary.get::<u64>("frames").unwrap(), 10, "{summary}");
    let ours: f64 = summary.get("blur-mean").unwrap();
    eprintln!("blur mean: aiprodqc {ours:.7} ffmpeg {theirs:.7}");
    // FFmpeg logs the mean with 7 decimals.
    assert!((ours - theirs).abs() < 1e-6, "{summary} vs ffmpeg {theirs}");
}
