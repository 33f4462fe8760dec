//! Acoustic statistics of a 16 kHz mono segment, exactly as the Python project's
//! `build_acoustic_stats` defines them:
//!
//! - `duration_sec` = N / 16000
//! - `rms_db` = 20·log10(max(√mean(x²), 1e-8))
//! - `silence_ratio` = fraction of samples with 20·log10(max(|x|, 1e-8)) < -60
//! - `clipping_ratio` = fraction of samples with |x| ≥ 0.99
//! - `zero_crossing_rate` = count(diff(sign(x)) ≠ 0) / N (sign(0) = 0, as torch.sign)
//! - `snr_db` = 10·log10(mean(E) / (q10(E) + 1e-8)), E = mean(x²) of non-overlapping 400-sample
//!   frames, q10 the 10th percentile with linear interpolation (torch.quantile). With N < 400 the
//!   per-sample energies x² are used, with their minimum in place of the percentile.
//! - `energy_variance` = unbiased variance of log10(E + 1e-8) over 400-sample frames with hop 200
//!   (0.0 when N < 400; NaN with a single frame, as torch's unbiased variance of one value)
//! - flags: too short (< 0.5 s), too quiet (rms_db < -50), mostly silence (> 0.8), heavily clipped
//!   (> 0.05), high zcr (> 0.20).
//!
//! A file that cannot be read gives [`error_stats`]: rms −∞, silence 1, clipping 0, zcr/snr/variance
//! NaN, `had_error` set.
use std::path::Path;

use crate::store::{AcousticStats, Store, StoreError};
use crate::workspace::Workspace;

use super::{AudioError, TARGET_RATE, load_mono_16k};

const SNR_FRAME: usize = 400;
const VAR_FRAME: usize = 400;
const VAR_HOP: usize = 200;

/// The statistics of 16 kHz mono samples.
pub fn acoustic_stats(x: &[f32]) -> AcousticStats {
    let n = x.len();
    let nf = n.max(1) as f64;
    let duration_sec = n as f64 / TARGET_RATE as f64;
    let sumsq: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
    let rms = if n == 0 { f64::NAN } else { (sumsq / nf).sqrt() };
    let rms_db = 20.0 * rms.max(1e-8).log10();
    let silent = x.iter().filter(|&&v| 20.0 * (v.abs() as f64).max(1e-8).log10() < -60.0).count();
    let clipped = x.iter().filter(|&&v| v.abs() >= 0.99).count();
    let sign = |v: f32| -> i8 {
        if v > 0.0 {
            1
        } else if v < 0.0 {
            -1
        } else {
            0
        }
    };
    let crossings = x.windows(2).filter(|w| sign(w[0]) != sign(w[1])).count();
    let (silence_ratio, clipping_ratio, zero_crossing_rate) = if n == 0 {
        (f64::NAN, f64::NAN, f64::NAN)
    } else {
        (silent as f64 / nf, clipped as f64 / nf, crossings as f64 / nf)
    };

    let snr_db = {
        let (signal, noise) = if n >= SNR_FRAME {
            let e: Vec<f64> = x.chunks_exact(SNR_FRAME).map(mean_sq).collect();
            (mean(&e), quantile_linear(&e, 0.1))
        } else if n > 0 {
            let e: Vec<f64> = x.iter().map(|&v| (v as f64) * (v as f64)).collect();
            (mean(&e), e.iter().cloned().fold(f64::INFINITY, f64::min))
        } else {
            (f64::NAN, f64::NAN)
        };
        10.0 * (signal / (noise + 1e-8)).log10()
    };

    let energy_variance = if n < VAR_FRAME {
        0.0
    } else {
        let frames = 1 + (n - VAR_FRAME) / VAR_HOP;
        let le: Vec<f64> =
            (0..frames).map(|i| (mean_sq(&x[i * VAR_HOP..i * VAR_HOP + VAR_FRAME]) + 1e-8).log10()).collect();
        variance_unbiased(&le)
    };

    with_flags(AcousticStats {
        duration_sec,
        rms_db,
        silence_ratio,
        clipping_ratio,
        zero_crossing_rate,
        snr_db,
        energy_variance,
        had_error: false,
        ..Default::default()
    })
}

/// The values the Python project stores for a file it could not read.
pub fn error_stats() -> AcousticStats {
    with_flags(AcousticStats {
        duration_sec: 0.0,
        rms_db: f64::NEG_INFINITY,
        silence_ratio: 1.0,
        clipping_ratio: 0.0,
        zero_crossing_rate: f64::NAN,
        snr_db: f64::NAN,
        energy_variance: f64::NAN,
        had_error: true,
        ..Default::default()
    })
}

fn with_flags(mut s: AcousticStats) -> AcousticStats {
    s.is_too_short = s.duration_sec < 0.5;
    s.is_too_quiet = s.rms_db < -50.0;
    s.is_mostly_silence = s.silence_ratio > 0.8;
    s.is_heavily_clipped = s.clipping_ratio > 0.05;
    s.is_high_zcr = s.zero_crossing_rate > 0.20;
    s
}

/// Stats of an audio file (decoded and resampled to 16 kHz mono if needed).
pub fn file_stats(path: &Path) -> Result<AcousticStats, AudioError> {
    Ok(acoustic_stats(&load_mono_16k(path)?))
}

fn mean_sq(f: &[f32]) -> f64 {
    f.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / f.len() as f64
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// torch.quantile with the default linear interpolation.
pub fn quantile_linear(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let pos = q * (s.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

fn variance_unbiased(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return f64::NAN;
    }
    let m = mean(v);
    v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64
}

/// Outcome of [`compute_workspace_stats`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsReport {
    pub computed: usize,
    /// Segments that already had stats (skipped without `force`).
    pub skipped: usize,
    /// `(segment_path, error)` of files that could not be read (stored with `had_error`).
    pub failed: Vec<(String, String)>,
}

/// Compute and store the stats of every segment of the workspace that has none (all with
/// `force`). A file that cannot be read is stored with `had_error` and its message, and the run
/// goes on. `progress(done, total)` is called after each segment.
pub fn compute_workspace_stats(
    ws: &Workspace,
    store: &mut Store,
    force: bool,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<StatsReport, StoreError> {
    let todo = store.segments_needing_stats(force)?;
    let total_segments = store.segment_count()? as usize;
    let mut rep = StatsReport { skipped: total_segments.saturating_sub(todo.len()), ..Default::default() };
    for (i, (id, rel)) in todo.iter().enumerate() {
        let result = match ws.resolve_data_path(rel) {
            Ok(p) => file_stats(&p).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(s) => {
                store.put_stats(*id, &s, None)?;
                rep.computed += 1;
            }
            Err(msg) => {
                store.put_stats(*id, &error_stats(), Some(&msg))?;
                rep.failed.push((rel.clone(), msg));
            }
        }
        progress(i + 1, todo.len());
    }
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// Full-scale square wave, period 8 samples (4 high, 4 low), 1 s.
    #[test]
    fn square_wave() {
        let x: Vec<f32> = (0..16_000).map(|i| if (i / 4) % 2 == 0 { 1.0 } else { -1.0 }).collect();
        let s = acoustic_stats(&x);
        assert_eq!(s.duration_sec, 1.0);
        assert!(close(s.rms_db, 0.0, 1e-9)); // rms 1 -> 0 dB
        assert_eq!(s.silence_ratio, 0.0);
        assert_eq!(s.clipping_ratio, 1.0); // every sample |x| = 1 >= 0.99
        // a sign change every 4 samples: 3999 changes in 15999 diffs, / 16000
        assert!(close(s.zero_crossing_rate, 3999.0 / 16000.0, 1e-12));
        // every 400-sample frame has energy 1 -> mean/q10 = 1/(1+1e-8)
        assert!(close(s.snr_db, 10.0 * (1.0f64 / (1.0 + 1e-8)).log10(), 1e-9));
        assert!(close(s.energy_variance, 0.0, 1e-20));
        assert!(s.is_heavily_clipped && s.is_high_zcr && !s.is_too_quiet && !s.is_too_short);
    }

    /// A 1 kHz sine at amplitude 0.5: rms = 0.5/√2 -> 20·log10(0.35355) = -9.0309 dB.
    #[test]
    fn sine_at_known_amplitude() {
        let x: Vec<f32> = (0..16_000)
            .map(|i| 0.5 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 16000.0).sin() as f32)
            .collect();
        let s = acoustic_stats(&x);
        assert!(close(s.rms_db, -9.0309, 1e-3), "{}", s.rms_db);
        assert_eq!(s.clipping_ratio, 0.0);
        // 16 samples per period; exact zeros at i % 8 == 0 (sin(k·π)) in f32 are tiny, not 0, so 2 changes per period
        assert!(close(s.zero_crossing_rate, 2000.0 / 16000.0, 2.0 / 16000.0), "{}", s.zero_crossing_rate);
        // 400 samples = 25 whole periods: every frame has energy 0.125 -> snr ≈ 0
        assert!(close(s.snr_db, 0.0, 1e-6), "{}", s.snr_db);
        assert!(!s.is_mostly_silence && !s.is_high_zcr);
    }

    #[test]
    fn silence() {
        let s = acoustic_stats(&vec![0.0f32; 8000]);
        assert_eq!(s.rms_db, -160.0); // 20·log10(1e-8)
        assert_eq!(s.silence_ratio, 1.0);
        assert_eq!(s.zero_crossing_rate, 0.0);
        // mean 0 / (0 + 1e-8) -> log10(0) = -inf, as in Python
        assert_eq!(s.snr_db, f64::NEG_INFINITY);
        assert!(close(s.energy_variance, 0.0, 1e-20)); // all log10(1e-8) = -8
        assert!(s.is_too_quiet && s.is_mostly_silence && !s.is_too_short);
    }

    /// 10 % of the samples at ±1.0, the rest at 0.5: clipping ratio 0.1, flag set.
    #[test]
    fn known_clipped_fraction() {
        let x: Vec<f32> = (0..10_000).map(|i| if i % 10 == 0 { 1.0 } else { 0.5 }).collect();
        let s = acoustic_stats(&x);
        assert!(close(s.clipping_ratio, 0.1, 1e-12));
        assert!(s.is_heavily_clipped);
        // sign never changes
        assert_eq!(s.zero_crossing_rate, 0.0);
    }

    /// Shorter than 400 samples: per-sample energies for snr (mean / min), variance 0.
    #[test]
    fn shorter_than_one_frame() {
        let x = [0.5f32, -0.5, 0.25, 0.0];
        let s = acoustic_stats(&x);
        assert_eq!(s.duration_sec, 4.0 / 16000.0);
        // energies .25 .25 .0625 0 -> mean 0.140625, min 0
        assert!(close(s.snr_db, 10.0 * (0.140625f64 / 1e-8).log10(), 1e-9));
        assert_eq!(s.energy_variance, 0.0);
        // signs + - + 0 -> 3 changes / 4
        assert_eq!(s.zero_crossing_rate, 0.75);
        // |x| = 0 is below -60 dB
        assert_eq!(s.silence_ratio, 0.25);
        assert!(s.is_too_short);
    }

    /// Two energy levels: frames 0..9 at amplitude 0.1 (E=0.01), frames 10..19 at 1.0 (E=1).
    /// q10 over 20 values: pos 1.9 -> 0.01; mean 0.505 -> 10·log10(0.505/0.01000001).
    #[test]
    fn snr_uses_torch_quantile() {
        let mut x = vec![0.1f32; 4000];
        x.extend(vec![1.0f32; 4000]);
        let s = acoustic_stats(&x);
        let want = 10.0 * (0.505f64 / (0.01 + 1e-8)).log10();
        assert!(close(s.snr_db, want, 1e-4), "{} vs {want}", s.snr_db);
        assert!(close(quantile_linear(&[1.0, 2.0, 3.0, 4.0], 0.1), 1.3, 1e-12));
        // energy variance: 39 frames (hop 200); frames 0..18 fully low (log -2), frame 19 straddles, 20..38 high (0)
        // values: 19 × log10(0.01+1e-8), log10(0.505+1e-8), 19 × log10(1+1e-8) -> unbiased variance 1.0126821
        assert!(close(s.energy_variance, 1.012682094821618, 1e-6), "{}", s.energy_variance);
    }

    #[test]
    fn error_values() {
        let s = error_stats();
        assert!(s.had_error && s.rms_db == f64::NEG_INFINITY && s.silence_ratio == 1.0 && s.clipping_ratio == 0.0);
        assert!(s.zero_crossing_rate.is_nan() && s.snr_db.is_nan() && s.energy_variance.is_nan());
    }
}
