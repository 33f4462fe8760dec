//! `dams loop`: rounds of self-training, headless. Each round: score the workspace with every teacher that has no
//! run yet (the previous round's student included), combine them (k-vote, or the Dawid–Skene label model) and
//! pseudo-label the train and unlabelled segments, train a student on those pseudo-labels only (with the label model:
//! soft targets weighted by confidence unless `--hard`), score with it, and evaluate every teacher and the student on
//! gold dev (and test). The defaults are the best recipe measured in docs/selftrain.md: the union of the teachers
//! (`--combine vote --k 1`) and a head on INA's frozen CNN (`--backbone ina-head`).
//! Rounds are recorded in `experiments/loop_<seed>_<time>.json`; students are ordinary teachers afterwards
//! (`student:<name>`: the TUI's eval and disagreement views compare them).

use anyhow::{Context, Result, bail};
use clap::Args;

use super::Ctx;
use super::teachers::run_job;
use crate::eval::rounds::{Round, TeacherF1};
use crate::jobs::catalog::{JobSpec, ScoreJob};
use crate::labelmodel::Anchor;
use crate::labels::Split;
use crate::pseudo::{self, Combine};
use crate::student::data::{SourceSpec, Targets};
use crate::student::train::TrainConfig;
use crate::student::{DeviceChoice, StudentKind, TrainRequest};

#[derive(Debug, Args)]
pub struct LoopArgs {
    /// Rounds of score → combine → train → score → eval.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// The teachers of the first round (each later round adds the previous round's student).
    #[arg(long, value_delimiter = ',', default_value = "builtin,ina")]
    pub teachers: Vec<String>,
    /// Student backbone: cnn (from scratch), ast-head (a new head on the installed AST, frozen) or ina-head (a new
    /// head on INA's embedded radio CNN, frozen).
    #[arg(long, default_value = "ina-head")]
    pub backbone: String,
    /// Seed of every student (data order, initial weights, augmentation).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Epochs per student (early stop on dev macro F1 after 5 without improvement).
    #[arg(long, default_value_t = 15)]
    pub epochs: usize,
    /// How the round's teachers combine: dawid-skene (the label model; soft targets) or vote (k-vote consensus,
    /// 0/1 targets; with two teachers and --k 1, a class is on when either teacher says so).
    #[arg(long, default_value = "vote")]
    pub combine: String,
    /// Minimum votes with --combine vote (1: a class is on when any teacher says so).
    #[arg(long, default_value_t = 1)]
    pub k: usize,
    /// Label model bins: 2 (votes) or 4 (scores around each threshold).
    #[arg(long, default_value_t = 4)]
    pub bins: usize,
    /// Train on the label model's 0/1 labels instead of its posteriors weighted by confidence.
    #[arg(long)]
    pub hard: bool,
    /// CNN width (channels of the first block).
    #[arg(long, default_value_t = 16)]
    pub width: usize,
    /// Device for teachers and students.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Students are named <prefix><seed>_r<round>.
    #[arg(long, default_value = "loop")]
    pub prefix: String,
}

/// Macro F1 of `teacher`'s newest run at its active thresholds on the gold of `split`.
fn f1_on(store: &crate::store::Store, teacher: &str, split: Split) -> Result<Option<TeacherF1>> {
    let run = crate::eval::resolve_run(store, teacher, None)?;
    let (th, _) = crate::eval::required_thresholds(store, teacher)?;
    let index = crate::eval::segment_index(store)?;
    let gold = crate::eval::gold_map(store, &index, Some(&[split]))?;
    if gold.is_empty() {
        return Ok(None);
    }
    let scores = crate::eval::run_scores(store, run.id)?;
    let opts = crate::eval::EvalOptions { level: crate::eval::Level::Segment, bootstrap: 0, seed: 0 };
    let e = crate::eval::evaluate_run(&run, &scores, th, &gold, &index, opts);
    let mut f1 = [0.0; 3];
    for c in &e.report.classes {
        f1[c.class.index()] = c.f1.value;
    }
    Ok(Some(TeacherF1 {
        teacher: teacher.into(),
        split: split.as_str().into(),
        n: e.report.n,
        f1,
        macro_f1: e.report.macro_f1.value,
    }))
}

fn score(ctx: &Ctx, ws: &crate::workspace::Workspace, teacher: &str, device: &str) -> Result<()> {
    let job = ScoreJob::new(teacher, &[], Some(device), None, false, None)?;
    let r = run_job(ctx, ws, JobSpec::Score(job))?;
    eprintln!("  scored with {teacher}: {} segments, {} failed", r["scored"], r["failed"]);
    if r["failed"].as_u64().unwrap_or(0) > 0 {
        bail!("{teacher} failed on some segments: fix them (see `dams check`) before a loop");
    }
    Ok(())
}

pub fn run_loop(ctx: &Ctx, a: LoopArgs) -> Result<()> {
    let ws = ctx.workspace()?;
    if a.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    if a.teachers.len() < 2 {
        bail!("the label model needs at least two teachers (--teachers a,b)");
    }
    let kind = match a.backbone.as_str() {
        "cnn" => StudentKind::Cnn,
        "ast-head" => StudentKind::AstHead(Default::default()),
        "ina-head" => StudentKind::InaHead,
        other => bail!("unknown backbone '{other}' (expected cnn, ast-head or ina-head)"),
    };
    let device: DeviceChoice = a.device.parse().map_err(anyhow::Error::msg)?;
    let model = Combine::parse(&a.combine, a.bins, false).map_err(anyhow::Error::msg)?;
    if a.k == 0 {
        bail!("--k must be at least 1");
    }
    // Votes carry no posterior: their students train on 0/1 labels.
    let soft = !a.hard && !matches!(model, Combine::Vote);
    let started = chrono::Utc::now();
    let mut rounds: Vec<Round> = Vec::new();
    let mut student: Option<String> = None;
    for round in 1..=a.rounds {
        let mut teachers = a.teachers.clone();
        teachers.extend(student.clone().map(|s| format!("student:{s}")));
        eprintln!("round {round}/{}: teachers {}", a.rounds, teachers.join(", "));
        for t in &teachers {
            let store = ws.open_store()?;
            let has = store.latest_runs()?.iter().any(|r| &r.teacher == t);
            drop(store);
            if !has {
                score(ctx, &ws, t, &a.device)?;
            }
        }
        let mut store = ws.open_store()?;
        let p = pseudo::Params {
            teachers: teachers.clone(),
            k: a.k,
            model,
            residual_noise: false,
            splits: vec![Split::Train, Split::Unlabeled],
            created_by: ctx.annotator().to_string(),
        };
        let o = pseudo::run(&ws, &mut store, &p)?;
        eprintln!("  pseudo-label run #{}: {} segments labelled ({})", o.pseudo_run_id, o.labeled, a.combine);
        if let Some(r) = &o.label_model {
            super::eval::print_label_model(r);
        }
        drop(store);
        if o.labeled == 0 {
            bail!("round {round}: the teachers labelled no train/unlabeled segment (add a pool: `dams pool build`)");
        }
        let name = format!("{}{}_r{round}", a.prefix, a.seed);
        let req = TrainRequest {
            name: name.clone(),
            sources: vec![SourceSpec { source: o.label_source.clone(), weight: 1.0 }],
            train: TrainConfig {
                epochs: a.epochs,
                seed: a.seed,
                targets: Targets { soft, confidence_weight: soft },
                ..TrainConfig::default()
            },
            width: a.width,
            device,
            resume: false,
            kind: kind.clone(),
        };
        let r = run_job(ctx, &ws, JobSpec::Train(req)).with_context(|| format!("training {name}"))?;
        eprintln!("  trained {name}: best dev macro F1 {}", r["best_dev_macro_f1"]);
        score(ctx, &ws, &format!("student:{name}"), &a.device)?;
        let store = ws.open_store()?;
        let mut results = Vec::new();
        for t in teachers.iter().chain(std::iter::once(&format!("student:{name}"))) {
            for split in [Split::Dev, Split::Test] {
                if let Some(f) = f1_on(&store, t, split)? {
                    results.push(f);
                }
            }
        }
        println!("round {round}: macro F1 on gold (speech / music / noise)");
        for f in &results {
            println!(
                "  {:<28} {:<5} n={:<4} {:.3}  ({:.3} / {:.3} / {:.3})",
                f.teacher, f.split, f.n, f.macro_f1, f.f1[0], f.f1[1], f.f1[2]
            );
        }
        rounds.push(Round {
            round,
            teachers: teachers.clone(),
            pseudo_run: o.pseudo_run_id,
            pseudo_labelled: o.labeled,
            student: name.clone(),
            results,
        });
        student = Some(name);
        let file = ws.experiments_dir().join(format!("loop_{}_{}.json", a.seed, started.format("%Y%m%dT%H%M%S")));
        std::fs::create_dir_all(ws.experiments_dir())?;
        let v = serde_json::json!({
            "seed": a.seed, "backbone": a.backbone, "combine": a.combine, "k": a.k, "bins": a.bins, "soft": soft, "epochs": a.epochs,
            "teachers": a.teachers, "rounds": rounds, "anchor": Anchor::None,
        });
        std::fs::write(&file, serde_json::to_string_pretty(&v)? + "\n")
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    let last = student.unwrap_or_default();
    println!("last round's student: student:{last} (score with it, evaluate it, or use it as a teacher)");
    Ok(())
}
