//! AST's front end: the Kaldi-compatible log-mel filterbank of `torchaudio.compliance.kaldi.fbank`, as called by
//! Hugging Face's `ASTFeatureExtractor` (and by the original `YuanGongND/ast` code), in pure Rust on `realfft`.
//!
//! Per frame of 400 samples (25 ms) every 160 samples (10 ms), `snip_edges` (frames = 1 + (N − 400) / 160):
//! remove the frame's mean (DC), pre-emphasis 0.97 with x[−1] := x[0], multiply by a *symmetric* Hann window,
//! zero-pad to 512, power spectrum, 128 triangular filters equally spaced on the Kaldi mel scale
//! (1127·ln(1 + f/700)) from 20 Hz to 8 kHz, `ln(max(e, f32::EPSILON))`. Then the frames are zero-padded (or cut)
//! to 1024 **before** normalising with `(x − mean) / (2·std)`, mean −4.2677393, std 4.5689974.
//!
//! The FFT is planned once and every buffer is reused; the mel filters are stored sparsely (each FFT bin feeds at
//! most two filters), so a 10 s segment costs a fraction of a millisecond.

use std::sync::Arc;

use realfft::num_complex::Complex32;
use realfft::{RealFftPlanner, RealToComplex};

/// Samples per second the front end expects.
pub const SAMPLE_RATE: u32 = 16_000;
/// Frame length in samples (25 ms).
pub const FRAME_LEN: usize = 400;
/// Hop in samples (10 ms).
pub const HOP: usize = 160;
/// FFT length (the frame rounded up to a power of two).
pub const N_FFT: usize = 512;
/// Lowest and highest filter edges in Hz.
pub const LOW_FREQ: f64 = 20.0;
pub const HIGH_FREQ: f64 = 8_000.0;
/// Pre-emphasis coefficient.
pub const PREEMPHASIS: f32 = 0.97;
/// The floor under the filterbank energies before the log (torch's float32 epsilon).
pub const LOG_FLOOR: f32 = f32::EPSILON;
/// AudioSet normalisation of the AST checkpoints.
pub const DEFAULT_MEAN: f32 = -4.267_739_3;
pub const DEFAULT_STD: f32 = 4.568_997_4;

/// Number of frames Kaldi's `snip_edges=True` framing gives for `n` samples.
pub fn num_frames(n: usize) -> usize {
    if n < FRAME_LEN { 0 } else { 1 + (n - FRAME_LEN) / HOP }
}

/// Kaldi's mel scale.
fn mel(f: f64) -> f64 {
    1127.0 * (1.0 + f / 700.0).ln()
}

/// Settings of the front end that a checkpoint may change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FbankConfig {
    /// Number of mel filters (128 for AST).
    pub num_mel_bins: usize,
    /// Frames after padding/truncation (1024 for AST).
    pub max_length: usize,
    /// Normalisation: `(x − mean) / (2·std)`.
    pub mean: f32,
    pub std: f32,
}

impl Default for FbankConfig {
    fn default() -> Self {
        FbankConfig { num_mel_bins: 128, max_length: 1024, mean: DEFAULT_MEAN, std: DEFAULT_STD }
    }
}

/// The triangular filters, stored densely with a fixed width so the inner loop vectorises: filter `m` weighs FFT
/// bins `starts[m]..starts[m] + width` with `weights[m·width..(m+1)·width]` (zero past its end).
#[derive(Debug, Clone)]
struct Filters {
    starts: Vec<usize>,
    width: usize,
    weights: Vec<f32>,
}

/// `ln(x)` for normal positive `x` (musl's `logf`, branch-free so loops over it vectorise; < 1 ulp error).
#[inline(always)]
fn ln_pos(x: f32) -> f32 {
    const LN2_HI: f32 = 6.931_381_225_6e-1;
    const LN2_LO: f32 = 9.058_000_614_5e-6;
    const LG1: f32 = 0.666_666_626_93;
    const LG2: f32 = 0.400_009_721_52;
    const LG3: f32 = 0.284_987_866_88;
    const LG4: f32 = 0.242_790_788_41;
    let ix = x.to_bits().wrapping_add(0x3f80_0000 - 0x3f35_04f3);
    let k = (ix >> 23) as i32 - 0x7f;
    let m = f32::from_bits((ix & 0x007f_ffff) + 0x3f35_04f3);
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let r = z * (LG1 + w * LG3) + w * (LG2 + w * LG4);
    let hfsq = 0.5 * f * f;
    let dk = k as f32;
    s * (hfsq + r) + dk * LN2_LO - hfsq + f + dk * LN2_HI
}

/// The filterbank front end. Not `Sync` (it owns scratch buffers); make one per thread.
pub struct Fbank {
    cfg: FbankConfig,
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    filters: Filters,
    frame: Vec<f32>,
    energies: Vec<f32>,
    spectrum: Vec<Complex32>,
    power: Vec<f32>,
    scratch: Vec<Complex32>,
    /// The CPU has AVX2 + FMA.
    avx2: bool,
}

impl std::fmt::Debug for Fbank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fbank").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl Fbank {
    /// A front end for `cfg`. `num_mel_bins` must be in 1..=256 and `max_length` ≥ 1 (checked by the caller that
    /// reads a config file; out-of-range values are clamped here so this never panics).
    pub fn new(cfg: FbankConfig) -> Fbank {
        let cfg =
            FbankConfig { num_mel_bins: cfg.num_mel_bins.clamp(1, 256), max_length: cfg.max_length.max(1), ..cfg };
        let mut planner = RealFftPlanner::<f32>::new();
        let fft = planner.plan_fft_forward(N_FFT);
        let scratch = fft.make_scratch_vec();
        // torch.hann_window(400, periodic=False): 0.5 − 0.5·cos(2πn / (N − 1)).
        let window = (0..FRAME_LEN)
            .map(|n| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / (FRAME_LEN - 1) as f64).cos()) as f32)
            .collect();
        let filters = mel_filters(cfg.num_mel_bins);
        Fbank {
            // The power buffer is padded so every filter's fixed-width window stays inside it.
            power: vec![0.0; N_FFT / 2 + 1 + filters.width],
            energies: vec![0.0; cfg.num_mel_bins],
            filters,
            cfg,
            fft,
            window,
            frame: vec![0.0; N_FFT],
            #[cfg(target_arch = "x86_64")]
            avx2: std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            #[cfg(not(target_arch = "x86_64"))]
            avx2: false,
            spectrum: vec![Complex32::default(); N_FFT / 2 + 1],
            scratch,
        }
    }

    pub fn config(&self) -> &FbankConfig {
        &self.cfg
    }

    /// Length of [`features`](Self::features)' output: `max_length × num_mel_bins`.
    pub fn output_len(&self) -> usize {
        self.cfg.max_length * self.cfg.num_mel_bins
    }

    /// The model input for one waveform (mono, 16 kHz, in [−1, 1]): `max_length` rows of `num_mel_bins`, padded or
    /// cut, normalised.
    pub fn features(&mut self, samples: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; self.output_len()];
        self.features_into(samples, &mut out);
        out
    }

    /// [`features`](Self::features) into a caller's buffer of [`output_len`](Self::output_len) values (a shorter
    /// buffer is filled as far as it goes).
    pub fn features_into(&mut self, samples: &[f32], out: &mut [f32]) {
        let nm = self.cfg.num_mel_bins;
        let frames = num_frames(samples.len()).min(self.cfg.max_length);
        // Exactly the extractor's `(x - mean) / (std * 2)`.
        let (mean, two_std) = (self.cfg.mean, self.cfg.std * 2.0);
        for (f, row) in out.chunks_exact_mut(nm).enumerate() {
            if f < frames {
                self.log_mel_frame(&samples[f * HOP..f * HOP + FRAME_LEN], row);
                for v in row.iter_mut() {
                    *v = (*v - mean) / two_std;
                }
            } else {
                row.fill((0.0 - mean) / two_std);
            }
        }
    }

    /// The raw log-mel energies of every frame (no padding, no normalisation): `num_frames × num_mel_bins`.
    pub fn log_mel(&mut self, samples: &[f32]) -> Vec<f32> {
        let nm = self.cfg.num_mel_bins;
        let frames = num_frames(samples.len());
        let mut out = vec![0.0; frames * nm];
        for (f, row) in out.chunks_exact_mut(nm).enumerate() {
            self.log_mel_frame(&samples[f * HOP..f * HOP + FRAME_LEN], row);
        }
        out
    }

    fn log_mel_frame(&mut self, x: &[f32], row: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: `avx2` is only set when the CPU has AVX2 and FMA (checked in `new`).
            return unsafe { self.log_mel_frame_avx2(x, row) };
        }
        self.log_mel_frame_body(x, row)
    }

    /// The same code compiled for AVX2 (the element-wise loops vectorise 8 wide).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn log_mel_frame_avx2(&mut self, x: &[f32], row: &mut [f32]) {
        self.log_mel_frame_body(x, row)
    }

    #[inline(always)]
    fn log_mel_frame_body(&mut self, x: &[f32], row: &mut [f32]) {
        debug_assert_eq!(x.len(), FRAME_LEN);
        // The frame's mean with 16 partial sums (a single running sum is one long dependency chain).
        let mut lanes = [0f32; 16];
        for c in x.chunks_exact(16) {
            for (l, v) in lanes.iter_mut().zip(c) {
                *l += v;
            }
        }
        let mean = (lanes.iter().sum::<f32>() + x[FRAME_LEN / 16 * 16..].iter().sum::<f32>()) / FRAME_LEN as f32;
        let frame = &mut self.frame;
        // Pre-emphasis on the DC-free frame (x[−1] := x[0]), windowed; no state carried between samples.
        for ((f, w), (cur, prev)) in
            frame[1..FRAME_LEN].iter_mut().zip(&self.window[1..]).zip(x[1..].iter().zip(&x[..FRAME_LEN - 1]))
        {
            *f = ((cur - mean) - PREEMPHASIS * (prev - mean)) * w;
        }
        let x0 = x[0] - mean;
        frame[0] = (x0 - PREEMPHASIS * x0) * self.window[0];
        frame[FRAME_LEN..].fill(0.0);
        // `process_with_scratch` only fails on wrong buffer lengths, which are fixed at construction.
        if self.fft.process_with_scratch(frame, &mut self.spectrum, &mut self.scratch).is_err() {
            row.fill(LOG_FLOOR.ln());
            return;
        }
        for (p, c) in self.power.iter_mut().zip(&self.spectrum) {
            *p = c.re * c.re + c.im * c.im;
        }
        let fl = &self.filters;
        let wd = fl.width;
        // Each filter's dot product in 8 lanes (its width is a multiple of 8) reduced as a tree: the products and
        // lane sums vectorise, instead of one scalar chain per filter.
        for ((e, &start), w) in self.energies.iter_mut().zip(&fl.starts).zip(fl.weights.chunks_exact(wd)) {
            let bins = &self.power[start..start + wd];
            let mut acc = [0f32; 8];
            for (b, w) in bins.chunks_exact(8).zip(w.chunks_exact(8)) {
                for i in 0..8 {
                    acc[i] += b[i] * w[i];
                }
            }
            let a4 = [acc[0] + acc[4], acc[1] + acc[5], acc[2] + acc[6], acc[3] + acc[7]];
            *e = (a4[0] + a4[2]) + (a4[1] + a4[3]);
        }
        for (r, e) in row.iter_mut().zip(&self.energies) {
            *r = ln_pos(e.max(LOG_FLOOR));
        }
    }
}

/// torchaudio's `get_mel_banks` (vtln off): triangles on the mel scale between `num_bins + 2` equally spaced
/// points from mel(20 Hz) to mel(8 kHz), evaluated at FFT bin frequencies k·16000/512 for k in 0..256 (the
/// Nyquist bin gets weight 0).
fn mel_filters(num_bins: usize) -> Filters {
    let bin_width = SAMPLE_RATE as f64 / N_FFT as f64;
    let mel_low = mel(LOW_FREQ);
    let mel_high = mel(HIGH_FREQ);
    let delta = (mel_high - mel_low) / (num_bins + 1) as f64;
    let sparse: Vec<(usize, Vec<f32>)> = (0..num_bins)
        .map(|b| {
            let left = mel_low + b as f64 * delta;
            let center = mel_low + (b + 1) as f64 * delta;
            let right = mel_low + (b + 2) as f64 * delta;
            let w: Vec<f64> = (0..N_FFT / 2)
                .map(|k| {
                    let m = mel(bin_width * k as f64);
                    let up = (m - left) / (center - left);
                    let down = (right - m) / (right - center);
                    up.min(down).max(0.0)
                })
                .collect();
            let start = w.iter().position(|&v| v > 0.0).unwrap_or(0);
            let end = w.iter().rposition(|&v| v > 0.0).map_or(start, |e| e + 1);
            (start, w[start..end].iter().map(|&v| v as f32).collect::<Vec<f32>>())
        })
        .collect();
    // Padded to a multiple of 8 lanes (see `log_mel_frame_body`).
    let width = sparse.iter().map(|(_, w)| w.len()).max().unwrap_or(1).max(1).next_multiple_of(8);
    let mut weights = vec![0f32; width * num_bins];
    for ((_, w), dst) in sparse.iter().zip(weights.chunks_exact_mut(width)) {
        dst[..w.len()].copy_from_slice(w);
    }
    Filters { starts: sparse.iter().map(|(s, _)| *s).collect(), width, weights }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_count_follows_snip_edges() {
        assert_eq!(num_frames(160_000), 998);
        assert_eq!(num_frames(399), 0);
        assert_eq!(num_frames(400), 1);
        assert_eq!(num_frames(559), 1);
        assert_eq!(num_frames(560), 2);
    }

    #[test]
    fn padding_rows_are_the_normalised_zero() {
        let mut fb = Fbank::new(FbankConfig::default());
        let x: Vec<f32> = (0..16_000).map(|i| (i as f32 * 0.05).sin() * 0.1).collect();
        let out = fb.features(&x);
        assert_eq!(out.len(), 1024 * 128);
        let pad = (0.0 - DEFAULT_MEAN) / (DEFAULT_STD * 2.0);
        assert!((pad - 0.467_034).abs() < 1e-5);
        // 16 000 samples → 98 frames; row 98 onwards is padding.
        assert!(out[98 * 128..].iter().all(|&v| v == pad));
        assert!(out[..98 * 128].iter().any(|&v| v != pad));
        // Too short for one frame: all padding, no panic.
        assert!(fb.features(&[0.5; 10]).iter().all(|&v| v == pad));
    }

    #[test]
    fn silence_hits_the_log_floor() {
        let mut fb = Fbank::new(FbankConfig::default());
        let lm = fb.log_mel(&[0.0; 800]);
        assert_eq!(lm.len(), 3 * 128);
        assert!(lm.iter().all(|&v| v == LOG_FLOOR.ln()));
    }

    #[test]
    fn a_tone_peaks_in_the_filter_around_its_frequency() {
        let mut fb = Fbank::new(FbankConfig::default());
        let f0 = 1000.0f64;
        let x: Vec<f32> =
            (0..4000).map(|i| (0.5 * (2.0 * std::f64::consts::PI * f0 * i as f64 / 16_000.0).sin()) as f32).collect();
        let lm = fb.log_mel(&x);
        let row = &lm[5 * 128..6 * 128];
        let peak = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0);
        // Filter b is centred at mel_low + (b + 1)·delta.
        let delta = (mel(HIGH_FREQ) - mel(LOW_FREQ)) / 129.0;
        let expect = ((mel(f0) - mel(LOW_FREQ)) / delta - 1.0).round() as usize;
        assert!(peak.abs_diff(expect) <= 1, "peak {peak}, expected about {expect}");
    }

    #[test]
    fn filters_are_narrow_and_cover_the_band() {
        let f = mel_filters(128);
        assert_eq!(f.starts.len(), 128);
        assert!(f.width <= 16, "{}", f.width);
        let nnz = f.weights.iter().filter(|&&w| w > 0.0).count();
        assert!(nnz < 2 * 257, "{nnz}");
        // The first filter starts above 20 Hz, the last ends below 8 kHz.
        assert!(f.starts[0] as f64 * 31.25 > 20.0);
        let last = &f.weights[127 * f.width..];
        let end = f.starts[127] + last.iter().rposition(|&w| w > 0.0).unwrap() + 1;
        assert!(end as f64 * 31.25 <= 8000.0);
    }

    #[test]
    fn fast_ln_is_accurate() {
        let mut x = LOG_FLOOR;
        while x < 1e12 {
            let want = (x as f64).ln();
            let got = ln_pos(x) as f64;
            assert!((got - want).abs() <= 2e-7 * want.abs().max(1.0), "ln({x}) = {got}, want {want}");
            x *= 1.000_37;
        }
    }
}
