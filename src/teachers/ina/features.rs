//! INA's front end: SIDEKIT's log-mel filterbank (`sidekit_mfcc.mfcc(..., get_mspec=True)` as inaSpeechSegmenter
//! calls it), its 68-frame patches and the per-frame log-energy used by the activity detection.
//!
//! Per frame of 400 samples (25 ms) every 160 samples (10 ms), frames = ⌊(N − 400) / 160⌋ + 1 (no padding):
//! * pre-emphasis 0.97 *inside* each frame, the frame's first sample keeping `x₀ − 0.97·x₀`, in f32 like numpy;
//! * log-energy `ln Σ y²` of the pre-emphasised frame (before the window);
//! * symmetric Hann window (`numpy.hanning(400)`), zero-padded 512-point FFT in f64, power spectrum stored as f32;
//! * 24 triangular filters equally spaced on the HTK mel scale (2595·log₁₀(1 + f/700)) from 100 Hz to 8 kHz, with
//!   SIDEKIT's heights 2/(hi − lo) and its bin ranges (the last bin of each right slope is left out);
//! * `ln` of the filter outputs (−∞ where a frame is digital silence: INA marks such patches as non-finite).
//!
//! Patches ([`patch_into`]): the first [`N_MELS_USED`] = 21 bands, windows of 68 frames every 2 frames, each
//! normalised to zero mean and unit (population) variance over its 68 × 21 values, then edge-padded so that patch
//! `p` (one per 20 ms) centres on frame `2p`: 17 copies of the first window before, `16 + T mod 2` copies of the
//! last one after, ⌈T/2⌉ patches in all. Files shorter than 68 frames are padded with the smallest mel value first,
//! as INA does.

use std::sync::Arc;

use realfft::num_complex::Complex64;
use realfft::{RealFftPlanner, RealToComplex};

/// Samples per second the front end expects.
pub const SAMPLE_RATE: u32 = 16_000;
/// Frame length in samples (25 ms).
pub const FRAME_LEN: usize = 400;
/// Hop in samples (10 ms).
pub const HOP: usize = 160;
/// FFT length.
pub const N_FFT: usize = 512;
/// Bins of the one-sided spectrum.
pub const N_BINS: usize = N_FFT / 2 + 1;
/// Mel bands SIDEKIT computes.
pub const N_MELS: usize = 24;
/// Mel bands the speech/music/noise CNN reads (`SpeechMusicNoise.nmel`).
pub const N_MELS_USED: usize = 21;
/// Frames per patch.
pub const PATCH_FRAMES: usize = 68;
/// Frames between patches.
pub const PATCH_STEP: usize = 2;
/// Values per patch.
pub const PATCH_LEN: usize = PATCH_FRAMES * N_MELS_USED;
/// Seconds per patch (the time step of posteriors and segments).
pub const PATCH_SEC: f64 = 0.02;
/// Pre-emphasis coefficient.
pub const PREEMPHASIS: f32 = 0.97;
/// Filter bank edges in Hz.
pub const LOW_FREQ: f64 = 100.0;
pub const HIGH_FREQ: f64 = 8_000.0;

/// Number of frames for `n` samples (0 when shorter than one frame).
pub fn num_frames(n: usize) -> usize {
    if n < FRAME_LEN { 0 } else { (n - FRAME_LEN) / HOP + 1 }
}

/// Number of patches (one per 20 ms) for `frames` frames: ⌈frames / 2⌉.
pub fn num_patches(frames: usize) -> usize {
    frames.div_ceil(PATCH_STEP)
}

fn hz2mel(f: f64) -> f64 {
    2595.0 * (1.0 + f / 700.0).log10()
}

fn mel2hz(m: f64) -> f64 {
    700.0 * (10f64.powf(m / 2595.0) - 1.0)
}

/// SIDEKIT's `trfbank(16000, 512, 100, 8000, 0, 24)`: `[N_MELS][N_BINS]`, f32 like SIDEKIT's array.
pub fn filter_bank() -> Vec<[f32; N_BINS]> {
    let fs = SAMPLE_RATE as f64;
    let nfft = N_FFT as f64;
    let low_mel = hz2mel(LOW_FREQ);
    let max_mel = hz2mel(HIGH_FREQ);
    let melsc = (max_mel - low_mel) / (N_MELS as f64 + 1.0);
    let freqs: Vec<f64> = (0..N_MELS + 2).map(|i| mel2hz(low_mel + i as f64 * melsc)).collect();
    let bin_hz = |k: usize| k as f64 / nfft * fs;
    let mut fbank = vec![[0f32; N_BINS]; N_MELS];
    for (i, row) in fbank.iter_mut().enumerate() {
        let (low, cen, hi) = (freqs[i], freqs[i + 1], freqs[i + 2]);
        let height = 2.0 / (hi - low);
        let left_slope = height / (cen - low);
        let right_slope = height / (hi - cen);
        let lid_start = (low * nfft / fs).floor() as i64 + 1;
        let lid_end = (cen * nfft / fs).floor() as i64 + 1;
        for k in lid_start.max(0)..lid_end {
            let k = k as usize;
            row[k] = (left_slope * (bin_hz(k) - low)) as f32;
        }
        let rid_start = (cen * nfft / fs).floor() as i64 + 1;
        let rid_end = ((hi * nfft / fs).floor() + 1.0).min(nfft) as i64;
        // SIDEKIT assigns `rid[:-1]`: the last bin of the range is left at zero.
        for k in rid_start.max(0)..(rid_end - 1) {
            let k = k as usize;
            row[k] = (right_slope * (hi - bin_hz(k))) as f32;
        }
    }
    fbank
}

/// Features of a whole signal.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Features {
    /// `[frames][24]` log-mel energies (may hold −∞ for silent frames).
    pub mspec: Vec<[f32; N_MELS]>,
    /// `[frames]` log-energy of each pre-emphasised frame (−∞ for digital silence).
    pub loge: Vec<f32>,
}

impl Features {
    pub fn frames(&self) -> usize {
        self.loge.len()
    }
}

/// The front end, with its FFT plan, window and filters built once.
#[derive(Clone)]
pub struct Frontend {
    fft: Arc<dyn RealToComplex<f64>>,
    window: Vec<f64>,
    /// Per band: first bin and the filter weights from there (f32 values, applied in f64).
    filters: Vec<(usize, Vec<f64>)>,
}

impl std::fmt::Debug for Frontend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frontend").finish_non_exhaustive()
    }
}

impl Default for Frontend {
    fn default() -> Self {
        Self::new()
    }
}

impl Frontend {
    pub fn new() -> Frontend {
        let mut planner = RealFftPlanner::<f64>::new();
        let fft = planner.plan_fft_forward(N_FFT);
        let m = (FRAME_LEN - 1) as f64;
        let window = (0..FRAME_LEN).map(|n| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / m).cos()).collect();
        let filters = filter_bank()
            .iter()
            .map(|row| {
                let first = row.iter().position(|&w| w != 0.0).unwrap_or(0);
                let last = row.iter().rposition(|&w| w != 0.0).map_or(first, |l| l + 1);
                (first, row[first..last].iter().map(|&w| w as f64).collect())
            })
            .collect();
        Frontend { fft, window, filters }
    }

    /// Log-mel energies and log-energies of every frame of `x` (16 kHz mono, INA's scale: 16-bit PCM / 32768).
    pub fn compute(&self, x: &[f32]) -> Features {
        let n = num_frames(x.len());
        let mut mspec = Vec::with_capacity(n);
        let mut loge = Vec::with_capacity(n);
        let mut frame = vec![0f32; FRAME_LEN];
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0f32; N_BINS];
        for t in 0..n {
            let s = &x[t * HOP..t * HOP + FRAME_LEN];
            frame[0] = s[0] - s[0] * PREEMPHASIS;
            for i in 1..FRAME_LEN {
                frame[i] = s[i] - s[i - 1] * PREEMPHASIS;
            }
            let energy: f64 = frame.iter().map(|&v| (v as f64) * (v as f64)).sum();
            loge.push((energy as f32).ln());
            for i in 0..FRAME_LEN {
                input[i] = frame[i] as f64 * self.window[i];
            }
            input[FRAME_LEN..].fill(0.0);
            self.fft.process_with_scratch(&mut input, &mut spectrum, &mut scratch).expect("buffers come from the plan");
            for (p, c) in power.iter_mut().zip(&spectrum) {
                let c: &Complex64 = c;
                *p = (c.re * c.re + c.im * c.im) as f32;
            }
            let mut row = [0f32; N_MELS];
            for (b, (first, w)) in self.filters.iter().enumerate() {
                let e: f64 = w.iter().zip(&power[*first..]).map(|(w, &p)| w * p as f64).sum();
                row[b] = (e as f32).ln();
            }
            mspec.push(row);
        }
        Features { mspec, loge }
    }
}

/// The frames patches are cut from: `mspec` itself, or, for files shorter than one patch, `mspec` padded to 68
/// frames with its smallest value (INA's `_media2feats`).
pub fn patch_source(mspec: &[[f32; N_MELS]]) -> std::borrow::Cow<'_, [[f32; N_MELS]]> {
    if mspec.len() >= PATCH_FRAMES {
        return std::borrow::Cow::Borrowed(mspec);
    }
    // numpy's min propagates NaN; the front end never produces NaN (only −∞), so a plain fold matches.
    let min = mspec.iter().flat_map(|r| r.iter().copied()).fold(f32::INFINITY, f32::min);
    let mut padded = mspec.to_vec();
    padded.resize(PATCH_FRAMES, [min; N_MELS]);
    std::borrow::Cow::Owned(padded)
}

/// The window (start frame / 2) patch `p` copies, for `source_frames` frames of [`patch_source`].
pub fn patch_window(p: usize, source_frames: usize) -> usize {
    let windows = (source_frames - PATCH_FRAMES) / PATCH_STEP + 1;
    let lfill = PATCH_FRAMES / (2 * PATCH_STEP);
    p.saturating_sub(lfill).min(windows - 1)
}

/// Write normalised patch `p` of `source` (from [`patch_source`]) into `out` (`68 × 21`, row-major: frame, band).
/// Returns whether the patch is finite (INA gives non-finite patches the posterior 0.5 for every class); a
/// non-finite patch is written as zeros.
pub fn patch_into(source: &[[f32; N_MELS]], p: usize, out: &mut [f32]) -> bool {
    debug_assert_eq!(out.len(), PATCH_LEN);
    let start = patch_window(p, source.len()) * PATCH_STEP;
    let rows = &source[start..start + PATCH_FRAMES];
    let Some((mean, std)) = window_stats(source, start) else {
        out.fill(0.0);
        return false;
    };
    for (r, o) in rows.iter().zip(out.chunks_exact_mut(N_MELS_USED)) {
        for (&v, o) in r[..N_MELS_USED].iter().zip(o) {
            *o = (v - mean) / std;
        }
    }
    true
}

/// The normalisation of the 68-frame window starting at frame `start` of `source`: mean and population standard
/// deviation of its 68 × 21 values (computed in f64, used in f32 as numpy does), `None` when the window is not
/// finite or constant (INA then gives it the posterior 0.5 for every class).
pub fn window_stats(source: &[[f32; N_MELS]], start: usize) -> Option<(f32, f32)> {
    let rows = &source[start..start + PATCH_FRAMES];
    let mut sum = 0f64;
    for r in rows {
        for &v in &r[..N_MELS_USED] {
            sum += v as f64;
        }
    }
    let mean = sum / PATCH_LEN as f64;
    let mut ss = 0f64;
    for r in rows {
        for &v in &r[..N_MELS_USED] {
            let d = v as f64 - mean;
            ss += d * d;
        }
    }
    let std = (ss / PATCH_LEN as f64).sqrt();
    if !mean.is_finite() || !std.is_finite() || std == 0.0 {
        return None;
    }
    // numpy subtracts and divides in f32.
    Some((mean as f32, std as f32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_and_patch_counts() {
        assert_eq!(num_frames(399), 0);
        assert_eq!(num_frames(400), 1);
        assert_eq!(num_frames(16_000), 98);
        assert_eq!(num_patches(98), 49);
        assert_eq!(num_patches(99), 50);
        // Patch p centres on window p - 17, clamped to the windows that exist.
        assert_eq!(patch_window(0, 100), 0);
        assert_eq!(patch_window(17, 100), 0);
        assert_eq!(patch_window(18, 100), 1);
        assert_eq!(patch_window(49, 100), 16); // 17 windows (0..=16) in 100 frames
        assert_eq!(patch_window(33, 68), 0);
    }

    #[test]
    fn filter_bank_shape() {
        let fb = filter_bank();
        assert_eq!(fb.len(), N_MELS);
        // Every filter has some weight, none reaches past Nyquist, and filters start above 100 Hz.
        for row in &fb {
            assert!(row.iter().any(|&w| w > 0.0));
            assert_eq!(row[N_BINS - 1], 0.0);
            assert_eq!(row[3], 0.0);
        }
    }

    #[test]
    fn silence_is_minus_infinity_and_patches_non_finite() {
        let fe = Frontend::new();
        let f = fe.compute(&vec![0.0; 16_000]);
        assert_eq!(f.frames(), 98);
        assert!(f.loge.iter().all(|v| *v == f32::NEG_INFINITY));
        let src = patch_source(&f.mspec);
        let mut out = vec![1.0; PATCH_LEN];
        assert!(!patch_into(&src, 0, &mut out));
        assert!(out.iter().all(|v| *v == 0.0));
    }
}
