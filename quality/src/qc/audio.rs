//! Audio QC metrics with FFmpeg's definitions: silent segments (af_silencedetect: every channel's
//! |sample| below the noise floor for at least the minimum duration) and EBU R128 integrated
//! loudness and true peak (af_ebur128's quantities, computed by the `ebur128` crate, a port of
//! libebur128). Pure: interleaved f32 samples in.

use super::video::Segment;

/// af_silencedetect (default mode: all channels together).
#[derive(Debug, Clone)]
pub struct SilenceDetector {
    noise: f32,
    min_duration_s: f64,
    rate: u32,
    channels: usize,
    /// Sample frames seen.
    position: u64,
    null_samples: u64,
    start: Option<u64>,
    pub segments: Vec<Segment>,
}

impl SilenceDetector {
    pub fn new(noise_db: f64, min_duration_s: f64, rate: u32, channels: usize) -> Self {
        SilenceDetector {
            noise: 10f64.powf(noise_db / 20.0) as f32,
            min_duration_s,
            rate,
            channels: channels.max(1),
            position: 0,
            null_samples: 0,
            start: None,
            segments: Vec::new(),
        }
    }

    pub fn push(&mut self, interleaved: &[f32]) {
        let notify = (self.min_duration_s * f64::from(self.rate) * self.channels as f64) as u64;
        for (i, s) in interleaved.iter().enumerate() {
            let frame = self.position + (i / self.channels) as u64;
            if s.abs() < self.noise {
                if self.start.is_none() {
                    self.null_samples += 1;
                    if self.null_samples >= notify {
                        let first = (frame + 1).saturating_sub(notify / self.channels as u64);
                        self.start = Some(first);
                    }
                }
            } else {
                if let Some(start) = self.start.take() {
                    self.segments.push(Segment {
                        start_s: start as f64 / f64::from(self.rate),
                        end_s: Some(frame as f64 / f64::from(self.rate)),
                    });
                }
                self.null_samples = 0;
            }
        }
        self.position += (interleaved.len() / self.channels) as u64;
    }

    /// An open silence ends at the end of the stream.
    pub fn finish(&mut self) -> Vec<Segment> {
        if let Some(start) = self.start.take() {
            self.segments.push(Segment {
                start_s: start as f64 / f64::from(self.rate),
                end_s: Some(self.position as f64 / f64::from(self.rate)),
            });
        }
        self.segments.clone()
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Loudness {
    /// Integrated loudness, LUFS (-70 when everything is gated out, like FFmpeg).
    pub integrated_lufs: f64,
    /// True peak over all channels, dBTP.
    pub true_peak_dbtp: f64,
}

pub struct LoudnessMeter {
    meter: Option<ebur128::EbuR128>,
}

impl LoudnessMeter {
    pub fn new(channels: u32, rate: u32) -> Self {
        LoudnessMeter {
            meter: ebur128::EbuR128::new(
                channels,
                rate,
                ebur128::Mode::I | ebur128::Mode::TRUE_PEAK,
            )
            .ok(),
        }
    }
    pub fn push(&mut self, interleaved: &[f32]) {
        if let Some(m) = &mut self.meter {
            let _ = m.add_frames_f32(interleaved);
        }
    }
    pub fn result(&self) -> Option<Loudness> {
        let m = self.meter.as_ref()?;
        let i = m.loudness_global().ok()?;
        let mut peak = 0.0f64;
        for c in 0..m.channels() {
            peak = peak.max(m.true_peak(c).ok()?);
        }
        Some(Loudness {
            integrated_lufs: if i.is_finite() { i } else { -70.0 },
            true_peak_dbtp: 20.0 * peak.max(1e-10).log10(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_in_the_middle() {
        let rate = 1000;
        let mut s = SilenceDetector::new(-60.0, 0.5, rate, 1);
        let mut x = vec![0.5f32; 1000];
        x.extend(vec![0.0; 1000]);
        x.extend(vec![0.5; 1000]);
        s.push(&x);
        assert_eq!(
            s.finish(),
            vec![Segment {
                start_s: 1.0,
                end_s: Some(2.0)
            }]
        );
    }

    #[test]
    fn full_scale_sine_loudness() {
        // A 1 kHz sine at -20 dBFS reads -20 LUFS on one channel... per BS.1770, -23.0 + 3.01 offsets
        // cancel for a stereo pair; for mono, 1 kHz at -20 dBFS peak is -23.01 LUFS.
        let rate = 48000;
        let amp = 10f32.powf(-20.0 / 20.0);
        let x: Vec<f32> = (0..rate * 5)
            .map(|i| amp * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / rate as f32).sin())
            .collect();
        let mut m = LoudnessMeter::new(1, rate);
        m.push(&x);
        let r = m.result().unwrap();
        assert!((r.integrated_lufs - -23.0).abs() < 0.1, "{r:?}");
        assert!((r.true_peak_dbtp - -20.0).abs() < 0.1, "{r:?}");
    }
}
