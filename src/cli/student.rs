//! `dams train` (train or resume a student as a job, with a progress bar) and
//! `dams score-student` (score segments with a trained student as teacher `student:<name>`).
use anyhow::{Result, bail};
use clap::Args;

use super::Ctx;
use crate::jobs::{JobRunner, JobState};
use crate::labels::Split;
use crate::student::ast_head::AstHeadOptions;
use crate::student::data::{Augment, parse_sources};
use crate::student::train::TrainConfig;
use crate::student::{DeviceChoice, StudentKind, TrainRequest};

/// `--kind`: which student to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KindArg {
    /// Compact CNN on log-mel spectrograms (no extra weights needed).
    Cnn,
    /// The Python recipe: AST encoder frozen, a new 3-way head (LayerNorm + Linear) on its pooled
    /// output; embeddings are computed once per segment and cached in the workspace.
    AstHead,
    /// INA's radio-trained speech/music/noise CNN (embedded) frozen, a new 3-way head on its pooled last dense
    /// layer; embeddings are computed once per segment and cached in the workspace.
    InaHead,
}

/// The kinds, in `dams train --help`.
const TRAIN_KINDS_HELP: &str = "KINDS:
  cnn       A compact CNN on log-mel spectrograms, trained from scratch (the default).
  ast-head  The Python project's recipe: the AST encoder frozen and a new 3-way head
            (LayerNorm + Linear) on its pooled output. Needs the AST weights
            (`dams teachers pull ast`, or --ast DIR). Each segment's embedding is
            computed once and cached in the workspace (resumable), so epochs and later
            students on the same AST only train the head. Gain/shift/noise augmentation
            does not apply; hard negatives do. --unfreeze K also trains the last K
            encoder layers (no cache: slow on a CPU, meant for --device gpu).
  ina-head  A new 3-way head on INA's speech/music/noise CNN (embedded, trained on
            broadcast audio), frozen: per segment the mean and spread of its last
            dense layer over the energetic 20 ms patches, plus INA's mean posteriors
            (516 values), computed once and cached. Seconds per training after the
            first pass over the segments; no download needed.

EXAMPLES:
  dams train --name cnn1 --sources gold,builtin_pseudo:0.5
  dams train --name head1 --kind ast-head --sources gold,builtin_pseudo:0.5
  dams train --name ft1 --kind ast-head --unfreeze 2 --device gpu
  dams train --name ina1 --kind ina-head --sources vote_pseudo --epochs 60
  dams train --name head1 --resume";

#[derive(Debug, Args)]
#[command(after_long_help = TRAIN_KINDS_HELP)]
pub struct TrainArgs {
    /// Name of the student (its checkpoints live in data/models/NAME/; scoring calls it student:NAME).
    #[arg(long)]
    pub name: String,
    /// Label sources with optional weights, e.g. gold,builtin_pseudo:0.5 (gold wins on overlap;
    /// dev and test segments are never trained on).
    #[arg(long, default_value = "gold")]
    pub sources: String,
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Continue a killed or cancelled training from its last finished epoch.
    #[arg(long)]
    pub resume: bool,
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Stop after this many epochs without a better dev macro F1 (0 = never).
    #[arg(long, default_value_t = 5)]
    pub patience: usize,
    /// Channels of the first conv block (the CNN doubles it twice).
    #[arg(long, default_value_t = 16)]
    pub width: usize,
    /// Turn off all augmentation (gain, time shift, noise mixing, band-limiting, compression, hard negatives).
    #[arg(long)]
    pub no_augment: bool,
    /// Train on pseudo-labels' stored scores (a label model's posteriors, a teacher's scores) instead of their 0/1
    /// labels; gold stays hard.
    #[arg(long)]
    pub soft_targets: bool,
    /// Weigh each pseudo-labelled example by its confidence (mean over classes of |2q − 1| of its stored scores).
    #[arg(long)]
    pub confidence_weight: bool,
    /// Student kind: cnn, ast-head (a new head on the frozen AST encoder) or ina-head (on INA's frozen CNN); see below.
    #[arg(long, value_enum, default_value_t = KindArg::Cnn)]
    pub kind: KindArg,
    /// ast-head only: also fine-tune the last K encoder layers (slow on the CPU; meant for --device gpu).
    #[arg(long, default_value_t = 0, value_name = "K")]
    pub unfreeze: usize,
    /// ast-head only: the AST checkpoint folder (config.json + model.safetensors) instead of the installed AST.
    #[arg(long, value_name = "DIR")]
    pub ast: Option<std::path::PathBuf>,
}

pub fn run_train(ctx: &Ctx, a: TrainArgs) -> Result<()> {
    let ws = ctx.workspace()?;
    crate::student::checkpoint::check_name(&a.name)?;
    let kind = match a.kind {
        KindArg::Cnn => {
            if a.unfreeze > 0 || a.ast.is_some() {
                bail!("--unfreeze and --ast apply to --kind ast-head only");
            }
            StudentKind::Cnn
        }
        KindArg::AstHead => {
            let ast_dir = match &a.ast {
                Some(d) => Some(std::fs::canonicalize(d).map_err(|e| anyhow::anyhow!("--ast {}: {e}", d.display()))?),
                None => None,
            };
            StudentKind::AstHead(AstHeadOptions { unfreeze: a.unfreeze, ast_dir })
        }
        KindArg::InaHead => {
            if a.unfreeze > 0 || a.ast.is_some() {
                bail!("--unfreeze and --ast apply to --kind ast-head only");
            }
            StudentKind::InaHead
        }
    };
    let req = TrainRequest {
        name: a.name.clone(),
        sources: parse_sources(&a.sources)?,
        train: TrainConfig {
            epochs: a.epochs,
            batch_size: a.batch_size,
            lr: a.lr,
            patience: a.patience,
            seed: a.seed,
            threshold: 0.5,
            augment: if a.no_augment { Augment::none() } else { Augment::default() },
            targets: crate::student::data::Targets { soft: a.soft_targets, confidence_weight: a.confidence_weight },
        },
        width: a.width,
        device: a.device,
        resume: a.resume,
        kind,
    };
    let mut runner = JobRunner::new(ws.db_path());
    let id = crate::student::spawn_training(&mut runner, &ws, req)?;
    let view = super::follow::follow(&mut runner, id, &mut std::io::stderr())?;
    match view.state {
        JobState::Done => {
            let r = view.result.unwrap_or_default();
            println!(
                "student {} (job #{}): {} training and {} dev segments, {} epochs, best dev macro F1 {} at epoch {}{}",
                a.name,
                id,
                r["train_examples"],
                r["dev_examples"],
                r["epochs_done"],
                r["best_dev_macro_f1"].as_f64().map(|f| format!("{f:.3}")).unwrap_or_else(|| "-".into()),
                r["best_epoch"],
                if r["stopped_early"].as_bool() == Some(true) { " (stopped early)" } else { "" }
            );
            println!("score with it: dams score --teacher student:{}", a.name);
            Ok(())
        }
        JobState::Cancelled => bail!("training cancelled; continue with `dams train --name {} --resume`", a.name),
        _ => bail!("training failed: {}", view.error.unwrap_or_default()),
    }
}

#[derive(Debug, Args)]
pub struct ScoreStudentArgs {
    #[arg(long)]
    pub name: String,
    /// Splits to score (default: all).
    #[arg(long, value_delimiter = ',')]
    pub splits: Vec<Split>,
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
}

/// `dams score-student --name N` is `dams score --teacher student:N`: the same job, the same runs.
pub fn run_score_student(ctx: &Ctx, a: ScoreStudentArgs) -> Result<()> {
    let split = (!a.splits.is_empty()).then(|| a.splits.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","));
    super::teachers::run_score(
        ctx,
        super::teachers::ScoreArgs {
            teacher: format!("{}{}", crate::student::teacher::PREFIX, a.name),
            options: Vec::new(),
            split,
            device: Some(a.device.to_string()),
            fresh: false,
            batch_size: None,
            weights: None,
            pooling: None,
            plan: None,
            shard: None,
        },
    )
}
