//! Evaluation of teacher runs against gold: metrics, calibration, the live-threshold core and
//! the disagreement queue. Everything here works on the store and plain data; the CLI and the
//! TUI render what these functions return.

pub mod calibrate;
pub mod disagreement;
pub mod explorer;
pub mod export_scores;
pub mod import;
pub mod metrics;
pub mod rounds;
pub mod workbench;

use std::collections::HashMap;

use serde::Serialize;
use thiserror::Error;

use crate::labels::{CLASSES, Class, LabelSet, Split};
use crate::store::{Store, StoreError, TeacherRun, Threshold};

#[derive(Debug, Error)]
pub enum EvalError {
    #[error("no teacher run with scores for '{0}' (import scores with `dams import-scores --teacher {0} FILE`)")]
    NoRun(String),
    #[error("no teacher run with id {0}")]
    NoRunId(i64),
    #[error(
        "teacher '{teacher}' has no {class} threshold; set one with `dams calibrate --teacher {teacher} ... --save` \
         or `dams thresholds set {teacher} {class} VALUE`"
    )]
    NoThreshold { teacher: String, class: Class },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

pub type Result<T, E = EvalError> = std::result::Result<T, E>;

/// Where a segment sits: its split and its raw-file grouping key.
#[derive(Debug, Clone)]
pub struct SegInfo {
    pub split: Split,
    /// The raw file (the segment path when the manifest names none).
    pub file: String,
}

/// Split and raw file of every segment.
pub fn segment_index(store: &Store) -> Result<HashMap<i64, SegInfo>> {
    Ok(store
        .segment_keys()?
        .into_iter()
        .map(|(id, split, raw, path)| {
            (
                id,
                SegInfo {
                    split: split.parse().unwrap_or(Split::Unsplit),
                    file: if raw.is_empty() { path } else { raw },
                },
            )
        })
        .collect())
}

/// A teacher run by id, or the newest run of `teacher` that has scores.
pub fn resolve_run(store: &Store, teacher: &str, run_id: Option<i64>) -> Result<TeacherRun> {
    let runs = store.runs()?;
    match run_id {
        Some(id) => runs.into_iter().find(|r| r.id == id).ok_or(EvalError::NoRunId(id)),
        None => runs
            .into_iter()
            .rfind(|r| r.teacher == teacher && r.n_scores > 0)
            .ok_or_else(|| EvalError::NoRun(teacher.to_string())),
    }
}

/// Scores of a run as f64, by segment id.
pub fn run_scores(store: &Store, run_id: i64) -> Result<HashMap<i64, [f64; 3]>> {
    Ok(store.run_scores(run_id)?.into_iter().map(|(id, s)| (id, [s[0] as f64, s[1] as f64, s[2] as f64])).collect())
}

/// The active thresholds of a teacher; an error names the first class without one.
pub fn required_thresholds(store: &Store, teacher: &str) -> Result<([f64; 3], [Threshold; 3])> {
    let t = store.thresholds(teacher)?;
    let mut vals = [0.0; 3];
    let mut rows: Vec<Threshold> = Vec::with_capacity(3);
    for c in CLASSES {
        match &t[c.index()] {
            Some(th) if th.value.is_some() => {
                vals[c.index()] = th.value.unwrap_or_default();
                rows.push(th.clone());
            }
            _ => return Err(EvalError::NoThreshold { teacher: teacher.to_string(), class: c }),
        }
    }
    let rows: [Threshold; 3] = rows.try_into().map_err(|_| EvalError::NoRun(teacher.to_string()))?;
    Ok((vals, rows))
}

/// Resolved gold labels (newest annotator wins) of segments in `splits` (all splits if None).
pub fn gold_map(
    store: &Store,
    index: &HashMap<i64, SegInfo>,
    splits: Option<&[Split]>,
) -> Result<HashMap<i64, LabelSet>> {
    Ok(store
        .resolved_gold()?
        .into_iter()
        .filter(|(id, _)| splits.is_none_or(|sp| index.get(id).is_some_and(|i| sp.contains(&i.split))))
        .collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Segment,
    File,
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "segment" | "segments" => Ok(Level::Segment),
            "file" | "files" | "raw" | "raw-file" => Ok(Level::File),
            o => Err(format!("unknown level '{o}' (expected segment or file)")),
        }
    }
}

/// The evaluation of one teacher run at one level.
#[derive(Debug, Clone, Serialize)]
pub struct TeacherEval {
    pub teacher: String,
    pub run_id: i64,
    pub thresholds: [f64; 3],
    pub level: Level,
    /// Gold segments (of the chosen splits) that this run did not score, left out.
    pub unscored_gold: usize,
    pub report: metrics::Report,
}

/// How `dams eval` evaluates: level, bootstrap resamples (0: none) and their seed.
#[derive(Debug, Clone, Copy)]
pub struct EvalOptions {
    pub level: Level,
    pub bootstrap: usize,
    pub seed: u64,
}

/// Evaluate one run with the given thresholds against `gold`. At file level, windows of the
/// same raw file are aggregated first (gold: OR over windows; scores: max over windows).
pub fn evaluate_run(
    run: &TeacherRun,
    scores: &HashMap<i64, [f64; 3]>,
    thresholds: [f64; 3],
    gold: &HashMap<i64, LabelSet>,
    index: &HashMap<i64, SegInfo>,
    opts: EvalOptions,
) -> TeacherEval {
    let EvalOptions { level, bootstrap, seed } = opts;
    let mut ids: Vec<i64> = gold.keys().copied().collect();
    ids.sort_unstable();
    let mut items = Vec::with_capacity(ids.len());
    let mut unscored = 0;
    for id in ids {
        match scores.get(&id) {
            Some(s) => items.push(metrics::Item {
                segment_id: id,
                file: index.get(&id).map(|i| i.file.clone()).unwrap_or_else(|| id.to_string()),
                gold: gold[&id],
                scores: *s,
            }),
            None => unscored += 1,
        }
    }
    if level == Level::File {
        items = metrics::aggregate_by_file(&items);
    }
    let g: Vec<LabelSet> = items.iter().map(|i| i.gold).collect();
    let p: Vec<LabelSet> = items.iter().map(|i| metrics::predict(&i.scores, &thresholds)).collect();
    TeacherEval {
        teacher: run.teacher.clone(),
        run_id: run.id,
        thresholds,
        level,
        unscored_gold: unscored,
        report: metrics::evaluate(&g, &p, bootstrap, seed),
    }
}

/// Cohen's kappa between two annotators, per class, on the segments both labelled.
#[derive(Debug, Clone, Serialize)]
pub struct AnnotatorKappa {
    pub a: String,
    pub b: String,
    pub n: usize,
    pub kappa: [Option<f64>; 3],
}

/// Kappa for every pair of annotators with common segments (restricted to `splits` if given).
pub fn annotator_kappas(
    store: &Store,
    index: &HashMap<i64, SegInfo>,
    splits: Option<&[Split]>,
) -> Result<Vec<AnnotatorKappa>> {
    let anns = store.annotators()?;
    let mut golds = Vec::new();
    for (id, name) in &anns {
        let g: HashMap<i64, LabelSet> = store
            .gold_of(*id)?
            .into_iter()
            .filter(|(s, _)| splits.is_none_or(|sp| index.get(s).is_some_and(|i| sp.contains(&i.split))))
            .collect();
        golds.push((name.clone(), g));
    }
    let mut out = Vec::new();
    for i in 0..golds.len() {
        for j in i + 1..golds.len() {
            let mut common: Vec<i64> = golds[i].1.keys().filter(|k| golds[j].1.contains_key(k)).copied().collect();
            if common.is_empty() {
                continue;
            }
            common.sort_unstable();
            let mut kappa = [None; 3];
            for c in CLASSES {
                let a: Vec<bool> = common.iter().map(|k| golds[i].1[k].get(c)).collect();
                let b: Vec<bool> = common.iter().map(|k| golds[j].1[k].get(c)).collect();
                kappa[c.index()] = metrics::cohen_kappa(&a, &b);
            }
            out.push(AnnotatorKappa { a: golds[i].0.clone(), b: golds[j].0.clone(), n: common.len(), kappa });
        }
    }
    Ok(out)
}

/// Build the live-threshold explorer of one class of a run: gold of `gold_splits` (segments
/// without a score are skipped) and the scores of every scored segment without gold as the
/// unlabeled pool. Starts at `threshold` (e.g. the active one, or 0.5).
pub fn explorer_for_run(
    store: &Store,
    run_id: i64,
    class: Class,
    gold_splits: Option<&[Split]>,
    threshold: f64,
) -> Result<explorer::ClassExplorer> {
    let index = segment_index(store)?;
    let all_gold = gold_map(store, &index, None)?;
    let scores = run_scores(store, run_id)?;
    let (gold, unl) = calibration_pools(&scores, &all_gold, &index, gold_splits, class);
    let gold: Vec<(i64, f64, bool)> = gold;
    Ok(explorer::ClassExplorer::new(class, &gold, &unl, threshold))
}

/// The gold pool `(segment_id, score, positive)` from `gold_splits` and the unlabeled pool
/// (scores of segments with no gold label at all) of one class.
pub fn calibration_pools(
    scores: &HashMap<i64, [f64; 3]>,
    all_gold: &HashMap<i64, LabelSet>,
    index: &HashMap<i64, SegInfo>,
    gold_splits: Option<&[Split]>,
    class: Class,
) -> (Vec<(i64, f64, bool)>, Vec<f64>) {
    let mut gold = Vec::new();
    let mut unl = Vec::new();
    let mut ids: Vec<&i64> = scores.keys().collect();
    ids.sort_unstable();
    for id in ids {
        let s = scores[id][class.index()];
        match all_gold.get(id) {
            Some(g) => {
                if gold_splits.is_none_or(|sp| index.get(id).is_some_and(|i| sp.contains(&i.split))) {
                    gold.push((*id, s, g.get(class)));
                }
            }
            None => unl.push(s),
        }
    }
    (gold, unl)
}
