//! `probe_json` against ffprobe 5.1 (the oracle), field by field, over a corpus generated here
//! with ffmpeg's lavfi sources: every container, codec and case the issue lists. Prints the
//! agreement per file and overall; asserts ≥ 99 % over the containers the native probe reads.
//! Skips with a printed reason when ffmpeg/ffprobe are missing.
//!
//! `AIPROD_PROBE_CORPUS=DIR` keeps the generated files in DIR (and reuses them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use aiprod_quality::{probe_json, ProbeOptions};
use serde_json::Value;

/// (file name, ffmpeg arguments before the output; "{dir}" is the corpus directory).
const CORPUS: &[(&str, &str)] = &[
    ("mp4_h264_aac.mp4", "{v} {a} -t 1 -c:v libx264 -pix_fmt yuv420p -c:a aac"),
    ("mp4_h264_10bit.mp4", "{v} -t 1 -c:v libx264 -pix_fmt yuv420p10le"),
    ("mp4_h264_422.mp4", "{v} -t 1 -c:v libx264 -pix_fmt yuv422p"),
    ("mp4_h264_444_odd.mp4", "-f lavfi -i testsrc2=size=322x182:rate=25 -t 1 -c:v libx264 -pix_fmt yuv444p"),
    ("mp4_hevc_aac.mp4", "{v} {a} -t 1 -c:v libx265 -x265-params log-level=none -c:a aac -ac 2"),
    ("mp4_hevc_pq.mp4", "{v} -t 1 -c:v libx265 -x265-params log-level=none -pix_fmt yuv420p10le -color_primaries bt2020 -color_trc smpte2084 -colorspace bt2020nc"),
    ("mp4_av1.mp4", "{v} -t 1 -c:v libaom-av1 -cpu-used 8 -row-mt 1"),
    ("mp4_mpeg4_mp3.mp4", "{v} {a} -t 1 -c:v mpeg4 -c:a libmp3lame"),
    ("mp4_vp9_opus.mp4", "{v} {a} -t 1 -c:v libvpx-vp9 -deadline realtime -c:a libopus"),
    ("mp4_portrait.mp4", "-f lavfi -i testsrc2=size=180x320:rate=30 -t 1 -c:v libx264"),
    ("mp4_rotate90.mp4", "-i {dir}/mp4_h264_aac.mp4 -c copy -metadata:s:v:0 rotate=90"),
    ("mp4_multiaudio.mp4", "{v} {a} -f lavfi -i sine=frequency=880:sample_rate=44100 -t 1 -map 0 -map 1 -map 2 -c:v libx264 -c:a:0 aac -c:a:1 ac3 -metadata:s:a:0 language=eng -metadata:s:a:1 language=fra"),
    ("mp4_anamorphic.mp4", "-f lavfi -i testsrc2=size=720x576:rate=25 -t 1 -vf setsar=16/15 -c:v libx264"),
    ("mp4_vfr.mp4", "{v} -t 1 -vf setpts='N/25/TB+if(gt(N\\,10)\\,0.05/TB\\,0)' -fps_mode passthrough -c:v libx264"),
    ("mp4_2997.mp4", "-f lavfi -i testsrc2=size=160x120:rate=30000/1001 -t 1 -c:v libx264"),
    ("mp4_5994.mp4", "-f lavfi -i testsrc2=size=160x120:rate=60000/1001 -t 0.5 -c:v libx264"),
    ("mp4_bt709_tagged.mp4", "{v} -t 1 -c:v libx264 -color_primaries bt709 -color_trc bt709 -colorspace bt709 -color_range tv"),
    ("mp4_interlaced.mp4", "-f lavfi -i testsrc2=size=720x576:rate=25 -t 1 -c:v libx264 -flags +ilme+ildct"),
    ("mp4_movtext_chapters.mp4", "{v} {a} -i {dir}/subs.srt -i {dir}/chapters.txt -t 1 -map 0 -map 1 -map 2 -map_metadata 3 -map_chapters 3 -c:v libx264 -c:a aac -c:s mov_text -metadata:s:s:0 language=eng"),
    ("mov_prores_pcm24.mov", "{v} {a} -t 1 -c:v prores_ks -profile:v 2 -c:a pcm_s24le"),
    ("mov_prores4444.mov", "{v} -t 1 -c:v prores_ks -profile:v 4 -pix_fmt yuv444p10le"),
    ("mov_h264_422_10.mov", "{v} {a} -t 1 -c:v libx264 -pix_fmt yuv422p10le -c:a pcm_s16le"),
    ("mov_mjpeg.mov", "{v} -t 1 -c:v mjpeg"),
    ("mov_2398.mov", "-f lavfi -i testsrc2=size=160x120:rate=24000/1001 -t 1 -c:v libx264"),
    ("mov_raw.mov", "-f lavfi -i testsrc2=size=64x48:rate=25 -t 1 -c:v rawvideo -pix_fmt uyvy422"),
    ("mov_hlg.mov", "{v} -t 1 -c:v libx265 -x265-params log-level=none -pix_fmt yuv420p10le -color_primaries bt2020 -color_trc arib-std-b67 -colorspace bt2020nc"),
    ("mkv_h264_aac.mkv", "{v} {a} -t 1 -c:v libx264 -c:a aac"),
    ("mkv_hevc_hlg_flac.mkv", "{v} {a} -t 1 -c:v libx265 -x265-params log-level=none -pix_fmt yuv420p10le -color_primaries bt2020 -color_trc arib-std-b67 -colorspace bt2020nc -c:a flac"),
    ("mkv_ffv1_pcm.mkv", "-f lavfi -i testsrc2=size=161x121:rate=25 {a} -t 1 -c:v ffv1 -pix_fmt yuv444p -c:a pcm_s16le"),
    ("mkv_mpeg2_interlaced_ac3.mkv", "-f lavfi -i testsrc2=size=720x576:rate=25 {a} -t 1 -c:v mpeg2video -flags +ilme+ildct -top 1 -c:a ac3"),
    ("mkv_subs_chapters.mkv", "{v} {a} -f lavfi -i sine=frequency=660 -i {dir}/subs.srt -i {dir}/chapters.txt -t 1 -map 0 -map 1 -map 2 -map 3 -map_metadata 4 -map_chapters 4 -c:v libx264 -c:a:0 libvorbis -c:a:1 libopus -c:s srt -metadata:s:a:0 language=eng -metadata:s:a:1 language=ger -disposition:a:1 0"),
    ("mkv_mpeg4_mp3.mkv", "{v} {a} -t 1 -c:v mpeg4 -c:a libmp3lame"),
    ("mkv_anamorphic.mkv", "-f lavfi -i testsrc2=size=720x576:rate=25 -t 1 -vf setsar=64/45 -c:v libx264"),
    ("webm_vp8_vorbis.webm", "{v} {a} -t 1 -c:v libvpx -deadline realtime -c:a libvorbis"),
    ("webm_vp9_opus.webm", "{v} {a} -t 1 -c:v libvpx-vp9 -deadline realtime -c:a libopus"),
    ("webm_vp9_10bit.webm", "{v} -t 1 -c:v libvpx-vp9 -deadline realtime -pix_fmt yuv420p10le"),
    ("webm_av1.webm", "{v} -t 1 -c:v libaom-av1 -cpu-used 8"),
    ("y4m_420.y4m", "{v} -t 1 -pix_fmt yuv420p"),
    ("y4m_422p10_5994.y4m", "-f lavfi -i testsrc2=size=160x120:rate=60000/1001 -t 0.5 -pix_fmt yuv422p10le -strict -1"),
    ("avi_mpeg4_mp3.avi", "{v} {a} -t 1 -c:v mpeg4 -c:a libmp3lame"),
    ("avi_mjpeg_pcm.avi", "{v} {a} -t 1 -c:v mjpeg -c:a pcm_s16le"),
    ("avi_ffv1_v1_10bit.avi", "-f lavfi -i testsrc2=size=64x48:rate=25 -t 1 -c:v ffv1 -level 1 -pix_fmt yuv420p10le"),
    ("avi_raw.avi", "-f lavfi -i testsrc2=size=64x48:rate=25 -t 1 -c:v rawvideo -pix_fmt yuv420p"),
    ("ts_h264_aac.ts", "{v} {a} -t 1 -c:v libx264 -c:a aac"),
    ("ts_hevc_ac3.ts", "{v} {a} -t 1 -c:v libx265 -x265-params log-level=none -c:a ac3"),
    ("ts_mpeg2_mp2_2997i.ts", "-f lavfi -i testsrc2=size=720x480:rate=30000/1001 {a} -t 1 -c:v mpeg2video -flags +ilme+ildct -c:a mp2"),
    ("mxf_mpeg2_pcm.mxf", "-f lavfi -i testsrc2=size=720x576:rate=25 {a} -t 1 -c:v mpeg2video -pix_fmt yuv422p -b:v 10M -c:a pcm_s16le"),
    ("flv_h264_aac.flv", "{v} {a} -t 1 -c:v libx264 -c:a aac"),
    ("flv_h264_mp3.flv", "{v} -f lavfi -i sine=sample_rate=44100 -t 1 -c:v libx264 -c:a libmp3lame"),
    ("ogg_vorbis.ogg", "{a} -t 1 -c:a libvorbis"),
    ("ogg_theora.ogv", "{v} -t 1 -c:v libtheora"),
    ("ogg_opus.opus", "{a} -t 1 -c:a libopus"),
    ("ogg_flac.oga", "{a} -t 1 -c:a flac"),
    // What aiprodd itself writes (GStreamer qtmux/mp4mux), made with gst-launch-1.0.
    ("gst_qtmux_broadcast.mov", "videotestsrc num-buffers=25 ! video/x-raw,width=320,height=240,framerate=25/1,format=I422_10LE ! x264enc ! qtmux name=m ! filesink location={out} audiotestsrc num-buffers=25 samplesperbuffer=1920 ! audioconvert ! audio/x-raw,format=S24LE,rate=48000,channels=2 ! m."),
    ("gst_mp4mux_web.mp4", "videotestsrc num-buffers=30 ! video/x-raw,width=320,height=180,framerate=30/1,format=I420 ! x264enc ! h264parse ! mp4mux name=m ! filesink location={out} audiotestsrc num-buffers=47 ! audioconvert ! audio/x-raw,rate=48000,channels=2 ! avenc_aac ! aacparse ! m."),
];

/// Containers the native probe reads; the others are generated and reported, not asserted.
fn supported(name: &str) -> bool {
    [
        ".mp4", ".mov", ".mkv", ".webm", ".y4m", ".avi", ".flv", ".ogg", ".ogv", ".oga", ".opus",
        ".ts", ".mxf",
    ]
    .iter()
    .any(|e| name.ends_with(e))
}

fn tools_available() -> bool {
    let ok = |t: &str| {
        Command::new(t)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ok("ffmpeg") && ok("ffprobe") {
        true
    } else {
        eprintln!("SKIPPED: ffmpeg/ffprobe not installed; they make the corpus and are the oracle");
        false
    }
}

fn generate(dir: &Path) {
    std::fs::write(
        dir.join("subs.srt"),
        "1\n00:00:00,000 --> 00:00:00,500\nHello\n\n2\n00:00:00,500 --> 00:00:01,000\nWorld\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("chapters.txt"),
        ";FFMETADATA1\ntitle=Chaptered\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=500\ntitle=One\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=500\nEND=1000\ntitle=Two\n",
    )
    .unwrap();
    for (name, args) in CORPUS {
        let out = dir.join(name);
        if out.exists() {
            continue;
        }
        if name.starts_with("gst_") {
            let line = args.replace("{out}", &out.display().to_string());
            let status = Command::new("gst-launch-1.0")
                .arg("-q")
                .args(line.split(' '))
                .status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "gst-launch-1.0 for {name}: {line}"
            );
            continue;
        }
        let args = args
            .replace("{v}", "-f lavfi -i testsrc2=size=160x120:rate=25")
            .replace("{a}", "-f lavfi -i sine=frequency=440:sample_rate=48000")
            .replace("{dir}", &dir.display().to_string());
        let status = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y"])
            .args(args.split(' ').map(|a| a.replace('\'', "")))
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success(), "ffmpeg for {name}: {args}");
    }
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
    assert!(out.status.success(), "ffprobe {}", path.display());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Leaf fields as "streams.0.codec_name" → value.
fn flatten(v: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                flatten(v, &format!("{prefix}{k}."), out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                flatten(v, &format!("{prefix}{i}."), out);
            }
        }
        leaf => {
            out.insert(prefix.trim_end_matches('.').to_string(), leaf.clone());
        }
    }
}

/// Objects whose keys come in a different order than ffprobe's.
fn order_mismatches(ours: &Value, theirs: &Value, path: &str, out: &mut Vec<String>) {
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => {
            let ka: Vec<&String> = a.keys().filter(|k| b.contains_key(*k)).collect();
            let kb: Vec<&String> = b.keys().filter(|k| a.contains_key(*k)).collect();
            if ka != kb {
                out.push(path.to_string());
            }
            for (k, v) in b {
                if let Some(o) = a.get(k) {
                    order_mismatches(o, v, &format!("{path}.{k}"), out);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                order_mismatches(x, y, &format!("{path}.{i}"), out);
            }
        }
        _ => {}
    }
}

struct Score {
    agree: usize,
    total: usize,
    diffs: Vec<String>,
}

fn compare(ours: &Value, theirs: &Value) -> Score {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten(ours, "", &mut a);
    flatten(theirs, "", &mut b);
    let mut s = Score {
        agree: 0,
        total: 0,
        diffs: Vec::new(),
    };
    for (k, v) in &b {
        s.total += 1;
        match a.get(k) {
            Some(o) if o == v => s.agree += 1,
            Some(o) => s.diffs.push(format!("{k}: ours {o} ffprobe {v}")),
            None => s.diffs.push(format!("{k}: missing (ffprobe {v})")),
        }
    }
    for (k, v) in &a {
        if !b.contains_key(k) {
            s.total += 1;
            s.diffs.push(format!("{k}: extra {v}"));
        }
    }
    let mut order = Vec::new();
    order_mismatches(ours, theirs, "", &mut order);
    for o in order {
        s.diffs.push(format!("key order differs in {o}"));
    }
    s
}

#[test]
fn probe_json_agrees_with_ffprobe_over_corpus() {
    if !tools_available() {
        return;
    }
    let keep = std::env::var_os("AIPROD_PROBE_CORPUS").map(PathBuf::from);
    let tmp = tempfile::tempdir().unwrap();
    let dir = keep.unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    generate(&dir);

    let (mut agree, mut total, mut agree_all, mut total_all) = (0, 0, 0, 0);
    let mut report = String::new();
    for (name, _) in CORPUS {
        let path = dir.join(name);
        let theirs = ffprobe(&path);
        // ffprobe prints the path it was given; give ours the same.
        let ours = probe_json(&path, &ProbeOptions::default());
        let score = match &ours {
            Ok(v) => compare(v, &theirs),
            Err(e) => {
                let mut flat = BTreeMap::new();
                flatten(&theirs, "", &mut flat);
                Score {
                    agree: 0,
                    total: flat.len(),
                    diffs: vec![format!("probe failed: {e}")],
                }
            }
        };
        let pct = 100.0 * score.agree as f64 / score.total.max(1) as f64;
        report.push_str(&format!(
            "{name:34} {:4}/{:4} fields agree ({pct:6.2} %){}\n",
            score.agree,
            score.total,
            if supported(name) {
                ""
            } else {
                "  [container not supported natively]"
            }
        ));
        for d in score
            .diffs
            .iter()
            .take(if supported(name) { 40 } else { 1 })
        {
            report.push_str(&format!("    {d}\n"));
        }
        agree_all += score.agree;
        total_all += score.total;
        if supported(name) {
            agree += score.agree;
            total += score.total;
        }
    }
    // -count_frames -count_packets on the containers whose packets we count natively.
    let (mut c_agree, mut c_total) = (0, 0);
    let mut c_report = String::new();
    for (name, _) in CORPUS {
        if ![".mp4", ".mov", ".mkv", ".webm", ".y4m"]
            .iter()
            .any(|e| name.ends_with(e))
        {
            continue;
        }
        let path = dir.join(name);
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-count_frames",
                "-count_packets",
                "-print_format",
                "json",
                "-show_streams",
            ])
            .arg(&path)
            .output()
            .unwrap();
        let theirs: Value = serde_json::from_slice(&out.stdout).unwrap();
        let opts = ProbeOptions {
            count_frames: true,
            count_packets: true,
        };
        let ours = probe_json(&path, &opts).unwrap();
        for (i, t) in theirs["streams"].as_array().unwrap().iter().enumerate() {
            for k in ["nb_read_frames", "nb_read_packets"] {
                c_total += 1;
                if ours["streams"][i][k] == t[k] {
                    c_agree += 1;
                } else {
                    c_report.push_str(&format!(
                        "    {name} stream {i} {k}: ours {} ffprobe {}\n",
                        ours["streams"][i][k], t[k]
                    ));
                }
            }
        }
    }
    eprintln!("{c_report}COUNTS (-count_frames -count_packets): {c_agree}/{c_total} agree");
    assert!(
        c_agree * 100 >= c_total * 95,
        "counts agree {c_agree}/{c_total}"
    );

    // Every corpus file cut short anywhere: an error or a (partial) result, never a panic or hang.
    for (name, _) in CORPUS {
        let data = std::fs::read(dir.join(name)).unwrap();
        for k in 1..16 {
            let cut = &data[..data.len() * k / 16];
            let t = std::time::Instant::now();
            let _ = aiprod_quality::probe::probe_bytes(cut, name);
            assert!(t.elapsed().as_secs() < 2, "{name} cut at {}", cut.len());
        }
    }
    let pct = 100.0 * agree as f64 / total as f64;
    let pct_all = 100.0 * agree_all as f64 / total_all as f64;
    report.push_str(&format!(
        "OVERALL (natively read containers): {agree}/{total} fields agree = {pct:.2} %\n\
         OVERALL (every generated container): {agree_all}/{total_all} = {pct_all:.2} %\n"
    ));
    eprintln!("{report}");
    assert!(pct >= 99.0, "agreement {pct:.2} % < 99 %");
}
