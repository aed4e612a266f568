//! QualitySpec: what a delivered file must meet for a (profile, tier), as data in
//! `profiles/quality/<profile>.toml` ([base] + [tier.NAME] overrides), and the validator that
//! measures a file (native probe + QC metrics) and reports every check with its measured value,
//! threshold and verdict.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::probe::FormatError;
use crate::qc::{self, QcConfig, QcError};
use crate::{probe_json, ProbeError, ProbeOptions};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualitySpec {
    pub container: String,
    pub video_codec: String,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub pixel_format: String,
    pub video_bitrate_min_bps: u64,
    pub video_bitrate_max_bps: u64,
    pub duration_tolerance_s: f64,
    pub audio_required: bool,
    pub audio_codec: Option<String>,
    pub audio_sample_rate_hz: Option<u32>,
    pub audio_channels: Option<u32>,
    pub loudness_target_lufs: Option<f64>,
    #[serde(default = "default_loudness_tolerance")]
    pub loudness_tolerance_lu: f64,
    pub true_peak_max_dbtp: Option<f64>,
    pub max_black_s: f64,
    pub max_frozen_s: f64,
    pub max_silence_s: Option<f64>,
    /// Minimum SSIM against the reference (the pre-upscale source scaled to the output), checked
    /// when a reference is given.
    pub min_ssim: Option<f64>,
    /// Upper bound on the mean blurdetect value (FFmpeg's "blur mean": the mean edge width in
    /// luma pixels of the sharpest 80 % of the picture); unchecked when absent.
    pub max_blur: Option<f64>,
}

fn default_loudness_tolerance() -> f64 {
    1.0
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("{}: no tier '{tier}' (tiers: {known})", path.display())]
    UnknownTier {
        path: PathBuf,
        tier: String,
        known: String,
    },
}

/// The specs shipped in profiles/quality, compiled in so the daemon validates with no data dir.
const BUILTIN: &[(&str, &str)] = &[
    ("WEB", include_str!("../../profiles/quality/web.toml")),
    ("SOCIAL", include_str!("../../profiles/quality/social.toml")),
    (
        "BROADCAST",
        include_str!("../../profiles/quality/broadcast.toml"),
    ),
    (
        "BROADCAST_UHD",
        include_str!("../../profiles/quality/broadcast_uhd.toml"),
    ),
];

impl QualitySpec {
    /// The compiled-in spec of a profile and tier.
    pub fn builtin(profile: &str, tier: &str) -> Result<QualitySpec, SpecError> {
        let path = PathBuf::from(format!(
            "profiles/quality/{}.toml",
            profile.to_ascii_lowercase()
        ));
        let (_, text) = BUILTIN
            .iter()
            .find(|(p, _)| p.eq_ignore_ascii_case(profile))
            .ok_or_else(|| SpecError::Invalid {
                path: path.clone(),
                reason: format!(
                    "no QualitySpec for profile '{profile}' (known: {})",
                    BUILTIN
                        .iter()
                        .map(|(p, _)| *p)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
        Self::from_toml(text, tier).map_err(|e| match e {
            SpecError::Invalid { reason, .. } => SpecError::Invalid {
                path: path.clone(),
                reason,
            },
            SpecError::UnknownTier { tier, known, .. } => SpecError::UnknownTier {
                path: path.clone(),
                tier,
                known,
            },
            e => e,
        })
    }

    /// `<dir>/<profile>.toml` when `dir` has one, else the compiled-in spec.
    pub fn load_or_builtin(
        dir: Option<&Path>,
        profile: &str,
        tier: &str,
    ) -> Result<QualitySpec, SpecError> {
        match dir {
            Some(d)
                if d.join(format!("{}.toml", profile.to_ascii_lowercase()))
                    .is_file() =>
            {
                Self::load(d, profile, tier)
            }
            _ => Self::builtin(profile, tier),
        }
    }

    /// Loads `<dir>/<profile lowercased>.toml` and applies the tier's overrides.
    pub fn load(dir: &Path, profile: &str, tier: &str) -> Result<QualitySpec, SpecError> {
        let path = dir.join(format!("{}.toml", profile.to_ascii_lowercase()));
        let text = std::fs::read_to_string(&path).map_err(|source| SpecError::Read {
            path: path.clone(),
            source,
        })?;
        Self::from_toml(&text, tier).map_err(|e| match e {
            SpecError::Invalid { reason, .. } => SpecError::Invalid {
                path: path.clone(),
                reason,
            },
            SpecError::UnknownTier { tier, known, .. } => SpecError::UnknownTier {
                path: path.clone(),
                tier,
                known,
            },
            e => e,
        })
    }

    pub fn from_toml(text: &str, tier: &str) -> Result<QualitySpec, SpecError> {
        let invalid = |reason: String| SpecError::Invalid {
            path: PathBuf::new(),
            reason,
        };
        let doc: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| invalid(e.to_string()))?;
        let mut base = doc
            .get("base")
            .and_then(|b| b.as_table())
            .cloned()
            .ok_or_else(|| invalid("no [base] table".into()))?;
        let tiers = doc.get("tier").and_then(|t| t.as_table());
        let over = tiers
            .and_then(|t| t.get(&tier.to_ascii_uppercase()))
            .and_then(|t| t.as_table());
        match over {
            Some(o) => {
                for (k, v) in o {
                    base.insert(k.clone(), v.clone());
                }
            }
            None => {
                let known = tiers
                    .map(|t| t.keys().cloned().collect::<Vec<_>>().join(", "))
                    .unwrap_or_default();
                return Err(SpecError::UnknownTier {
                    path: PathBuf::new(),
                    tier: tier.into(),
                    known,
                });
            }
        }
        toml::Value::Table(base)
            .try_into()
            .map_err(|e: toml::de::Error| invalid(e.to_string()))
    }
}

/// Checks of the file's format (what was encoded), as opposed to its content (black, frozen,
/// silent, loud, bitrate floor, SSIM): synthetic test footage can only be held to these.
pub const FORMAT_CHECKS: &[&str] = &[
    "container",
    "video_present",
    "video_codec",
    "resolution",
    "fps",
    "pixel_format",
    "duration_s",
    "audio_present",
    "audio_codec",
    "audio_sample_rate_hz",
    "audio_channels",
];

pub fn is_format_check(name: &str) -> bool {
    FORMAT_CHECKS.contains(&name)
}

/// One check: what was measured, against what, and whether it passed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Check {
    pub name: String,
    pub measured: String,
    pub threshold: String,
    pub pass: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ValidationReport {
    pub file: String,
    pub passed: bool,
    pub checks: Vec<Check>,
}

impl ValidationReport {
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.pass)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error(transparent)]
    Qc(#[from] QcError),
}

/// What else the validator may check beyond the file itself.
#[derive(Debug, Clone, Default)]
pub struct ValidateOptions {
    /// The duration the job asked for.
    pub expected_duration_s: Option<f64>,
    /// Reference for the SSIM check (same size and frame count as the output).
    pub reference: Option<PathBuf>,
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

fn rate(v: &Value) -> Option<f64> {
    let (n, d) = v.as_str()?.split_once('/')?;
    let (n, d): (f64, f64) = (n.parse().ok()?, d.parse().ok()?);
    (d != 0.0).then(|| n / d)
}

/// Pure part: the checks from a probe result and a QC report.
pub fn checks(
    spec: &QualitySpec,
    probe: &Value,
    qc: &qc::QcReport,
    fidelity: Option<&qc::Fidelity>,
    opts: &ValidateOptions,
) -> Vec<Check> {
    let mut out = Vec::new();
    let mut check = |name: &str, measured: String, threshold: String, pass: bool| {
        out.push(Check {
            name: name.into(),
            measured,
            threshold,
            pass,
        });
    };
    let streams = probe["streams"].as_array().cloned().unwrap_or_default();
    let video = streams.iter().find(|s| s["codec_type"] == "video");
    let audio = streams.iter().find(|s| s["codec_type"] == "audio");
    let format = &probe["format"];
    let s = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string())
    };
    let fmt_name = s(&format["format_name"]);
    check(
        "container",
        fmt_name.clone(),
        spec.container.clone(),
        fmt_name == spec.container,
    );
    match video {
        Some(v) => {
            let codec = s(&v["codec_name"]);
            check(
                "video_codec",
                codec.clone(),
                spec.video_codec.clone(),
                codec == spec.video_codec,
            );
            let (w, h) = (
                v["width"].as_u64().unwrap_or(0),
                v["height"].as_u64().unwrap_or(0),
            );
            check(
                "resolution",
                format!("{w}x{h}"),
                format!("{}x{}", spec.width, spec.height),
                (w, h) == (u64::from(spec.width), u64::from(spec.height)),
            );
            let fps = rate(&v["avg_frame_rate"])
                .or_else(|| rate(&v["r_frame_rate"]))
                .unwrap_or(0.0);
            check(
                "fps",
                format!("{fps:.3}"),
                format!("{:.3}", spec.fps),
                (fps - spec.fps).abs() < 0.01,
            );
            let pix = s(&v["pix_fmt"]);
            check(
                "pixel_format",
                pix.clone(),
                spec.pixel_format.clone(),
                pix == spec.pixel_format,
            );
            let br = num(&v["bit_rate"])
                .or_else(|| num(&format["bit_rate"]))
                .unwrap_or(0.0);
            check(
                "video_bitrate_bps",
                format!("{br:.0}"),
                format!(
                    "{}..{}",
                    spec.video_bitrate_min_bps, spec.video_bitrate_max_bps
                ),
                br >= spec.video_bitrate_min_bps as f64 && br <= spec.video_bitrate_max_bps as f64,
            );
        }
        None => check(
            "video_present",
            "no video stream".into(),
            "a video stream".into(),
            false,
        ),
    }
    let duration = num(&format["duration"]).unwrap_or(0.0);
    if let Some(want) = opts.expected_duration_s {
        check(
            "duration_s",
            format!("{duration:.3}"),
            format!("{want:.3} ± {:.3}", spec.duration_tolerance_s),
            (duration - want).abs() <= spec.duration_tolerance_s,
        );
    }
    match audio {
        Some(a) => {
            if let Some(c) = &spec.audio_codec {
                let codec = s(&a["codec_name"]);
                check("audio_codec", codec.clone(), c.clone(), &codec == c);
            }
            if let Some(r) = spec.audio_sample_rate_hz {
                let m = num(&a["sample_rate"]).unwrap_or(0.0) as u32;
                check("audio_sample_rate_hz", m.to_string(), r.to_string(), m == r);
            }
            if let Some(ch) = spec.audio_channels {
                let m = a["channels"].as_u64().unwrap_or(0) as u32;
                check("audio_channels", m.to_string(), ch.to_string(), m == ch);
            }
            if let Some(target) = spec.loudness_target_lufs {
                let (m, pass) = match &qc.loudness {
                    Some(l) => (
                        format!("{:.1}", l.integrated_lufs),
                        (l.integrated_lufs - target).abs() <= spec.loudness_tolerance_lu,
                    ),
                    None => ("not measured".into(), false),
                };
                check(
                    "loudness_integrated_lufs",
                    m,
                    format!("{target:.1} ± {:.1}", spec.loudness_tolerance_lu),
                    pass,
                );
            }
            if let Some(max) = spec.true_peak_max_dbtp {
                let (m, pass) = match &qc.loudness {
                    Some(l) => (format!("{:.1}", l.true_peak_dbtp), l.true_peak_dbtp <= max),
                    None => ("not measured".into(), false),
                };
                check("true_peak_dbtp", m, format!("<= {max:.1}"), pass);
            }
        }
        None => check(
            "audio_present",
            "no audio stream".into(),
            if spec.audio_required {
                "an audio stream"
            } else {
                "optional"
            }
            .into(),
            !spec.audio_required,
        ),
    }
    let end = qc.last_pts_s.max(duration);
    let longest = |segs: &[qc::Segment]| {
        segs.iter()
            .map(|g| g.duration_s(end))
            .fold(0.0f64, f64::max)
    };
    let black = longest(&qc.black);
    check(
        "longest_black_s",
        format!("{black:.2}"),
        format!("<= {:.2}", spec.max_black_s),
        black <= spec.max_black_s,
    );
    let frozen = longest(&qc.frozen);
    check(
        "longest_frozen_s",
        format!("{frozen:.2}"),
        format!("<= {:.2}", spec.max_frozen_s),
        frozen <= spec.max_frozen_s,
    );
    if let (Some(max), Some(_)) = (spec.max_silence_s, audio) {
        let silent = longest(&qc.silence);
        check(
            "longest_silence_s",
            format!("{silent:.2}"),
            format!("<= {max:.2}"),
            silent <= max,
        );
    }
    if let (Some(min), Some(f)) = (spec.min_ssim, fidelity) {
        check(
            "ssim",
            format!("{:.4}", f.ssim_all),
            format!(">= {min:.4}"),
            f.ssim_all >= min,
        );
    }
    if let Some(max) = spec.max_blur {
        let (m, pass) = match &qc.blur {
            Some(b) if b.mean.is_finite() => (format!("{:.3}", b.mean), b.mean <= max),
            // No edges anywhere (flat picture): nothing blurred to measure.
            Some(b) if b.frames > 0 => ("no edges".into(), true),
            _ => ("not measured".into(), false),
        };
        check("blur_mean", m, format!("<= {max:.3}"), pass);
    }
    out
}

/// Validates `file` against `spec`: probes natively, decodes once for QC (detector windows
/// shortened so segments longer than the spec's limits are found), compares with the reference
/// when given.
pub fn validate_with_spec(
    file: &Path,
    spec: &QualitySpec,
    opts: &ValidateOptions,
) -> Result<ValidationReport, ValidateError> {
    // Probed first: a file that is not media fails with the probe's precise error.
    let probe = probe_json(file, &ProbeOptions::default())?;
    let qc = qc::analyze_file(file, &qc_config(spec))?;
    report(file, spec, &probe, &qc, opts)
}

/// The detector settings that measure what `spec` checks: windows short enough to find any
/// segment longer than its limits, blur only when it is checked. What an in-pipeline QC
/// (`aiprodqc`) must be set to for [`validate_measured`] to give [`validate_with_spec`]'s answer.
pub fn qc_config(spec: &QualitySpec) -> QcConfig {
    QcConfig {
        black_min_duration_s: detector_window(spec.max_black_s),
        freeze_min_duration_s: detector_window(spec.max_frozen_s),
        silence_min_duration_s: detector_window(spec.max_silence_s.unwrap_or(2.0)),
        // The blur measure costs more than every other detector; only when the spec checks it.
        blur: spec.max_blur.map(|_| qc::BlurConfig::default()),
        ..QcConfig::default()
    }
}

/// Validates `file` against `spec` with QC measured already (by `aiprodqc` on the frames the
/// encoder took, so nothing is decoded again): the native probe of `file` gives the format
/// facts; compares with the reference when given.
pub fn validate_measured(
    file: &Path,
    spec: &QualitySpec,
    qc: &qc::QcReport,
    opts: &ValidateOptions,
) -> Result<ValidationReport, ValidateError> {
    let probe = probe_json(file, &ProbeOptions::default())?;
    report(file, spec, &probe, qc, opts)
}

fn report(
    file: &Path,
    spec: &QualitySpec,
    probe: &Value,
    qc: &qc::QcReport,
    opts: &ValidateOptions,
) -> Result<ValidationReport, ValidateError> {
    let fidelity = match (&opts.reference, spec.min_ssim) {
        (Some(r), Some(_)) => Some(qc::compare_files(file, r)?),
        _ => None,
    };
    let checks = checks(spec, probe, qc, fidelity.as_ref(), opts);
    Ok(ValidationReport {
        file: file.display().to_string(),
        passed: checks.iter().all(|c| c.pass),
        checks,
    })
}

/// A detector's minimum segment: short enough to see any segment over the spec's limit (one
/// frame at 25 fps at least), at most FFmpeg's default 2 s.
fn detector_window(limit_s: f64) -> f64 {
    if limit_s.is_nan() {
        2.0
    } else {
        limit_s.clamp(0.04, 2.0)
    }
}

/// `Validate(file, tier, profile)` with the specs in `spec_dir` (profiles/quality).
pub fn validate(
    file: &Path,
    spec_dir: &Path,
    tier: &str,
    profile: &str,
    opts: &ValidateOptions,
) -> Result<ValidationReport, ValidateError> {
    let spec = QualitySpec::load(spec_dir, profile, tier)?;
    validate_with_spec(file, &spec, opts)
}

impl From<FormatError> for ValidateError {
    fn from(e: FormatError) -> Self {
        ValidateError::Probe(ProbeError::Malformed {
            path: PathBuf::new(),
            source: e,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/quality")
    }

    #[test]
    fn every_profile_and_tier_loads() {
        for p in ["web", "social", "broadcast", "broadcast_uhd"] {
            for t in ["premium", "BALANCED", "Economy"] {
                let s = QualitySpec::load(&spec_dir(), p, t).unwrap_or_else(|e| panic!("{e}"));
                assert!(s.width > 0 && s.video_bitrate_min_bps < s.video_bitrate_max_bps);
            }
        }
        let b = QualitySpec::load(&spec_dir(), "BROADCAST", "PREMIUM").unwrap();
        assert_eq!(
            (b.loudness_target_lufs, b.min_ssim, b.pixel_format.as_str()),
            (Some(-23.0), Some(0.97), "yuv422p10le")
        );
    }

    #[test]
    fn builtin_specs_equal_the_files() {
        for p in ["WEB", "social", "Broadcast", "BROADCAST_UHD"] {
            assert_eq!(
                QualitySpec::builtin(p, "ECONOMY").unwrap(),
                QualitySpec::load(&spec_dir(), p, "ECONOMY").unwrap()
            );
        }
        assert!(QualitySpec::builtin("CINEMA", "PREMIUM")
            .unwrap_err()
            .to_string()
            .contains("known: WEB"));
    }

    #[test]
    fn unknown_tier_names_the_known_ones() {
        let e = QualitySpec::load(&spec_dir(), "web", "GOLD").unwrap_err();
        assert!(
            e.to_string()
                .ends_with("no tier 'GOLD' (tiers: BALANCED, ECONOMY, PREMIUM)"),
            "{e}"
        );
    }

    #[test]
    fn checks_report_measured_and_threshold() {
        let spec = QualitySpec::load(&spec_dir(), "web", "balanced").unwrap();
        let probe = serde_json::json!({
            "streams": [
                {"codec_type": "video", "codec_name": "h264", "width": 1920, "height": 1080,
                 "avg_frame_rate": "30/1", "pix_fmt": "yuv420p", "bit_rate": "8000000"},
                {"codec_type": "audio", "codec_name": "aac", "sample_rate": "48000", "channels": 2}
            ],
            "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "10.000000"}
        });
        let qc = qc::QcReport {
            last_pts_s: 9.96,
            black: vec![qc::Segment {
                start_s: 0.0,
                end_s: Some(3.0),
            }],
            loudness: Some(qc::Loudness {
                integrated_lufs: -14.4,
                true_peak_dbtp: -1.5,
            }),
            ..Default::default()
        };
        let opts = ValidateOptions {
            expected_duration_s: Some(10.0),
            reference: None,
        };
        let c = checks(&spec, &probe, &qc, None, &opts);
        let failed: Vec<&str> = c
            .iter()
            .filter(|c| !c.pass)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(failed, vec!["longest_black_s"]);
        assert!(
            !c.iter().any(|c| c.name == "blur_mean"),
            "no max_blur, no check"
        );
        let blurry = qc::QcReport {
            blur: Some(qc::Blur {
                frames: 250,
                mean: 7.25,
                max: 9.0,
                frames_without_edges: 0,
            }),
            ..qc.clone()
        };
        let strict = QualitySpec {
            max_blur: Some(6.0),
            ..spec.clone()
        };
        let c = checks(&strict, &probe, &blurry, None, &opts);
        let blur = c.iter().find(|c| c.name == "blur_mean").unwrap();
        assert_eq!(
            (blur.measured.as_str(), blur.threshold.as_str(), blur.pass),
            ("7.250", "<= 6.000", false)
        );
        let black = c.iter().find(|c| c.name == "longest_black_s").unwrap();
        assert_eq!(
            (black.measured.as_str(), black.threshold.as_str()),
            ("3.00", "<= 2.00")
        );
    }
}
