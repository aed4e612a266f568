//! `cargo +nightly fuzz run probe`: the native probe on arbitrary bytes must return, not panic,
//! within bounded time and memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = aiprod_quality::probe::probe_bytes(data, "fuzz.mp4");
});
