//! Classification metrics with scikit-learn's conventions (`zero_division=0`): per-class
//! precision / recall / F1, macro F1, per-class 2×2 confusion, the 8×8 confusion matrix over
//! label combinations, Cohen's kappa, and seeded percentile-bootstrap 95 % intervals.

use serde::Serialize;

use crate::labels::{CLASSES, Class, LabelSet};

/// A 2×2 confusion for one class. Precision, recall and F1 follow sklearn with
/// `zero_division=0`: a ratio whose denominator is 0 is 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Confusion2 {
    pub tp: u64,
    pub fp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    pub tn: u64,
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 { 0.0 } else { num as f64 / den as f64 }
}

impl Confusion2 {
    pub fn from_pairs(gold: impl IntoIterator<Item = (bool, bool)>) -> Self {
        let mut c = Confusion2::default();
        for (g, p) in gold {
            c.add(g, p);
        }
        c
    }
    pub fn add(&mut self, gold: bool, pred: bool) {
        match (gold, pred) {
            (true, true) => self.tp += 1,
            (false, true) => self.fp += 1,
            (true, false) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }
    pub fn n(&self) -> u64 {
        self.tp + self.fp + self.fn_ + self.tn
    }
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    /// F1 = 2TP / (2TP + FP + FN), 0 when that denominator is 0 (sklearn `zero_division=0`).
    pub fn f1(&self) -> f64 {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }
}

/// Per-class confusions of multi-hot labels.
pub fn per_class(gold: &[LabelSet], pred: &[LabelSet]) -> [Confusion2; 3] {
    let mut out = [Confusion2::default(); 3];
    for (g, p) in gold.iter().zip(pred) {
        for c in CLASSES {
            out[c.index()].add(g.get(c), p.get(c));
        }
    }
    out
}

/// Macro F1: the unweighted mean of the three per-class F1 scores (sklearn `average="macro"`).
pub fn macro_f1(conf: &[Confusion2; 3]) -> f64 {
    conf.iter().map(Confusion2::f1).sum::<f64>() / 3.0
}

/// The 8×8 confusion matrix over label combinations: `m[gold.bits()][pred.bits()]`
/// (bit 0 speech, bit 1 music, bit 2 noise; see [`LabelSet::bits`]).
pub fn combination_matrix(gold: &[LabelSet], pred: &[LabelSet]) -> [[u64; 8]; 8] {
    let mut m = [[0u64; 8]; 8];
    for (g, p) in gold.iter().zip(pred) {
        m[g.bits() as usize][p.bits() as usize] += 1;
    }
    m
}

/// Cohen's kappa of two binary raters, `(p_o − p_e) / (1 − p_e)`, as sklearn's
/// `cohen_kappa_score`. `None` when it is undefined (no items, or `p_e = 1`: both raters gave
/// the same single value to every item, where sklearn returns NaN).
pub fn cohen_kappa(a: &[bool], b: &[bool]) -> Option<f64> {
    let n = a.len().min(b.len());
    if n == 0 {
        return None;
    }
    let (mut agree, mut a1, mut b1) = (0usize, 0usize, 0usize);
    for i in 0..n {
        agree += (a[i] == b[i]) as usize;
        a1 += a[i] as usize;
        b1 += b[i] as usize;
    }
    let nf = n as f64;
    let po = agree as f64 / nf;
    let (pa, pb) = (a1 as f64 / nf, b1 as f64 / nf);
    let pe = pa * pb + (1.0 - pa) * (1.0 - pb);
    if (1.0 - pe).abs() < 1e-12 {
        return None;
    }
    Some((po - pe) / (1.0 - pe))
}

/// numpy's default (`method="linear"`) quantile of an ascending slice: `q` in `[0, 1]`.
/// `None` for an empty slice.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let q = q.clamp(0.0, 1.0);
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    Some(sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo]))
}

/// Bootstrap resampling draws from SplitMix64 so intervals are reproducible from a seed on every
/// platform.
pub use crate::rng::SplitMix64;

/// A point estimate with its percentile-bootstrap 95 % interval (absent without resampling).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub value: f64,
    pub lo: Option<f64>,
    pub hi: Option<f64>,
}

impl Estimate {
    pub fn point(value: f64) -> Self {
        Estimate { value, lo: None, hi: None }
    }
    /// `0.912 [0.871, 0.950]` or `0.912` without an interval.
    pub fn fmt3(&self) -> String {
        match (self.lo, self.hi) {
            (Some(lo), Some(hi)) => format!("{:.3} [{lo:.3}, {hi:.3}]", self.value),
            _ => format!("{:.3}", self.value),
        }
    }
}

/// Metrics of one class.
#[derive(Debug, Clone, Serialize)]
pub struct ClassReport {
    pub class: Class,
    pub confusion: Confusion2,
    pub precision: Estimate,
    pub recall: Estimate,
    pub f1: Estimate,
}

/// Everything `dams eval` reports for one (teacher, level).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub n: usize,
    pub classes: Vec<ClassReport>,
    pub macro_f1: Estimate,
    /// `combinations[gold_bits][pred_bits]`.
    pub combinations: [[u64; 8]; 8],
    /// Bootstrap resamples used for the intervals (0 = none).
    pub bootstrap: usize,
    pub seed: u64,
}

/// The 10 statistics bootstrapped together: P, R, F1 per class and macro F1.
fn stats(conf: &[Confusion2; 3]) -> [f64; 10] {
    let mut s = [0.0; 10];
    for (i, c) in conf.iter().enumerate() {
        s[3 * i] = c.precision();
        s[3 * i + 1] = c.recall();
        s[3 * i + 2] = c.f1();
    }
    s[9] = macro_f1(conf);
    s
}

/// Evaluate predictions against gold; with `bootstrap > 0`, add percentile 95 % intervals from
/// `bootstrap` resamples of the items with replacement, drawn from a SplitMix64 seeded with `seed`
/// (the same inputs and seed give the same intervals). The interval bounds are numpy-linear
/// 2.5 % and 97.5 % quantiles of the resampled statistics.
pub fn evaluate(gold: &[LabelSet], pred: &[LabelSet], bootstrap: usize, seed: u64) -> Report {
    let n = gold.len().min(pred.len());
    let (gold, pred) = (&gold[..n], &pred[..n]);
    let conf = per_class(gold, pred);
    let point = stats(&conf);
    let mut lo = [None; 10];
    let mut hi = [None; 10];
    if bootstrap > 0 && n > 0 {
        let mut rng = SplitMix64::new(seed);
        let mut samples: Vec<Vec<f64>> = (0..10).map(|_| Vec::with_capacity(bootstrap)).collect();
        for _ in 0..bootstrap {
            let mut c = [Confusion2::default(); 3];
            for _ in 0..n {
                let i = rng.below(n);
                for cl in CLASSES {
                    c[cl.index()].add(gold[i].get(cl), pred[i].get(cl));
                }
            }
            for (k, v) in stats(&c).into_iter().enumerate() {
                samples[k].push(v);
            }
        }
        for k in 0..10 {
            samples[k].sort_by(f64::total_cmp);
            lo[k] = quantile_sorted(&samples[k], 0.025);
            hi[k] = quantile_sorted(&samples[k], 0.975);
        }
    }
    let est = |k: usize| Estimate { value: point[k], lo: lo[k], hi: hi[k] };
    let classes = CLASSES
        .iter()
        .map(|&c| {
            let i = c.index();
            ClassReport {
                class: c,
                confusion: conf[i],
                precision: est(3 * i),
                recall: est(3 * i + 1),
                f1: est(3 * i + 2),
            }
        })
        .collect();
    Report {
        n,
        classes,
        macro_f1: est(9),
        combinations: combination_matrix(gold, pred),
        bootstrap: if n > 0 { bootstrap } else { 0 },
        seed,
    }
}

/// One scored, possibly gold-labelled segment, as the evaluation sees it.
#[derive(Debug, Clone)]
pub struct Item {
    pub segment_id: i64,
    /// Grouping key for file-level evaluation (the raw file; the segment path if it has none).
    pub file: String,
    pub gold: LabelSet,
    pub scores: [f64; 3],
}

/// Raw-file-level aggregation of overlapping windows: a class is on in a file's gold if it is
/// on in ANY of its windows (logical OR), and a file's score is the MAX of its windows' scores,
/// so `max ≥ t` ⇔ some window predicted the class — the same OR rule applied to predictions.
/// Files come out in order of first appearance; `segment_id` is that of the first window.
pub fn aggregate_by_file(items: &[Item]) -> Vec<Item> {
    let mut out: Vec<Item> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for it in items {
        match index.get(it.file.as_str()) {
            Some(&k) => {
                let o = &mut out[k];
                o.gold = LabelSet::from_bits(o.gold.bits() | it.gold.bits());
                for c in 0..3 {
                    o.scores[c] = o.scores[c].max(it.scores[c]);
                }
            }
            None => {
                index.insert(&it.file, out.len());
                out.push(it.clone());
            }
        }
    }
    out
}

/// Multi-hot predictions `score ≥ threshold` per class.
pub fn predict(scores: &[f64; 3], thresholds: &[f64; 3]) -> LabelSet {
    LabelSet::new(scores[0] >= thresholds[0], scores[1] >= thresholds[1], scores[2] >= thresholds[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ls(s: &str) -> LabelSet {
        LabelSet::new(s.contains('S'), s.contains('M'), s.contains('N'))
    }

    #[test]
    fn per_class_metrics_by_hand() {
        // speech: gold 1 1 1 0 0, pred 1 1 0 1 0 → TP 2, FN 1, FP 1, TN 1
        //   P = 2/3, R = 2/3, F1 = 4/6 = 0.6667
        // music:  gold 0 0 0 0 0, pred 0 0 0 0 0 → all zero-division → P = R = F1 = 0
        // noise:  gold 0 1 0 0 1, pred 0 1 1 1 1 → TP 2, FP 2 → P = 0.5, R = 1, F1 = 4/6
        let gold = [ls("S"), ls("SN"), ls("S"), ls(""), ls("N")];
        let pred = [ls("S"), ls("SN"), ls("N"), ls("SN"), ls("N")];
        let c = per_class(&gold, &pred);
        assert_eq!(c[0], Confusion2 { tp: 2, fp: 1, fn_: 1, tn: 1 });
        assert!((c[0].precision() - 2.0 / 3.0).abs() < 1e-12);
        assert!((c[0].recall() - 2.0 / 3.0).abs() < 1e-12);
        assert!((c[0].f1() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(c[1], Confusion2 { tp: 0, fp: 0, fn_: 0, tn: 5 });
        assert_eq!((c[1].precision(), c[1].recall(), c[1].f1()), (0.0, 0.0, 0.0));
        assert_eq!(c[2], Confusion2 { tp: 2, fp: 2, fn_: 0, tn: 1 });
        assert_eq!((c[2].precision(), c[2].recall()), (0.5, 1.0));
        assert!((c[2].f1() - 2.0 / 3.0).abs() < 1e-12);
        // macro F1 = (2/3 + 0 + 2/3) / 3 = 4/9
        assert!((macro_f1(&c) - 4.0 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn combination_matrix_by_hand() {
        // gold S (bits 1) predicted S once and SN (bits 5) once; gold "" (0) predicted M (2).
        let gold = [ls("S"), ls("S"), ls(""), ls("SM")];
        let pred = [ls("S"), ls("SN"), ls("M"), ls("SM")];
        let m = combination_matrix(&gold, &pred);
        assert_eq!(m[1][1], 1);
        assert_eq!(m[1][5], 1);
        assert_eq!(m[0][2], 1);
        assert_eq!(m[3][3], 1);
        assert_eq!(m.iter().flatten().sum::<u64>(), 4);
    }

    #[test]
    fn kappa_by_hand() {
        // a: 1 1 0 0 1 0, b: 1 0 0 0 1 1. agree on 4/6 → po = 2/3.
        // pa = 1/2, pb = 1/2 → pe = 1/4 + 1/4 = 1/2 → κ = (2/3 − 1/2) / (1/2) = 1/3.
        let a = [true, true, false, false, true, false];
        let b = [true, false, false, false, true, true];
        assert!((cohen_kappa(&a, &b).unwrap() - 1.0 / 3.0).abs() < 1e-12);
        // perfect agreement with both values present → 1
        assert_eq!(cohen_kappa(&a, &a), Some(1.0));
        // a: 1 1 1 0, b: 0 0 0 1: po = 0, pa = 3/4, pb = 1/4 → pe = 3/16 + 3/16 = 3/8
        //   κ = (0 − 3/8) / (5/8) = −0.6
        let a = [true, true, true, false];
        let b = [false, false, false, true];
        assert!((cohen_kappa(&a, &b).unwrap() + 0.6).abs() < 1e-12);
        // constant identical raters: p_e = 1, undefined (sklearn: NaN)
        assert_eq!(cohen_kappa(&[true, true], &[true, true]), None);
        assert_eq!(cohen_kappa(&[], &[]), None);
    }

    #[test]
    fn quantile_is_numpy_linear() {
        // np.quantile([1, 2, 3, 4], 0.9) = 3.7 (h = 3·0.9 = 2.7 → 3 + 0.7·(4 − 3))
        assert!((quantile_sorted(&[1.0, 2.0, 3.0, 4.0], 0.9).unwrap() - 3.7).abs() < 1e-12);
        // np.quantile([0.1, 0.5], 0.5) = 0.3
        assert!((quantile_sorted(&[0.1, 0.5], 0.5).unwrap() - 0.3).abs() < 1e-12);
        assert_eq!(quantile_sorted(&[2.0], 0.9), Some(2.0));
        assert_eq!(quantile_sorted(&[], 0.5), None);
    }

    #[test]
    fn bootstrap_is_deterministic_and_brackets_the_estimate() {
        let gold: Vec<LabelSet> = (0..60).map(|i| ls(if i % 3 == 0 { "S" } else { "M" })).collect();
        let pred: Vec<LabelSet> = (0..60)
            .map(|i| {
                ls(if i % 5 == 0 {
                    "M"
                } else if i % 3 == 0 {
                    "S"
                } else {
                    "M"
                })
            })
            .collect();
        let a = evaluate(&gold, &pred, 500, 7);
        let b = evaluate(&gold, &pred, 500, 7);
        let c = evaluate(&gold, &pred, 500, 8);
        for k in 0..3 {
            assert_eq!(a.classes[k].f1, b.classes[k].f1, "same seed, same interval");
        }
        assert_eq!(a.macro_f1, b.macro_f1);
        assert_ne!(a.classes[0].f1.lo, c.classes[0].f1.lo, "a different seed resamples differently");
        let f = a.classes[0].f1;
        let (lo, hi) = (f.lo.unwrap(), f.hi.unwrap());
        assert!(lo < f.value && f.value < hi, "{lo} < {} < {hi}", f.value);
        // No resampling → no interval.
        assert_eq!(evaluate(&gold, &pred, 0, 7).classes[0].f1.lo, None);
        // Empty input does not panic.
        assert_eq!(evaluate(&[], &[], 100, 1).n, 0);
    }

    #[test]
    fn file_level_aggregation_is_or_of_windows_and_max_of_scores() {
        let it = |id, file: &str, gold: &str, s: [f64; 3]| Item {
            segment_id: id,
            file: file.into(),
            gold: ls(gold),
            scores: s,
        };
        let items = [
            it(1, "a.wav", "S", [0.9, 0.1, 0.2]),
            it(2, "a.wav", "M", [0.3, 0.7, 0.1]),
            it(3, "b.wav", "", [0.2, 0.2, 0.6]),
        ];
        let f = aggregate_by_file(&items);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].gold, ls("SM"));
        assert_eq!(f[0].scores, [0.9, 0.7, 0.2]);
        assert_eq!(f[1].gold, ls(""));
        assert_eq!(predict(&f[0].scores, &[0.5, 0.5, 0.5]), ls("SM"));
    }
}
