//! Segment features of the built-in teacher: frame-level measurements from a 512-point spectrogram
//! (32 ms Hann frames, 16 ms hop at 16 kHz) summarised over the segment.
//!
//! * speech cues: syllabic (2–8 Hz) modulation of the 300–3000 Hz band energy, voicing and pitch continuity from
//!   the frame autocorrelation, energy variance / pauses, spectral flux;
//! * music cues: sustained spectral peaks (partials that persist ≥ 190 ms), chroma stability and concentration,
//!   onset periodicity (autocorrelation of the flux at beat lags), steady pitch;
//! * noise cues: spectral flatness (overall and in the quietest frames), the stationary per-band floor (10th
//!   percentile) relative to the level, and its flatness across bands.
//!
//! Every feature is level-invariant (ratios, dB differences), so the segment's gain does not matter. All buffers are
//! allocated once per extractor and reused, so scoring does not allocate per frame. Reductions run in a fixed order,
//! so the same samples give the same bits on every run.

use rustfft::num_complex::Complex32;

use super::fft::RealFft;

pub const SAMPLE_RATE: u32 = 16_000;
const N: usize = 512;
const HOP: usize = 256;
const NB: usize = N / 2 + 1;
const BIN_HZ: f32 = SAMPLE_RATE as f32 / N as f32;
const FPS: f32 = SAMPLE_RATE as f32 / HOP as f32;
const N_BANDS: usize = 16;
/// Peaks are searched in bins 3..=160 (94 Hz – 5 kHz).
const PEAK_LO: usize = 3;
const PEAK_HI: usize = 160;
/// A peak that persisted this many frames (≈ 190 ms) counts as a sustained partial.
const SUSTAINED: u16 = 12;
/// Pitch lags 32..=200 samples (80–500 Hz).
const LAG_LO: usize = 32;
const LAG_HI: usize = 200;
const VOICED: f32 = 0.5;
const CHROMA_BLOCK: usize = 32;
const MOD_LEN: usize = 128;
const MOD_HOP: usize = 64;
/// Frames more than this far below the loudest frame are treated as silence for the spectral-shape statistics.
const GATE_DB: f32 = 60.0;
/// Segments quieter than this (RMS, dBFS) are digital silence: no class.
pub const SILENCE_DBFS: f32 = -70.0;

/// Names of the features, in vector order (stored in the head file and checked on load).
pub const FEATURE_NAMES: [&str; 42] = [
    "energy_std_db",
    "energy_range_db",
    "low_energy_ratio",
    "pause_frac",
    "flatness_mean",
    "flatness_std",
    "flatness_p10",
    "flatness_p50",
    "flatness_p90",
    "floor_frames_flatness",
    "centroid_mean",
    "centroid_std",
    "hf_ratio_mean",
    "flux_mean",
    "flux_std",
    "flux_p90",
    "voicing_mean",
    "voicing_p90",
    "voiced_frac",
    "pitch_continuous_frac",
    "voiced_run_s",
    "pitch_glide",
    "pitch_steady_frac",
    "peaks_mean",
    "peaks_persistent_frac",
    "peaks_sustained_frac",
    "chroma_entropy",
    "chroma_stability",
    "mod4hz_speechband",
    "mod4hz_fullband",
    "onset_period_slow",
    "onset_period_fast",
    "band_range_db",
    "floor_rel_low",
    "floor_rel_mid",
    "floor_rel_high",
    "floor_rel_top",
    "peak_rel_low",
    "peak_rel_mid",
    "peak_rel_high",
    "peak_rel_top",
    "floor_flatness_db",
];
pub const N_FEATURES: usize = FEATURE_NAMES.len();

/// Version of the feature definitions; bump when any feature changes (the head file records it).
pub const FEATURES_VERSION: u32 = 2;

/// 10 · log10(2): dB per unit of log2 power.
#[allow(clippy::excessive_precision)] // the literal the committed head was trained with
const DB_PER_LOG2: f32 = 3.010_299_9;

/// log2 of a positive normal f32 from its exponent and an odd series in `t = (m − 1)/(m + 1)` of its mantissa
/// (absolute error < 2e-5); plain arithmetic, so it gives the same bits on every platform.
#[inline]
pub fn fast_log2(x: f32) -> f32 {
    let bits = x.to_bits();
    let e = ((bits >> 23) & 0xff) as i32 - 127;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let ln_m = 2.0 * t * (1.0 + t2 * (1.0 / 3.0 + t2 * (0.2 + t2 * (1.0 / 7.0 + t2 * (1.0 / 9.0)))));
    e as f32 + ln_m * std::f32::consts::LOG2_E
}

/// Computes [`N_FEATURES`] features of a 16 kHz mono segment. Reuse one extractor for many segments.
pub struct FeatureExtractor {
    fft: RealFft,
    window: Vec<f32>,
    /// Normalised autocorrelation of the window, to undo its taper in the voicing measure.
    inv_window_acf: Vec<f32>,
    band_edges: [usize; N_BANDS + 1],
    /// `(bin, pitch class)` of the bins between 120 Hz and 4 kHz.
    chroma_of_bin: Vec<(u16, u8)>,
    frame: Vec<f32>,
    spec: Vec<Complex32>,
    power: Vec<f32>,
    log2p: Vec<f32>,
    half_fft: RealFft,
    half_spec: Vec<Complex32>,
    acf: Vec<f32>,
    prev_band_db: [f32; N_BANDS],
    run: Vec<u16>,
    prev_run: Vec<u16>,
    is_peak: Vec<bool>,
    // Per-frame series.
    energy_db: Vec<f32>,
    flatness: Vec<f32>,
    centroid: Vec<f32>,
    hf_ratio: Vec<f32>,
    flux: Vec<f32>,
    voicing: Vec<f32>,
    lag: Vec<u16>,
    n_peaks: Vec<f32>,
    persist: Vec<f32>,
    sustained: Vec<f32>,
    speech_db: Vec<f32>,
    band_db: Vec<f32>,
    // Chroma blocks.
    chroma_acc: [f32; 12],
    prev_chroma: Option<[f32; 12]>,
    chroma_entropy: Vec<f32>,
    chroma_stab: Vec<f32>,
    // Modulation.
    mod_fft: RealFft,
    mod_window: Vec<f32>,
    mod_buf: Vec<f32>,
    mod_spec: Vec<Complex32>,
    tmp: Vec<f32>,
}

impl Default for FeatureExtractor {
    fn default() -> Self {
        Self::new()
    }
}

fn hann(n: usize) -> Vec<f32> {
    (0..n).map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()) as f32).collect()
}

impl FeatureExtractor {
    pub fn new() -> FeatureExtractor {
        let window = hann(N);
        let mut window_acf = vec![0f32; LAG_HI + 1];
        for (lag, w) in window_acf.iter_mut().enumerate() {
            let mut s = 0f64;
            for i in 0..N - lag {
                s += window[i] as f64 * window[i + lag] as f64;
            }
            *w = s as f32;
        }
        let w0 = window_acf[0];
        for w in &mut window_acf {
            *w = w0 / *w;
        }
        let mut band_edges = [0usize; N_BANDS + 1];
        for (i, e) in band_edges.iter_mut().enumerate() {
            let hz = 62.5 * 128f64.powf(i as f64 / N_BANDS as f64);
            *e = (hz / BIN_HZ as f64).round() as usize;
        }
        for i in 1..=N_BANDS {
            if band_edges[i] <= band_edges[i - 1] {
                band_edges[i] = band_edges[i - 1] + 1;
            }
        }
        band_edges[N_BANDS] = NB - 1;
        let chroma_of_bin = (0..NB)
            .filter_map(|k| {
                let f = k as f64 * BIN_HZ as f64;
                if !(120.0..=4000.0).contains(&f) {
                    return None;
                }
                let semis = (12.0 * (f / 440.0).log2()).round() as i64;
                Some((k as u16, semis.rem_euclid(12) as u8))
            })
            .collect();
        FeatureExtractor {
            fft: RealFft::new(N),
            window,
            inv_window_acf: window_acf,
            band_edges,
            chroma_of_bin,
            frame: vec![0.0; N],
            spec: vec![Complex32::default(); NB],
            power: vec![0.0; NB],
            log2p: vec![0.0; NB],
            half_fft: RealFft::new(N / 2),
            half_spec: vec![Complex32::default(); N / 4 + 1],
            acf: vec![0.0; N],
            prev_band_db: [0.0; N_BANDS],
            run: vec![0; NB],
            prev_run: vec![0; NB],
            is_peak: vec![false; NB],
            energy_db: Vec::with_capacity(640),
            flatness: Vec::with_capacity(640),
            centroid: Vec::with_capacity(640),
            hf_ratio: Vec::with_capacity(640),
            flux: Vec::with_capacity(640),
            voicing: Vec::with_capacity(640),
            lag: Vec::with_capacity(640),
            n_peaks: Vec::with_capacity(640),
            persist: Vec::with_capacity(640),
            sustained: Vec::with_capacity(640),
            speech_db: Vec::with_capacity(640),
            band_db: Vec::with_capacity(640 * N_BANDS),
            chroma_acc: [0.0; 12],
            prev_chroma: None,
            chroma_entropy: Vec::with_capacity(32),
            chroma_stab: Vec::with_capacity(32),
            mod_fft: RealFft::new(MOD_LEN),
            mod_window: hann(MOD_LEN),
            mod_buf: vec![0.0; MOD_LEN],
            mod_spec: vec![Complex32::default(); MOD_LEN / 2 + 1],
            tmp: Vec::with_capacity(640 * N_BANDS),
        }
    }

    /// RMS level of a segment in dBFS (non-finite samples count as 0).
    pub fn rms_dbfs(x: &[f32]) -> f32 {
        if x.is_empty() {
            return f32::NEG_INFINITY;
        }
        let mut s = 0f64;
        for &v in x {
            if v.is_finite() {
                s += v as f64 * v as f64;
            }
        }
        (10.0 * (s / x.len() as f64 + 1e-20).log10()) as f32
    }

    /// Features of one segment (any length; shorter than one frame is zero-padded).
    pub fn extract(&mut self, x: &[f32]) -> [f32; N_FEATURES] {
        self.clear();
        let n_frames = if x.len() <= N { 1 } else { 1 + (x.len() - N) / HOP };
        for t in 0..n_frames {
            let start = t * HOP;
            for i in 0..N {
                let v = x.get(start + i).copied().unwrap_or(0.0);
                let v = if v.is_finite() { v } else { 0.0 };
                self.frame[i] = v * self.window[i];
            }
            self.frame_features(t);
        }
        self.flush_chroma();
        let mut f = self.summarise();
        for v in &mut f {
            if !v.is_finite() {
                *v = 0.0;
            }
        }
        f
    }

    fn clear(&mut self) {
        self.energy_db.clear();
        self.flatness.clear();
        self.centroid.clear();
        self.hf_ratio.clear();
        self.flux.clear();
        self.voicing.clear();
        self.lag.clear();
        self.n_peaks.clear();
        self.persist.clear();
        self.sustained.clear();
        self.speech_db.clear();
        self.band_db.clear();
        self.chroma_entropy.clear();
        self.chroma_stab.clear();
        self.chroma_acc = [0.0; 12];
        self.prev_chroma = None;
        self.run.iter_mut().for_each(|r| *r = 0);
        self.prev_run.iter_mut().for_each(|r| *r = 0);
    }

    fn frame_features(&mut self, t: usize) {
        const EPS: f32 = 1e-10;
        self.fft.forward(&self.frame, &mut self.spec);
        let mut total = 0f32;
        for (p, c) in self.power.iter_mut().zip(&self.spec) {
            *p = c.re * c.re + c.im * c.im;
        }
        // Ignore DC and the first bin (rumble / offset).
        for &p in &self.power[2..] {
            total += p;
        }
        let e_db = 10.0 * (total + EPS).log10();
        self.energy_db.push(e_db);

        // Spectral flatness over 125 Hz – 7 kHz.
        // log2 of the power once per bin (fast, exact to ~1e-5), reused by the peak picker as dB.
        for (l, &p) in self.log2p.iter_mut().zip(&self.power) {
            *l = fast_log2(p + EPS);
        }
        let (mut log_sum, mut lin_sum) = (0f32, 0f32);
        for k in 4..=224 {
            log_sum += self.log2p[k];
            lin_sum += self.power[k] + EPS;
        }
        let cnt = (224 - 4 + 1) as f32;
        self.flatness.push((log_sum / cnt * std::f32::consts::LN_2).exp() / (lin_sum / cnt));

        // Centroid (fraction of Nyquist) and share of energy above 4 kHz.
        let mut wsum = 0f32;
        let mut hf = 0f32;
        for (k, &p) in self.power.iter().enumerate().skip(2) {
            wsum += k as f32 * p;
            if k >= 128 {
                hf += p;
            }
        }
        self.centroid.push(wsum / (total + EPS) / (NB - 1) as f32);
        self.hf_ratio.push(hf / (total + EPS));

        // Band energies (dB) and flux.
        let mut fl = 0f32;
        for b in 0..N_BANDS {
            let mut s = 0f32;
            for &p in &self.power[self.band_edges[b]..self.band_edges[b + 1]] {
                s += p;
            }
            let db = 10.0 * (s + EPS).log10();
            if t > 0 {
                fl += (db - self.prev_band_db[b]).max(0.0);
            }
            self.prev_band_db[b] = db;
            self.band_db.push(db);
        }
        self.flux.push(fl / N_BANDS as f32);

        // Speech band (300–3000 Hz) level for the modulation spectrum.
        let mut sb = 0f32;
        for &p in &self.power[10..=96] {
            sb += p;
        }
        self.speech_db.push(10.0 * (sb + EPS).log10());

        // Voicing: normalised autocorrelation (inverse FFT of the power spectrum) at pitch lags.
        let (v, lag) = if total > 1e-6 {
            // Autocorrelation of the 0–4 kHz band at 8 kHz resolution: lag l here is 2 l samples at 16 kHz.
            for (c, &p) in self.half_spec.iter_mut().zip(&self.power[..=N / 4]) {
                *c = Complex32::new(p, 0.0);
            }
            self.half_fft.inverse(&self.half_spec, &mut self.acf[..N / 2]);
            let inv_r0 = 1.0 / self.acf[0].max(EPS);
            let mut best = 0f32;
            let mut best_lag = 0usize;
            for lag in LAG_LO / 2..=LAG_HI / 2 {
                let r = self.acf[lag] * inv_r0 * self.inv_window_acf[2 * lag];
                if r > best {
                    best = r;
                    best_lag = 2 * lag;
                }
            }
            (best.min(1.0), best_lag)
        } else {
            (0.0, 0)
        };
        self.voicing.push(v);
        self.lag.push(lag as u16);

        // Spectral peaks and their persistence (dB spectrum, reuse `acf` as scratch).
        std::mem::swap(&mut self.run, &mut self.prev_run);
        let max_db = {
            let mut m = f32::NEG_INFINITY;
            for k in PEAK_LO - 3..=PEAK_HI + 3 {
                let d = DB_PER_LOG2 * self.log2p[k];
                self.acf[k] = d;
                m = m.max(d);
            }
            m
        };
        let (mut n, mut np, mut ns) = (0u32, 0u32, 0u32);
        for k in PEAK_LO..=PEAK_HI {
            let d = self.acf[k];
            let peak = d > self.acf[k - 1]
                && d >= self.acf[k + 1]
                && d > max_db - 50.0
                && d - 0.5
                    * (self.acf[k - 3].min(self.acf[k - 2]).min(self.acf[k - 1])
                        + self.acf[k + 1].min(self.acf[k + 2]).min(self.acf[k + 3]))
                    > 10.0;
            self.is_peak[k] = peak;
            if peak {
                let prev = self.prev_run[k - 1].max(self.prev_run[k]).max(self.prev_run[k + 1]);
                let r = prev.saturating_add(1);
                self.run[k] = r;
                n += 1;
                if r >= 2 {
                    np += 1;
                }
                if r >= SUSTAINED {
                    ns += 1;
                }
            } else {
                self.run[k] = 0;
            }
        }
        self.n_peaks.push(n as f32);
        self.persist.push(if n > 0 { np as f32 / n as f32 } else { 0.0 });
        self.sustained.push(if n > 0 { ns as f32 / n as f32 } else { 0.0 });

        // Chroma, accumulated over blocks of 0.5 s.
        for &(k, c) in &self.chroma_of_bin {
            self.chroma_acc[c as usize] += self.power[k as usize];
        }
        if (t + 1).is_multiple_of(CHROMA_BLOCK) {
            self.flush_chroma();
        }
    }

    fn flush_chroma(&mut self) {
        let sum: f32 = self.chroma_acc.iter().sum();
        if sum > 1e-6 {
            let mut c = self.chroma_acc;
            let mut h = 0f32;
            let mut norm = 0f32;
            for v in &mut c {
                *v /= sum;
                if *v > 0.0 {
                    h -= *v * v.ln();
                }
                norm += *v * *v;
            }
            self.chroma_entropy.push(h / 12f32.ln());
            if let Some(p) = self.prev_chroma {
                let (mut dot, mut pn) = (0f32, 0f32);
                for i in 0..12 {
                    dot += c[i] * p[i];
                    pn += p[i] * p[i];
                }
                self.chroma_stab.push(dot / (norm.sqrt() * pn.sqrt()).max(1e-12));
            }
            self.prev_chroma = Some(c);
        }
        self.chroma_acc = [0.0; 12];
    }

    fn summarise(&mut self) -> [f32; N_FEATURES] {
        let nf = self.energy_db.len();
        let mut out = [0f32; N_FEATURES];
        let mut i = 0;
        let mut push = |v: f32| {
            out[i] = v;
            i += 1;
        };

        // Active frames: within GATE_DB of the loudest.
        let max_e = self.energy_db.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let floor = max_e - 80.0;
        for e in &mut self.energy_db {
            *e = e.max(floor);
        }
        let active: Vec<bool> = self.energy_db.iter().map(|&e| e > max_e - GATE_DB).collect();

        // Energy.
        let (m, s) = mean_std(&self.energy_db);
        let p = percentiles(&self.energy_db, &mut self.tmp, &[0.1, 0.9, 0.95]);
        push(s);
        push(p[1] - p[0]);
        let lin_mean = self.energy_db.iter().map(|&e| 10f32.powf((e - max_e) / 10.0)).sum::<f32>() / nf as f32;
        let half = 10.0 * (0.5 * lin_mean).log10() + max_e;
        push(frac(self.energy_db.iter().map(|&e| e < half)));
        push(frac(self.energy_db.iter().map(|&e| e < p[2] - 25.0)));
        let _ = m;

        // Flatness (active frames).
        let fl_act: Vec<f32> = gated(&self.flatness, &active);
        let (fm, fs) = mean_std(&fl_act);
        let fp = percentiles(&fl_act, &mut self.tmp, &[0.1, 0.5, 0.9]);
        push(fm);
        push(fs);
        push(fp[0]);
        push(fp[1]);
        push(fp[2]);
        // Flatness of the quietest fifth of the active frames (the floor between events).
        let e_act = gated(&self.energy_db, &active);
        let q20 = percentiles(&e_act, &mut self.tmp, &[0.2])[0];
        let floor_fl: Vec<f32> =
            (0..nf).filter(|&t| active[t] && self.energy_db[t] <= q20).map(|t| self.flatness[t]).collect();
        push(mean_std(&floor_fl).0);

        // Centroid, HF share.
        let (cm, cs) = mean_std(&gated(&self.centroid, &active));
        push(cm);
        push(cs);
        push(mean_std(&gated(&self.hf_ratio, &active)).0);

        // Flux.
        let flx = gated(&self.flux, &active);
        let (xm, xs) = mean_std(&flx);
        push(xm);
        push(xs);
        push(percentiles(&flx, &mut self.tmp, &[0.9])[0]);

        // Voicing and pitch continuity.
        let (vm, _) = mean_std(&self.voicing);
        push(vm);
        push(percentiles(&self.voicing, &mut self.tmp, &[0.9])[0]);
        let voiced: Vec<bool> = (0..nf).map(|t| active[t] && self.voicing[t] >= VOICED).collect();
        push(frac(voiced.iter().copied()));
        let (mut cont, mut steady, mut glide_sum) = (0u32, 0u32, 0f32);
        let mut runs = 0u32;
        let mut run_frames = 0u32;
        let mut in_run = false;
        for t in 1..nf {
            let c = voiced[t] && voiced[t - 1] && {
                let d = (self.lag[t] as f32 / self.lag[t - 1].max(1) as f32).ln().abs();
                d < 0.06
            };
            if c {
                cont += 1;
                let d = (self.lag[t] as f32 / self.lag[t - 1].max(1) as f32).ln().abs();
                glide_sum += d;
                if self.lag[t].abs_diff(self.lag[t - 1]) <= 1 {
                    steady += 1;
                }
                if !in_run {
                    runs += 1;
                    run_frames += 1;
                    in_run = true;
                }
                run_frames += 1;
            } else {
                in_run = false;
            }
        }
        push(cont as f32 / (nf.max(2) - 1) as f32);
        push(if runs > 0 { run_frames as f32 / runs as f32 / FPS } else { 0.0 });
        push(if cont > 0 { glide_sum / cont as f32 } else { 0.0 });
        push(if cont > 0 { steady as f32 / cont as f32 } else { 0.0 });

        // Peaks.
        push(mean_std(&gated(&self.n_peaks, &active)).0);
        push(mean_std(&gated(&self.persist, &active)).0);
        push(mean_std(&gated(&self.sustained, &active)).0);

        // Chroma.
        push(mean_std(&self.chroma_entropy).0);
        push(mean_std(&self.chroma_stab).0);

        // Modulation spectrum, 2–8 Hz share of 0.5–16 Hz.
        let sp = std::mem::take(&mut self.speech_db);
        push(self.mod_ratio(&sp));
        self.speech_db = sp;
        let en = std::mem::take(&mut self.energy_db);
        push(self.mod_ratio(&en));
        self.energy_db = en;

        // Onset periodicity: autocorrelation of the flux at beat lags.
        let (fmn, _) = mean_std(&self.flux);
        let o: &mut Vec<f32> = &mut self.tmp;
        o.clear();
        o.extend(self.flux.iter().map(|&v| v - fmn));
        let acf = |lag: usize| -> f32 {
            let mut s = 0f32;
            for t in lag..o.len() {
                s += o[t] * o[t - lag];
            }
            s
        };
        let r0 = acf(0).max(1e-9);
        let best = |lo: usize, hi: usize| -> f32 {
            let mut b = 0f32;
            for lag in lo..=hi.min(o.len().saturating_sub(1)) {
                b = b.max(acf(lag) / r0);
            }
            b
        };
        let slow = best(19, 63);
        let fast = best(9, 18);
        push(slow);
        push(fast);

        // Per-band floor (p10), peak (p90) and range, per Hz, relative to the overall level per bin.
        let mut floors = [0f32; N_BANDS];
        let mut peaks = [0f32; N_BANDS];
        let mut range = 0f32;
        let mut col: Vec<f32> = Vec::with_capacity(nf);
        for b in 0..N_BANDS {
            col.clear();
            for (t, _) in active.iter().enumerate().filter(|(_, a)| **a) {
                col.push(self.band_db[t * N_BANDS + b]);
            }
            let q = percentiles(&col, &mut self.tmp, &[0.1, 0.9]);
            let w = 10.0 * ((self.band_edges[b + 1] - self.band_edges[b]) as f32).log10();
            floors[b] = q[0] - w;
            peaks[b] = q[1] - w;
            range += q[1] - q[0];
        }
        push(range / N_BANDS as f32);
        let ref_db = p[1] - 10.0 * ((NB - 2) as f32).log10();
        for g in 0..4 {
            push(floors[4 * g..4 * g + 4].iter().sum::<f32>() / 4.0 - ref_db);
        }
        for g in 0..4 {
            push(peaks[4 * g..4 * g + 4].iter().sum::<f32>() / 4.0 - ref_db);
        }
        push(mean_std(&floors[3..]).1);
        debug_assert_eq!(i, N_FEATURES);
        out
    }

    /// Share of the 2–8 Hz modulation power in 0.5–16 Hz, over 2 s chunks (1 s hop) of a dB envelope.
    fn mod_ratio(&mut self, env: &[f32]) -> f32 {
        let (mut num, mut den) = (0f32, 0f32);
        let mut start = 0;
        loop {
            let end = start + MOD_LEN;
            let chunk_len = MOD_LEN.min(env.len().saturating_sub(start));
            if chunk_len < MOD_LEN / 2 {
                break;
            }
            let seg = &env[start..start + chunk_len];
            let mean = seg.iter().sum::<f32>() / chunk_len as f32;
            for (i, (m, w)) in self.mod_buf.iter_mut().zip(&self.mod_window).enumerate() {
                *m = if i < chunk_len { (seg[i] - mean) * w } else { 0.0 };
            }
            self.mod_fft.forward(&self.mod_buf, &mut self.mod_spec);
            for (k, c) in self.mod_spec.iter().enumerate().take(33).skip(1) {
                let p = c.re * c.re + c.im * c.im;
                den += p;
                if (4..=16).contains(&k) {
                    num += p;
                }
            }
            if end >= env.len() {
                break;
            }
            start += MOD_HOP;
        }
        if den > 1e-9 { num / den } else { 0.0 }
    }
}

fn gated(v: &[f32], active: &[bool]) -> Vec<f32> {
    v.iter().zip(active).filter(|(_, a)| **a).map(|(x, _)| *x).collect()
}

fn frac(it: impl Iterator<Item = bool>) -> f32 {
    let (mut n, mut k) = (0u32, 0u32);
    for b in it {
        n += 1;
        k += b as u32;
    }
    if n == 0 { 0.0 } else { k as f32 / n as f32 }
}

fn mean_std(v: &[f32]) -> (f32, f32) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let n = v.len() as f32;
    let m = v.iter().sum::<f32>() / n;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / n;
    (m, var.sqrt())
}

/// Nearest-rank percentiles (q in [0, 1]) of `v`, using `tmp` as the sort buffer.
fn percentiles<const K: usize>(v: &[f32], tmp: &mut Vec<f32>, q: &[f32; K]) -> [f32; K] {
    let mut out = [0f32; K];
    if v.is_empty() {
        return out;
    }
    tmp.clear();
    tmp.extend_from_slice(v);
    // Selection instead of a full sort: the value at a rank does not depend on how it is found. `q` ascending lets
    // each selection work on the part above the previous rank.
    let mut lo = 0;
    for (o, &q) in out.iter_mut().zip(q) {
        let idx = ((q * (tmp.len() - 1) as f32).round() as usize).min(tmp.len() - 1);
        if idx >= lo {
            tmp[lo..].select_nth_unstable_by(idx - lo, |a, b| a.total_cmp(b));
            lo = idx;
        } else {
            tmp.sort_unstable_by(|a, b| a.total_cmp(b));
            lo = tmp.len();
        }
        *o = tmp[idx];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f32, secs: f32, amp: f32) -> Vec<f32> {
        let n = (secs * SAMPLE_RATE as f32) as usize;
        (0..n).map(|i| amp * (2.0 * std::f32::consts::PI * freq * i as f32 / SAMPLE_RATE as f32).sin()).collect()
    }

    fn lcg_noise(n: usize, amp: f32, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                amp * ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0)
            })
            .collect()
    }

    fn idx(name: &str) -> usize {
        FEATURE_NAMES.iter().position(|n| *n == name).unwrap()
    }

    #[test]
    fn fast_log2_is_accurate() {
        for &x in &[1e-10f32, 3.7e-7, 0.001, 0.5, 1.0, 1.5, 1.999, 2.0, 10.0, 12345.6, 3.4e30] {
            assert!((fast_log2(x) - x.log2()).abs() < 2e-5, "{x}: {} vs {}", fast_log2(x), x.log2());
        }
    }

    #[test]
    fn white_noise_is_flat_and_tone_is_not() {
        let mut fx = FeatureExtractor::new();
        let noise = fx.extract(&lcg_noise(160_000, 0.1, 1));
        let mut chord = tone(440.0, 10.0, 0.1);
        for (a, b) in chord.iter_mut().zip(tone(554.37, 10.0, 0.1)) {
            *a += b;
        }
        let tonal = fx.extract(&chord);
        assert!(noise[idx("flatness_mean")] > 0.5, "{}", noise[idx("flatness_mean")]);
        assert!(tonal[idx("flatness_mean")] < 0.1, "{}", tonal[idx("flatness_mean")]);
        assert!(tonal[idx("peaks_sustained_frac")] > 0.8, "{}", tonal[idx("peaks_sustained_frac")]);
        assert!(noise[idx("peaks_sustained_frac")] < 0.2);
        assert!(tonal[idx("voicing_mean")] > 0.5);
        assert!(noise[idx("voicing_mean")] < 0.4, "{}", noise[idx("voicing_mean")]);
    }

    #[test]
    fn syllabic_modulation_is_seen() {
        // Noise bursts at 4 Hz (125 ms on, 125 ms off) against steady noise.
        let mut x = lcg_noise(160_000, 0.1, 2);
        for (i, v) in x.iter_mut().enumerate() {
            if (i / 2000) % 2 == 1 {
                *v *= 0.05;
            }
        }
        let mut fx = FeatureExtractor::new();
        let m = fx.extract(&x);
        let s = fx.extract(&lcg_noise(160_000, 0.1, 3));
        assert!(m[idx("mod4hz_speechband")] > 0.6, "{}", m[idx("mod4hz_speechband")]);
        assert!(m[idx("mod4hz_speechband")] > s[idx("mod4hz_speechband")] + 0.2);
    }

    #[test]
    fn level_invariant_deterministic_and_robust() {
        let mut fx = FeatureExtractor::new();
        let x = lcg_noise(160_000, 0.1, 4);
        let a = fx.extract(&x);
        let b = fx.extract(&x);
        assert_eq!(a.map(f32::to_bits), b.map(f32::to_bits));
        let quiet: Vec<f32> = x.iter().map(|v| v * 0.125).collect(); // exact power-of-two gain
        let c = fx.extract(&quiet);
        for (i, (u, v)) in a.iter().zip(&c).enumerate() {
            assert!((u - v).abs() < 1e-3 * (1.0 + u.abs()), "{}: {u} vs {v}", FEATURE_NAMES[i]);
        }
        // Short, empty, silent and non-finite input never panics and yields finite features.
        for input in [vec![], vec![0.0; 100], vec![0.0; 160_000], vec![f32::NAN; 5000], vec![f32::INFINITY; 900]] {
            assert!(fx.extract(&input).iter().all(|v| v.is_finite()));
        }
    }
}
