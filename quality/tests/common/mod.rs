//! Helpers shared by the QC tests: ffmpeg makes the clips and is the oracle.

#![allow(dead_code)] // each test file uses a different subset

use std::path::Path;
use std::process::Command;

pub fn ffmpeg_available() -> bool {
    let ok = Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: ffmpeg not installed; it makes the clips and is the oracle");
    }
    ok
}

pub fn ffmpeg(args: &str, out: &Path) {
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args.split(' '))
        .arg(out)
        .status()
        .unwrap();
    assert!(st.success(), "ffmpeg {args}");
}

/// Runs ffmpeg with filters on `inputs` and returns its log (stderr).
pub fn ffmpeg_log(inputs: &[&Path], filters: &[&str]) -> String {
    let mut c = Command::new("ffmpeg");
    c.args(["-nostdin", "-hide_banner", "-nostats"]);
    for i in inputs {
        c.arg("-i").arg(i);
    }
    c.args(filters).args(["-f", "null", "-"]);
    let out = c.output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// The number after `key` in FFmpeg's log.
pub fn value(log: &str, key: &str) -> f64 {
    let i = log
        .find(key)
        .unwrap_or_else(|| panic!("'{key}' not in ffmpeg log:\n{log}"));
    let rest = log[i + key.len()..].trim_start();
    let num: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
        .collect();
    num.parse().unwrap()
}

/// Every number after `key` in FFmpeg's log, in order.
pub fn values(log: &str, key: &str) -> Vec<f64> {
    log.match_indices(key)
        .map(|(i, _)| value(&log[i..], key))
        .collect()
}
