//! Sharded batch work for clusters: a frozen plan, shards that each write their own part file, an idempotent
//! merge into the workspace database, and Slurm job arrays to run it all.
//!
//! - [`plan`]: `plan.json` in a run folder freezes the work (ordered segments, teacher, weights checksum, settings,
//!   shard count, dams version).
//! - [`shard`]: `dams score --plan PLAN --shard I|auto` scores one shard into `parts/part-I.sqlite` — never the
//!   workspace database (SQLite's WAL does not work over network filesystems) — committing per batch, resuming a
//!   half-done part, publishing it by atomic rename.
//! - [`merge`]: `dams merge RUN` imports each finished part in one transaction, records which parts (and their
//!   sha256) are in, refuses a part whose weights differ from the plan or that changed after import, and marks
//!   the teacher run done only when every part is in. Running it again changes nothing.
//! - [`status`]: complete / partial / missing shards from the files, and the `sbatch` line that resubmits the
//!   missing ones.
//! - [`sbatch`]: the generated scripts and their submission (`--array=0-(N-1)%P`, then the merge with
//!   `--dependency=afterok:<array> --kill-on-invalid-dep=yes`).
//!
//! The same `--shard` command line serves Kubernetes Indexed Jobs (`JOB_COMPLETION_INDEX`) and GNU parallel
//! (`--shard {}`); see docs/slurm.md. Nothing here knows a terminal exists.

#[cfg(feature = "burn")]
pub mod embed;
pub mod merge;
pub mod part;
pub mod plan;
pub mod sbatch;
pub mod shard;
pub mod status;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// Where run folders live in a workspace: `data/metadata/experiments/slurm/<name>/`.
pub fn runs_dir(ws: &crate::workspace::Workspace) -> PathBuf {
    ws.experiments_dir().join("slurm")
}

/// A run folder named on the command line: a path to it (or to its plan.json), or a run name under
/// [`runs_dir`] of the workspace.
pub fn resolve_run(ws: Option<&crate::workspace::Workspace>, arg: &Path) -> Result<PathBuf> {
    let direct = if arg.file_name().is_some_and(|n| n == plan::PLAN_FILE) { arg.parent() } else { Some(arg) };
    if let Some(d) = direct
        && d.join(plan::PLAN_FILE).is_file()
    {
        return Ok(std::path::absolute(d)?);
    }
    if let Some(ws) = ws {
        let named = runs_dir(ws).join(arg);
        if named.join(plan::PLAN_FILE).is_file() {
            return Ok(named);
        }
    }
    bail!(
        "{} is not a sharded run (no {} in it{}); `dams slurm submit` creates runs",
        arg.display(),
        plan::PLAN_FILE,
        ws.map(|w| format!(" nor in {}", runs_dir(w).join(arg).display())).unwrap_or_default()
    )
}

/// `sha256:<hex>` of bytes.
pub fn sha256_bytes(b: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(b))
}

/// `sha256:<hex>` of a file's content (streamed).
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("sha256:{:x}", h.finalize()))
}

/// Write a file so that readers see the old content or the new one, never a part: a temporary file in the same
/// folder, flushed to disk, renamed over `path`, and the folder synced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("a file path without a folder")?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        std::process::id()
    ));
    {
        let mut f = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
    sync_dir(dir);
    Ok(())
}

/// Flush a folder's entries (a rename in it) to disk; best effort (some filesystems refuse).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// This machine's short host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Now, as ISO 8601 UTC.
pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The scheduler's id for this process, when it runs under one: Slurm's `<array job>_<task>` or job id, a
/// Kubernetes pod name, else `pid <n>`.
pub fn job_id() -> String {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let (Some(a), Some(t)) = (var("SLURM_ARRAY_JOB_ID"), var("SLURM_ARRAY_TASK_ID")) {
        return format!("slurm {a}_{t}");
    }
    if let Some(j) = var("SLURM_JOB_ID") {
        return format!("slurm {j}");
    }
    if var("JOB_COMPLETION_INDEX").is_some()
        && let Some(h) = var("HOSTNAME")
    {
        return format!("k8s {h}");
    }
    format!("pid {}", std::process::id())
}

/// The environment variables a run's scripts export when the submitting process has them: the user dirs (so a
/// node finds the same installed teachers) and the Hugging Face cache settings.
pub const EXPORTED_ENV: &[&str] =
    &["DAMS_CONFIG_DIR", "DAMS_DATA_DIR", "DAMS_CACHE_DIR", "HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "DAMS_NO_GPU"];

/// What to shard: a scoring job over the workspace, in `shards` shards.
pub struct NewScorePlan<'a> {
    pub job: crate::jobs::catalog::ScoreJob,
    pub shards: usize,
    pub slurm: plan::SlurmResources,
    /// The run folder's name (default: `<UTC time>-<teacher>`).
    pub name: Option<String>,
    /// The dams binary the scripts run.
    pub dams_bin: PathBuf,
    pub dirs: &'a crate::config::Dirs,
}

/// Freeze a scoring job into a new run folder: open the teacher once (weights checksum, settings, version), list
/// the segments, write `plan.json` and the sbatch scripts. Reads the workspace database, writes nothing in it.
pub fn create_score_plan(ws: &crate::workspace::Workspace, p: NewScorePlan<'_>) -> Result<plan::LoadedPlan> {
    check_counts(&p)?;
    let job = &p.job;
    let splits: Option<Vec<crate::labels::Split>> = match &job.splits {
        Some(v) => Some(v.iter().map(|s| s.parse().map_err(anyhow::Error::msg)).collect::<Result<_>>()?),
        None => None,
    };
    let d = crate::catalog::find(&job.teacher)?;
    let options = d.parse_options(job.options.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let ctx = crate::teachers::OpenContext::for_workspace(p.dirs, Some(ws))
        .with_device(job.device.clone())
        .with_options(options);
    let teacher = crate::catalog::open(&job.teacher, &ctx)?;
    let teacher_info = plan::TeacherInfo {
        id: teacher.id().to_string(),
        version: teacher.version(),
        checksum: teacher.checksum().to_string(),
        settings: crate::teachers::score::run_settings(teacher.as_ref(), splits.as_deref()),
        zero_shot: teacher.zero_shot(),
        raw_vocab: teacher.raw_vocab().map(str::to_string),
        label_source: teacher.label_source().as_str().to_string(),
        default_thresholds: teacher.default_thresholds(),
    };
    drop(teacher);
    write_plan(ws, p, plan::KIND_SCORE, None, teacher_info, |_| true)
}

fn check_counts(p: &NewScorePlan<'_>) -> Result<()> {
    if p.shards == 0 {
        bail!("--shards must be at least 1");
    }
    if p.slurm.max_parallel == Some(0) {
        bail!("--max-parallel must be at least 1");
    }
    Ok(())
}

/// Write the run folder of a plan of `kind` over the segments of the job's splits that `keep` keeps.
pub(crate) fn write_plan(
    ws: &crate::workspace::Workspace,
    p: NewScorePlan<'_>,
    kind: &str,
    embedding: Option<String>,
    teacher_info: plan::TeacherInfo,
    keep: impl Fn(&crate::store::Segment) -> bool,
) -> Result<plan::LoadedPlan> {
    check_counts(&p)?;
    let splits: Option<Vec<crate::labels::Split>> = match &p.job.splits {
        Some(v) => Some(v.iter().map(|s| s.parse().map_err(anyhow::Error::msg)).collect::<Result<_>>()?),
        None => None,
    };
    let store = ws.open_store()?;
    let items: Vec<plan::Item> = store
        .segments(splits.as_deref())?
        .into_iter()
        .filter(|s| keep(s))
        .map(|s| plan::Item { id: s.id, path: s.segment_path })
        .collect();
    drop(store);
    if items.is_empty() {
        bail!(
            "no segments to {} (import a manifest or cut recordings with `dams segment` first{})",
            if kind == plan::KIND_SCORE { "score" } else { "embed" },
            if kind == plan::KIND_SCORE { "" } else { "; segments already in the embedding cache are left out" }
        );
    }
    write_items(ws, p, kind, embedding, None, teacher_info, items)
}

/// Write the run folder of a plan over `items`.
fn write_items(
    ws: &crate::workspace::Workspace,
    p: NewScorePlan<'_>,
    kind: &str,
    embedding: Option<String>,
    segment: Option<plan::SegmentSpec>,
    teacher_info: plan::TeacherInfo,
    items: Vec<plan::Item>,
) -> Result<plan::LoadedPlan> {
    let job = p.job;
    if p.shards > items.len() {
        bail!("{} shards for {} items: use at most one shard per item", p.shards, items.len());
    }
    let created_at = now();
    let name = match p.name {
        Some(n) => {
            if n.is_empty() || n.contains('/') || n.starts_with('.') {
                bail!("--name '{n}' must be a plain folder name");
            }
            n
        }
        None => format!(
            "{}-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S"),
            job.teacher
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
                .collect::<String>()
        ),
    };
    let dir = runs_dir(ws).join(&name);
    if dir.join(plan::PLAN_FILE).exists() {
        bail!("the run {} already exists (choose another --name)", dir.display());
    }
    std::fs::create_dir_all(part::parts_dir(&dir)).with_context(|| format!("cannot create {}", dir.display()))?;
    let env = EXPORTED_ENV
        .iter()
        .filter_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()).map(|v| (k.to_string(), v)))
        .chain([
            ("DAMS_CONFIG_DIR".to_string(), p.dirs.config.display().to_string()),
            ("DAMS_DATA_DIR".to_string(), p.dirs.data.display().to_string()),
            ("DAMS_CACHE_DIR".to_string(), p.dirs.cache.display().to_string()),
        ])
        .collect();
    let plan = plan::Plan {
        format: plan::PLAN_FORMAT,
        kind: kind.into(),
        embedding,
        segment,
        dams_version: env!("CARGO_PKG_VERSION").into(),
        created_at,
        workspace: std::path::absolute(ws.root())?,
        dams_bin: std::path::absolute(&p.dams_bin)?,
        env,
        job,
        teacher: teacher_info,
        shards: p.shards,
        slurm: p.slurm,
        items,
    };
    plan.validate()?;
    sbatch::write_scripts(&plan, &dir)?;
    plan::write(&dir, &plan)?;
    plan::load(&dir)
}

/// Freeze a segmentation of `files` (recordings, one item each) into a new run folder. Refused when two files
/// would name their windows alike (the same stem) or like windows of another recording already in the workspace:
/// shards cut in parallel and never see each other's names.
pub fn create_segment_plan(
    ws: &crate::workspace::Workspace,
    p: NewScorePlan<'_>,
    files: &[PathBuf],
    spec: plan::SegmentSpec,
) -> Result<plan::LoadedPlan> {
    check_counts(&p)?;
    spec.options()?;
    if files.is_empty() {
        bail!("no audio files (.wav .flac .ogg .oga .mp3) in the given paths");
    }
    let stem = |p: &Path| p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let mut seen: std::collections::HashMap<String, &Path> = std::collections::HashMap::new();
    for f in files {
        if let Some(other) = seen.insert(stem(f), f) {
            bail!(
                "{} and {} would name their windows alike ({}_sNNNN.wav); rename one of them",
                other.display(),
                f.display(),
                stem(f)
            );
        }
    }
    {
        let store = ws.open_store()?;
        let mut stmt = store.conn().prepare("SELECT DISTINCT raw_file FROM segments WHERE raw_file != ''")?;
        let known: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        for k in known {
            let ks = stem(Path::new(&k));
            if let Some(f) = seen.get(&ks)
                && f.file_name().map(|n| n.to_string_lossy().into_owned()).as_deref() != Some(k.as_str())
            {
                bail!(
                    "{} would name its windows like those of {k} already in the workspace ({ks}_sNNNN.wav); rename it",
                    f.display()
                );
            }
        }
    }
    let mut items = Vec::with_capacity(files.len());
    for (i, f) in files.iter().enumerate() {
        let abs = std::fs::canonicalize(f).with_context(|| format!("cannot read {}", f.display()))?;
        items.push(plan::Item { id: i as i64, path: abs.display().to_string() });
    }
    let teacher = plan::TeacherInfo {
        id: "segment".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        checksum: plan::segmenter_id(),
        settings: serde_json::to_string(&spec)?,
        zero_shot: false,
        raw_vocab: None,
        label_source: String::new(),
        default_thresholds: None,
    };
    write_items(ws, p, plan::KIND_SEGMENT, None, Some(spec), teacher, items)
}
