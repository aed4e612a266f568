//! Quality control inside the processing pipeline: `aiprodqc` (gst-plugin-aiprod) on a tee
//! branch right before each encoder measures the frames and samples the encoder takes, so the
//! VALIDATING stage needs no second decode of the output.
//!
//! ```text
//! … ! scale-caps ! tee ─→ queue ! x264enc …
//!                      └→ queue ! videoconvert ! I420 ! aiprodqc ! fakesink
//! … ! audio-caps ! tee ─→ [aacenc] ! queue ! mux
//!                      └→ queue ! audioconvert ! F32LE ! aiprodqc ! fakesink
//! ```
//!
//! Each `aiprodqc` posts a summary message at end of stream (before the pipeline's EOS, which
//! waits for every sink); [`QcCollector`] keeps them and turns them into the same
//! [`QcReport`] that decoding the file would give.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aiprod_quality::qc::{Blur, Loudness, QcConfig, QcReport, Segment};
use gst::prelude::*;
use gstreamer as gst;

use super::elements::{capsfilter, link_chain, make, queue_frames, queue_time};
use super::PipelineError;

/// Raw frames the QC branch may fall behind the encoder before the tee waits for it.
const QC_QUEUE_FRAMES: u32 = 4;
/// Audio the QC branch may fall behind.
const QC_AUDIO_QUEUE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Media {
    Video,
    Audio,
}

impl Media {
    fn label(self) -> &'static str {
        match self {
            Media::Video => "video",
            Media::Audio => "audio",
        }
    }
}

/// A tee named `qc-<media>-tee`, to go into the chain right before the encoder (or the muxer).
pub(super) fn tee(media: Media) -> Result<gst::Element, PipelineError> {
    make("tee", &format!("qc-{}-tee", media.label()))
}

/// The QC branches' sinks, kept in PLAYING apart from the pipeline's state changes and set to
/// NULL when dropped (after the run has taken the pipeline to NULL).
///
/// Why: in PAUSED a sink holds its branch on the first buffer until the whole pipeline has
/// prerolled, and the file sink prerolls only once x264enc has its lookahead (tens of frames).
/// With the QC branch's bounded queue full, the tee could not feed the encoder those frames: a
/// deadlock. A sink already in PLAYING never waits for preroll.
#[derive(Default)]
pub(super) struct QcSinks(Vec<gst::Element>);

impl QcSinks {
    fn start(&mut self, sink: &gst::Element) -> Result<(), PipelineError> {
        sink.set_locked_state(true);
        self.0.push(sink.clone());
        sink.set_state(gst::State::Playing)
            .map(|_| ())
            .map_err(|e| PipelineError::Build {
                element: sink.name().to_string(),
                reason: format!("cannot start the QC sink: {e}"),
            })
    }
}

impl Drop for QcSinks {
    fn drop(&mut self) {
        for sink in &self.0 {
            if let Err(e) = sink.set_state(gst::State::Null) {
                tracing::warn!(sink = %sink.name(), error = %e, "QC sink did not go to NULL");
            }
        }
    }
}

/// Adds the QC branch to `pipeline`, links it to `tee` (already in the pipeline) and starts its
/// sink (see [`QcSinks`]).
pub(super) fn attach(
    pipeline: &gst::Pipeline,
    tee: &gst::Element,
    media: Media,
    cfg: &QcConfig,
    sinks: &mut QcSinks,
) -> Result<(), PipelineError> {
    let label = media.label();
    let qc = make(gstaiprod::qc::ELEMENT_NAME, &format!("qc-{label}"))?;
    let (queue, convert, caps) = match media {
        Media::Video => {
            qc.set_property("black-min-duration", cfg.black_min_duration_s);
            qc.set_property("freeze-min-duration", cfg.freeze_min_duration_s);
            qc.set_property("freeze-noise", cfg.freeze_noise_db);
            if qc.find_property("blur").is_some() {
                qc.set_property("blur", cfg.blur.is_some());
            }
            (
                queue_frames("qc-video-queue", QC_QUEUE_FRAMES)?,
                make("videoconvert", "qc-video-convert")?,
                // The detectors read 8-bit 4:2:0, like the file-level QC's decode.
                gst::Caps::builder("video/x-raw")
                    .field("format", "I420")
                    .build(),
            )
        }
        Media::Audio => {
            qc.set_property("silence-min-duration", cfg.silence_min_duration_s);
            qc.set_property("silence-noise", cfg.silence_noise_db);
            (
                queue_time("qc-audio-queue", QC_AUDIO_QUEUE)?,
                make("audioconvert", "qc-audio-convert")?,
                gst::Caps::builder("audio/x-raw")
                    .field("format", "F32LE")
                    .field("layout", "interleaved")
                    .build(),
            )
        }
    };
    let caps = capsfilter(&format!("qc-{label}-caps"), caps)?;
    let sink = make("fakesink", &format!("qc-{label}-sink"))?;
    sink.set_property("sync", false);
    sink.set_property("async", false);
    let chain = [&queue, &convert, &caps, &qc, &sink];
    pipeline.add_many(chain).map_err(|e| PipelineError::Build {
        element: format!("qc-{label} branch"),
        reason: e.to_string(),
    })?;
    link_chain(&[tee, &queue, &convert, &caps, &qc, &sink])?;
    sinks.start(&sink)
}

/// The `aiprodqc` summaries posted on a pipeline's bus.
#[derive(Debug, Default)]
pub(super) struct QcCollector {
    summaries: Mutex<Vec<gst::Structure>>,
}

impl QcCollector {
    /// Watches `pipeline`'s bus from the posting thread (a sync handler), so the runner's own
    /// bus polling, which drops element messages, never sees fewer.
    pub(super) fn attach(pipeline: &gst::Pipeline) -> Result<Arc<QcCollector>, PipelineError> {
        let bus = pipeline.bus().ok_or_else(|| PipelineError::Build {
            element: pipeline.name().to_string(),
            reason: "pipeline has no bus".to_string(),
        })?;
        let collector = Arc::new(QcCollector::default());
        let c = Arc::clone(&collector);
        bus.set_sync_handler(move |_, msg| {
            if let gst::MessageView::Element(e) = msg.view() {
                if let Some(s) = e
                    .structure()
                    .filter(|s| s.name() == gstaiprod::qc::SUMMARY_MESSAGE)
                {
                    c.summaries
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(s.to_owned());
                }
            }
            gst::BusSyncReply::Pass
        });
        Ok(collector)
    }

    /// The report, once both summaries arrived (None otherwise: validation then decodes).
    pub(super) fn report(&self, fps: f64, audio_rate_hz: u32) -> Option<QcReport> {
        let summaries = self.summaries.lock().unwrap_or_else(|p| p.into_inner());
        report_from(&summaries, fps, audio_rate_hz)
    }
}

/// "start-end,start-end" seconds (the summary's segment lists), every segment closed.
fn segments(text: &str) -> Option<Vec<Segment>> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (start, end) = s.split_once('-')?;
            Some(Segment {
                start_s: start.parse().ok()?,
                end_s: Some(end.parse().ok()?),
            })
        })
        .collect()
}

/// The QC report of one video and one audio `aiprodqc` summary; `fps` and `audio_rate_hz` are
/// the streams' rates (for the last frame's time and the audio's length). None when either
/// summary is missing or malformed.
pub(super) fn report_from(
    summaries: &[gst::Structure],
    fps: f64,
    audio_rate_hz: u32,
) -> Option<QcReport> {
    let find = |media: &str| {
        summaries
            .iter()
            .find(|s| s.get::<&str>("media").ok() == Some(media))
    };
    let video = find("video")?;
    let audio = find("audio")?;
    let frames = video.get::<u64>("frames").ok()?;
    let blur = match (
        video.get::<f64>("blur-mean"),
        video.get::<f64>("blur-max"),
        video.get::<u64>("blur-frames-without-edges"),
    ) {
        (Ok(mean), Ok(max), Ok(frames_without_edges)) => Some(Blur {
            frames,
            mean,
            max,
            frames_without_edges,
        }),
        _ => None,
    };
    let audio_frames = audio.get::<u64>("frames").ok()?;
    let lufs = audio.get::<f64>("integrated-lufs").ok()?;
    let peak = audio.get::<f64>("true-peak-dbtp").ok()?;
    // The element posts a true peak of -inf when the meter had nothing to measure.
    let loudness = (audio_frames > 0 && peak.is_finite()).then_some(Loudness {
        integrated_lufs: lufs,
        true_peak_dbtp: peak,
    });
    Some(QcReport {
        video_frames: frames,
        last_pts_s: if fps > 0.0 {
            frames.saturating_sub(1) as f64 / fps
        } else {
            0.0
        },
        black: segments(video.get::<&str>("black").ok()?)?,
        frozen: segments(video.get::<&str>("frozen").ok()?)?,
        silence: segments(audio.get::<&str>("silence").ok()?)?,
        loudness,
        audio_seconds: audio_frames as f64 / f64::from(audio_rate_hz.max(1)),
        blur,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(black: &str) -> gst::Structure {
        gst::Structure::builder("aiprodqc")
            .field("media", "video")
            .field("frames", 250u64)
            .field("black", black)
            .field("frozen", "")
            .build()
    }

    fn audio(peak: f64) -> gst::Structure {
        gst::Structure::builder("aiprodqc")
            .field("media", "audio")
            .field("frames", 480_000u64)
            .field("silence", "9.500-10.000")
            .field("integrated-lufs", -23.04)
            .field("true-peak-dbtp", peak)
            .build()
    }

    #[test]
    fn summaries_become_the_file_level_report() {
        gst::init().unwrap();
        let r = report_from(
            &[audio(-3.5), video("0.000-2.040,7.000-10.000")],
            25.0,
            48_000,
        )
        .unwrap();
        assert_eq!(r.video_frames, 250);
        assert!((r.audio_seconds - 10.0).abs() < 1e-9);
        assert!((r.last_pts_s - 9.96).abs() < 1e-9);
        assert_eq!(
            r.black,
            vec![
                Segment {
                    start_s: 0.0,
                    end_s: Some(2.04)
                },
                Segment {
                    start_s: 7.0,
                    end_s: Some(10.0)
                }
            ]
        );
        assert!(r.frozen.is_empty());
        assert_eq!(r.silence.len(), 1);
        assert_eq!(
            r.loudness,
            Some(Loudness {
                integrated_lufs: -23.04,
                true_peak_dbtp: -3.5
            })
        );
        assert_eq!(r.blur, None);
    }

    #[test]
    fn a_missing_or_malformed_summary_gives_no_report() {
        gst::init().unwrap();
        assert!(report_from(&[video("")], 25.0, 48_000).is_none());
        assert!(report_from(&[audio(-1.0)], 25.0, 48_000).is_none());
        assert!(report_from(&[video("1.0-x"), audio(-1.0)], 25.0, 48_000).is_none());
        // Nothing measured by the loudness meter: no loudness, like the file-level QC.
        let r = report_from(&[video(""), audio(f64::NEG_INFINITY)], 25.0, 48_000).unwrap();
        assert_eq!(r.loudness, None);
    }
}
