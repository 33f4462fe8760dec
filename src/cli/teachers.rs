//! `dams teachers` (list, pull, add, train-builtin, eval-builtin), `dams score`, `dams remap` and
//! `dams export-scores`. Every teacher comes from the catalog ([`crate::catalog`]); scoring and remapping run as
//! jobs of the job catalog, followed by the shared follower.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use super::Ctx;
use crate::jobs::JobRunner;
use crate::jobs::catalog::{JobSpec, RemapJob, ScoreJob, outcome};
use crate::labels::{CLASSES, parse_splits};
use crate::teachers::audioset::Pooling;
use crate::teachers::builtin::BuiltinTeacher;
use crate::teachers::builtin::evaluate::{self, Item};
use crate::teachers::builtin::train::{self, TrainConfig, TrainEvent};
use crate::teachers::{InstallState, OpenContext, TeacherOptions};

#[derive(Debug, Args)]
pub struct TeachersArgs {
    #[command(subcommand)]
    pub cmd: Option<TeachersCmd>,
}

#[derive(Debug, Subcommand)]
pub enum TeachersCmd {
    /// List the teachers, installed or not (the default).
    List,
    /// Train the built-in teacher's head on mixtures generated from speech / music / noise stems.
    TrainBuiltin(TrainArgs),
    /// Score labelled clips and/or windows of long recordings with the built-in teacher; print P/R/F1.
    EvalBuiltin(EvalArgs),
    /// Install a teacher's weights from a local checkpoint folder (`dams teachers add ast --from DIR`).
    Add(AddArgs),
    /// Download a teacher's weights into the Hugging Face cache (reusing what is there) and install them
    /// (`dams teachers pull ast`). Honours HF_HOME, HF_HUB_CACHE, HF_ENDPOINT, HF_HUB_OFFLINE and HF_TOKEN.
    Pull(PullArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Teacher id (`dams teachers` lists those with installable weights).
    pub teacher: String,
    /// A checkpoint folder (for ast: `config.json` and `model.safetensors`, as `save_pretrained` writes them).
    #[arg(long)]
    pub from: PathBuf,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Teacher id (`dams teachers` lists those with installable weights).
    pub teacher: String,
    /// The revision to pull (branch, tag or commit; default: the teacher's).
    #[arg(long)]
    pub revision: Option<String>,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Folder with `stems.csv` (columns file,kind,speaker,...) and the stem recordings.
    #[arg(long)]
    pub stems: PathBuf,
    /// Where to write the head file.
    #[arg(long, default_value = "assets/builtin/head.json")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Training mixtures per label combination (7 combinations).
    #[arg(long, default_value_t = TrainConfig::default().train_per_combo)]
    pub per_combo: usize,
    /// Validation mixtures (held-out stems) per label combination.
    #[arg(long, default_value_t = TrainConfig::default().val_per_combo)]
    pub val_per_combo: usize,
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    pub epochs: usize,
    #[arg(long, default_value_t = TrainConfig::default().hidden)]
    pub hidden: usize,
    /// L2 penalty on the head's weights.
    #[arg(long, default_value_t = TrainConfig::default().weight_decay)]
    pub weight_decay: f64,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Clip manifest CSV with columns file,speech,music,noise (file relative to --clips-root or the manifest).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Folder the manifest's `file` paths are relative to (default: the manifest's folder).
    #[arg(long = "clips-root", alias = "clips")]
    pub clips_root: Option<PathBuf>,
    /// A long recording and its windows CSV (start,end,...,speech,music,noise), as `AUDIO=WINDOWS.csv`; repeatable.
    #[arg(long = "longform", value_name = "AUDIO=CSV")]
    pub longform: Vec<String>,
    /// A head file to evaluate instead of the embedded one.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Decision threshold for every class.
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f32,
    /// List every wrong item.
    #[arg(long, short)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
#[command(
    after_long_help = "EXAMPLES:\n  dams score --teacher builtin\n  dams score --teacher ast --option pooling=max --device cpu\n  dams score --teacher student:cnn1 --split dev,test\n\n`dams teachers` lists every teacher with its options and their defaults."
)]
pub struct ScoreArgs {
    /// Teacher id (see `dams teachers`).
    #[arg(long, default_value = "builtin")]
    pub teacher: String,
    /// A teacher option, NAME=VALUE (repeatable; `dams teachers` lists each teacher's options). Options are part
    /// of the run's settings: runs with other options are other runs.
    #[arg(long = "option", short = 'o', value_name = "NAME=VALUE")]
    pub options: Vec<String>,
    /// Comma-separated splits to score (default: all segments).
    #[arg(long)]
    pub split: Option<String>,
    /// auto, cpu or gpu (the built-in teacher runs on the CPU).
    #[arg(long)]
    pub device: Option<String>,
    /// Start a new run instead of resuming an unfinished one.
    #[arg(long)]
    pub fresh: bool,
    /// Segments per batch.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Shorthand for `--option weights=FILE` (the built-in teacher: a head file instead of the embedded weights).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Shorthand for `--option pooling=P` (AudioSet taggers: noisy_or, max or mean).
    #[arg(long)]
    pub pooling: Option<Pooling>,
    /// Score one shard of a plan (`dams slurm submit` writes plans) into its own part file, without touching the
    /// workspace database; the teacher and its options come from the plan. Needs --shard.
    #[arg(long, value_name = "PLAN", requires = "shard", conflicts_with_all = ["teacher", "options", "split", "device", "fresh", "batch_size", "weights", "pooling"])]
    pub plan: Option<PathBuf>,
    /// With --plan: the shard index, or `auto` (SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX or DAMS_SHARD_INDEX).
    #[arg(long, value_name = "I|auto", requires = "plan")]
    pub shard: Option<crate::slurm::shard::ShardArg>,
}

#[derive(Debug, Args)]
pub struct RemapArgs {
    /// The teacher run whose stored raw outputs are used (`dams eval` and the TUI show run ids).
    #[arg(long)]
    pub run: i64,
    /// A setting to change, NAME=VALUE (repeatable): those the raw outputs decide, e.g. pooling for AudioSet taggers.
    #[arg(long = "option", short = 'o', value_name = "NAME=VALUE")]
    pub options: Vec<String>,
    /// Shorthand for `--option pooling=P` (noisy_or, max or mean).
    #[arg(long)]
    pub pooling: Option<Pooling>,
}

#[derive(Debug, Args)]
#[command(
    after_long_help = "EXAMPLES:\n  dams segment-labels show.flac -o show.csv --audacity show.txt\n\nThe CSV is inaSpeechSegmenter's own (labels, start, stop in seconds; speech, music, noise, noEnergy), so it\ncompares line by line with `ina_speech_segmenter.py -g false -d smn`."
)]
pub struct SegmentLabelsArgs {
    /// A long recording (WAV, FLAC, Ogg/Vorbis, MP3; any rate and channels).
    pub file: PathBuf,
    /// The segmenting teacher (only `ina` segments whole recordings).
    #[arg(long, default_value = "ina")]
    pub teacher: String,
    /// Write the CSV here (default: standard output).
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Also write an Audacity label track here.
    #[arg(long)]
    pub audacity: Option<PathBuf>,
    /// auto, cpu, gpu or gpu:software.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

#[derive(Debug, Args)]
pub struct ExportScoresArgs {
    /// The teacher whose run is exported (its latest run with scores, unless --run).
    #[arg(long)]
    pub teacher: Option<String>,
    /// The run to export (`dams info` lists them).
    #[arg(long)]
    pub run: Option<i64>,
    /// Also write the raw outputs, one column per output named by its vocabulary (AudioSet display names...).
    #[arg(long)]
    pub raw: bool,
    /// Output file: `.csv` or `.parquet`.
    #[arg(long, short = 'o')]
    pub out: PathBuf,
}

pub fn run_teachers(ctx: &Ctx, a: TeachersArgs) -> Result<()> {
    match a.cmd.unwrap_or(TeachersCmd::List) {
        TeachersCmd::List => list(ctx),
        TeachersCmd::TrainBuiltin(t) => train_builtin(t),
        TeachersCmd::EvalBuiltin(e) => eval_builtin(e),
        TeachersCmd::Add(a) => run_add(ctx, a),
        TeachersCmd::Pull(a) => run_pull(ctx, a),
    }
}

/// The teacher context of the CLI: the user's model cache and, inside a workspace, its students.
pub fn teacher_context(ctx: &Ctx) -> OpenContext {
    let ws = ctx.workspace().ok();
    OpenContext::for_workspace(&ctx.dirs, ws.as_ref())
}

fn list(ctx: &Ctx) -> Result<()> {
    let tctx = teacher_context(ctx);
    println!("{:<16} {:<14} description", "teacher", "status");
    for t in crate::catalog::list(&tctx) {
        let d = t.descriptor;
        let status = match &t.state {
            InstallState::Embedded => "embedded",
            InstallState::Installed(_) => "installed",
            InstallState::Missing(_) if d.family => "none yet",
            InstallState::Missing(_) => "not installed",
        };
        let id = if d.family && !d.matches(&t.id) { format!("{}<name>", d.id) } else { t.id.clone() };
        println!("{id:<16} {status:<14} {}", d.description);
        let pad = format!("{:<16} {:<14}", "", "");
        match &t.state {
            InstallState::Missing(how) => println!("{pad} install: {how}"),
            InstallState::Installed(what) => println!("{pad} weights: {what}"),
            InstallState::Embedded => {}
        }
        println!(
            "{pad} label source {}, devices {}{}",
            d.label_source_of(&t.id),
            if d.devices.is_empty() { "auto".to_string() } else { d.devices.join("/") },
            d.raw_vocab.map(|v| format!(", raw outputs {v}")).unwrap_or_default()
        );
        for o in d.options {
            let dflt = if o.default.is_empty() { "(none)".to_string() } else { o.default.to_string() };
            let choices = if o.choices.is_empty() { String::new() } else { format!(" [{}]", o.choices.join("|")) };
            println!("{pad} --option {}={dflt}{choices}  {}", o.name, o.help);
        }
        if t.id == crate::teachers::builtin::ID {
            match BuiltinTeacher::embedded() {
                Ok(b) => {
                    use crate::teachers::Teacher;
                    let h = b.head();
                    println!(
                        "{pad} weights {} (validation macro F1 {:.3} on held-out generated mixtures)",
                        b.checksum(),
                        h.training.val_macro_f1
                    );
                }
                Err(e) => println!("{pad} weights: {e}"),
            }
        }
    }
    Ok(())
}

fn installable(
    id: &str,
) -> Result<(&'static crate::teachers::TeacherDescriptor, crate::teachers::descriptor::InstallSpec)> {
    let d = crate::catalog::find(id)?;
    match d.install {
        Some(spec) => Ok((d, spec)),
        None => {
            let with: Vec<&str> =
                crate::catalog::teachers().iter().filter(|t| t.install.is_some()).map(|t| t.id).collect();
            bail!(
                "'{id}' has no weights to install ({}); teachers with installable weights: {}",
                if d.family { "it is trained in the workspace" } else { "it is embedded in dams" },
                with.join(", ")
            )
        }
    }
}

pub fn run_add(ctx: &Ctx, a: AddArgs) -> Result<()> {
    let (d, spec) = installable(&a.teacher)?;
    let cache = ctx.dirs.model_cache();
    let rec = crate::teachers::weights::install::add_from(d.id, &spec, &a.from, &cache, None)?;
    println!(
        "installed {} from {} into {} ({} sha256 {})",
        d.id,
        rec.source,
        crate::teachers::weights::install::install_dir(d.id, &cache).display(),
        spec.files.last().unwrap_or(&""),
        rec.sha256
    );
    Ok(())
}

/// Fill the Hugging Face cache (what is there already is used as it is), check the files like `add`, install.
pub fn run_pull(ctx: &Ctx, a: PullArgs) -> Result<()> {
    let (d, spec) = installable(&a.teacher)?;
    if !spec.urls.is_empty() {
        if std::env::var_os("HF_HUB_OFFLINE").is_some_and(|v| v == "1" || v == "true") {
            bail!("pull {}: downloads are off (HF_HUB_OFFLINE is set)", d.id);
        }
        let cache = ctx.dirs.model_cache();
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let mirror = crate::teachers::weights::install::pull_mirror();
        let rec =
            crate::teachers::weights::install::pull_urls(d.id, &spec, &cache, mirror.as_deref(), |f, n, total| {
                bar.set_message(f.to_string());
                if let Some(t) = total {
                    bar.set_length(t);
                }
                bar.set_position(n);
            });
        bar.finish_and_clear();
        let rec = rec?;
        println!("installed {} from {} ({} sha256 {})", d.id, rec.source, spec.files.last().unwrap_or(&""), rec.sha256);
        return Ok(());
    }
    if spec.hf_repo.is_empty() {
        let how = match (d.state)(&crate::teachers::OpenContext::new(ctx.dirs.model_cache())) {
            crate::teachers::InstallState::Missing(how) => how,
            _ => format!("dams teachers add {} --from DIR", d.id),
        };
        bail!("'{}' has no Hugging Face repository to pull from; install it from a folder: {how}", d.id);
    }
    let hub = crate::teachers::hub::HubCache::from_env();
    let revision = a.revision.as_deref().unwrap_or(spec.revision);
    let cached = hub.find(spec.hf_repo, revision, spec.files).is_some();
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let snap = hub.fetch(spec.hf_repo, revision, spec.files, |f, n, total| {
        bar.set_message(f.to_string());
        if let Some(t) = total {
            bar.set_length(t);
        }
        bar.set_position(n);
    });
    bar.finish_and_clear();
    let snap = snap?;
    if cached {
        eprintln!(
            "{}@{revision}: found in the Hugging Face cache {} (nothing downloaded)",
            spec.hf_repo,
            hub.root.display()
        );
    } else {
        eprintln!("{}@{revision}: downloaded into the Hugging Face cache {}", spec.hf_repo, hub.root.display());
    }
    let commit = snap.file_name().map(|c| c.to_string_lossy().to_string()).unwrap_or_default();
    let source = format!("hf://{}@{commit}", spec.hf_repo);
    let cache = ctx.dirs.model_cache();
    let rec = crate::teachers::weights::install::add_from(d.id, &spec, &snap, &cache, Some(source))?;
    println!("installed {} from {} ({} sha256 {})", d.id, rec.source, spec.files.last().unwrap_or(&""), rec.sha256);
    Ok(())
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}").unwrap_or_else(|_| ProgressStyle::default_bar())
}

fn train_builtin(a: TrainArgs) -> Result<()> {
    let (stems, digest) = train::load_stems(&a.stems, |_| {})?;
    eprintln!("{} stems loaded ({digest})", stems.len());
    let cfg = TrainConfig {
        seed: a.seed,
        train_per_combo: a.per_combo,
        val_per_combo: a.val_per_combo,
        hidden: a.hidden,
        epochs: a.epochs,
        weight_decay: a.weight_decay,
        command: format!(
            "dams teachers train-builtin --stems STEMS --seed {} --per-combo {} --val-per-combo {} --epochs {} --hidden {} --weight-decay {}",
            a.seed, a.per_combo, a.val_per_combo, a.epochs, a.hidden, a.weight_decay
        ),
        ..TrainConfig::default()
    };
    let bar = ProgressBar::new(0);
    bar.set_style(spinner_style());
    let head = train::train(&stems, &digest, &cfg, |ev| match ev {
        TrainEvent::Phase(p) => {
            bar.set_message(p.to_string());
            bar.set_position(0);
        }
        TrainEvent::Mixtures { done, total } => {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
        TrainEvent::Epoch { epoch, loss } => {
            bar.set_length(cfg.epochs as u64);
            bar.set_position(epoch as u64);
            bar.set_message(format!("training the head (loss {loss:.4})"));
        }
    })?;
    bar.finish_and_clear();
    write_atomic(&a.out, head.to_json().as_bytes())?;
    let t = &head.head.training;
    println!("wrote {} ({})", a.out.display(), head.checksum);
    println!(
        "validation (held-out speakers/recordings, {} mixtures) F1 at 0.5: speech {:.3}  music {:.3}  noise {:.3}  macro {:.3}",
        t.n_val, t.val_f1[0], t.val_f1[1], t.val_f1[2], t.val_macro_f1
    );
    Ok(())
}

fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn eval_builtin(a: EvalArgs) -> Result<()> {
    if a.manifest.is_none() && a.longform.is_empty() {
        bail!("nothing to evaluate: give --manifest FILE and/or --longform AUDIO=WINDOWS.csv");
    }
    let mut teacher = match &a.weights {
        Some(p) => BuiltinTeacher::from_file(p)?,
        None => BuiltinTeacher::embedded()?,
    };
    let mut sets: Vec<(String, Vec<Item>)> = Vec::new();
    if let Some(m) = &a.manifest {
        let items = evaluate::load_manifest(m, a.clips_root.as_deref(), |e| eprintln!("warning: {e}"))?;
        sets.push((format!("clips ({})", m.display()), items));
    }
    let mut all_long: Vec<Item> = Vec::new();
    for spec in &a.longform {
        let Some((audio, csv)) = spec.split_once('=') else {
            bail!("--longform expects AUDIO=WINDOWS.csv, got '{spec}'");
        };
        let items = evaluate::load_windows(std::path::Path::new(audio), std::path::Path::new(csv))?;
        all_long.extend(items.iter().cloned());
        sets.push((format!("windows of {audio}"), items));
    }
    if a.longform.len() > 1 {
        sets.push(("all long-form windows".into(), all_long));
    }
    for (name, items) in &sets {
        let scores: Vec<[f32; 3]> = items.iter().map(|it| teacher.score_one(&it.samples)).collect();
        let labels: Vec<[bool; 3]> = items.iter().map(|it| it.labels).collect();
        let m = evaluate::metrics(&scores, &labels, [a.threshold; 3]);
        println!("{name}: {} items, threshold {}", m.n, a.threshold);
        println!("  {:<8} {:>9} {:>7} {:>6}   tp  fp  fn  tn", "class", "precision", "recall", "F1");
        for c in CLASSES {
            let k = m.per_class[c.index()];
            println!(
                "  {:<8} {:>9.3} {:>7.3} {:>6.3}  {:>3} {:>3} {:>3} {:>3}",
                c.name(),
                k.precision,
                k.recall,
                k.f1,
                k.tp,
                k.fp,
                k.fn_,
                k.tn
            );
        }
        println!("  macro F1 {:.3}", m.macro_f1);
        if a.verbose {
            for ((it, s), l) in items.iter().zip(&scores).zip(&labels) {
                let pred = [s[0] >= a.threshold, s[1] >= a.threshold, s[2] >= a.threshold];
                if pred != *l {
                    println!(
                        "    wrong: {:<40} truth {} predicted {}  scores {:.2} {:.2} {:.2}",
                        it.name,
                        crate::labels::LabelSet::from_array(*l),
                        crate::labels::LabelSet::from_array(pred),
                        s[0],
                        s[1],
                        s[2]
                    );
                }
            }
        }
    }
    Ok(())
}

/// Start `spec` as a job on the workspace's store, follow it to the end (every log line on stdout), and return
/// its result.
pub fn run_job(ctx: &Ctx, ws: &crate::workspace::Workspace, spec: JobSpec) -> Result<serde_json::Value> {
    let tctx = OpenContext::for_workspace(&ctx.dirs, Some(ws));
    let mut runner = JobRunner::new(ws.db_path());
    let id = spec.start(&mut runner, ws, &tctx)?;
    let view = super::follow::follow(&mut runner, id, &mut std::io::stderr())?;
    outcome(&view)
}

fn option_pairs(options: &[String]) -> Result<Vec<(String, String)>> {
    TeacherOptions::parse_pairs(options).map_err(anyhow::Error::msg)
}

pub fn run_score(ctx: &Ctx, a: ScoreArgs) -> Result<()> {
    if let (Some(plan), Some(shard)) = (&a.plan, a.shard) {
        return super::slurm::run_shard(ctx, plan, shard);
    }
    let ws = ctx.workspace()?;
    let splits = match &a.split {
        Some(s) => Some(parse_splits(s).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let mut options = option_pairs(&a.options)?;
    if let Some(w) = &a.weights {
        options.push(("weights".into(), w.display().to_string()));
    }
    if let Some(p) = a.pooling {
        options.push(("pooling".into(), p.as_str().into()));
    }
    let job = ScoreJob::new(&a.teacher, &options, a.device.as_deref(), splits.as_deref(), a.fresh, a.batch_size)?;
    let r = run_job(ctx, &ws, JobSpec::Score(job))?;
    let n = |k: &str| r[k].as_u64().unwrap_or(0);
    println!(
        "run #{} ({}{}): {} scored, {} already scored, {} failed in {:.1} s",
        n("run_id"),
        r["teacher"].as_str().unwrap_or(&a.teacher),
        if r["resumed"].as_bool() == Some(true) { ", resumed" } else { "" },
        n("scored"),
        n("already"),
        n("failed"),
        r["elapsed_s"].as_f64().unwrap_or(0.0),
    );
    println!("label source for pseudo-labels: {}", r["label_source"].as_str().unwrap_or(""));
    if r["default_thresholds_set"].as_bool() == Some(true) {
        println!("stored the teacher's default thresholds (method 'default'); calibrate with `dams calibrate`");
    }
    if n("failed") > 0 {
        let total = (n("scored") + n("failed") + n("already")) as usize;
        return Err(super::audio::PartialFailure { failed: n("failed") as usize, total, what: "segments" }.into());
    }
    Ok(())
}

/// `dams remap`: a new teacher run from an existing run's stored raw outputs, derived with other settings.
pub fn run_remap(ctx: &Ctx, a: RemapArgs) -> Result<()> {
    let ws = ctx.workspace()?;
    let mut options: std::collections::BTreeMap<String, String> = option_pairs(&a.options)?.into_iter().collect();
    if let Some(p) = a.pooling {
        options.insert("pooling".into(), p.as_str().into());
    }
    let r = run_job(ctx, &ws, JobSpec::Remap(RemapJob { run: a.run, options }))?;
    let teacher = r["teacher"].as_str().unwrap_or("");
    let changed: Vec<&str> =
        r["changed"].as_array().map(|v| v.iter().filter_map(|x| x.as_str()).collect()).unwrap_or_default();
    println!(
        "run #{} ({}, {}): {} segments derived again from the raw outputs of run #{} in {:.2} s, without the model",
        r["run_id"],
        teacher,
        changed.join(", "),
        r["scored"],
        r["from_run"],
        r["elapsed_s"].as_f64().unwrap_or(0.0)
    );
    println!("it is now the latest {teacher} run: the TUI, `dams eval` and pseudo-labels use it");
    if r["thresholds_left"].as_bool() == Some(true) {
        println!(
            "the {teacher} thresholds were set for the old settings and do not apply to it: calibrate with \
             `dams calibrate --teacher {teacher}`"
        );
    }
    Ok(())
}

/// `dams segment-labels`: INA-style time-stamped segments of a whole recording (CSV and an Audacity label track).
pub fn run_segment_labels(_ctx: &Ctx, a: SegmentLabelsArgs) -> Result<()> {
    if a.teacher != crate::teachers::ina::ID {
        bail!("'{}' does not segment whole recordings; `dams segment-labels` uses `ina`", a.teacher);
    }
    #[cfg(feature = "burn")]
    {
        use crate::teachers::ina;
        let started = std::time::Instant::now();
        let analysis = ina::segment_file(&a.file, &a.device)?;
        let segs = analysis.segments();
        let write = |path: &std::path::Path, f: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>| -> Result<()> {
            let mut buf = Vec::new();
            f(&mut buf)?;
            crate::manifest::export::write_atomic(path, |w| {
                use std::io::Write;
                w.write_all(&buf)
                    .map_err(|err| crate::manifest::ManifestError::Write { path: path.display().to_string(), err })
            })?;
            Ok(())
        };
        match &a.out {
            Some(p) => write(p, &|b| ina::write_segments_csv(b, &segs))?,
            None => ina::write_segments_csv(std::io::stdout().lock(), &segs)?,
        }
        if let Some(p) = &a.audacity {
            write(p, &|b| ina::write_audacity_labels(b, &segs))?;
        }
        let secs = analysis.len() as f64 * 0.02;
        eprintln!(
            "{}: {} segments over {secs:.1} s of audio in {:.1} s ({:.0}x real time)",
            a.file.display(),
            segs.len(),
            started.elapsed().as_secs_f64(),
            secs / started.elapsed().as_secs_f64().max(1e-9)
        );
        Ok(())
    }
    #[cfg(not(feature = "burn"))]
    bail!("this build of dams has no model engine (rebuild with the `burn` feature)")
}

/// `dams export-scores`: a run's scores (and raw outputs) per segment, as CSV or Parquet.
pub fn run_export_scores(ctx: &Ctx, a: ExportScoresArgs) -> Result<()> {
    let ws = ctx.workspace()?;
    let store = ws.open_store()?;
    let n = crate::eval::export_scores::export(&store, a.teacher.as_deref(), a.run, a.raw, &a.out)?;
    println!("wrote {} ({} segments of run #{}, {} columns)", a.out.display(), n.rows, n.run_id, n.columns);
    Ok(())
}

#[derive(Debug, Args)]
pub struct BenchBuiltinArgs {
    /// Number of generated 10 s segments.
    #[arg(long, default_value_t = 200)]
    pub n: usize,
}

/// Per-segment timing of the built-in teacher against two references measured in the same run: decoding the
/// segment from a 16-bit WAV file (`load_mono_16k`) and the bare 512-point power spectrogram.
pub fn bench_builtin(a: BenchBuiltinArgs) -> Result<()> {
    use std::time::Instant;

    use crate::teachers::builtin::fft::RealFft;
    use crate::teachers::builtin::train::Rng;

    let n = a.n.max(10);
    let mut teacher = BuiltinTeacher::embedded()?;
    // Generated segments: a vibrato tone with harmonics, syllable-rate modulated noise and a noise floor.
    let mut rng = Rng::new(42);
    let segs: Vec<Vec<f32>> = (0..n)
        .map(|_| {
            let f0 = rng.range(100.0, 400.0);
            let am = rng.range(2.0, 8.0);
            let (wt, wn) = (rng.range(0.0, 0.3), rng.range(0.0, 0.3));
            let mut phase = 0f64;
            (0..160_000)
                .map(|i| {
                    let t = i as f64 / 16_000.0;
                    phase += 2.0 * std::f64::consts::PI * f0 * (1.0 + 0.02 * (5.0 * t).sin()) / 16_000.0;
                    let tone = (1..=5).map(|h| (h as f64 * phase).sin() / h as f64).sum::<f64>();
                    let env = 0.5 + 0.5 * (2.0 * std::f64::consts::PI * am * t).sin();
                    (wt * tone + wn * env * rng.range(-1.0, 1.0) + 0.003 * rng.range(-1.0, 1.0)) as f32
                })
                .collect()
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("dams-bench-builtin-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| -> Result<()> {
        let paths: Vec<PathBuf> = (0..n).map(|i| dir.join(format!("s{i}.wav"))).collect();
        for (p, s) in paths.iter().zip(&segs) {
            crate::audio::write_wav_16k(p, s)?;
        }
        let pct = |v: &mut Vec<f64>, q: f64| {
            v.sort_by(|a, b| a.total_cmp(b));
            v[((v.len() - 1) as f64 * q).round() as usize]
        };
        // Per call: wall time and, on Linux, the thread's CPU time (so a loaded machine does not inflate it).
        let time = |f: &mut dyn FnMut(usize)| -> (Vec<f64>, Vec<f64>) {
            f(0); // warm-up
            (0..n)
                .map(|i| {
                    let c = thread_cpu_ns();
                    let t = Instant::now();
                    f(i);
                    let wall = t.elapsed().as_secs_f64() * 1e3;
                    let cpu = match (c, thread_cpu_ns()) {
                        (Some(a), Some(b)) => (b.saturating_sub(a)) as f64 / 1e6,
                        _ => wall,
                    };
                    (wall, cpu)
                })
                .unzip()
        };
        let mut sink = 0f32;
        let score = time(&mut |i| sink += teacher.score_one(&segs[i])[0]);
        let decode = time(&mut |i| sink += crate::audio::load_mono_16k(&paths[i]).map(|x| x[0]).unwrap_or(0.0));
        let mut fft = RealFft::new(512);
        let win: Vec<f32> =
            (0..512).map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / 512.0).cos()) as f32).collect();
        let mut frame = vec![0f32; 512];
        let mut spec = vec![rustfft::num_complex::Complex32::default(); 257];
        let mut power = vec![0f32; 257];
        let spectro = time(&mut |i| {
            let x = &segs[i];
            let mut start = 0;
            while start + 512 <= x.len() {
                for k in 0..512 {
                    frame[k] = x[start + k] * win[k];
                }
                fft.forward(&frame, &mut spec);
                for (p, c) in power.iter_mut().zip(&spec) {
                    *p = c.re * c.re + c.im * c.im;
                }
                sink += power[10];
                start += 256;
            }
        });
        let (mut score_w, mut score_c) = score;
        let (mut dec_w, mut dec_c) = decode;
        let (mut spec_w, mut spec_c) = spectro;
        let total_cpu: f64 = score_c.iter().sum();
        let cpu_clock = thread_cpu_ns().is_some();
        println!("bench builtin: {n} generated 10 s segments, one thread (checksum {:.3})", sink.abs().min(1e9));
        println!("  {:<44} {:>9} {:>9} {:>9} {:>9}", "", "cpu p50", "cpu p99", "wall p50", "wall p99");
        let mut rows = [
            ("builtin teacher (features + head)", &mut score_c, &mut score_w),
            ("reference: decode the 16-bit WAV segment", &mut dec_c, &mut dec_w),
            ("reference: bare 512-point power spectrogram", &mut spec_c, &mut spec_w),
        ];
        let mut p50 = [0f64; 3];
        let mut p99 = [0f64; 3];
        for (i, (name, c, w)) in rows.iter_mut().enumerate() {
            p50[i] = pct(c, 0.5);
            p99[i] = pct(c, 0.99);
            println!("  {:<44} {:>9.3} {:>9.3} {:>9.3} {:>9.3}  ms", name, p50[i], p99[i], pct(w, 0.5), pct(w, 0.99));
        }
        if !cpu_clock {
            println!("  (no per-thread CPU clock on this platform: the cpu columns are wall time)");
        }
        println!("  segments/s per core (builtin, cpu time): {:.0}", n as f64 / (total_cpu / 1e3));
        println!("  ratio builtin / decode (cpu p50):       {:.2}x", p50[0] / p50[1]);
        println!("  ratio builtin / spectrogram (cpu p50):  {:.2}x", p50[0] / p50[2]);
        println!(
            "  goal < 5 ms per 10 s segment on one core: {} (cpu p50 {:.2} ms, p99 {:.2} ms)",
            if p99[0] < 5.0 {
                "met"
            } else if p50[0] < 5.0 {
                "met at p50, not at p99"
            } else {
                "NOT met"
            },
            p50[0],
            p99[0]
        );
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// CPU time of the calling thread in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`), where the platform has it.
#[cfg(unix)]
fn thread_cpu_ns() -> Option<u64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusively borrowed `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

#[cfg(not(unix))]
fn thread_cpu_ns() -> Option<u64> {
    None
}
