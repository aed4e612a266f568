//! `aiprodscale`: resizes I420 video with aiprod's own wgpu kernels (Lanczos-3 or Catmull-Rom
//! bicubic, each plane at its own size); see imp.rs.
//!
//! ```text
//! GST_PLUGIN_PATH=target/debug gst-launch-1.0 videotestsrc num-buffers=5 \
//!   ! video/x-raw,format=I420,width=320,height=180 ! aiprodscale method=lanczos \
//!   ! video/x-raw,width=640,height=360 ! videoconvert ! autovideosink
//! ```

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct AiprodScale(ObjectSubclass<imp::AiprodScale>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

/// Element name.
pub const ELEMENT_NAME: &str = "aiprodscale";

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        ELEMENT_NAME,
        gst::Rank::NONE,
        AiprodScale::static_type(),
    )
}
