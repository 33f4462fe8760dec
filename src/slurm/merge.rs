//! `dams merge RUN`: import a sharded run's finished parts into the workspace database, idempotently.
//!
//! Each part is imported in one transaction that also records it (shard, sha256, rows, host, job id...) in
//! `shard_parts`; a part already recorded with the same sha256 is skipped, one whose bytes changed since is
//! refused, and so is one made for another plan, another shard, or with weights other than the plan's. The
//! teacher run is created with the first part (state `interrupted`: not complete, and never resumed by a local
//! `dams score`) and marked `done` in the transaction that imports the last one. Running the merge again
//! changes nothing. The tables are created on first use, like `run_leases`.
//!
//! The workspace database is the only thing written. If another process (the TUI's label writer, a local job)
//! holds its write lock, the merge waits for it (`busy_wait`), then stops with a message that names the command
//! to run again; the parts stay where they are.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rusqlite::{OptionalExtension, params};

use super::part;
use super::plan::{self, LoadedPlan};
use crate::store::Store;
use crate::workspace::Workspace;

const CREATE: &str = "
CREATE TABLE IF NOT EXISTS shard_runs (
    plan_sha256 TEXT PRIMARY KEY,
    run_dir     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    run_id      INTEGER,                       -- the teacher run the parts go into
    shards      INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    completed_at TEXT
);
CREATE TABLE IF NOT EXISTS shard_parts (
    plan_sha256 TEXT NOT NULL,
    shard       INTEGER NOT NULL,
    sha256      TEXT NOT NULL,                 -- of the part file as imported
    rows        INTEGER NOT NULL,
    failed      INTEGER NOT NULL,
    checksum    TEXT NOT NULL,                 -- the weights the shard ran
    host        TEXT,
    job_id      TEXT,
    device      TEXT,
    started_at  TEXT,
    finished_at TEXT,
    imported_at TEXT NOT NULL,
    PRIMARY KEY (plan_sha256, shard)
);
";

/// Create the merge's tables if they are missing.
pub fn ensure_tables(store: &Store) -> Result<()> {
    store.conn().execute_batch(CREATE)?;
    Ok(())
}

/// Why a part was not imported.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub shard: usize,
    pub part: PathBuf,
    pub reason: String,
}

/// What a merge did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MergeReport {
    pub run_id: Option<i64>,
    pub shards: usize,
    /// `(shard, rows)` imported now.
    pub imported: Vec<(usize, u64)>,
    /// Shards imported by an earlier merge (unchanged).
    pub already: Vec<usize>,
    pub refused: Vec<Refused>,
    /// Shards with no finished part yet.
    pub missing: Vec<usize>,
    /// Every shard is in; the run is done.
    pub complete: bool,
    /// The run became complete in this merge.
    pub completed_now: bool,
    /// Rows imported now.
    pub rows: u64,
    /// Segments the shards could not score (all parts in), `(path, error)`, the first few.
    pub failed: Vec<(String, String)>,
    pub failed_total: u64,
    pub default_thresholds_set: bool,
    pub elapsed_s: f64,
}

/// What the database says about a run folder: `(run id, imported shard → sha256)`.
pub fn merged_parts(store: &Store, plan_sha: &str) -> Result<(Option<i64>, std::collections::BTreeMap<usize, String>)> {
    let has: bool = store.conn().query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'shard_parts'",
        [],
        |r| r.get(0),
    )?;
    if !has {
        return Ok((None, Default::default()));
    }
    let run_id: Option<i64> = store
        .conn()
        .query_row("SELECT run_id FROM shard_runs WHERE plan_sha256 = ?1", [plan_sha], |r| r.get(0))
        .optional()?
        .flatten();
    let mut stmt = store.conn().prepare("SELECT shard, sha256 FROM shard_parts WHERE plan_sha256 = ?1")?;
    let rows = stmt.query_map([plan_sha], |r| Ok((r.get::<_, i64>(0)? as usize, r.get::<_, String>(1)?)))?;
    Ok((run_id, rows.collect::<rusqlite::Result<_>>()?))
}

/// Merge the run folder `run_dir` into `ws`; wait up to `busy_wait` for the database's write lock.
pub fn merge(ws: &Workspace, run_dir: &Path, busy_wait: Duration) -> Result<MergeReport> {
    let started = Instant::now();
    let loaded = plan::load(run_dir)?;
    let LoadedPlan { plan, dir, .. } = &loaded;
    if std::path::absolute(ws.root())? != std::path::absolute(&plan.workspace)? {
        bail!(
            "the run {} was planned for the workspace {}, not {}",
            dir.display(),
            plan.workspace.display(),
            ws.root().display()
        );
    }
    let mut store = ws.open_store()?;
    store.conn().busy_timeout(busy_wait)?;
    let busy = |e: &anyhow::Error| {
        e.chain().any(|c| {
            c.downcast_ref::<rusqlite::Error>().is_some_and(|r| {
                matches!(
                    r.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                )
            })
        })
    };
    let out = merge_into(&mut store, &loaded, started);
    out.map_err(|e| {
        if busy(&e) {
            e.context(format!(
                "the workspace database stayed locked for {} s (the TUI or another dams process is writing); \
                 nothing of this merge was lost — the parts stay in {} — run `dams merge {}` again",
                busy_wait.as_secs(),
                part::parts_dir(dir).display(),
                dir.display()
            ))
        } else {
            e
        }
    })
}

fn merge_into(store: &mut Store, loaded: &LoadedPlan, started: Instant) -> Result<MergeReport> {
    let LoadedPlan { plan, sha256: plan_sha, dir } = loaded;
    ensure_tables(store)?;
    let mut report = MergeReport { shards: plan.shards, ..Default::default() };
    let (run_id, recorded) = merged_parts(store, plan_sha)?;
    report.run_id = run_id;

    for i in 0..plan.shards {
        let path = part::final_path(dir, i);
        if !path.exists() {
            if recorded.contains_key(&i) {
                // Imported before, then removed: the data is in, nothing to check against.
                report.already.push(i);
            } else {
                report.missing.push(i);
            }
            continue;
        }
        let refuse = |reason: String| Refused { shard: i, part: path.clone(), reason };
        let sha = super::sha256_file(&path)?;
        if let Some(old) = recorded.get(&i) {
            if *old == sha {
                report.already.push(i);
            } else {
                report.refused.push(refuse(format!(
                    "it changed after it was merged (merged as {old}, now {sha}); its rows in the workspace were \
                     left as merged"
                )));
            }
            continue;
        }
        match import_part(store, loaded, i, &path, &sha)? {
            Ok((run, rows, failed)) => {
                report.run_id = (run != 0).then_some(run).or(report.run_id);
                report.imported.push((i, rows));
                report.rows += rows;
                report.failed_total += failed;
            }
            Err(reason) => report.refused.push(refuse(reason)),
        }
    }
    let (_, recorded) = merged_parts(store, plan_sha)?;
    report.complete = recorded.len() == plan.shards && report.refused.is_empty();
    if plan.kind != super::plan::KIND_SCORE && recorded.len() == plan.shards {
        let n = store.conn().execute(
            "UPDATE shard_runs SET completed_at = ?1 WHERE plan_sha256 = ?2 AND completed_at IS NULL",
            params![super::now(), plan_sha],
        )?;
        report.completed_now = n > 0;
    }
    if let Some(run) = report.run_id
        && recorded.len() == plan.shards
    {
        let state: String =
            store.conn().query_row("SELECT state FROM teacher_runs WHERE id = ?1", [run], |r| r.get(0))?;
        if state != "done" {
            // Every part is in: the run is complete (and gets the teacher's default thresholds, as a local run).
            store.conn().execute_batch("BEGIN IMMEDIATE")?;
            let r = (|| -> Result<bool> {
                store.finish_run(run, "done")?;
                store.conn().execute(
                    "UPDATE shard_runs SET completed_at = ?1 WHERE plan_sha256 = ?2",
                    params![super::now(), plan_sha],
                )?;
                match plan.teacher.default_thresholds {
                    Some(d) => crate::teachers::score::store_default_thresholds(
                        store,
                        &plan.teacher.id,
                        &plan.teacher.version,
                        d,
                        run,
                    ),
                    None => Ok(false),
                }
            })();
            match r {
                Ok(set) => {
                    store.conn().execute_batch("COMMIT")?;
                    report.completed_now = true;
                    report.default_thresholds_set = set;
                }
                Err(e) => {
                    let _ = store.conn().execute_batch("ROLLBACK");
                    return Err(e);
                }
            }
        }
    }
    if report.complete {
        for i in 0..plan.shards {
            let path = part::final_path(dir, i);
            if let Ok(conn) = part::open_read(&path) {
                let mut stmt = conn.prepare("SELECT path, error FROM failed ORDER BY segment_id LIMIT 20")?;
                let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
                for r in rows {
                    if report.failed.len() < 20 {
                        report.failed.push(r?);
                    }
                }
                let n: i64 = conn.query_row("SELECT count(*) FROM failed", [], |r| r.get(0))?;
                if !report.imported.iter().any(|(s, _)| *s == i) {
                    report.failed_total += n as u64;
                }
            }
        }
    }
    report.elapsed_s = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Import one part in one transaction. `Ok(Err(reason))`: refused, nothing written.
fn import_part(
    store: &mut Store,
    loaded: &LoadedPlan,
    i: usize,
    path: &Path,
    sha: &str,
) -> Result<std::result::Result<(i64, u64, u64), String>> {
    let LoadedPlan { plan, sha256: plan_sha, dir } = loaded;
    // Check the part against the plan before anything is written.
    let conn = match part::open_read(path) {
        Ok(c) => c,
        Err(e) => return Ok(Err(format!("it cannot be opened: {e:#}"))),
    };
    let meta = match part::read_meta(&conn) {
        Ok(m) => m,
        Err(e) => return Ok(Err(format!("it is not a dams part file: {e:#}"))),
    };
    let get = |k: &str| meta.get(k).cloned().unwrap_or_default();
    if get("plan_sha256") != *plan_sha {
        return Ok(Err(format!("it was made for another plan ({}, not {plan_sha})", get("plan_sha256"))));
    }
    if get("shard") != i.to_string() || get("shards") != plan.shards.to_string() {
        return Ok(Err(format!(
            "it says it is shard {} of {}, not {i} of {}",
            get("shard"),
            get("shards"),
            plan.shards
        )));
    }
    if get("checksum") != plan.teacher.checksum {
        return Ok(Err(format!(
            "its weights checksum {} is not the plan's {} (the node ran other weights)",
            get("checksum"),
            plan.teacher.checksum
        )));
    }
    if !meta.contains_key("finished_at") {
        return Ok(Err("it has no finish time (not a published part)".into()));
    }
    // Its rows are exactly the items of its own shard: none outside it (checked in SQLite against the shard's ids,
    // without a per-row round trip), none twice across tables (each table is keyed by id), and as many as the shard
    // has.
    let items = plan.shard_items(i);
    {
        let mut ids = String::with_capacity(items.len() * 8 + 2);
        ids.push('[');
        for (k, it) in items.iter().enumerate() {
            if k > 0 {
                ids.push(',');
            }
            ids.push_str(&it.id.to_string());
        }
        ids.push(']');
        const ALL: &str = "SELECT segment_id AS id FROM scores UNION ALL SELECT segment_id FROM embeddings \
                           UNION ALL SELECT item FROM raw_files UNION ALL SELECT segment_id FROM failed";
        let outside: Option<i64> = conn
            .query_row(
                &format!("SELECT id FROM ({ALL}) WHERE id NOT IN (SELECT value FROM json_each(?1)) LIMIT 1"),
                [&ids],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = outside {
            return Ok(Err(format!("it holds item #{id}, which is not in shard {i}")));
        }
        let twice: Option<i64> = conn
            .query_row(
                "SELECT segment_id FROM failed WHERE segment_id IN (SELECT segment_id FROM scores) \
                 OR segment_id IN (SELECT segment_id FROM embeddings) OR segment_id IN (SELECT item FROM raw_files) \
                 LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = twice {
            return Ok(Err(format!("it gives item #{id} both a result and a failure")));
        }
        let n: i64 = conn.query_row(&format!("SELECT count(*) FROM ({ALL})"), [], |r| r.get(0))?;
        if n as usize != items.len() {
            return Ok(Err(format!("it covers {n} of the shard's {} items", items.len())));
        }
    }
    let (rows, failed) = part::counts(&conn)?;
    drop(conn);

    // ATTACH must happen outside a transaction.
    store.conn().execute("ATTACH DATABASE ?1 AS part", [attach_uri(path)])?;
    let result = (|| -> Result<std::result::Result<(i64, u64, u64), String>> {
        store.conn().execute_batch("BEGIN IMMEDIATE")?;
        let r = (|| -> Result<std::result::Result<(i64, u64, u64), String>> {
            // Under the write lock: another merge may have imported it meanwhile.
            let done: Option<String> = store
                .conn()
                .query_row(
                    "SELECT sha256 FROM shard_parts WHERE plan_sha256 = ?1 AND shard = ?2",
                    params![plan_sha, i as i64],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(old) = done {
                return Ok(Err(if old == sha {
                    "another merge imported it meanwhile".into()
                } else {
                    format!("another merge imported a different version of it ({old})")
                }));
            }
            let run_id = ensure_run(store, loaded)?;
            let inserted = if plan.kind == super::plan::KIND_SEGMENT {
                import_windows(store, plan).map_err(|e| match e.downcast::<rusqlite::Error>() {
                    Ok(r) => r,
                    Err(e) => rusqlite::Error::ToSqlConversionFailure(e.into()),
                })
            } else if plan.kind == super::plan::KIND_EMBED {
                // Vectors already in the cache (a local computation with the same weights) are the same vectors.
                store.conn().execute(
                    "INSERT OR IGNORE INTO embeddings (model_checksum, kind, segment_id, dim, vec) \
                     SELECT ?1, ?2, segment_id, dim, vec FROM part.embeddings",
                    params![plan.teacher.checksum, plan.embedding.as_deref().unwrap_or_default()],
                )
            } else {
                store.conn().execute(
                    "INSERT INTO teacher_scores (run_id, segment_id, speech, music, noise, logits) \
                     SELECT ?1, segment_id, speech, music, noise, raw FROM part.scores",
                    [run_id],
                )
            };
            match inserted {
                Ok(n) if n as u64 == rows || (plan.kind != super::plan::KIND_SCORE && n as u64 <= rows) => {}
                Ok(n) => return Ok(Err(format!("{n} of its {rows} rows could be imported"))),
                Err(e) => {
                    return Ok(Err(format!("its rows cannot be imported: {e} (a segment deleted since the plan?)")));
                }
            }
            store.conn().execute(
                "INSERT INTO shard_parts (plan_sha256, shard, sha256, rows, failed, checksum, host, job_id, device, \
                 started_at, finished_at, imported_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    plan_sha,
                    i as i64,
                    sha,
                    rows as i64,
                    failed as i64,
                    get("checksum"),
                    meta.get("host"),
                    meta.get("job_id"),
                    meta.get("device"),
                    meta.get("started_at"),
                    meta.get("finished_at"),
                    super::now()
                ],
            )?;
            // The bytes imported are the bytes hashed.
            let after = super::sha256_file(path)?;
            if after != sha {
                return Ok(Err(format!("it changed while it was being merged ({sha}, then {after})")));
            }
            Ok(Ok((run_id, rows, failed)))
        })();
        match &r {
            Ok(Ok(_)) => store.conn().execute_batch("COMMIT")?,
            _ => {
                let _ = store.conn().execute_batch("ROLLBACK");
            }
        }
        r
    })();
    let _ = store.conn().execute("DETACH DATABASE part", []);
    let _ = dir;
    result
}

/// The teacher run of this plan: created (state `interrupted`) with the first part.
/// (An embedding plan has no teacher run: `Ok(0)`, and only its `shard_runs` row is written.)
fn ensure_run(store: &mut Store, loaded: &LoadedPlan) -> Result<i64> {
    let LoadedPlan { plan, sha256: plan_sha, dir } = loaded;
    let existing: Option<Option<i64>> = store
        .conn()
        .query_row("SELECT run_id FROM shard_runs WHERE plan_sha256 = ?1", [plan_sha], |r| r.get(0))
        .optional()?;
    if let Some(Some(id)) = existing {
        return Ok(id);
    }
    if plan.kind != super::plan::KIND_SCORE {
        // Embeddings and segments are not a teacher run: only the record of the sharded run.
        store.conn().execute(
            "INSERT OR IGNORE INTO shard_runs (plan_sha256, run_dir, kind, run_id, shards, created_at) \
             VALUES (?1, ?2, ?3, NULL, ?4, ?5)",
            params![plan_sha, dir.display().to_string(), plan.kind, plan.shards as i64, super::now()],
        )?;
        return Ok(0);
    }
    let t = &plan.teacher;
    let id = store
        .create_run(&crate::store::NewRun {
            teacher: &t.id,
            checksum: &t.checksum,
            settings: &t.settings,
            imported: false,
            zero_shot: t.zero_shot,
        })
        .context("cannot create the teacher run")?;
    store.set_run_raw_vocab(id, t.raw_vocab.as_deref())?;
    store.conn().execute("UPDATE teacher_runs SET state = 'interrupted' WHERE id = ?1", [id])?;
    store.conn().execute(
        "INSERT INTO shard_runs (plan_sha256, run_dir, kind, run_id, shards, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT(plan_sha256) DO UPDATE SET run_id = excluded.run_id",
        params![plan_sha, dir.display().to_string(), plan.kind, id, plan.shards as i64, super::now()],
    )?;
    Ok(id)
}

/// The recordings of the attached part and their windows, each added as `dams segment` adds them (rows already
/// there are left as they are). Returns the rows inserted.
fn import_windows(store: &Store, plan: &super::plan::Plan) -> Result<usize> {
    let split = plan.segment.as_ref().context("no segmentation options")?.options()?.split;
    let conn = store.conn();
    let files: Vec<(i64, String, f64, u32, u16)> = {
        let mut stmt =
            conn.prepare("SELECT item, raw_path, duration, sample_rate, channels FROM part.raw_files ORDER BY item")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    let mut windows = conn.prepare(
        "SELECT segment_path, raw_file, start_time, end_time FROM part.windows WHERE item = ?1 ORDER BY start_time",
    )?;
    let mut inserted = 0;
    for (item, raw_path, duration, rate, channels) in files {
        let rows: Vec<crate::store::NewSegment> = windows
            .query_map([item], |r| {
                Ok(crate::store::NewSegment {
                    segment_path: r.get(0)?,
                    raw_file: r.get(1)?,
                    start_time: r.get(2)?,
                    end_time: r.get(3)?,
                    split,
                    label_source: crate::labels::LabelSource::none(),
                    labels: None,
                    scores: [None; 3],
                    extra: None,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        inserted += crate::store::add_segmented_file_in(conn, &raw_path, duration, rate, channels, &rows)?;
    }
    Ok(inserted)
}

/// A `file:` URI that opens `path` read-only (for ATTACH).
fn attach_uri(path: &Path) -> String {
    let mut s = String::from("file:");
    for ch in path.display().to_string().chars() {
        match ch {
            '%' => s.push_str("%25"),
            '?' => s.push_str("%3f"),
            '#' => s.push_str("%23"),
            c => s.push(c),
        }
    }
    s.push_str("?mode=ro");
    s
}
