//! Part files: one SQLite file per shard, `parts/part-00003.sqlite` once finished, `.partial` while written.
//!
//! A part is written by one shard only, in rollback-journal mode (never WAL: parts live on network filesystems),
//! with `synchronous=FULL` and one commit per batch, so a shard killed at any point leaves a `.partial` that the
//! next attempt resumes. A finished part is published by renaming `.partial` to its final name (atomic), after
//! which it never changes; the merge records its sha256 and refuses it if it does.
//!
//! Tables: `meta(key, value)` (plan sha256, shard, shards, teacher, weights checksum, device, host, job id,
//! times, counts), `scores(segment_id, speech, music, noise, raw)` (a scoring plan) or `embeddings(segment_id, dim,
//! vec)` (an embedding plan), and `failed(segment_id, path, error)`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags, params};

/// The part file format (meta `format`).
pub const PART_FORMAT: &str = "1";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scores (
    segment_id INTEGER PRIMARY KEY,
    speech REAL NOT NULL,
    music  REAL NOT NULL,
    noise  REAL NOT NULL,
    raw    BLOB                      -- the teacher's raw output, little-endian f32
);
CREATE TABLE IF NOT EXISTS embeddings (
    segment_id INTEGER PRIMARY KEY,
    dim INTEGER NOT NULL,
    vec BLOB NOT NULL                -- dim little-endian f32
);
CREATE TABLE IF NOT EXISTS raw_files (   -- a segmentation plan: one row per recording cut
    item INTEGER PRIMARY KEY,
    raw_path TEXT NOT NULL,
    duration REAL NOT NULL,
    sample_rate INTEGER NOT NULL,
    channels INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS windows (
    segment_path TEXT PRIMARY KEY,
    item INTEGER NOT NULL,
    raw_file TEXT NOT NULL,
    start_time REAL NOT NULL,
    end_time REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS failed (segment_id INTEGER PRIMARY KEY, path TEXT NOT NULL, error TEXT NOT NULL);
";

/// The folder of a run's parts.
pub fn parts_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("parts")
}

/// The published part of shard `i`.
pub fn final_path(run_dir: &Path, i: usize) -> PathBuf {
    parts_dir(run_dir).join(format!("part-{i:05}.sqlite"))
}

/// The part of shard `i` while it is being written.
pub fn partial_path(run_dir: &Path, i: usize) -> PathBuf {
    parts_dir(run_dir).join(format!("part-{i:05}.sqlite.partial"))
}

/// Open (creating) a part file for writing.
pub fn open_for_write(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("cannot open the part {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "DELETE")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// Open a part read-only (status, merge).
pub fn open_read(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_context(|| format!("cannot open the part {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(2))?;
    Ok(conn)
}

/// Every meta value of a part.
pub fn read_meta(conn: &Connection) -> Result<BTreeMap<String, String>> {
    let mut stmt = conn.prepare("SELECT key, value FROM meta")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Set meta values in one transaction.
pub fn set_meta(conn: &mut Connection, kv: &[(&str, String)]) -> Result<()> {
    let tx = conn.transaction()?;
    for (k, v) in kv {
        tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", params![k, v])?;
    }
    tx.commit()?;
    Ok(())
}

/// `(rows, failed)` of a part: rows are scores, embeddings or windows (a part holds one kind).
pub fn counts(conn: &Connection) -> Result<(u64, u64)> {
    let s: i64 = conn.query_row(
        "SELECT (SELECT count(*) FROM scores) + (SELECT count(*) FROM embeddings) + (SELECT count(*) FROM windows)",
        [],
        |r| r.get(0),
    )?;
    let f: i64 = conn.query_row("SELECT count(*) FROM failed", [], |r| r.get(0))?;
    Ok((s as u64, f as u64))
}

/// Items of the plan a part has dealt with (scored, embedded, cut, or failed): its shard's progress.
pub fn items_done(conn: &Connection) -> Result<u64> {
    let n: i64 = conn.query_row(
        "SELECT (SELECT count(*) FROM scores) + (SELECT count(*) FROM embeddings) + (SELECT count(*) FROM raw_files) \
         + (SELECT count(*) FROM failed)",
        [],
        |r| r.get(0),
    )?;
    Ok(n as u64)
}
