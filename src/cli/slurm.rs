//! `dams slurm submit|status`, `dams merge` and `dams score --plan --shard`: sharded scoring (see `crate::slurm`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use super::Ctx;
use crate::jobs::catalog::ScoreJob;
use crate::slurm::{self, plan::SlurmResources, sbatch, shard, status};

#[derive(Debug, Args)]
pub struct SlurmArgs {
    #[command(subcommand)]
    pub which: SlurmWhich,
}

#[derive(Debug, Subcommand)]
pub enum SlurmWhich {
    /// Freeze a scoring job into a plan of N shards and submit it as a Slurm array job plus a merge job.
    Submit(SubmitArgs),
    /// Complete / partial / missing shards of a run (from its files), what is merged, and how to resubmit.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
#[command(
    after_long_help = "EXAMPLES:\n  dams slurm submit --teacher builtin --shards 64 --max-parallel 16 --partition cpu --time 01:00:00\n  \
    dams slurm submit --teacher ast --shards 200 --gres gpu:1 --mem 16G --dry-run\n\nThe run folder \
    (data/metadata/experiments/slurm/<name>/) holds plan.json, score.sbatch, merge.sbatch, parts/ and logs/; the \
    workspace must be on a filesystem every node sees at the same path."
)]
pub struct SubmitArgs {
    /// Teacher id (see `dams teachers`).
    #[arg(long, default_value = "builtin")]
    pub teacher: String,
    /// A teacher option, NAME=VALUE (repeatable).
    #[arg(long = "option", short = 'o', value_name = "NAME=VALUE")]
    pub options: Vec<String>,
    /// Comma-separated splits to score (default: all segments).
    #[arg(long)]
    pub split: Option<String>,
    /// auto, cpu or gpu, as each node resolves it.
    #[arg(long)]
    pub device: Option<String>,
    /// Segments per batch.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Compute the model's audio embeddings into the workspace's embedding cache instead of scores (`--teacher
    /// ast`: the pooled vectors `dams train --kind ast-head` trains on); segments already cached are left out.
    #[arg(long, conflicts_with = "segment")]
    pub embed: bool,
    /// Cut these recordings (files, or folders searched for .wav .flac .ogg .oga .mp3) into windows as
    /// `dams segment` does, sharded by recording, instead of scoring; `--split` is then the split of the new rows
    /// (default unlabeled).
    #[arg(long, num_args = 1.., value_name = "PATH")]
    pub segment: Vec<PathBuf>,
    /// With --segment: window length in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub window: f64,
    /// With --segment: hop between window starts in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub hop: f64,
    /// With --segment: drop windows shorter than this many seconds.
    #[arg(long, default_value_t = 1.0)]
    pub min_tail: f64,
    /// With --segment: do not copy recordings from outside the workspace into data/raw/.
    #[arg(long)]
    pub no_copy: bool,
    /// Number of shards (array tasks).
    #[arg(long)]
    pub shards: usize,
    /// At most this many shards at once (`--array=0-(N-1)%P`).
    #[arg(long)]
    pub max_parallel: Option<usize>,
    #[arg(long)]
    pub partition: Option<String>,
    #[arg(long)]
    pub account: Option<String>,
    /// Time limit per shard (e.g. 01:00:00).
    #[arg(long)]
    pub time: Option<String>,
    /// Memory per shard (e.g. 8G).
    #[arg(long)]
    pub mem: Option<String>,
    /// Generic resources per shard (e.g. gpu:1).
    #[arg(long)]
    pub gres: Option<String>,
    #[arg(long)]
    pub cpus_per_task: Option<u32>,
    /// A further sbatch option for the shards, written as an `#SBATCH` line (repeatable), e.g. `--qos=low`.
    #[arg(long = "sbatch-option", value_name = "OPTION")]
    pub sbatch_options: Vec<String>,
    /// The run folder's name (default: `<UTC time>-<teacher>`).
    #[arg(long)]
    pub name: Option<String>,
    /// Only write the plan and the scripts (for Kubernetes, GNU parallel, or a look before submitting).
    #[arg(long)]
    pub dry_run: bool,
    /// Wait until the shards and the merge have finished; fail unless the run is merged complete.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The run: its folder, or its name under data/metadata/experiments/slurm/.
    pub run: PathBuf,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The run: its folder, or its name under data/metadata/experiments/slurm/.
    pub run: PathBuf,
    /// How long to wait for the workspace database's write lock (the TUI or a job writing) before giving up.
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    pub busy_wait: u64,
}

pub fn run(ctx: &Ctx, a: SlurmArgs) -> Result<()> {
    match a.which {
        SlurmWhich::Submit(s) => run_submit(ctx, s),
        SlurmWhich::Status(s) => run_status(ctx, s),
    }
}

fn run_submit(ctx: &Ctx, a: SubmitArgs) -> Result<()> {
    let ws = ctx.workspace()?;
    let segmenting = !a.segment.is_empty();
    let splits = match &a.split {
        Some(s) if !segmenting => Some(crate::labels::parse_splits(s).map_err(anyhow::Error::msg)?),
        _ => None,
    };
    let job = if segmenting {
        ScoreJob {
            teacher: "segment".into(),
            options: Default::default(),
            device: "cpu".into(),
            splits: None,
            fresh: false,
            batch_size: None,
        }
    } else {
        let options = crate::teachers::TeacherOptions::parse_pairs(&a.options).map_err(anyhow::Error::msg)?;
        ScoreJob::new(&a.teacher, &options, a.device.as_deref(), splits.as_deref(), false, a.batch_size)?
    };
    let new = slurm::NewScorePlan {
        job,
        shards: a.shards,
        slurm: SlurmResources {
            partition: a.partition,
            account: a.account,
            time: a.time,
            mem: a.mem,
            gres: a.gres,
            cpus_per_task: a.cpus_per_task,
            max_parallel: a.max_parallel,
            extra: a.sbatch_options,
        },
        name: a.name,
        dams_bin: std::env::current_exe()?,
        dirs: &ctx.dirs,
    };
    let loaded = if segmenting {
        let split = a.split.clone().unwrap_or_else(|| "unlabeled".into());
        split.parse::<crate::labels::Split>().map_err(anyhow::Error::msg)?;
        let files = super::audio::collect_inputs(&a.segment);
        let spec = slurm::plan::SegmentSpec {
            window: a.window,
            hop: a.hop,
            min_tail: a.min_tail,
            split,
            copy_raw: !a.no_copy,
        };
        slurm::create_segment_plan(&ws, new, &files, spec)?
    } else if a.embed {
        #[cfg(feature = "burn")]
        {
            slurm::embed::create_embed_plan(&ws, new)?
        }
        #[cfg(not(feature = "burn"))]
        bail!("this build of dams has no model engine (cargo feature `burn`): --embed is not available")
    } else {
        slurm::create_score_plan(&ws, new)?
    };
    let dir = &loaded.dir;
    let p = &loaded.plan;
    println!(
        "plan {} ({}): {} {} in {} shards of {}-{}, {} {} ({})",
        dir.display(),
        loaded.sha256,
        p.items.len(),
        if p.kind == slurm::plan::KIND_SEGMENT { "recordings" } else { "segments" },
        p.shards,
        p.items.len() / p.shards,
        p.items.len().div_ceil(p.shards),
        match p.kind.as_str() {
            slurm::plan::KIND_EMBED => "embeddings of",
            slurm::plan::KIND_SEGMENT => "recordings cut by",
            _ => "teacher",
        },
        p.teacher.id,
        p.teacher.checksum
    );
    let (score, merge) = sbatch::script_paths(dir);
    println!("scripts: {} {}", score.display(), merge.display());
    if a.dry_run {
        let all: Vec<usize> = (0..p.shards).collect();
        println!("dry run: nothing submitted. To submit:");
        for l in sbatch::resubmit_commands(p, dir, &all, sbatch::max_array_size()) {
            println!("  {l}");
        }
        println!(
            "or run shard I anywhere: {} score --plan {} --shard I",
            p.dams_bin.display(),
            dir.join("plan.json").display()
        );
        return Ok(());
    }
    let all: Vec<usize> = (0..p.shards).collect();
    let sub = sbatch::submit(p, dir, &all).with_context(|| {
        format!(
            "the plan and its scripts are in {} (nothing of it reached the workspace); `dams slurm status {}` prints \
             the sbatch lines that submit it",
            dir.display(),
            dir.display()
        )
    })?;
    for (id, c) in &sub.arrays {
        println!("submitted array job {id} (sbatch {})", c.args(p.slurm.max_parallel).join(" "));
    }
    println!("submitted merge job {} (afterok, cancelled if a shard fails)", sub.merge_job);
    println!("follow it with `dams slurm status {}`", dir.display());
    if a.wait {
        wait_for(&sub)?;
        return finish_wait(ctx, dir);
    }
    Ok(())
}

/// Poll squeue until every job of the submission has left the queue.
fn wait_for(sub: &sbatch::Submission) -> Result<()> {
    loop {
        match sbatch::still_queued(sub) {
            None => bail!("cannot run squeue to wait for the jobs"),
            Some(q) if q.is_empty() => return Ok(()),
            Some(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

fn finish_wait(ctx: &Ctx, dir: &Path) -> Result<()> {
    let ws = ctx.workspace()?;
    let store = ws.open_store()?;
    let st = status::status(dir, Some(&store))?;
    print_status(&st, dir);
    if !st.merged() {
        let sub = sbatch::submissions(dir).pop();
        let merge_state = sub.and_then(|s| sbatch::job_state(&s.merge_job)).unwrap_or_else(|| "unknown".into());
        bail!(
            "the run is not merged complete ({} of {} shards merged; merge job {merge_state}); see above for how to \
             resubmit the missing shards",
            st.shards.iter().filter(|s| s.merged).count(),
            st.shards.len()
        );
    }
    Ok(())
}

fn print_status(st: &status::Status, dir: &Path) {
    let p = &st.plan.plan;
    let (done, total) = st.progress();
    let unit = if p.kind == crate::slurm::plan::KIND_SEGMENT { "recordings" } else { "segments" };
    println!(
        "run {}: {} {} over {total} {unit} in {} shards; {done}/{total} done",
        dir.display(),
        match p.kind.as_str() {
            crate::slurm::plan::KIND_EMBED => "embeddings of",
            crate::slurm::plan::KIND_SEGMENT => "segmentation by",
            _ => "teacher",
        },
        p.teacher.id,
        p.shards
    );
    let complete = st.count(|s| matches!(s, status::ShardState::Complete { .. }));
    let partial = st.count(|s| matches!(s, status::ShardState::Partial { .. }));
    let missing = st.count(|s| matches!(s, status::ShardState::Missing));
    let merged = st.shards.iter().filter(|s| s.merged).count();
    println!("  complete {complete}, partial {partial}, missing {missing}; merged {merged}/{}", p.shards);
    if let Some(r) = st.run_id {
        println!("  teacher run #{r}{}", if st.merged() { " (complete)" } else { " (partial)" });
    }
    for s in &st.shards {
        let what = match &s.state {
            status::ShardState::Complete { rows, failed } => {
                format!(
                    "complete ({rows} scored{})",
                    if *failed > 0 { format!(", {failed} failed") } else { String::new() }
                )
            }
            status::ShardState::Partial { rows: Some(r) } => format!("partial ({r}/{})", s.items),
            status::ShardState::Partial { rows: None } => "partial (being written)".into(),
            status::ShardState::Missing => "missing".into(),
        };
        if !matches!(s.state, status::ShardState::Complete { .. }) || p.shards <= 32 {
            println!("  shard {:>4}: {what}{}", s.shard, if s.merged { ", merged" } else { "" });
        }
    }
    let todo = st.not_complete();
    if !todo.is_empty() {
        println!("resubmit the shards that are not complete ({}) and a merge after them:", sbatch::compress(&todo));
        for l in sbatch::resubmit_commands(p, dir, &todo, sbatch::max_array_size()) {
            println!("  {l}");
        }
    } else if !st.merged() {
        println!(
            "every shard is complete; merge them with:\n  {} --workspace {} merge {}",
            p.dams_bin.display(),
            p.workspace.display(),
            dir.display()
        );
    }
}

fn run_status(ctx: &Ctx, a: StatusArgs) -> Result<()> {
    let ws = ctx.workspace().ok();
    let dir = slurm::resolve_run(ws.as_ref(), &a.run)?;
    let plan = slurm::plan::load(&dir)?;
    // The database is only read, and only to say what is merged.
    let ws = ws.or_else(|| crate::workspace::Workspace::open(&plan.plan.workspace).ok());
    let store = ws.as_ref().and_then(|w| w.open_store().ok());
    let st = status::status(&dir, store.as_ref())?;
    print_status(&st, &dir);
    for sub in sbatch::submissions(&dir).iter().rev().take(1) {
        let ids: Vec<String> = sub.arrays.iter().map(|(id, _)| id.clone()).collect();
        println!(
            "last submission {}: array job(s) {}, merge job {} ({})",
            sub.at,
            ids.join(","),
            sub.merge_job,
            sbatch::job_state(&sub.merge_job).unwrap_or_else(|| "no longer known to Slurm".into())
        );
    }
    Ok(())
}

pub fn run_merge(ctx: &Ctx, a: MergeArgs) -> Result<()> {
    let ws0 = ctx.workspace().ok();
    let dir = slurm::resolve_run(ws0.as_ref(), &a.run)?;
    let ws = match ws0 {
        Some(w) => w,
        None => crate::workspace::Workspace::open(&slurm::plan::load(&dir)?.plan.workspace)?,
    };
    let r = slurm::merge::merge(&ws, &dir, Duration::from_secs(a.busy_wait))?;
    let imported: Vec<usize> = r.imported.iter().map(|(s, _)| *s).collect();
    println!(
        "merged {} ({} shards): {} part(s) imported now ({} rows{}), {} already in, {} missing, {} refused, in {:.2} s",
        dir.display(),
        r.shards,
        imported.len(),
        r.rows,
        if imported.is_empty() { String::new() } else { format!(": shards {}", sbatch::compress(&imported)) },
        r.already.len(),
        r.missing.len(),
        r.refused.len(),
        r.elapsed_s
    );
    for f in &r.refused {
        println!("refused shard {} ({}): {}", f.shard, f.part.display(), f.reason);
    }
    let kind = slurm::plan::load(&dir)?.plan.kind;
    if r.run_id.is_none() && r.complete && kind != slurm::plan::KIND_SCORE {
        let what = if kind == slurm::plan::KIND_EMBED {
            "the embedding cache holds every segment of the plan"
        } else {
            "every recording of the plan is segmented"
        };
        println!("{what}{}", if r.completed_now { " (now)" } else { "" });
    }
    if let Some(run) = r.run_id {
        if r.complete {
            println!("teacher run #{run} is complete{}", if r.completed_now { " (now)" } else { "" });
        } else {
            println!("teacher run #{run} is partial: it is complete once every shard is merged");
        }
    }
    if r.failed_total > 0 {
        println!("{} segment(s) could not be scored, e.g.:", r.failed_total);
        for (p, e) in r.failed.iter().take(5) {
            println!("  {p}: {e}");
        }
    }
    if r.default_thresholds_set {
        println!("stored the teacher's default thresholds (method 'default'); calibrate with `dams calibrate`");
    }
    if !r.refused.is_empty() {
        bail!("{} part(s) refused; nothing of them was imported", r.refused.len());
    }
    if !r.missing.is_empty() {
        return Err(super::audio::PartialFailure {
            failed: r.missing.len(),
            total: r.shards,
            what: "shards (missing parts)",
        }
        .into());
    }
    Ok(())
}

/// `dams score --plan PLAN --shard I|auto`.
pub fn run_shard(ctx: &Ctx, plan: &Path, shard: shard::ShardArg) -> Result<()> {
    let mut last = std::time::Instant::now();
    let r = shard::run_shard(plan, shard, &ctx.dirs, |done, total| {
        if last.elapsed() > Duration::from_secs(10) {
            eprintln!("{done}/{total} segments");
            last = std::time::Instant::now();
        }
    })?;
    if r.already_done {
        println!("shard {} of {}: already complete ({}), nothing to do", r.shard, r.shards, r.part.display());
        return Ok(());
    }
    for (p, e) in &r.failed {
        eprintln!("skipped {p}: {e}");
    }
    let what = match r.kind.as_str() {
        slurm::plan::KIND_EMBED => "embedded",
        slurm::plan::KIND_SEGMENT => "recordings cut",
        _ => "scored",
    };
    println!(
        "shard {} of {}{}: {} {what}, {} already {what}, {} failed of {} in {:.1} s on {} ({}); published {}",
        r.shard,
        r.shards,
        if r.resumed { " (resumed)" } else { "" },
        r.scored,
        r.already,
        r.failed.len(),
        r.items,
        r.elapsed_s,
        slurm::hostname(),
        slurm::job_id(),
        r.part.display()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------- benchmarks

/// Peak resident memory of this process so far (VmHWM), in MiB.
pub(super) fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 =
        s.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb / 1024.0)
}

/// Reset the peak-RSS mark (Linux `clear_refs` 5), so the next reading covers only what follows.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn load_line() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// `dams bench merge`: merge `rows` generated score rows in `parts` part files into a fresh workspace.
pub fn bench_merge(rows: usize, parts: usize, keep: bool) -> Result<()> {
    use rusqlite::params;
    use std::time::Instant;

    if rows == 0 || parts == 0 || parts > rows {
        bail!("--rows and --parts must be positive, with at most one part per row");
    }
    let tmp = std::env::temp_dir().join(format!("dams-bench-merge-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = (|| -> Result<()> {
        let ws = crate::workspace::Workspace::init(tmp.join("ws"))?;
        let t = Instant::now();
        {
            let mut store = ws.open_store()?;
            let tx = store.conn_mut().transaction()?;
            {
                let mut stmt = tx.prepare("INSERT INTO segments (id, segment_path, raw_file, start_time, end_time, split) VALUES (?1, ?2, 'r.wav', ?3, ?4, 'unlabeled')")?;
                for i in 0..rows {
                    let s = i as f64 * 5.0;
                    stmt.execute(params![i as i64 + 1, format!("segments/r_s{:07}.wav", i + 1), s, s + 10.0])?;
                }
            }
            tx.commit()?;
        }
        let items: Vec<crate::slurm::plan::Item> = (0..rows)
            .map(|i| crate::slurm::plan::Item { id: i as i64 + 1, path: format!("segments/r_s{:07}.wav", i + 1) })
            .collect();
        let plan = crate::slurm::plan::Plan {
            format: crate::slurm::plan::PLAN_FORMAT,
            kind: "score".into(),
            embedding: None,
            segment: None,
            dams_version: env!("CARGO_PKG_VERSION").into(),
            created_at: crate::slurm::now(),
            workspace: ws.root().to_path_buf(),
            dams_bin: std::env::current_exe()?,
            env: Default::default(),
            job: ScoreJob::new("builtin", &[], None, None, false, None)?,
            teacher: crate::slurm::plan::TeacherInfo {
                id: "bench".into(),
                version: "1".into(),
                checksum: "sha256:bench".into(),
                settings: "{\"splits\":\"all\"}".into(),
                zero_shot: false,
                raw_vocab: None,
                label_source: "bench_pseudo".into(),
                default_thresholds: None,
            },
            shards: parts,
            slurm: Default::default(),
            items,
        };
        let dir = crate::slurm::runs_dir(&ws).join("bench");
        std::fs::create_dir_all(crate::slurm::part::parts_dir(&dir))?;
        let plan_sha = crate::slurm::plan::write(&dir, &plan)?;
        for i in 0..parts {
            let path = crate::slurm::part::final_path(&dir, i);
            let mut c = crate::slurm::part::open_for_write(&path)?;
            c.pragma_update(None, "synchronous", "OFF")?;
            crate::slurm::part::set_meta(
                &mut c,
                &[
                    ("plan_sha256", plan_sha.clone()),
                    ("shard", i.to_string()),
                    ("shards", parts.to_string()),
                    ("checksum", "sha256:bench".into()),
                    ("finished_at", crate::slurm::now()),
                ],
            )?;
            let tx = c.transaction()?;
            {
                let mut stmt =
                    tx.prepare("INSERT INTO scores (segment_id, speech, music, noise) VALUES (?1, ?2, ?3, ?4)")?;
                for it in plan.shard_items(i) {
                    let x = (it.id % 1000) as f64 / 1000.0;
                    stmt.execute(params![it.id, x, 1.0 - x, x * 0.5])?;
                }
            }
            tx.commit()?;
        }
        let setup = t.elapsed().as_secs_f64();
        drop(plan);
        let part_bytes: u64 = (0..parts)
            .map(|i| std::fs::metadata(crate::slurm::part::final_path(&dir, i)).map(|m| m.len()).unwrap_or(0))
            .sum();

        let rss_reset = reset_peak_rss();
        let t = Instant::now();
        let r = crate::slurm::merge::merge(&ws, &dir, Duration::from_secs(30))?;
        let secs = t.elapsed().as_secs_f64();
        let peak = peak_rss_mib();
        if !r.complete || r.rows != rows as u64 {
            bail!("the merge imported {} of {rows} rows (complete: {})", r.rows, r.complete);
        }
        // What dominates: hashing every part twice (before and after import) vs SQLite's own INSERT ... SELECT.
        let t = Instant::now();
        for i in 0..parts {
            crate::slurm::sha256_file(&crate::slurm::part::final_path(&dir, i))?;
        }
        let hash_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let r2 = crate::slurm::merge::merge(&ws, &dir, Duration::from_secs(30))?;
        let again = t.elapsed().as_secs_f64();
        if r2.rows != 0 || r2.already.len() != parts {
            bail!("a second merge imported {} rows", r2.rows);
        }
        println!(
            "merge of {rows} rows in {parts} parts ({:.0} MiB of parts; setup {setup:.1} s): {secs:.2} s = {:.0} rows/s; \
             peak RSS during the merge {}; hashing all parts once {hash_s:.2} s ({:.0} MiB/s); a second merge (no-op) \
             {again:.2} s",
            part_bytes as f64 / 1048576.0,
            rows as f64 / secs,
            match (rss_reset, peak) {
                (true, Some(p)) => format!("{p:.0} MiB"),
                (false, Some(p)) => format!("{p:.0} MiB (process peak, incl. setup)"),
                _ => "unknown".into(),
            },
            part_bytes as f64 / 1048576.0 / hash_s.max(1e-9),
        );
        println!("goal: >= 200,000 rows/s and < 500 MiB peak RSS; load average {}", load_line());
        Ok(())
    })();
    if keep {
        eprintln!("kept {}", tmp.display());
    } else {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// CPU seconds (user + system) of this process's finished children.
fn children_cpu_s() -> f64 {
    #[cfg(unix)]
    {
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage fills the struct it is given.
        if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) } == 0 {
            let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            return tv(u.ru_utime) + tv(u.ru_stime);
        }
    }
    0.0
}

/// `dams bench shards`: scoring throughput of the built-in teacher with 1 shard and with `shards` shards running
/// at once (each a `dams score --plan --shard I` process, as array tasks on one node would be).
pub fn bench_shards(segments: usize, shards: usize, keep: bool) -> Result<()> {
    use std::time::Instant;

    let shards = shards.max(2);
    if segments < shards {
        bail!("--segments must be at least --shards");
    }
    let tmp = std::env::temp_dir().join(format!("dams-bench-shards-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = (|| -> Result<()> {
        let ws = crate::workspace::Workspace::init(tmp.join("ws"))?;
        let mut rng = crate::teachers::builtin::train::Rng::new(7);
        let mut rows = Vec::new();
        for i in 0..segments {
            let rel = format!("segments/b_s{:05}.wav", i + 1);
            let f0 = rng.range(100.0, 400.0);
            let (wt, wn) = (rng.range(0.0, 0.3), rng.range(0.0, 0.3));
            let x: Vec<f32> = (0..160_000)
                .map(|k| {
                    let t = k as f64 / 16_000.0;
                    (wt * (2.0 * std::f64::consts::PI * f0 * t).sin() + wn * rng.range(-1.0, 1.0)) as f32
                })
                .collect();
            crate::audio::write_wav_16k(&ws.abs_data_path(&rel), &x)?;
            rows.push(crate::store::NewSegment {
                segment_path: rel,
                raw_file: "b.wav".into(),
                start_time: i as f64 * 10.0,
                end_time: i as f64 * 10.0 + 10.0,
                split: crate::labels::Split::Unlabeled,
                label_source: crate::labels::LabelSource::none(),
                labels: None,
                scores: [None; 3],
                extra: None,
            });
        }
        ws.open_store()?.upsert_segments(&rows)?;
        let dirs = crate::config::Dirs::get();
        let exe = std::env::current_exe()?;
        let mut rates = Vec::new();
        for n in [1, shards] {
            let loaded = crate::slurm::create_score_plan(
                &ws,
                crate::slurm::NewScorePlan {
                    job: ScoreJob::new("builtin", &[], Some("cpu"), None, false, None)?,
                    shards: n,
                    slurm: Default::default(),
                    name: Some(format!("bench-{n}")),
                    dams_bin: exe.clone(),
                    dirs: &dirs,
                },
            )?;
            let plan = loaded.dir.join(crate::slurm::plan::PLAN_FILE);
            let cpu0 = children_cpu_s();
            let t = Instant::now();
            let children: Vec<_> = (0..n)
                .map(|i| {
                    std::process::Command::new(&exe)
                        .args(["score", "--plan"])
                        .arg(&plan)
                        .args(["--shard", &i.to_string()])
                        .stdout(std::process::Stdio::null())
                        .spawn()
                })
                .collect::<std::io::Result<_>>()?;
            for mut c in children {
                if !c.wait()?.success() {
                    bail!("a shard of the {n}-shard run failed");
                }
            }
            let secs = t.elapsed().as_secs_f64();
            rates.push((n, secs, segments as f64 / secs, children_cpu_s() - cpu0));
        }
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        for (n, secs, rate, cpu) in &rates {
            println!(
                "{n} shard(s): {segments} segments of 10 s in {secs:.2} s = {rate:.1} segments/s; CPU {cpu:.2} s \
                 ({:.1} ms per segment, {:.0} % of {n} core(s) busy)",
                cpu / segments as f64 * 1000.0,
                cpu / (secs * *n as f64) * 100.0
            );
        }
        println!(
            "speed-up with {} shards: {:.2}x on {cores} cores (ideal {:.0}x); load average {}",
            shards,
            rates[1].2 / rates[0].2,
            (shards.min(cores)) as f64,
            load_line()
        );
        Ok(())
    })();
    if keep {
        eprintln!("kept {}", tmp.display());
    } else {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}
