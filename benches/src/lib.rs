//! Benchmarks for aiprod (see benches/README.md).

/// Nearest-rank percentile `p` (0–1] of `sorted` (ascending); 0 for an empty slice.
pub fn nearest_rank(sorted: &[u32], p: f64) -> u32 {
    let n = sorted.len();
    if n == 0 {
        return 0;
    }
    let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
    sorted[rank - 1]
}
