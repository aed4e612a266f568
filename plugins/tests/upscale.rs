//! aiprodupscale through gst_check::Harness and through a real pipeline: the element's output
//! must match the official ncnn runtime's reference (../shared/testdata/esrgan) within one 8-bit
//! level, including frames whose rows are padded (37 px RGB → 112-byte stride).

use std::path::PathBuf;

use gstreamer as gst;
use gstreamer_check as gst_check;
use gstreamer_video::prelude::*;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn models_dir() -> PathBuf {
    match std::env::var_os("AIPROD_MODELS_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => workspace().join("data/models"),
    }
}

fn testdata() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("AIPROD_ESRGAN_TESTDATA") {
        return Some(PathBuf::from(d));
    }
    [
        workspace().join("../shared/testdata/esrgan"),
        workspace().join("shared/testdata/esrgan"),
    ]
    .into_iter()
    .find(|p| p.join("manifest.json").is_file())
}

/// Loud skip on a developer machine without ONNX Runtime / models / fixtures; failure in CI.
fn ready() -> bool {
    let registry = aiprod_models::Registry::builtin().expect("registry");
    let problem = aiprod_models::runtime::ort_dylib_path()
        .and_then(|_| {
            aiprod_models::fetch::verify_store(
                &aiprod_models::ModelStore::new(models_dir()),
                &registry,
            )
        })
        .err()
        .map(|e| e.to_string())
        .or_else(|| {
            testdata()
                .is_none()
                .then(|| "../shared/testdata/esrgan not found".to_string())
        });
    match problem {
        None => {
            gst::init().expect("gst init");
            gstaiprod::plugin_register_static().expect("register plugin");
            true
        }
        Some(p)
            if std::env::var_os("CI").is_some()
                || std::env::var_os("AIPROD_REQUIRE_ORT").is_some() =>
        {
            panic!("{p} (CI/AIPROD_REQUIRE_ORT is set: use scripts/test.sh)")
        }
        Some(p) => {
            eprintln!("\n*** SKIPPED: {p} ***\n*** run scripts/setup-models.sh and export ORT_DYLIB_PATH ***\n");
            false
        }
    }
}

/// Decodes an 8-bit RGB PNG with GStreamer itself (pngdec), so the test needs no image crate.
fn png_rgb(path: &std::path::Path) -> (u32, u32, Vec<u8>) {
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! pngdec ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink sync=false",
        path.display()
    ))
    .expect("png pipeline")
    .downcast::<gst::Pipeline>()
    .expect("pipeline");
    let sink = pipeline.by_name("sink").expect("appsink");
    pipeline.set_state(gst::State::Playing).expect("playing");
    let sample = sink
        .emit_by_name::<Option<gst::Sample>>("pull-sample", &[])
        .expect("a frame");
    pipeline.set_state(gst::State::Null).expect("null");
    let info = gstreamer_video::VideoInfo::from_caps(sample.caps().expect("caps")).expect("info");
    let frame = gstreamer_video::VideoFrameRef::from_buffer_ref_readable(
        sample.buffer().expect("buffer"),
        &info,
    )
    .expect("map");
    packed(&frame)
}

/// The frame's RGB rows without stride padding.
fn packed(frame: &gstreamer_video::VideoFrameRef<&gst::BufferRef>) -> (u32, u32, Vec<u8>) {
    let (w, h) = (frame.width(), frame.height());
    let stride = frame.plane_stride()[0] as usize;
    let data = frame.plane_data(0).expect("plane");
    let mut out = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h as usize {
        out.extend_from_slice(&data[y * stride..y * stride + w as usize * 3]);
    }
    (w, h, out)
}

#[test]
fn harness_output_matches_ncnn_reference() {
    if !ready() {
        return;
    }
    let dir = testdata().expect("testdata");
    for case in ["synth37x23", "synth16x16"] {
        let (w, h, rgb) = png_rgb(&dir.join(format!("inputs/{case}.png")));
        let (rw, rh, reference) = png_rgb(&dir.join(format!("animevideov3_x4/{case}.out.png")));
        assert_eq!((rw, rh), (4 * w, 4 * h));

        // properties first: the harness starts the element right away
        let element = gst::ElementFactory::make("aiprodupscale")
            .property("models-dir", models_dir().to_str())
            .property("device", "cpu")
            .property("threads", 2u32)
            .property("tile-size", 16i32)
            .build()
            .expect("element");
        let mut h_ = gst_check::Harness::with_element(&element, Some("sink"), Some("src"));
        h_.set_src_caps_str(&format!(
            "video/x-raw,format=RGB,width={w},height={h},framerate=25/1"
        ));

        // the input buffer with GStreamer's row alignment (RGB rows padded to 4 bytes)
        let in_info = gstreamer_video::VideoInfo::builder(gstreamer_video::VideoFormat::Rgb, w, h)
            .build()
            .expect("info");
        let mut buffer = gst::Buffer::with_size(in_info.size()).expect("buffer");
        {
            let buf = buffer.get_mut().expect("writable");
            let mut frame = gstreamer_video::VideoFrameRef::from_buffer_ref_writable(buf, &in_info)
                .expect("map");
            let stride = frame.plane_stride()[0] as usize;
            let data = frame.plane_data_mut(0).expect("plane");
            for y in 0..h as usize {
                let row = &rgb[y * w as usize * 3..(y + 1) * w as usize * 3];
                data[y * stride..y * stride + row.len()].copy_from_slice(row);
            }
        }
        let out = h_.push_and_pull(buffer).expect("output buffer");
        let caps = h_.sinkpad().expect("sinkpad").current_caps().expect("caps");
        let out_info = gstreamer_video::VideoInfo::from_caps(&caps).expect("out info");
        assert_eq!((out_info.width(), out_info.height()), (4 * w, 4 * h));
        let frame =
            gstreamer_video::VideoFrameRef::from_buffer_ref_readable(out.as_ref(), &out_info)
                .expect("map");
        let (_, _, ours) = packed(&frame);
        let worst = ours
            .iter()
            .zip(&reference)
            .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
            .max()
            .expect("pixels");
        println!("{case}: aiprodupscale vs ncnn max 8-bit diff {worst}");
        assert!(worst <= 1, "{case}: {worst}");
        assert_eq!(element.property::<u64>("frames-processed"), 1);
        assert!(element.property::<u64>("processing-time") > 0);
        assert_eq!(element.property::<String>("execution-provider"), "cpu");
    }
}

#[test]
fn pipeline_from_yuv_negotiates_and_counts_frames() {
    if !ready() {
        return;
    }
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=3 ! video/x-raw,format=I420,width=48,height=32,framerate=25/1 \
         ! videoconvert ! aiprodupscale name=up scale=2 device=cpu threads=2 models-dir={} \
         ! videoconvert ! video/x-raw,format=I420 ! appsink name=sink sync=false",
        models_dir().display()
    ))
    .expect("pipeline")
    .downcast::<gst::Pipeline>()
    .expect("a pipeline");
    let sink = pipeline.by_name("sink").expect("sink");
    pipeline.set_state(gst::State::Playing).expect("playing");
    let mut frames = 0;
    while let Some(sample) = sink.emit_by_name::<Option<gst::Sample>>("pull-sample", &[]) {
        let s = sample
            .caps()
            .expect("caps")
            .structure(0)
            .expect("structure")
            .to_owned();
        assert_eq!(
            (
                s.get::<i32>("width").unwrap(),
                s.get::<i32>("height").unwrap()
            ),
            (96, 64)
        );
        frames += 1;
    }
    let up = pipeline.by_name("up").expect("up");
    assert_eq!(frames, 3);
    assert_eq!(up.property::<u64>("frames-processed"), 3);
    pipeline.set_state(gst::State::Null).expect("null");
}

#[test]
fn a_missing_model_fails_at_start_with_the_fetch_hint() {
    if !ready() {
        return;
    }
    let empty = tempfile::tempdir().expect("tempdir");
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=1 ! video/x-raw,format=RGB,width=8,height=8 ! aiprodupscale models-dir={} ! fakesink",
        empty.path().display()
    ))
    .expect("pipeline");
    let bus = pipeline.bus().expect("bus");
    let _ = pipeline.set_state(gst::State::Playing);
    let msg = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Error])
        .expect("an error message");
    let gst::MessageView::Error(err) = msg.view() else {
        unreachable!()
    };
    let text = format!("{} {}", err.error(), err.debug().unwrap_or_default());
    pipeline.set_state(gst::State::Null).expect("null");
    assert!(
        text.contains("missing") && text.contains("setup-models.sh"),
        "{text}"
    );
}
