//! aiprodqc follows aiprod-quality's engine choice: the same pipeline with
//! `AIPROD_QC_ENGINE=cpu` and `=wgpu` (lavapipe here) posts the same summary. Skips with a printed
//! reason when no wgpu adapter exists.

use aiprod_quality::qc::{EngineChoice, QcEngine};
use gstreamer as gst;
use gstreamer::prelude::*;

/// The summary message of a run with `AIPROD_QC_ENGINE=engine`.
fn summary(engine: &str) -> gst::Structure {
    std::env::set_var("AIPROD_QC_ENGINE", engine);
    gst::init().unwrap();
    gstaiprod::plugin_register_static().unwrap();
    // 62x46 (device rows padded): 20 frames of pattern, 60 black, 50 of one solid colour.
    let caps = "video/x-raw,format=I420,width=62,height=46,framerate=25/1";
    let pipeline = gst::parse::launch(&format!(
        "concat name=c ! aiprodqc black-min-duration=1.0 freeze-min-duration=1.0 ! fakesink \
         videotestsrc pattern=ball num-buffers=20 ! {caps} ! c. \
         videotestsrc pattern=black num-buffers=60 ! {caps} ! c. \
         videotestsrc pattern=solid-color foreground-color=0xff3070c0 num-buffers=50 ! {caps} ! c."
    ))
    .unwrap();
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut found = None;
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == "aiprodqc") {
                    found = Some(s.to_owned());
                }
            }
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{engine}: {}: {:?}", e.error(), e.debug()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    found.expect("summary message")
}

#[test]
fn wgpu_engine_posts_the_cpu_summary() {
    if let Err(e) = QcEngine::choose(EngineChoice::Wgpu) {
        eprintln!("SKIPPED: no wgpu adapter for the wgpu QC engine ({e})");
        return;
    }
    let cpu = summary("cpu");
    let gpu = summary("wgpu");
    eprintln!("cpu:  {cpu}\nwgpu: {gpu}");
    assert_eq!(cpu.get::<u64>("frames").unwrap(), 130);
    assert_eq!(cpu.get::<&str>("black").unwrap(), "0.800-3.200", "{cpu}");
    // The black frames are still, and so is the solid colour after them.
    assert_eq!(cpu.get::<u32>("frozen-count").unwrap(), 2, "{cpu}");
    for field in [
        "frames",
        "black-count",
        "black",
        "black-longest-s",
        "frozen-count",
        "frozen",
        "frozen-longest-s",
    ] {
        assert_eq!(
            cpu.value(field).unwrap().serialize().unwrap(),
            gpu.value(field).unwrap().serialize().unwrap(),
            "{field}"
        );
    }
}
