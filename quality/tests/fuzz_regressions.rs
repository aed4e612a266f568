//! Replays every input the fuzzers ever found (tests/fuzz_regressions/*.bin): each must now probe
//! to a result or an error without panicking, within the time bound.

use std::time::{Duration, Instant};

#[test]
fn every_saved_fuzz_input_returns() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        if e.path().extension().is_some_and(|x| x == "bin") {
            let data = std::fs::read(e.path()).unwrap();
            let t = Instant::now();
            let _ = aiprod_quality::probe::probe_bytes(&data, "regression.mp4");
            assert!(
                t.elapsed() < Duration::from_secs(2),
                "{}",
                e.path().display()
            );
            n += 1;
        }
    }
    eprintln!("{n} fuzz regression inputs replayed");
}
