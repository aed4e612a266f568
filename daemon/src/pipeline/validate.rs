//! Spec validation, done before anything is built: every rejection names the field and the limit.

use super::{AudioFormat, Container, OutputSpec, PipelineError, RenderSpec};

/// Largest width or height: H.264 level 6.2 tops out at 8192 wide, and it bounds frame memory
/// (an 8192×8192 4:2:2 10-bit frame is 256 MiB).
pub const MAX_DIMENSION: u32 = 8192;
/// Highest frame rate accepted (frames per second).
pub const MAX_FPS: f64 = 240.0;
/// Longest clip one stage renders or processes.
pub const MAX_DURATION_S: f64 = 4.0 * 3600.0;
/// Longest prompt accepted (characters); the caption shows its first lines.
pub const MAX_PROMPT_CHARS: usize = 4000;
/// x264enc's `bitrate` property is in kbit/s with a maximum of 2 048 000.
pub const MAX_VIDEO_BITRATE_BPS: u64 = 2_048_000_000;
/// AAC bitrates accepted (bit/s); voaacenc, one of the fallback encoders, stops at 320 kbit/s.
pub const AAC_BITRATE_BPS: std::ops::RangeInclusive<u32> = 16_000..=320_000;
/// Audio sample rates accepted (Hz): AAC tops out at 96 kHz.
pub const AAC_RATE_HZ: std::ops::RangeInclusive<u32> = 8_000..=96_000;
pub const PCM_RATE_HZ: std::ops::RangeInclusive<u32> = 8_000..=192_000;
/// qtmux writes raw PCM with at most 2 channels; AAC here up to 7.1.
pub const PCM_MAX_CHANNELS: u32 = 2;
pub const AAC_MAX_CHANNELS: u32 = 8;

fn invalid(field: &'static str, reason: impl Into<String>) -> PipelineError {
    PipelineError::InvalidSpec {
        field,
        reason: reason.into(),
    }
}

fn check_dimension(field: &'static str, value: u32) -> Result<(), PipelineError> {
    if value == 0 {
        return Err(invalid(field, "must be positive"));
    }
    if !value.is_multiple_of(2) {
        return Err(invalid(
            field,
            format!("{value} is odd; 4:2:0 and 4:2:2 chroma need even sizes"),
        ));
    }
    if value > MAX_DIMENSION {
        return Err(invalid(field, format!("{value} exceeds {MAX_DIMENSION}")));
    }
    Ok(())
}

fn check_fps(fps_num: u32, fps_den: u32) -> Result<f64, PipelineError> {
    if fps_num == 0 {
        return Err(invalid("fps_num", "must be positive"));
    }
    if fps_den == 0 {
        return Err(invalid("fps_den", "must be positive"));
    }
    let fps = f64::from(fps_num) / f64::from(fps_den);
    if fps > MAX_FPS {
        return Err(invalid(
            "fps_num",
            format!("{fps_num}/{fps_den} fps exceeds {MAX_FPS}"),
        ));
    }
    Ok(fps)
}

/// The number of frames a render of `spec` produces: round(duration × fps), at least 1.
pub fn render_frames(spec: &RenderSpec) -> Result<u64, PipelineError> {
    check_dimension("width", spec.width)?;
    check_dimension("height", spec.height)?;
    let fps = check_fps(spec.fps_num, spec.fps_den)?;
    if !spec.duration_s.is_finite() || spec.duration_s <= 0.0 {
        return Err(invalid(
            "duration_s",
            format!("{} is not a positive number of seconds", spec.duration_s),
        ));
    }
    if spec.duration_s > MAX_DURATION_S {
        return Err(invalid(
            "duration_s",
            format!("{} s exceeds {MAX_DURATION_S} s", spec.duration_s),
        ));
    }
    if spec.prompt.trim().is_empty() {
        return Err(invalid("prompt", "is empty"));
    }
    let chars = spec.prompt.chars().count();
    if chars > MAX_PROMPT_CHARS {
        return Err(invalid(
            "prompt",
            format!("{chars} characters exceeds {MAX_PROMPT_CHARS}"),
        ));
    }
    let frames = (spec.duration_s * fps).round();
    if frames < 1.0 {
        return Err(invalid(
            "duration_s",
            format!("{} s is shorter than one frame", spec.duration_s),
        ));
    }
    // Bounded by MAX_DURATION_S × MAX_FPS, far inside u64.
    Ok(frames as u64)
}

pub fn output(spec: &OutputSpec) -> Result<(), PipelineError> {
    check_dimension("width", spec.width)?;
    check_dimension("height", spec.height)?;
    check_fps(spec.fps_num, spec.fps_den)?;
    if spec.video_bitrate_bps < 1000 || spec.video_bitrate_bps > MAX_VIDEO_BITRATE_BPS {
        return Err(invalid(
            "video_bitrate_bps",
            format!(
                "{} is outside 1000..={MAX_VIDEO_BITRATE_BPS}",
                spec.video_bitrate_bps
            ),
        ));
    }
    if spec.audio_channels == 0 {
        return Err(invalid("audio_channels", "must be positive"));
    }
    match spec.audio {
        AudioFormat::Aac { bitrate_bps } => {
            if !AAC_BITRATE_BPS.contains(&bitrate_bps) {
                return Err(invalid(
                    "audio.bitrate_bps",
                    format!("{bitrate_bps} is outside {AAC_BITRATE_BPS:?}"),
                ));
            }
            if !AAC_RATE_HZ.contains(&spec.audio_rate_hz) {
                return Err(invalid(
                    "audio_rate_hz",
                    format!("{} is outside {AAC_RATE_HZ:?} for AAC", spec.audio_rate_hz),
                ));
            }
            if spec.audio_channels > AAC_MAX_CHANNELS {
                return Err(invalid(
                    "audio_channels",
                    format!("{} exceeds {AAC_MAX_CHANNELS} for AAC", spec.audio_channels),
                ));
            }
        }
        AudioFormat::PcmS24le => {
            if spec.container != Container::Mov {
                return Err(invalid(
                    "audio",
                    "PCM audio needs the MOV container (MP4 carries AAC)",
                ));
            }
            if !PCM_RATE_HZ.contains(&spec.audio_rate_hz) {
                return Err(invalid(
                    "audio_rate_hz",
                    format!("{} is outside {PCM_RATE_HZ:?} for PCM", spec.audio_rate_hz),
                ));
            }
            if spec.audio_channels > PCM_MAX_CHANNELS {
                return Err(invalid(
                    "audio_channels",
                    format!(
                        "{} exceeds {PCM_MAX_CHANNELS} for PCM in MOV",
                        spec.audio_channels
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{ScaleMethod, VideoFormat};

    fn render() -> RenderSpec {
        RenderSpec {
            prompt: "a red fox".into(),
            seed: 1,
            width: 320,
            height: 240,
            fps_num: 30000,
            fps_den: 1001,
            duration_s: 2.0,
        }
    }

    fn output_spec() -> OutputSpec {
        OutputSpec {
            width: 1920,
            height: 1080,
            fps_num: 25,
            fps_den: 1,
            container: Container::Mov,
            video: VideoFormat::H264Yuv422p10,
            video_bitrate_bps: 50_000_000,
            audio: AudioFormat::PcmS24le,
            audio_rate_hz: 48_000,
            audio_channels: 2,
            scale: ScaleMethod::Lanczos,
        }
    }

    fn field(r: Result<impl std::fmt::Debug, PipelineError>) -> &'static str {
        match r {
            Err(PipelineError::InvalidSpec { field, .. }) => field,
            other => panic!("expected InvalidSpec, got {other:?}"),
        }
    }

    #[test]
    fn frame_count_rounds_duration_times_fps() {
        assert_eq!(render_frames(&render()).unwrap(), 60); // 2 × 29.97 = 59.94
        let s = RenderSpec {
            fps_num: 25,
            fps_den: 1,
            duration_s: 1.0,
            ..render()
        };
        assert_eq!(render_frames(&s).unwrap(), 25);
    }

    #[test]
    fn rejects_bad_render_specs() {
        assert_eq!(
            field(render_frames(&RenderSpec {
                width: 0,
                ..render()
            })),
            "width"
        );
        assert_eq!(
            field(render_frames(&RenderSpec {
                height: 241,
                ..render()
            })),
            "height"
        );
        assert_eq!(
            field(render_frames(&RenderSpec {
                width: 8194,
                ..render()
            })),
            "width"
        );
        assert_eq!(
            field(render_frames(&RenderSpec {
                fps_num: 0,
                ..render()
            })),
            "fps_num"
        );
        assert_eq!(
            field(render_frames(&RenderSpec {
                fps_den: 0,
                ..render()
            })),
            "fps_den"
        );
        assert_eq!(
            field(render_frames(&RenderSpec {
                fps_num: 1000,
                fps_den: 1,
                ..render()
            })),
            "fps_num"
        );
        assert_eq!(
            field(render_frames(&RenderSpec {
                duration_s: f64::NAN,
                ..render()
            })),
            "duration_s"
        );
        assert_eq!(
            field(render_frames(&RenderSpec {
                duration_s: -1.0,
                ..render()
            })),
            "duration_s"
        );
        assert_eq!(
            field(render_frames(&RenderSpec {
                duration_s: 0.001,
                ..render()
            })),
            "duration_s"
        );
        assert_eq!(
            field(render_frames(&RenderSpec {
                duration_s: 1e9,
                ..render()
            })),
            "duration_s"
        );
        assert_eq!(
            field(render_frames(&RenderSpec {
                prompt: "  ".into(),
                ..render()
            })),
            "prompt"
        );
    }

    #[test]
    fn rejects_bad_output_specs() {
        assert!(output(&output_spec()).is_ok());
        assert_eq!(
            field(output(&OutputSpec {
                width: 1921,
                ..output_spec()
            })),
            "width"
        );
        assert_eq!(
            field(output(&OutputSpec {
                container: Container::Mp4,
                ..output_spec()
            })),
            "audio"
        );
        assert_eq!(
            field(output(&OutputSpec {
                audio_channels: 6,
                ..output_spec()
            })),
            "audio_channels"
        );
        assert_eq!(
            field(output(&OutputSpec {
                video_bitrate_bps: 0,
                ..output_spec()
            })),
            "video_bitrate_bps"
        );
        let aac = OutputSpec {
            audio: AudioFormat::Aac {
                bitrate_bps: 192_000,
            },
            ..output_spec()
        };
        assert!(output(&aac).is_ok());
        assert_eq!(
            field(output(&OutputSpec {
                audio_rate_hz: 192_000,
                ..aac.clone()
            })),
            "audio_rate_hz"
        );
        assert_eq!(
            field(output(&OutputSpec {
                audio: AudioFormat::Aac { bitrate_bps: 1 },
                ..aac
            })),
            "audio.bitrate_bps"
        );
    }
}
