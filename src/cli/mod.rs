//! The `dams` command line. Each subcommand's arguments and handler live next to the area they
//! drive (`cli/<area>.rs`); handlers call the same core functions the TUI uses.

pub mod ast;
pub mod audio;
pub mod bench;
pub mod check;
pub mod clap_teacher;
pub mod eval;
pub mod follow;
pub mod manifest;
pub mod pool;
#[cfg(feature = "burn")]
pub mod selftrain;
pub mod slurm;
#[cfg(feature = "burn")]
pub mod student;
pub mod teachers;
pub mod whisper_at;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::config::{Config, Dirs};
use crate::workspace::Workspace;

#[derive(Debug, Parser)]
#[command(
    name = "dams",
    version,
    about = "Label radio audio as speech / music / noise, and study how teacher models label it",
    long_about = "dams is a terminal workbench for speech/music/noise labeling of radio audio.\n\n\
        Run it with no subcommand to open the TUI on the workspace in the current directory \
        (or, if there is none, on the embedded demo workspace)."
)]
pub struct Cli {
    /// Workspace folder (default: the workspace containing the current directory).
    #[arg(long, short = 'w', global = true, env = "DAMS_WORKSPACE")]
    pub workspace: Option<PathBuf>,
    /// Annotator name stored with gold labels (default: from config.toml, else $USER).
    #[arg(long, global = true, env = "DAMS_ANNOTATOR")]
    pub annotator: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a workspace (data/raw, data/segments, data/metadata, the database).
    Init(InitArgs),
    /// Import a DAMS manifest CSV (upsert by segment path; a malformed file is refused whole).
    Import(manifest::ImportArgs),
    /// Export the manifest, blocs_smad_labels.csv, dated snapshots and Parquet.
    Export(manifest::ExportArgs),
    /// Cut long recordings into 16 kHz mono windows (10 s, 5 s hop) under data/segments/.
    Segment(audio::SegmentArgs),
    /// Compute the acoustic statistics of every segment.
    Stats(audio::StatsArgs),
    /// Show the workspace: segments per split, labels, teacher runs.
    Info,
    /// Check the store's integrity in full (a damaged store is then refused until a check passes).
    Check,
    /// Where the embedded demo workspace lives; `--reset` rebuilds it.
    Demo(DemoArgs),
    /// Open the terminal UI (the default without a subcommand).
    Tui,
    /// Measure dams' speed against a reference (ratios in one run).
    Bench(bench::BenchArgs),
    /// Rounds of self-training, headless: score → combine the teachers → train a student → score → eval.
    #[cfg(feature = "burn")]
    Loop(selftrain::LoopArgs),
    /// Build an unlabelled training pool of radio-like shows from speech, music and noise stems.
    Pool(pool::PoolArgs),
    /// List teachers (installed or not); train and evaluate the built-in teacher.
    Teachers(teachers::TeachersArgs),
    /// Score segments with a teacher into a (resumable) teacher run.
    Score(teachers::ScoreArgs),
    /// Sharded scoring on a Slurm cluster: `submit` a plan as an array job plus a merge, `status` of a run.
    Slurm(slurm::SlurmArgs),
    /// Import a sharded run's finished parts into the workspace (idempotent: running it again changes nothing).
    Merge(slurm::MergeArgs),
    /// Derive a run's scores again from its stored raw outputs with other settings (e.g. `--option pooling=max`)
    /// into a new run, without the model.
    Remap(teachers::RemapArgs),
    /// Segment a whole recording into time-stamped speech / music / noise / noEnergy segments with INA's model.
    SegmentLabels(teachers::SegmentLabelsArgs),
    /// Write a run's speech/music/noise scores per segment (and with --raw its raw outputs) as CSV or Parquet.
    ExportScores(teachers::ExportScoresArgs),
    /// Import a teacher's scores from CSV as a new run (refused whole on any bad row).
    ImportScores(eval::ImportScoresArgs),
    /// Evaluate teachers against gold: P/R/F1 with bootstrap intervals, confusions, kappa.
    Eval(eval::EvalArgs),
    /// Calibrate per-class thresholds (target precision, quantile or F1-optimal).
    Calibrate(eval::CalibrateArgs),
    /// Show, set or copy thresholds.
    Thresholds(eval::ThresholdsArgs),
    /// Pseudo-label from one teacher or a consensus of several; writes blocs_smad_labels.csv.
    PseudoLabel(eval::PseudoArgs),
    /// Fit a label model over teachers (Dawid–Skene) and compare it on gold with each teacher and every k-vote.
    LabelModel(eval::LabelModelArgs),
    /// List segments where teachers disagree most.
    Disagreements(eval::DisagreementsArgs),
    /// Train (or resume) a student classifier on gold and pseudo-labels, as a job.
    #[cfg(feature = "burn")]
    Train(student::TrainArgs),
    /// Score segments with a trained student: the same as `dams score --teacher student:NAME`.
    #[cfg(feature = "burn")]
    ScoreStudent(student::ScoreStudentArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Folder to create the workspace in (default: the current directory).
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Delete and rebuild the demo workspace from the embedded data.
    #[arg(long)]
    pub reset: bool,
}

/// What every handler gets: the parsed global options, user dirs and config.
pub struct Ctx {
    pub workspace_arg: Option<PathBuf>,
    pub dirs: Dirs,
    pub config: Config,
}

impl Ctx {
    /// The workspace named by `--workspace`, or the one containing the current directory.
    pub fn workspace(&self) -> Result<Workspace> {
        match &self.workspace_arg {
            Some(p) => Ok(Workspace::open(p)?),
            None => {
                let cwd = std::env::current_dir().context("cannot read the current directory")?;
                Workspace::discover(&cwd).ok_or_else(|| {
                    anyhow::anyhow!(
                        "no dams workspace in {} or its parents; create one with `dams init`, or pass --workspace DIR",
                        cwd.display()
                    )
                })
            }
        }
    }

    pub fn annotator(&self) -> &str {
        &self.config.annotator
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            match e.downcast_ref::<audio::PartialFailure>() {
                Some(p) => ExitCode::from(p.exit_code()),
                None => ExitCode::FAILURE,
            }
        }
    }
}

pub fn run(cli: Cli) -> Result<()> {
    let dirs = Dirs::get();
    let mut config = Config::load(&dirs)?;
    if let Some(a) = cli.annotator {
        config.annotator = a;
    }
    let ctx = Ctx { workspace_arg: cli.workspace, dirs, config };
    match cli.command {
        Some(Command::Init(a)) => {
            let dir = a.dir.unwrap_or_else(|| PathBuf::from("."));
            let ws = Workspace::init(&dir)?;
            println!("initialised dams workspace at {}", ws.root().display());
            Ok(())
        }
        Some(Command::Import(a)) => manifest::run_import(&ctx, a),
        Some(Command::Export(a)) => manifest::run_export(&ctx, a),
        Some(Command::Segment(a)) => audio::run_segment(&ctx, a),
        Some(Command::Stats(a)) => audio::run_stats(&ctx, a),
        Some(Command::Info) => info(&ctx.workspace()?),
        Some(Command::Check) => check::run_check(&ctx),
        Some(Command::Demo(a)) => {
            let demo = crate::demo::ensure(&ctx.dirs, a.reset)?;
            if let Some(n) = &demo.notice {
                eprintln!("{n}");
            }
            let ws = demo.workspace;
            println!("demo workspace: {}", ws.root().display());
            info(&ws)
        }
        Some(Command::Bench(a)) => bench::run(&ctx, a),
        Some(Command::Pool(a)) => pool::run_pool(a),
        #[cfg(feature = "burn")]
        Some(Command::Loop(a)) => selftrain::run_loop(&ctx, a),
        Some(Command::Teachers(a)) => teachers::run_teachers(&ctx, a),
        Some(Command::Score(a)) => teachers::run_score(&ctx, a),
        Some(Command::Slurm(a)) => slurm::run(&ctx, a),
        Some(Command::Merge(a)) => slurm::run_merge(&ctx, a),
        Some(Command::Remap(a)) => teachers::run_remap(&ctx, a),
        Some(Command::ExportScores(a)) => teachers::run_export_scores(&ctx, a),
        Some(Command::SegmentLabels(a)) => teachers::run_segment_labels(&ctx, a),
        Some(Command::ImportScores(a)) => eval::run_import_scores(&ctx, a),
        Some(Command::Eval(a)) => eval::run_eval(&ctx, a),
        Some(Command::Calibrate(a)) => eval::run_calibrate(&ctx, a),
        Some(Command::Thresholds(a)) => eval::run_thresholds(&ctx, a),
        Some(Command::PseudoLabel(a)) => eval::run_pseudo(&ctx, a),
        Some(Command::LabelModel(a)) => eval::run_label_model(&ctx, a),
        Some(Command::Disagreements(a)) => eval::run_disagreements(&ctx, a),
        #[cfg(feature = "burn")]
        Some(Command::Train(a)) => student::run_train(&ctx, a),
        #[cfg(feature = "burn")]
        Some(Command::ScoreStudent(a)) => student::run_score_student(&ctx, a),
        Some(Command::Tui) | None => {
            let ws = match &ctx.workspace_arg {
                Some(_) => ctx.workspace()?,
                None => match Workspace::discover(std::env::current_dir()?) {
                    Some(ws) => ws,
                    None => {
                        let demo = crate::demo::ensure(&ctx.dirs, false)?;
                        if let Some(n) = &demo.notice {
                            // stays on the terminal: the TUI's alternate screen restores it on exit
                            eprintln!("{n}");
                        }
                        demo.workspace
                    }
                },
            };
            open_tui(&ctx, ws)
        }
    }
}

fn open_tui(ctx: &Ctx, ws: Workspace) -> Result<()> {
    crate::tui::run(ws, &ctx.dirs, &ctx.config)
}

/// Print a summary of a workspace.
pub fn info(ws: &Workspace) -> Result<()> {
    let store = ws.open_store()?;
    println!("workspace {}", ws.root().display());
    let total = store.segment_count()?;
    println!("  segments: {total}");
    for (split, n) in store.split_counts()? {
        println!("    {split:<10} {n}");
    }
    let (gold, per_annotator) = store.gold_counts()?;
    println!("  segments with gold labels: {gold}");
    for (name, n) in per_annotator {
        println!("    annotator {name}: {n}");
    }
    let runs = store.runs()?;
    println!("  teacher runs: {}", runs.len());
    for r in runs {
        println!("    #{} {} ({}, {} scores, {})", r.id, r.teacher, r.kind, r.n_scores, r.state);
    }
    Ok(())
}
