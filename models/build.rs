//! Generates the ONNX protobuf types (a vendored subset of onnx.proto3) the exporter writes.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    prost_build::Config::new().compile_protos(&["proto/onnx.proto"], &["proto"])?;
    Ok(())
}
