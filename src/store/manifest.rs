//! Store helpers for the manifest importer: classify rows as new / changed / unchanged, upsert
//! them, and mirror `label_source = gold` rows into the gold labels of the `manifest` annotator,
//! all inside the caller's transaction.

use rusqlite::{OptionalExtension, Transaction, params};

use super::{NewSegment, Result, SEGMENT_COLS, Segment, now, upsert_segments_tx};

/// What a manifest import did (or, in a dry run, would do).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ManifestCounts {
    pub inserted: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Gold labels of the manifest annotator created or changed.
    pub gold_written: usize,
    /// Gold labels of the manifest annotator removed (the row is no longer gold in the manifest).
    pub gold_removed: usize,
}

/// Id of an annotator inside a transaction, created on first use.
pub fn annotator_id_tx(tx: &Transaction<'_>, name: &str) -> Result<i64> {
    tx.execute("INSERT OR IGNORE INTO annotators (name) VALUES (?1)", [name])?;
    Ok(tx.query_row("SELECT id FROM annotators WHERE name = ?1", [name], |r| r.get(0))?)
}

/// Which of the manifest's optional columns a file has. A column a file leaves out keeps the stored
/// value of a segment that exists already (a manifest with only `segment_path, split` moves
/// segments between splits without wiping their times, raw file, labels or scores); new segments
/// get the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresentColumns {
    pub raw_file: bool,
    pub start_time: bool,
    pub end_time: bool,
    pub split: bool,
    pub label_source: bool,
    /// Any of the three label columns.
    pub labels: bool,
    pub scores: [bool; 3],
}

impl PresentColumns {
    pub const ALL: PresentColumns = PresentColumns {
        raw_file: true,
        start_time: true,
        end_time: true,
        split: true,
        label_source: true,
        labels: true,
        scores: [true; 3],
    };

    /// `new` with every absent column taken from `old`.
    fn fill(&self, old: &Segment, new: &NewSegment) -> NewSegment {
        let mut out = new.clone();
        if !self.raw_file {
            out.raw_file = old.raw_file.clone();
        }
        if !self.start_time {
            out.start_time = old.start_time;
        }
        if !self.end_time {
            out.end_time = old.end_time;
        }
        if !self.split {
            out.split = old.split;
        }
        if !self.label_source {
            out.label_source = old.label_source.clone();
        }
        if !self.labels {
            out.labels = old.labels;
        }
        for i in 0..3 {
            if !self.scores[i] {
                out.scores[i] = old.scores[i];
            }
        }
        out
    }
}

fn same(old: &Segment, new: &NewSegment) -> bool {
    let f = |a: f64, b: f64| a.to_bits() == b.to_bits();
    let fo = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => f(a, b),
        (None, None) => true,
        _ => false,
    };
    old.raw_file == new.raw_file
        && f(old.start_time, new.start_time)
        && f(old.end_time, new.end_time)
        && old.split == new.split
        && old.label_source == new.label_source
        && old.labels == new.labels
        && (0..3).all(|i| fo(old.scores[i], new.scores[i]))
        && old.extra == new.extra
}

/// Apply one batch of validated manifest rows (segment paths already normalised and unique).
///
/// Unchanged rows are not written at all; new and changed rows go through
/// [`upsert_segments_tx`]. A gold row (`label_source = gold`, labels set) becomes the gold label
/// of `annotator_id`; its `updated_at` only moves when the label really changes, so
/// re-importing a manifest never overrides a later human label. A row that was gold and no
/// longer is loses the manifest annotator's gold label.
///
/// `known_new` says the rows cannot exist yet (the import started on an empty table and paths
/// are unique within a file): they are inserted without the per-row lookups.
///
/// `annotator` names the annotator of gold rows; `annotator_id` caches its id across batches
/// (it is created on the first gold row, so importing a manifest without gold rows adds none).
pub fn apply_manifest_batch(
    tx: &Transaction<'_>,
    annotator: &str,
    annotator_id: &mut Option<i64>,
    rows: &[NewSegment],
    present: &PresentColumns,
    known_new: bool,
    counts: &mut ManifestCounts,
) -> Result<()> {
    if known_new {
        return insert_new_batch(tx, annotator, annotator_id, rows, counts);
    }
    let mut lookup = tx.prepare_cached(&format!("SELECT {SEGMENT_COLS} FROM segments WHERE segment_path = ?1"))?;
    // Columns the file leaves out keep the stored values of existing segments.
    let filled: Vec<NewSegment>;
    let rows: &[NewSegment] = if *present == PresentColumns::ALL {
        rows
    } else {
        let mut v = Vec::with_capacity(rows.len());
        for row in rows {
            match lookup.query_row([&row.segment_path], super::segment_from_row).optional()? {
                Some(old) => v.push(present.fill(&old, row)),
                None => v.push(row.clone()),
            }
        }
        filled = v;
        &filled
    };
    let mut id_of = tx.prepare_cached("SELECT id FROM segments WHERE segment_path = ?1")?;
    let mut put_gold = tx.prepare_cached(
        "INSERT INTO gold_labels (segment_id, annotator_id, speech, music, noise, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(segment_id, annotator_id) DO UPDATE SET \
         speech = excluded.speech, music = excluded.music, noise = excluded.noise, updated_at = excluded.updated_at \
         WHERE speech != excluded.speech OR music != excluded.music OR noise != excluded.noise",
    )?;
    let mut del_gold = tx.prepare_cached("DELETE FROM gold_labels WHERE segment_id = ?1 AND annotator_id = ?2")?;

    // Rows to write (only filled once an unchanged row is met), and rows whose gold label needs
    // attention: (index into rows, existing id).
    let mut to_write: Vec<NewSegment> = Vec::new();
    let mut all_written = true;
    let mut follow_up: Vec<(usize, Option<i64>)> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let old = lookup.query_row([&row.segment_path], super::segment_from_row).optional()?;
        match old {
            Some(old) if same(&old, row) => {
                counts.unchanged += 1;
                if all_written {
                    // From here on rows are copied out; copy the ones before too.
                    all_written = false;
                    to_write.extend(rows[..i].iter().cloned());
                }
                if row.label_source.is_gold() {
                    follow_up.push((i, Some(old.id)));
                }
            }
            Some(old) => {
                counts.updated += 1;
                if !all_written {
                    to_write.push(row.clone());
                }
                follow_up.push((i, Some(old.id)));
            }
            None => {
                counts.inserted += 1;
                if !all_written {
                    to_write.push(row.clone());
                }
                if row.label_source.is_gold() {
                    follow_up.push((i, None));
                }
            }
        }
    }
    if all_written {
        // Every row is new or changed (a first import): write the batch as it is.
        upsert_segments_tx(tx, rows)?;
    } else if !to_write.is_empty() {
        upsert_segments_tx(tx, &to_write)?;
    }
    if follow_up.is_empty() {
        return Ok(());
    }
    let annotator_id = match *annotator_id {
        Some(id) => id,
        None if follow_up.iter().any(|(i, _)| rows[*i].label_source.is_gold()) => {
            let id = annotator_id_tx(tx, annotator)?;
            *annotator_id = Some(id);
            id
        }
        None => match tx
            .query_row("SELECT id FROM annotators WHERE name = ?1", [annotator], |r| r.get::<_, i64>(0))
            .optional()?
        {
            Some(id) => {
                *annotator_id = Some(id);
                id
            }
            // No such annotator yet, so there is no manifest gold label to remove.
            None => return Ok(()),
        },
    };
    let stamp = now();
    for (i, id) in follow_up {
        let row = &rows[i];
        let id = match id {
            Some(id) => id,
            None => id_of.query_row([&row.segment_path], |r| r.get::<_, i64>(0))?,
        };
        match (row.label_source.is_gold(), row.labels) {
            (true, Some(l)) => {
                let [s, m, n] = l.to_array();
                counts.gold_written += put_gold.execute(params![id, annotator_id, s, m, n, stamp])?;
            }
            _ => counts.gold_removed += del_gold.execute(params![id, annotator_id])?,
        }
    }
    Ok(())
}

/// The first-import path of [`apply_manifest_batch`]: rows known not to exist are inserted with
/// a plain `INSERT` (the same columns as [`upsert_segments_tx`], with `created_at` bound once
/// per batch), and gold rows take their id from `last_insert_rowid` instead of a lookup.
fn insert_new_batch(
    tx: &Transaction<'_>,
    annotator: &str,
    annotator_id: &mut Option<i64>,
    rows: &[NewSegment],
    counts: &mut ManifestCounts,
) -> Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO segments (segment_path, raw_file, start_time, end_time, split, label_source, \
         speech_label, music_label, noise_label, speech_score, music_score, noise_score, extra, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?;
    let mut put_gold = tx.prepare_cached(
        "INSERT OR REPLACE INTO gold_labels (segment_id, annotator_id, speech, music, noise, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let stamp = now();
    for s in rows {
        let l = s.labels.map(|l| l.to_array().map(|b| b as i64));
        insert.execute(params![
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
            s.extra,
            stamp
        ])?;
        counts.inserted += 1;
        if let (true, Some(labels)) = (s.label_source.is_gold(), s.labels) {
            let id = tx.last_insert_rowid();
            let aid = match *annotator_id {
                Some(a) => a,
                None => {
                    let a = annotator_id_tx(tx, annotator)?;
                    *annotator_id = Some(a);
                    a
                }
            };
            let [sp, mu, no] = labels.to_array();
            counts.gold_written += put_gold.execute(params![id, aid, sp, mu, no, stamp])?;
        }
    }
    Ok(())
}

/// The segment columns in the order [`segment_from_row`] reads them, for streaming queries
/// (`SELECT {SEGMENT_COLUMNS} FROM segments ...`).
pub const SEGMENT_COLUMNS: &str = SEGMENT_COLS;

/// Read a segment from a row of `SELECT {SEGMENT_COLUMNS} ...`.
pub fn segment_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Segment> {
    super::segment_from_row(r)
}
