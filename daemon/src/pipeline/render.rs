//! The local backend's render: a moving test pattern with the prompt as caption and a tone,
//! encoded as a remote provider would deliver footage (H.264 + AAC in MP4).
//!
//! ```text
//! videotestsrc ! video/x-raw,I420,W×H,fps ! textoverlay ! queue ! x264enc ! h264 High ! mp4mux ! filesink
//! audiotestsrc ! audioconvert ! audio/x-raw,48k,2ch ! aacenc ! queue ! mp4mux.
//! ```

use std::path::Path;
use std::sync::atomic::AtomicBool;

use gst::prelude::*;
use gstreamer as gst;

use super::elements::{
    aac_encoder, add_chain, capsfilter, make, queue_frames, queue_time, set_str,
};
use super::look::{Look, TONE_VOLUME};
use super::runner::{self, FrameCounter, PartialFile, Total};
use super::{validate, PipelineError, Progress, RenderSpec, RunLimits, StageStats};

/// Delivered footage's audio, as remote providers deliver it.
const AUDIO_RATE_HZ: u32 = 48_000;
const AUDIO_CHANNELS: i32 = 2;
const AUDIO_BITRATE_BPS: i32 = 192_000;
/// x264 constant quantizer: visually lossless for test patterns, so later stages start from clean
/// footage. Constant QP rather than CRF (`pass=qual`) because CRF output was measured to vary
/// between runs in one process when the muxer also waits on audio (1 run in ~4 differed), which
/// breaks "same prompt + seed → same frames"; constant QP was identical in every run.
const X264_QP: u32 = 18;

/// Renders `spec` to `out` (MP4); see the module docs. Uses [`RunLimits::default`].
pub fn render_local(
    spec: &RenderSpec,
    out: &Path,
    on_progress: &mut dyn FnMut(&Progress),
    cancel: &AtomicBool,
) -> Result<StageStats, PipelineError> {
    render_local_with(spec, out, on_progress, cancel, &RunLimits::default())
}

pub fn render_local_with(
    spec: &RenderSpec,
    out: &Path,
    on_progress: &mut dyn FnMut(&Progress),
    cancel: &AtomicBool,
    limits: &RunLimits,
) -> Result<StageStats, PipelineError> {
    let frames = validate::render_frames(spec)?;
    super::init()?;
    let look = Look::for_prompt(&spec.prompt, spec.seed);
    let partial = PartialFile::for_output(out)?;
    let (pipeline, counter) = build(spec, frames, &look, partial.path())?;
    tracing::debug!(
        out = %out.display(), frames, pattern = look.pattern, tone_hz = look.tone_hz,
        "rendering local footage"
    );
    let stats = runner::run(
        &pipeline,
        &counter,
        Total::Frames(frames),
        on_progress,
        cancel,
        limits,
    )?;
    partial.commit(out)?;
    Ok(stats)
}

/// Samples of audio for `frames` video frames, and a buffer size that divides it exactly where
/// one exists, so audio and video end together.
fn audio_buffers(frames: u64, fps_num: u32, fps_den: u32) -> (i32, i32) {
    let total = (u128::from(frames) * u128::from(fps_den) * u128::from(AUDIO_RATE_HZ)
        + u128::from(fps_num) / 2)
        / u128::from(fps_num);
    let total = u64::try_from(total).unwrap_or(u64::MAX).max(1);
    // A divisor between 256 and 4800 samples (5 ms..100 ms); otherwise 1024 and a last buffer
    // that runs over by less than 22 ms.
    let per_buffer = (256..=4800u64)
        .rev()
        .find(|d| total.is_multiple_of(*d))
        .unwrap_or(1024);
    let buffers = total.div_ceil(per_buffer);
    (
        i32::try_from(per_buffer).unwrap_or(1024),
        i32::try_from(buffers).unwrap_or(i32::MAX),
    )
}

fn build(
    spec: &RenderSpec,
    frames: u64,
    look: &Look,
    location: &Path,
) -> Result<(gst::Pipeline, std::sync::Arc<FrameCounter>), PipelineError> {
    let pipeline = gst::Pipeline::with_name("render-local");
    let num_buffers = i32::try_from(frames).map_err(|_| PipelineError::InvalidSpec {
        field: "duration_s",
        reason: format!("{frames} frames is too many"),
    })?;

    let vsrc = make("videotestsrc", "pattern")?;
    set_str(&vsrc, "pattern", look.pattern)?;
    vsrc.set_property("num-buffers", num_buffers);
    vsrc.set_property("foreground-color", look.foreground_argb);
    vsrc.set_property("background-color", look.background_argb);
    vsrc.set_property("horizontal-speed", look.horizontal_speed);
    let vcaps = capsfilter(
        "raw-caps",
        gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .field("width", spec.width as i32)
            .field("height", spec.height as i32)
            .field(
                "framerate",
                gst::Fraction::new(spec.fps_num as i32, spec.fps_den as i32),
            )
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build(),
    )?;
    let caption = make("textoverlay", "caption")?;
    caption.set_property("text", &look.caption_markup);
    set_str(&caption, "valignment", "bottom")?;
    set_str(&caption, "halignment", "center")?;
    set_str(&caption, "wrap-mode", "wordchar")?;
    caption.set_property("shaded-background", true);
    caption.set_property("font-desc", "Sans Bold 16");
    let vqueue = queue_frames("video-queue", 4)?;
    let venc = make("x264enc", "video-encoder")?;
    set_str(&venc, "speed-preset", "fast")?;
    set_str(&venc, "pass", "quant")?;
    venc.set_property("quantizer", X264_QP);
    let hcaps = capsfilter(
        "h264-caps",
        gst::Caps::builder("video/x-h264")
            .field("profile", "high")
            .build(),
    )?;
    let mux = make("mp4mux", "mux")?;
    mux.set_property("faststart", true);
    let scratch = PartialFile::scratch_for(location);
    mux.set_property("faststart-file", scratch.to_string_lossy().as_ref());
    let sink = make("filesink", "sink")?;
    sink.set_property("location", location.to_string_lossy().as_ref());

    let (per_buffer, buffers) = audio_buffers(frames, spec.fps_num, spec.fps_den);
    let asrc = make("audiotestsrc", "tone")?;
    asrc.set_property("freq", look.tone_hz);
    asrc.set_property("volume", TONE_VOLUME);
    asrc.set_property("samplesperbuffer", per_buffer);
    asrc.set_property("num-buffers", buffers);
    let aconv = make("audioconvert", "audio-convert")?;
    let acaps = capsfilter(
        "audio-caps",
        gst::Caps::builder("audio/x-raw")
            .field("rate", AUDIO_RATE_HZ as i32)
            .field("channels", AUDIO_CHANNELS)
            .build(),
    )?;
    let aenc = aac_encoder("audio-encoder")?;
    set_str(&aenc, "bitrate", &AUDIO_BITRATE_BPS.to_string())?;
    let aqueue = queue_time("audio-queue", std::time::Duration::from_secs(5))?;

    add_chain(
        &pipeline,
        &[&vsrc, &vcaps, &caption, &vqueue, &venc, &hcaps, &mux, &sink],
    )?;
    add_chain(&pipeline, &[&asrc, &aconv, &acaps, &aenc, &aqueue])?;
    super::elements::link_chain(&[&aqueue, &mux])?;

    let enc_sink = venc
        .static_pad("sink")
        .ok_or_else(|| PipelineError::Build {
            element: "video-encoder".into(),
            reason: "x264enc has no sink pad".into(),
        })?;
    let counter = FrameCounter::attach(&enc_sink);
    Ok((pipeline, counter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_buffers_cover_the_video_exactly() {
        assert_eq!(audio_buffers(30, 30, 1), (4800, 10)); // 1 s
        let (per, n) = audio_buffers(60, 30000, 1001);
        assert_eq!(per as i64 * n as i64, 96_096); // 2 s at 29.97 fps
        let (per, n) = audio_buffers(25, 25, 1);
        assert_eq!(per as i64 * n as i64, 48_000);
    }
}
