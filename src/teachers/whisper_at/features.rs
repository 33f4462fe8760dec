//! Whisper's log-mel front end (`whisper/audio.py` `log_mel_spectrogram`), as Whisper-AT calls it.
//!
//! STFT with n_fft 400, hop 160, a periodic Hann window, `center=True` (reflect padding of 200 samples each side),
//! the last frame dropped; |X|² × the 80 Slaney mel filters Whisper publishes (`assets/whisper_at/`, MIT);
//! `log10(max(x, 1e-10))`, then `max(x, max − 8)` over the whole spectrogram, then `(x + 4) / 4`.
//!
//! The two contexts ([`Context`]): `30` is what `transcribe()` computes for a segment — the segment followed by
//! 30 s of zeros, the first 3000 frames — and `10` is the segment zero-padded (or cut) to 10 s, 1000 frames, as
//! Whisper-AT's training features were made. The FFT runs in f64 (the reference runs in f32; both round to the
//! same f32 spectrogram within ~1e-5 on real audio, see `tests/whisper_at.rs`).

use std::sync::Arc;

use realfft::num_complex::Complex64;
use realfft::{RealFftPlanner, RealToComplex};

pub const SAMPLE_RATE: usize = 16_000;
pub const N_FFT: usize = 400;
pub const HOP: usize = 160;
pub const N_MELS: usize = 80;
const N_BINS: usize = N_FFT / 2 + 1;

/// How much audio the encoder sees per 10 s segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Context {
    /// The segment + 30 s of zeros, a 3000-frame window, 1500 tokens: the Python project's numbers.
    #[default]
    S30,
    /// The segment padded or cut to 10 s, 1000 frames, 500 tokens (Whisper-AT's training features; ~⅓ the cost).
    S10,
}

impl Context {
    pub fn as_str(self) -> &'static str {
        match self {
            Context::S30 => "30",
            Context::S10 => "10",
        }
    }

    /// Mel frames the encoder gets.
    pub fn frames(self) -> usize {
        match self {
            Context::S30 => 3000,
            Context::S10 => 1000,
        }
    }

    /// Encoder tokens (after the stride-2 convolution).
    pub fn tokens(self) -> usize {
        self.frames() / 2
    }
}

impl std::str::FromStr for Context {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "30" | "" => Ok(Context::S30),
            "10" => Ok(Context::S10),
            other => Err(format!("context '{other}': 30 (the Python project's, default) or 10")),
        }
    }
}

/// Whisper's 80 × 201 mel filter bank (row-major: mel bin, FFT bin).
pub fn mel_filters() -> &'static [f32] {
    static F: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let b = include_bytes!("../../../assets/whisper_at/mel_filters_80x201.f32");
        b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    })
}

/// The front end, reusable across segments (FFT plan and buffers).
pub struct LogMel {
    fft: Arc<dyn RealToComplex<f64>>,
    window: Vec<f64>,
    frame: Vec<f64>,
    spec: Vec<Complex64>,
    scratch: Vec<Complex64>,
    power: Vec<f64>,
}

impl Default for LogMel {
    fn default() -> Self {
        LogMel::new()
    }
}

impl LogMel {
    pub fn new() -> LogMel {
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(N_FFT);
        let scratch = fft.make_scratch_vec();
        // torch.hann_window(400): periodic, computed in f32.
        let window = (0..N_FFT)
            .map(|n| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos()) as f32 as f64)
            .collect();
        LogMel { spec: fft.make_output_vec(), fft, window, frame: vec![0.0; N_FFT], scratch, power: vec![0.0; N_BINS] }
    }

    /// The encoder input of one segment in `context`: `[80, context.frames()]`, row-major (mel bin, frame).
    pub fn features(&mut self, segment: &[f32], context: Context) -> Vec<f32> {
        match context {
            // transcribe(): log_mel_spectrogram(audio, padding=N_SAMPLES), then frames [0, 3000).
            Context::S30 => self.log_mel(segment, 30 * SAMPLE_RATE, 3000),
            // pad_or_trim(audio, 10 s), then log_mel_spectrogram: exactly 1000 frames.
            Context::S10 => {
                let n = segment.len().min(10 * SAMPLE_RATE);
                self.log_mel(&segment[..n], 10 * SAMPLE_RATE - n, 1000)
            }
        }
    }

    /// `log_mel_spectrogram(x ++ zeros(pad))`, the first `keep` frames (`[80, keep]`); the clamp uses the maximum
    /// over every frame, as the reference does.
    pub fn log_mel(&mut self, x: &[f32], pad: usize, keep: usize) -> Vec<f32> {
        let len = x.len() + pad;
        let frames = len / HOP; // 1 + len / HOP frames, the last one dropped
        // The signal with centre padding: reflect 200 on each side (numpy/torch "reflect": the edge sample is not
        // repeated). Samples past the audio are zero.
        let half = N_FFT / 2;
        let sample = |i: isize| -> f64 {
            // index into x ++ zeros(pad), reflected at both ends
            let n = len as isize;
            let mut j = i;
            if j < 0 {
                j = -j;
            }
            if j >= n {
                j = 2 * (n - 1) - j;
            }
            let j = j.clamp(0, n - 1) as usize;
            if j < x.len() { x[j] as f64 } else { 0.0 }
        };
        let filters = mel_filters();
        let mut mel = vec![0f64; N_MELS * frames.max(keep)];
        let floor = 1e-10f64.log10();
        let stride = frames.max(keep);
        for t in 0..frames {
            let start = (t * HOP) as isize - half as isize;
            let mut any = false;
            for (k, f) in self.frame.iter_mut().enumerate() {
                let v = sample(start + k as isize);
                any |= v != 0.0;
                *f = v * self.window[k];
            }
            if !any {
                for m in 0..N_MELS {
                    mel[m * stride + t] = floor;
                }
                continue;
            }
            // A length-400 real FFT cannot fail with buffers made by its own plan.
            let _ = self.fft.process_with_scratch(&mut self.frame, &mut self.spec, &mut self.scratch);
            for (p, c) in self.power.iter_mut().zip(&self.spec) {
                *p = c.norm_sqr();
            }
            for m in 0..N_MELS {
                let row = &filters[m * N_BINS..(m + 1) * N_BINS];
                let s: f64 = row.iter().zip(&self.power).map(|(&w, &p)| w as f64 * p).sum();
                mel[m * stride + t] = s.max(1e-10).log10();
            }
        }
        // Frames asked for beyond the signal (cannot happen for the two contexts) are silence.
        for m in 0..N_MELS {
            for t in frames..keep {
                mel[m * stride + t] = floor;
            }
        }
        let max = mel.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut out = vec![0f32; N_MELS * keep];
        for m in 0..N_MELS {
            for t in 0..keep {
                out[m * keep + t] = ((mel[m * stride + t].max(max - 8.0) + 4.0) / 4.0) as f32;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_is_the_floor_and_the_shapes_follow_the_context() {
        let mut lm = LogMel::new();
        let f = lm.features(&[0.0; 16_000], Context::S30);
        assert_eq!(f.len(), 80 * 3000);
        // All log10(1e-10) = -10, max - 8 = -18 → (-10 + 4) / 4.
        assert!(f.iter().all(|&v| v == -1.5));
        assert_eq!(lm.features(&[0.1; 200_000], Context::S10).len(), 80 * 1000);
        assert_eq!(mel_filters().len(), 80 * 201);
        assert_eq!("10".parse::<Context>().unwrap(), Context::S10);
        assert!("20".parse::<Context>().is_err());
    }

    #[test]
    fn a_tone_lands_in_its_mel_bin_and_the_clamp_holds() {
        let x: Vec<f32> =
            (0..16_000).map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin() * 0.5).collect();
        let mut lm = LogMel::new();
        let f = lm.features(&x, Context::S10);
        let col = |t: usize| (0..80).map(|m| f[m * 1000 + t]).collect::<Vec<f32>>();
        let c = col(50);
        let peak = c.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        // 1 kHz is FFT bin 25 (40 Hz per bin); the filter peaking there is mel bin 26 (Slaney: 15 mel of ~45 up to
        // 8 kHz lie below 1 kHz, spread over 80 + 2 edges).
        assert_eq!(peak, 26, "peak at {peak}");
        let max = f.iter().copied().fold(f32::MIN, f32::max);
        assert!(f.iter().all(|&v| v >= max - 2.0 - 1e-6), "values below (max - 8 + 4) / 4");
    }
}
