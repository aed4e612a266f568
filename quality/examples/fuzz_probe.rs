//! Stable-toolchain fuzz loop for the native probe (see quality/fuzz/README.md): mutates seed
//! files, runs `probe_bytes` on each mutant, and saves any input that panics or takes longer than
//! the time bound as a regression file.
//!
//! Usage: fuzz_probe [EXECUTIONS] [SEED_DIR]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aiprod_quality::probe::probe_bytes;

const SLOW: Duration = Duration::from_millis(500);
const MAX_SEED_BYTES: u64 = 2 << 20;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn builtin_seeds() -> Vec<Vec<u8>> {
    let bx = |t: &[u8], b: &[u8]| {
        [
            ((b.len() + 8) as u32).to_be_bytes().to_vec(),
            t.to_vec(),
            b.to_vec(),
        ]
        .concat()
    };
    let mp4 = [
        bx(b"ftyp", b"isom\0\0\x02\0isom"),
        bx(b"moov", &bx(b"mvhd", &[0u8; 100])),
        bx(b"mdat", &[0; 64]),
    ]
    .concat();
    let y4m = [
        b"YUV4MPEG2 W4 H4 F25:1 Ip A1:1 C420jpeg\nFRAME\n".to_vec(),
        vec![128u8; 24],
    ]
    .concat();
    let mkv = vec![
        0x1a, 0x45, 0xdf, 0xa3, 0x88, 0x42, 0x82, 0x85, b'w', b'e', b'b', b'm', 0, 0x18, 0x53,
        0x80, 0x67, 0x80,
    ];
    vec![mp4, y4m, mkv]
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        if d.is_empty() {
            d.push(0);
        }
        let i = rng.below(d.len());
        match rng.below(7) {
            0 => d[i] ^= 1 << rng.below(8),
            1 => d[i] = [0, 0xff, 0x7f, 0x80, 1][rng.below(5)],
            2 if d.len() >= 4 => {
                let i = rng.below(d.len() - 3);
                let v: u32 = [0, 1, 7, 8, 0xffff_ffff, 0x8000_0000, 0x7fff_ffff, 16][rng.below(8)];
                d[i..i + 4].copy_from_slice(&v.to_be_bytes());
            }
            3 => d.truncate(i),
            4 => {
                let n = rng.below(64).min(d.len() - i);
                let chunk = d[i..i + n].to_vec();
                let at = rng.below(d.len());
                d.splice(at..at, chunk);
            }
            5 => {
                let n = rng.below(32);
                let at = rng.below(d.len());
                let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                d.splice(at..at, junk);
            }
            _ => {
                let n = rng.below(64).min(d.len() - i);
                d.drain(i..i + n);
            }
        }
    }
    d
}

fn main() {
    let mut args = std::env::args().skip(1);
    let runs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let mut seeds = builtin_seeds();
    if let Some(dir) = args.next() {
        for e in std::fs::read_dir(&dir).expect("seed dir").flatten() {
            if e.metadata()
                .is_ok_and(|m| m.is_file() && m.len() <= MAX_SEED_BYTES)
            {
                if let Ok(d) = std::fs::read(e.path()) {
                    if probe_bytes(&d, "seed").is_ok() {
                        seeds.push(d);
                    }
                }
            }
        }
    }
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut ok, mut err, mut found) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    for n in 0..runs {
        let seed = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, seed);
        let t = Instant::now();
        let r = std::panic::catch_unwind(|| probe_bytes(&input, "fuzz.mp4").is_ok());
        let slow = t.elapsed() > SLOW;
        match r {
            Ok(true) => ok += 1,
            Ok(false) => err += 1,
            Err(_) => {}
        }
        if r.is_err() || slow {
            found += 1;
            let name = format!("{}-{n}.bin", if slow { "slow" } else { "crash" });
            let _ = std::fs::create_dir_all(&out);
            let _ = std::fs::write(out.join(&name), &input);
            eprintln!("{name}: {} bytes", input.len());
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{runs} executions in {secs:.1} s ({:.0}/s) over {} seeds: {ok} parsed, {err} rejected, {found} crashes or slow inputs",
        runs as f64 / secs,
        seeds.len()
    );
    if found > 0 {
        std::process::exit(1);
    }
}
