//! Staged, chunked manifest imports: all-or-nothing for the user, without holding the write lock
//! for the length of the import.
//!
//! 1. Stage: the importer validates the whole file and writes the valid rows to a stage database
//!    (a separate SQLite file next to the store, `.import-*.stage`), so the store is not locked
//!    at all while a file is read. A file with any problem is refused and its stage deleted:
//!    nothing reaches the store.
//! 2. Apply: a marker row (`import_applies`, created on first use) records the stage and how far
//!    the apply got; rows go to the store in chunks, each chunk one short transaction (sized to
//!    take about [`TARGET_CHUNK`]) that also advances the marker. Between chunks other writers
//!    (the annotator's labels) get the lock.
//! 3. An apply cut off (kill -9, power loss) is resumed from its marker by the next dams process
//!    that opens the workspace ([`resume_interrupted`]); committed chunks are never applied
//!    twice, since the marker moves in the same transaction as the rows.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};

use super::manifest::{ManifestCounts, PresentColumns, apply_manifest_batch};
use super::{NewSegment, Result, Store, StoreError, now, process_alive};
use crate::labels::{LabelSet, LabelSource, Split};

/// How long one chunk's transaction should hold the write lock.
pub const TARGET_CHUNK: Duration = Duration::from_millis(25);
/// Pause between chunks. SQLite's locks are not fair: an importer that takes the lock again at
/// once would starve a label writer polling for it; a short gap lets waiting writers in (the TUI's
/// label writer polls every millisecond).
pub const CHUNK_GAP: Duration = Duration::from_millis(3);
const FIRST_CHUNK: usize = 500;
const MIN_CHUNK: usize = 50;
const MAX_CHUNK: usize = 20_000;

const CREATE_MARKERS: &str = "CREATE TABLE IF NOT EXISTS import_applies (\
    id INTEGER PRIMARY KEY, source TEXT NOT NULL, stage TEXT NOT NULL, total INTEGER NOT NULL, \
    applied INTEGER NOT NULL DEFAULT 0, pid INTEGER NOT NULL, annotator TEXT NOT NULL, present INTEGER NOT NULL, \
    known_new INTEGER NOT NULL, last_id INTEGER, inserted INTEGER NOT NULL DEFAULT 0, updated INTEGER NOT NULL DEFAULT 0, \
    unchanged INTEGER NOT NULL DEFAULT 0, gold_written INTEGER NOT NULL DEFAULT 0, gold_removed INTEGER NOT NULL DEFAULT 0, \
    started_at TEXT NOT NULL)";

/// The stage of one import: validated rows in file order.
pub struct Stage {
    conn: Connection,
    path: PathBuf,
    rows: i64,
}

fn stage_err(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(format!("import stage {}: {e}", path.display()))
}

impl Stage {
    /// A new stage file in `dir` (the store's folder, so it is on the same disk).
    pub fn create(dir: &Path) -> Result<Stage> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let path = dir.join(format!(".import-{}-{nanos}.stage", std::process::id()));
        let conn = Connection::open(&path).map_err(|e| stage_err(&path, e))?;
        // A stage is rebuilt from the file if lost before the apply starts: no journal, no syncs
        // while staging; it is synced once before the apply relies on it.
        conn.execute_batch(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; \
             CREATE TABLE rows (n INTEGER PRIMARY KEY, segment_path TEXT NOT NULL, raw_file TEXT NOT NULL, \
             start_time REAL NOT NULL, end_time REAL NOT NULL, split TEXT NOT NULL, label_source TEXT NOT NULL, \
             labels INTEGER, s0 REAL, s1 REAL, s2 REAL, extra TEXT); BEGIN",
        )
        .map_err(|e| stage_err(&path, e))?;
        Ok(Stage { conn, path, rows: 0 })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn push(&mut self, rows: &[NewSegment]) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO rows (segment_path, raw_file, start_time, end_time, split, label_source, labels, s0, s1, s2, extra) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        for s in rows {
            stmt.execute(params![
                s.segment_path,
                s.raw_file,
                s.start_time,
                s.end_time,
                s.split.as_str(),
                s.label_source.as_str(),
                s.labels.map(|l| l.bits() as i64),
                s.scores[0],
                s.scores[1],
                s.scores[2],
                s.extra
            ])?;
        }
        self.rows += rows.len() as i64;
        Ok(())
    }

    /// Commit and sync the stage; returns its path and row count.
    pub fn finish(self) -> Result<(PathBuf, i64)> {
        self.conn.execute_batch("COMMIT; PRAGMA synchronous = FULL;").map_err(|e| stage_err(&self.path, e))?;
        let Stage { conn, path, rows } = self;
        conn.close().map_err(|(_, e)| stage_err(&path, e))?;
        if let Ok(f) = std::fs::File::open(&path) {
            let _ = f.sync_all();
        }
        Ok((path, rows))
    }

    /// Throw the stage away (the file was refused).
    pub fn discard(self) {
        let Stage { conn, path, .. } = self;
        drop(conn);
        let _ = std::fs::remove_file(&path);
    }
}

fn present_bits(p: &PresentColumns) -> i64 {
    let b = [
        p.raw_file,
        p.start_time,
        p.end_time,
        p.split,
        p.label_source,
        p.labels,
        p.scores[0],
        p.scores[1],
        p.scores[2],
    ];
    b.iter().enumerate().map(|(i, &x)| (x as i64) << i).sum()
}

fn present_from(bits: i64) -> PresentColumns {
    let b = |i: u32| bits & (1 << i) != 0;
    PresentColumns {
        raw_file: b(0),
        start_time: b(1),
        end_time: b(2),
        split: b(3),
        label_source: b(4),
        labels: b(5),
        scores: [b(6), b(7), b(8)],
    }
}

fn read_chunk(stage: &Connection, after: i64, limit: usize) -> Result<Vec<(i64, NewSegment)>> {
    let mut stmt = stage.prepare_cached(
        "SELECT n, segment_path, raw_file, start_time, end_time, split, label_source, labels, s0, s1, s2, extra \
         FROM rows WHERE n > ?1 ORDER BY n LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after, limit as i64], |r| {
        let split: String = r.get(5)?;
        let source: String = r.get(6)?;
        Ok((
            r.get::<_, i64>(0)?,
            NewSegment {
                segment_path: r.get(1)?,
                raw_file: r.get(2)?,
                start_time: r.get(3)?,
                end_time: r.get(4)?,
                split: split.parse().unwrap_or(Split::Unsplit),
                label_source: source.parse().unwrap_or_else(|_| LabelSource::none()),
                labels: r.get::<_, Option<i64>>(7)?.map(|b| LabelSet::from_bits(b as u8)),
                scores: [r.get(8)?, r.get(9)?, r.get(10)?],
                extra: r.get(11)?,
            },
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Register the apply of a finished stage; returns the marker id.
pub fn register(
    store: &mut Store,
    source: &str,
    stage: &Path,
    total: i64,
    annotator: &str,
    present: &PresentColumns,
) -> Result<i64> {
    store.conn().execute_batch(CREATE_MARKERS)?;
    let tx = store.conn_mut().transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let known_new: bool = tx.query_row("SELECT NOT EXISTS (SELECT 1 FROM segments)", [], |r| r.get(0))?;
    tx.execute(
        "INSERT INTO import_applies (source, stage, total, pid, annotator, present, known_new, last_id, started_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, (SELECT max(id) FROM segments), ?8)",
        params![
            source,
            stage.to_string_lossy(),
            total,
            std::process::id(),
            annotator,
            present_bits(present),
            known_new,
            now()
        ],
    )?;
    let id = tx.last_insert_rowid();
    tx.commit()?;
    Ok(id)
}

/// Progress of an apply, reported after each chunk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyProgress {
    pub applied: i64,
    pub total: i64,
    pub chunks: usize,
    /// The longest a chunk's transaction held the write lock.
    pub longest: Duration,
}

/// Apply (or go on applying) the import of marker `id` in chunks; returns the counts of the whole
/// import. `stop_after` (tests) stops after that many chunks, as a crash would.
pub fn apply(
    store: &mut Store,
    id: i64,
    stop_after: Option<usize>,
    progress: &mut dyn FnMut(&ApplyProgress),
) -> Result<ManifestCounts> {
    type Marker = (String, i64, i64, String, i64, bool, Option<i64>, [i64; 5]);
    let m: Marker = store.conn().query_row(
        "SELECT stage, total, applied, annotator, present, known_new, last_id, inserted, updated, unchanged, \
         gold_written, gold_removed FROM import_applies WHERE id = ?1",
        [id],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                [r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?],
            ))
        },
    )?;
    let (stage_path, total, applied, annotator, present, known_new, last_id, c) = m;
    let stage_path = PathBuf::from(stage_path);
    let present = present_from(present);
    let counts = ManifestCounts {
        inserted: c[0] as usize,
        updated: c[1] as usize,
        unchanged: c[2] as usize,
        gold_written: c[3] as usize,
        gold_removed: c[4] as usize,
    };
    let cursor = Cursor { stage_path, total, applied, annotator, present, known_new, last_id, counts };
    run_chunks(store, Some(id), cursor, stop_after, progress)
}

/// A dry run of a finished stage: every chunk is applied and rolled back (so no lock is held
/// longer than a chunk), and nothing is written; returns what the import would do.
pub fn dry_run(
    store: &mut Store,
    stage_path: &Path,
    total: i64,
    annotator: &str,
    present: &PresentColumns,
) -> Result<ManifestCounts> {
    let cursor = Cursor {
        stage_path: stage_path.to_path_buf(),
        total,
        applied: 0,
        annotator: annotator.to_string(),
        present: *present,
        known_new: false,
        last_id: None,
        counts: ManifestCounts::default(),
    };
    run_chunks(store, None, cursor, None, &mut |_| {})
}

/// The next chunk's size, from how long the last one (`rows` rows) held the lock: aimed at
/// [`TARGET_CHUNK`], growing at most twofold.
fn next_chunk(chunk: usize, took: Duration, rows: usize) -> usize {
    let per_row = took.as_secs_f64() / rows.max(1) as f64;
    let want = if per_row > 0.0 { (TARGET_CHUNK.as_secs_f64() / per_row) as usize } else { MAX_CHUNK };
    want.clamp(MIN_CHUNK, MAX_CHUNK).min(chunk * 2)
}

/// Where an apply stands.
struct Cursor {
    stage_path: PathBuf,
    total: i64,
    applied: i64,
    annotator: String,
    present: PresentColumns,
    known_new: bool,
    last_id: Option<i64>,
    counts: ManifestCounts,
}

/// The chunk loop of [`apply`] (`id`: its marker) and [`dry_run`] (`None`: roll every chunk back).
fn run_chunks(
    store: &mut Store,
    id: Option<i64>,
    cursor: Cursor,
    stop_after: Option<usize>,
    progress: &mut dyn FnMut(&ApplyProgress),
) -> Result<ManifestCounts> {
    let Cursor { stage_path, total, mut applied, annotator, present, mut known_new, mut last_id, mut counts } = cursor;
    let stage = Connection::open_with_flags(&stage_path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| stage_err(&stage_path, e))?;
    let mut annotator_id: Option<i64> = None;
    let mut chunk = FIRST_CHUNK;
    let mut p = ApplyProgress { applied, total, chunks: 0, longest: Duration::ZERO };
    while applied < total {
        if stop_after.is_some_and(|n| p.chunks >= n) {
            return Ok(counts);
        }
        let rows = read_chunk(&stage, applied, chunk)?;
        let Some(&(last_n, _)) = rows.last() else { break };
        let batch: Vec<NewSegment> = rows.into_iter().map(|(_, s)| s).collect();
        let mut c = counts;
        let t0 = Instant::now();
        let tx = store.conn_mut().transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Rows known to be new only while nobody else added segments since the last chunk.
        if known_new {
            let max: Option<i64> = tx.query_row("SELECT max(id) FROM segments", [], |r| r.get(0))?;
            if max != last_id {
                known_new = false;
            }
        }
        apply_manifest_batch(&tx, &annotator, &mut annotator_id, &batch, &present, known_new, &mut c)?;
        let max: Option<i64> = tx.query_row("SELECT max(id) FROM segments", [], |r| r.get(0))?;
        let Some(id) = id else {
            // Dry run: count, write nothing. (The annotator a rolled-back chunk created is gone.)
            tx.rollback()?;
            annotator_id = None;
            counts = c;
            applied = last_n;
            p.applied = applied;
            p.chunks += 1;
            p.longest = p.longest.max(t0.elapsed());
            progress(&p);
            std::thread::sleep(CHUNK_GAP);
            chunk = next_chunk(chunk, t0.elapsed(), batch.len());
            continue;
        };
        tx.execute(
            "UPDATE import_applies SET applied = ?1, known_new = ?2, last_id = ?3, inserted = ?4, updated = ?5, \
             unchanged = ?6, gold_written = ?7, gold_removed = ?8 WHERE id = ?9",
            params![
                last_n,
                known_new,
                max,
                c.inserted as i64,
                c.updated as i64,
                c.unchanged as i64,
                c.gold_written as i64,
                c.gold_removed as i64,
                id
            ],
        )?;
        tx.commit()?;
        let took = t0.elapsed();
        counts = c;
        applied = last_n;
        last_id = max;
        p.applied = applied;
        p.chunks += 1;
        p.longest = p.longest.max(took);
        progress(&p);
        std::thread::sleep(CHUNK_GAP);
        chunk = next_chunk(chunk, took, batch.len());
    }
    if let Some(id) = id {
        store.conn().execute("DELETE FROM import_applies WHERE id = ?1", [id])?;
        drop(stage);
        let _ = std::fs::remove_file(&stage_path);
    }
    Ok(counts)
}

/// Resume the applies that a process which is gone left unfinished. Returns one line per import
/// (what was resumed, or why it could not be).
pub fn resume_interrupted(store: &mut Store) -> Result<Vec<String>> {
    let has: bool = store.conn().query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'import_applies')",
        [],
        |r| r.get(0),
    )?;
    if !has {
        return Ok(Vec::new());
    }
    let me = std::process::id() as i64;
    let mut stmt =
        store.conn().prepare("SELECT id, source, pid, stage, total, applied FROM import_applies ORDER BY id")?;
    let todo: Vec<(i64, String, i64, String, i64, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))?
        .collect::<rusqlite::Result<_>>()?;
    drop(stmt);
    let mut out = Vec::new();
    for (id, source, pid, stage, total, applied) in todo {
        if pid == me || process_alive(pid) {
            continue;
        }
        if !Path::new(&stage).exists() {
            out.push(format!(
                "the import of {source} was cut off after {applied} of {total} rows and its stage {stage} is gone; \
                 import the file again to complete it"
            ));
            store.conn().execute("DELETE FROM import_applies WHERE id = ?1", [id])?;
            continue;
        }
        // Take it over (so a second process does not resume it too), then finish it.
        let took = store
            .conn()
            .execute("UPDATE import_applies SET pid = ?1 WHERE id = ?2 AND pid = ?3", params![me, id, pid])?;
        if took == 0 {
            continue;
        }
        let c = apply(store, id, None, &mut |_| {})?;
        out.push(format!(
            "finished the import of {source} that was cut off after {applied} of {total} rows \
             ({} inserted, {} updated, {} unchanged in all)",
            c.inserted, c.updated, c.unchanged
        ));
    }
    Ok(out)
}

/// Whether an unfinished apply exists (cheap; used before taking any lock).
pub fn any_unfinished(store: &Store) -> bool {
    store
        .conn()
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'import_applies') \
             AND EXISTS (SELECT 1 FROM import_applies)",
            [],
            |r| r.get::<_, bool>(0),
        )
        .optional()
        .ok()
        .flatten()
        .unwrap_or(false)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn rows(n: usize, gold_every: usize) -> Vec<NewSegment> {
        (0..n)
            .map(|i| {
                let gold = gold_every > 0 && i % gold_every == 0;
                NewSegment {
                    segment_path: format!("segments/r{i:06}.wav"),
                    raw_file: "show.flac".into(),
                    start_time: i as f64,
                    end_time: i as f64 + 10.0,
                    split: Split::Dev,
                    label_source: if gold { "gold".parse().unwrap() } else { LabelSource::none() },
                    labels: gold.then(|| LabelSet::new(true, false, i % 2 == 0)),
                    scores: [Some(0.5), None, Some(0.25)],
                    extra: None,
                }
            })
            .collect()
    }

    fn staged(dir: &Path, rows: &[NewSegment]) -> (PathBuf, i64) {
        let mut st = Stage::create(dir).unwrap();
        for c in rows.chunks(1000) {
            st.push(c).unwrap();
        }
        st.finish().unwrap()
    }

    /// An apply cut off after two chunks is finished by the next open's resume, and the result is
    /// the same as an uninterrupted import: no row twice, none missing, gold included.
    #[test]
    fn an_interrupted_apply_is_resumed_exactly_once() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("dams.sqlite");
        let all = rows(5_000, 7);
        let mut store = Store::open(&db).unwrap();
        let (stage, total) = staged(d.path(), &all);
        assert_eq!(total, 5_000);
        let id = register(&mut store, "m.csv", &stage, total, "manifest", &PresentColumns::ALL).unwrap();
        let partial = apply(&mut store, id, Some(2), &mut |_| {}).unwrap();
        let n = store.segment_count().unwrap();
        assert!(n > 0 && n < 5_000, "{n}");
        assert_eq!(partial.inserted as i64, n);
        assert!(any_unfinished(&store));
        // The importing process is gone.
        store.conn().execute("UPDATE import_applies SET pid = 2147483000", []).unwrap();
        drop(store);
        let mut store = Store::open(&db).unwrap();
        let lines = resume_interrupted(&mut store).unwrap();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("5000 inserted"), "{lines:?}");
        assert_eq!(store.segment_count().unwrap(), 5_000);
        assert!(!any_unfinished(&store));
        assert!(!stage.exists(), "the stage is removed once applied");
        let ann = store.annotator_id("manifest").unwrap();
        assert_eq!(store.gold_of(ann).unwrap().len(), 5_000usize.div_ceil(7));
        let segs = store.segments(None).unwrap();
        for (s, want) in segs.iter().zip(&all) {
            assert_eq!(&s.segment_path, &want.segment_path);
            assert_eq!(s.labels, want.labels);
            assert_eq!(s.scores, want.scores);
        }
        // A live importer's apply is left alone.
        let (stage2, t2) = staged(d.path(), &rows(10, 0));
        let id2 = register(&mut store, "n.csv", &stage2, t2, "manifest", &PresentColumns::ALL).unwrap();
        let parent = unsafe { libc::getppid() } as i64;
        store.conn().execute("UPDATE import_applies SET pid = ?1 WHERE id = ?2", [parent, id2]).unwrap();
        assert!(resume_interrupted(&mut store).unwrap().is_empty());
        assert!(any_unfinished(&store));
    }

    /// A dry run counts like the real apply, in chunks that are rolled back: nothing is written.
    #[test]
    fn a_dry_run_counts_and_writes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("dams.sqlite");
        let mut store = Store::open(&db).unwrap();
        let all = rows(3_000, 5);
        store.upsert_segments(&all[..1_000]).unwrap();
        let mut changed = all.clone();
        changed[10].split = Split::Test;
        let (stage, total) = staged(d.path(), &changed);
        let c = dry_run(&mut store, &stage, total, "manifest", &PresentColumns::ALL).unwrap();
        assert_eq!((c.inserted, c.updated, c.unchanged), (2_000, 1, 999));
        assert_eq!(c.gold_written, 3_000usize.div_ceil(5));
        assert_eq!(store.segment_count().unwrap(), 1_000);
        let annotators: i64 = store.conn().query_row("SELECT count(*) FROM annotators", [], |r| r.get(0)).unwrap();
        assert_eq!(annotators, 0);
        assert!(!any_unfinished(&store));
    }

    /// Chunks are sized to the lock-time target, and another connection can write between them.
    #[test]
    fn chunks_let_other_writers_in() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("dams.sqlite");
        let mut store = Store::open(&db).unwrap();
        let (stage, total) = staged(d.path(), &rows(30_000, 0));
        let id = register(&mut store, "m.csv", &stage, total, "manifest", &PresentColumns::ALL).unwrap();
        let other = Connection::open(&db).unwrap();
        other.busy_timeout(Duration::from_secs(5)).unwrap();
        other.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        let mut writes_between = 0;
        let mut last = ApplyProgress::default();
        apply(&mut store, id, None, &mut |p| {
            // (the progress callback runs between chunks, with the lock released)
            if other.execute("INSERT INTO t VALUES (1)", []).is_ok() {
                writes_between += 1;
            }
            last = *p;
        })
        .unwrap();
        assert_eq!(last.applied, 30_000);
        assert!(last.chunks >= 3, "{last:?}");
        assert_eq!(writes_between, last.chunks);
        assert_eq!(store.segment_count().unwrap(), 30_000);
        eprintln!("30,000 rows in {} chunks, longest lock {:?}", last.chunks, last.longest);
    }
}
