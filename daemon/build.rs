//! Generates the gRPC code for proto/aiprod/v1/control.proto, and proto3-JSON (serde) impls for
//! its messages so aiprodctl --json prints the canonical JSON mapping (field names as in the proto).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("aiprod_descriptor.bin");
    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor_path)
        .compile_protos(&["../proto/aiprod/v1/control.proto"], &["../proto"])?;
    let descriptor_set = std::fs::read(&descriptor_path)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_set)?
        .preserve_proto_field_names()
        .emit_fields()
        .build(&[".aiprod.v1"])?;
    println!("cargo:rerun-if-changed=../proto/aiprod/v1/control.proto");
    dashboard_assets(&out_dir)?;
    Ok(())
}

/// Points `DASHBOARD_ASSETS_DIR` (read by rust-embed in src/dashboard/assets.rs) at the built
/// dashboard (`dashboard/dist`, made by scripts/build-dashboard.sh). Without it — a checkout
/// built with no Node.js — the daemon still builds and serves a placeholder page that says how
/// to build the assets; the API and /ws/metrics work either way.
fn dashboard_assets(out_dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let dist = manifest_dir.join("../dashboard/dist");
    // A directory is scanned for changes; a missing one re-runs this script until it exists.
    println!("cargo:rerun-if-changed={}", dist.display());
    let dir = if dist.join("index.html").is_file() {
        dist
    } else {
        println!(
            "cargo:warning=dashboard/dist is missing: aiprodd will serve a placeholder page; run scripts/build-dashboard.sh"
        );
        let dir = out_dir.join("dashboard-placeholder");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("index.html"), DASHBOARD_PLACEHOLDER)?;
        dir
    };
    println!("cargo:rustc-env=DASHBOARD_ASSETS_DIR={}", dir.display());
    Ok(())
}

const DASHBOARD_PLACEHOLDER: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="aiprod-dashboard" content="placeholder"><title>aiprod dashboard (not built)</title></head>
<body><h1>aiprod dashboard</h1>
<p>This aiprodd was built without the dashboard's web assets. Run
<code>scripts/build-dashboard.sh</code> (needs Node.js and npm) and rebuild aiprodd.</p>
<p>The JSON API under <code>/api/</code>, <code>/ws/metrics</code> and <code>/metrics</code> work without it.</p>
</body></html>
"#;
