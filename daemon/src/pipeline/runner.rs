//! Runs a built pipeline to EOS: polls the bus, reports progress, honours cancellation and the
//! stall timeout, and always leaves the pipeline in NULL and no partial file behind on failure.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use gst::prelude::*;
use gstreamer as gst;

use super::{PipelineError, Progress, RunLimits, StageStats};

/// Counts video frames and remembers the last timestamp at a pad (the encoder's input), from the
/// streaming thread; the bus loop reads it.
#[derive(Debug, Default)]
pub(super) struct FrameCounter {
    frames: AtomicU64,
    /// Running time end (pts + duration) of the last frame, ns.
    position_ns: AtomicU64,
}

impl FrameCounter {
    pub(super) fn attach(pad: &gst::Pad) -> Arc<FrameCounter> {
        let counter = Arc::new(FrameCounter::default());
        let c = Arc::clone(&counter);
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buffer) = info.buffer() {
                c.frames.fetch_add(1, Ordering::Relaxed);
                if let Some(pts) = buffer.pts() {
                    let end = pts + buffer.duration().unwrap_or(gst::ClockTime::ZERO);
                    c.position_ns.store(end.nseconds(), Ordering::Relaxed);
                }
            }
            gst::PadProbeReturn::Ok
        });
        counter
    }

    fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    fn position_ns(&self) -> u64 {
        self.position_ns.load(Ordering::Relaxed)
    }
}

/// How the run knows how far along it is.
#[derive(Debug, Clone, Copy)]
pub(super) enum Total {
    Frames(u64),
    Duration(gst::ClockTime),
}

/// Sets the pipeline to NULL when dropped, whatever path the run leaves by.
struct NullOnDrop<'a>(&'a gst::Pipeline);

impl Drop for NullOnDrop<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.0.set_state(gst::State::Null) {
            tracing::warn!(error = %e, "pipeline did not go to NULL");
        }
    }
}

/// A file written under a temporary name, removed on drop unless committed (renamed into place).
pub(super) struct PartialFile {
    partial: PathBuf,
    committed: bool,
}

impl PartialFile {
    /// `out.with_extension("partial")`; creates the parent directory, removes a stale partial.
    pub(super) fn for_output(out: &Path) -> Result<PartialFile, PipelineError> {
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| PipelineError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let partial = out.with_extension("partial");
        if partial == out {
            return Err(PipelineError::InvalidSpec {
                field: "out",
                reason: format!("{} must not end in .partial", out.display()),
            });
        }
        for stale in [partial.clone(), Self::scratch_for(&partial)] {
            match std::fs::remove_file(&stale) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(PipelineError::Io {
                        path: stale,
                        source,
                    })
                }
            }
        }
        Ok(PartialFile {
            partial,
            committed: false,
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.partial
    }

    /// Where a muxer keeps its temporary data for this output (mp4mux's faststart file): next
    /// to the partial, on the data disk the disk guard watches, and removed with it.
    pub(super) fn scratch_for(partial: &Path) -> PathBuf {
        partial.with_extension("faststart")
    }

    pub(super) fn commit(mut self, out: &Path) -> Result<(), PipelineError> {
        std::fs::rename(&self.partial, out).map_err(|source| PipelineError::Io {
            path: out.to_path_buf(),
            source,
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.partial);
        }
        // the muxer removes it when it finishes; not when the run failed or was cancelled
        let _ = std::fs::remove_file(Self::scratch_for(&self.partial));
    }
}

/// Turns an ERROR message into a [`PipelineError::Stream`], or [`PipelineError::NoSpace`] naming
/// the file when a sink ran out of disk.
pub(super) fn stream_error(err: &gst::message::Error) -> PipelineError {
    // Sinks say NoSpaceLeft; qtmux reports its faststart scratch file's ENOSPC as a write
    // error whose debug text carries the system error.
    let no_space = err.error().matches(gst::ResourceError::NoSpaceLeft)
        || (err.error().matches(gst::ResourceError::Write)
            && err
                .debug()
                .is_some_and(|d| d.contains("No space left on device")));
    if no_space {
        // a sink's file, or the muxer's faststart scratch file
        let location = err
            .src()
            .and_then(|s| s.downcast_ref::<gst::Element>())
            .and_then(|e| {
                ["location", "faststart-file"]
                    .into_iter()
                    .find(|p| e.find_property(p).is_some())
                    .and_then(|p| e.property::<Option<String>>(p))
            });
        if let Some(path) = location {
            return PipelineError::NoSpace { path: path.into() };
        }
    }
    PipelineError::Stream {
        source_element: err
            .src()
            .map(|s| s.path_string().to_string())
            .unwrap_or_else(|| "pipeline".to_string()),
        message: err.error().to_string(),
        debug: err.debug().map(|d| d.to_string()),
    }
}

/// Plays `pipeline` to EOS.
pub(super) fn run(
    pipeline: &gst::Pipeline,
    counter: &FrameCounter,
    total: Total,
    on_progress: &mut dyn FnMut(&Progress),
    cancel: &AtomicBool,
    limits: &RunLimits,
) -> Result<StageStats, PipelineError> {
    let _null = NullOnDrop(pipeline);
    let bus = pipeline.bus().ok_or_else(|| PipelineError::Build {
        element: pipeline.name().to_string(),
        reason: "pipeline has no bus".to_string(),
    })?;
    let poll = gst::ClockTime::from_nseconds(
        u64::try_from(limits.poll_interval.as_nanos()).unwrap_or(u64::MAX),
    );
    let started = Instant::now();
    if pipeline.set_state(gst::State::Playing).is_err() {
        // The reason is on the bus as an ERROR message.
        let reason = bus
            .timed_pop_filtered(poll, &[gst::MessageType::Error])
            .and_then(|m| match m.view() {
                gst::MessageView::Error(e) => Some(stream_error(e)),
                _ => None,
            });
        return Err(reason.unwrap_or_else(|| PipelineError::Build {
            element: pipeline.name().to_string(),
            reason: "could not start (state change to PLAYING failed)".to_string(),
        }));
    }

    let mut last_report = Instant::now();
    let mut last_frames = 0;
    let mut last_advance = Instant::now();
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(PipelineError::Cancelled);
        }
        if let Some(msg) = bus.timed_pop_filtered(
            poll,
            &[
                gst::MessageType::Eos,
                gst::MessageType::Error,
                gst::MessageType::Warning,
            ],
        ) {
            match msg.view() {
                gst::MessageView::Eos(_) => break,
                gst::MessageView::Error(e) => return Err(stream_error(e)),
                gst::MessageView::Warning(w) => {
                    tracing::warn!(
                        element = %w.src().map(|s| s.path_string().to_string()).unwrap_or_default(),
                        warning = %w.error(),
                        debug = ?w.debug(),
                        "pipeline warning"
                    );
                }
                _ => {}
            }
        }
        let frames = counter.frames();
        if frames != last_frames {
            last_frames = frames;
            last_advance = Instant::now();
        } else if last_advance.elapsed() > limits.stall_timeout {
            return Err(PipelineError::Stalled {
                stalled_s: last_advance.elapsed().as_secs_f64(),
                frames_done: frames,
            });
        }
        if last_report.elapsed() >= limits.progress_interval {
            last_report = Instant::now();
            on_progress(&progress(counter, total, started));
        }
    }

    let wall_s = started.elapsed().as_secs_f64();
    let frames = counter.frames();
    on_progress(&Progress {
        fraction: 1.0,
        frames_done: frames,
        frames_per_s: per_s(frames, wall_s),
    });
    Ok(StageStats {
        frames,
        wall_s,
        frames_per_s: per_s(frames, wall_s),
    })
}

fn per_s(frames: u64, wall_s: f64) -> f64 {
    if wall_s > 0.0 {
        frames as f64 / wall_s
    } else {
        0.0
    }
}

fn progress(counter: &FrameCounter, total: Total, started: Instant) -> Progress {
    let frames = counter.frames();
    let fraction = match total {
        Total::Frames(0) => 0.0,
        Total::Frames(n) => frames as f64 / n as f64,
        Total::Duration(d) if d.nseconds() == 0 => 0.0,
        Total::Duration(d) => counter.position_ns() as f64 / d.nseconds() as f64,
    };
    Progress {
        // Never report done before EOS: the muxer still has to finish the file.
        fraction: fraction.clamp(0.0, 0.999),
        frames_done: frames,
        frames_per_s: per_s(frames, started.elapsed().as_secs_f64()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A source whose frames never reach the counted pad (a closed valve) must fail with
    /// Stalled after the stall timeout, and leave the pipeline in NULL.
    #[test]
    fn no_frames_for_the_stall_timeout_is_an_error() {
        gst::init().unwrap();
        let pipeline = gst::parse::launch("videotestsrc ! valve drop=true ! fakesink name=sink")
            .unwrap()
            .downcast::<gst::Pipeline>()
            .unwrap();
        let sink = pipeline.by_name("sink").unwrap();
        let counter = FrameCounter::attach(&sink.static_pad("sink").unwrap());
        let limits = RunLimits {
            stall_timeout: Duration::from_millis(300),
            ..RunLimits::default()
        };
        let started = Instant::now();
        let result = run(
            &pipeline,
            &counter,
            Total::Frames(10),
            &mut |_| {},
            &AtomicBool::new(false),
            &limits,
        );
        assert!(
            matches!(result, Err(PipelineError::Stalled { frames_done: 0, .. })),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(pipeline.current_state(), gst::State::Null);
    }

    #[test]
    fn an_element_error_names_the_element() {
        gst::init().unwrap();
        let pipeline = gst::parse::launch(
            "filesrc name=reader location=/nonexistent/x.mp4 ! fakesink name=sink",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let sink = pipeline.by_name("sink").unwrap();
        let counter = FrameCounter::attach(&sink.static_pad("sink").unwrap());
        let result = run(
            &pipeline,
            &counter,
            Total::Frames(1),
            &mut |_| {},
            &AtomicBool::new(false),
            &RunLimits::default(),
        );
        match result {
            Err(PipelineError::Stream {
                source_element,
                message,
                ..
            }) => {
                assert!(source_element.contains("reader"), "{source_element}");
                assert!(!message.is_empty());
            }
            other => panic!("expected Stream, got {other:?}"),
        }
        assert_eq!(pipeline.current_state(), gst::State::Null);
    }
}
