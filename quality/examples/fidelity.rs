//! PSNR and SSIM of MAIN against REFERENCE (FFmpeg's vf_psnr/vf_ssim definitions), with frames/s:
//! the aiprod side of benches/quality_fidelity.sh.
//!
//! Usage: fidelity MAIN REFERENCE

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [main, reference] = args.as_slice() else {
        eprintln!("usage: fidelity MAIN REFERENCE");
        std::process::exit(2);
    };
    let t = Instant::now();
    match aiprod_quality::qc::compare_files(main.as_ref(), reference.as_ref()) {
        Ok(f) => {
            let s = t.elapsed().as_secs_f64();
            println!(
                "PSNR average:{:.6} y:{:.6}  SSIM All:{:.6} Y:{:.6}  frames:{}  {:.3} s = {:.1} frames/s",
                f.psnr_avg_db,
                f.psnr_y_db,
                f.ssim_all,
                f.ssim_y,
                f.frames,
                s,
                f.frames as f64 / s
            );
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
