//! `aiprodupscale`: Real-ESRGAN super-resolution of raw RGB video (see imp.rs).
//!
//! ```text
//! GST_PLUGIN_PATH=target/debug gst-launch-1.0 videotestsrc num-buffers=2 \
//!   ! video/x-raw,width=160,height=90 ! videoconvert \
//!   ! aiprodupscale model=realesr-animevideov3 scale=4 tile-size=64 \
//!   ! videoconvert ! pngenc ! multifilesink location=up-%02d.png
//! ```

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct AiprodUpscale(ObjectSubclass<imp::AiprodUpscale>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

/// Element name.
pub const ELEMENT_NAME: &str = "aiprodupscale";

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        ELEMENT_NAME,
        gst::Rank::NONE,
        AiprodUpscale::static_type(),
    )
}
