//! probe_summary against ffprobe, the oracle, on files made by ffmpeg lavfi in the test.
//! Skips with a printed reason when ffmpeg/ffprobe are not installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use aiprod_quality::{probe_summary, ProbeError, ProbeSummary};
use serde_json::Value;

fn tools_available() -> bool {
    let ok = |tool: &str| {
        Command::new(tool)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ok("ffprobe") && ok("ffmpeg") {
        true
    } else {
        eprintln!("SKIPPED: ffprobe/ffmpeg not installed; they are the oracle of these tests");
        false
    }
}

struct TempDir(tempfile::TempDir);
impl TempDir {
    fn new(name: &str) -> TempDir {
        TempDir(
            tempfile::Builder::new()
                .prefix(&format!("aiprod-quality-{name}"))
                .tempdir()
                .unwrap(),
        )
    }
    fn join(&self, f: &str) -> PathBuf {
        self.0.path().join(f)
    }
}

fn ffmpeg(args: &[&str], out: &Path) {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg {args:?}");
}

fn ffprobe(path: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn num(v: &Value) -> f64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_f64())
        .unwrap_or(0.0)
}

fn rate(v: &Value) -> f64 {
    let s = v.as_str().unwrap_or("0/1");
    let (n, d) = s.split_once('/').unwrap_or((s, "1"));
    n.parse::<f64>().unwrap() / d.parse::<f64>().unwrap()
}

/// Compares every field with ffprobe's JSON: names exactly, duration to 1 ms, bitrate to 0.1 %.
fn assert_matches_ffprobe(path: &Path) -> ProbeSummary {
    let ours = probe_summary(path).unwrap_or_else(|e| panic!("{e}"));
    let theirs = ffprobe(path);
    let streams = theirs["streams"].as_array().unwrap();
    let v = streams.iter().find(|s| s["codec_type"] == "video").unwrap();
    let a = streams.iter().find(|s| s["codec_type"] == "audio");
    let f = &theirs["format"];
    let ctx = format!("ours {ours:#?}\nffprobe {theirs:#}");
    assert_eq!(ours.container, f["format_name"].as_str().unwrap(), "{ctx}");
    assert_eq!(ours.video_codec, v["codec_name"].as_str().unwrap(), "{ctx}");
    assert_eq!(ours.pixel_format, v["pix_fmt"].as_str().unwrap(), "{ctx}");
    assert_eq!(u64::from(ours.width), v["width"].as_u64().unwrap(), "{ctx}");
    assert_eq!(
        u64::from(ours.height),
        v["height"].as_u64().unwrap(),
        "{ctx}"
    );
    assert!((ours.fps - rate(&v["r_frame_rate"])).abs() < 1e-6, "{ctx}");
    assert!(
        (ours.duration_s - num(&f["duration"])).abs() < 0.001,
        "{ctx}"
    );
    let bitrate = num(&f["bit_rate"]);
    assert!(
        (ours.bitrate_bps as f64 - bitrate).abs() <= bitrate * 0.001,
        "{ctx}"
    );
    assert_eq!(ours.size_bytes as f64, num(&f["size"]), "{ctx}");
    match a {
        Some(a) => {
            assert_eq!(ours.audio_codec, a["codec_name"].as_str().unwrap(), "{ctx}");
            assert_eq!(
                ours.audio_sample_rate_hz as f64,
                num(&a["sample_rate"]),
                "{ctx}"
            );
            assert_eq!(
                u64::from(ours.audio_channels),
                a["channels"].as_u64().unwrap(),
                "{ctx}"
            );
        }
        None => {
            assert_eq!(ours.audio_codec, "", "{ctx}");
            assert_eq!(ours.audio_channels, 0, "{ctx}");
        }
    }
    ours
}

const VIDEO: &[&str] = &[
    "-f",
    "lavfi",
    "-i",
    "testsrc2=size=320x240:rate=25",
    "-f",
    "lavfi",
    "-i",
    "sine=frequency=440:sample_rate=48000",
    "-t",
    "2",
];

#[test]
fn mp4_h264_aac() {
    if !tools_available() {
        return;
    }
    let dir = TempDir::new("mp4");
    let out = dir.join("a.mp4");
    ffmpeg(
        &[
            VIDEO,
            &[
                "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2",
            ],
        ]
        .concat(),
        &out,
    );
    let s = assert_matches_ffprobe(&out);
    assert_eq!(
        (
            s.video_codec.as_str(),
            s.pixel_format.as_str(),
            s.audio_codec.as_str()
        ),
        ("h264", "yuv420p", "aac")
    );
    assert_eq!(
        (s.width, s.height, s.audio_channels, s.audio_sample_rate_hz),
        (320, 240, 2, 48_000)
    );
}

#[test]
fn mov_h264_422_10bit_pcm_s24le() {
    if !tools_available() {
        return;
    }
    let dir = TempDir::new("mov");
    let out = dir.join("b.mov");
    ffmpeg(
        &[
            VIDEO,
            &[
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv422p10le",
                "-c:a",
                "pcm_s24le",
                "-ac",
                "2",
            ],
        ]
        .concat(),
        &out,
    );
    let s = assert_matches_ffprobe(&out);
    assert_eq!(
        (s.pixel_format.as_str(), s.audio_codec.as_str()),
        ("yuv422p10le", "pcm_s24le")
    );
}

#[test]
fn mkv_h264_aac_30fps() {
    if !tools_available() {
        return;
    }
    let dir = TempDir::new("mkv");
    let out = dir.join("c.mkv");
    let args = [
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine",
        "-t",
        "1.5",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
    ];
    ffmpeg(&args, &out);
    let s = assert_matches_ffprobe(&out);
    assert_eq!(s.container, "matroska,webm");
}

#[test]
fn mp4_without_audio() {
    if !tools_available() {
        return;
    }
    let dir = TempDir::new("noaudio");
    let out = dir.join("d.mp4");
    ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=24",
            "-t",
            "1",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ],
        &out,
    );
    let s = assert_matches_ffprobe(&out);
    assert_eq!(s.audio_codec, "");
}

#[test]
fn gstreamer_qtmux_mov_with_pcm_s24le() {
    if !tools_available() {
        return;
    }
    if Command::new("gst-launch-1.0")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: gst-launch-1.0 not installed (package gstreamer1.0-tools)");
        return;
    }
    // What the daemon's BROADCAST pipeline writes: qtmux, x264 High 4:2:2 10-bit, S24LE.
    let dir = TempDir::new("qtmux");
    let out = dir.join("e.mov");
    let status = Command::new("gst-launch-1.0")
        .arg("-q")
        .args("videotestsrc num-buffers=25 ! video/x-raw,width=320,height=240,framerate=25/1,format=I422_10LE ! x264enc ! qtmux name=m ! filesink".split(' '))
        .arg(format!("location={}", out.display()))
        .args("audiotestsrc num-buffers=25 samplesperbuffer=1920 ! audioconvert ! audio/x-raw,format=S24LE,rate=48000,channels=2 ! m.".split(' '))
        .status()
        .unwrap();
    assert!(status.success());
    let s = assert_matches_ffprobe(&out);
    assert_eq!(
        (s.pixel_format.as_str(), s.audio_codec.as_str()),
        ("yuv422p10le", "pcm_s24le")
    );
}

#[test]
fn non_media_file_is_an_error_naming_it() {
    let dir = TempDir::new("garbage");
    let path = dir.join("notes.mp4");
    std::fs::write(&path, "this is not a video, just some text\n".repeat(100)).unwrap();
    let err = probe_summary(&path).unwrap_err();
    assert!(matches!(err, ProbeError::NotMedia { .. }), "{err:?}");
    assert!(err.to_string().contains("notes.mp4"), "{err}");
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let err = probe_summary(Path::new("/nonexistent/clip.mp4")).unwrap_err();
    assert!(matches!(err, ProbeError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/clip.mp4"), "{err}");
}

#[test]
fn audio_only_file_has_no_video() {
    if !tools_available() {
        return;
    }
    let dir = TempDir::new("audioonly");
    let out = dir.join("f.m4a");
    ffmpeg(
        &["-f", "lavfi", "-i", "sine", "-t", "1", "-c:a", "aac"],
        &out,
    );
    let err = probe_summary(&out).unwrap_err();
    assert!(matches!(err, ProbeError::NoVideo { .. }), "{err:?}");
}
