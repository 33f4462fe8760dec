//! Threshold calibration per (teacher, class): target precision on gold, a quantile of the
//! scores of unlabeled segments, and F1-optimal on gold.
//!
//! Semantics follow scikit-learn's `precision_recall_curve`: the candidate thresholds are the
//! distinct scores, a segment is predicted positive when `score ≥ t`, and tied scores form one
//! step. Unlike the Python notebook (which slices `thr[:-1]` and so can never pick the highest
//! score and crashes when only that one qualifies), every distinct score is a candidate.

use serde::Serialize;

use super::metrics::quantile_sorted;

/// One point of the precision-recall curve: predicting `score ≥ threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PrPoint {
    pub threshold: f64,
    pub tp: u64,
    pub fp: u64,
    pub precision: f64,
    /// `tp / positives`, 0 when gold has no positives (`zero_division=0`).
    pub recall: f64,
    pub f1: f64,
}

/// The PR curve over the distinct scores, in increasing threshold order (so decreasing
/// recall). `items` are `(score, gold_positive)`; order does not matter.
pub fn pr_curve(items: &[(f64, bool)]) -> Vec<PrPoint> {
    let mut v: Vec<(f64, bool)> = items.to_vec();
    v.sort_by(|a, b| b.0.total_cmp(&a.0)); // descending
    pr_curve_desc(&v)
}

/// [`pr_curve`] of items already sorted by descending score.
pub fn pr_curve_desc(desc: &[(f64, bool)]) -> Vec<PrPoint> {
    let positives = desc.iter().filter(|x| x.1).count() as u64;
    let mut out = Vec::new();
    let (mut tp, mut fp) = (0u64, 0u64);
    let mut i = 0;
    while i < desc.len() {
        let t = desc[i].0;
        // one step per distinct score: take every tie at once
        while i < desc.len() && desc[i].0 == t {
            if desc[i].1 {
                tp += 1
            } else {
                fp += 1
            }
            i += 1;
        }
        out.push(point(t, tp, fp, positives));
    }
    out.reverse();
    out
}

pub(crate) fn point(threshold: f64, tp: u64, fp: u64, positives: u64) -> PrPoint {
    let precision = if tp + fp == 0 { 0.0 } else { tp as f64 / (tp + fp) as f64 };
    let recall = if positives == 0 { 0.0 } else { tp as f64 / positives as f64 };
    let f1 =
        if 2 * tp + fp + (positives - tp) == 0 { 0.0 } else { 2.0 * tp as f64 / (2 * tp + fp + positives - tp) as f64 };
    PrPoint { threshold, tp, fp, precision, recall, f1 }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    TargetPrecision,
    Quantile,
    F1Optimal,
}

impl Method {
    /// The name stored in `thresholds.method`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::TargetPrecision => "target_precision",
            Method::Quantile => "quantile",
            Method::F1Optimal => "f1_optimal",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "target-precision" | "precision" => Ok(Method::TargetPrecision),
            "quantile" => Ok(Method::Quantile),
            "f1" | "f1-optimal" => Ok(Method::F1Optimal),
            o => Err(format!("unknown calibration method '{o}' (expected target-precision, quantile or f1)")),
        }
    }
}

/// The outcome of one calibration. `threshold` is `None` when the goal cannot be reached;
/// `reason` then says why (the threshold must be left unset, not silently replaced).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    pub method: Method,
    /// Target precision, or the quantile `q`.
    pub target: Option<f64>,
    pub threshold: Option<f64>,
    /// The gold point at the chosen threshold (gold methods only).
    pub at: Option<PrPoint>,
    /// Gold segments used (gold methods) or unlabeled scores used (quantile).
    pub n: usize,
    /// Gold positives (gold methods).
    pub positives: usize,
    pub reason: Option<String>,
}

impl Calibration {
    pub fn reached(&self) -> bool {
        self.threshold.is_some()
    }
}

/// The lowest threshold whose precision on gold is `≥ target` (so the maximum recall among
/// qualifying thresholds). Precision is not monotone in the threshold: the first qualifying
/// step from the bottom is taken, exactly as the Python `find_threshold_for_precision`.
pub fn target_precision(items: &[(f64, bool)], target: f64) -> Calibration {
    target_precision_on_curve(&pr_curve(items), items.len(), target)
}

/// [`target_precision`] on a precomputed curve (ascending thresholds).
pub fn target_precision_on_curve(curve: &[PrPoint], n: usize, target: f64) -> Calibration {
    let positives = positives_of(curve);
    let mut c = Calibration {
        method: Method::TargetPrecision,
        target: Some(target),
        threshold: None,
        at: None,
        n,
        positives,
        reason: None,
    };
    if n == 0 {
        c.reason = Some("no gold-labelled segments with scores".into());
        return c;
    }
    match curve.iter().find(|p| p.precision >= target) {
        Some(p) => {
            c.threshold = Some(p.threshold);
            c.at = Some(*p);
        }
        None => {
            let best = curve.iter().map(|p| p.precision).fold(0.0, f64::max);
            c.reason = Some(format!(
                "unreachable: precision {target} is never reached on {n} gold segments ({positives} positive); \
                 the best is {best:.3}"
            ));
        }
    }
    c
}

fn positives_of(curve: &[PrPoint]) -> usize {
    // The lowest threshold predicts everything positive, so its tp is the positive count.
    curve.first().map(|p| p.tp as usize).unwrap_or(0)
}

/// The F1-maximising threshold on gold; among equal F1 the lowest threshold wins.
pub fn f1_optimal(items: &[(f64, bool)]) -> Calibration {
    f1_optimal_on_curve(&pr_curve(items), items.len())
}

/// [`f1_optimal`] on a precomputed curve (ascending thresholds).
pub fn f1_optimal_on_curve(curve: &[PrPoint], n: usize) -> Calibration {
    let positives = positives_of(curve);
    let mut c =
        Calibration { method: Method::F1Optimal, target: None, threshold: None, at: None, n, positives, reason: None };
    let mut best: Option<&PrPoint> = None;
    for p in curve {
        // strictly greater (beyond rounding): keeps the lowest threshold among ties
        if best.is_none_or(|b| p.f1 > b.f1 + 1e-12) {
            best = Some(p);
        }
    }
    match best {
        Some(p) if p.f1 > 0.0 => {
            c.threshold = Some(p.threshold);
            c.at = Some(*p);
        }
        _ if n == 0 => c.reason = Some("no gold-labelled segments with scores".into()),
        _ => c.reason = Some(format!("unreachable: no threshold gives F1 > 0 ({positives} gold positives of {n})")),
    }
    c
}

/// The `q` quantile (numpy linear interpolation) of the scores of unlabeled segments.
pub fn quantile(scores: &[f64], q: f64) -> Calibration {
    let mut v = scores.to_vec();
    v.sort_by(f64::total_cmp);
    quantile_of_sorted(&v, q)
}

/// [`quantile`] of scores already in ascending order.
pub fn quantile_of_sorted(sorted: &[f64], q: f64) -> Calibration {
    let mut c = Calibration {
        method: Method::Quantile,
        target: Some(q),
        threshold: None,
        at: None,
        n: sorted.len(),
        positives: 0,
        reason: None,
    };
    if !(0.0..=1.0).contains(&q) {
        c.reason = Some(format!("the quantile must lie in [0, 1], not {q}"));
        return c;
    }
    c.threshold = quantile_sorted(sorted, q);
    if c.threshold.is_none() {
        c.reason = Some("no unlabeled segments with scores".into());
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(v: &[(f64, u8)]) -> Vec<(f64, bool)> {
        v.iter().map(|&(s, g)| (s, g == 1)).collect()
    }

    #[test]
    fn pr_curve_groups_ties() {
        // scores 0.9(+) 0.8(+) 0.8(−) 0.3(−): thresholds 0.3, 0.8, 0.9
        //   t=0.9: TP1 FP0 → P 1,   R 1/2
        //   t=0.8: TP2 FP1 → P 2/3, R 1      (the tie 0.8 is one step)
        //   t=0.3: TP2 FP2 → P 1/2, R 1
        let c = pr_curve(&items(&[(0.8, 0), (0.3, 0), (0.9, 1), (0.8, 1)]));
        let th: Vec<f64> = c.iter().map(|p| p.threshold).collect();
        assert_eq!(th, vec![0.3, 0.8, 0.9]);
        assert_eq!((c[1].tp, c[1].fp), (2, 1));
        assert!((c[1].precision - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!((c[2].precision, c[2].recall), (1.0, 0.5));
    }

    #[test]
    fn target_precision_picks_lowest_qualifying_threshold() {
        // scores/gold: 0.95+ 0.9+ 0.8− 0.7+ 0.6+ 0.5− 0.4− 0.2+
        // thresholds ascending with (TP, FP, P):
        //   0.2 (5,3,.625) 0.4 (4,3,.571) 0.5 (4,2,.667) 0.6 (4,1,.8) 0.7 (3,1,.75)
        //   0.8 (2,1,.667) 0.9 (2,0,1) 0.95 (1,0,1)
        // target 0.8 → lowest with P ≥ 0.8 is 0.6 (R = 4/5); 0.7 has P .75 (non-monotone).
        let it = items(&[(0.95, 1), (0.9, 1), (0.8, 0), (0.7, 1), (0.6, 1), (0.5, 0), (0.4, 0), (0.2, 1)]);
        let c = target_precision(&it, 0.8);
        assert_eq!(c.threshold, Some(0.6));
        let at = c.at.unwrap();
        assert_eq!((at.tp, at.fp), (4, 1));
        assert!((at.recall - 0.8).abs() < 1e-12);
        assert_eq!((c.n, c.positives), (8, 5));
        // target 0.9 → 0.9 (P 1, R 2/5)
        assert_eq!(target_precision(&it, 0.9).threshold, Some(0.9));
    }

    #[test]
    fn target_precision_with_ties_on_the_boundary() {
        // 0.7+ 0.7− 0.7+ 0.5+ 0.5− : at 0.7 TP2 FP1 P=.667; at 0.5 TP3 FP2 P=.6.
        // Target 0.66: the tie at 0.7 is one step, so 0.7 qualifies (not "between" the tied items).
        let it = items(&[(0.7, 1), (0.7, 0), (0.7, 1), (0.5, 1), (0.5, 0)]);
        let c = target_precision(&it, 0.66);
        assert_eq!(c.threshold, Some(0.7));
        assert_eq!(c.at.unwrap().tp, 2);
        // Target 0.7: no step reaches it (0.667 and 0.6) → unreachable, threshold unset.
        let c = target_precision(&it, 0.7);
        assert_eq!(c.threshold, None);
        assert!(c.reason.unwrap().starts_with("unreachable"));
    }

    #[test]
    fn only_the_highest_threshold_qualifies() {
        // The Python notebook drops thr[-1] and raises IndexError here; we return 0.9.
        // 0.9+ (P 1) ; 0.5− → at 0.5 P = .5. Target 0.95 → 0.9.
        let it = items(&[(0.9, 1), (0.5, 0)]);
        assert_eq!(target_precision(&it, 0.95).threshold, Some(0.9));
    }

    #[test]
    fn unreachable_targets() {
        // No positives → precision 0 everywhere.
        let c = target_precision(&items(&[(0.9, 0), (0.1, 0)]), 0.5);
        assert!(!c.reached());
        // No gold at all.
        let c = target_precision(&[], 0.5);
        assert!(!c.reached());
        assert!(c.reason.unwrap().contains("no gold"));
    }

    #[test]
    fn f1_optimal_by_hand() {
        // 0.9+ 0.8− 0.6+ 0.4+ 0.1−  (P = 3 positives)
        //   t=0.9: TP1 FP0 FN2 → F1 2/5 = .4
        //   t=0.8: TP1 FP1 FN2 → 2/6 = .333
        //   t=0.6: TP2 FP1 FN1 → 4/6 = .667
        //   t=0.4: TP3 FP1 FN0 → 6/7 = .857  ← best
        //   t=0.1: TP3 FP2     → 6/8 = .75
        let it = items(&[(0.9, 1), (0.8, 0), (0.6, 1), (0.4, 1), (0.1, 0)]);
        let c = f1_optimal(&it);
        assert_eq!(c.threshold, Some(0.4));
        assert!((c.at.unwrap().f1 - 6.0 / 7.0).abs() < 1e-12);
        // Tied F1: 0.8+ 0.6− 0.5− 0.4+ (2 positives)
        //   t=.8 → 2/3 ; t=.6 → 2/4 ; t=.5 → 2/5 ; t=.4 TP2 FP2 → 4/6 = 2/3 ← tie
        //   with t=.8: the LOWEST threshold (0.4) wins.
        let c = f1_optimal(&items(&[(0.8, 1), (0.6, 0), (0.5, 0), (0.4, 1)]));
        assert_eq!(c.threshold, Some(0.4));
        // No positives → unreachable.
        assert!(!f1_optimal(&items(&[(0.5, 0)])).reached());
    }

    #[test]
    fn quantile_calibration() {
        // np.quantile([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], 0.9)
        //   h = 9·0.9 = 8.1 → 0.9 + 0.1·(1.0 − 0.9) = 0.91
        let s: Vec<f64> = (1..=10).rev().map(|i| i as f64 / 10.0).collect();
        let c = quantile(&s, 0.9);
        assert!((c.threshold.unwrap() - 0.91).abs() < 1e-12);
        assert_eq!(c.n, 10);
        assert!(!quantile(&[], 0.9).reached());
        assert!(!quantile(&s, 1.5).reached());
    }
}
