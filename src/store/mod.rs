//! The SQLite store: segments, gold labels with undo history, teacher runs and scores,
//! thresholds, pseudo-labels, jobs and notes.
//!
//! WAL mode, foreign keys on, a busy timeout so concurrent jobs never surface "database is
//! locked", and versioned migrations (see [`schema`]). Every label write is one committed
//! transaction.

mod audio;
mod embeddings;
mod form;
pub mod import_apply;
pub mod integrity;
pub mod lease;
pub mod manifest;
pub mod runs;
pub mod schema;
mod tui;

pub use tui::BrowseRow;

pub use audio::{RawFile, add_segmented_file_in};

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use thiserror::Error;

use crate::labels::{Class, LabelSet, LabelSource, Split};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error("database {path} has schema version {found}, newer than this dams understands ({supported}); upgrade dams")]
    TooNew { path: String, found: i64, supported: i64 },
    #[error("migrating {path} to schema version {version}: {source}")]
    Migration { path: String, version: i64, source: rusqlite::Error },
    #[error("no segment with id {0}")]
    NoSegment(i64),
    #[error(
        "gold labels are only allowed on dev/test segments (segment is '{0}'); set allow_gold_on_all_splits = true in config.toml to allow it"
    )]
    GoldNotAllowed(Split),
    #[error("{0}")]
    Invalid(String),
    #[error("the store {path} cannot be used: {detail}")]
    Corrupt { path: String, detail: String },
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// A segment row as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub id: i64,
    /// Data-relative path, e.g. `segments/x_s0001.wav`.
    pub segment_path: String,
    pub raw_file: String,
    pub start_time: f64,
    pub end_time: f64,
    pub split: Split,
    pub label_source: LabelSource,
    /// The manifest's own labels (None where the manifest left them empty).
    pub labels: Option<LabelSet>,
    pub scores: [Option<f64>; 3],
    pub extra: Option<String>,
}

impl Segment {
    pub fn duration(&self) -> f64 {
        self.end_time - self.start_time
    }
    /// File name of the segment (what DAMS manifests store).
    pub fn file_name(&self) -> &str {
        self.segment_path.rsplit('/').next().unwrap_or(&self.segment_path)
    }
}

/// A segment to insert or update (upsert by `segment_path`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewSegment {
    pub segment_path: String,
    pub raw_file: String,
    pub start_time: f64,
    pub end_time: f64,
    pub split: Split,
    pub label_source: LabelSource,
    pub labels: Option<LabelSet>,
    pub scores: [Option<f64>; 3],
    pub extra: Option<String>,
}

/// The acoustic statistics of the Python project's `build_acoustic_stats`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AcousticStats {
    pub duration_sec: f64,
    pub rms_db: f64,
    pub silence_ratio: f64,
    pub clipping_ratio: f64,
    pub zero_crossing_rate: f64,
    pub snr_db: f64,
    pub energy_variance: f64,
    pub is_too_short: bool,
    pub is_too_quiet: bool,
    pub is_mostly_silence: bool,
    pub is_heavily_clipped: bool,
    pub is_high_zcr: bool,
    pub had_error: bool,
}

/// A gold label of one annotator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gold {
    pub labels: LabelSet,
    pub needs_review: bool,
}

/// What undo/redo changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelChange {
    pub segment_id: i64,
    pub labels: Option<LabelSet>,
    pub needs_review: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TeacherRun {
    pub id: i64,
    pub teacher: String,
    pub checksum: String,
    pub settings: String,
    pub kind: String,
    pub zero_shot: bool,
    pub state: String,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub n_scores: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewRun<'a> {
    pub teacher: &'a str,
    pub checksum: &'a str,
    pub settings: &'a str,
    pub imported: bool,
    pub zero_shot: bool,
}

/// One segment's scores in a run.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRow {
    pub segment_id: i64,
    pub scores: [f32; 3],
    /// The raw model output (in the run's raw vocabulary, see [`crate::teachers::raw`]).
    pub raw: Option<Vec<f32>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub id: i64,
    pub teacher: String,
    pub class: Class,
    pub value: Option<f64>,
    pub method: String,
    pub target: Option<f64>,
    pub run_id: Option<i64>,
    pub gold_n: Option<i64>,
    pub source: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewThreshold {
    pub teacher: String,
    pub class: Option<Class>,
    pub value: Option<f64>,
    pub method: String,
    pub target: Option<f64>,
    pub run_id: Option<i64>,
    pub gold_n: Option<i64>,
    pub source: Option<String>,
    pub created_by: String,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub params: String,
    pub state: String,
    pub done: i64,
    pub total: Option<i64>,
    pub phase: Option<String>,
    pub metrics: Option<String>,
    pub result: Option<String>,
    pub error: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

pub(crate) fn bits_to_labels(bits: Option<i64>) -> Option<LabelSet> {
    bits.map(|b| LabelSet::from_bits(b as u8))
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

const SEGMENT_COLS: &str = "id, segment_path, raw_file, start_time, end_time, split, label_source, \
     speech_label, music_label, noise_label, speech_score, music_score, noise_score, extra";

fn segment_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Segment> {
    let split: String = r.get(5)?;
    let source: String = r.get(6)?;
    let l: [Option<i64>; 3] = [r.get(7)?, r.get(8)?, r.get(9)?];
    let labels = if l.iter().all(Option::is_none) {
        None
    } else {
        Some(LabelSet::new(l[0] == Some(1), l[1] == Some(1), l[2] == Some(1)))
    };
    Ok(Segment {
        id: r.get(0)?,
        segment_path: r.get(1)?,
        raw_file: r.get(2)?,
        start_time: r.get(3)?,
        end_time: r.get(4)?,
        // CHECK constraints guarantee these parse.
        split: split.parse().unwrap_or(Split::Unsplit),
        label_source: source.parse().unwrap_or_else(|_| LabelSource::none()),
        labels,
        scores: [r.get(10)?, r.get(11)?, r.get(12)?],
        extra: r.get(13)?,
    })
}

impl Store {
    /// Open (creating if needed) and migrate the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        let p = path.display().to_string();
        // Never let SQLite treat a lost (empty) or foreign file as a new database.
        integrity::check_file(&path)?;
        let conn = Connection::open(&path).map_err(|source| StoreError::Open { path: p.clone(), source })?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(|source| StoreError::Open { path: p.clone(), source })?;
        integrity::quick_check_once(&conn, &path)?;
        Self::setup(conn, path)
    }

    /// A private in-memory database (tests, benchmarks).
    pub fn open_in_memory() -> Result<Store> {
        let conn =
            Connection::open_in_memory().map_err(|source| StoreError::Open { path: ":memory:".into(), source })?;
        Self::setup(conn, PathBuf::from(":memory:"))
    }

    fn setup(conn: Connection, path: PathBuf) -> Result<Store> {
        let p = path.display().to_string();
        let open_err = |source| StoreError::Open { path: p.clone(), source };
        conn.busy_timeout(Duration::from_secs(30)).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(open_err)?;
        // synchronous=FULL: a committed label survives power loss, not only a process crash.
        conn.pragma_update(None, "synchronous", "FULL").map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(open_err)?;
        let mut store = Store { conn, path };
        store.migrate()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The raw connection, for queries the typed API does not cover (reports, benchmarks).
    pub fn conn(&self) -> &Connection {
        &self.conn
    }
    pub fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub fn schema_version(&self) -> Result<i64> {
        let has_table: bool = self.conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type='table' AND name='schema_version'",
            [],
            |r| r.get(0),
        )?;
        if !has_table {
            return Ok(0);
        }
        Ok(self
            .conn
            .query_row("SELECT max(version) FROM schema_version", [], |r| r.get::<_, Option<i64>>(0))?
            .unwrap_or(0))
    }

    fn migrate(&mut self) -> Result<()> {
        let p = self.path.display().to_string();
        self.conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TEXT NOT NULL)",
        )?;
        let current = self.schema_version()?;
        let latest = schema::LATEST_VERSION;
        if current > latest {
            return Err(StoreError::TooNew { path: p, found: current, supported: latest });
        }
        for v in (current + 1)..=latest {
            let sql = schema::MIGRATIONS[(v - 1) as usize];
            let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute_batch(sql).map_err(|source| StoreError::Migration { path: p.clone(), version: v, source })?;
            tx.execute("INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)", params![v, now()])?;
            tx.commit()?;
        }
        Ok(())
    }

    // ------------------------------------------------------------------ segments

    /// Insert or update segments by `segment_path`, all in one transaction. Returns
    /// `(inserted, updated)`.
    pub fn upsert_segments(&mut self, rows: &[NewSegment]) -> Result<(usize, usize)> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let counts = upsert_segments_tx(&tx, rows)?;
        tx.commit()?;
        Ok(counts)
    }

    pub fn segment_count(&self) -> Result<i64> {
        Ok(self.conn.query_row("SELECT count(*) FROM segments", [], |r| r.get(0))?)
    }

    pub fn segment(&self, id: i64) -> Result<Segment> {
        self.conn
            .query_row(&format!("SELECT {SEGMENT_COLS} FROM segments WHERE id = ?1"), [id], segment_from_row)
            .optional()?
            .ok_or(StoreError::NoSegment(id))
    }

    pub fn segment_by_path(&self, segment_path: &str) -> Result<Option<Segment>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {SEGMENT_COLS} FROM segments WHERE segment_path = ?1"),
                [segment_path],
                segment_from_row,
            )
            .optional()?)
    }

    /// All segments, ordered by id (optionally only some splits).
    pub fn segments(&self, splits: Option<&[Split]>) -> Result<Vec<Segment>> {
        let mut stmt = self.conn.prepare(&format!("SELECT {SEGMENT_COLS} FROM segments ORDER BY id"))?;
        let rows = stmt.query_map([], segment_from_row)?;
        let mut out = Vec::new();
        for r in rows {
            let s = r?;
            if splits.is_none_or(|sp| sp.contains(&s.split)) {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Segments of the same raw file ordered by start time: `(previous, next)` neighbours of `id`.
    pub fn neighbours(&self, id: i64) -> Result<(Option<Segment>, Option<Segment>)> {
        let s = self.segment(id)?;
        let prev = self
            .conn
            .query_row(
                &format!(
                    "SELECT {SEGMENT_COLS} FROM segments WHERE raw_file = ?1 AND raw_file != '' AND \
                     (start_time < ?2 OR (start_time = ?2 AND id < ?3)) ORDER BY start_time DESC, id DESC LIMIT 1"
                ),
                params![s.raw_file, s.start_time, s.id],
                segment_from_row,
            )
            .optional()?;
        let next = self
            .conn
            .query_row(
                &format!(
                    "SELECT {SEGMENT_COLS} FROM segments WHERE raw_file = ?1 AND raw_file != '' AND \
                     (start_time > ?2 OR (start_time = ?2 AND id > ?3)) ORDER BY start_time ASC, id ASC LIMIT 1"
                ),
                params![s.raw_file, s.start_time, s.id],
                segment_from_row,
            )
            .optional()?;
        Ok((prev, next))
    }

    pub fn set_split(&mut self, id: i64, split: Split) -> Result<()> {
        let n = self.conn.execute("UPDATE segments SET split = ?1 WHERE id = ?2", params![split.as_str(), id])?;
        if n == 0 {
            return Err(StoreError::NoSegment(id));
        }
        Ok(())
    }

    /// Register a raw (long-form) file.
    pub fn upsert_raw_file(&mut self, path: &str, duration: f64, sample_rate: u32, channels: u16) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO raw_files (path, duration, sample_rate, channels) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT(path) DO UPDATE SET duration = excluded.duration, sample_rate = excluded.sample_rate, \
             channels = excluded.channels",
            params![path, duration, sample_rate, channels],
        )?;
        Ok(self.conn.query_row("SELECT id FROM raw_files WHERE path = ?1", [path], |r| r.get(0))?)
    }

    // ------------------------------------------------------------------ stats

    pub fn put_stats(&mut self, segment_id: i64, s: &AcousticStats, error: Option<&str>) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO acoustic_stats (segment_id, duration_sec, rms_db, silence_ratio, clipping_ratio, \
             zero_crossing_rate, snr_db, energy_variance, is_too_short, is_too_quiet, is_mostly_silence, \
             is_heavily_clipped, is_high_zcr, had_error, error, computed_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            params![
                segment_id,
                s.duration_sec,
                finite(s.rms_db),
                finite(s.silence_ratio),
                finite(s.clipping_ratio),
                finite(s.zero_crossing_rate),
                finite(s.snr_db),
                finite(s.energy_variance),
                s.is_too_short,
                s.is_too_quiet,
                s.is_mostly_silence,
                s.is_heavily_clipped,
                s.is_high_zcr,
                s.had_error,
                error,
                now()
            ],
        )?;
        Ok(())
    }

    /// Stats of a segment (NaN where the stored value is NULL, e.g. after a decode error).
    pub fn stats(&self, segment_id: i64) -> Result<Option<AcousticStats>> {
        let f = |v: Option<f64>| v.unwrap_or(f64::NAN);
        Ok(self
            .conn
            .query_row(
                "SELECT duration_sec, rms_db, silence_ratio, clipping_ratio, zero_crossing_rate, snr_db, \
                 energy_variance, is_too_short, is_too_quiet, is_mostly_silence, is_heavily_clipped, is_high_zcr, \
                 had_error FROM acoustic_stats WHERE segment_id = ?1",
                [segment_id],
                |r| {
                    Ok(AcousticStats {
                        duration_sec: f(r.get(0)?),
                        rms_db: f(r.get(1)?),
                        silence_ratio: f(r.get(2)?),
                        clipping_ratio: f(r.get(3)?),
                        zero_crossing_rate: f(r.get(4)?),
                        snr_db: f(r.get(5)?),
                        energy_variance: f(r.get(6)?),
                        is_too_short: r.get(7)?,
                        is_too_quiet: r.get(8)?,
                        is_mostly_silence: r.get(9)?,
                        is_heavily_clipped: r.get(10)?,
                        is_high_zcr: r.get(11)?,
                        had_error: r.get(12)?,
                    })
                },
            )
            .optional()?)
    }

    // ------------------------------------------------------------------ annotators and gold

    /// Id of an annotator, created on first use.
    pub fn annotator_id(&mut self, name: &str) -> Result<i64> {
        self.conn.execute("INSERT OR IGNORE INTO annotators (name) VALUES (?1)", [name])?;
        Ok(self.conn.query_row("SELECT id FROM annotators WHERE name = ?1", [name], |r| r.get(0))?)
    }

    pub fn annotators(&self) -> Result<Vec<(i64, String)>> {
        let mut stmt = self.conn.prepare("SELECT id, name FROM annotators ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The current gold label and review flag of one annotator for a segment.
    pub fn gold(&self, segment_id: i64, annotator_id: i64) -> Result<(Option<LabelSet>, bool)> {
        read_gold(&self.conn, segment_id, annotator_id)
    }

    /// Set (or clear, with `None`) an annotator's gold label and review flag, recording history.
    /// One committed transaction; refuses splits other than dev/test unless `allow_any_split`.
    pub fn set_gold(
        &mut self,
        segment_id: i64,
        annotator_id: i64,
        labels: Option<LabelSet>,
        needs_review: bool,
        allow_any_split: bool,
    ) -> Result<()> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let split: Option<String> =
            tx.query_row("SELECT split FROM segments WHERE id = ?1", [segment_id], |r| r.get(0)).optional()?;
        let split: Split = split.ok_or(StoreError::NoSegment(segment_id))?.parse().unwrap_or(Split::Unsplit);
        if labels.is_some() && !allow_any_split && !split.allows_gold_by_default() {
            return Err(StoreError::GoldNotAllowed(split));
        }
        let (before, before_review) = read_gold(&tx, segment_id, annotator_id)?;
        if before == labels && before_review == needs_review {
            return Ok(());
        }
        write_gold(&tx, segment_id, annotator_id, labels, needs_review)?;
        tx.execute(
            "UPDATE label_history SET state = 'dropped' WHERE annotator_id = ?1 AND state = 'undone'",
            [annotator_id],
        )?;
        tx.execute(
            "INSERT INTO label_history (segment_id, annotator_id, before_bits, after_bits, before_review, after_review, at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                segment_id,
                annotator_id,
                before.map(|l| l.bits() as i64),
                labels.map(|l| l.bits() as i64),
                before_review,
                needs_review,
                now()
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Undo the annotator's latest change (survives restarts: it is read from the history).
    pub fn undo(&mut self, annotator_id: i64) -> Result<Option<LabelChange>> {
        self.step_history(annotator_id, true)
    }

    /// Redo the annotator's most recently undone change.
    pub fn redo(&mut self, annotator_id: i64) -> Result<Option<LabelChange>> {
        self.step_history(annotator_id, false)
    }

    fn step_history(&mut self, annotator_id: i64, undo: bool) -> Result<Option<LabelChange>> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let sql = if undo {
            "SELECT id, segment_id, before_bits, before_review FROM label_history \
             WHERE annotator_id = ?1 AND state = 'done' ORDER BY id DESC LIMIT 1"
        } else {
            "SELECT id, segment_id, after_bits, after_review FROM label_history \
             WHERE annotator_id = ?1 AND state = 'undone' ORDER BY id ASC LIMIT 1"
        };
        let row: Option<(i64, i64, Option<i64>, bool)> =
            tx.query_row(sql, [annotator_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).optional()?;
        let Some((hid, segment_id, bits, review)) = row else {
            return Ok(None);
        };
        let labels = bits_to_labels(bits);
        write_gold(&tx, segment_id, annotator_id, labels, review)?;
        tx.execute(
            "UPDATE label_history SET state = ?1 WHERE id = ?2",
            params![if undo { "undone" } else { "done" }, hid],
        )?;
        tx.commit()?;
        Ok(Some(LabelChange { segment_id, labels, needs_review: review }))
    }

    /// Gold labels resolved to one per segment: the most recently updated annotator wins; labels written in the
    /// same millisecond are ordered by their label-history id (the later change wins), then by annotator id, so the
    /// answer never depends on the order SQLite happens to scan rows in.
    /// Returns `(segment_id, labels)` for every segment with at least one gold label.
    pub fn resolved_gold(&self) -> Result<Vec<(i64, LabelSet)>> {
        let mut stmt = self.conn.prepare(
            "WITH h AS (SELECT segment_id, annotator_id, max(id) AS hid FROM label_history GROUP BY segment_id, annotator_id), \
             ranked AS (SELECT g.segment_id, g.speech, g.music, g.noise, row_number() OVER ( \
                 PARTITION BY g.segment_id ORDER BY g.updated_at DESC, coalesce(h.hid, 0) DESC, g.annotator_id DESC) AS rn \
               FROM gold_labels g LEFT JOIN h ON h.segment_id = g.segment_id AND h.annotator_id = g.annotator_id) \
             SELECT segment_id, speech, music, noise FROM ranked WHERE rn = 1 ORDER BY segment_id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, LabelSet::new(r.get(1)?, r.get(2)?, r.get(3)?))))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// All gold labels of one annotator: `(segment_id, labels)`.
    pub fn gold_of(&self, annotator_id: i64) -> Result<Vec<(i64, LabelSet)>> {
        let mut stmt = self.conn.prepare(
            "SELECT segment_id, speech, music, noise FROM gold_labels WHERE annotator_id = ?1 ORDER BY segment_id",
        )?;
        let rows = stmt
            .query_map([annotator_id], |r| Ok((r.get::<_, i64>(0)?, LabelSet::new(r.get(1)?, r.get(2)?, r.get(3)?))))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    // ------------------------------------------------------------------ notes

    pub fn set_note(&mut self, segment_id: i64, annotator_id: i64, text: &str) -> Result<()> {
        if text.trim().is_empty() {
            self.conn.execute(
                "DELETE FROM notes WHERE segment_id = ?1 AND annotator_id = ?2",
                params![segment_id, annotator_id],
            )?;
        } else {
            self.conn.execute(
                "INSERT INTO notes (segment_id, annotator_id, text, updated_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT(segment_id, annotator_id) DO UPDATE SET text = excluded.text, updated_at = excluded.updated_at",
                params![segment_id, annotator_id, text, now()],
            )?;
        }
        Ok(())
    }

    pub fn note(&self, segment_id: i64, annotator_id: i64) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT text FROM notes WHERE segment_id = ?1 AND annotator_id = ?2",
                params![segment_id, annotator_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    // ------------------------------------------------------------------ teacher runs and scores

    pub fn create_run(&mut self, run: &NewRun<'_>) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO teacher_runs (teacher, checksum, settings, kind, zero_shot, state, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6)",
            params![
                run.teacher,
                run.checksum,
                run.settings,
                if run.imported { "imported" } else { "computed" },
                run.zero_shot,
                now()
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn finish_run(&mut self, run_id: i64, state: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE teacher_runs SET state = ?1, finished_at = ?2 WHERE id = ?3",
            params![state, now(), run_id],
        )?;
        Ok(())
    }

    /// An unfinished run of the same teacher, checksum and settings, to resume. A run that a sharded merge is
    /// filling (see `crate::slurm::merge`, table `shard_runs`) is never resumed locally.
    pub fn resumable_run(&self, teacher: &str, checksum: &str, settings: &str) -> Result<Option<i64>> {
        let sharded: bool = self.conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'shard_runs'",
            [],
            |r| r.get(0),
        )?;
        let not_sharded =
            if sharded { " AND id NOT IN (SELECT run_id FROM shard_runs WHERE run_id IS NOT NULL)" } else { "" };
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT id FROM teacher_runs WHERE teacher = ?1 AND checksum = ?2 AND settings = ?3 \
                     AND state IN ('running','interrupted','cancelled','failed'){not_sharded} ORDER BY id DESC LIMIT 1"
                ),
                params![teacher, checksum, settings],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn runs(&self) -> Result<Vec<TeacherRun>> {
        let mut stmt = self.conn.prepare(
            "SELECT r.id, r.teacher, r.checksum, r.settings, r.kind, r.zero_shot, r.state, r.created_at, r.finished_at, \
             (SELECT count(*) FROM teacher_scores s WHERE s.run_id = r.id) FROM teacher_runs r ORDER BY r.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(TeacherRun {
                id: r.get(0)?,
                teacher: r.get(1)?,
                checksum: r.get(2)?,
                settings: r.get(3)?,
                kind: r.get(4)?,
                zero_shot: r.get(5)?,
                state: r.get(6)?,
                created_at: r.get(7)?,
                finished_at: r.get(8)?,
                n_scores: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The newest run of each teacher that has scores (the one the UI shows by default).
    pub fn latest_runs(&self) -> Result<Vec<TeacherRun>> {
        let mut best: Vec<TeacherRun> = Vec::new();
        for r in self.runs()?.into_iter().filter(|r| r.n_scores > 0) {
            match best.iter_mut().find(|b| b.teacher == r.teacher) {
                Some(b) => *b = r,
                None => best.push(r),
            }
        }
        Ok(best)
    }

    /// Write scores for a run in one transaction (upsert per segment).
    pub fn put_scores(&mut self, run_id: i64, rows: &[ScoreRow]) -> Result<()> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO teacher_scores (run_id, segment_id, speech, music, noise, logits) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for r in rows {
                let blob = r.raw.as_ref().map(|l| f32s_to_bytes(l));
                stmt.execute(params![
                    run_id,
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
    }

    /// Segment ids already scored in a run (for resuming).
    pub fn scored_segments(&self, run_id: i64) -> Result<HashSet<i64>> {
        let mut stmt = self.conn.prepare("SELECT segment_id FROM teacher_scores WHERE run_id = ?1")?;
        let rows = stmt.query_map([run_id], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// All scores of a run, ordered by segment id (logits not loaded).
    pub fn run_scores(&self, run_id: i64) -> Result<Vec<(i64, [f32; 3])>> {
        let mut stmt = self.conn.prepare(
            "SELECT segment_id, speech, music, noise FROM teacher_scores WHERE run_id = ?1 ORDER BY segment_id",
        )?;
        let rows = stmt.query_map([run_id], |r| {
            Ok((r.get(0)?, [r.get::<_, f64>(1)? as f32, r.get::<_, f64>(2)? as f32, r.get::<_, f64>(3)? as f32]))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The stored logit vector of one segment in a run.
    pub fn logits(&self, run_id: i64, segment_id: i64) -> Result<Option<Vec<f32>>> {
        let blob: Option<Option<Vec<u8>>> = self
            .conn
            .query_row(
                "SELECT logits FROM teacher_scores WHERE run_id = ?1 AND segment_id = ?2",
                params![run_id, segment_id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(blob.flatten().map(|b| bytes_to_f32s(&b)))
    }

    /// Scores of one segment in the latest run of each teacher: `(teacher, run_id, scores)`.
    pub fn segment_scores(&self, segment_id: i64) -> Result<Vec<(String, i64, [f32; 3])>> {
        let mut stmt = self.conn.prepare(
            "SELECT r.teacher, r.id, s.speech, s.music, s.noise FROM teacher_scores s \
             JOIN teacher_runs r ON r.id = s.run_id WHERE s.segment_id = ?1 ORDER BY r.teacher, r.id",
        )?;
        let rows = stmt.query_map([segment_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                [r.get::<_, f64>(2)? as f32, r.get::<_, f64>(3)? as f32, r.get::<_, f64>(4)? as f32],
            ))
        })?;
        let mut out: Vec<(String, i64, [f32; 3])> = Vec::new();
        for r in rows {
            let r = r?;
            match out.iter_mut().find(|o| o.0 == r.0) {
                Some(o) => *o = r, // later run of the same teacher wins
                None => out.push(r),
            }
        }
        Ok(out)
    }

    // ------------------------------------------------------------------ thresholds

    pub fn save_threshold(&mut self, t: &NewThreshold) -> Result<i64> {
        let class = t.class.ok_or_else(|| StoreError::Invalid("a threshold needs a class".into()))?.name();
        let scope = self.threshold_scope(&t.teacher, t.run_id)?;
        self.conn.execute(
            "INSERT INTO thresholds (teacher, class, value, method, target, run_id, gold_n, source, created_by, created_at, note, scope) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![t.teacher, class, t.value, t.method, t.target, t.run_id, t.gold_n, t.source, t.created_by, now(), t.note, scope],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The active (newest) threshold of each class for a teacher's current scores: thresholds set for the scoring
    /// settings of the teacher's latest run (see [`Store::threshold_scope`]); thresholds tuned for other settings
    /// (another pooling, prompt set...) do not apply.
    pub fn thresholds(&self, teacher: &str) -> Result<[Option<Threshold>; 3]> {
        let scope = self.threshold_scope(teacher, None)?;
        let mut out: [Option<Threshold>; 3] = [None, None, None];
        let mut stmt = self.conn.prepare(
            "SELECT t.id, t.teacher, t.class, t.value, t.method, t.target, t.run_id, t.gold_n, t.source, t.created_by, \
             t.created_at, t.note, t.scope, r.settings FROM thresholds t LEFT JOIN teacher_runs r ON r.id = t.run_id \
             WHERE t.teacher = ?1 ORDER BY t.id",
        )?;
        let rows = stmt.query_map([teacher], |r| {
            // Rows from before scopes were recorded take the scope of the run they were set on, if any.
            let own: Option<String> = r.get(12)?;
            let run_settings: Option<String> = r.get(13)?;
            let row_scope = own.or_else(|| run_settings.map(|s| crate::teachers::raw::scoring_key(&s)));
            if row_scope.is_some() && scope.is_some() && row_scope != scope {
                return Ok(None);
            }
            let class: String = r.get(2)?;
            Ok(Some(Threshold {
                id: r.get(0)?,
                teacher: r.get(1)?,
                class: class.parse().unwrap_or(Class::Speech),
                value: r.get(3)?,
                method: r.get(4)?,
                target: r.get(5)?,
                run_id: r.get(6)?,
                gold_n: r.get(7)?,
                source: r.get(8)?,
                created_by: r.get(9)?,
                created_at: r.get(10)?,
                note: r.get(11)?,
            }))
        })?;
        for r in rows {
            let Some(t) = r? else { continue };
            let i = t.class.index();
            out[i] = Some(t);
        }
        Ok(out)
    }

    // ------------------------------------------------------------------ pseudo-labels

    pub fn create_pseudo_run(&mut self, label_source: &LabelSource, config_json: &str) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO pseudo_runs (label_source, config, created_at) VALUES (?1, ?2, ?3)",
            params![label_source.as_str(), config_json, now()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Write pseudo-labels `(segment_id, labels, scores)` for a pseudo run in one transaction.
    pub fn put_pseudo_labels(&mut self, pseudo_run_id: i64, rows: &[(i64, LabelSet, [f32; 3])]) -> Result<()> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO pseudo_labels (pseudo_run_id, segment_id, speech, music, noise, \
                 speech_score, music_score, noise_score) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for (seg, l, s) in rows {
                let [a, b, c] = l.to_array();
                stmt.execute(params![pseudo_run_id, seg, a, b, c, s[0] as f64, s[1] as f64, s[2] as f64])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    // ------------------------------------------------------------------ jobs

    pub fn create_job(&mut self, kind: &str, params_json: &str, total: Option<i64>) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO jobs (kind, params, state, pid, total, created_at, started_at) VALUES (?1, ?2, 'running', ?3, ?4, ?5, ?5)",
            params![kind, params_json, std::process::id(), total, now()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn update_job(
        &mut self,
        id: i64,
        done: i64,
        total: Option<i64>,
        phase: Option<&str>,
        metrics: Option<&str>,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE jobs SET done = ?1, total = coalesce(?2, total), phase = coalesce(?3, phase), \
             metrics = coalesce(?4, metrics) WHERE id = ?5",
            params![done, total, phase, metrics, id],
        )?;
        Ok(())
    }

    pub fn finish_job(&mut self, id: i64, state: &str, result: Option<&str>, error: Option<&str>) -> Result<()> {
        self.conn.execute(
            "UPDATE jobs SET state = ?1, result = ?2, error = ?3, finished_at = ?4 WHERE id = ?5",
            params![state, result, error, now(), id],
        )?;
        Ok(())
    }

    /// Mark jobs left 'running' by a process that no longer exists as interrupted.
    pub fn mark_interrupted_jobs(&mut self) -> Result<usize> {
        let me = std::process::id() as i64;
        let mut stmt = self.conn.prepare("SELECT id, pid FROM jobs WHERE state IN ('running','queued')")?;
        let stale: Vec<i64> = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?)))?
            .filter_map(|r| r.ok())
            .filter(|(_, pid)| match pid {
                Some(p) if *p == me => false,
                Some(p) => !process_alive(*p),
                None => true,
            })
            .map(|(id, _)| id)
            .collect();
        drop(stmt);
        for id in &stale {
            self.conn
                .execute("UPDATE jobs SET state = 'interrupted', finished_at = ?1 WHERE id = ?2", params![now(), id])?;
        }
        self.conn.execute(
            // A run left 'running' with no live scoring job anywhere was cut off. While any process
            // is still scoring (its job row is 'running' and its pid alive), leave runs alone: the
            // job may not have recorded its run id yet.
            "UPDATE teacher_runs SET state = 'interrupted' WHERE state = 'running' AND NOT EXISTS \
             (SELECT 1 FROM jobs WHERE state = 'running' AND kind = 'score')",
            [],
        )?;
        Ok(stale.len())
    }

    pub fn jobs(&self, limit: usize) -> Result<Vec<Job>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, kind, params, state, done, total, phase, metrics, result, error, created_at, started_at, finished_at \
             FROM jobs ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok(Job {
                id: r.get(0)?,
                kind: r.get(1)?,
                params: r.get(2)?,
                state: r.get(3)?,
                done: r.get(4)?,
                total: r.get(5)?,
                phase: r.get(6)?,
                metrics: r.get(7)?,
                result: r.get(8)?,
                error: r.get(9)?,
                created_at: r.get(10)?,
                started_at: r.get(11)?,
                finished_at: r.get(12)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    // ------------------------------------------------------------------ settings

    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self.conn.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0)).optional()?)
    }
    pub fn set_setting(&mut self, key: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }
}

/// Upsert segments inside an existing transaction (the manifest importer uses this so a whole
/// file is one transaction).
pub fn upsert_segments_tx(tx: &rusqlite::Connection, rows: &[NewSegment]) -> Result<(usize, usize)> {
    let mut exists = tx.prepare_cached("SELECT 1 FROM segments WHERE segment_path = ?1")?;
    let mut stmt = tx.prepare_cached(
        "INSERT INTO segments (segment_path, raw_file, start_time, end_time, split, label_source, \
         speech_label, music_label, noise_label, speech_score, music_score, noise_score, extra) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
         ON CONFLICT(segment_path) DO UPDATE SET raw_file = excluded.raw_file, start_time = excluded.start_time, \
         end_time = excluded.end_time, split = excluded.split, label_source = excluded.label_source, \
         speech_label = excluded.speech_label, music_label = excluded.music_label, noise_label = excluded.noise_label, \
         speech_score = excluded.speech_score, music_score = excluded.music_score, noise_score = excluded.noise_score, \
         extra = excluded.extra",
    )?;
    let (mut ins, mut upd) = (0, 0);
    for s in rows {
        if exists.exists([&s.segment_path])? {
            upd += 1;
        } else {
            ins += 1;
        }
        let l = s.labels.map(|l| l.to_array().map(|b| b as i64));
        stmt.execute(params![
            s.segment_path,
            s.raw_file,
            s.start_time,
            s.end_time,
            s.split.as_str(),
            s.label_source.as_str(),
            l.map(|l| l[0]),
            l.map(|l| l[1]),
            l.map(|l| l[2]),
            s.scores[0],
            s.scores[1],
            s.scores[2],
            s.extra
        ])?;
    }
    Ok((ins, upd))
}

fn read_gold(conn: &Connection, segment_id: i64, annotator_id: i64) -> Result<(Option<LabelSet>, bool)> {
    let labels = conn
        .query_row(
            "SELECT speech, music, noise FROM gold_labels WHERE segment_id = ?1 AND annotator_id = ?2",
            params![segment_id, annotator_id],
            |r| Ok(LabelSet::new(r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let review: bool = conn.query_row(
        "SELECT count(*) > 0 FROM review_flags WHERE segment_id = ?1 AND annotator_id = ?2",
        params![segment_id, annotator_id],
        |r| r.get(0),
    )?;
    Ok((labels, review))
}

fn write_gold(
    conn: &Connection,
    segment_id: i64,
    annotator_id: i64,
    labels: Option<LabelSet>,
    needs_review: bool,
) -> Result<()> {
    match labels {
        Some(l) => {
            let [a, b, c] = l.to_array();
            conn.execute(
                "INSERT INTO gold_labels (segment_id, annotator_id, speech, music, noise, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(segment_id, annotator_id) DO UPDATE SET \
                 speech = excluded.speech, music = excluded.music, noise = excluded.noise, updated_at = excluded.updated_at",
                params![segment_id, annotator_id, a, b, c, now()],
            )?;
        }
        None => {
            conn.execute(
                "DELETE FROM gold_labels WHERE segment_id = ?1 AND annotator_id = ?2",
                params![segment_id, annotator_id],
            )?;
        }
    }
    if needs_review {
        conn.execute(
            "INSERT OR IGNORE INTO review_flags (segment_id, annotator_id) VALUES (?1, ?2)",
            params![segment_id, annotator_id],
        )?;
    } else {
        conn.execute(
            "DELETE FROM review_flags WHERE segment_id = ?1 AND annotator_id = ?2",
            params![segment_id, annotator_id],
        )?;
    }
    conn.execute(
        "UPDATE segments SET needs_review = (SELECT count(*) > 0 FROM review_flags WHERE segment_id = ?1) WHERE id = ?1",
        [segment_id],
    )?;
    Ok(())
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

pub fn f32s_to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn bytes_to_f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

#[cfg(unix)]
fn process_alive(pid: i64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists() || !Path::new("/proc/self").exists()
}
#[cfg(not(unix))]
fn process_alive(_pid: i64) -> bool {
    true
}

#[cfg(test)]
mod tests;
