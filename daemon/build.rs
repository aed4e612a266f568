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
    Ok(())
}
