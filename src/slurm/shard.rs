//! One shard: `dams score --plan PLAN --shard I|auto`. Reads the plan and the audio, writes only its own part
//! file (never the workspace database), resumes a half-done part, publishes it by atomic rename.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, Result, bail};
use rusqlite::params;

use super::part;
use super::plan::{self, LoadedPlan};
use crate::store::f32s_to_bytes;
use crate::teachers::score::{BatchOutcome, score_batches};
use crate::teachers::{OpenContext, Teacher};
use crate::workspace::Workspace;

/// Test hook: a comma-separated list of shard indices that fail on purpose (exit non-zero before writing
/// anything), so tests can make a Slurm array task fail deterministically. Never set it in real use.
pub const FAIL_HOOK_ENV: &str = "DAMS_TEST_FAIL_SHARDS";

/// Which shard to run: an index, or `auto` (from the scheduler's environment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardArg {
    Index(usize),
    Auto,
}

impl std::str::FromStr for ShardArg {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "auto" {
            return Ok(ShardArg::Auto);
        }
        s.parse::<usize>().map(ShardArg::Index).map_err(|_| format!("'{s}' is not a shard index (0, 1, ...) or 'auto'"))
    }
}

/// The shard index of this process: `SLURM_ARRAY_TASK_ID` (plus `DAMS_SHARD_OFFSET` for arrays chunked above
/// `MaxArraySize`), Kubernetes' `JOB_COMPLETION_INDEX`, or `DAMS_SHARD_INDEX`. The shard count always comes from
/// the plan (`SLURM_ARRAY_TASK_COUNT` is the size of *this* submission: 2 when `--array=2,5` is resubmitted).
pub fn resolve(arg: ShardArg, env: impl Fn(&str) -> Option<String>) -> Result<usize> {
    let parse = |name: &str, v: String| -> Result<usize> {
        v.trim().parse::<usize>().with_context(|| format!("{name}={v} is not a shard index"))
    };
    match arg {
        ShardArg::Index(i) => Ok(i),
        ShardArg::Auto => {
            if let Some(v) = env("SLURM_ARRAY_TASK_ID") {
                let offset = match env("DAMS_SHARD_OFFSET") {
                    Some(o) => parse("DAMS_SHARD_OFFSET", o)?,
                    None => 0,
                };
                return Ok(offset + parse("SLURM_ARRAY_TASK_ID", v)?);
            }
            for name in ["JOB_COMPLETION_INDEX", "DAMS_SHARD_INDEX"] {
                if let Some(v) = env(name) {
                    return parse(name, v);
                }
            }
            bail!(
                "--shard auto found no index: set SLURM_ARRAY_TASK_ID (a Slurm array task), JOB_COMPLETION_INDEX \
                 (a Kubernetes Indexed Job) or DAMS_SHARD_INDEX, or pass --shard N"
            )
        }
    }
}

/// What a shard did.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardReport {
    /// The plan's kind (`score`, `embed`).
    pub kind: String,
    pub shard: usize,
    pub shards: usize,
    /// The part was already published: nothing was done.
    pub already_done: bool,
    /// A half-done part was resumed.
    pub resumed: bool,
    pub items: usize,
    /// Segments scored in this session / before it (a resumed part).
    pub scored: usize,
    pub already: usize,
    pub failed: Vec<(String, String)>,
    pub part: std::path::PathBuf,
    pub elapsed_s: f64,
}

/// Run shard `arg` of the plan at `plan_path`; `dirs`: the user dirs (model cache). `progress(done, total)`.
pub fn run_shard(
    plan_path: &Path,
    arg: ShardArg,
    dirs: &crate::config::Dirs,
    mut progress: impl FnMut(usize, usize),
) -> Result<ShardReport> {
    let started = std::time::Instant::now();
    let LoadedPlan { plan, sha256: plan_sha, dir } = plan::load(plan_path)?;
    let i = resolve(arg, |k| std::env::var(k).ok().filter(|v| !v.is_empty()))?;
    if i >= plan.shards {
        bail!(
            "shard {i} does not exist: the plan {} has {} shards (0..{})",
            dir.display(),
            plan.shards,
            plan.shards - 1
        );
    }
    if let Ok(list) = std::env::var(FAIL_HOOK_ENV)
        && list.split(',').any(|x| x.trim().parse::<usize>().ok() == Some(i))
    {
        bail!("shard {i} failed on purpose ({FAIL_HOOK_ENV}={list}, a test hook)");
    }
    let items = plan.shard_items(i);
    let final_path = part::final_path(&dir, i);
    let partial_path = part::partial_path(&dir, i);
    let base = ShardReport {
        kind: plan.kind.clone(),
        shard: i,
        shards: plan.shards,
        already_done: false,
        resumed: false,
        items: items.len(),
        scored: 0,
        already: 0,
        failed: Vec::new(),
        part: final_path.clone(),
        elapsed_s: 0.0,
    };
    if final_path.exists() {
        return Ok(ShardReport { already_done: true, already: items.len(), ..base });
    }
    std::fs::create_dir_all(part::parts_dir(&dir))?;

    // The model, opened the way a local run opens it; the weights are re-hashed on open.
    let ws = Workspace::open(&plan.workspace)
        .with_context(|| format!("the plan's workspace {}", plan.workspace.display()))?;
    let mut worker = open_worker(&plan, &ws, dirs)?;
    if worker.checksum() != plan.teacher.checksum {
        bail!(
            "the weights of {} on {} ({}) are not the plan's ({}): install the same weights on every node, \
             or plan again",
            plan.job.teacher,
            super::hostname(),
            worker.checksum(),
            plan.teacher.checksum
        );
    }

    let resumed = partial_path.exists();
    let mut conn = part::open_for_write(&partial_path)?;
    let meta = part::read_meta(&conn)?;
    if let Some(p) = meta.get("plan_sha256")
        && *p != plan_sha
    {
        bail!(
            "{} belongs to another plan ({p}, not {plan_sha}); move it away to start this shard again",
            partial_path.display()
        );
    }
    let sessions: u64 = meta.get("sessions").and_then(|s| s.parse().ok()).unwrap_or(0) + 1;
    let mut kv = vec![
        ("format", part::PART_FORMAT.to_string()),
        ("kind", plan.kind.clone()),
        ("plan_sha256", plan_sha.clone()),
        ("shard", i.to_string()),
        ("shards", plan.shards.to_string()),
        ("items", items.len().to_string()),
        ("teacher", plan.job.teacher.clone()),
        ("checksum", worker.checksum()),
        ("teacher_settings", worker.settings()),
        ("device", plan.job.device.clone()),
        ("host", super::hostname()),
        ("job_id", super::job_id()),
        ("dams_version", env!("CARGO_PKG_VERSION").to_string()),
        ("sessions", sessions.to_string()),
        ("session_started_at", super::now()),
    ];
    if let Some(n) = worker.notice() {
        kv.push(("notice", n));
    }
    if !meta.contains_key("started_at") {
        kv.push(("started_at", super::now()));
    }
    part::set_meta(&mut conn, &kv)?;
    // Failed segments are tried again on a resume (the audio may have been fixed).
    conn.execute("DELETE FROM failed", [])?;

    let done: HashSet<i64> = {
        let mut stmt = conn.prepare(
            "SELECT segment_id FROM scores UNION ALL SELECT segment_id FROM embeddings \
             UNION ALL SELECT item FROM raw_files",
        )?;
        stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
    };
    let todo: Vec<(i64, &str)> =
        items.iter().filter(|it| !done.contains(&it.id)).map(|it| (it.id, it.path.as_str())).collect();
    let already = items.len() - todo.len();
    let total = items.len();
    let outcome = match &mut worker {
        Worker::Score(teacher) => {
            let batch = plan.job.batch_size.unwrap_or_else(|| teacher.batch_size()).max(1);
            score_batches(
                &ws,
                teacher.as_mut(),
                &todo,
                batch,
                || false,
                // A part file holds scores only: embeddings a teacher computes on the way (CLAP) are not cached by
                // sharded runs.
                |rows, _embeddings| {
                    let tx = conn.transaction()?;
                    {
                        let mut stmt = tx.prepare_cached(
                            "INSERT OR REPLACE INTO scores (segment_id, speech, music, noise, raw) \
                             VALUES (?1, ?2, ?3, ?4, ?5)",
                        )?;
                        for r in rows {
                            let blob = r.raw.as_ref().map(|l| f32s_to_bytes(l));
                            stmt.execute(params![
                                r.segment_id,
                                r.scores[0] as f64,
                                r.scores[1] as f64,
                                r.scores[2] as f64,
                                blob
                            ])?;
                        }
                    }
                    tx.commit()?;
                    Ok(())
                },
                |handled, _| progress(already + handled, total),
            )?
        }
        Worker::Segment(opts) => {
            let opts = opts.clone();
            segment_files(&ws, &opts, &todo, &mut conn, |handled| progress(already + handled, total))?
        }
        #[cfg(feature = "burn")]
        Worker::Embed(ast) => embed_batches(&ws, ast, &todo, plan.job.batch_size, &mut conn, |handled| {
            progress(already + handled, total)
        })?,
    };
    {
        let tx = conn.transaction()?;
        for (id, path, e) in &outcome.failed {
            tx.execute(
                "INSERT OR REPLACE INTO failed (segment_id, path, error) VALUES (?1, ?2, ?3)",
                params![id, path, e],
            )?;
        }
        tx.commit()?;
    }
    let (n_scores, n_failed) = part::counts(&conn)?;
    part::set_meta(
        &mut conn,
        &[("finished_at", super::now()), ("scored", n_scores.to_string()), ("failed", n_failed.to_string())],
    )?;
    conn.close().map_err(|(_, e)| e)?;
    // Publish: the final name appears only for a complete part.
    std::fs::rename(&partial_path, &final_path)
        .with_context(|| format!("cannot publish {} as {}", partial_path.display(), final_path.display()))?;
    super::sync_dir(&part::parts_dir(&dir));
    Ok(ShardReport {
        resumed,
        scored: outcome.scored,
        already,
        failed: outcome.failed.into_iter().map(|(_, p, e)| (p, e)).collect(),
        elapsed_s: started.elapsed().as_secs_f64(),
        ..base
    })
}

/// What a shard runs: a teacher (a scoring plan) or a model's embedding (an embedding plan).
enum Worker {
    Score(Box<dyn Teacher>),
    Segment(crate::audio::segment::SegmentOptions),
    #[cfg(feature = "burn")]
    Embed(crate::teachers::ast::AstTeacher),
}

impl Worker {
    fn checksum(&self) -> String {
        match self {
            Worker::Score(t) => t.checksum().to_string(),
            Worker::Segment(_) => plan::segmenter_id(),
            #[cfg(feature = "burn")]
            Worker::Embed(a) => a.checksum().to_string(),
        }
    }
    fn settings(&self) -> String {
        match self {
            Worker::Score(t) => t.settings_json(),
            Worker::Segment(o) => format!("{o:?}"),
            #[cfg(feature = "burn")]
            Worker::Embed(a) => a.settings_json(),
        }
    }
    fn notice(&self) -> Option<String> {
        match self {
            Worker::Score(t) => t.notice(),
            Worker::Segment(_) => None,
            #[cfg(feature = "burn")]
            Worker::Embed(a) => a.notice(),
        }
    }
}

fn open_worker(plan: &plan::Plan, ws: &Workspace, dirs: &crate::config::Dirs) -> Result<Worker> {
    match plan.kind.as_str() {
        plan::KIND_SCORE => {
            let d = crate::catalog::find(&plan.job.teacher)?;
            let options = d.parse_options(plan.job.options.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
            let ctx =
                OpenContext::for_workspace(dirs, Some(ws)).with_device(plan.job.device.clone()).with_options(options);
            Ok(Worker::Score(crate::catalog::open(&plan.job.teacher, &ctx)?))
        }
        plan::KIND_SEGMENT => Ok(Worker::Segment(plan.segment.as_ref().context("no segmentation options")?.options()?)),
        #[cfg(feature = "burn")]
        plan::KIND_EMBED => Ok(Worker::Embed(super::embed::open_model(&plan.job.teacher, &plan.job.device, dirs)?)),
        k => bail!("this build of dams cannot run '{k}' shards"),
    }
}

/// The segmentation loop of a shard: cut each recording (one item) into its window files, then commit its
/// `raw_files` row and its windows to the part in one transaction; a recording that fails is recorded as failed.
fn segment_files(
    ws: &Workspace,
    opts: &crate::audio::segment::SegmentOptions,
    todo: &[(i64, &str)],
    conn: &mut rusqlite::Connection,
    mut progress: impl FnMut(usize),
) -> Result<BatchOutcome> {
    let mut out = BatchOutcome::default();
    progress(0);
    for (k, &(item, path)) in todo.iter().enumerate() {
        match crate::audio::segment::cut_file(ws, Path::new(path), opts, &mut |_, _| {}) {
            Ok((report, rows)) => {
                let tx = conn.transaction()?;
                tx.execute(
                    "INSERT OR REPLACE INTO raw_files (item, raw_path, duration, sample_rate, channels) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![item, report.raw_path, report.duration, report.source_rate, report.source_channels],
                )?;
                {
                    let mut stmt = tx.prepare_cached(
                        "INSERT OR REPLACE INTO windows (segment_path, item, raw_file, start_time, end_time) \
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?;
                    for r in &rows {
                        stmt.execute(params![r.segment_path, item, r.raw_file, r.start_time, r.end_time])?;
                    }
                }
                tx.commit()?;
                out.scored += 1;
            }
            Err(e) => out.failed.push((item, path.to_string(), e.to_string())),
        }
        progress(k + 1);
    }
    Ok(out)
}

/// The embedding loop of a shard: decode a batch, embed it, commit its vectors to the part.
#[cfg(feature = "burn")]
fn embed_batches(
    ws: &Workspace,
    ast: &mut crate::teachers::ast::AstTeacher,
    todo: &[(i64, &str)],
    batch: Option<usize>,
    conn: &mut rusqlite::Connection,
    mut progress: impl FnMut(usize),
) -> Result<BatchOutcome> {
    let batch = batch.unwrap_or(if ast.engine().gpu { 16 } else { 4 }).max(1);
    let mut out = BatchOutcome::default();
    let mut handled = 0;
    progress(0);
    for chunk in todo.chunks(batch) {
        let mut ids = Vec::new();
        let mut waves = Vec::new();
        for &(id, path) in chunk {
            let loaded = ws
                .resolve_data_path(path)
                .map_err(|e| e.to_string())
                .and_then(|p| crate::audio::load_mono_16k(&p).map_err(|e| e.to_string()));
            match loaded {
                Ok(x) if x.iter().all(|v| v.is_finite()) => {
                    ids.push(id);
                    waves.push(x);
                }
                Ok(_) => out.failed.push((id, path.to_string(), "non-finite samples".into())),
                Err(e) => out.failed.push((id, path.to_string(), e)),
            }
        }
        let refs: Vec<&[f32]> = waves.iter().map(Vec::as_slice).collect();
        let vecs = crate::student::ast_head::embed_waves(ast, &refs)?;
        let tx = conn.transaction()?;
        {
            let mut stmt =
                tx.prepare_cached("INSERT OR REPLACE INTO embeddings (segment_id, dim, vec) VALUES (?1, ?2, ?3)")?;
            for (id, v) in ids.iter().zip(&vecs) {
                stmt.execute(params![id, v.len() as i64, f32s_to_bytes(v)])?;
            }
        }
        tx.commit()?;
        out.scored += vecs.len();
        handled += chunk.len();
        progress(handled);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_takes_the_index_from_the_scheduler_never_the_count() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(resolve(ShardArg::Index(3), env(&[("SLURM_ARRAY_TASK_ID", "1")])).unwrap(), 3);
        let slurm = env(&[("SLURM_ARRAY_TASK_ID", "5"), ("SLURM_ARRAY_TASK_COUNT", "2")]);
        assert_eq!(resolve(ShardArg::Auto, slurm).unwrap(), 5);
        let chunked = env(&[("SLURM_ARRAY_TASK_ID", "5"), ("DAMS_SHARD_OFFSET", "1000")]);
        assert_eq!(resolve(ShardArg::Auto, chunked).unwrap(), 1005);
        assert_eq!(resolve(ShardArg::Auto, env(&[("JOB_COMPLETION_INDEX", "7")])).unwrap(), 7);
        assert_eq!(resolve(ShardArg::Auto, env(&[("DAMS_SHARD_INDEX", "2")])).unwrap(), 2);
        let e = resolve(ShardArg::Auto, env(&[])).unwrap_err().to_string();
        assert!(e.contains("SLURM_ARRAY_TASK_ID") && e.contains("--shard N"), "{e}");
        let e = resolve(ShardArg::Auto, env(&[("JOB_COMPLETION_INDEX", "x")])).unwrap_err().to_string();
        assert!(e.contains("JOB_COMPLETION_INDEX=x"), "{e}");
        assert!("auto".parse::<ShardArg>().unwrap() == ShardArg::Auto);
        assert!("-1".parse::<ShardArg>().is_err());
    }
}
