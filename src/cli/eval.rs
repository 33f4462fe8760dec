//! `dams import-scores`, `dams eval`, `dams calibrate`, `dams thresholds`, `dams pseudo-label`,
//! `dams disagreements` and `dams bench thresholds`: thin wrappers over `crate::eval` and
//! `crate::pseudo`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::Ctx;
use crate::eval::calibrate::{Calibration, Method};
use crate::eval::disagreement::{self, Filter, Order, TeacherVotes};
use crate::eval::explorer::ClassExplorer;
use crate::eval::metrics::SplitMix64;
use crate::eval::{self, AnnotatorKappa, Level, TeacherEval};
use crate::labels::{CLASSES, Class, LabelSet, Split};
use crate::store::{NewThreshold, Store};

fn split_names(s: &[Split]) -> String {
    s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(",")
}

// ---------------------------------------------------------------- import-scores

#[derive(Debug, Args)]
pub struct ImportScoresArgs {
    /// Teacher name the scores belong to (e.g. ast, whisper, clap).
    #[arg(long)]
    pub teacher: String,
    /// Scores CSV: `segment_path` plus `speech_score, music_score, noise_score`; also accepted:
    /// `<teacher>_<class>_score` (e.g. ast_speech_score), `speech/music/noise`, `<teacher>_<class>`.
    pub file: PathBuf,
    /// The teacher is zero-shot (its pseudo-labels are `<teacher>_zero_shot`).
    #[arg(long)]
    pub zero_shot: bool,
}

pub fn run_import_scores(ctx: &Ctx, a: ImportScoresArgs) -> Result<()> {
    let ws = ctx.workspace()?;
    let mut store = ws.open_store()?;
    let o = eval::import::import_scores(&ws, &mut store, &a.teacher, &a.file, a.zero_shot)?;
    println!(
        "imported {} scores for teacher '{}' as run #{} (columns: {}, {}, {})",
        o.rows, a.teacher, o.run_id, o.columns[0], o.columns[1], o.columns[2]
    );
    Ok(())
}

// ---------------------------------------------------------------- eval

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Teachers to evaluate (newest run of each); repeat or comma-separate. Default: all.
    #[arg(long, value_delimiter = ',')]
    pub teacher: Vec<String>,
    /// Evaluate every teacher with scores (the default when no --teacher is given).
    #[arg(long, conflicts_with = "teacher")]
    pub all: bool,
    /// Splits whose gold labels are used.
    #[arg(long, default_value = "dev,test", value_delimiter = ',')]
    pub split: Vec<Split>,
    /// segment, or file: windows of one raw file aggregated (gold: class on if on in ANY window;
    /// scores: MAX over windows, so a file is predicted positive if any window is).
    #[arg(long, default_value = "segment")]
    pub level: Level,
    /// Bootstrap resamples for the 95 % intervals (0: none).
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// Seed of the bootstrap resampling (same seed, same intervals).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Also write everything as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also write the per-class table as CSV.
    #[arg(long)]
    pub csv: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct TeacherKappa {
    pub class: Class,
    pub teachers: Vec<String>,
    pub kappa: Vec<Vec<Option<f64>>>,
}

#[derive(Debug, Serialize)]
pub struct EvalOutput {
    pub splits: Vec<Split>,
    pub level: Level,
    pub gold_segments: usize,
    pub teachers: Vec<TeacherEval>,
    pub teacher_kappa: Vec<TeacherKappa>,
    pub annotator_kappa: Vec<AnnotatorKappa>,
}

/// Teachers named, or all teachers with a scored run.
fn pick_teachers(store: &Store, named: &[String]) -> Result<Vec<String>> {
    if named.is_empty() {
        let v: Vec<String> = store.latest_runs()?.into_iter().map(|r| r.teacher).collect();
        if v.is_empty() {
            bail!("no teacher runs with scores; import some with `dams import-scores --teacher NAME FILE`");
        }
        Ok(v)
    } else {
        Ok(named.to_vec())
    }
}

/// Everything `dams eval` computes, for the CLI and tests.
pub fn compute_eval(store: &Store, a: &EvalArgs) -> Result<EvalOutput> {
    let teachers = pick_teachers(store, &a.teacher)?;
    let index = eval::segment_index(store)?;
    let gold = eval::gold_map(store, &index, Some(&a.split))?;
    let mut evals = Vec::new();
    let mut votes = Vec::new();
    for t in &teachers {
        let run = eval::resolve_run(store, t, None)?;
        let (th, _) = eval::required_thresholds(store, t)?;
        let scores = eval::run_scores(store, run.id)?;
        let opts = eval::EvalOptions { level: a.level, bootstrap: a.bootstrap, seed: a.seed };
        evals.push(eval::evaluate_run(&run, &scores, th, &gold, &index, opts));
        votes.push(TeacherVotes { teacher: t.clone(), run_id: run.id, scores, thresholds: th });
    }
    let teacher_kappa = if votes.len() >= 2 {
        CLASSES
            .iter()
            .map(|&c| TeacherKappa {
                class: c,
                teachers: teachers.clone(),
                kappa: disagreement::agreement_matrix(&votes, c),
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(EvalOutput {
        splits: a.split.clone(),
        level: a.level,
        gold_segments: gold.len(),
        teachers: evals,
        teacher_kappa,
        annotator_kappa: eval::annotator_kappas(store, &index, Some(&a.split))?,
    })
}

fn kfmt(k: Option<f64>) -> String {
    k.map(|v| format!("{v:.3}")).unwrap_or_else(|| "n/a".into())
}

pub fn print_eval(o: &EvalOutput) {
    let level = match o.level {
        Level::Segment => "segment level",
        Level::File => "raw-file level (gold: OR over windows; scores: max over windows)",
    };
    println!("gold: {} segments in {} — {level}", o.gold_segments, split_names(&o.splits));
    for t in &o.teachers {
        let r = &t.report;
        println!();
        println!(
            "{} (run #{}), thresholds S {:.3} M {:.3} N {:.3}: n = {}{}{}",
            t.teacher,
            t.run_id,
            t.thresholds[0],
            t.thresholds[1],
            t.thresholds[2],
            r.n,
            if t.unscored_gold > 0 {
                format!(" ({} gold segments unscored, left out)", t.unscored_gold)
            } else {
                String::new()
            },
            if r.bootstrap > 0 {
                format!(", 95 % bootstrap intervals ({} resamples, seed {})", r.bootstrap, r.seed)
            } else {
                String::new()
            }
        );
        println!(
            "  {:<8} {:<22} {:<22} {:<22} {:>5} {:>5} {:>5} {:>5}",
            "class", "precision", "recall", "F1", "TP", "FP", "FN", "TN"
        );
        for c in &r.classes {
            let m = &c.confusion;
            println!(
                "  {:<8} {:<22} {:<22} {:<22} {:>5} {:>5} {:>5} {:>5}",
                c.class.name(),
                c.precision.fmt3(),
                c.recall.fmt3(),
                c.f1.fmt3(),
                m.tp,
                m.fp,
                m.fn_,
                m.tn
            );
        }
        println!("  macro F1 {}", r.macro_f1.fmt3());
        println!("  label combinations (rows: gold, columns: predicted):");
        let heads: Vec<String> = (0..8u8).map(|b| LabelSet::from_bits(b).compact()).collect();
        println!("    {:<5}{}", "", heads.iter().map(|h| format!("{h:>6}")).collect::<String>());
        for (g, row) in r.combinations.iter().enumerate() {
            if row.iter().all(|&x| x == 0) {
                continue;
            }
            println!("    {:<5}{}", heads[g], row.iter().map(|x| format!("{x:>6}")).collect::<String>());
        }
    }
    for k in &o.teacher_kappa {
        println!();
        println!("Cohen's kappa between teachers, {} (segments both scored):", k.class);
        println!("  {:<12}{}", "", k.teachers.iter().map(|t| format!("{t:>12}")).collect::<String>());
        for (i, t) in k.teachers.iter().enumerate() {
            println!("  {:<12}{}", t, k.kappa[i].iter().map(|v| format!("{:>12}", kfmt(*v))).collect::<String>());
        }
    }
    if !o.annotator_kappa.is_empty() {
        println!();
        println!("Cohen's kappa between annotators (segments both labelled):");
        for a in &o.annotator_kappa {
            println!(
                "  {} × {} (n = {}): speech {}  music {}  noise {}",
                a.a,
                a.b,
                a.n,
                kfmt(a.kappa[0]),
                kfmt(a.kappa[1]),
                kfmt(a.kappa[2])
            );
        }
    }
}

fn eval_csv(o: &EvalOutput) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "teacher",
        "run_id",
        "level",
        "class",
        "threshold",
        "n",
        "tp",
        "fp",
        "fn",
        "tn",
        "precision",
        "precision_lo",
        "precision_hi",
        "recall",
        "recall_lo",
        "recall_hi",
        "f1",
        "f1_lo",
        "f1_hi",
    ])?;
    let f = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_default();
    let level = match o.level {
        Level::Segment => "segment",
        Level::File => "file",
    };
    for t in &o.teachers {
        for c in &t.report.classes {
            let m = &c.confusion;
            w.write_record([
                t.teacher.clone(),
                t.run_id.to_string(),
                level.into(),
                c.class.name().into(),
                t.thresholds[c.class.index()].to_string(),
                t.report.n.to_string(),
                m.tp.to_string(),
                m.fp.to_string(),
                m.fn_.to_string(),
                m.tn.to_string(),
                c.precision.value.to_string(),
                f(c.precision.lo),
                f(c.precision.hi),
                c.recall.value.to_string(),
                f(c.recall.lo),
                f(c.recall.hi),
                c.f1.value.to_string(),
                f(c.f1.lo),
                f(c.f1.hi),
            ])?;
        }
        let mf = &t.report.macro_f1;
        let mut row = vec![t.teacher.clone(), t.run_id.to_string(), level.into(), "macro".into()];
        row.extend([String::new(), t.report.n.to_string()]);
        row.extend(std::iter::repeat_n(String::new(), 10));
        row.extend([mf.value.to_string(), f(mf.lo), f(mf.hi)]);
        w.write_record(row)?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("{}", e.error()))
}

pub fn run_eval(ctx: &Ctx, a: EvalArgs) -> Result<()> {
    let ws = ctx.workspace()?;
    let store = ws.open_store()?;
    let o = compute_eval(&store, &a)?;
    print_eval(&o);
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&o)?).with_context(|| format!("writing {}", p.display()))?;
        println!("\nwrote {}", p.display());
    }
    if let Some(p) = &a.csv {
        std::fs::write(p, eval_csv(&o)?).with_context(|| format!("writing {}", p.display()))?;
        println!("wrote {}", p.display());
    }
    Ok(())
}

// ---------------------------------------------------------------- calibrate

#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// Teacher to calibrate.
    #[arg(long)]
    pub teacher: String,
    /// A specific run (default: the teacher's newest run with scores).
    #[arg(long)]
    pub run: Option<i64>,
    /// target-precision (on gold), quantile (of unlabeled scores) or f1 (F1-optimal on gold).
    #[arg(long, default_value = "target-precision")]
    pub method: Method,
    /// Target precision (default 0.85) or quantile (default 0.9).
    #[arg(long)]
    pub target: Option<f64>,
    /// Classes to calibrate (default: all three).
    #[arg(long, value_delimiter = ',')]
    pub class: Option<Vec<Class>>,
    /// Splits whose gold is used by target-precision and f1.
    #[arg(long, default_value = "dev", value_delimiter = ',')]
    pub split: Vec<Split>,
    /// Store the thresholds that reached their goal (with provenance).
    #[arg(long)]
    pub save: bool,
}

pub fn calibrate_run(store: &Store, a: &CalibrateArgs) -> Result<(i64, Vec<(Class, Calibration)>)> {
    let run = eval::resolve_run(store, &a.teacher, a.run)?;
    if run.teacher != a.teacher {
        bail!("run #{} belongs to teacher '{}', not '{}'", run.id, run.teacher, a.teacher);
    }
    let target = a.target.unwrap_or(if a.method == Method::Quantile { 0.9 } else { 0.85 });
    if !(0.0..=1.0).contains(&target) {
        bail!("--target must lie in [0, 1], not {target}");
    }
    let index = eval::segment_index(store)?;
    let gold = eval::gold_map(store, &index, None)?;
    let scores = eval::run_scores(store, run.id)?;
    let classes = a.class.clone().unwrap_or_else(|| CLASSES.to_vec());
    let mut out = Vec::new();
    for c in classes {
        let (g, unl) = eval::calibration_pools(&scores, &gold, &index, Some(&a.split), c);
        let mut e = ClassExplorer::new(c, &g, &unl, 0.5);
        out.push((c, e.calibrate(a.method, target)));
    }
    Ok((run.id, out))
}

pub fn run_calibrate(ctx: &Ctx, a: CalibrateArgs) -> Result<()> {
    let ws = ctx.workspace()?;
    let mut store = ws.open_store()?;
    let (run_id, res) = calibrate_run(&store, &a)?;
    let pool = if a.method == Method::Quantile {
        "unlabeled segments".to_string()
    } else {
        format!("gold on {}", split_names(&a.split))
    };
    println!("{} run #{run_id}, {} on {pool}:", a.teacher, a.method.as_str());
    for (c, cal) in &res {
        match (cal.threshold, &cal.at) {
            (Some(t), Some(p)) => println!(
                "  {:<7} threshold {t:.4}  precision {:.3} recall {:.3} F1 {:.3}  (TP {} FP {}; n {}, {} positive)",
                c.name(),
                p.precision,
                p.recall,
                p.f1,
                p.tp,
                p.fp,
                cal.n,
                cal.positives
            ),
            (Some(t), None) => println!("  {:<7} threshold {t:.4}  (quantile of {} scores)", c.name(), cal.n),
            (None, _) => {
                println!("  {:<7} {} — threshold left unset", c.name(), cal.reason.as_deref().unwrap_or("unreachable"))
            }
        }
    }
    if a.save {
        for (c, cal) in &res {
            if let Some(t) = cal.threshold {
                let id = store.save_threshold(&NewThreshold {
                    teacher: a.teacher.clone(),
                    class: Some(*c),
                    value: Some(t),
                    method: a.method.as_str().into(),
                    target: cal.target,
                    run_id: Some(run_id),
                    gold_n: (a.method != Method::Quantile).then_some(cal.n as i64),
                    source: None,
                    created_by: ctx.annotator().to_string(),
                    note: Some(if a.method == Method::Quantile {
                        format!("quantile of {} unlabeled scores", cal.n)
                    } else {
                        format!("calibrated on gold of {}", split_names(&a.split))
                    }),
                })?;
                println!("  saved {} threshold #{id}", c.name());
            }
        }
    } else {
        println!("(not saved; add --save to store these thresholds)");
    }
    Ok(())
}

// ---------------------------------------------------------------- thresholds

#[derive(Debug, Args)]
pub struct ThresholdsArgs {
    #[command(subcommand)]
    pub action: Option<ThresholdsAction>,
}

#[derive(Debug, Subcommand)]
pub enum ThresholdsAction {
    /// Show the active thresholds and their provenance (the default).
    Show {
        /// Only this teacher.
        #[arg(long)]
        teacher: Option<String>,
    },
    /// Set a threshold by hand (method `manual`).
    Set {
        teacher: String,
        class: Class,
        value: f64,
        #[arg(long)]
        note: Option<String>,
    },
    /// Reuse one teacher's active thresholds for another (as the Python project reuses AST's).
    Copy {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// Classes to copy (default: all three).
        #[arg(long, value_delimiter = ',')]
        class: Option<Vec<Class>>,
    },
}

/// Copy the active thresholds of `from` to `to`; returns the new threshold ids.
pub fn copy_thresholds(store: &mut Store, from: &str, to: &str, classes: &[Class], who: &str) -> Result<Vec<i64>> {
    if !eval::import::valid_teacher_name(to) {
        bail!("invalid teacher name '{to}'");
    }
    let src = store.thresholds(from)?;
    let mut ids = Vec::new();
    for &c in classes {
        let Some(t) = &src[c.index()] else {
            bail!("teacher '{from}' has no {c} threshold to copy");
        };
        let Some(v) = t.value else {
            bail!("teacher '{from}' has no usable {c} threshold (its last calibration was unreachable)");
        };
        ids.push(store.save_threshold(&NewThreshold {
            teacher: to.to_string(),
            class: Some(c),
            value: Some(v),
            method: "copied".into(),
            target: t.target,
            run_id: None,
            gold_n: t.gold_n,
            source: Some(from.to_string()),
            created_by: who.to_string(),
            note: Some(format!("copied from {from} threshold #{} ({})", t.id, t.method)),
        })?);
    }
    Ok(ids)
}

pub fn run_thresholds(ctx: &Ctx, a: ThresholdsArgs) -> Result<()> {
    let ws = ctx.workspace()?;
    let mut store = ws.open_store()?;
    match a.action.unwrap_or(ThresholdsAction::Show { teacher: None }) {
        ThresholdsAction::Show { teacher } => {
            let teachers: Vec<String> = match teacher {
                Some(t) => vec![t],
                None => store.teachers_with_thresholds_or_runs()?,
            };
            if teachers.is_empty() {
                println!("no thresholds yet (dams calibrate --save, or dams thresholds set)");
            }
            for t in teachers {
                println!("{t}:");
                for (c, th) in CLASSES.iter().zip(store.thresholds(&t)?) {
                    match th {
                        None => println!("  {:<7} unset", c.name()),
                        Some(th) => {
                            let mut prov = vec![th.method.clone()];
                            if let Some(x) = th.target {
                                prov.push(format!("target {x}"));
                            }
                            if let Some(r) = th.run_id {
                                prov.push(format!("run #{r}"));
                            }
                            if let Some(n) = th.gold_n {
                                prov.push(format!("gold n {n}"));
                            }
                            if let Some(s) = &th.source {
                                prov.push(format!("from {s}"));
                            }
                            prov.push(format!("by {} at {}", th.created_by, th.created_at));
                            if let Some(n) = &th.note {
                                prov.push(n.clone());
                            }
                            let v = th.value.map(|v| format!("{v:.4}")).unwrap_or_else(|| "unset".into());
                            println!("  {:<7} {v:<8} #{} {}", c.name(), th.id, prov.join(", "));
                        }
                    }
                }
            }
        }
        ThresholdsAction::Set { teacher, class, value, note } => {
            if !value.is_finite() {
                bail!("the threshold must be a finite number");
            }
            if !eval::import::valid_teacher_name(&teacher) {
                bail!("invalid teacher name '{teacher}'");
            }
            let id = store.save_threshold(&NewThreshold {
                teacher: teacher.clone(),
                class: Some(class),
                value: Some(value),
                method: "manual".into(),
                target: None,
                run_id: None,
                gold_n: None,
                source: None,
                created_by: ctx.annotator().to_string(),
                note,
            })?;
            println!("{teacher} {class} threshold = {value} (#{id})");
        }
        ThresholdsAction::Copy { from, to, class } => {
            let classes = class.unwrap_or_else(|| CLASSES.to_vec());
            let ids = copy_thresholds(&mut store, &from, &to, &classes, ctx.annotator())?;
            println!("copied {} threshold(s) from {from} to {to} (#{:?})", ids.len(), ids);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- pseudo-label

#[derive(Debug, Args)]
pub struct PseudoArgs {
    /// Teacher(s); with several, a consensus is taken. Repeat or comma-separate.
    #[arg(long, required = true, value_delimiter = ',')]
    pub teacher: Vec<String>,
    /// Consensus: a class is on when at least k teachers vote for it.
    #[arg(long, default_value_t = 2)]
    pub k: usize,
    /// The Python AST/Whisper rule: noise = not speech and not music (noise threshold unused).
    #[arg(long)]
    pub residual_noise: bool,
    /// Splits that receive pseudo-labels (segments with gold never do).
    #[arg(long, default_value = "train,unlabeled", value_delimiter = ',')]
    pub splits: Vec<Split>,
    /// How several teachers combine: vote (k-vote consensus) or dawid-skene (a label model: each teacher's
    /// accuracy per class estimated by EM without gold; labels are its posteriors ≥ 0.5, scores the posteriors).
    #[arg(long, default_value = "vote")]
    pub model: String,
    /// Label model: 2 (votes) or 4 (scores binned around each threshold).
    #[arg(long, default_value_t = 4)]
    pub bins: usize,
    /// Label model: fix segments with gold to their gold label while fitting (semi-supervised).
    #[arg(long)]
    pub anchor_gold: bool,
}

/// The fitted accuracies of a label model, one line per class and teacher.
pub fn print_label_model(r: &crate::pseudo::LabelModelReport) {
    println!(
        "label model (Dawid–Skene, {} bins, {}): fitted per class",
        r.bins,
        if r.anchor == crate::labelmodel::Anchor::Gold { "gold anchors the fit" } else { "no gold in the fit" }
    );
    for (c, f) in CLASSES.iter().zip(&r.classes) {
        println!(
            "  {:<7} prior {:.3}  {} segments, {} EM iterations{}{}",
            c.name(),
            f.prior,
            f.n,
            f.iterations,
            if f.converged { "" } else { " (not converged)" },
            if f.swapped { ", swapped from the label-switched solution" } else { "" }
        );
        for (j, t) in r.teachers.iter().enumerate() {
            println!("    {:<24} sensitivity {:.3}  specificity {:.3}", t, f.sensitivity[j], f.specificity[j]);
        }
    }
    if r.gold_n > 0 {
        let f = r.gold_f1.map(|x| x.map_or("-".to_string(), |v| format!("{v:.3}")));
        println!("  against gold on {} fitted segments: F1 {} / {} / {}", r.gold_n, f[0], f[1], f[2]);
    }
}

pub fn run_pseudo(ctx: &Ctx, a: PseudoArgs) -> Result<()> {
    let ws = ctx.workspace()?;
    let mut store = ws.open_store()?;
    let splits: Vec<Split> = a.splits.clone();
    let model = crate::pseudo::Combine::parse(&a.model, a.bins, a.anchor_gold).map_err(anyhow::Error::msg)?;
    let o = crate::pseudo::run(
        &ws,
        &mut store,
        &crate::pseudo::Params {
            teachers: a.teacher.clone(),
            k: a.k,
            model,
            residual_noise: a.residual_noise,
            splits,
            created_by: ctx.annotator().to_string(),
        },
    )?;
    println!(
        "pseudo-label run #{} ({}; job #{}): {} segments labelled (speech {}, music {}, noise {})",
        o.pseudo_run_id, o.label_source, o.job_id, o.labeled, o.positives[0], o.positives[1], o.positives[2]
    );
    println!(
        "  left out: {} with no class on, {} not scored by every teacher; {} kept their gold label",
        o.excluded_empty, o.excluded_unscored, o.skipped_gold
    );
    println!("  wrote {} ({} gold rows first-class)", o.labels_csv.display(), o.gold_rows);
    println!("  wrote {}", o.snapshot_csv.display());
    if let Some(r) = &o.label_model {
        print_label_model(r);
    }
    Ok(())
}

// ---------------------------------------------------------------- label model

#[derive(Debug, Args)]
pub struct LabelModelArgs {
    /// Teachers to combine (newest run of each; at least two). Repeat or comma-separate.
    #[arg(long, required = true, value_delimiter = ',')]
    pub teacher: Vec<String>,
    /// 2 (votes) or 4 (scores binned around each threshold).
    #[arg(long, default_value_t = 4)]
    pub bins: usize,
    /// Fix segments with gold to their gold label while fitting (then the label model's figure is optimistic).
    #[arg(long)]
    pub anchor_gold: bool,
    /// The noise rule of the Python AST/Whisper pseudo-labels (noise = not speech and not music).
    #[arg(long)]
    pub residual_noise: bool,
    /// Gold splits to compare on.
    #[arg(long, default_value = "dev,test", value_delimiter = ',')]
    pub split: Vec<Split>,
    /// Also write everything as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// `dams label-model`: fit the label model over the teachers and compare, on gold, each teacher alone, every
/// k-vote and the label model. Writes nothing to the workspace.
pub fn run_label_model(ctx: &Ctx, a: LabelModelArgs) -> Result<()> {
    let ws = ctx.workspace()?;
    let store = ws.open_store()?;
    if a.bins != 2 && a.bins != 4 {
        anyhow::bail!("--bins must be 2 or 4, not {}", a.bins);
    }
    let anchor = if a.anchor_gold { crate::labelmodel::Anchor::Gold } else { crate::labelmodel::Anchor::None };
    let (report, methods) = crate::pseudo::compare(&store, &a.teacher, a.bins, anchor, a.residual_noise, &a.split)?;
    print_label_model(&report);
    let splits: Vec<&str> = a.split.iter().map(|s| s.as_str()).collect();
    let n = methods.first().map_or(0, |m| m.n);
    println!("\nagainst gold ({} segments of {} scored by every teacher): F1", n, splits.join(","));
    println!("  {:<44} {:>7} {:>7} {:>7} {:>7}", "method", "speech", "music", "noise", "macro");
    for m in &methods {
        let f = m.f1.map(|x| x.map_or("-".to_string(), |v| format!("{v:.3}")));
        println!("  {:<44} {:>7} {:>7} {:>7} {:>7.3}", m.method, f[0], f[1], f[2], m.macro_f1);
    }
    if let Some(path) = &a.json {
        let v = serde_json::json!({"label_model": report, "methods": methods, "splits": splits});
        std::fs::write(path, serde_json::to_string_pretty(&v)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

// ---------------------------------------------------------------- disagreements

#[derive(Debug, Args)]
pub struct DisagreementsArgs {
    /// Teachers to compare (default: all with scores and thresholds).
    #[arg(long, value_delimiter = ',')]
    pub teacher: Vec<String>,
    /// entropy (vote entropy), spread (score max − min), gold (disagreement with gold) or uncertainty (the
    /// entropy of the label model's posterior: a Dawid–Skene fit over the compared teachers).
    #[arg(long, default_value = "entropy")]
    pub order: Order,
    /// Rank by one class (default: sum over classes).
    #[arg(long)]
    pub class: Option<Class>,
    /// Only these splits.
    #[arg(long, value_delimiter = ',')]
    pub split: Option<Vec<Split>>,
    /// How many to list.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

pub fn run_disagreements(ctx: &Ctx, a: DisagreementsArgs) -> Result<()> {
    let ws = ctx.workspace()?;
    let store = ws.open_store()?;
    let teachers = pick_teachers(&store, &a.teacher)?;
    let index = eval::segment_index(&store)?;
    let gold = eval::gold_map(&store, &index, None)?;
    let mut votes = Vec::new();
    for t in &teachers {
        let run = eval::resolve_run(&store, t, None)?;
        let (th, _) = eval::required_thresholds(&store, t)?;
        votes.push(TeacherVotes {
            teacher: t.clone(),
            run_id: run.id,
            scores: eval::run_scores(&store, run.id)?,
            thresholds: th,
        });
    }
    if votes.len() < 2 {
        bail!("disagreement needs at least two teachers with scores and thresholds");
    }
    let rows = disagreement::rows(&votes, &index, &gold);
    let q = disagreement::queue(&rows, a.order, &Filter { class: a.class, splits: a.split.unwrap_or_default() });
    let paths: HashMap<i64, String> = store.segments(None)?.into_iter().map(|s| (s.id, s.segment_path)).collect();
    println!("{} of {} segments scored by ≥ 2 teachers disagree; top {}:", q.len(), rows.len(), a.limit.min(q.len()));
    println!("  {:<40} {:<9} {:>9} {:>9}  votes S/M/N  gold", "segment", "split", "entropy", "spread");
    for &i in q.iter().take(a.limit) {
        let r = &rows[i];
        println!(
            "  {:<40} {:<9} {:>9.3} {:>9.3}  {}/{}/{} of {}  {}",
            paths.get(&r.segment_id).map(String::as_str).unwrap_or("?"),
            r.split.as_str(),
            r.key(Order::VoteEntropy, a.class).unwrap_or(0.0),
            r.key(Order::Spread, a.class).unwrap_or(0.0),
            r.votes[0],
            r.votes[1],
            r.votes[2],
            r.n_teachers,
            r.gold.map(|g| g.compact()).unwrap_or_else(|| "-".into())
        );
    }
    Ok(())
}

// ---------------------------------------------------------------- bench thresholds

#[derive(Debug, Args)]
pub struct BenchThresholdsArgs {
    /// Gold-labelled scored segments (the same number of unlabeled ones is added).
    #[arg(long, default_value_t = 100_000)]
    pub n: usize,
    /// Threshold moves to time.
    #[arg(long, default_value_t = 2000)]
    pub moves: usize,
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    crate::eval::metrics::quantile_sorted(sorted, q).unwrap_or(f64::NAN)
}

/// Threshold move → recomputed metrics (+ flips) at `n` gold and `n` unlabeled scores, against
/// a naive full rescan of the same data for the same moves.
pub fn run_bench_thresholds(a: BenchThresholdsArgs) -> Result<()> {
    let n = a.n.max(1);
    let mut rng = SplitMix64::new(2024);
    let unif = |r: &mut SplitMix64| (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    // Gold: positives score higher on average, so the PR curve is realistic.
    let gold: Vec<(i64, f64, bool)> = (0..n)
        .map(|i| {
            let pos = unif(&mut rng) < 0.3;
            let s = if pos { 0.4 + 0.6 * unif(&mut rng) } else { 0.7 * unif(&mut rng) };
            (i as i64, (s * 1000.0).round() / 1000.0, pos) // 3 decimals: many ties, as real scores
        })
        .collect();
    let unl: Vec<f64> = (0..n).map(|_| unif(&mut rng)).collect();
    let t0 = Instant::now();
    let mut e = ClassExplorer::new(Class::Speech, &gold, &unl, 0.5);
    let build = t0.elapsed().as_secs_f64() * 1e3;
    // The moves: fine and coarse steps both ways, and jumps.
    let mut targets = Vec::with_capacity(a.moves);
    let mut t = 0.5;
    for i in 0..a.moves {
        t = match i % 4 {
            0 => t + 0.01,
            1 => t - 0.05,
            2 => t + 0.05,
            _ => unif(&mut rng),
        };
        t = f64::clamp(t, 0.0, 1.0);
        targets.push(t);
    }
    let mut fast = Vec::with_capacity(a.moves);
    let mut flips_total = 0usize;
    for &t in &targets {
        let s = Instant::now();
        let m = *e.set_threshold(t);
        // what a view shows: the count and the first screenful of flips
        let f = e.flip_count();
        std::hint::black_box(e.flips().take(20).count());
        fast.push(s.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box((m, f));
        flips_total += f;
    }
    // Naive: rescan every score per move (metrics + flips by comparing old and new decisions).
    let mut naive = Vec::with_capacity(a.moves);
    let mut prev = 0.5;
    for &t in &targets {
        let s = Instant::now();
        let m = e.metrics_by_scan(t);
        let mut f = 0usize;
        for g in &gold {
            f += ((g.1 >= prev) != (g.1 >= t)) as usize;
        }
        naive.push(s.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box((m, f));
        prev = t;
        // check agreement with the fast path
        if m != e.metrics_at(t) {
            bail!("benchmark self-check failed: binary search and scan disagree at t = {t}");
        }
    }
    fast.sort_by(f64::total_cmp);
    naive.sort_by(f64::total_cmp);
    let (f50, f99, n50, n99) = (pct(&fast, 0.5), pct(&fast, 0.99), pct(&naive, 0.5), pct(&naive, 0.99));
    println!("bench thresholds: {n} gold + {n} unlabeled scores, {} moves (fine, coarse, jumps)", a.moves);
    println!("  one-time sort + prefix counts + PR curve: {build:.1} ms ({} curve points)", e.curve().len());
    println!(
        "  move (binary search + flips): p50 {f50:.4} ms  p99 {f99:.4} ms  (mean {:.0} flips per move, first 20 listed)",
        flips_total as f64 / a.moves.max(1) as f64
    );
    println!("  naive full rescan:            p50 {n50:.4} ms  p99 {n99:.4} ms");
    println!(
        "  speed-up p50 ×{:.0}, p99 ×{:.0}; goal < 16 ms per move: {}",
        n50 / f50,
        n99 / f99,
        if f99 < 16.0 { "met" } else { "NOT met" }
    );
    Ok(())
}
