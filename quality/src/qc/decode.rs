//! Decoding for file-level QC: GStreamer decodes a file once into I420 frames and interleaved f32
//! audio, handed to callbacks with their timestamps. The only I/O of the QC module.

use std::path::Path;
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

use super::video::Frame;
use super::QcError;

pub struct AudioChunk<'a> {
    pub samples: &'a [f32],
    pub channels: usize,
    pub rate: u32,
}

/// A decoded I420 frame, owning its buffer (handed across threads without a copy).
pub struct DecodedFrame {
    frame: gst_video::VideoFrame<gst_video::video_frame::Readable>,
    pub pts_s: f64,
}

impl DecodedFrame {
    pub fn view(&self) -> Option<Frame<'_>> {
        let f = &self.frame;
        let stride = f.plane_stride();
        Some(Frame {
            planes: [
                f.plane_data(0).ok()?,
                f.plane_data(1).ok()?,
                f.plane_data(2).ok()?,
            ],
            strides: [stride[0] as usize, stride[1] as usize, stride[2] as usize],
            width: f.width() as usize,
            height: f.height() as usize,
            chroma_shift: (1, 1),
        })
    }
}

pub type VideoFn<'a> = Box<dyn FnMut(DecodedFrame) + Send + 'a>;
pub type AudioFn<'a> = Box<dyn FnMut(&AudioChunk) + Send + 'a>;

/// Decodes `path`, calling `on_video` per frame (I420) and `on_audio` per buffer (F32 interleaved).
/// Streams without a callback are discarded undecoded where possible.
pub fn decode(
    path: &Path,
    on_video: Option<VideoFn<'static>>,
    on_audio: Option<AudioFn<'static>>,
) -> Result<(), QcError> {
    gst::init().map_err(|e| QcError::Decode(format!("GStreamer: {e}")))?;
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("filesrc")
        .property("location", path.to_string_lossy().to_string())
        .build()
        .map_err(|e| QcError::Decode(e.to_string()))?;
    let decodebin = gst::ElementFactory::make("decodebin")
        .build()
        .map_err(|e| QcError::Decode(e.to_string()))?;
    pipeline
        .add_many([&src, &decodebin])
        .map_err(|e| QcError::Decode(e.to_string()))?;
    src.link(&decodebin)
        .map_err(|e| QcError::Decode(e.to_string()))?;
    let video = Arc::new(Mutex::new(on_video));
    let audio = Arc::new(Mutex::new(on_audio));
    let weak = pipeline.downgrade();
    let (v2, a2) = (video.clone(), audio.clone());
    let linked = Arc::new(Mutex::new((false, false)));
    decodebin.connect_pad_added(move |_, pad| {
        let Some(pipeline) = weak.upgrade() else {
            return;
        };
        let caps = pad.current_caps().or_else(|| Some(pad.query_caps(None)));
        let name = caps
            .as_ref()
            .and_then(|c| c.structure(0))
            .map(|s| s.name().to_string())
            .unwrap_or_default();
        let mut l = linked.lock().unwrap_or_else(|p| p.into_inner());
        let branch = if name.starts_with("video/")
            && !l.0
            && v2.lock().map(|v| v.is_some()).unwrap_or(false)
        {
            l.0 = true;
            video_branch(&pipeline, v2.clone())
        } else if name.starts_with("audio/")
            && !l.1
            && a2.lock().map(|a| a.is_some()).unwrap_or(false)
        {
            l.1 = true;
            audio_branch(&pipeline, a2.clone())
        } else {
            fakesink(&pipeline)
        };
        if let Some(sink) = branch {
            if let Some(sinkpad) = sink.static_pad("sink") {
                let _ = pad.link(&sinkpad);
            }
        }
    });
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| QcError::Decode(format!("{}: cannot start decoding: {e}", path.display())))?;
    let bus = pipeline
        .bus()
        .ok_or_else(|| QcError::Decode("no bus".into()))?;
    let mut result = Ok(());
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                result = Err(QcError::Decode(format!(
                    "{}: {}",
                    path.display(),
                    e.error()
                )));
                break;
            }
            _ => {}
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn fakesink(pipeline: &gst::Pipeline) -> Option<gst::Element> {
    let s = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .build()
        .ok()?;
    pipeline.add(&s).ok()?;
    s.sync_state_with_parent().ok()?;
    Some(s)
}

fn video_branch(
    pipeline: &gst::Pipeline,
    cb: Arc<Mutex<Option<VideoFn<'static>>>>,
) -> Option<gst::Element> {
    let convert = gst::ElementFactory::make("videoconvert").build().ok()?;
    let sink = gst_app::AppSink::builder()
        .caps(
            &gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .build(),
        )
        .sync(false)
        .build();
    pipeline.add_many([&convert, sink.upcast_ref()]).ok()?;
    convert.link(&sink).ok()?;
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let buffer = sample.buffer_owned().ok_or(gst::FlowError::Error)?;
                let caps = sample.caps().ok_or(gst::FlowError::Error)?;
                let info =
                    gst_video::VideoInfo::from_caps(caps).map_err(|_| gst::FlowError::Error)?;
                let pts = buffer.pts().map_or(0.0, |t| t.nseconds() as f64 / 1e9);
                let frame = gst_video::VideoFrame::from_buffer_readable(buffer, &info)
                    .map_err(|_| gst::FlowError::Error)?;
                if let Ok(mut g) = cb.lock() {
                    if let Some(f) = g.as_mut() {
                        f(DecodedFrame { frame, pts_s: pts });
                    }
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    convert.sync_state_with_parent().ok()?;
    sink.sync_state_with_parent().ok()?;
    Some(convert)
}

fn audio_branch(
    pipeline: &gst::Pipeline,
    cb: Arc<Mutex<Option<AudioFn<'static>>>>,
) -> Option<gst::Element> {
    let convert = gst::ElementFactory::make("audioconvert").build().ok()?;
    let sink = gst_app::AppSink::builder()
        .caps(
            &gst::Caps::builder("audio/x-raw")
                .field("format", "F32LE")
                .field("layout", "interleaved")
                .build(),
        )
        .sync(false)
        .build();
    pipeline.add_many([&convert, sink.upcast_ref()]).ok()?;
    convert.link(&sink).ok()?;
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let caps = sample.caps().ok_or(gst::FlowError::Error)?;
                let st = caps.structure(0).ok_or(gst::FlowError::Error)?;
                let channels = st.get::<i32>("channels").unwrap_or(1).max(1) as usize;
                let rate = st.get::<i32>("rate").unwrap_or(48000).max(1) as u32;
                let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                let samples: Vec<f32> = map
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                if let Ok(mut g) = cb.lock() {
                    if let Some(f) = g.as_mut() {
                        f(&AudioChunk {
                            samples: &samples,
                            channels,
                            rate,
                        });
                    }
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    convert.sync_state_with_parent().ok()?;
    sink.sync_state_with_parent().ok()?;
    Some(convert)
}
