//! From prompt similarities to `[speech, music, noise]` scores, and the AudioText seed's domain adaptation.
//!
//! A run's raw output ([`crate::teachers::raw::CLAP_PROMPT_SIMS`]) is one cosine similarity per prompt group: the
//! segment's L2-normalised audio embedding against each group's anchor, the L2-normalised mean of the group's prompt
//! embeddings (one prompt per group reproduces the Python project). Groups are the three classes' prompts, then, for
//! classes that have them, their negative prompts ([`group_names`]). Scorings:
//!
//! * `softmax` (default, the Python project's `zero-shot-audio-classification` pipeline): softmax over the three
//!   classes of `exp(logit_scale_a) · s_c`; the scores sum to 1.
//! * `pairwise` (multi-label): each class against its own negative prompt(s), `softmax([s_c, s_¬c] · scale)₀` =
//!   `σ(scale · (s_c − s_¬c))`; classes are independent.
//! * `cosine` (multi-label): `(s_c + 1) / 2`, a monotone map of the raw cosine, left to per-class thresholds.
//!
//! Domain adaptation (seed 001, AudioText-ContextDomainAdaptation): text-guided audio prototypes ([`tgap`]: per
//! class, the mean audio embedding of the `topn` unlabeled segments most similar to the class's text anchor, not
//! renormalised) replace the text anchors; the audio background profile ([`background_profile`]: `B = mean_bg(e·Pᵀ)`
//! over segments marked as background) is subtracted, `S' = S − τ·B` ([`subtract_background`]), before the
//! scoring.

use std::str::FromStr;

pub const CLASSES: [&str; 3] = ["speech", "music", "noise"];

/// How prompt similarities become scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scoring {
    #[default]
    Softmax,
    Pairwise,
    Cosine,
}

impl Scoring {
    pub fn as_str(self) -> &'static str {
        match self {
            Scoring::Softmax => "softmax",
            Scoring::Pairwise => "pairwise",
            Scoring::Cosine => "cosine",
        }
    }
}

impl FromStr for Scoring {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "softmax" | "" => Ok(Scoring::Softmax),
            "pairwise" => Ok(Scoring::Pairwise),
            "cosine" => Ok(Scoring::Cosine),
            o => Err(format!("unknown scoring '{o}' (softmax, pairwise, cosine)")),
        }
    }
}

/// Group names of a layout: the three classes, then `<class>_negative` for each class in `negatives`.
pub fn group_names(negatives: [bool; 3]) -> Vec<String> {
    let mut v: Vec<String> = CLASSES.iter().map(|c| c.to_string()).collect();
    for (c, has) in CLASSES.iter().zip(negatives) {
        if has {
            v.push(format!("{c}_negative"));
        }
    }
    v
}

/// The index of class `c`'s negative group in a layout, if it has one.
fn negative_index(groups: &[String], c: usize) -> Option<usize> {
    groups.iter().position(|g| *g == format!("{}_negative", CLASSES[c]))
}

/// Scores from one segment's group similarities `sims` (layout `groups`), with `logit_scale` = `exp(logit_scale_a)`.
pub fn score(sims: &[f32], groups: &[String], scoring: Scoring, logit_scale: f32) -> Result<[f32; 3], String> {
    if sims.len() != groups.len() || sims.len() < 3 {
        return Err(format!("{} similarities for {} prompt groups", sims.len(), groups.len()));
    }
    Ok(match scoring {
        Scoring::Softmax => {
            let l: Vec<f64> = sims[..3].iter().map(|&s| s as f64 * logit_scale as f64).collect();
            let m = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = l.iter().map(|v| (v - m).exp()).collect();
            let z: f64 = e.iter().sum();
            [0, 1, 2].map(|c| (e[c] / z) as f32)
        }
        Scoring::Pairwise => {
            let mut out = [0f32; 3];
            for c in 0..3 {
                let n = negative_index(groups, c)
                    .ok_or_else(|| format!("scoring 'pairwise' needs negative prompts for {}", CLASSES[c]))?;
                let d = (sims[c] as f64 - sims[n] as f64) * logit_scale as f64;
                out[c] = (1.0 / (1.0 + (-d).exp())) as f32;
            }
            out
        }
        Scoring::Cosine => [0, 1, 2].map(|c| ((sims[c] + 1.0) / 2.0).clamp(0.0, 1.0)),
    })
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The L2-normalised mean of unit vectors (a group's anchor from its prompts' embeddings).
pub fn anchor(embs: &[Vec<f32>]) -> Vec<f32> {
    let d = embs.first().map_or(0, |e| e.len());
    let mut m = vec![0f32; d];
    for e in embs {
        for (a, v) in m.iter_mut().zip(e) {
            *a += v / embs.len() as f32;
        }
    }
    let n = dot(&m, &m).sqrt().max(1e-12);
    m.iter().map(|v| v / n).collect()
}

/// `S = A·Pᵀ`: one row of similarities per embedding.
pub fn similarities(embs: &[Vec<f32>], anchors: &[Vec<f32>]) -> Vec<Vec<f32>> {
    embs.iter().map(|e| anchors.iter().map(|p| dot(e, p)).collect()).collect()
}

/// TGAP (seed: `get_tgap_prototypes`): for each anchor, the mean of the `topn` pool embeddings most similar to it
/// (`L = X·Tᵀ`, labels unused), not renormalised. Ties keep pool order.
pub fn tgap(pool: &[Vec<f32>], anchors: &[Vec<f32>], topn: usize) -> Vec<Vec<f32>> {
    let l = similarities(pool, anchors);
    (0..anchors.len())
        .map(|c| {
            let mut idx: Vec<usize> = (0..pool.len()).collect();
            idx.sort_by(|&a, &b| l[b][c].partial_cmp(&l[a][c]).unwrap_or(std::cmp::Ordering::Equal));
            let top = &idx[..topn.min(idx.len())];
            let d = anchors[c].len();
            let mut p = vec![0f32; d];
            for &i in top {
                for (a, v) in p.iter_mut().zip(&pool[i]) {
                    *a += v;
                }
            }
            let k = top.len().max(1) as f32;
            p.iter().map(|v| v / k).collect()
        })
        .collect()
}

/// The audio background profile: `B = mean over background embeddings of e·Pᵀ` (one value per anchor).
pub fn background_profile(background: &[Vec<f32>], anchors: &[Vec<f32>]) -> Vec<f32> {
    let mut b = vec![0f32; anchors.len()];
    if background.is_empty() {
        return b;
    }
    for row in similarities(background, anchors) {
        for (a, v) in b.iter_mut().zip(row) {
            *a += v / background.len() as f32;
        }
    }
    b
}

/// `S' = S − τ·B`.
pub fn subtract_background(sims: &[f32], profile: &[f32], tau: f32) -> Vec<f32> {
    sims.iter().zip(profile).map(|(s, b)| s - tau * b).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g3() -> Vec<String> {
        group_names([false; 3])
    }

    #[test]
    fn softmax_sums_to_one_and_matches_hand_values() {
        // logits 10·[0.3, 0.1, −0.2] = [3, 1, −2]: e^3/(e^3+e^1+e^−2) = 20.0855/(20.0855+2.7183+0.1353) = 0.87560
        let s = score(&[0.3, 0.1, -0.2], &g3(), Scoring::Softmax, 10.0).unwrap();
        assert!((s[0] - 0.875_6).abs() < 1e-4, "{s:?}");
        assert!((s[1] - 0.118_5).abs() < 1e-4, "{s:?}");
        assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn pairwise_needs_negatives_and_is_a_sigmoid_of_the_difference() {
        assert!(score(&[0.1, 0.2, 0.3], &g3(), Scoring::Pairwise, 10.0).is_err());
        let g = group_names([true; 3]);
        // speech: σ(10·(0.3 − 0.1)) = σ(2) = 0.880797
        let s = score(&[0.3, 0.0, -0.1, 0.1, 0.0, 0.2], &g, Scoring::Pairwise, 10.0).unwrap();
        assert!((s[0] - 0.880_797).abs() < 1e-5);
        assert!((s[1] - 0.5).abs() < 1e-6);
        // noise: σ(10·(−0.3)) = 0.047426
        assert!((s[2] - 0.047_426).abs() < 1e-5);
    }

    #[test]
    fn tgap_and_background_match_hand_computed_values() {
        // Pool of 4 unit-ish vectors in 2-d, two text anchors e1, e2.
        let pool = vec![vec![1.0, 0.0], vec![0.8, 0.6], vec![0.0, 1.0], vec![0.6, 0.8]];
        let anchors = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
        // L[:,0] = [1, .8, 0, .6] → top-2 = rows 0, 1 → P0 = (0.9, 0.3); L[:,1] = [0, .6, 1, .8] → rows 2, 3 → P1 = (0.3, 0.9)
        let p = tgap(&pool, &anchors, 2);
        assert!((p[0][0] - 0.9).abs() < 1e-6 && (p[0][1] - 0.3).abs() < 1e-6, "{p:?}");
        assert!((p[1][0] - 0.3).abs() < 1e-6 && (p[1][1] - 0.9).abs() < 1e-6, "{p:?}");
        // Background: mean of e·Pᵀ over bg = {(1,0), (0,1)}: ((0.9+0.3)/2, (0.3+0.9)/2) = (0.6, 0.6)
        let b = background_profile(&[vec![1.0, 0.0], vec![0.0, 1.0]], &p);
        assert!((b[0] - 0.6).abs() < 1e-6 && (b[1] - 0.6).abs() < 1e-6);
        // S' = S − 0.5·B for a = (0.8, 0.6): S = (0.9·0.8+0.3·0.6, 0.3·0.8+0.9·0.6) = (0.90, 0.78); S' = (0.60, 0.48)
        let s = similarities(&[vec![0.8, 0.6]], &p).remove(0);
        let s2 = subtract_background(&s, &b, 0.5);
        assert!((s2[0] - 0.60).abs() < 1e-6 && (s2[1] - 0.48).abs() < 1e-6, "{s2:?}");
    }

    #[test]
    fn anchors_are_normalised_means() {
        let a = anchor(&[vec![1.0, 0.0], vec![0.0, 1.0]]);
        assert!((a[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        assert!((dot(&a, &a) - 1.0).abs() < 1e-6);
    }
}
