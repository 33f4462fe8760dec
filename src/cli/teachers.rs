//! `dams teachers` (list, train-builtin, eval-builtin) and `dams score`.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use super::Ctx;
use crate::labels::{CLASSES, parse_splits};
use crate::teachers::audioset::Pooling;
use crate::teachers::builtin::BuiltinTeacher;
use crate::teachers::builtin::evaluate::{self, Item};
use crate::teachers::builtin::train::{self, TrainConfig, TrainEvent};
use crate::teachers::score::{ScoreOptions, score_segments};
use crate::teachers::{LoadOptions, load, registry};

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
    Add(super::ast::AddArgs),
    /// Download a teacher's weights from the Hugging Face hub into the model cache (`dams teachers pull ast`).
    Pull(super::ast::PullArgs),
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
pub struct ScoreArgs {
    /// Teacher id (see `dams teachers`).
    #[arg(long, default_value = "builtin")]
    pub teacher: String,
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
    /// For the built-in teacher: a head file instead of the embedded weights.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// How an AudioSet tagger (ast) pools the 527 logits of each class's bucket: noisy_or (the
    /// default), max or mean. Recorded in the run's settings: runs with different pooling are
    /// different runs. Re-pool a finished run without the model: `dams remap --run ID --pooling P`.
    #[arg(long)]
    pub pooling: Option<Pooling>,
}

#[derive(Debug, Args)]
pub struct RemapArgs {
    /// The teacher run whose stored AudioSet logits are pooled again (`dams eval` and the TUI show run ids).
    #[arg(long)]
    pub run: i64,
    /// noisy_or, max or mean.
    #[arg(long)]
    pub pooling: Pooling,
}

pub fn run_teachers(ctx: &Ctx, a: TeachersArgs) -> Result<()> {
    match a.cmd.unwrap_or(TeachersCmd::List) {
        TeachersCmd::List => list(),
        TeachersCmd::TrainBuiltin(t) => train_builtin(t),
        TeachersCmd::EvalBuiltin(e) => eval_builtin(e),
        TeachersCmd::Add(a) => super::ast::run_add(ctx, a),
        TeachersCmd::Pull(a) => super::ast::run_pull(ctx, a),
    }
}

fn list() -> Result<()> {
    println!("{:<10} {:<14} description", "teacher", "status");
    for t in registry() {
        let status = if t.installed { "installed" } else { "not installed" };
        println!("{:<10} {:<14} {}", t.id, status, t.description);
        if let Some(cmd) = t.install.filter(|_| !t.installed) {
            println!("{:<10} {:<14} install: {cmd}", "", "");
        }
        if t.id == crate::teachers::builtin::ID {
            match BuiltinTeacher::embedded() {
                Ok(b) => {
                    use crate::teachers::Teacher;
                    let h = b.head();
                    println!(
                        "{:<10} {:<14} weights {} (validation macro F1 {:.3} on held-out generated mixtures)",
                        "",
                        "",
                        b.checksum(),
                        h.training.val_macro_f1
                    );
                }
                Err(e) => println!("{:<10} {:<14} weights: {e}", "", ""),
            }
        }
    }
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

pub fn run_score(ctx: &Ctx, a: ScoreArgs) -> Result<()> {
    let ws = ctx.workspace()?;
    let mut store = ws.open_store()?;
    let splits = match &a.split {
        Some(s) => Some(parse_splits(s).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let mut teacher = load(
        &a.teacher,
        &LoadOptions {
            device: a.device.clone(),
            builtin_weights: a.weights.clone(),
            models_dir: Some(ws.data_dir().join("models")),
            pooling: a.pooling,
        },
    )?;
    if let Some(n) = teacher.notice() {
        eprintln!("note: {n}");
    }
    let opts = ScoreOptions { splits, batch_size: a.batch_size, fresh: a.fresh };
    // Headless: nothing cancels but Ctrl-C, which ends the process; every finished batch is committed and the
    // unfinished run is resumed by the next `dams score` (the TUI's job runner sets this flag instead).
    let cancel = AtomicBool::new(false);
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} segments, {per_sec}, eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("scoring with {}", a.teacher));
    // Recorded as a `score` job (its own connection, progress every half second) like the TUI's background jobs.
    let mut jobs = ws.open_store()?;
    let params = serde_json::json!({
        "teacher": a.teacher, "splits": a.split, "fresh": a.fresh, "via": "cli",
        "pooling": a.pooling.map(|p| p.as_str()),
    });
    let job = jobs.create_job("score", &params.to_string(), None)?;
    let mut last = std::time::Instant::now();
    let outcome = score_segments(&ws, &mut store, teacher.as_mut(), &opts, &cancel, |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        if last.elapsed() >= std::time::Duration::from_millis(500) || p.done == p.total {
            last = std::time::Instant::now();
            let _ = jobs.update_job(job, p.done as i64, Some(p.total as i64), Some("scoring"), None);
        }
    });
    bar.finish_and_clear();
    let report = match outcome {
        Ok(r) => r,
        Err(e) => {
            let _ = jobs.finish_job(job, "failed", None, Some(&format!("{e:#}")));
            return Err(e);
        }
    };
    let result = serde_json::json!({
        "run_id": report.run_id, "resumed": report.resumed, "scored": report.scored,
        "already": report.already, "failed": report.failed.len(),
    });
    jobs.finish_job(job, if report.cancelled { "cancelled" } else { "done" }, Some(&result.to_string()), None)?;
    for (path, e) in &report.failed {
        eprintln!("skipped {path}: {e}");
    }
    println!(
        "run #{} ({}{}): {} scored, {} already scored, {} failed in {:.1} s{}",
        report.run_id,
        teacher.id(),
        if report.resumed { ", resumed" } else { "" },
        report.scored,
        report.already,
        report.failed.len(),
        report.elapsed.as_secs_f64(),
        if report.cancelled { " — cancelled, run `dams score` again to resume" } else { "" }
    );
    println!("label source for pseudo-labels: {}", teacher.label_source());
    if report.default_thresholds_set {
        println!("stored the teacher's default thresholds (method 'default'); calibrate with `dams calibrate`");
    }
    if !report.failed.is_empty() {
        let total = report.scored + report.failed.len();
        return Err(super::audio::PartialFailure { failed: report.failed.len(), total, what: "segments" }.into());
    }
    Ok(())
}

/// `dams remap`: a new teacher run from an existing run's stored logits, pooled another way.
pub fn run_remap(ctx: &Ctx, a: RemapArgs) -> Result<()> {
    let ws = ctx.workspace()?;
    let mut store = ws.open_store()?;
    let r = crate::teachers::remap::remap_run(&mut store, a.run, a.pooling)?;
    println!(
        "run #{} ({}, {} pooling): {} segments pooled again from the logits of run #{} in {:.2} s, without the model",
        r.run_id,
        r.teacher,
        r.pooling.as_str(),
        r.scored,
        r.logits_run,
        r.elapsed.as_secs_f64()
    );
    println!("it is now the latest {} run: the TUI, `dams eval` and pseudo-labels use it", r.teacher);
    if r.thresholds_kept {
        println!(
            "the active {} thresholds were calibrated on other scores: recalibrate with `dams calibrate --teacher {}`",
            r.teacher, r.teacher
        );
    }
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
