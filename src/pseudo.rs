//! Pseudo-labels from teacher scores, with full provenance.
//!
//! - Per teacher: multi-hot `score ≥ threshold` per class. With the residual-noise rule (the
//!   Python AST/Whisper rule) noise is instead `not speech and not music`. A segment with no
//!   class on is left out of that teacher's set.
//! - Consensus across teachers: a class is on when at least `k` teachers vote for it; its score
//!   is the mean of the voting teachers' scores, or of all teachers' when none voted (as the
//!   Python `build_finetune_dataset.py`). Only segments scored by every chosen teacher take part
//!   (the Python inner join); an empty consensus is left out like an empty teacher label.
//! - Gold always wins: segments with a gold label never get a pseudo-label, and in the written
//!   `blocs_smad_labels.csv` their row carries the gold label.
//!
//! A run is a `jobs` row plus a `pseudo_runs` row whose JSON config snapshots every input
//! (teacher runs, thresholds with their ids, rule, k, splits) and its labels in `pseudo_labels`.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use thiserror::Error;

use crate::eval::{self, EvalError};
use crate::labelmodel::{Anchor, ClassFit, fit_teachers};
use crate::labels::{CLASSES, Class, LabelSet, LabelSource, Split};
use crate::manifest::export::{manifest_path, snapshot_file_name};
use crate::manifest::{Spelling, fmt_float};
use crate::store::{Store, StoreError};
use crate::workspace::Workspace;

#[derive(Debug, Error)]
pub enum PseudoError {
    #[error("name at least one teacher")]
    NoTeachers,
    #[error("teacher '{0}' is named twice")]
    Duplicate(String),
    #[error("k must be between 1 and the number of teachers ({n}), not {k}")]
    BadK { k: usize, n: usize },
    #[error(
        "teacher '{teacher}' has no usable {class} threshold; set one with `dams calibrate --teacher {teacher} --save` \
         or `dams thresholds set {teacher} {class} VALUE`"
    )]
    NoThreshold { teacher: String, class: Class },
    #[error("writing {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    #[error("the label model combines teachers: name at least two (three or more identify it well)")]
    LabelModelNeedsTeachers,
    #[error("cancelled")]
    Cancelled,
}

pub type Result<T, E = PseudoError> = std::result::Result<T, E>;

/// A teacher's label for one segment; `None` when no class is on (the segment is excluded).
pub fn teacher_label(scores: &[f64; 3], thresholds: &[f64; 3], residual_noise: bool) -> Option<LabelSet> {
    let speech = scores[0] >= thresholds[0];
    let music = scores[1] >= thresholds[1];
    let noise = if residual_noise { !speech && !music } else { scores[2] >= thresholds[2] };
    let l = LabelSet::new(speech, music, noise);
    (!l.is_empty()).then_some(l)
}

/// Consensus of several teachers' votes on one segment: class on when `≥ k` vote for it;
/// score = mean of the voting teachers' scores (of all teachers if none voted).
pub fn consensus(votes: &[LabelSet], scores: &[[f64; 3]], k: usize) -> (LabelSet, [f64; 3]) {
    let mut out = LabelSet::EMPTY;
    let mut s = [0.0; 3];
    for c in CLASSES {
        let i = c.index();
        let voters: Vec<f64> = votes.iter().zip(scores).filter(|(v, _)| v.get(c)).map(|(_, sc)| sc[i]).collect();
        out.set(c, voters.len() >= k);
        s[i] = if voters.is_empty() {
            scores.iter().map(|sc| sc[i]).sum::<f64>() / scores.len().max(1) as f64
        } else {
            voters.iter().sum::<f64>() / voters.len() as f64
        };
    }
    (out, s)
}

/// The snapshot of one teacher's inputs.
#[derive(Debug, Clone, Serialize)]
pub struct TeacherSnapshot {
    pub teacher: String,
    pub run_id: i64,
    pub zero_shot: bool,
    pub checksum: String,
    /// `(threshold id, value)` per class; noise is `None` under the residual-noise rule.
    pub thresholds: [Option<(i64, f64)>; 3],
    pub threshold_methods: [Option<String>; 3],
}

/// Everything a pseudo-labelling run used (stored as JSON in `pseudo_runs.config`).
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub label_source: String,
    pub teachers: Vec<TeacherSnapshot>,
    pub rule: &'static str,
    pub k: usize,
    pub combine: Combine,
    /// The fitted label model (teachers' sensitivity/specificity per class...), with `--model dawid-skene`.
    pub label_model: Option<LabelModelReport>,
    pub splits: Vec<Split>,
    pub created_by: String,
}

/// How several teachers' scores become one label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "model")]
pub enum Combine {
    /// A class is on when at least `k` teachers vote for it (`Params::k`).
    Vote,
    /// The Dawid–Skene label model ([`crate::labelmodel`]): the posterior of each class given every teacher's
    /// binned score, with the teachers' accuracies estimated by EM; on when the posterior is ≥ 0.5.
    DawidSkene { bins: usize, anchor: Anchor },
}

impl Combine {
    /// `vote`, or `dawid-skene` with 4 score bins and no gold in the fit.
    pub fn parse(name: &str, bins: usize, anchor_gold: bool) -> std::result::Result<Combine, String> {
        match name.trim() {
            "vote" | "k-vote" => Ok(Combine::Vote),
            "dawid-skene" | "ds" | "label-model" => {
                if bins != 2 && bins != 4 {
                    return Err(format!("--bins must be 2 (votes) or 4 (scores around the threshold), not {bins}"));
                }
                Ok(Combine::DawidSkene { bins, anchor: if anchor_gold { Anchor::Gold } else { Anchor::None } })
            }
            other => Err(format!("unknown model '{other}' (expected vote or dawid-skene)")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Params {
    pub teachers: Vec<String>,
    /// Minimum votes for consensus (ignored with one teacher, and by the label model).
    pub k: usize,
    /// How several teachers combine.
    pub model: Combine,
    pub residual_noise: bool,
    /// Splits that receive pseudo-labels (segments with gold never do).
    pub splits: Vec<Split>,
    pub created_by: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub job_id: i64,
    pub pseudo_run_id: i64,
    pub label_source: String,
    /// Segments that received a pseudo-label.
    pub labeled: usize,
    /// Candidates left out because no class was on.
    pub excluded_empty: usize,
    /// Candidates left out because a teacher had not scored them (consensus only).
    pub excluded_unscored: usize,
    /// Candidates skipped because they carry gold (gold wins).
    pub skipped_gold: usize,
    /// Gold rows written to the labels CSV.
    pub gold_rows: usize,
    pub labels_csv: PathBuf,
    pub snapshot_csv: PathBuf,
    pub positives: [usize; 3],
    pub label_model: Option<LabelModelReport>,
}

/// A fitted label model: per class, the fit over every segment some teacher scored; and, where those segments
/// have gold, the label model's F1 against it (optimistic when gold anchored the fit).
#[derive(Debug, Clone, Serialize)]
pub struct LabelModelReport {
    pub teachers: Vec<String>,
    pub bins: usize,
    pub anchor: Anchor,
    /// speech, music, noise.
    pub classes: Vec<ClassFit>,
    /// Segments with gold among those fitted.
    pub gold_n: usize,
    /// Per class F1 of `posterior ≥ 0.5` against gold (`None` for a class without positives or predictions).
    pub gold_f1: [Option<f64>; 3],
}

/// Per teacher: its scores by segment and its thresholds.
pub type TeacherInput = (HashMap<i64, [f64; 3]>, [f64; 3]);

/// Fit the label model over every segment at least one teacher scored; the posteriors by segment.
pub fn fit_label_model(
    names: &[String],
    inputs: &[TeacherInput],
    gold: &HashMap<i64, LabelSet>,
    bins: usize,
    anchor: Anchor,
    residual_noise: bool,
) -> (LabelModelReport, HashMap<i64, [f64; 3]>) {
    let views: Vec<crate::labelmodel::TeacherScores<'_>> = inputs.iter().map(|(s, t)| (s, *t)).collect();
    let anchors: Option<HashMap<i64, [bool; 3]>> =
        (anchor == Anchor::Gold).then(|| gold.iter().map(|(id, g)| (*id, g.to_array())).collect());
    let (classes, post) = fit_teachers(&views, bins, anchors.as_ref(), residual_noise);
    let mut gold_f1 = [None; 3];
    for c in CLASSES {
        let (mut tp, mut fp, mut fneg) = (0usize, 0usize, 0usize);
        for (id, q) in &post {
            if let Some(g) = gold.get(id) {
                match (q[c.index()] >= 0.5, g.get(c)) {
                    (true, true) => tp += 1,
                    (true, false) => fp += 1,
                    (false, true) => fneg += 1,
                    _ => {}
                }
            }
        }
        gold_f1[c.index()] = (tp + fp + fneg > 0).then(|| 2.0 * tp as f64 / (2 * tp + fp + fneg) as f64);
    }
    let gold_n = post.keys().filter(|id| gold.contains_key(id)).count();
    (LabelModelReport { teachers: names.to_vec(), bins, anchor, classes, gold_n, gold_f1 }, post)
}

/// Compute, store and write a pseudo-labelling run.
pub fn run(ws: &Workspace, store: &mut Store, p: &Params) -> Result<Outcome> {
    run_with(ws, store, p, None)
}

/// Every teacher's newest run (scores by segment) and active thresholds, with their snapshot.
pub fn gather(
    store: &Store,
    teachers: &[String],
    residual_noise: bool,
) -> Result<(Vec<TeacherSnapshot>, Vec<TeacherInput>)> {
    let mut snaps = Vec::new();
    let mut inputs: Vec<TeacherInput> = Vec::new();
    for t in teachers {
        let run = eval::resolve_run(store, t, None)?;
        let th = store.thresholds(t)?;
        let mut vals = [f64::INFINITY; 3];
        let mut snap_th = [None; 3];
        let mut methods: [Option<String>; 3] = [None, None, None];
        for c in CLASSES {
            if residual_noise && c == Class::Noise {
                continue;
            }
            match &th[c.index()] {
                Some(x) if x.value.is_some_and(f64::is_finite) => {
                    let v = x.value.unwrap_or(f64::INFINITY);
                    vals[c.index()] = v;
                    snap_th[c.index()] = Some((x.id, v));
                    methods[c.index()] = Some(x.method.clone());
                }
                _ => return Err(PseudoError::NoThreshold { teacher: t.clone(), class: c }),
            }
        }
        snaps.push(TeacherSnapshot {
            teacher: t.clone(),
            run_id: run.id,
            zero_shot: run.zero_shot,
            checksum: run.checksum.clone(),
            thresholds: snap_th,
            threshold_methods: methods,
        });
        inputs.push((eval::run_scores(store, run.id)?, vals));
    }
    Ok((snaps, inputs))
}

/// One way of combining teachers, scored against gold.
#[derive(Debug, Clone, Serialize)]
pub struct MethodScore {
    pub method: String,
    /// Per class F1 (`None` without positives or predictions).
    pub f1: [Option<f64>; 3],
    pub macro_f1: f64,
    /// Gold segments scored by every teacher (the segments every method is compared on).
    pub n: usize,
}

/// Compare on the gold segments of `splits` that every teacher scored: each teacher's own vote, the k-vote for
/// every k (k = ⌊n/2⌋+1 is the majority), and the label model (fitted over every scored segment; gold takes part
/// only with `Anchor::Gold`, which makes its figure optimistic).
pub fn compare(
    store: &Store,
    teachers: &[String],
    bins: usize,
    anchor: Anchor,
    residual_noise: bool,
    splits: &[Split],
) -> Result<(LabelModelReport, Vec<MethodScore>)> {
    if teachers.len() < 2 {
        return Err(PseudoError::LabelModelNeedsTeachers);
    }
    let (_, inputs) = gather(store, teachers, residual_noise)?;
    let index = eval::segment_index(store)?;
    let gold = eval::gold_map(store, &index, None)?;
    let (report, post) = fit_label_model(teachers, &inputs, &gold, bins, anchor, residual_noise);
    let mut ids: Vec<i64> = gold
        .keys()
        .copied()
        .filter(|id| index.get(id).is_some_and(|i| splits.contains(&i.split)))
        .filter(|id| inputs.iter().all(|(sc, _)| sc.contains_key(id)))
        .collect();
    ids.sort_unstable();
    let score = |method: String, pred: &dyn Fn(i64) -> LabelSet| -> MethodScore {
        let mut f1 = [None; 3];
        for c in CLASSES {
            let (mut tp, mut fp, mut fneg) = (0usize, 0usize, 0usize);
            for &id in &ids {
                match (pred(id).get(c), gold[&id].get(c)) {
                    (true, true) => tp += 1,
                    (true, false) => fp += 1,
                    (false, true) => fneg += 1,
                    _ => {}
                }
            }
            f1[c.index()] = (tp + fp + fneg > 0).then(|| 2.0 * tp as f64 / (2 * tp + fp + fneg) as f64);
        }
        let have: Vec<f64> = f1.iter().flatten().copied().collect();
        let macro_f1 = if have.is_empty() { 0.0 } else { have.iter().sum::<f64>() / have.len() as f64 };
        MethodScore { method, f1, macro_f1, n: ids.len() }
    };
    let vote = |j: usize, id: i64| {
        let (sc, th) = &inputs[j];
        teacher_label(&sc[&id], th, residual_noise).unwrap_or(LabelSet::EMPTY)
    };
    let n = teachers.len();
    let mut out = Vec::new();
    for (j, t) in teachers.iter().enumerate() {
        out.push(score(format!("{t} (alone)"), &|id| vote(j, id)));
    }
    for k in 1..=n {
        let name = if k == n / 2 + 1 { format!("{k}-vote (majority)") } else { format!("{k}-vote") };
        out.push(score(name, &|id| {
            let votes: Vec<LabelSet> = (0..n).map(|j| vote(j, id)).collect();
            let sc: Vec<[f64; 3]> = inputs.iter().map(|(s, _)| s[&id]).collect();
            consensus(&votes, &sc, k).0
        }));
    }
    let lm = format!(
        "label model ({} bins{})",
        bins,
        if anchor == Anchor::Gold { ", gold-anchored: optimistic" } else { "" }
    );
    out.push(score(lm, &|id| LabelSet::from_array(post[&id].map(|q| q >= 0.5))));
    Ok((report, out))
}

/// [`run`] inside a [`crate::jobs::JobRunner`] job: the runner owns the `jobs` row (its id is
/// the outcome's `job_id`); progress goes to the job's view and cancellation is honoured
/// between segments (nothing is written before the labels are complete).
pub fn run_with(ws: &Workspace, store: &mut Store, p: &Params, job: Option<&crate::jobs::JobCtx>) -> Result<Outcome> {
    if p.teachers.is_empty() {
        return Err(PseudoError::NoTeachers);
    }
    let mut seen = HashSet::new();
    for t in &p.teachers {
        if !seen.insert(t) {
            return Err(PseudoError::Duplicate(t.clone()));
        }
    }
    let n = p.teachers.len();
    let k = if n == 1 { 1 } else { p.k };
    if matches!(p.model, Combine::Vote) && (k == 0 || k > n) {
        return Err(PseudoError::BadK { k: p.k, n });
    }
    if matches!(p.model, Combine::DawidSkene { .. }) && n < 2 {
        return Err(PseudoError::LabelModelNeedsTeachers);
    }
    let (snaps, inputs) = gather(store, &p.teachers, p.residual_noise)?;
    let index = eval::segment_index(store)?;
    let gold = eval::gold_map(store, &index, None)?;
    let (label_model, posteriors) = match p.model {
        Combine::Vote => (None, HashMap::new()),
        Combine::DawidSkene { bins, anchor } => {
            let (r, q) = fit_label_model(&p.teachers, &inputs, &gold, bins, anchor, p.residual_noise);
            (Some(r), q)
        }
    };
    let source = if label_model.is_some() {
        LabelSource::from_raw("label_model_pseudo")
    } else if n == 1 {
        // A registered teacher names its own label source (whisper_pseudo, clap_zero_shot...); imported runs of
        // teachers dams does not know are <name>_pseudo or <name>_zero_shot as imported.
        match crate::catalog::find(&p.teachers[0]) {
            Ok(d) => d.label_source_of(&p.teachers[0]),
            Err(_) => LabelSource::for_teacher(&p.teachers[0], snaps[0].zero_shot),
        }
    } else {
        "consensus_pseudo".parse::<LabelSource>().unwrap_or_else(|_| LabelSource::none())
    };
    let snapshot = Snapshot {
        label_source: source.to_string(),
        teachers: snaps,
        rule: if p.residual_noise { "score>=threshold; noise = not speech and not music" } else { "score>=threshold" },
        k,
        combine: p.model,
        label_model: label_model.clone(),
        splits: p.splits.clone(),
        created_by: p.created_by.clone(),
    };
    let config = serde_json::to_string(&snapshot).unwrap_or_else(|_| "{}".into());

    let mut candidates: Vec<i64> =
        index.iter().filter(|(_, i)| p.splits.contains(&i.split)).map(|(id, _)| *id).collect();
    candidates.sort_unstable();

    let job_id = match job {
        Some(j) => {
            j.phase("labelling");
            j.progress(0, Some(candidates.len() as u64));
            j.id()
        }
        None => store.create_job("pseudo_label", &config, Some(candidates.len() as i64))?,
    };
    let result = (|| -> Result<Outcome> {
        let mut rows: Vec<(i64, LabelSet, [f32; 3])> = Vec::new();
        let (mut empty, mut unscored, mut skipped_gold) = (0, 0, 0);
        let mut positives = [0usize; 3];
        for (i, &id) in candidates.iter().enumerate() {
            if let Some(j) = job
                && i % 1024 == 0
            {
                if j.is_cancelled() {
                    return Err(PseudoError::Cancelled);
                }
                j.progress(i as u64, None);
            }
            if gold.contains_key(&id) {
                skipped_gold += 1;
                continue;
            }
            if label_model.is_some() {
                let Some(q) = posteriors.get(&id) else {
                    unscored += 1;
                    continue;
                };
                let label = LabelSet::from_array(q.map(|v| v >= 0.5));
                if label.is_empty() {
                    empty += 1;
                    continue;
                }
                for c in CLASSES {
                    positives[c.index()] += label.get(c) as usize;
                }
                rows.push((id, label, q.map(|v| v as f32)));
                continue;
            }
            let mut votes = Vec::with_capacity(n);
            let mut scores = Vec::with_capacity(n);
            for (sc, th) in &inputs {
                match sc.get(&id) {
                    Some(s) => {
                        votes.push(teacher_label(s, th, p.residual_noise).unwrap_or(LabelSet::EMPTY));
                        scores.push(*s);
                    }
                    None => break,
                }
            }
            if scores.len() < n {
                unscored += 1;
                continue;
            }
            let (label, score) = if n == 1 { (votes[0], scores[0]) } else { consensus(&votes, &scores, k) };
            if label.is_empty() {
                empty += 1;
                continue;
            }
            for c in CLASSES {
                positives[c.index()] += label.get(c) as usize;
            }
            rows.push((id, label, [score[0] as f32, score[1] as f32, score[2] as f32]));
        }
        let pseudo_run_id = store.create_pseudo_run(&source, &config)?;
        store.put_pseudo_labels(pseudo_run_id, &rows)?;
        match job {
            Some(j) => {
                j.progress(candidates.len() as u64, None);
                j.phase("writing CSV");
            }
            None => store.update_job(job_id, candidates.len() as i64, None, Some("writing CSV"), None)?,
        }

        let labels_csv = ws.metadata_dir().join("blocs_smad_labels.csv");
        let snapshot_csv =
            ws.experiments_dir().join(snapshot_file_name(source.as_str(), &p.splits, chrono::Utc::now().date_naive()));
        let pseudo: HashMap<i64, (LabelSet, [f32; 3])> = rows.iter().map(|(i, l, s)| (*i, (*l, *s))).collect();
        let text = labels_csv_text(store, &gold, &pseudo, &source)?;
        write_atomic(&labels_csv, text.as_bytes())?;
        write_atomic(&snapshot_csv, text.as_bytes())?;
        Ok(Outcome {
            job_id,
            pseudo_run_id,
            label_source: source.to_string(),
            labeled: rows.len(),
            excluded_empty: empty,
            excluded_unscored: unscored,
            skipped_gold,
            gold_rows: gold.len(),
            labels_csv,
            snapshot_csv,
            positives,
            label_model: label_model.clone(),
        })
    })();
    if job.is_some() {
        return result; // the runner records the outcome
    }
    match &result {
        Ok(o) => {
            let r = serde_json::to_string(o).unwrap_or_default();
            store.finish_job(job_id, "done", Some(&r), None)?;
        }
        Err(e) => store.finish_job(job_id, "failed", None, Some(&e.to_string()))?,
    }
    result
}

/// The labels CSV: every segment with gold (label_source `gold`) or a pseudo-label, in
/// segment order; gold wins where both exist. Columns, paths and number formats as the DAMS
/// manifest export (`crate::manifest`).
fn labels_csv_text(
    store: &Store,
    gold: &HashMap<i64, LabelSet>,
    pseudo: &HashMap<i64, (LabelSet, [f32; 3])>,
    source: &LabelSource,
) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| PseudoError::Write { path: "labels CSV".into(), source: std::io::Error::other(e) };
    w.write_record(Spelling::Dams.header()).map_err(err)?;
    for s in store.segments(None)? {
        let (src, labels, scores): (&str, LabelSet, Option<[f32; 3]>) = if let Some(g) = gold.get(&s.id) {
            ("gold", *g, None)
        } else if let Some((l, sc)) = pseudo.get(&s.id) {
            (source.as_str(), *l, Some(*sc))
        } else {
            continue;
        };
        let b = |c: Class| if labels.get(c) { "1" } else { "0" }.to_string();
        // Scores are f32: write their shortest decimal (0.8, not 0.800000011920929) in the
        // manifest's float style.
        let sc = |i: usize| {
            scores.map(|x| fmt_float(x[i].to_string().parse::<f64>().unwrap_or(x[i] as f64))).unwrap_or_default()
        };
        w.write_record([
            s.raw_file.clone(),
            manifest_path(&s.segment_path).to_string(),
            fmt_float(s.start_time),
            fmt_float(s.end_time),
            s.split.to_string(),
            src.to_string(),
            b(Class::Speech),
            b(Class::Music),
            b(Class::Noise),
            sc(0),
            sc(1),
            sc(2),
        ])
        .map_err(err)?;
    }
    let bytes = w.into_inner().map_err(|e| PseudoError::Write { path: "labels CSV".into(), source: e.into_error() })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Write a finished text file atomically (the manifest exporter's temp-file-and-rename).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::manifest::export::write_atomic(path, |w| {
        w.write_all(bytes)
            .map_err(|err| crate::manifest::ManifestError::Write { path: path.display().to_string(), err })
    })
    .map_err(|e| {
        let source = match e {
            crate::manifest::ManifestError::Write { err, .. } => err,
            other => std::io::Error::other(other.to_string()),
        };
        PseudoError::Write { path: path.display().to_string(), source }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn teacher_labels_and_residual_noise() {
        let th = [0.6, 0.4, 0.4];
        // speech .7 ≥ .6, music .3 < .4, noise .5 ≥ .4 → S-N
        assert_eq!(teacher_label(&[0.7, 0.3, 0.5], &th, false), Some(LabelSet::new(true, false, true)));
        // same with the residual rule: speech on → noise off → S--
        assert_eq!(teacher_label(&[0.7, 0.3, 0.5], &th, true), Some(LabelSet::new(true, false, false)));
        // nothing above → excluded; with the residual rule it becomes noise
        assert_eq!(teacher_label(&[0.1, 0.1, 0.1], &th, false), None);
        assert_eq!(teacher_label(&[0.1, 0.1, 0.1], &th, true), Some(LabelSet::new(false, false, true)));
        // equality counts as positive (≥)
        assert_eq!(teacher_label(&[0.6, 0.0, 0.0], &th, false), Some(LabelSet::new(true, false, false)));
    }

    #[test]
    fn consensus_votes_and_scores() {
        let v = |s: &str| LabelSet::new(s.contains('S'), s.contains('M'), s.contains('N'));
        // 3 teachers, k = 2.
        // speech votes: S from t1, t2 → on; score = mean(.8, .6) = .7
        // music votes: t3 only → off; score = .9 (the single voter's)
        // noise votes: none → off; score = mean(.1, .2, .3) = .2
        let votes = [v("S"), v("S"), v("M")];
        let scores = [[0.8, 0.1, 0.1], [0.6, 0.2, 0.2], [0.3, 0.9, 0.3]];
        let (l, s) = consensus(&votes, &scores, 2);
        assert_eq!(l, v("S"));
        assert!((s[0] - 0.7).abs() < 1e-12);
        assert!((s[1] - 0.9).abs() < 1e-12);
        assert!((s[2] - 0.2).abs() < 1e-12);
        // k = 1: any vote → S and M on
        assert_eq!(consensus(&votes, &scores, 1).0, v("SM"));
        // k = 3: unanimity → nothing
        assert!(consensus(&votes, &scores, 3).0.is_empty());
    }
}
