//! The GStreamer elements the pipelines need, where they come from, and a checked constructor.

use gst::prelude::*;
use gstreamer as gst;

use super::PipelineError;

/// One requirement: any of `alternatives` (first preferred), with where to get it.
struct Requirement {
    alternatives: &'static [&'static str],
    plugin: &'static str,
    package: &'static str,
}

const REQUIRED: &[Requirement] = &[
    Requirement {
        alternatives: &[
            "queue",
            "capsfilter",
            "filesrc",
            "filesink",
            "fakesink",
            "tee",
        ],
        plugin: "coreelements",
        package: "libgstreamer1.0-0",
    },
    Requirement {
        alternatives: &["videotestsrc"],
        plugin: "videotestsrc",
        package: "gstreamer1.0-plugins-base",
    },
    Requirement {
        alternatives: &["audiotestsrc"],
        plugin: "audiotestsrc",
        package: "gstreamer1.0-plugins-base",
    },
    Requirement {
        alternatives: &["videoconvertscale"],
        plugin: "videoconvertscale",
        package: "gstreamer1.0-plugins-base (>= 1.22)",
    },
    Requirement {
        alternatives: &["videorate"],
        plugin: "videorate",
        package: "gstreamer1.0-plugins-base",
    },
    Requirement {
        alternatives: &["audioconvert"],
        plugin: "audioconvert",
        package: "gstreamer1.0-plugins-base",
    },
    Requirement {
        alternatives: &["audioresample"],
        plugin: "audioresample",
        package: "gstreamer1.0-plugins-base",
    },
    Requirement {
        alternatives: &["decodebin"],
        plugin: "playback",
        package: "gstreamer1.0-plugins-base",
    },
    Requirement {
        alternatives: &["textoverlay"],
        plugin: "pango",
        package: "gstreamer1.0-x",
    },
    Requirement {
        alternatives: &["x264enc"],
        plugin: "x264",
        package: "gstreamer1.0-plugins-ugly",
    },
    Requirement {
        alternatives: AAC_ENCODERS,
        plugin: "libav (avenc_aac), voaacenc or fdkaac",
        package: "gstreamer1.0-libav or gstreamer1.0-plugins-bad",
    },
    Requirement {
        alternatives: &["mp4mux", "qtmux"],
        plugin: "isomp4",
        package: "gstreamer1.0-plugins-good",
    },
    Requirement {
        alternatives: &["avdec_h264", "openh264dec"],
        plugin: "libav (an H.264 decoder)",
        package: "gstreamer1.0-libav",
    },
];

/// AAC encoders in order of preference (avenc_aac is FFmpeg's native encoder: best of the three
/// that Debian ships without non-free components).
pub(super) const AAC_ENCODERS: &[&str] = &["avenc_aac", "fdkaacenc", "voaacenc"];

/// Descriptions of the missing requirements; empty when everything is installed.
/// For multi-element requirements with alternatives, every listed name is needed only for
/// `coreelements` and `isomp4`, which ship them together.
pub(super) fn missing() -> Vec<String> {
    let mut out = Vec::new();
    for req in REQUIRED {
        let together = matches!(req.plugin, "coreelements" | "isomp4");
        let found: Vec<&str> = req
            .alternatives
            .iter()
            .copied()
            .filter(|name| gst::ElementFactory::find(name).is_some())
            .collect();
        let ok = if together {
            found.len() == req.alternatives.len()
        } else {
            !found.is_empty()
        };
        if !ok {
            out.push(format!(
                "{} (plugin {}, package {})",
                req.alternatives.join(if together { " + " } else { " or " }),
                req.plugin,
                req.package
            ));
        }
    }
    out
}

/// Creates an element by factory name, naming it `name` in the pipeline (error messages carry it).
pub(super) fn make(factory: &str, name: &str) -> Result<gst::Element, PipelineError> {
    gst::ElementFactory::make(factory)
        .name(name)
        .build()
        .map_err(|e| PipelineError::Build {
            element: format!("{name} ({factory})"),
            reason: e.to_string(),
        })
}

/// The first installed AAC encoder.
pub(super) fn aac_encoder(name: &str) -> Result<gst::Element, PipelineError> {
    let factory = AAC_ENCODERS
        .iter()
        .find(|f| gst::ElementFactory::find(f).is_some())
        .ok_or_else(|| PipelineError::Build {
            element: name.to_string(),
            reason: format!("no AAC encoder installed (one of {AAC_ENCODERS:?})"),
        })?;
    let enc = make(factory, name)?;
    Ok(enc)
}

/// A capsfilter with the given caps.
pub(super) fn capsfilter(name: &str, caps: gst::Caps) -> Result<gst::Element, PipelineError> {
    let f = make("capsfilter", name)?;
    f.set_property("caps", caps);
    Ok(f)
}

/// Adds `chain` to `bin` and links it in order.
pub(super) fn add_chain(bin: &gst::Pipeline, chain: &[&gst::Element]) -> Result<(), PipelineError> {
    bin.add_many(chain.iter().copied())
        .map_err(|e| PipelineError::Build {
            element: chain
                .first()
                .map(|e| e.name().to_string())
                .unwrap_or_default(),
            reason: e.to_string(),
        })?;
    link_chain(chain)
}

pub(super) fn link_chain(chain: &[&gst::Element]) -> Result<(), PipelineError> {
    for pair in chain.windows(2) {
        pair[0].link(pair[1]).map_err(|_| PipelineError::Build {
            element: format!("{} → {}", pair[0].name(), pair[1].name()),
            reason: "caps do not link".to_string(),
        })?;
    }
    Ok(())
}

/// A queue bounded by buffer count: for raw video, where a frame can be several MB.
pub(super) fn queue_frames(name: &str, max_buffers: u32) -> Result<gst::Element, PipelineError> {
    let q = make("queue", name)?;
    q.set_property("max-size-buffers", max_buffers);
    q.set_property("max-size-bytes", 0u32);
    q.set_property("max-size-time", 0u64);
    Ok(q)
}

/// A queue bounded by duration: for audio, whose buffers are small and many. It must hold more
/// than the video encoder's latency (x264 lookahead), or an interleaved demuxer blocks on it.
pub(super) fn queue_time(
    name: &str,
    max: std::time::Duration,
) -> Result<gst::Element, PipelineError> {
    let q = make("queue", name)?;
    q.set_property("max-size-buffers", 0u32);
    q.set_property("max-size-bytes", 0u32);
    q.set_property(
        "max-size-time",
        u64::try_from(max.as_nanos()).unwrap_or(u64::MAX),
    );
    Ok(q)
}

/// Sets a property from its string form (enum nicks, numbers), as gst-launch-1.0 would; unlike
/// `set_property_from_str` a bad value is an error, not a panic.
pub(super) fn set_str(
    element: &gst::Element,
    property: &str,
    value: &str,
) -> Result<(), PipelineError> {
    let fail = |reason: String| PipelineError::Build {
        element: element.name().to_string(),
        reason,
    };
    let pspec = element
        .find_property(property)
        .ok_or_else(|| fail(format!("has no property {property}")))?;
    let parsed = gst::glib::Value::deserialize_with_pspec(value, &pspec)
        .map_err(|_| fail(format!("{property}={value} is not a valid value")))?;
    element.set_property(property, parsed);
    Ok(())
}
