//! The segment list's model: every segment as a compact row held in memory once, and a view
//! (filtered and sorted row indices) rebuilt only when a filter or the sort changes. Drawing a
//! frame touches only the visible slice of the view, so a million rows stay smooth.
//! No terminal here: the TUI renders it and benchmarks drive it directly.

use std::cmp::Ordering;

use crate::labels::{CLASSES, LabelSet, SPLITS, Split};
use crate::store::{BrowseRow, Result, Store};

const NO_GOLD: u8 = 0xFF;
/// A missing teacher score in the quantised score table.
pub const NO_SCORE: u8 = 0xFF;

/// One segment in the list (32 bytes; the path lives in a shared arena).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    pub id: i64,
    path_off: u32,
    path_len: u32,
    pub start: f32,
    pub end: f32,
    source: u16,
    pub split: Split,
    gold: u8,
    flags: u8,
}

const REVIEW: u8 = 1;
const NOTE: u8 = 2;

impl Row {
    pub fn gold(&self) -> Option<LabelSet> {
        (self.gold != NO_GOLD).then(|| LabelSet::from_bits(self.gold))
    }
    pub fn needs_review(&self) -> bool {
        self.flags & REVIEW != 0
    }
    pub fn has_note(&self) -> bool {
        self.flags & NOTE != 0
    }
}

/// Which rows are labeled by this annotator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Labeled {
    #[default]
    Any,
    Labeled,
    Unlabeled,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    pub split: Option<Split>,
    /// Index into [`SegmentIndex::sources`].
    pub source: Option<u16>,
    pub labeled: Labeled,
    pub review_only: bool,
    /// Case-insensitive substring of the segment path.
    pub text: String,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }
}

/// A sortable column of the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Id,
    Path,
    Split,
    Time,
    Gold,
    Source,
    Flags,
    /// The scores of teacher `i` (speech, then music, then noise).
    Teacher(usize),
}

impl Column {
    pub fn title(self, index: &SegmentIndex) -> String {
        match self {
            Column::Id => "#".into(),
            Column::Path => "segment".into(),
            Column::Split => "split".into(),
            Column::Time => "time".into(),
            Column::Gold => "gold".into(),
            Column::Source => "source".into(),
            Column::Flags => "flags".into(),
            Column::Teacher(i) => index.teachers.get(i).cloned().unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub column: Column,
    pub descending: bool,
}

impl Default for Sort {
    fn default() -> Self {
        Sort { column: Column::Id, descending: false }
    }
}

/// All segments, compact, plus the current filtered and sorted view.
#[derive(Debug, Clone, Default)]
pub struct SegmentIndex {
    rows: Vec<Row>,
    paths: String,
    sources: Vec<String>,
    teachers: Vec<String>,
    /// `scores[teacher][row]`: speech/music/noise quantised to 0..=250, [`NO_SCORE`] if missing.
    scores: Vec<Vec<[u8; 3]>>,
    view: Vec<u32>,
    filter: Filter,
    sort: Sort,
}

/// Quantise a probability to a byte (0..=250).
pub fn quantise(p: f32) -> u8 {
    if p.is_finite() { (p.clamp(0.0, 1.0) * 250.0).round() as u8 } else { NO_SCORE }
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

impl SegmentIndex {
    pub fn new() -> SegmentIndex {
        SegmentIndex::default()
    }

    /// Append a segment (rows must come in increasing id order).
    pub fn push(&mut self, r: BrowseRow<'_>) {
        let source = match self.sources.iter().position(|s| s == r.label_source) {
            Some(i) => i as u16,
            None => {
                self.sources.push(r.label_source.to_string());
                (self.sources.len() - 1) as u16
            }
        };
        let path_off = self.paths.len() as u32;
        self.paths.push_str(r.segment_path);
        let mut flags = 0;
        if r.needs_review {
            flags |= REVIEW;
        }
        if r.has_note {
            flags |= NOTE;
        }
        self.rows.push(Row {
            id: r.id,
            path_off,
            path_len: r.segment_path.len() as u32,
            start: r.start_time as f32,
            end: r.end_time as f32,
            source,
            split: r.split,
            gold: r.gold.map(|g| g.bits()).unwrap_or(NO_GOLD),
            flags,
        });
        for t in &mut self.scores {
            t.push([NO_SCORE; 3]);
        }
        self.view.push((self.rows.len() - 1) as u32);
    }

    /// Add a teacher column; scores are set with [`SegmentIndex::set_score`].
    pub fn add_teacher(&mut self, name: &str) -> usize {
        self.teachers.push(name.to_string());
        self.scores.push(vec![[NO_SCORE; 3]; self.rows.len()]);
        self.teachers.len() - 1
    }

    pub fn set_score(&mut self, teacher: usize, id: i64, scores: [f32; 3]) {
        if let (Some(i), Some(t)) = (self.row_index(id), self.scores.get_mut(teacher)) {
            t[i] = scores.map(quantise);
        }
    }

    /// Every segment of the store with this annotator's labels, and the latest run of each teacher.
    pub fn load(store: &Store, annotator_id: i64) -> Result<SegmentIndex> {
        let mut idx = SegmentIndex::new();
        let n = store.segment_count()?.max(0) as usize;
        idx.rows.reserve(n);
        idx.view.reserve(n);
        store.for_each_browse_row(annotator_id, |r| idx.push(r))?;
        for run in store.latest_runs()? {
            let t = idx.add_teacher(&run.teacher);
            for (id, s) in store.run_scores(run.id)? {
                idx.set_score(t, id, s);
            }
        }
        Ok(idx)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
    pub fn sources(&self) -> &[String] {
        &self.sources
    }
    pub fn teachers(&self) -> &[String] {
        &self.teachers
    }
    pub fn path(&self, row: &Row) -> &str {
        &self.paths[row.path_off as usize..(row.path_off + row.path_len) as usize]
    }
    pub fn source(&self, row: &Row) -> &str {
        self.sources.get(row.source as usize).map(String::as_str).unwrap_or("")
    }
    /// Quantised scores of teacher `t` for the row at `i` (see [`quantise`]).
    pub fn scores_at(&self, t: usize, i: usize) -> [u8; 3] {
        self.scores.get(t).and_then(|s| s.get(i)).copied().unwrap_or([NO_SCORE; 3])
    }

    fn row_index(&self, id: i64) -> Option<usize> {
        self.rows.binary_search_by_key(&id, |r| r.id).ok()
    }

    /// The row with this id.
    pub fn by_id(&self, id: i64) -> Option<&Row> {
        self.row_index(id).map(|i| &self.rows[i])
    }

    /// Update a row after a label change (the view is not rebuilt, so the row stays in place).
    pub fn set_label_state(&mut self, id: i64, gold: Option<LabelSet>, review: bool) {
        if let Some(i) = self.row_index(id) {
            let r = &mut self.rows[i];
            r.gold = gold.map(|g| g.bits()).unwrap_or(NO_GOLD);
            r.flags = (r.flags & !REVIEW) | if review { REVIEW } else { 0 };
        }
    }

    pub fn set_note_flag(&mut self, id: i64, has: bool) {
        if let Some(i) = self.row_index(id) {
            let r = &mut self.rows[i];
            r.flags = (r.flags & !NOTE) | if has { NOTE } else { 0 };
        }
    }

    // ------------------------------------------------------------------ the view

    /// Number of rows passing the filter.
    pub fn view_len(&self) -> usize {
        self.view.len()
    }

    /// The `pos`-th row of the view: `(row index, row)`.
    pub fn view_row(&self, pos: usize) -> Option<(usize, &Row)> {
        self.view.get(pos).map(|&i| (i as usize, &self.rows[i as usize]))
    }

    /// Position in the view of a segment id (O(view) — only on filter/sort changes).
    pub fn view_position(&self, id: i64) -> Option<usize> {
        let i = self.row_index(id)? as u32;
        self.view.iter().position(|&v| v == i)
    }

    pub fn filter(&self) -> &Filter {
        &self.filter
    }
    pub fn sort(&self) -> Sort {
        self.sort
    }

    pub fn set_filter(&mut self, f: Filter) {
        self.filter = f;
        self.rebuild();
    }

    pub fn set_sort(&mut self, s: Sort) {
        self.sort = s;
        self.rebuild();
    }

    /// All sortable columns, in display order.
    pub fn columns(&self) -> Vec<Column> {
        let mut c = vec![Column::Id, Column::Path, Column::Split, Column::Time, Column::Gold, Column::Source];
        c.extend((0..self.teachers.len()).map(Column::Teacher));
        c.push(Column::Flags);
        c
    }

    fn passes(&self, r: &Row) -> bool {
        let f = &self.filter;
        f.split.is_none_or(|s| r.split == s)
            && f.source.is_none_or(|s| r.source == s)
            && match f.labeled {
                Labeled::Any => true,
                Labeled::Labeled => r.gold != NO_GOLD,
                Labeled::Unlabeled => r.gold == NO_GOLD,
            }
            && (!f.review_only || r.needs_review())
            && (f.text.is_empty() || contains_ci(self.path(r), &f.text))
    }

    fn compare(&self, a: u32, b: u32) -> Ordering {
        let (ra, rb) = (&self.rows[a as usize], &self.rows[b as usize]);
        let split_rank = |s: Split| SPLITS.iter().position(|&x| x == s).unwrap_or(0);
        let o = match self.sort.column {
            Column::Id => Ordering::Equal,
            Column::Path => self.path(ra).cmp(self.path(rb)),
            Column::Split => split_rank(ra.split).cmp(&split_rank(rb.split)),
            Column::Time => ra.start.total_cmp(&rb.start).then(ra.end.total_cmp(&rb.end)),
            // Unlabeled last in ascending order.
            Column::Gold => ra.gold.cmp(&rb.gold),
            Column::Source => self.source(ra).cmp(self.source(rb)),
            Column::Flags => ra.flags.cmp(&rb.flags),
            Column::Teacher(t) => {
                let (sa, sb) = (self.scores_at(t, a as usize), self.scores_at(t, b as usize));
                // Missing scores last.
                let key = |s: [u8; 3]| s.map(|v| if v == NO_SCORE { u16::MAX } else { v as u16 });
                key(sa).cmp(&key(sb))
            }
        };
        // Ties keep id order (stable and deterministic).
        let o = o.then(ra.id.cmp(&rb.id));
        if self.sort.descending { o.reverse() } else { o }
    }

    fn rebuild(&mut self) {
        let mut view: Vec<u32> = (0..self.rows.len() as u32).filter(|&i| self.passes(&self.rows[i as usize])).collect();
        if self.sort != Sort::default() {
            view.sort_unstable_by(|&a, &b| self.compare(a, b));
        }
        self.view = view;
    }

    /// Cycle a split filter through all → each split → all.
    pub fn next_split(cur: Option<Split>) -> Option<Split> {
        match cur {
            None => Some(SPLITS[0]),
            Some(s) => SPLITS.iter().position(|&x| x == s).and_then(|i| SPLITS.get(i + 1)).copied(),
        }
    }
}

/// A compact score cell: one digit 0–9 per class (`·` if missing), e.g. `92·`.
pub fn score_cell(s: [u8; 3]) -> String {
    CLASSES
        .iter()
        .map(|c| {
            let v = s[c.index()];
            if v == NO_SCORE { '·' } else { char::from(b'0' + ((v as u32 + 12) / 25).min(9) as u8) }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(
        id: i64,
        path: &'a str,
        split: Split,
        source: &'a str,
        gold: Option<LabelSet>,
        review: bool,
    ) -> BrowseRow<'a> {
        BrowseRow {
            id,
            segment_path: path,
            start_time: (id * 5) as f64,
            end_time: (id * 5 + 10) as f64,
            split,
            label_source: if source.is_empty() { "none" } else { source },
            gold,
            needs_review: review,
            has_note: false,
        }
    }

    fn sample() -> SegmentIndex {
        let mut idx = SegmentIndex::new();
        let sp = Some(LabelSet::new(true, false, false));
        idx.push(row(1, "segments/showA_s0001.wav", Split::Dev, "gold", sp, false));
        idx.push(row(2, "segments/showA_s0002.wav", Split::Dev, "", None, true));
        idx.push(row(
            3,
            "segments/ShowB_s0001.wav",
            Split::Test,
            "gold",
            Some(LabelSet::new(false, true, true)),
            false,
        ));
        idx.push(row(5, "segments/other_s0001.wav", Split::Train, "ast", None, false));
        idx.push(row(7, "segments/other_s0002.wav", Split::Unlabeled, "ast", None, true));
        let t = idx.add_teacher("ast");
        idx.set_score(t, 1, [0.9, 0.1, 0.0]);
        idx.set_score(t, 3, [0.2, 0.8, 0.5]);
        idx.set_score(t, 7, [0.5, 0.5, 0.5]);
        idx
    }

    fn ids(idx: &SegmentIndex) -> Vec<i64> {
        (0..idx.view_len()).map(|p| idx.view_row(p).unwrap().1.id).collect()
    }

    #[test]
    fn filters_combine() {
        let mut idx = sample();
        assert_eq!(ids(&idx), vec![1, 2, 3, 5, 7]);
        idx.set_filter(Filter { split: Some(Split::Dev), ..Filter::default() });
        assert_eq!(ids(&idx), vec![1, 2]);
        idx.set_filter(Filter { labeled: Labeled::Unlabeled, ..Filter::default() });
        assert_eq!(ids(&idx), vec![2, 5, 7]);
        idx.set_filter(Filter { labeled: Labeled::Labeled, ..Filter::default() });
        assert_eq!(ids(&idx), vec![1, 3]);
        idx.set_filter(Filter { review_only: true, ..Filter::default() });
        assert_eq!(ids(&idx), vec![2, 7]);
        let ast = idx.sources().iter().position(|s| s == "ast").unwrap() as u16;
        idx.set_filter(Filter { source: Some(ast), review_only: true, ..Filter::default() });
        assert_eq!(ids(&idx), vec![7]);
        idx.set_filter(Filter { text: "showb".into(), ..Filter::default() });
        assert_eq!(ids(&idx), vec![3]);
        idx.set_filter(Filter { text: "SHOWA".into(), split: Some(Split::Dev), ..Filter::default() });
        assert_eq!(ids(&idx), vec![1, 2]);
        idx.set_filter(Filter { text: "nothing-like-this".into(), ..Filter::default() });
        assert_eq!(idx.view_len(), 0);
        assert!(idx.view_row(0).is_none());
    }

    #[test]
    fn sorts_by_every_column_with_stable_ties() {
        let mut idx = sample();
        idx.set_sort(Sort { column: Column::Path, descending: false });
        assert_eq!(ids(&idx), vec![3, 5, 7, 1, 2]); // byte order: 'S' < 'o' < 's'
        idx.set_sort(Sort { column: Column::Split, descending: false });
        assert_eq!(ids(&idx), vec![5, 1, 2, 3, 7]);
        idx.set_sort(Sort { column: Column::Time, descending: true });
        assert_eq!(ids(&idx), vec![7, 5, 3, 2, 1]);
        idx.set_sort(Sort { column: Column::Gold, descending: false });
        assert_eq!(ids(&idx), vec![1, 3, 2, 5, 7]);
        idx.set_sort(Sort { column: Column::Teacher(0), descending: false });
        assert_eq!(ids(&idx), vec![3, 7, 1, 2, 5]);
        idx.set_sort(Sort { column: Column::Flags, descending: true });
        assert_eq!(ids(&idx), vec![7, 2, 5, 3, 1]);
        idx.set_sort(Sort { column: Column::Source, descending: false });
        assert_eq!(ids(&idx), vec![5, 7, 1, 3, 2]);
        // Sorting and filtering together.
        idx.set_filter(Filter { split: Some(Split::Dev), ..Filter::default() });
        assert_eq!(ids(&idx), vec![1, 2]);
        assert_eq!(idx.view_position(2), Some(1));
        assert_eq!(idx.view_position(5), None);
        assert_eq!(idx.columns().len(), 8);
    }

    #[test]
    fn label_updates_stay_in_place_and_cells_render() {
        let mut idx = sample();
        idx.set_filter(Filter { labeled: Labeled::Unlabeled, ..Filter::default() });
        idx.set_label_state(2, Some(LabelSet::new(false, false, true)), false);
        assert_eq!(ids(&idx), vec![2, 5, 7]);
        let r = idx.by_id(2).unwrap();
        assert_eq!(r.gold(), Some(LabelSet::new(false, false, true)));
        assert!(!r.needs_review());
        idx.set_note_flag(2, true);
        assert!(idx.by_id(2).unwrap().has_note());
        assert_eq!(score_cell(idx.scores_at(0, 0)), "910");
        assert_eq!(score_cell(idx.scores_at(0, 1)), "···");
        assert_eq!(score_cell([250, 0, 125]), "905");
        assert_eq!(SegmentIndex::next_split(None), Some(Split::Train));
        assert_eq!(SegmentIndex::next_split(Some(Split::Unsplit)), None);
    }
}
