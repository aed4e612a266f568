//! Probes every file named on the command line (or every file in a directory) in-process with
//! the native probe, ROUNDS times, and prints files/s: the in-process side of
//! benches/quality_probe.sh.
//!
//! Usage: probe_files [--rounds N] [--print] PATH...

use std::path::PathBuf;
use std::time::Instant;

use aiprod_quality::{probe_json, ProbeOptions};

fn main() {
    let mut rounds = 1usize;
    let mut print = false;
    let mut files: Vec<PathBuf> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => rounds = args.next().and_then(|n| n.parse().ok()).unwrap_or(1),
            "--print" => print = true,
            p => {
                let p = PathBuf::from(p);
                if p.is_dir() {
                    let mut v: Vec<PathBuf> = std::fs::read_dir(&p)
                        .map(|d| {
                            d.flatten()
                                .map(|e| e.path())
                                .filter(|p| p.is_file())
                                .collect()
                        })
                        .unwrap_or_default();
                    v.sort();
                    files.extend(v);
                } else {
                    files.push(p);
                }
            }
        }
    }
    let start = Instant::now();
    let (mut ok, mut failed) = (0usize, 0usize);
    for _ in 0..rounds {
        for f in &files {
            match probe_json(f, &ProbeOptions::default()) {
                Ok(v) => {
                    ok += 1;
                    if print {
                        print!("{}", aiprod_quality::probe::to_ffprobe_string(&v));
                    }
                }
                Err(e) => {
                    failed += 1;
                    if print {
                        eprintln!("{e}");
                    }
                }
            }
        }
    }
    let s = start.elapsed().as_secs_f64();
    eprintln!(
        "in-process probe: {} probes ({ok} ok, {failed} refused) in {s:.3} s = {:.0} files/s",
        ok + failed,
        (ok + failed) as f64 / s
    );
}
