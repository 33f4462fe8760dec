//! M2D's log-mel front end (`portable_m2d.py` `to_normalized_feature`): nnAudio's `MelSpectrogram(sr=16000,
//! n_fft=400, win_length=400, hop_length=160, n_mels=80, fmin=50, fmax=8000, center=True, power=2)` — an STFT with a
//! periodic Hann window over the signal reflect-padded by 200 samples each side, |X|², times librosa's Slaney mel
//! filters with Slaney (area) normalisation — then `ln(x + ε)` with ε = f32 epsilon, then `(x − mean) / std` with the
//! checkpoint's `norm_stats`.
//!
//! A 10 s segment (160 000 samples; shorter ones are zero-padded, longer ones cut, as the Python project's
//! `_load_segment` does) gives exactly 1001 frames.

use std::sync::Arc;

use realfft::num_complex::Complex64;
use realfft::{RealFftPlanner, RealToComplex};

pub const SAMPLE_RATE: usize = 16_000;
pub const SEGMENT: usize = 160_000;
pub const N_FFT: usize = 400;
pub const HOP: usize = 160;
pub const N_MELS: usize = super::config::N_MELS;
pub const N_BINS: usize = N_FFT / 2 + 1;
pub const F_MIN: f64 = 50.0;
pub const F_MAX: f64 = 8000.0;
/// `torch.finfo().eps` (float32).
pub const LOG_EPS: f64 = f32::EPSILON as f64;

fn hz_to_mel(f: f64) -> f64 {
    // Slaney: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = (6.4f64).ln() / 27.0;
    if f >= min_log_hz { min_log_mel + (f / min_log_hz).ln() / logstep } else { f / f_sp }
}

fn mel_to_hz(m: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = (6.4f64).ln() / 27.0;
    if m >= min_log_mel { min_log_hz * (logstep * (m - min_log_mel)).exp() } else { f_sp * m }
}

/// librosa's `filters.mel(sr=16000, n_fft=400, n_mels=80, fmin=50, fmax=8000, htk=False, norm='slaney')`:
/// `[80, 201]`, row-major (mel bin, FFT bin), computed in f64.
pub fn mel_filters() -> Vec<f64> {
    let fft_freqs: Vec<f64> = (0..N_BINS).map(|i| i as f64 * SAMPLE_RATE as f64 / N_FFT as f64).collect();
    let (lo, hi) = (hz_to_mel(F_MIN), hz_to_mel(F_MAX));
    let mel_f: Vec<f64> = (0..N_MELS + 2).map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (N_MELS + 1) as f64)).collect();
    let mut w = vec![0f64; N_MELS * N_BINS];
    for m in 0..N_MELS {
        let (f0, f1, f2) = (mel_f[m], mel_f[m + 1], mel_f[m + 2]);
        let enorm = 2.0 / (f2 - f0);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - f0) / (f1 - f0);
            let upper = (f2 - f) / (f2 - f1);
            w[m * N_BINS + k] = lower.min(upper).max(0.0) * enorm;
        }
    }
    w
}

/// The front end, reusable across segments (FFT plan and buffers).
pub struct LogMel {
    fft: Arc<dyn RealToComplex<f64>>,
    window: Vec<f64>,
    filters: Vec<f64>,
    frame: Vec<f64>,
    spec: Vec<Complex64>,
    scratch: Vec<Complex64>,
    power: Vec<f64>,
    mean: f64,
    std: f64,
}

impl LogMel {
    /// With the checkpoint's `norm_stats` (`[mean, std]`).
    pub fn new(mean: f32, std: f32) -> LogMel {
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(N_FFT);
        let window =
            (0..N_FFT).map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / N_FFT as f64).cos()).collect();
        LogMel {
            spec: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
            window,
            filters: mel_filters(),
            frame: vec![0.0; N_FFT],
            power: vec![0.0; N_BINS],
            mean: mean as f64,
            std: std as f64,
        }
    }

    /// Frames of a segment: 1001 for 10 s.
    pub fn frames() -> usize {
        1 + SEGMENT / HOP
    }

    /// The normalised log-mel of one segment, padded or cut to 10 s: `[80, 1001]`, row-major (mel bin, frame).
    pub fn features(&mut self, segment: &[f32]) -> Vec<f32> {
        let n = segment.len().min(SEGMENT);
        let mut x = vec![0f64; SEGMENT];
        for (d, s) in x.iter_mut().zip(&segment[..n]) {
            *d = *s as f64;
        }
        let pad = N_FFT / 2;
        // Reflect padding (numpy/torch 'reflect': the edge sample is not repeated).
        let at = |i: isize| -> f64 {
            let len = SEGMENT as isize;
            let j = if i < 0 {
                -i
            } else if i >= len {
                2 * (len - 1) - i
            } else {
                i
            };
            x[j as usize]
        };
        let frames = Self::frames();
        let mut out = vec![0f32; N_MELS * frames];
        for t in 0..frames {
            let start = (t * HOP) as isize - pad as isize;
            for i in 0..N_FFT {
                self.frame[i] = at(start + i as isize) * self.window[i];
            }
            let _ = self.fft.process_with_scratch(&mut self.frame, &mut self.spec, &mut self.scratch);
            for (p, c) in self.power.iter_mut().zip(&self.spec) {
                *p = c.norm_sqr();
            }
            for m in 0..N_MELS {
                let row = &self.filters[m * N_BINS..(m + 1) * N_BINS];
                let s: f64 = row.iter().zip(&self.power).map(|(a, b)| a * b).sum();
                out[m * frames + t] = (((s + LOG_EPS).ln() - self.mean) / self.std) as f32;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_is_the_log_floor_and_a_tone_lands_in_its_bin() {
        let mut lm = LogMel::new(0.0, 1.0);
        let f = lm.features(&[]);
        assert_eq!(f.len(), 80 * 1001);
        let floor = (LOG_EPS).ln() as f32;
        assert!(f.iter().all(|v| (v - floor).abs() < 1e-5));
        let tone: Vec<f32> =
            (0..SEGMENT).map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16000.0).sin()).collect();
        let f = lm.features(&tone);
        let col: Vec<f32> = (0..80).map(|m| f[m * 1001 + 500]).collect();
        let best = col.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        let fs = mel_filters();
        // The filter with the largest weight at FFT bin 25 (1 kHz) is the loudest band.
        let want = (0..80).max_by(|&a, &b| fs[a * N_BINS + 25].total_cmp(&fs[b * N_BINS + 25])).unwrap();
        assert_eq!(best, want);
    }
}
