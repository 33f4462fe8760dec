//! The live-threshold core for one (teacher run, class): what the TUI slider renders.
//!
//! Gold scores are sorted once, with a prefix count of positives, and unlabeled scores are
//! sorted once; moving the threshold is then two binary searches (O(log n)), never a scan.
//! The PR curve is precomputed. The "flips" of a move are exactly the gold segments whose
//! scores lie between the old and the new threshold (a contiguous run of the sorted array).

use serde::Serialize;

use super::calibrate::{self, Calibration, Method, PrPoint};
use crate::labels::Class;

/// Metrics at the current threshold (`score ≥ threshold` is positive).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LiveMetrics {
    pub threshold: f64,
    pub tp: u64,
    pub fp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    pub tn: u64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Predicted positives among gold segments (TP + FP).
    pub gold_predicted: u64,
    pub gold_n: u64,
    /// Predicted positives among unlabeled segments.
    pub unlabeled_predicted: u64,
    pub unlabeled_n: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlipKind {
    /// A gold negative now predicted positive.
    BecameFp,
    /// A gold positive no longer predicted.
    BecameFn,
    /// A gold negative no longer predicted (was a false positive).
    NoLongerFp,
    /// A gold positive now predicted (was a false negative).
    NoLongerFn,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Flip {
    pub segment_id: i64,
    pub score: f64,
    pub kind: FlipKind,
}

/// One class of one teacher run, ready for interactive threshold moves.
#[derive(Debug, Clone)]
pub struct ClassExplorer {
    pub class: Class,
    gold_scores: Vec<f64>, // ascending
    gold_pos: Vec<bool>,
    gold_ids: Vec<i64>,
    pos_prefix: Vec<u32>, // positives among the first i sorted gold items
    unlabeled: Vec<f64>,  // ascending
    curve: Vec<PrPoint>,  // ascending thresholds
    range: (f64, f64),
    threshold: f64,
    metrics: LiveMetrics,
    /// The last move's flips as a range of the sorted gold arrays, and whether it raised the
    /// threshold: kept as a range so a move stays O(log n) however many segments it flips.
    flip_range: (usize, usize, bool),
}

impl ClassExplorer {
    /// `gold`: `(segment_id, score, gold_positive)`; `unlabeled`: scores of segments without gold.
    pub fn new(class: Class, gold: &[(i64, f64, bool)], unlabeled: &[f64], threshold: f64) -> Self {
        let mut g: Vec<(i64, f64, bool)> = gold.iter().copied().filter(|x| x.1.is_finite()).collect();
        g.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        let gold_scores: Vec<f64> = g.iter().map(|x| x.1).collect();
        let gold_pos: Vec<bool> = g.iter().map(|x| x.2).collect();
        let gold_ids: Vec<i64> = g.iter().map(|x| x.0).collect();
        let mut pos_prefix = Vec::with_capacity(g.len() + 1);
        pos_prefix.push(0u32);
        for &p in &gold_pos {
            let last = *pos_prefix.last().unwrap_or(&0);
            pos_prefix.push(last + p as u32);
        }
        let mut unl: Vec<f64> = unlabeled.iter().copied().filter(|x| x.is_finite()).collect();
        unl.sort_by(f64::total_cmp);
        let desc: Vec<(f64, bool)> = g.iter().rev().map(|x| (x.1, x.2)).collect();
        let curve = calibrate::pr_curve_desc(&desc);
        let mut lo: f64 = 0.0;
        let mut hi: f64 = 1.0;
        for s in [gold_scores.first(), gold_scores.last(), unl.first(), unl.last()].into_iter().flatten() {
            lo = lo.min(*s);
            hi = hi.max(*s);
        }
        let mut e = ClassExplorer {
            class,
            gold_scores,
            gold_pos,
            gold_ids,
            pos_prefix,
            unlabeled: unl,
            curve,
            range: (lo, hi),
            threshold,
            metrics: LiveMetrics {
                threshold,
                tp: 0,
                fp: 0,
                fn_: 0,
                tn: 0,
                precision: 0.0,
                recall: 0.0,
                f1: 0.0,
                gold_predicted: 0,
                gold_n: 0,
                unlabeled_predicted: 0,
                unlabeled_n: 0,
            },
            flip_range: (0, 0, false),
        };
        e.metrics = e.metrics_at(threshold);
        e
    }

    fn split_gold(&self, t: f64) -> usize {
        self.gold_scores.partition_point(|&s| s < t)
    }

    /// Metrics at any threshold in O(log n), without changing the current one.
    pub fn metrics_at(&self, t: f64) -> LiveMetrics {
        let n = self.gold_scores.len();
        let idx = self.split_gold(t);
        let positives = self.pos_prefix[n] as u64;
        let fn_ = self.pos_prefix[idx] as u64;
        let tp = positives - fn_;
        let gold_predicted = (n - idx) as u64;
        let fp = gold_predicted - tp;
        let tn = idx as u64 - fn_;
        let p = calibrate::point(t, tp, fp, positives);
        let unl_idx = self.unlabeled.partition_point(|&s| s < t);
        LiveMetrics {
            threshold: t,
            tp,
            fp,
            fn_,
            tn,
            precision: p.precision,
            recall: p.recall,
            f1: p.f1,
            gold_predicted,
            gold_n: n as u64,
            unlabeled_predicted: (self.unlabeled.len() - unl_idx) as u64,
            unlabeled_n: self.unlabeled.len() as u64,
        }
    }

    /// Move the threshold; recomputes the metrics and the flips of this move.
    pub fn set_threshold(&mut self, t: f64) -> &LiveMetrics {
        if !t.is_finite() {
            return &self.metrics;
        }
        let t = t.clamp(self.range.0, self.range.1);
        let (old, new) = (self.split_gold(self.threshold), self.split_gold(t));
        let raised = new > old;
        self.flip_range = if raised { (old, new, true) } else { (new, old, false) };
        self.threshold = t;
        self.metrics = self.metrics_at(t);
        &self.metrics
    }

    /// Move by `steps` fine (1 % of the score range) or coarse (5 %) steps.
    pub fn nudge(&mut self, steps: i32, coarse: bool) -> &LiveMetrics {
        let unit = (self.range.1 - self.range.0) * if coarse { 0.05 } else { 0.01 };
        // Round to 1e-9 so repeated steps do not accumulate float noise (0.1 + 0.01 + ...).
        let t = ((self.threshold + steps as f64 * unit) * 1e9).round() / 1e9;
        self.set_threshold(t)
    }

    pub fn threshold(&self) -> f64 {
        self.threshold
    }
    pub fn metrics(&self) -> &LiveMetrics {
        &self.metrics
    }
    /// The gold segments that changed state with the last move, in ascending score order
    /// (produced lazily: a view shows the first screenful without touching the rest).
    pub fn flips(&self) -> impl ExactSizeIterator<Item = Flip> + '_ {
        let (a, b, raised) = self.flip_range;
        (a..b).map(move |i| {
            let kind = match (raised, self.gold_pos[i]) {
                (true, true) => FlipKind::BecameFn,
                (true, false) => FlipKind::NoLongerFp,
                (false, true) => FlipKind::NoLongerFn,
                (false, false) => FlipKind::BecameFp,
            };
            Flip { segment_id: self.gold_ids[i], score: self.gold_scores[i], kind }
        })
    }
    /// How many gold segments the last move flipped.
    pub fn flip_count(&self) -> usize {
        self.flip_range.1 - self.flip_range.0
    }
    /// The precomputed PR curve (ascending thresholds).
    pub fn curve(&self) -> &[PrPoint] {
        &self.curve
    }
    /// Index into [`curve`](Self::curve) of the point the current threshold sits on (the lowest
    /// curve threshold ≥ the current one); `None` above every gold score.
    pub fn curve_index(&self) -> Option<usize> {
        let i = self.curve.partition_point(|p| p.threshold < self.threshold);
        (i < self.curve.len()).then_some(i)
    }
    /// The slider's range: the scores' span, at least `[0, 1]`.
    pub fn range(&self) -> (f64, f64) {
        self.range
    }

    /// Run a calibration on this explorer's data (gold for target precision / F1, unlabeled
    /// scores for the quantile) and, if it reaches its goal, move the threshold there.
    pub fn calibrate(&mut self, method: Method, target: f64) -> Calibration {
        let c = match method {
            Method::TargetPrecision => {
                calibrate::target_precision_on_curve(&self.curve, self.gold_scores.len(), target)
            }
            Method::F1Optimal => calibrate::f1_optimal_on_curve(&self.curve, self.gold_scores.len()),
            Method::Quantile => calibrate::quantile_of_sorted(&self.unlabeled, target),
        };
        if let Some(t) = c.threshold {
            self.set_threshold(t);
        }
        c
    }

    /// The naive reference the benchmark compares with: a full rescan of every score.
    pub fn metrics_by_scan(&self, t: f64) -> LiveMetrics {
        let (mut tp, mut fp, mut fn_, mut tn) = (0u64, 0u64, 0u64, 0u64);
        for (s, &p) in self.gold_scores.iter().zip(&self.gold_pos) {
            match (*s >= t, p) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, true) => fn_ += 1,
                (false, false) => tn += 1,
            }
        }
        let unlabeled_predicted = self.unlabeled.iter().filter(|&&s| s >= t).count() as u64;
        let p = calibrate::point(t, tp, fp, tp + fn_);
        LiveMetrics {
            threshold: t,
            tp,
            fp,
            fn_,
            tn,
            precision: p.precision,
            recall: p.recall,
            f1: p.f1,
            gold_predicted: tp + fp,
            gold_n: self.gold_scores.len() as u64,
            unlabeled_predicted,
            unlabeled_n: self.unlabeled.len() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ClassExplorer {
        // gold (id, score, positive): 1 .9+  2 .8−  3 .6+  4 .4+  5 .1−; unlabeled .2 .5 .7 .95
        let gold = [(1, 0.9, true), (2, 0.8, false), (3, 0.6, true), (4, 0.4, true), (5, 0.1, false)];
        ClassExplorer::new(Class::Speech, &gold, &[0.2, 0.5, 0.7, 0.95], 0.5)
    }

    #[test]
    fn metrics_follow_the_threshold() {
        let mut e = sample();
        // t = 0.5: predicted {.9+, .8−, .6+} → TP 2 FP 1 FN 1 TN 1; P 2/3 R 2/3 F1 2/3
        //   unlabeled ≥ .5: .5 .7 .95 → 3
        let m = *e.metrics();
        assert_eq!((m.tp, m.fp, m.fn_, m.tn), (2, 1, 1, 1));
        assert!((m.f1 - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!((m.gold_predicted, m.unlabeled_predicted), (3, 3));
        // t = 0.3: adds .4+ → TP 3 FP 1 FN 0 → F1 6/7; unlabeled ≥ .3 → 3
        let m = *e.set_threshold(0.3);
        assert_eq!((m.tp, m.fp, m.fn_), (3, 1, 0));
        assert!((m.f1 - 6.0 / 7.0).abs() < 1e-12);
        assert_eq!(e.flips().collect::<Vec<_>>(), vec![Flip { segment_id: 4, score: 0.4, kind: FlipKind::NoLongerFn }]);
        // t = 0.85: drops .8−, .6+, .4+ → flips in score order
        e.set_threshold(0.85);
        let kinds: Vec<(i64, FlipKind)> = e.flips().map(|f| (f.segment_id, f.kind)).collect();
        assert_eq!(kinds, vec![(4, FlipKind::BecameFn), (3, FlipKind::BecameFn), (2, FlipKind::NoLongerFp)]);
        // back down to 0.05: everything predicted; 5 becomes FP
        e.set_threshold(0.05);
        assert!(e.flips().any(|f| f.segment_id == 5 && f.kind == FlipKind::BecameFp));
        assert_eq!(e.metrics().unlabeled_predicted, 4);
    }

    #[test]
    fn binary_search_agrees_with_a_full_scan() {
        let e = sample();
        for i in 0..=110 {
            let t = i as f64 / 100.0;
            assert_eq!(e.metrics_at(t), e.metrics_by_scan(t), "t = {t}");
        }
    }

    #[test]
    fn curve_point_and_calibrate_actions() {
        let mut e = sample();
        // Curve thresholds .1 .4 .6 .8 .9; t = .5 sits on the .6 point.
        assert_eq!(e.curve().len(), 5);
        assert_eq!(e.curve()[e.curve_index().unwrap()].threshold, 0.6);
        let c = e.calibrate(Method::F1Optimal, 0.0);
        assert_eq!(c.threshold, Some(0.4));
        assert_eq!(e.threshold(), 0.4);
        // Unreachable target leaves the threshold where it was.
        let c = e.calibrate(Method::TargetPrecision, 1.01);
        assert!(!c.reached());
        assert_eq!(e.threshold(), 0.4);
        // Quantile 0.5 of unlabeled .2 .5 .7 .95 → (.5 + .7) / 2 = .6
        let c = e.calibrate(Method::Quantile, 0.5);
        assert!((c.threshold.unwrap() - 0.6).abs() < 1e-12);
        // Fine steps move 1 % of the [0, 1] range.
        let before = e.threshold();
        e.nudge(1, false);
        assert!((e.threshold() - before - 0.01).abs() < 1e-9);
        e.nudge(-100, true);
        assert_eq!(e.threshold(), 0.0, "clamped to the range");
    }
}
