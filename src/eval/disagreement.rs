//! The disagreement core: a queue of segments ordered by how much the teachers disagree
//! (vote entropy, score spread, or disagreement with gold where gold exists), filterable by
//! class and split, and the teacher-vs-teacher agreement matrix (Cohen's kappa) per class.

use std::collections::HashMap;

use serde::Serialize;

use super::SegInfo;
use super::metrics::cohen_kappa;
use crate::labels::{CLASSES, Class, LabelSet, Split};

/// One teacher's scores and thresholds (its votes are `score ≥ threshold`).
#[derive(Debug, Clone)]
pub struct TeacherVotes {
    pub teacher: String,
    pub run_id: i64,
    pub scores: HashMap<i64, [f64; 3]>,
    pub thresholds: [f64; 3],
}

impl TeacherVotes {
    pub fn vote(&self, segment_id: i64, c: Class) -> Option<bool> {
        self.scores.get(&segment_id).map(|s| s[c.index()] >= self.thresholds[c.index()])
    }
}

/// How the teachers disagree on one segment (only segments scored by at least two teachers).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub segment_id: i64,
    pub split: Split,
    pub n_teachers: usize,
    /// Teachers voting for each class.
    pub votes: [usize; 3],
    /// Binary vote entropy per class in bits: `H(p)` with `p = votes / n_teachers`
    /// (0 unanimous, 1 an even split).
    pub entropy: [f64; 3],
    /// Max − min of the teachers' scores per class.
    pub spread: [f64; 3],
    pub gold: Option<LabelSet>,
    /// Fraction of teachers whose vote differs from gold, per class (where gold exists).
    pub gold_disagreement: Option<[f64; 3]>,
    /// The label model's uncertainty per class: the binary entropy (bits) of its posterior, fitted over these
    /// teachers (Dawid–Skene, 4 score bins, no gold; see `crate::labelmodel`). A segment where an accurate teacher
    /// outvotes a poor one is certain even though the votes split.
    pub uncertainty: [f64; 3],
}

fn binary_entropy(p: f64) -> f64 {
    if p <= 0.0 || p >= 1.0 { 0.0 } else { -(p * p.log2() + (1.0 - p) * (1.0 - p).log2()) }
}

/// One row per segment scored by at least two of `teachers`, in segment-id order.
pub fn rows(teachers: &[TeacherVotes], index: &HashMap<i64, SegInfo>, gold: &HashMap<i64, LabelSet>) -> Vec<Row> {
    let mut ids: Vec<i64> = teachers.iter().flat_map(|t| t.scores.keys().copied()).collect();
    ids.sort_unstable();
    ids.dedup();
    let views: Vec<crate::labelmodel::TeacherScores<'_>> = teachers.iter().map(|t| (&t.scores, t.thresholds)).collect();
    let (_, post) = crate::labelmodel::fit_teachers(&views, 4, None, false);
    let mut out = Vec::new();
    for id in ids {
        let scored: Vec<&TeacherVotes> = teachers.iter().filter(|t| t.scores.contains_key(&id)).collect();
        let n = scored.len();
        if n < 2 {
            continue;
        }
        let mut votes = [0usize; 3];
        let mut entropy = [0.0; 3];
        let mut spread = [0.0; 3];
        let g = gold.get(&id).copied();
        let mut gd = [0.0; 3];
        for c in CLASSES {
            let i = c.index();
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            let mut wrong = 0usize;
            for t in &scored {
                let s = t.scores[&id][i];
                lo = lo.min(s);
                hi = hi.max(s);
                let v = s >= t.thresholds[i];
                votes[i] += v as usize;
                if let Some(g) = g {
                    wrong += (v != g.get(c)) as usize;
                }
            }
            entropy[i] = binary_entropy(votes[i] as f64 / n as f64);
            spread[i] = hi - lo;
            gd[i] = wrong as f64 / n as f64;
        }
        out.push(Row {
            segment_id: id,
            split: index.get(&id).map(|i| i.split).unwrap_or(Split::Unsplit),
            n_teachers: n,
            votes,
            entropy,
            spread,
            gold: g,
            gold_disagreement: g.map(|_| gd),
            uncertainty: post.get(&id).map(|q| q.map(binary_entropy)).unwrap_or([0.0; 3]),
        });
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    VoteEntropy,
    Spread,
    /// Disagreement with gold; segments without gold are left out.
    Gold,
    /// The label model's uncertainty (entropy of its posterior).
    Uncertainty,
}

impl std::str::FromStr for Order {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "entropy" | "vote-entropy" => Ok(Order::VoteEntropy),
            "spread" => Ok(Order::Spread),
            "gold" => Ok(Order::Gold),
            "uncertainty" | "label-model" => Ok(Order::Uncertainty),
            o => Err(format!("unknown order '{o}' (expected entropy, spread, gold or uncertainty)")),
        }
    }
}

/// Which rows the queue shows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Rank by this class only (otherwise by the sum over the three classes).
    pub class: Option<Class>,
    /// Only these splits (all if empty).
    pub splits: Vec<Split>,
}

impl Row {
    /// The ranking key of this row for an order and class filter (None: not ranked).
    pub fn key(&self, order: Order, class: Option<Class>) -> Option<f64> {
        let pick = |v: &[f64; 3]| match class {
            Some(c) => v[c.index()],
            None => v.iter().sum(),
        };
        match order {
            Order::VoteEntropy => Some(pick(&self.entropy)),
            Order::Spread => Some(pick(&self.spread)),
            Order::Gold => self.gold_disagreement.as_ref().map(pick),
            Order::Uncertainty => Some(pick(&self.uncertainty)),
        }
    }
}

/// Indices into `rows`, most disagreeing first (ties: lower segment id first). Rows with no
/// disagreement at all (key 0) are dropped: a unanimous segment is not worth a look.
pub fn queue(rows: &[Row], order: Order, filter: &Filter) -> Vec<usize> {
    let mut idx: Vec<(usize, f64)> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| filter.splits.is_empty() || filter.splits.contains(&r.split))
        .filter_map(|(i, r)| r.key(order, filter.class).filter(|k| *k > 0.0).map(|k| (i, k)))
        .collect();
    idx.sort_by(|a, b| b.1.total_cmp(&a.1).then(rows[a.0].segment_id.cmp(&rows[b.0].segment_id)));
    idx.into_iter().map(|(i, _)| i).collect()
}

/// Cohen's kappa between every pair of teachers for one class, on the segments both scored:
/// `m[i][j]` (the diagonal is 1 when defined). `None` where undefined or nothing is shared.
pub fn agreement_matrix(teachers: &[TeacherVotes], class: Class) -> Vec<Vec<Option<f64>>> {
    let n = teachers.len();
    let mut m = vec![vec![None; n]; n];
    for i in 0..n {
        for j in i..n {
            let mut common: Vec<i64> =
                teachers[i].scores.keys().filter(|k| teachers[j].scores.contains_key(k)).copied().collect();
            common.sort_unstable();
            let a: Vec<bool> = common.iter().filter_map(|&k| teachers[i].vote(k, class)).collect();
            let b: Vec<bool> = common.iter().filter_map(|&k| teachers[j].vote(k, class)).collect();
            let k = cohen_kappa(&a, &b);
            m[i][j] = k;
            m[j][i] = k;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tv(name: &str, s: &[(i64, [f64; 3])]) -> TeacherVotes {
        TeacherVotes { teacher: name.into(), run_id: 0, scores: s.iter().copied().collect(), thresholds: [0.5; 3] }
    }

    fn idx(ids: &[(i64, Split)]) -> HashMap<i64, SegInfo> {
        ids.iter().map(|&(i, s)| (i, SegInfo { split: s, file: i.to_string() })).collect()
    }

    #[test]
    fn queue_orders_by_entropy_spread_and_gold() {
        // segment 1: speech votes 1/3 → H(1/3) = 0.9183; spread .9 − .1 = .8
        // segment 2: speech votes 3/3 → H = 0; spread .9 − .6 = .3
        // segment 3: only one teacher → not a row
        let a = tv("a", &[(1, [0.9, 0.0, 0.0]), (2, [0.9, 0.0, 0.0]), (3, [0.9, 0.0, 0.0])]);
        let b = tv("b", &[(1, [0.1, 0.0, 0.0]), (2, [0.6, 0.0, 0.0])]);
        let c = tv("c", &[(1, [0.2, 0.0, 0.0]), (2, [0.7, 0.0, 0.0])]);
        let index = idx(&[(1, Split::Dev), (2, Split::Train), (3, Split::Dev)]);
        // gold on 2: speech off → all three teachers disagree with gold (1.0)
        let gold: HashMap<i64, LabelSet> = [(2, LabelSet::EMPTY)].into_iter().collect();
        let r = rows(&[a.clone(), b.clone(), c.clone()], &index, &gold);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].votes, [1, 0, 0]);
        assert!((r[0].entropy[0] - 0.918_295_834_054_489_6).abs() < 1e-12);
        assert!((r[0].spread[0] - 0.8).abs() < 1e-12);
        assert_eq!(r[1].gold_disagreement, Some([1.0, 0.0, 0.0]));

        let f = Filter { class: Some(Class::Speech), splits: vec![] };
        // entropy: only segment 1 disagrees (2 is unanimous → dropped)
        assert_eq!(queue(&r, Order::VoteEntropy, &f), vec![0]);
        // spread: 1 (.8) before 2 (.3)
        assert_eq!(queue(&r, Order::Spread, &f), vec![0, 1]);
        // gold: only segment 2 has gold
        assert_eq!(queue(&r, Order::Gold, &f), vec![1]);
        // split filter
        let f = Filter { class: None, splits: vec![Split::Train] };
        assert_eq!(queue(&r, Order::Spread, &f), vec![1]);
    }

    /// The label model's uncertainty: with three teachers over many segments where teacher `bad` is right only
    /// half the time, a segment where `bad` alone dissents is certain (it is discounted), while a split between the
    /// two good teachers is not; vote entropy ranks both the same.
    #[test]
    fn uncertainty_discounts_an_unreliable_teacher() {
        let mut ga = Vec::new();
        let mut gb = Vec::new();
        let mut bad = Vec::new();
        for i in 0..200i64 {
            let y = i % 2 == 0;
            let v = |on: bool| if on { 0.9 } else { 0.1 };
            ga.push((i, [v(y), 0.0, 0.0]));
            gb.push((i, [v(y), 0.0, 0.0]));
            bad.push((i, [v((i / 2) % 2 == 0), 0.0, 0.0]));
        }
        // 1000: the good ones agree (on), `bad` dissents; 1001: the good ones split, `bad` says on.
        ga.extend([(1000, [0.9, 0.0, 0.0]), (1001, [0.9, 0.0, 0.0])]);
        gb.extend([(1000, [0.9, 0.0, 0.0]), (1001, [0.1, 0.0, 0.0])]);
        bad.extend([(1000, [0.1, 0.0, 0.0]), (1001, [0.9, 0.0, 0.0])]);
        let index: HashMap<i64, SegInfo> =
            (0..200).chain([1000, 1001]).map(|i| (i, SegInfo { split: Split::Train, file: i.to_string() })).collect();
        let r = rows(&[tv("a", &ga), tv("b", &gb), tv("bad", &bad)], &index, &HashMap::new());
        let row = |id: i64| r.iter().find(|x| x.segment_id == id).unwrap();
        assert_eq!(row(1000).entropy[0], row(1001).entropy[0], "votes split 2:1 in both");
        assert!(row(1000).uncertainty[0] < 0.2, "{:?}", row(1000).uncertainty);
        assert!(row(1001).uncertainty[0] > row(1000).uncertainty[0] + 0.3, "{:?}", row(1001).uncertainty);
        let f = Filter { class: Some(Class::Speech), splits: vec![] };
        assert_eq!(r[queue(&r, Order::Uncertainty, &f)[0]].segment_id, 1001);
    }

    #[test]
    fn agreement_matrix_is_kappa_on_common_segments() {
        // votes on speech over segments 1..=6 (threshold .5):
        //   a: 1 1 0 0 1 0 ; b: 1 0 0 0 1 1 → κ = 1/3 (see metrics::tests::kappa_by_hand)
        let s = |v: &[u8]| -> Vec<(i64, [f64; 3])> {
            v.iter().enumerate().map(|(i, &x)| (i as i64 + 1, [x as f64, 0.0, 0.0])).collect()
        };
        let a = tv("a", &s(&[1, 1, 0, 0, 1, 0]));
        let b = tv("b", &s(&[1, 0, 0, 0, 1, 1]));
        let m = agreement_matrix(&[a, b], Class::Speech);
        assert!((m[0][1].unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(m[1][0], m[0][1]);
        assert_eq!(m[0][0], Some(1.0));
    }
}
