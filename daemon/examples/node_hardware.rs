//! Prints the adapters and engines `aiprodd` would report in GetNodeStatus on this machine, and
//! the GPU slots it would default to: a quick check of a new node (drivers, ONNX Runtime GPU
//! providers, NVML) without starting the daemon.
//!
//! `cargo run -p aiprod-daemon --example node_hardware` (set ORT_DYLIB_PATH for the ort-* engines).

fn main() {
    let hw = aiprod_daemon::node::Hardware::detect();
    for a in &hw.adapters {
        println!(
            "adapter: {} ({}, {} bytes, backend {:?}, driver {:?}) engines: [{}]{}",
            a.name,
            a.kind,
            a.memory_bytes,
            a.backend,
            a.driver,
            a.engines.join(", "),
            if a.is_usable_gpu() { " GPU" } else { "" }
        );
    }
    println!("default max_gpu_jobs: {}", hw.usable_gpus());
}
