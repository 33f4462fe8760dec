//! Queries of the annotation TUI: the compact browse rows and one segment's label state.
use rusqlite::params;

use super::{Result, Store};
use crate::labels::{LabelSet, Split};

/// One segment as the segment list needs it (borrowed from the SQLite row).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BrowseRow<'a> {
    pub id: i64,
    pub segment_path: &'a str,
    pub start_time: f64,
    pub end_time: f64,
    pub split: Split,
    pub label_source: &'a str,
    /// This annotator's gold label.
    pub gold: Option<LabelSet>,
    pub needs_review: bool,
    pub has_note: bool,
}

impl Store {
    /// Call `f` for every segment ordered by id, with one annotator's gold label, review flag and
    /// note marker. One streaming query: nothing is materialised here.
    pub fn for_each_browse_row(&self, annotator_id: i64, mut f: impl FnMut(BrowseRow<'_>)) -> Result<()> {
        let mut stmt = self.conn().prepare(
            "SELECT s.id, s.segment_path, s.start_time, s.end_time, s.split, s.label_source, \
             g.speech, g.music, g.noise, \
             EXISTS (SELECT 1 FROM review_flags r WHERE r.segment_id = s.id AND r.annotator_id = ?1), \
             EXISTS (SELECT 1 FROM notes n WHERE n.segment_id = s.id AND n.annotator_id = ?1) \
             FROM segments s LEFT JOIN gold_labels g ON g.segment_id = s.id AND g.annotator_id = ?1 ORDER BY s.id",
        )?;
        let mut rows = stmt.query(params![annotator_id])?;
        while let Some(r) = rows.next()? {
            let split: &str = r.get_ref(4)?.as_str().map_err(rusqlite::Error::from)?;
            let speech: Option<bool> = r.get(6)?;
            let gold = match speech {
                Some(s) => Some(LabelSet::new(s, r.get(7)?, r.get(8)?)),
                None => None,
            };
            f(BrowseRow {
                id: r.get(0)?,
                segment_path: r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?,
                start_time: r.get(2)?,
                end_time: r.get(3)?,
                // The CHECK constraint guarantees a known split.
                split: split.parse().unwrap_or(Split::Unsplit),
                label_source: r.get_ref(5)?.as_str().map_err(rusqlite::Error::from)?,
                gold,
                needs_review: r.get(9)?,
                has_note: r.get(10)?,
            });
        }
        Ok(())
    }
}
