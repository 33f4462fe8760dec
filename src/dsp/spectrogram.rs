//! Log-mel spectrogram (25 ms Hann windows, 10 ms hop, 512-point real FFT, HTK mel bands),
//! for display: it is on the segment-switch path, so the FFT plan, window and mel filters are
//! built once per [`MelSpectrogrammer`] and reused.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

/// Settings of the display spectrogram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpecConfig {
    pub sample_rate: u32,
    pub win: usize,
    pub hop: usize,
    pub n_fft: usize,
    pub n_mels: usize,
    pub fmin: f32,
    pub fmax: f32,
}

impl Default for SpecConfig {
    fn default() -> Self {
        SpecConfig { sample_rate: 16_000, win: 400, hop: 160, n_fft: 512, n_mels: 80, fmin: 0.0, fmax: 8_000.0 }
    }
}

/// A log-mel spectrogram: `n_frames` frames of `n_mels` values in dB, frame-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Spectrogram {
    pub config: SpecConfig,
    pub n_frames: usize,
    pub n_mels: usize,
    /// `data[frame * n_mels + band]`, power in dB (floored at -100 dB).
    pub data: Vec<f32>,
    /// RMS level of each frame in dB full scale (the waveform/energy strip).
    pub frame_db: Vec<f32>,
    /// Centre frequency (Hz) of each mel band.
    pub band_hz: Vec<f32>,
}

impl Spectrogram {
    pub fn get(&self, frame: usize, band: usize) -> f32 {
        self.data[frame * self.n_mels + band]
    }
    /// Seconds per frame step.
    pub fn hop_seconds(&self) -> f64 {
        self.config.hop as f64 / self.config.sample_rate as f64
    }
    /// The `lo`-th and `hi`-th percentiles of the values in dB (a robust display range).
    pub fn db_range(&self) -> (f32, f32) {
        if self.data.is_empty() {
            return (-100.0, 0.0);
        }
        let mut v: Vec<f32> = self.data.iter().step_by(7).copied().collect();
        v.sort_by(f32::total_cmp);
        let lo = v[v.len() * 5 / 100];
        let hi = v[(v.len() * 995 / 1000).min(v.len() - 1)];
        if hi - lo < 1.0 { (hi - 60.0, hi + 1.0) } else { (lo, hi) }
    }
}

pub fn hz_to_mel(hz: f32) -> f32 {
    2595.0 * (1.0 + hz / 700.0).log10()
}
pub fn mel_to_hz(mel: f32) -> f32 {
    700.0 * (10f32.powf(mel / 2595.0) - 1.0)
}

struct MelBand {
    first_bin: usize,
    weights: Vec<f32>,
}

/// Reusable spectrogram computer (plan, window and filterbank built once).
pub struct MelSpectrogrammer {
    config: SpecConfig,
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    bands: Vec<MelBand>,
    band_hz: Vec<f32>,
    input: Vec<f32>,
    output: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    power: Vec<f32>,
}

impl MelSpectrogrammer {
    pub fn new(config: SpecConfig) -> MelSpectrogrammer {
        assert!(config.win <= config.n_fft && config.hop > 0 && config.n_mels > 0, "invalid spectrogram config");
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(config.n_fft);
        let window: Vec<f32> = (0..config.win)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / config.win as f32).cos())
            .collect();
        let n_bins = config.n_fft / 2 + 1;
        let bin_hz = config.sample_rate as f32 / config.n_fft as f32;
        let (mlo, mhi) = (hz_to_mel(config.fmin), hz_to_mel(config.fmax));
        let edges: Vec<f32> = (0..config.n_mels + 2)
            .map(|i| mel_to_hz(mlo + (mhi - mlo) * i as f32 / (config.n_mels + 1) as f32))
            .collect();
        let mut bands = Vec::with_capacity(config.n_mels);
        for m in 0..config.n_mels {
            let (lo, c, hi) = (edges[m], edges[m + 1], edges[m + 2]);
            let mut first = None;
            let mut weights = Vec::new();
            for b in 0..n_bins {
                let f = b as f32 * bin_hz;
                let w = if f > lo && f <= c {
                    (f - lo) / (c - lo)
                } else if f > c && f < hi {
                    (hi - f) / (hi - c)
                } else {
                    0.0
                };
                if w > 0.0 {
                    first.get_or_insert(b);
                    weights.push(w);
                } else if first.is_some() {
                    break;
                }
            }
            // Narrow low bands may fall between bins: use the nearest bin.
            let first_bin = first.unwrap_or_else(|| ((c / bin_hz).round() as usize).min(n_bins - 1));
            if weights.is_empty() {
                weights.push(1.0);
            }
            bands.push(MelBand { first_bin, weights });
        }
        let band_hz = edges[1..=config.n_mels].to_vec();
        let input = fft.make_input_vec();
        let output = fft.make_output_vec();
        let scratch = fft.make_scratch_vec();
        MelSpectrogrammer { config, fft, window, bands, band_hz, input, output, scratch, power: vec![0.0; n_bins] }
    }

    pub fn config(&self) -> SpecConfig {
        self.config
    }

    /// The spectrogram of `samples` (mono, at `config.sample_rate`). A signal shorter than one
    /// window gives one zero-padded frame; an empty one gives no frames.
    pub fn compute(&mut self, samples: &[f32]) -> Spectrogram {
        let c = self.config;
        let n_frames = if samples.is_empty() { 0 } else { 1 + samples.len().saturating_sub(c.win) / c.hop };
        let mut data = Vec::with_capacity(n_frames * c.n_mels);
        let mut frame_db = Vec::with_capacity(n_frames);
        for f in 0..n_frames {
            let start = f * c.hop;
            let frame = &samples[start..(start + c.win).min(samples.len())];
            self.input.iter_mut().for_each(|x| *x = 0.0);
            let mut energy = 0.0f64;
            for (i, (&s, &w)) in frame.iter().zip(&self.window).enumerate() {
                let s = if s.is_finite() { s } else { 0.0 };
                energy += (s as f64) * (s as f64);
                self.input[i] = s * w;
            }
            let rms = (energy / c.win as f64).sqrt() as f32;
            frame_db.push(20.0 * rms.max(1e-5).log10());
            // Lengths match the plan, so this cannot fail.
            let _ = self.fft.process_with_scratch(&mut self.input, &mut self.output, &mut self.scratch);
            for (p, z) in self.power.iter_mut().zip(&self.output) {
                *p = z.norm_sqr();
            }
            for band in &self.bands {
                let mut e = 0.0f32;
                for (k, w) in band.weights.iter().enumerate() {
                    e += w * self.power[band.first_bin + k];
                }
                data.push(10.0 * e.max(1e-10).log10());
            }
        }
        Spectrogram { config: c, n_frames, n_mels: c.n_mels, data, frame_db, band_hz: self.band_hz.clone() }
    }
}

impl Default for MelSpectrogrammer {
    fn default() -> Self {
        MelSpectrogrammer::new(SpecConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f32, secs: f32) -> Vec<f32> {
        (0..(16_000.0 * secs) as usize)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * hz * i as f32 / 16_000.0).sin())
            .collect()
    }

    fn peak_band(s: &Spectrogram, frame: usize) -> usize {
        (0..s.n_mels).max_by(|&a, &b| s.get(frame, a).total_cmp(&s.get(frame, b))).unwrap()
    }

    #[test]
    fn pure_tones_peak_in_the_mel_band_of_their_frequency() {
        let mut sg = MelSpectrogrammer::default();
        for hz in [250.0f32, 1_000.0, 3_000.0, 6_500.0] {
            let s = sg.compute(&tone(hz, 1.0));
            assert_eq!(s.n_frames, 1 + (16_000 - 400) / 160);
            // The band whose centre is nearest the tone in mel.
            let want = (0..s.n_mels)
                .min_by(|&a, &b| {
                    (hz_to_mel(s.band_hz[a]) - hz_to_mel(hz))
                        .abs()
                        .total_cmp(&(hz_to_mel(s.band_hz[b]) - hz_to_mel(hz)).abs())
                })
                .unwrap();
            for f in [0, s.n_frames / 2, s.n_frames - 1] {
                let got = peak_band(&s, f);
                assert!(got.abs_diff(want) <= 1, "{hz} Hz: peak band {got}, expected {want} (frame {f})");
            }
            // The peak stands far above bands far away from it.
            let far = if want > s.n_mels / 2 { 0 } else { s.n_mels - 1 };
            assert!(s.get(10, want) - s.get(10, far) > 40.0, "{hz} Hz: weak peak");
        }
    }

    #[test]
    fn energy_strip_and_edge_cases() {
        let mut sg = MelSpectrogrammer::default();
        let mut x = tone(1_000.0, 1.0);
        x[..8_000].iter_mut().for_each(|v| *v = 0.0);
        let s = sg.compute(&x);
        assert!(s.frame_db[5] < -90.0, "silence: {}", s.frame_db[5]);
        // A 0.5-amplitude sine has RMS 0.354 = -9 dBFS.
        assert!((s.frame_db[s.n_frames - 5] + 9.03).abs() < 0.2, "tone: {}", s.frame_db[s.n_frames - 5]);
        assert_eq!(sg.compute(&[]).n_frames, 0);
        let short = sg.compute(&[0.1; 100]);
        assert_eq!(short.n_frames, 1);
        assert!(short.data.iter().all(|v| v.is_finite()));
        let nan = sg.compute(&[f32::NAN; 1_000]);
        assert!(nan.data.iter().all(|v| v.is_finite()));
        let (lo, hi) = s.db_range();
        assert!(lo < hi);
    }
}
