//! The prompt workbench's engine: every embedded segment re-scored from the embedding cache when a prompt changes
//! (the text tower runs for the changed prompt only; scoring is one `[segments × d] · [d × groups]` product), with
//! precision / recall / F1 per class against gold, PR curves, the segments whose prediction flipped, and the
//! AudioText seed's adaptation (TGAP anchors, background profile `S' = S − τ·B`) applied live.
//!
//! [`Pool`] and [`evaluate`] are plain arithmetic (no model); [`Session`] adds the text tower.

use super::scoring::{self, Scoring};

/// Which of the seed's adaptations apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Adapt {
    /// Text-guided audio prototypes replace the text anchors.
    pub tgap: bool,
    /// Subtract `τ · B`, the background profile of the marked segments.
    pub background: bool,
}

impl Adapt {
    pub fn parse(s: &str) -> Result<Adapt, String> {
        let mut a = Adapt::default();
        for p in s.split('+').map(str::trim).filter(|p| !p.is_empty()) {
            match p {
                "none" => {}
                "tgap" => a.tgap = true,
                "background" => a.background = true,
                o => return Err(format!("unknown adaptation '{o}' (none, tgap, background, tgap+background)")),
            }
        }
        Ok(a)
    }
    pub fn as_str(self) -> &'static str {
        match (self.tgap, self.background) {
            (false, false) => "none",
            (true, false) => "tgap",
            (false, true) => "background",
            (true, true) => "tgap+background",
        }
    }
}

/// What decides the scores besides the anchors.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub scoring: Scoring,
    /// `exp(logit_scale_a)`.
    pub logit_scale: f32,
    pub thresholds: [f32; 3],
    pub adapt: Adapt,
    /// τ of `S' = S − τ·B` (the seed's default 0.5).
    pub tau: f32,
    /// TGAP's top-n per class (the seed's 35).
    pub topn: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            scoring: Scoring::Softmax,
            logit_scale: 1.0 / 0.07,
            thresholds: super::PYTHON_THRESHOLDS.map(|v| v as f32),
            adapt: Adapt::default(),
            tau: 0.5,
            topn: 35,
        }
    }
}

/// The embedded segments: ids, embeddings `[n × dim]`, gold where there is one, background marks.
#[derive(Debug, Clone, Default)]
pub struct Pool {
    pub ids: Vec<i64>,
    pub dim: usize,
    pub embs: Vec<f32>,
    pub gold: Vec<Option<[bool; 3]>>,
    pub background: Vec<bool>,
}

impl Pool {
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    pub fn emb(&self, i: usize) -> &[f32] {
        &self.embs[i * self.dim..(i + 1) * self.dim]
    }
    fn rows(&self, which: impl Fn(usize) -> bool) -> Vec<Vec<f32>> {
        (0..self.len()).filter(|&i| which(i)).map(|i| self.emb(i).to_vec()).collect()
    }
}

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Prf {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
}

impl Prf {
    pub fn of(tp: usize, fp: usize, fn_: usize) -> Prf {
        let p = if tp + fp > 0 { tp as f64 / (tp + fp) as f64 } else { 0.0 };
        let r = if tp + fn_ > 0 { tp as f64 / (tp + fn_) as f64 } else { 0.0 };
        let f1 = if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 };
        Prf { precision: p, recall: r, f1, tp, fp, fn_ }
    }
}

/// Scores, predictions and metrics of one prompt set on the pool.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    pub scores: Vec<[f32; 3]>,
    pub preds: Vec<[bool; 3]>,
    pub per_class: [Prf; 3],
    pub macro_f1: f64,
    /// Per class: `(recall, precision)` at every distinct score among gold segments, highest threshold first.
    pub pr_curves: [Vec<(f32, f32)>; 3],
    /// Segments with gold.
    pub n_gold: usize,
}

/// Score the pool with group anchors `anchors` (layout `groups`) under `settings`.
pub fn evaluate(
    pool: &Pool,
    anchors: &[Vec<f32>],
    groups: &[String],
    settings: &Settings,
) -> Result<Evaluation, String> {
    let anchors: Vec<Vec<f32>> = if settings.adapt.tgap {
        let all = pool.rows(|_| true);
        scoring::tgap(&all, anchors, settings.topn)
    } else {
        anchors.to_vec()
    };
    let profile = if settings.adapt.background {
        let bg = pool.rows(|i| pool.background[i]);
        if bg.is_empty() {
            return Err("adaptation 'background' needs segments marked as background".into());
        }
        Some(scoring::background_profile(&bg, &anchors))
    } else {
        None
    };
    let mut scores = Vec::with_capacity(pool.len());
    let mut sims = vec![0f32; anchors.len()];
    for i in 0..pool.len() {
        let e = pool.emb(i);
        for (s, a) in sims.iter_mut().zip(&anchors) {
            *s = scoring::dot(e, a);
        }
        let s = match &profile {
            Some(b) => scoring::subtract_background(&sims, b, settings.tau),
            None => sims.clone(),
        };
        scores.push(scoring::score(&s, groups, settings.scoring, settings.logit_scale)?);
    }
    Ok(metrics(pool, scores, settings.thresholds))
}

/// Predictions (`score >= threshold`, per class) and metrics against the pool's gold.
pub fn metrics(pool: &Pool, scores: Vec<[f32; 3]>, thresholds: [f32; 3]) -> Evaluation {
    let preds: Vec<[bool; 3]> = scores.iter().map(|s| [0, 1, 2].map(|c| s[c] >= thresholds[c])).collect();
    let mut per_class = [Prf::default(); 3];
    let mut pr_curves: [Vec<(f32, f32)>; 3] = Default::default();
    let n_gold = pool.gold.iter().filter(|g| g.is_some()).count();
    for c in 0..3 {
        let (mut tp, mut fp, mut fn_) = (0, 0, 0);
        let mut ranked: Vec<(f32, bool)> = Vec::with_capacity(n_gold);
        for (i, g) in pool.gold.iter().enumerate() {
            let Some(g) = g else { continue };
            match (preds[i][c], g[c]) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, true) => fn_ += 1,
                _ => {}
            }
            ranked.push((scores[i][c], g[c]));
        }
        per_class[c] = Prf::of(tp, fp, fn_);
        ranked.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
        let pos = ranked.iter().filter(|r| r.1).count().max(1);
        let (mut t, mut f) = (0usize, 0usize);
        for (k, r) in ranked.iter().enumerate() {
            if r.1 {
                t += 1
            } else {
                f += 1
            }
            if k + 1 == ranked.len() || ranked[k + 1].0 != r.0 {
                pr_curves[c].push((t as f32 / pos as f32, t as f32 / (t + f) as f32));
            }
        }
    }
    let macro_f1 = per_class.iter().map(|p| p.f1).sum::<f64>() / 3.0;
    Evaluation { scores, preds, per_class, macro_f1, pr_curves, n_gold }
}

/// Indices of segments whose prediction differs between two evaluations of the same pool.
pub fn flipped(a: &Evaluation, b: &Evaluation) -> Vec<usize> {
    a.preds.iter().zip(&b.preds).enumerate().filter(|(_, (x, y))| x != y).map(|(i, _)| i).collect()
}

#[cfg(feature = "burn")]
pub use session::Session;

#[cfg(feature = "burn")]
mod session {
    use super::*;
    use crate::teachers::clap::prompts::PromptSet;
    use crate::teachers::clap::{ClapError, ClapTeacher, EMBEDDING_KIND};

    /// A live workbench: the teacher (text tower + anchors), the pool, the current and previous evaluation.
    pub struct Session {
        pub teacher: ClapTeacher,
        pub pool: Pool,
        pub settings: Settings,
        pub set_name: String,
        pub set: PromptSet,
        pub current: Evaluation,
        /// The set and evaluation before the last change (the side-by-side).
        pub previous: Option<(PromptSet, Evaluation)>,
    }

    impl Session {
        /// Load every segment of the store that has a cached CLAP embedding of this teacher's weights, with gold.
        pub fn open(
            teacher: ClapTeacher,
            store: &crate::store::Store,
            set_name: &str,
            set: PromptSet,
            background: &[i64],
        ) -> Result<Session, ClapError> {
            let dim = teacher.config().projection_dim;
            let checksum = crate::teachers::Teacher::checksum(&teacher).to_string();
            let cached = store.embeddings(&checksum, EMBEDDING_KIND, dim).map_err(|e| ClapError::Run(e.to_string()))?;
            let gold: std::collections::HashMap<i64, [bool; 3]> = store
                .resolved_gold()
                .map_err(|e| ClapError::Run(e.to_string()))?
                .into_iter()
                .map(|(id, l)| (id, l.to_array()))
                .collect();
            let mut ids: Vec<i64> = cached.keys().copied().collect();
            ids.sort_unstable();
            let mut pool = Pool { dim, ..Default::default() };
            for id in ids {
                pool.embs.extend_from_slice(&cached[&id]);
                pool.gold.push(gold.get(&id).copied());
                pool.background.push(background.contains(&id));
                pool.ids.push(id);
            }
            Self::with_pool(teacher, pool, set_name, set)
        }

        pub fn with_pool(
            mut teacher: ClapTeacher,
            pool: Pool,
            set_name: &str,
            set: PromptSet,
        ) -> Result<Session, ClapError> {
            teacher.set_prompts(set_name, &set)?;
            let settings =
                Settings { scoring: teacher.scoring(), logit_scale: teacher.logit_scale(), ..Default::default() };
            let current =
                evaluate(&pool, teacher.anchors(), teacher.group_names(), &settings).map_err(ClapError::Run)?;
            Ok(Session { teacher, pool, settings, set_name: set_name.into(), set, current, previous: None })
        }

        /// Apply a new prompt set: text tower for prompts not seen before, then every segment re-scored.
        pub fn apply(&mut self, set: PromptSet) -> Result<(), ClapError> {
            self.teacher.set_prompts(&self.set_name, &set)?;
            let next = evaluate(&self.pool, self.teacher.anchors(), self.teacher.group_names(), &self.settings)
                .map_err(ClapError::Run)?;
            let prev = std::mem::replace(&mut self.current, next);
            let prev_set = std::mem::replace(&mut self.set, set);
            self.previous = Some((prev_set, prev));
            Ok(())
        }

        /// Re-evaluate with changed settings (τ, adaptation, thresholds, scoring), same prompts.
        pub fn resettle(&mut self, settings: Settings) -> Result<(), ClapError> {
            let next = evaluate(&self.pool, self.teacher.anchors(), self.teacher.group_names(), &settings)
                .map_err(ClapError::Run)?;
            self.settings = settings;
            self.current = next;
            Ok(())
        }

        /// Segments whose prediction changed with the last [`apply`](Self::apply).
        pub fn flipped(&self) -> Vec<usize> {
            self.previous.as_ref().map(|(_, p)| flipped(p, &self.current)).unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Pool {
        // 4 segments in 2-d; gold speech for the first two.
        Pool {
            ids: vec![1, 2, 3, 4],
            dim: 2,
            embs: vec![1.0, 0.0, 0.8, 0.6, 0.0, 1.0, 0.6, 0.8],
            gold: vec![Some([true, false, false]), Some([true, false, false]), Some([false, true, false]), None],
            background: vec![false, false, true, false],
        }
    }

    #[test]
    fn metrics_count_by_hand() {
        let p = pool();
        // speech scores 0.9, 0.5, 0.2, 0.7 at threshold 0.6 → preds T, F, F, (T, no gold): tp 1, fn 1, fp 0.
        let s = vec![[0.9, 0.0, 0.0], [0.5, 0.0, 0.0], [0.2, 0.9, 0.0], [0.7, 0.0, 0.0]];
        let e = metrics(&p, s, [0.6, 0.5, 0.5]);
        assert_eq!((e.per_class[0].tp, e.per_class[0].fp, e.per_class[0].fn_), (1, 0, 1));
        assert!((e.per_class[0].f1 - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(e.per_class[1].f1, 1.0);
        assert_eq!(e.n_gold, 3);
        // PR curve of speech: thresholds 0.9 (r .5, p 1), 0.5 (r 1, p 1), 0.2 (r 1, p 2/3).
        assert_eq!(e.pr_curves[0], vec![(0.5, 1.0), (1.0, 1.0), (1.0, 2.0 / 3.0)]);
    }

    #[test]
    fn background_subtraction_moves_scores_as_the_seed_says() {
        let p = pool();
        let anchors = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![std::f32::consts::FRAC_1_SQRT_2; 2]];
        let groups = scoring::group_names([false; 3]);
        let cos = Settings { scoring: Scoring::Cosine, ..Default::default() };
        let plain = evaluate(&p, &anchors, &groups, &cos).unwrap();
        let bg = Settings { adapt: Adapt { tgap: false, background: true }, tau: 0.5, ..cos.clone() };
        let adapted = evaluate(&p, &anchors, &groups, &bg).unwrap();
        // Background = segment 3 = (0, 1): B = (0, 1, 0.7071); segment 1 = (1, 0): S = (1, 0, .7071),
        // S' = (1, −0.5, 0.3536); cosine scoring (s+1)/2 → (1, 0.25, 0.6768).
        assert!((plain.scores[0][1] - 0.5).abs() < 1e-6);
        assert!((adapted.scores[0][1] - 0.25).abs() < 1e-6);
        assert!((adapted.scores[0][2] - (1.0 + (0.707_106_8 - 0.5 * 0.707_106_8)) / 2.0).abs() < 1e-6);
        // No marked background: a clear error.
        let mut q = p.clone();
        q.background = vec![false; 4];
        assert!(evaluate(&q, &anchors, &groups, &bg).unwrap_err().contains("marked as background"));
        assert_eq!(Adapt::parse("tgap+background").unwrap().as_str(), "tgap+background");
        assert!(Adapt::parse("magic").is_err());
    }
}
