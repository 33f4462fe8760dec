//! CLAP's front end, ported from the reference code rather than approximated:
//!
//! * [`SincResampler`]: `torchaudio.functional.resample` with its defaults (`sinc_interp_hann`,
//!   `lowpass_filter_width = 6`, `rolloff = 0.99`): a windowed-sinc polyphase kernel of `new` phases, built in f32
//!   with torchaudio's operation order, applied as its strided `conv1d` over the zero-padded waveform and cut to
//!   `ceil(new·len/orig)` samples. The Python project resamples 16 → 48 kHz this way before the pipeline.
//! * [`MelFrontEnd`]: `ClapFeatureExtractor` for the unfused (`rand_trunc`) path: the waveform padded to
//!   `max_length_s` by the config's padding (`repeatpad`, `repeat`, `pad`), a centred (reflect) STFT with a periodic
//!   Hann window, the spectrum rounded to complex64 as numpy stores it, power 2 in float64, slaney-scale
//!   slaney-normalised mel filters between `frequency_min` and `frequency_max`, `10·log10(max(x, 1e-10))` in
//!   float64, then f32. Output `[frames, mels]` (1001 × 64 for 10 s at 48 kHz).

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

use super::config::FrontConfig;

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// torchaudio's sinc resampler between two integer rates.
#[derive(Debug, Clone)]
pub struct SincResampler {
    orig: usize,
    new: usize,
    width: usize,
    /// `[new][2·width + orig]`.
    kernel: Vec<f32>,
}

impl SincResampler {
    /// The default torchaudio kernel (`lowpass_filter_width = 6`, `rolloff = 0.99`, Hann window).
    pub fn new(from: u32, to: u32) -> Result<SincResampler, String> {
        Self::with(from, to, 6, 0.99)
    }

    pub fn with(from: u32, to: u32, lowpass_filter_width: usize, rolloff: f64) -> Result<SincResampler, String> {
        if from == 0 || to == 0 || lowpass_filter_width == 0 || !(rolloff > 0.0 && rolloff <= 1.0) {
            return Err(format!(
                "invalid resampler {from} -> {to} Hz (width {lowpass_filter_width}, rolloff {rolloff})"
            ));
        }
        let g = gcd(from as u64, to as u64);
        let (orig, new) = ((from as u64 / g) as usize, (to as u64 / g) as usize);
        if orig > 4096 || new > 4096 {
            return Err(format!("{from} -> {to} Hz needs a {new}-phase kernel; rates are too far from a simple ratio"));
        }
        // torchaudio: `base_freq = min(orig, new) * rolloff` (Python float), `width = ceil(lpw * orig / base_freq)`.
        let base = orig.min(new) as f64 * rolloff;
        let width = (lowpass_filter_width as f64 * orig as f64 / base).ceil() as usize;
        let taps = 2 * width + orig;
        let lpw = lowpass_filter_width as f32;
        let basef = base as f32;
        let pi = std::f32::consts::PI;
        let scale = (base / orig as f64) as f32;
        let mut kernel = Vec::with_capacity(new * taps);
        for p in 0..new {
            // `arange(0, -new, -1)[:, None, None] / new + arange(-width, width + orig) / orig`, all in f32.
            let phase = -(p as f32) / new as f32;
            for k in 0..taps {
                let idx = (k as f32 - width as f32) / orig as f32;
                let mut t = (phase + idx) * basef;
                t = t.clamp(-lpw, lpw);
                let w = (t * pi / lpw / 2.0).cos();
                let window = w * w;
                let t = t * pi;
                let s = if t == 0.0 { 1.0 } else { t.sin() / t };
                kernel.push(s * (window * scale));
            }
        }
        Ok(SincResampler { orig, new, width, kernel })
    }

    /// Output length for `n` input samples: `ceil(new · n / orig)`.
    pub fn output_len(&self, n: usize) -> usize {
        (self.new * n).div_ceil(self.orig)
    }

    /// Resample one waveform.
    pub fn apply(&self, x: &[f32]) -> Vec<f32> {
        let taps = 2 * self.width + self.orig;
        let n = x.len();
        // `pad(x, (width, width + orig))`, then `conv1d(stride = orig)`: (n + 2w + orig − taps) / orig + 1 frames.
        let mut padded = vec![0f32; n + 2 * self.width + self.orig];
        padded[self.width..self.width + n].copy_from_slice(x);
        let frames = (padded.len() - taps) / self.orig + 1;
        let target = self.output_len(n);
        let mut out = Vec::with_capacity(frames * self.new);
        'outer: for j in 0..frames {
            let src = &padded[j * self.orig..j * self.orig + taps];
            for p in 0..self.new {
                if out.len() == target {
                    break 'outer;
                }
                let k = &self.kernel[p * taps..(p + 1) * taps];
                let acc: f32 = k.iter().zip(src).map(|(a, b)| a * b).sum();
                out.push(acc);
            }
        }
        out
    }
}

/// The slaney mel scale of `transformers.audio_utils.hertz_to_mel`.
fn hz_to_mel_slaney(f: f64) -> f64 {
    let logstep = 27.0 / 6.4f64.ln();
    if f >= 1000.0 { 15.0 + (f / 1000.0).ln() * logstep } else { 3.0 * f / 200.0 }
}

fn mel_to_hz_slaney(m: f64) -> f64 {
    let logstep = 6.4f64.ln() / 27.0;
    if m >= 15.0 { 1000.0 * (logstep * (m - 15.0)).exp() } else { 200.0 * m / 3.0 }
}

/// `np.linspace(a, b, n)`: `a + i·step`, the last point exactly `b`.
fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    let step = (b - a) / (n - 1) as f64;
    (0..n).map(|i| if i + 1 == n { b } else { a + i as f64 * step }).collect()
}

/// `mel_filter_bank(..., norm="slaney", mel_scale="slaney")`: `[bins][mels]`, float64.
pub fn slaney_mel_filters(n_bins: usize, n_mels: usize, fmin: f64, fmax: f64, sr: u32) -> Vec<f64> {
    let mel_freqs = linspace(hz_to_mel_slaney(fmin), hz_to_mel_slaney(fmax), n_mels + 2);
    let filter_freqs: Vec<f64> = mel_freqs.iter().map(|&m| mel_to_hz_slaney(m)).collect();
    let fft_freqs = linspace(0.0, (sr / 2) as f64, n_bins);
    let diff: Vec<f64> = filter_freqs.windows(2).map(|w| w[1] - w[0]).collect();
    let mut fb = vec![0f64; n_bins * n_mels];
    for (b, &f) in fft_freqs.iter().enumerate() {
        for m in 0..n_mels {
            let down = -(filter_freqs[m] - f) / diff[m];
            let up = (filter_freqs[m + 2] - f) / diff[m + 1];
            let enorm = 2.0 / (filter_freqs[m + 2] - filter_freqs[m]);
            fb[b * n_mels + m] = 0f64.max(down.min(up)) * enorm;
        }
    }
    fb
}

/// The CLAP feature extractor (unfused path).
pub struct MelFrontEnd {
    cfg: FrontConfig,
    window: Vec<f64>,
    /// `[bins][mels]`.
    filters: Vec<f64>,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl std::fmt::Debug for MelFrontEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MelFrontEnd").field("cfg", &self.cfg).finish()
    }
}

impl MelFrontEnd {
    pub fn new(cfg: &FrontConfig) -> Result<MelFrontEnd, String> {
        cfg.validate()?;
        let n = cfg.fft_window_size;
        // `np.hanning(n + 1)[:-1]`.
        let window = (0..n).map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()).collect();
        let filters =
            slaney_mel_filters(n / 2 + 1, cfg.feature_size, cfg.frequency_min, cfg.frequency_max, cfg.sampling_rate);
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n);
        Ok(MelFrontEnd { cfg: cfg.clone(), window, filters, fft })
    }

    pub fn config(&self) -> &FrontConfig {
        &self.cfg
    }

    /// Frames of one model input (`1 + max_samples / hop`).
    pub fn frames(&self) -> usize {
        1 + self.cfg.max_samples() / self.cfg.hop_length
    }

    /// The waveform the extractor analyses: cut to `max_samples` (the start: dams' segments are never longer, and
    /// `rand_trunc` would take a random crop) or padded by the config's padding mode.
    pub fn fit_length(&self, x: &[f32]) -> Vec<f64> {
        let max = self.cfg.max_samples();
        if x.len() >= max {
            return x[..max].iter().map(|&v| v as f64).collect();
        }
        let mut w: Vec<f64> = Vec::with_capacity(max);
        if !x.is_empty() {
            match self.cfg.padding.as_str() {
                "repeat" => {
                    let reps = max / x.len() + 1;
                    for _ in 0..reps {
                        w.extend(x.iter().map(|&v| v as f64));
                    }
                    w.truncate(max);
                }
                "repeatpad" => {
                    for _ in 0..max / x.len() {
                        w.extend(x.iter().map(|&v| v as f64));
                    }
                }
                _ => w.extend(x.iter().map(|&v| v as f64)),
            }
        }
        w.resize(max, 0.0);
        w
    }

    /// Log-mel `[frames · mels]` (row-major, frames first) of a 48 kHz waveform.
    pub fn log_mel(&self, x48: &[f32]) -> Vec<f32> {
        let w = self.fit_length(x48);
        let n = self.cfg.fft_window_size;
        let hop = self.cfg.hop_length;
        let half = n / 2;
        // `np.pad(mode="reflect")`: mirrored without repeating the edge sample.
        let len = w.len();
        let mut p = Vec::with_capacity(len + 2 * half);
        for i in 0..half {
            p.push(w[reflect(half as isize - i as isize, len)]);
        }
        p.extend_from_slice(&w);
        for i in 0..half {
            p.push(w[reflect(len as isize + i as isize, len)]);
        }
        let frames = 1 + (p.len() - n) / hop;
        let bins = n / 2 + 1;
        let mels = self.cfg.feature_size;
        let mut out = vec![0f32; frames * mels];
        let mut buf = self.fft.make_input_vec();
        let mut spec = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0f64; bins];
        for t in 0..frames {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = p[t * hop + i] * self.window[i];
            }
            // Cannot fail: buffers come from the plan.
            let _ = self.fft.process_with_scratch(&mut buf, &mut spec, &mut scratch);
            for (pw, c) in power.iter_mut().zip(&spec) {
                // numpy stores the frame's spectrum as complex64, then `np.abs(..., dtype=float64) ** 2`.
                let (re, im) = (c.re as f32 as f64, c.im as f32 as f64);
                let a = re.hypot(im);
                *pw = a * a;
            }
            for m in 0..mels {
                let mut acc = 0f64;
                for (b, pw) in power.iter().enumerate() {
                    acc += self.filters[b * mels + m] * pw;
                }
                out[t * mels + m] = (10.0 * acc.max(1e-10).log10()) as f32;
            }
        }
        out
    }
}

fn reflect(i: isize, len: usize) -> usize {
    let n = len as isize;
    if n == 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let mut k = i.rem_euclid(period);
    if k >= n {
        k = period - k;
    }
    k as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_matches_numpy() {
        // np.pad([0,1,2,3], 2, mode="reflect") == [2,1,0,1,2,3,2,1]
        let w = [0usize, 1, 2, 3];
        let left: Vec<usize> = (0..2).map(|i| w[reflect(2 - i as isize, 4)]).collect();
        let right: Vec<usize> = (0..2).map(|i| w[reflect(4 + i as isize, 4)]).collect();
        assert_eq!(left, vec![2, 1]);
        assert_eq!(right, vec![2, 1]);
    }

    #[test]
    fn resampler_lengths_and_dc_gain() {
        let r = SincResampler::new(16_000, 48_000).unwrap();
        assert_eq!(r.output_len(160_000), 480_000);
        assert_eq!(r.output_len(7), 21);
        let y = r.apply(&vec![1.0; 4000]);
        assert_eq!(y.len(), 12_000);
        // Far from the edges a constant passes with the kernel's DC gain (≈ rolloff-limited sinc sum ≈ 1).
        assert!((y[6000] - 1.0).abs() < 2e-2, "{}", y[6000]);
    }

    #[test]
    fn repeatpad_tiles_whole_copies_then_zeros() {
        let cfg = FrontConfig { max_length_s: 1, ..FrontConfig::default() };
        let fe = MelFrontEnd::new(&cfg).unwrap();
        let x: Vec<f32> = (0..20_000).map(|i| i as f32).collect();
        let w = fe.fit_length(&x);
        assert_eq!(w.len(), 48_000);
        assert_eq!(w[20_000], 0.0);
        assert_eq!(w[39_999], 19_999.0);
        assert_eq!(w[40_000], 0.0);
    }
}
