//! gst-plugin-aiprod: aiprod's own processing as GStreamer elements, so an operator can run what
//! a job runs with gst-launch-1.0 (`GST_PLUGIN_PATH=<target>/debug`). One module per element
//! (`mod.rs` registration + `imp.rs` implementation); the daemon links this crate and registers
//! the plugin statically with [`plugin_register_static`].

// the gst-plugins-rs names, crate-wide
extern crate gstreamer as gst;
extern crate gstreamer_base as gst_base;
extern crate gstreamer_video as gst_video;

use gst::glib;

pub mod qc;
pub mod scale;
pub mod upscale;

/// The elements' state lock. Poisoned locks only mean another thread panicked mid-update; the
/// data is still plain values.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    upscale::register(plugin)?;
    qc::register(plugin)?;
    scale::register(plugin)?;
    Ok(())
}

gst::plugin_define!(
    aiprod,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "Apache 2.0",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    "https://github.com/aiprod/aiprod",
    env!("BUILD_REL_DATE")
);
