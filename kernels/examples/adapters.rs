//! Lists the wgpu adapters this machine has, best first (what `Context::shared` would pick from).
fn main() {
    let found = aiprod_kernels::adapters();
    if found.is_empty() {
        println!("no wgpu adapter");
    }
    for a in found {
        println!(
            "{} | {} | {} | {} | shader-f16 {} | max buffer {} MiB",
            a.name,
            a.kind.as_str(),
            a.backend,
            a.driver,
            a.shader_f16,
            a.max_buffer_bytes >> 20
        );
    }
}
