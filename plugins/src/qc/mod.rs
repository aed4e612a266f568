//! `aiprodqc`: quality control inside a pipeline, on the frames already decoded for encoding, so
//! QC costs no second decode. Passthrough: buffers leave untouched. On raw I420 video it runs
//! FFmpeg-equivalent black and freeze detection (and blurdetect with `blur=true`); on F32 audio,
//! silence detection and EBU R128 loudness (aiprod_quality::qc). Results are posted as element
//! messages:
//!
//! - `aiprodqc-segment` when a black/frozen/silent segment ends (`kind`, `start-s`, `end-s`);
//! - `aiprodqc` at end of stream with the totals (see imp.rs for the fields).
//!
//! ```text
//! GST_PLUGIN_PATH=target/debug gst-launch-1.0 -m videotestsrc pattern=black num-buffers=75 \
//!   ! video/x-raw,format=I420,framerate=25/1 ! aiprodqc black-min-duration=1.0 ! fakesink
//! ```

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct AiprodQc(ObjectSubclass<imp::AiprodQc>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

/// Element name.
pub const ELEMENT_NAME: &str = "aiprodqc";
/// Name of the end-of-stream summary message's structure.
pub const SUMMARY_MESSAGE: &str = "aiprodqc";
/// Name of the per-segment message's structure.
pub const SEGMENT_MESSAGE: &str = "aiprodqc-segment";

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        ELEMENT_NAME,
        gst::Rank::NONE,
        AiprodQc::static_type(),
    )
}
