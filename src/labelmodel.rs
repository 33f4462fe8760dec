//! A generative label model over teachers (Dawid & Skene 1979; the binary, per-class form Snorkel's label model
//! generalises): each class is a hidden binary variable `y`, each teacher emits an observation of it — its vote
//! (`score ≥ threshold`), or its score in a few bins around the threshold — independently of the other teachers
//! given `y`, with its own confusion (per class: P(bin | y = 1) and P(bin | y = 0)). EM estimates every teacher's
//! sensitivity and specificity and the class prior from unlabelled segments alone, and gives each segment the
//! posterior P(y = 1 | observations): a teacher that is usually right counts more than one that is often wrong,
//! which a vote cannot do.
//!
//! - Binning ([`bin_of`]): 2 bins are the plain vote; 4 bins split each side of the threshold at its midpoint
//!   (`[0, t/2)`, `[t/2, t)`, `[t, (1+t)/2)`, `[(1+t)/2, 1]`), so a confident score weighs more than a marginal one.
//! - Gold ([`Anchor`]): segments with gold may be *anchors* (their `y` is fixed in the M-step, a semi-supervised
//!   fit), or left out of the fit and used only to validate it (the default: the fit then uses no gold at all).
//! - Missing observations (a teacher that did not score a segment) are skipped in the likelihood.
//! - Identifiability: EM starts from the vote; with fewer than three teachers the model is weakly identified (any
//!   two-teacher agreement pattern fits several confusions), so the fitted accuracies are shown, stored with the
//!   run, and validated on gold where there is some. If an unanchored fit converges to the swapped solution (the
//!   teachers on average worse than chance), it is swapped back.
//!
//! Pure arithmetic: no store, no terminal. `crate::pseudo` uses it for `--model dawid-skene`.

use serde::Serialize;

/// Number of bins a teacher's score falls into: 2 (vote) or 4 (see the module docs).
pub fn bin_of(score: f64, threshold: f64, bins: usize) -> usize {
    let on = score >= threshold;
    match bins {
        4 => {
            if on {
                if score >= threshold + (1.0 - threshold) / 2.0 { 3 } else { 2 }
            } else if score >= threshold / 2.0 {
                1
            } else {
                0
            }
        }
        _ => on as usize,
    }
}

/// Whether bin `b` of `bins` is a positive vote.
pub fn bin_votes(b: usize, bins: usize) -> bool {
    b >= bins / 2
}

/// How gold takes part in a fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Anchor {
    /// The fit sees no gold.
    None,
    /// Segments with gold have their class fixed to it during the fit.
    Gold,
}

/// Fitting options.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FitOptions {
    pub bins: usize,
    pub max_iter: usize,
    /// Stop when no posterior moves by more than this.
    pub tol: f64,
    /// Additive (Laplace) smoothing of the emission counts.
    pub smoothing: f64,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions { bins: 4, max_iter: 500, tol: 1e-7, smoothing: 1.0 }
    }
}

/// The fitted model of one class.
#[derive(Debug, Clone, Serialize)]
pub struct ClassFit {
    /// P(y = 1).
    pub prior: f64,
    /// Per teacher: P(bin | y = 1) (`[teacher][bin]`).
    pub emit_pos: Vec<Vec<f64>>,
    /// Per teacher: P(bin | y = 0).
    pub emit_neg: Vec<Vec<f64>>,
    /// Per teacher: P(vote on | y = 1).
    pub sensitivity: Vec<f64>,
    /// Per teacher: P(vote off | y = 0).
    pub specificity: Vec<f64>,
    pub iterations: usize,
    pub converged: bool,
    /// Mean log-likelihood per segment of the observations under the fit.
    pub log_likelihood: f64,
    /// Segments the fit used.
    pub n: usize,
    /// Whether the fit was swapped back from the label-switched solution.
    pub swapped: bool,
}

impl ClassFit {
    /// P(y = 1 | obs) for one segment's observations (`None`: that teacher did not score it).
    pub fn posterior(&self, obs: &[Option<usize>]) -> f64 {
        let mut logit = (self.prior / (1.0 - self.prior)).ln();
        for (j, o) in obs.iter().enumerate() {
            if let Some(b) = *o {
                logit += (self.emit_pos[j][b] / self.emit_neg[j][b]).ln();
            }
        }
        sigmoid(logit)
    }
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Fit one class by EM. `obs[i][j]`: teacher `j`'s bin for segment `i` (`None`: not scored); `anchors[i]`: the
/// segment's gold for this class when it anchors the fit (same length as `obs`, or empty for none).
pub fn fit_class(obs: &[Vec<Option<usize>>], anchors: &[Option<bool>], opts: &FitOptions) -> ClassFit {
    let m = obs.first().map_or(0, Vec::len);
    let bins = opts.bins.max(2);
    let n = obs.len();
    let anchor = |i: usize| anchors.get(i).copied().flatten();
    // Start from the vote: the share of present teachers voting on.
    let mut q: Vec<f64> = obs
        .iter()
        .enumerate()
        .map(|(i, row)| match anchor(i) {
            Some(g) => g as u8 as f64,
            None => {
                let present: Vec<usize> = row.iter().flatten().copied().collect();
                if present.is_empty() {
                    0.5
                } else {
                    present.iter().filter(|&&b| bin_votes(b, bins)).count() as f64 / present.len() as f64
                }
            }
        })
        .collect();
    let mut fit = ClassFit {
        prior: 0.5,
        emit_pos: vec![vec![1.0 / bins as f64; bins]; m],
        emit_neg: vec![vec![1.0 / bins as f64; bins]; m],
        sensitivity: vec![0.5; m],
        specificity: vec![0.5; m],
        iterations: 0,
        converged: false,
        log_likelihood: 0.0,
        n,
        swapped: false,
    };
    if n == 0 || m == 0 {
        return fit;
    }
    for it in 1..=opts.max_iter {
        // M-step.
        let sum_q: f64 = q.iter().sum();
        fit.prior = ((sum_q + opts.smoothing) / (n as f64 + 2.0 * opts.smoothing)).clamp(1e-4, 1.0 - 1e-4);
        for j in 0..m {
            let mut pos = vec![opts.smoothing; bins];
            let mut neg = vec![opts.smoothing; bins];
            for (row, &qi) in obs.iter().zip(&q) {
                if let Some(b) = row[j] {
                    pos[b] += qi;
                    neg[b] += 1.0 - qi;
                }
            }
            let (tp, tn): (f64, f64) = (pos.iter().sum(), neg.iter().sum());
            fit.emit_pos[j] = pos.iter().map(|c| c / tp).collect();
            fit.emit_neg[j] = neg.iter().map(|c| c / tn).collect();
        }
        // E-step.
        let mut delta = 0f64;
        for (i, row) in obs.iter().enumerate() {
            let new = match anchor(i) {
                Some(g) => g as u8 as f64,
                None => fit.posterior(row),
            };
            delta = delta.max((new - q[i]).abs());
            q[i] = new;
        }
        fit.iterations = it;
        if delta < opts.tol {
            fit.converged = true;
            break;
        }
    }
    for j in 0..m {
        fit.sensitivity[j] = (0..bins).filter(|&b| bin_votes(b, bins)).map(|b| fit.emit_pos[j][b]).sum();
        fit.specificity[j] = (0..bins).filter(|&b| !bin_votes(b, bins)).map(|b| fit.emit_neg[j][b]).sum();
    }
    let unanchored = anchors.iter().all(Option::is_none);
    let youden: f64 = (0..m).map(|j| fit.sensitivity[j] + fit.specificity[j] - 1.0).sum::<f64>() / m as f64;
    if unanchored && youden < 0.0 {
        std::mem::swap(&mut fit.emit_pos, &mut fit.emit_neg);
        fit.prior = 1.0 - fit.prior;
        for j in 0..m {
            let (s, p) = (fit.sensitivity[j], fit.specificity[j]);
            fit.sensitivity[j] = 1.0 - p;
            fit.specificity[j] = 1.0 - s;
        }
        fit.swapped = true;
    }
    fit.log_likelihood = obs
        .iter()
        .map(|row| {
            let lp = |emit: &Vec<Vec<f64>>| -> f64 {
                row.iter().enumerate().filter_map(|(j, o)| o.map(|b| emit[j][b].ln())).sum()
            };
            let a = fit.prior.ln() + lp(&fit.emit_pos);
            let b = (1.0 - fit.prior).ln() + lp(&fit.emit_neg);
            let mx = a.max(b);
            mx + ((a - mx).exp() + (b - mx).exp()).ln()
        })
        .sum::<f64>()
        / n as f64;
    fit
}

/// One teacher's view for [`fit_teachers`]: its scores by segment and its thresholds.
pub type TeacherScores<'a> = (&'a std::collections::HashMap<i64, [f64; 3]>, [f64; 3]);

/// Per class, a teacher's observation of class `c` on a segment: its bin; with the residual-noise rule (noise =
/// not speech and not music) the noise observation is that vote.
pub fn observe(s: &[f64; 3], th: &[f64; 3], c: usize, bins: usize, residual_noise: bool) -> usize {
    if residual_noise && c == 2 { (s[0] < th[0] && s[1] < th[1]) as usize } else { bin_of(s[c], th[c], bins) }
}

/// Fit the three classes over every segment at least one teacher scored. `anchors`: per segment its gold
/// `[speech, music, noise]` when gold anchors the fit. Returns the fits and every segment's posteriors.
pub fn fit_teachers(
    teachers: &[TeacherScores<'_>],
    bins: usize,
    anchors: Option<&std::collections::HashMap<i64, [bool; 3]>>,
    residual_noise: bool,
) -> (Vec<ClassFit>, std::collections::HashMap<i64, [f64; 3]>) {
    let mut ids: Vec<i64> = teachers.iter().flat_map(|(s, _)| s.keys().copied()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut post: std::collections::HashMap<i64, [f64; 3]> = ids.iter().map(|&id| (id, [0.0; 3])).collect();
    let mut fits = Vec::with_capacity(3);
    for c in 0..3 {
        let cb = if residual_noise && c == 2 { 2 } else { bins };
        let obs: Vec<Vec<Option<usize>>> = ids
            .iter()
            .map(|id| {
                teachers.iter().map(|(sc, th)| sc.get(id).map(|s| observe(s, th, c, cb, residual_noise))).collect()
            })
            .collect();
        let a: Vec<Option<bool>> = match anchors {
            Some(g) => ids.iter().map(|id| g.get(id).map(|l| l[c])).collect(),
            None => Vec::new(),
        };
        let fit = fit_class(&obs, &a, &FitOptions { bins: cb, ..FitOptions::default() });
        for (id, o) in ids.iter().zip(&obs) {
            if let Some(p) = post.get_mut(id) {
                p[c] = fit.posterior(o);
            }
        }
        fits.push(fit);
    }
    (fits, post)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64 as Rng;

    /// Votes drawn from teachers with known sensitivity/specificity: EM recovers them, and the posterior beats the
    /// majority vote.
    #[test]
    fn recovers_known_teacher_accuracies_from_votes_alone() {
        let mut rng = Rng::new(7);
        let truth_sens = [0.95, 0.80, 0.65, 0.90];
        let truth_spec = [0.90, 0.95, 0.70, 0.60];
        let prior = 0.3;
        let n = 20_000;
        let mut obs = Vec::with_capacity(n);
        let mut ys = Vec::with_capacity(n);
        for _ in 0..n {
            let y = rng.f64() < prior;
            ys.push(y);
            obs.push(
                (0..4)
                    .map(|j| {
                        let on = if y { rng.f64() < truth_sens[j] } else { rng.f64() >= truth_spec[j] };
                        Some(on as usize)
                    })
                    .collect::<Vec<_>>(),
            );
        }
        let fit = fit_class(&obs, &[], &FitOptions { bins: 2, ..FitOptions::default() });
        assert!(fit.converged, "{fit:?}");
        assert!((fit.prior - prior).abs() < 0.02, "prior {}", fit.prior);
        for j in 0..4 {
            assert!((fit.sensitivity[j] - truth_sens[j]).abs() < 0.03, "teacher {j}: sens {}", fit.sensitivity[j]);
            assert!((fit.specificity[j] - truth_spec[j]).abs() < 0.03, "teacher {j}: spec {}", fit.specificity[j]);
        }
        let acc = |pred: &dyn Fn(&[Option<usize>]) -> bool| {
            obs.iter().zip(&ys).filter(|(o, y)| pred(o) == **y).count() as f64 / n as f64
        };
        let lm = acc(&|o| fit.posterior(o) >= 0.5);
        let vote = acc(&|o| o.iter().flatten().filter(|&&b| b == 1).count() >= 2);
        assert!(lm > vote + 0.01, "label model {lm} vs vote {vote}");
    }

    /// Missing observations are skipped; anchors fix the class; a bad start is swapped back.
    #[test]
    fn missing_votes_anchors_and_label_switching() {
        let mut rng = Rng::new(3);
        let n = 5_000;
        let mut obs = Vec::new();
        let mut gold = Vec::new();
        for i in 0..n {
            let y = rng.f64() < 0.5;
            gold.push(y);
            obs.push(
                (0..3)
                    .map(|j| {
                        if (i + j) % 5 == 0 {
                            return None;
                        }
                        let right = rng.f64() < 0.85;
                        Some((y == right) as usize)
                    })
                    .collect::<Vec<_>>(),
            );
        }
        let fit = fit_class(&obs, &[], &FitOptions { bins: 2, ..FitOptions::default() });
        for j in 0..3 {
            assert!((fit.sensitivity[j] - 0.85).abs() < 0.03 && (fit.specificity[j] - 0.85).abs() < 0.03, "{fit:?}");
        }
        // Anchored on all gold: emissions are the empirical confusions and posteriors of anchors are not used.
        let anchors: Vec<Option<bool>> = gold.iter().map(|&g| Some(g)).collect();
        let a = fit_class(&obs, &anchors, &FitOptions { bins: 2, ..FitOptions::default() });
        assert!(a.converged && a.iterations <= 2, "{a:?}");
        // Teachers that are always wrong: the fit is swapped so that the posterior follows the truth's majority
        // structure (the solution where they are right), as a label model cannot tell these apart without gold.
        let flipped: Vec<Vec<Option<usize>>> =
            obs.iter().map(|r| r.iter().map(|o| o.map(|b| 1 - b)).collect()).collect();
        let f = fit_class(&flipped, &[], &FitOptions { bins: 2, ..FitOptions::default() });
        assert!(f.sensitivity.iter().all(|&s| s > 0.5), "{f:?}");
    }

    #[test]
    fn bins_split_each_side_of_the_threshold() {
        assert_eq!([0.0, 0.24, 0.25, 0.49, 0.5, 0.74, 0.75, 1.0].map(|s| bin_of(s, 0.5, 4)), [0, 0, 1, 1, 2, 2, 3, 3]);
        assert_eq!([0.0, 0.49, 0.5, 1.0].map(|s| bin_of(s, 0.5, 2)), [0, 0, 1, 1]);
        assert!(bin_votes(2, 4) && !bin_votes(1, 4) && bin_votes(1, 2));
    }

    /// Confident scores (4 bins) separate better than votes when teachers' errors are marginal.
    #[test]
    fn score_bins_beat_votes_when_errors_are_marginal() {
        let mut rng = Rng::new(11);
        let n = 10_000;
        let mut scores = Vec::new();
        let mut ys = Vec::new();
        for _ in 0..n {
            let y = rng.f64() < 0.4;
            ys.push(y);
            // a right answer is usually confident, a wrong one marginal
            scores.push(
                (0..3)
                    .map(|_| {
                        let right = rng.f64() < 0.8;
                        let confident = if right { rng.f64() < 0.8 } else { rng.f64() < 0.1 };
                        let mag = if confident { 0.3 + 0.2 * rng.f64() } else { 0.2 * rng.f64() };
                        if y == right { 0.5 + mag } else { 0.5 - mag - 1e-9 }
                    })
                    .collect::<Vec<f64>>(),
            );
        }
        let acc = |bins: usize| {
            let obs: Vec<Vec<Option<usize>>> =
                scores.iter().map(|r| r.iter().map(|&s| Some(bin_of(s, 0.5, bins))).collect()).collect();
            let fit = fit_class(&obs, &[], &FitOptions { bins, ..FitOptions::default() });
            obs.iter().zip(&ys).filter(|(o, y)| (fit.posterior(o) >= 0.5) == **y).count() as f64 / n as f64
        };
        let (a2, a4) = (acc(2), acc(4));
        assert!(a4 > a2 + 0.02, "4 bins {a4} vs votes {a2}");
    }
}
