//! The local backend: deterministic footage for a prompt from GStreamer sources (moving test
//! patterns, the prompt as a caption, a tone), so a whole job runs offline with no account.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use super::{Backend, BackendError, Generated, GenerationRequest};
use crate::pipeline::{self, PipelineError, RenderSpec};

/// Renders with [`pipeline::render_local`].
pub struct LocalBackend;

impl Backend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    fn generate(
        &self,
        req: &GenerationRequest,
        out: &Path,
        on_progress: &mut dyn FnMut(&pipeline::Progress),
        cancel: &AtomicBool,
    ) -> Result<Generated, BackendError> {
        let spec = RenderSpec {
            prompt: req.prompt.clone(),
            seed: req.seed,
            width: req.width,
            height: req.height,
            fps_num: req.fps_num,
            fps_den: req.fps_den,
            duration_s: req.duration_s,
        };
        let stats =
            pipeline::render_local(&spec, out, on_progress, cancel).map_err(|e| match e {
                PipelineError::Cancelled => BackendError::Cancelled,
                source => BackendError::Pipeline {
                    backend: "local",
                    source,
                },
            })?;
        Ok(Generated {
            path: out.to_path_buf(),
            compute_s: stats.wall_s,
            provider_charge_usd_micros: 0,
            provider_task_id: String::new(),
            frames: stats.frames,
            frames_per_s: stats.frames_per_s,
            ..Default::default()
        })
    }
}
