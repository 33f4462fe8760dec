//! `dams slurm submit|status`, `dams merge` and `dams score --plan --shard`: sharded scoring (see `crate::slurm`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, bail};
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
    let splits = match &a.split {
        Some(s) => Some(crate::labels::parse_splits(s).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let options = crate::teachers::TeacherOptions::parse_pairs(&a.options).map_err(anyhow::Error::msg)?;
    let job = ScoreJob::new(&a.teacher, &options, a.device.as_deref(), splits.as_deref(), false, a.batch_size)?;
    let loaded = slurm::create_score_plan(
        &ws,
        slurm::NewScorePlan {
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
        },
    )?;
    let dir = &loaded.dir;
    let p = &loaded.plan;
    println!(
        "plan {} ({}): {} segments in {} shards of {}-{} segments, teacher {} ({})",
        dir.display(),
        loaded.sha256,
        p.items.len(),
        p.shards,
        p.items.len() / p.shards,
        p.items.len().div_ceil(p.shards),
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
    let sub = sbatch::submit(p, dir, &all)?;
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
    println!(
        "run {}: teacher {} over {} segments in {} shards; {done}/{total} segments scored",
        dir.display(),
        p.teacher.id,
        p.items.len(),
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
    println!(
        "shard {} of {}{}: {} scored, {} already scored, {} failed of {} in {:.1} s on {} ({}); published {}",
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
