//! Store methods used by the audio pipeline (segmentation, stats).
use rusqlite::{OptionalExtension, params};

use super::{NewSegment, Result, Store, upsert_segments_tx};

/// A registered raw (long-form) recording.
#[derive(Debug, Clone, PartialEq)]
pub struct RawFile {
    pub id: i64,
    pub path: String,
    pub duration: Option<f64>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u16>,
}

impl Store {
    /// The raw file registered under `path`, if any.
    pub fn raw_file(&self, path: &str) -> Result<Option<RawFile>> {
        Ok(self
            .conn
            .query_row("SELECT id, path, duration, sample_rate, channels FROM raw_files WHERE path = ?1", [path], |r| {
                Ok(RawFile {
                    id: r.get(0)?,
                    path: r.get(1)?,
                    duration: r.get(2)?,
                    sample_rate: r.get(3)?,
                    channels: r.get(4)?,
                })
            })
            .optional()?)
    }

    /// Record one segmented recording in a single transaction: insert the segment rows that are
    /// not there yet (existing rows — and their split, labels and scores — are left alone) and
    /// register the raw file. Returns the number of rows inserted.
    pub fn add_segmented_file(
        &mut self,
        raw_path: &str,
        duration: f64,
        sample_rate: u32,
        channels: u16,
        rows: &[NewSegment],
    ) -> Result<usize> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let inserted = add_segmented_file_in(&tx, raw_path, duration, sample_rate, channels, rows)?;
        tx.commit()?;
        Ok(inserted)
    }

    /// Ids and data-relative paths of segments that have no acoustic stats yet (all segments
    /// with `all`).
    pub fn segments_needing_stats(&self, all: bool) -> Result<Vec<(i64, String)>> {
        let sql = if all {
            "SELECT id, segment_path FROM segments ORDER BY id"
        } else {
            "SELECT s.id, s.segment_path FROM segments s LEFT JOIN acoustic_stats a ON a.segment_id = s.id \
             WHERE a.segment_id IS NULL ORDER BY s.id"
        };
        let mut stmt = self.conn.prepare(sql)?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }
}

/// [`Store::add_segmented_file`] inside a transaction the caller holds (a sharded segmentation's merge imports a
/// whole part in one): rows of segments already there are left as they are; the `raw_files` row is upserted.
pub fn add_segmented_file_in(
    conn: &rusqlite::Connection,
    raw_path: &str,
    duration: f64,
    sample_rate: u32,
    channels: u16,
    rows: &[NewSegment],
) -> Result<usize> {
    let new_rows: Vec<NewSegment> = {
        let mut exists = conn.prepare_cached("SELECT 1 FROM segments WHERE segment_path = ?1")?;
        let mut v = Vec::new();
        for r in rows {
            if !exists.exists([&r.segment_path])? {
                v.push(r.clone());
            }
        }
        v
    };
    let (inserted, _) = upsert_segments_tx(conn, &new_rows)?;
    conn.execute(
        "INSERT INTO raw_files (path, duration, sample_rate, channels) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT(path) DO UPDATE SET duration = excluded.duration, sample_rate = excluded.sample_rate, \
         channels = excluded.channels",
        params![raw_path, duration, sample_rate, channels],
    )?;
    Ok(inserted)
}
