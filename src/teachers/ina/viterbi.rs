//! INA's smoothing: the Viterbi decoder inaSpeechSegmenter copies from pyannote (`pyannote_viterbi.py`, without
//! the unused minimum-duration / constraint options) and its two uses:
//!
//! * energy activity ([`energy_activity`]): per 10 ms frame, active when `loge > mean(finite loge) + ln(0.03)`;
//!   emissions `ln(1 − 1e−10)` / `ln(1e−10)`; transitions `[[−5, −150·ln 10], [−150·ln 10, 0]]` (staying inactive
//!   costs 5 nats per frame, switching 10⁻¹⁵⁰);
//! * class smoothing ([`smooth_classes`]): emissions `ln p` of the CNN's posteriors, transitions `−80·ln 10` off
//!   the diagonal and 0 on it.
//!
//! Both start from equal initial probabilities `ln(1/k)`. Ties resolve like numpy's `argmax` (first maximum).

/// Viterbi path of `emission` (`[T][K]` log-probabilities, row-major in `em`) under `transition` (`[K][K]`,
/// from × to, log-probabilities), equal initial probabilities. Empty input gives an empty path.
pub fn decode(em: &[f64], k: usize, transition: &[f64]) -> Vec<usize> {
    assert!(k > 0 && em.len().is_multiple_of(k) && transition.len() == k * k, "viterbi: inconsistent shapes");
    let t_len = em.len() / k;
    if t_len == 0 {
        return Vec::new();
    }
    let initial = (1.0 / k as f64).ln();
    let mut v: Vec<f64> = em[..k].iter().map(|e| e + initial).collect();
    let mut next = vec![0f64; k];
    let mut back = vec![0u32; t_len * k];
    for t in 1..t_len {
        for j in 0..k {
            // argmax over the previous state i of V[t-1, i] + T[i, j]; first maximum wins (NaN never occurs:
            // emissions are finite or −∞ and −∞ + finite stays −∞).
            let mut best = 0usize;
            let mut best_v = v[0] + transition[j];
            for i in 1..k {
                let c = v[i] + transition[i * k + j];
                if c > best_v {
                    best = i;
                    best_v = c;
                }
            }
            back[t * k + j] = best as u32;
            next[j] = em[t * k + j] + best_v;
        }
        std::mem::swap(&mut v, &mut next);
    }
    let mut path = vec![0usize; t_len];
    let mut last = 0usize;
    for i in 1..k {
        if v[i] > v[last] {
            last = i;
        }
    }
    path[t_len - 1] = last;
    for t in (1..t_len).rev() {
        path[t - 1] = back[t * k + path[t]] as usize;
    }
    path
}

/// INA's `energy_ratio` (`Segmenter(energy_ratio=0.03)`).
pub const ENERGY_RATIO: f64 = 0.03;

/// Energy-based activity per 10 ms frame (`_energy_activity`), before INA keeps every other frame.
pub fn energy_activity(loge: &[f32]) -> Vec<bool> {
    let finite: Vec<f64> = loge.iter().filter(|v| v.is_finite()).map(|&v| v as f64).collect();
    if finite.is_empty() {
        // numpy: the mean of nothing is NaN and `loge > NaN` is false everywhere.
        return vec![false; loge.len()];
    }
    // numpy's float32 mean, then promoted to f64 to add ln(ratio).
    let mean = (finite.iter().sum::<f64>() / finite.len() as f64) as f32;
    let threshold = mean as f64 + ENERGY_RATIO.ln();
    let eps = 1e-10f64;
    let (hi, lo) = ((1.0 - eps).ln(), eps.ln());
    let mut em = Vec::with_capacity(loge.len() * 2);
    for &l in loge {
        if l as f64 > threshold {
            em.extend_from_slice(&[lo, hi]);
        } else {
            em.extend_from_slice(&[hi, lo]);
        }
    }
    let cost = -150.0 * 10f64.ln();
    let trans = [-5.0, cost, cost, 0.0];
    decode(&em, 2, &trans).into_iter().map(|s| s == 1).collect()
}

/// The speech/music/noise model's `viterbi_arg`.
pub const CLASS_SWITCH_EXP: f64 = 80.0;

/// Smoothed class per patch for posteriors `p` (`[n][3]`) of one energetic stretch (`DnnSegmenter.__call__`): the
/// log of the f32 posteriors (as numpy takes it), decoded with `−80·ln 10` per class change.
pub fn smooth_classes(p: &[[f32; 3]]) -> Vec<usize> {
    let em: Vec<f64> = p.iter().flat_map(|r| r.iter().map(|&v| v.ln() as f64)).collect();
    let cost = -CLASS_SWITCH_EXP * 10f64.ln();
    let mut trans = [cost; 9];
    for i in 0..3 {
        trans[i * 3 + i] = 0.0;
    }
    decode(&em, 3, &trans)
}

/// Runs of equal values as `(value, start, stop)` (INA's `_binidx2seglist`).
pub fn runs<T: Copy + PartialEq>(v: &[T]) -> Vec<(T, usize, usize)> {
    let mut out: Vec<(T, usize, usize)> = Vec::new();
    for (i, &x) in v.iter().enumerate() {
        match out.last_mut() {
            Some(last) if last.0 == x => last.2 = i + 1,
            _ => out.push((x, i, i + 1)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_prefers_staying_unless_evidence_is_strong() {
        // Two states, switching costs 10 nats; a 1-frame blip of evidence (5 nats) is smoothed away, a long run is not.
        let trans = [0.0, -10.0, -10.0, 0.0];
        let mut em = Vec::new();
        for t in 0..20 {
            let one = t == 3 || (10..20).contains(&t);
            em.extend_from_slice(if one { &[-5.0, 0.0] } else { &[0.0, -5.0] });
        }
        let path = decode(&em, 2, &trans);
        assert_eq!(&path[..10], &[0; 10]);
        assert_eq!(&path[10..], &[1; 10]);
        assert!(decode(&[], 2, &trans).is_empty());
    }

    #[test]
    fn ties_take_the_first_state() {
        let trans = [0.0, -1.0, -1.0, 0.0];
        assert_eq!(decode(&[0.0, 0.0, 0.0, 0.0], 2, &trans), vec![0, 0]);
    }

    #[test]
    fn runs_and_energy() {
        assert_eq!(runs(&[1, 1, 2, 2, 2, 1]), vec![(1, 0, 2), (2, 2, 5), (1, 5, 6)]);
        assert!(runs::<u8>(&[]).is_empty());
        assert_eq!(energy_activity(&[f32::NEG_INFINITY; 4]), vec![false; 4]);
        // Loud frames in a quiet file are active; a long loud stretch stays active.
        let mut loge = vec![-20.0f32; 50];
        loge.extend(vec![0.0f32; 50]);
        let a = energy_activity(&loge);
        assert!(a[60..].iter().all(|&x| x) && a[..40].iter().all(|&x| !x));
    }
}
