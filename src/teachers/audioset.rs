//! The 527 AudioSet classes and the Python project's mapping of them onto speech / music / noise
//! (`utils/audioset_mapping.py`): 41 speech, 158 music and 328 noise classes, pooled per bucket.

use std::str::FromStr;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::labels::Class;

/// Number of AudioSet classes (the logit vector length of AST, Whisper-AT, PANNs).
pub const N_AUDIOSET: usize = 527;

/// The AudioSet label list (`index,mid,display_name`), embedded. CC BY-SA 4.0, see `assets/audioset/README.md`.
pub const CLASS_LABELS_CSV: &str = include_str!("../../assets/audioset/class_labels_indices.csv");

/// One AudioSet class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioSetClass {
    pub index: usize,
    pub mid: String,
    pub name: String,
}

/// The 527 classes in logit order.
pub fn classes() -> &'static [AudioSetClass] {
    static CLASSES: OnceLock<Vec<AudioSetClass>> = OnceLock::new();
    CLASSES.get_or_init(|| parse_class_labels(CLASS_LABELS_CSV).expect("the embedded AudioSet label list is valid"))
}

/// Parse a `class_labels_indices.csv`; the indices must be 0..527 in order.
pub fn parse_class_labels(text: &str) -> Result<Vec<AudioSetClass>, String> {
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let mut out = Vec::with_capacity(N_AUDIOSET);
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| format!("class list line {}: {e}", i + 2))?;
        if rec.len() != 3 {
            return Err(format!("class list line {}: expected 3 columns, found {}", i + 2, rec.len()));
        }
        let index: usize = rec[0].trim().parse().map_err(|_| format!("class list line {}: bad index", i + 2))?;
        if index != i {
            return Err(format!("class list line {}: index {index}, expected {i}", i + 2));
        }
        out.push(AudioSetClass { index, mid: rec[1].to_string(), name: rec[2].to_string() });
    }
    if out.len() != N_AUDIOSET {
        return Err(format!("class list has {} classes, expected {N_AUDIOSET}", out.len()));
    }
    Ok(out)
}

/// The bucket of an AudioSet class in the Python project's mapping.
pub fn bucket_of(index: usize) -> Class {
    match index {
        0..=26 | 38 | 39 | 41..=50 | 58 | 59 => Class::Speech,
        27..=37 | 40 | 137..=282 => Class::Music,
        _ => Class::Noise,
    }
}

/// The indices of each bucket, `[speech, music, noise]`, in increasing order.
pub fn bucket_indices() -> &'static [Vec<usize>; 3] {
    static B: OnceLock<[Vec<usize>; 3]> = OnceLock::new();
    B.get_or_init(|| {
        let mut b: [Vec<usize>; 3] = Default::default();
        for i in 0..N_AUDIOSET {
            b[bucket_of(i).index()].push(i);
        }
        b
    })
}

/// How the logits of a bucket become one score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// `1 − ∏(1 − sigmoid(logit))` over the bucket (the Python default, `AST_POOLING`).
    #[default]
    NoisyOr,
    /// `sigmoid(max logit)`.
    Max,
    /// `sigmoid(mean of the logits)` — the mean of logits, not of probabilities.
    Mean,
}

impl Pooling {
    pub fn as_str(self) -> &'static str {
        match self {
            Pooling::NoisyOr => "noisy_or",
            Pooling::Max => "max",
            Pooling::Mean => "mean",
        }
    }
}

impl FromStr for Pooling {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "noisy_or" | "noisy-or" | "noisyor" => Ok(Pooling::NoisyOr),
            "max" => Ok(Pooling::Max),
            "mean" => Ok(Pooling::Mean),
            o => Err(format!("unknown pooling '{o}' (expected noisy_or, max or mean)")),
        }
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Collapse one 527-logit vector into `[speech, music, noise]` scores in [0, 1].
/// Computed in f64; noisy-OR accumulates `log(1 − p)` so that hundreds of small probabilities do not
/// lose precision.
pub fn collapse_logits(logits: &[f32], pooling: Pooling) -> Result<[f32; 3], String> {
    if logits.len() != N_AUDIOSET {
        return Err(format!("expected {N_AUDIOSET} AudioSet logits, got {}", logits.len()));
    }
    let mut out = [0f32; 3];
    for (c, idx) in bucket_indices().iter().enumerate() {
        let v = match pooling {
            Pooling::NoisyOr => {
                // 1 - prod(1 - p) with 1 - sigmoid(x) = sigmoid(-x); log sigmoid(-x) = -softplus(x).
                let log_none: f64 = idx.iter().map(|&i| -softplus(logits[i] as f64)).sum();
                -log_none.exp_m1()
            }
            Pooling::Max => sigmoid(idx.iter().map(|&i| logits[i] as f64).fold(f64::NEG_INFINITY, f64::max)),
            Pooling::Mean => sigmoid(idx.iter().map(|&i| logits[i] as f64).sum::<f64>() / idx.len() as f64),
        };
        out[c] = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) as f32 };
    }
    Ok(out)
}

fn softplus(x: f64) -> f64 {
    // log(1 + e^x), stable for large |x|.
    if x > 0.0 { x + (-x).exp().ln_1p() } else { x.exp().ln_1p() }
}

/// `collapse_audioset_logits` of the Python project: a batch `[B, 527]` → `[B, 3]`.
pub fn collapse_audioset_logits(batch: &[Vec<f32>], pooling: Pooling) -> Result<Vec<[f32; 3]>, String> {
    batch.iter().map(|l| collapse_logits(l, pooling)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_list_is_complete() {
        let c = classes();
        assert_eq!(c.len(), 527);
        assert_eq!(c[0].name, "Speech");
        assert_eq!(c[0].mid, "/m/09x0r");
        assert_eq!(c[137].name, "Music");
        assert_eq!(c[500].name, "Silence");
        assert_eq!(c[525].name, "Radio");
    }

    #[test]
    fn bucket_counts_match_python() {
        let b = bucket_indices();
        assert_eq!(b[0].len(), 41);
        assert_eq!(b[1].len(), 158);
        assert_eq!(b[2].len(), 328);
        let names = |ix: &[usize]| ix.iter().map(|&i| classes()[i].name.clone()).collect::<Vec<_>>();
        let speech = names(&b[0]);
        assert!(speech.contains(&"Groan".to_string()) && speech.contains(&"Hiccup".to_string()));
        let music = names(&b[1]);
        assert!(music.contains(&"Whistling".to_string()) && music.contains(&"Scary music".to_string()));
        assert!(music.contains(&"Singing".to_string()) && music.contains(&"Beatboxing".to_string()));
        assert_eq!(bucket_of(500), Class::Noise); // Silence
        assert_eq!(bucket_of(68), Class::Noise); // Chatter
        assert_eq!(bucket_of(283), Class::Noise);
        assert_eq!(bucket_of(282), Class::Music);
    }

    /// Logits that are 0 everywhere except a few chosen ones, so the pooled values can be worked out by hand.
    fn logits_with(set: &[(usize, f32)], rest: f32) -> Vec<f32> {
        let mut l = vec![rest; N_AUDIOSET];
        for &(i, v) in set {
            l[i] = v;
        }
        l
    }

    #[test]
    fn noisy_or_by_hand() {
        // Everything very negative (p ≈ 0) except speech 0 at logit 0 (p = 0.5) and speech 1 at ln 3 (p = 0.75):
        // speech = 1 - 0.5 * 0.25 = 0.875. Music: one class at p = 0.5 → 0.5. Noise: none → ≈ 0.
        let l = logits_with(&[(0, 0.0), (1, 3f32.ln()), (137, 0.0)], -40.0);
        let s = collapse_logits(&l, Pooling::NoisyOr).unwrap();
        assert!((s[0] - 0.875).abs() < 1e-6, "{s:?}");
        assert!((s[1] - 0.5).abs() < 1e-6, "{s:?}");
        assert!(s[2] < 1e-12);
        // All 328 noise classes at p = 0.01: 1 - 0.99^328 = 0.96306...
        let p_logit = (0.01f64 / 0.99).ln() as f32;
        let l = logits_with(&[], p_logit);
        let s = collapse_logits(&l, Pooling::NoisyOr).unwrap();
        let expect = 1.0 - 0.99f64.powi(328);
        assert!((s[2] as f64 - expect).abs() < 1e-5, "{} vs {expect}", s[2]);
        assert!((s[0] as f64 - (1.0 - 0.99f64.powi(41))).abs() < 1e-5);
    }

    #[test]
    fn max_and_mean_by_hand() {
        let l = logits_with(&[(0, 2.0), (5, -1.0), (137, 1.0)], -3.0);
        let s = collapse_logits(&l, Pooling::Max).unwrap();
        assert!((s[0] as f64 - sigmoid(2.0)).abs() < 1e-6);
        assert!((s[1] as f64 - sigmoid(1.0)).abs() < 1e-6);
        assert!((s[2] as f64 - sigmoid(-3.0)).abs() < 1e-6);
        let s = collapse_logits(&l, Pooling::Mean).unwrap();
        // speech: (2 + -1 + 39 * -3) / 41 = -116 / 41
        assert!((s[0] as f64 - sigmoid(-116.0 / 41.0)).abs() < 1e-6);
        // music: (1 + 157 * -3) / 158 = -470 / 158
        assert!((s[1] as f64 - sigmoid(-470.0 / 158.0)).abs() < 1e-6);
        assert!((s[2] as f64 - sigmoid(-3.0)).abs() < 1e-6);
    }

    #[test]
    fn wrong_length_is_an_error() {
        assert!(collapse_logits(&[0.0; 10], Pooling::NoisyOr).is_err());
        assert_eq!(collapse_audioset_logits(&[vec![0.0; 527]], Pooling::Mean).unwrap().len(), 1);
        assert_eq!("noisy-or".parse::<Pooling>().unwrap(), Pooling::NoisyOr);
        assert!("median".parse::<Pooling>().is_err());
    }
}
