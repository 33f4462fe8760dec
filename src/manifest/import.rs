//! `dams import`: read a DAMS manifest CSV, validate every row, and upsert it into the store in
//! one transaction. A file with any problem is refused whole, with the line and column of each
//! problem; nothing is written.
//!
//! Rows are streamed: memory grows only with the set of segment paths seen (to refuse
//! duplicates), not with the file.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::Path;

use csv::ByteRecord;

use super::{Field, MANIFEST_ANNOTATOR, MAX_PROBLEMS, ManifestError, Problem, Spelling, extra_to_json};
use crate::containment::ContainmentCheck;
use crate::labels::{CLASSES, LabelSet, LabelSource, Split};
use crate::store::manifest::{ManifestCounts, PresentColumns, apply_manifest_batch};
use crate::store::{NewSegment, Store};
use crate::workspace::{WorkspaceError, normalize_data_path};

#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Validate and count, then roll back.
    pub dry_run: bool,
    /// Accept `label_source = gold` rows on train/unlabeled/unsplit segments.
    pub allow_gold_on_all_splits: bool,
    /// Annotator that gold rows are recorded under.
    pub annotator: String,
    /// Rows written per batch inside the single transaction.
    pub batch_size: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            dry_run: false,
            allow_gold_on_all_splits: false,
            annotator: MANIFEST_ANNOTATOR.into(),
            batch_size: 4096,
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportSummary {
    pub path: String,
    /// Data rows read.
    pub rows: usize,
    pub counts: ManifestCounts,
    /// Columns that are not part of the DAMS schema, in file order (kept in `segments.extra`).
    pub extra_columns: Vec<String>,
    /// The spelling of the label columns, if the file has any.
    pub spelling: Option<Spelling>,
    /// Canonical columns the file lacks (their defaults were used).
    pub missing_columns: Vec<&'static str>,
    pub dry_run: bool,
    /// How the rows reached the store: in chunks (a store on disk; see
    /// [`crate::store::import_apply`]), with the longest time one chunk held the write lock.
    pub chunks: Option<(usize, std::time::Duration)>,
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        writeln!(
            f,
            "{}{}: {} rows: {} inserted, {} updated, {} unchanged",
            if self.dry_run { "dry run (nothing written) " } else { "imported " },
            self.path,
            self.rows,
            c.inserted,
            c.updated,
            c.unchanged
        )?;
        if c.gold_written > 0 || c.gold_removed > 0 {
            writeln!(
                f,
                "  gold labels of annotator '{MANIFEST_ANNOTATOR}': {} written, {} removed",
                c.gold_written, c.gold_removed
            )?;
        }
        match self.spelling {
            Some(Spelling::Dams) => writeln!(f, "  label columns: speech_label, music_label, noise_label")?,
            Some(Spelling::DamsReadme) => writeln!(f, "  label columns: speech, music, noise (README spelling)")?,
            None => {}
        }
        if !self.missing_columns.is_empty() {
            writeln!(f, "  columns not in the file (defaults used): {}", self.missing_columns.join(", "))?;
        }
        if let Some((n, longest)) = self.chunks {
            writeln!(
                f,
                "  written in {n} chunk{}; longest write lock {:.0} ms",
                if n == 1 { "" } else { "s" },
                longest.as_secs_f64() * 1e3
            )?;
        }
        if self.extra_columns.is_empty() {
            write!(f, "  extra columns: none")
        } else {
            write!(f, "  extra columns (kept, exported back): {}", self.extra_columns.join(", "))
        }
    }
}

/// Import a manifest file into `store`. `data_root` is the workspace's `data/` folder, against
/// which segment paths are resolved (and refused if they escape it).
pub fn import_path(
    store: &mut Store,
    data_root: &Path,
    path: &Path,
    opts: &ImportOptions,
) -> Result<ImportSummary, ManifestError> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|err| ManifestError::Read { path: shown.clone(), err })?;
    import_reader(store, data_root, std::io::BufReader::with_capacity(1 << 16, file), &shown, opts)
}

/// Page cache for the import transaction, in KiB.
const IMPORT_CACHE_KIB: i64 = 128 * 1024;

/// [`normalize_data_path`] with a fast path for the common case, a bare file name (what DAMS
/// manifests store): `x.wav` → `segments/x.wav`.
fn normalize_segment_path(data_root: &Path, v: &str) -> Result<String, WorkspaceError> {
    let t = v.trim();
    if !t.is_empty()
        && t != "."
        && t != ".."
        && !t.contains(['/', '\\'])
        && v.len() <= crate::workspace::MAX_PATH_BYTES
        && !t.chars().any(char::is_control)
    {
        let mut s = String::with_capacity(9 + t.len());
        s.push_str("segments/");
        s.push_str(t);
        return Ok(s);
    }
    normalize_data_path(data_root, v)
}

/// Collected problems: the first [`MAX_PROBLEMS`] in full, then a count.
#[derive(Default)]
struct Problems {
    list: Vec<Problem>,
    more: usize,
}

impl Problems {
    fn push(&mut self, line: u64, column: Option<(&str, usize)>, message: impl Into<String>) {
        if self.list.len() < MAX_PROBLEMS {
            let message = shorten(message.into());
            self.list.push(Problem { line, column: column.map(|(n, i)| (n.to_string(), i)), message });
        } else {
            self.more += 1;
        }
    }
    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    fn into_error(mut self, path: &str) -> ManifestError {
        // Within a line, report problems from left to right.
        self.list.sort_by_key(|p| (p.line, p.column.as_ref().map_or(0, |c| c.1)));
        ManifestError::Invalid { path: path.to_string(), problems: self.list, more: self.more }
    }
}

/// Which column holds what.
struct Layout {
    /// Header names as written (trimmed).
    names: Vec<String>,
    /// Column index of each canonical field.
    fields: [Option<usize>; 12],
    extras: Vec<usize>,
    spelling: Option<Spelling>,
}

impl Layout {
    fn parse(rec: &ByteRecord, line: u64, problems: &mut Problems) -> Layout {
        let mut names = Vec::with_capacity(rec.len());
        let mut fields = [None; 12];
        let mut extras: Vec<usize> = Vec::new();
        let mut spelling = None;
        for (i, raw) in rec.iter().enumerate() {
            let name = match std::str::from_utf8(raw) {
                Ok(s) => s,
                Err(_) => {
                    let lossy = String::from_utf8_lossy(raw).into_owned();
                    problems.push(line, Some((&lossy, i + 1)), "the column name is not valid UTF-8");
                    names.push(lossy);
                    continue;
                }
            };
            // Spreadsheet programs often start a UTF-8 CSV with a byte-order mark.
            let name = if i == 0 { name.trim_start_matches('\u{feff}') } else { name }.trim();
            let key = name.to_lowercase();
            match Field::from_header(&key) {
                Some((f, sp)) => match fields[f.index()] {
                    Some(prev) => problems.push(
                        line,
                        Some((name, i + 1)),
                        format!("duplicate column: column {} '{}' already gives this field", prev + 1, names[prev]),
                    ),
                    None => {
                        fields[f.index()] = Some(i);
                        if spelling.is_none() {
                            spelling = sp;
                        }
                    }
                },
                None => {
                    if let Some(&prev) = extras.iter().find(|&&j| names[j].to_lowercase() == key) {
                        problems.push(
                            line,
                            Some((name, i + 1)),
                            format!("duplicate column: same name as column {} '{}'", prev + 1, names[prev]),
                        );
                    } else {
                        extras.push(i);
                    }
                }
            }
            names.push(name.to_string());
        }
        if fields[Field::SegmentPath.index()].is_none() {
            let found = names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ");
            let mut msg = format!(
                "the header has no segment_path column (found {found}); the first line must name the columns, \
                 e.g. raw_file,segment_path,start_time,end_time,split,label_source,speech_label,..."
            );
            if names.len() == 1 && (names[0].contains(';') || names[0].contains('\t')) {
                msg.push_str("; the file seems to use ';' or tabs as separator, but a manifest is comma-separated");
            }
            problems.push(line, None, msg);
        }
        Layout { names, fields, extras, spelling }
    }

    fn col(&self, i: usize) -> Option<(&str, usize)> {
        Some((self.names[i].as_str(), i + 1))
    }
}

fn parse_float(s: &str) -> Result<Option<f64>, String> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(None);
    }
    match t.parse::<f64>() {
        // -0.0 is stored as 0.0 (SQLite does not keep the sign of zero).
        Ok(x) if x.is_finite() => Ok(Some(if x == 0.0 { 0.0 } else { x })),
        Ok(_) => Err(format!("'{t}' is not a finite number (NaN and infinity are refused; leave the cell empty)")),
        Err(_) => Err(format!("'{t}' is not a number")),
    }
}

fn parse_label(s: &str) -> Result<Option<bool>, String> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "1" | "1.0" | "true" => Ok(Some(true)),
        "0" | "0.0" | "false" => Ok(Some(false)),
        _ => Err(format!("'{t}' is not a label (expected 0 or 1; true/false and 0.0/1.0 are accepted too)")),
    }
}

/// Longest problem message kept (a cell's text quoted in it is cut, so a 50 MB cell cannot make a
/// 50 MB error line).
const MAX_MESSAGE_CHARS: usize = 500;
/// Longest cell text quoted in a path problem.
const MAX_QUOTED_CHARS: usize = 80;

fn shorten(m: String) -> String {
    cut(m, MAX_MESSAGE_CHARS)
}

fn cut(m: String, max: usize) -> String {
    if m.len() <= max {
        return m;
    }
    let at = (0..=max).rev().find(|&i| m.is_char_boundary(i)).unwrap_or(0);
    format!("{}… ({} bytes in all)", &m[..at], m.len())
}

fn path_problem(e: WorkspaceError, what: &str, value: &str) -> String {
    // Quote the value escaped (a line feed shows as \n) and cut (it may be megabytes long).
    let value = &cut(value.escape_debug().to_string(), MAX_QUOTED_CHARS);
    match e {
        WorkspaceError::EmptyPath(_) => format!("{what} is empty"),
        WorkspaceError::Escapes(_) => format!(
            "'{value}' resolves outside the workspace's data folder; {what} must be relative to data/ \
             (segments/x.wav), a bare file name (resolved under data/segments/), or an absolute path inside data/"
        ),
        WorkspaceError::TooLong(_) | WorkspaceError::ControlChar(..) => format!("{what} '{value}': {e}"),
        other => format!("'{value}': {other}"),
    }
}

/// Import a manifest read from `reader`; `shown` names it in messages.
pub fn import_reader<R: Read + Send>(
    store: &mut Store,
    data_root: &Path,
    reader: R,
    shown: &str,
    opts: &ImportOptions,
) -> Result<ImportSummary, ManifestError> {
    // The csv crate counts a record's line before consuming the `\n` of the previous record's
    // `\r\n`, so in CRLF files (Excel, Windows) its line numbers lag by one. Peek at the first
    // line ending to correct that (files that mix endings are not corrected).
    let mut reader = std::io::BufReader::with_capacity(1 << 16, reader);
    let crlf = {
        let buf = std::io::BufRead::fill_buf(&mut reader)
            .map_err(|err| ManifestError::Read { path: shown.to_string(), err })?;
        buf.iter().position(|&b| b == b'\n').is_some_and(|i| i > 0 && buf[i - 1] == b'\r')
    };
    let line_offset = u64::from(crlf);
    let mut rdr = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(reader);
    let mut rec = ByteRecord::new();
    let mut problems = Problems::default();
    let read_err = |e: csv::Error| -> Result<(), ManifestError> {
        match e.into_kind() {
            csv::ErrorKind::Io(err) => Err(ManifestError::Read { path: shown.to_string(), err }),
            _ => Ok(()),
        }
    };

    // Header.
    match rdr.read_byte_record(&mut rec) {
        Ok(true) => {}
        Ok(false) => return Err(ManifestError::Empty { path: shown.to_string() }),
        Err(e) => {
            let line = e.position().map_or(1, |p| p.line());
            let msg = e.to_string();
            read_err(e)?;
            problems.push(line, None, msg);
            return Err(problems.into_error(shown));
        }
    }
    let header_line = rec.position().map_or(1, |p| p.line());
    let layout = Layout::parse(&rec, header_line, &mut problems);
    if !problems.is_empty() {
        return Err(problems.into_error(shown));
    }
    let missing_columns: Vec<&'static str> = Spelling::Dams
        .header()
        .iter()
        .zip(layout.fields.iter())
        .filter(|(_, f)| f.is_none())
        .map(|(n, _)| *n)
        .collect();

    // A bulk import touches many pages; a larger page cache (only for this import) keeps the
    // B-trees in memory instead of spilling dirty pages to the WAL mid-transaction. (In our
    // measurements it lowered wall time against SQLite's default 2 MB cache on a loaded
    // machine; `synchronous = OFF` made no measurable difference, as one transaction syncs
    // once, so durability settings are left alone.)
    let old_cache: i64 = store.conn().query_row("PRAGMA cache_size", [], |r| r.get(0))?;
    store.conn().execute_batch(&format!("PRAGMA cache_size = -{IMPORT_CACHE_KIB}"))?;
    let result = import_rows(store, &mut rdr, &mut rec, &layout, data_root, shown, opts, line_offset, &mut problems);
    store.conn().execute_batch(&format!("PRAGMA cache_size = {old_cache}"))?;
    let (rows, counts, chunks) = result?;
    Ok(ImportSummary {
        path: shown.to_string(),
        rows,
        counts,
        extra_columns: layout.extras.iter().map(|&i| layout.names[i].clone()).collect(),
        spelling: layout.spelling,
        missing_columns,
        dry_run: opts.dry_run,
        chunks,
    })
}

/// Read, validate and write the data rows in one transaction.
///
/// Two threads form a pipeline: a scoped thread parses and validates, and sends batches of
/// valid rows through a bounded channel to this thread, which owns the transaction. After the
/// first problem no more batches are sent (validation goes on to report every problem) and
/// the transaction is rolled back.
#[allow(clippy::too_many_arguments)]
fn import_rows<R: Read + Send>(
    store: &mut Store,
    rdr: &mut csv::Reader<R>,
    rec: &mut ByteRecord,
    layout: &Layout,
    data_root: &Path,
    shown: &str,
    opts: &ImportOptions,
    line_offset: u64,
    problems: &mut Problems,
) -> Result<(usize, ManifestCounts, Option<(usize, std::time::Duration)>), ManifestError> {
    if store.path().as_os_str() != ":memory:" {
        return import_rows_staged(store, rdr, rec, layout, data_root, shown, opts, line_offset, problems);
    }
    let batch_size = opts.batch_size.max(1);
    // IMMEDIATE: take the write lock now, so the reads below cannot go stale before the first
    // write (which would fail with SQLITE_BUSY_SNAPSHOT if another process wrote meanwhile).
    let tx = store.conn_mut().transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Importing into an empty workspace: every row is new (paths are unique within the file).
    let known_new: bool = tx.query_row("SELECT NOT EXISTS (SELECT 1 FROM segments)", [], |r| r.get(0))?;
    // Fields in canonical order: raw_file, segment_path, start_time, end_time, split, label_source,
    // three labels, three scores.
    let has = |i: usize| layout.fields[i].is_some();
    let present = PresentColumns {
        raw_file: has(0),
        start_time: has(2),
        end_time: has(3),
        split: has(4),
        label_source: has(5),
        labels: has(6) || has(7) || has(8),
        scores: [has(9), has(10), has(11)],
    };
    let (send, receive) = std::sync::mpsc::sync_channel::<Vec<NewSegment>>(4);
    let problems_in = &mut *problems;
    let (parsed, written) = std::thread::scope(|scope| {
        let parser = scope.spawn(move || {
            parse_rows(rdr, rec, layout, data_root, shown, opts, line_offset, problems_in, batch_size, send)
        });
        let mut counts = ManifestCounts::default();
        let mut annotator_id: Option<i64> = None;
        let mut written = Ok(());
        for batch in &receive {
            written =
                apply_manifest_batch(&tx, &opts.annotator, &mut annotator_id, &batch, &present, known_new, &mut counts);
            if written.is_err() {
                break;
            }
        }
        // On a write error, dropping the receiver makes the parser's next send fail: it stops.
        drop(receive);
        let parsed = parser.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        (parsed, written.map(|()| counts))
    });
    // Dropping `tx` on any error rolls back.
    let rows = parsed?;
    let counts = written?;
    if !problems.is_empty() {
        drop(tx);
        return Err(std::mem::take(problems).into_error(shown));
    }
    if opts.dry_run {
        tx.rollback()?;
    } else {
        tx.commit()?;
    }
    Ok((rows, counts, None))
}

/// [`import_rows`] for a store on disk: validate the whole file into a stage (the store is not
/// locked meanwhile), then apply the stage in short chunks (see [`crate::store::import_apply`]).
/// A file with any problem is refused and nothing reaches the store; an apply cut off by a crash
/// is finished by the next dams process that opens the workspace.
#[allow(clippy::too_many_arguments)]
fn import_rows_staged<R: Read + Send>(
    store: &mut Store,
    rdr: &mut csv::Reader<R>,
    rec: &mut ByteRecord,
    layout: &Layout,
    data_root: &Path,
    shown: &str,
    opts: &ImportOptions,
    line_offset: u64,
    problems: &mut Problems,
) -> Result<(usize, ManifestCounts, Option<(usize, std::time::Duration)>), ManifestError> {
    use crate::store::import_apply::{Stage, apply, dry_run, register};
    let batch_size = opts.batch_size.max(1);
    let has = |i: usize| layout.fields[i].is_some();
    let present = PresentColumns {
        raw_file: has(0),
        start_time: has(2),
        end_time: has(3),
        split: has(4),
        label_source: has(5),
        labels: has(6) || has(7) || has(8),
        scores: [has(9), has(10), has(11)],
    };
    let dir = store.path().parent().map(Path::to_path_buf).unwrap_or_default();
    let mut stage = Stage::create(&dir)?;
    let (send, receive) = std::sync::mpsc::sync_channel::<Vec<NewSegment>>(4);
    let problems_in = &mut *problems;
    let (parsed, staged) = std::thread::scope(|scope| {
        let parser = scope.spawn(move || {
            parse_rows(rdr, rec, layout, data_root, shown, opts, line_offset, problems_in, batch_size, send)
        });
        let mut staged = Ok(());
        for batch in &receive {
            staged = stage.push(&batch);
            if staged.is_err() {
                break;
            }
        }
        drop(receive);
        let parsed = parser.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        (parsed, staged)
    });
    let rows = match (parsed, staged) {
        (Ok(rows), Ok(())) if problems.is_empty() => rows,
        (parsed, staged) => {
            stage.discard();
            parsed?;
            staged?;
            return Err(std::mem::take(problems).into_error(shown));
        }
    };
    let (stage_path, total) = stage.finish()?;
    if opts.dry_run {
        let counts = dry_run(store, &stage_path, total, &opts.annotator, &present);
        let _ = std::fs::remove_file(&stage_path);
        return Ok((rows, counts?, None));
    }
    let id = match register(store, shown, &stage_path, total, &opts.annotator, &present) {
        Ok(id) => id,
        Err(e) => {
            let _ = std::fs::remove_file(&stage_path);
            return Err(e.into());
        }
    };
    let mut last = crate::store::import_apply::ApplyProgress::default();
    let counts = apply(store, id, None, &mut |p| last = *p)?;
    Ok((rows, counts, Some((last.chunks, last.longest))))
}

/// The parsing half of [`import_rows`]: returns the number of data rows.
#[allow(clippy::too_many_arguments)]
fn parse_rows<R: Read>(
    rdr: &mut csv::Reader<R>,
    rec: &mut ByteRecord,
    layout: &Layout,
    data_root: &Path,
    shown: &str,
    opts: &ImportOptions,
    line_offset: u64,
    problems: &mut Problems,
    batch_size: usize,
    send: std::sync::mpsc::SyncSender<Vec<NewSegment>>,
) -> Result<usize, ManifestError> {
    let ncols = layout.names.len();
    let mut seen: HashMap<Box<str>, u64> = HashMap::new();
    let mut contain = ContainmentCheck::new(data_root);
    let mut batch: Vec<NewSegment> = Vec::with_capacity(batch_size);
    let mut rows = 0usize;
    let mut writer_gone = false;
    loop {
        match rdr.read_byte_record(rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() + line_offset);
                let msg = e.to_string();
                if let csv::ErrorKind::Io(err) = e.into_kind() {
                    return Err(ManifestError::Read { path: shown.to_string(), err });
                }
                problems.push(line, None, msg);
                continue;
            }
        }
        rows += 1;
        let line = rec.position().map_or(0, |p| p.line() + line_offset);
        if rec.len() != ncols {
            problems.push(
                line,
                None,
                format!(
                    "{} field{}, but the header names {ncols} columns",
                    rec.len(),
                    if rec.len() == 1 { "" } else { "s" }
                ),
            );
            continue;
        }
        let Some(row) = parse_row(rec, line, layout, data_root, opts, &mut seen, problems, &mut contain) else {
            continue;
        };
        if problems.is_empty() && !writer_gone {
            batch.push(row);
            if batch.len() >= batch_size {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
                if send.send(full).is_err() {
                    // The writer failed; its error is reported. Stop reading.
                    writer_gone = true;
                    break;
                }
            }
        } else {
            // Keep validating to report every problem, but stop writing: the file is refused.
            batch.clear();
        }
    }
    if problems.is_empty() && !writer_gone && !batch.is_empty() {
        let _ = send.send(batch);
    }
    Ok(rows)
}

/// Validate one row; `None` (with its problems recorded) if it is not valid.
#[allow(clippy::too_many_arguments)]
fn parse_row(
    rec: &ByteRecord,
    line: u64,
    layout: &Layout,
    data_root: &Path,
    opts: &ImportOptions,
    seen: &mut HashMap<Box<str>, u64>,
    problems: &mut Problems,
    contain: &mut ContainmentCheck,
) -> Option<NewSegment> {
    // Invalid UTF-8: name every offending cell.
    if std::str::from_utf8(rec.as_slice()).is_err() {
        for (i, raw) in rec.iter().enumerate() {
            if std::str::from_utf8(raw).is_err() {
                problems.push(line, layout.col(i), "not valid UTF-8 (save the file as UTF-8)");
            }
        }
        return None;
    }
    let cell = |i: usize| -> &str { std::str::from_utf8(&rec[i]).unwrap_or("") };
    let field = |f: Field| -> Option<(usize, &str)> { layout.fields[f.index()].map(|i| (i, cell(i))) };
    let before = problems.list.len() + problems.more;

    // segment_path (required column).
    let mut segment_path = String::new();
    if let Some((i, v)) = field(Field::SegmentPath) {
        match normalize_segment_path(data_root, v) {
            Ok(p) => match contain.check(&p) {
                Ok(()) => segment_path = p,
                Err(m) => problems.push(line, layout.col(i), format!("segment_path: {m}")),
            },
            Err(e) => problems.push(line, layout.col(i), path_problem(e, "segment_path", v.trim())),
        }
    }
    let mut raw_file = String::new();
    if let Some((i, v)) = field(Field::RawFile) {
        let v = v.trim();
        if !v.is_empty() {
            match normalize_segment_path(data_root, v) {
                Ok(_) => raw_file = v.to_string(),
                Err(e) => problems.push(line, layout.col(i), path_problem(e, "raw_file", v)),
            }
        }
    }
    let mut time = |f: Field| -> f64 {
        let Some((i, v)) = field(f) else { return 0.0 };
        match parse_float(v) {
            Ok(Some(x)) if x < 0.0 => {
                problems.push(
                    line,
                    layout.col(i),
                    format!("'{}' is negative; times are seconds from the start", v.trim()),
                );
                0.0
            }
            Ok(x) => x.unwrap_or(0.0),
            Err(m) => {
                problems.push(line, layout.col(i), m);
                0.0
            }
        }
    };
    let start_time = time(Field::StartTime);
    let end_time = time(Field::EndTime);
    if end_time < start_time {
        let col = layout.fields[Field::EndTime.index()].and_then(|i| layout.col(i));
        problems.push(
            line,
            col,
            format!("end_time {} is before start_time {}", super::fmt_float(end_time), super::fmt_float(start_time)),
        );
    }
    let mut split = Split::Unsplit;
    if let Some((i, v)) = field(Field::Split) {
        match v.parse::<Split>() {
            Ok(s) => split = s,
            Err(m) => problems.push(line, layout.col(i), m),
        }
    }
    let mut label_source = LabelSource::none();
    if let Some((i, v)) = field(Field::LabelSource) {
        match v.parse::<LabelSource>() {
            Ok(s) => label_source = s,
            Err(m) => problems.push(line, layout.col(i), m),
        }
    }
    // Labels: all three set, or all three empty.
    let mut bits: [Option<bool>; 3] = [None; 3];
    let mut labels_ok = true;
    for c in CLASSES {
        if let Some((i, v)) = field(Field::Label(c)) {
            match parse_label(v) {
                Ok(b) => bits[c.index()] = b,
                Err(m) => {
                    labels_ok = false;
                    problems.push(line, layout.col(i), m)
                }
            }
        }
    }
    let labels = if bits.iter().all(Option::is_none) {
        None
    } else if let [Some(s), Some(m), Some(n)] = bits {
        Some(LabelSet::new(s, m, n))
    } else {
        if labels_ok {
            let (c, _) =
                CLASSES.iter().map(|&c| (c, bits[c.index()])).find(|(_, b)| b.is_none()).unwrap_or((CLASSES[0], None));
            let col = layout.fields[Field::Label(c).index()].and_then(|i| layout.col(i));
            let msg = if col.is_some() {
                "empty, but other label columns of this row are set; give all three labels or none".to_string()
            } else {
                format!(
                    "the file has no {} column, but this row sets other labels; give all three labels or none",
                    c.name()
                )
            };
            problems.push(line, col, msg);
        }
        None
    };
    if label_source.is_gold() && labels_ok {
        let col = layout.fields[Field::LabelSource.index()].and_then(|i| layout.col(i));
        if bits.iter().all(Option::is_none) {
            problems.push(line, col, "label_source is gold, but the row has no labels");
        } else if !opts.allow_gold_on_all_splits && !split.allows_gold_by_default() {
            problems.push(
                line,
                col,
                format!(
                    "gold labels are only allowed on dev/test segments (this row's split is '{split}'); \
                     set allow_gold_on_all_splits = true in config.toml to allow it"
                ),
            );
        }
    }
    let mut scores: [Option<f64>; 3] = [None; 3];
    for c in CLASSES {
        if let Some((i, v)) = field(Field::Score(c)) {
            match parse_float(v) {
                Ok(x) => scores[c.index()] = x,
                Err(m) => problems.push(line, layout.col(i), m),
            }
        }
    }
    let extra = if layout.extras.is_empty() {
        None
    } else {
        let pairs: Vec<(String, String)> =
            layout.extras.iter().map(|&i| (layout.names[i].clone(), cell(i).to_string())).collect();
        Some(extra_to_json(&pairs))
    };

    if !segment_path.is_empty() {
        match seen.get(segment_path.as_str()) {
            Some(&first) => {
                let col = layout.fields[Field::SegmentPath.index()].and_then(|i| layout.col(i));
                problems.push(
                    line,
                    col,
                    format!("duplicate segment: '{segment_path}' is already given on line {first}"),
                );
            }
            None => {
                seen.insert(segment_path.clone().into_boxed_str(), line);
            }
        }
    }
    if problems.list.len() + problems.more > before {
        return None;
    }
    Some(NewSegment { segment_path, raw_file, start_time, end_time, split, label_source, labels, scores, extra })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_path_normalisation_agrees_with_the_general_one() {
        let root = Path::new("/w/data");
        for p in ["x.wav", " x.wav ", "a b.wav", "C:x.wav", ".hidden", "...", "segments/x.wav", "./x.wav", "seg\\x.wav"]
        {
            assert_eq!(normalize_segment_path(root, p).ok(), normalize_data_path(root, p).ok(), "{p}");
        }
        for bad in ["", " ", "..", "../x.wav", "/etc/passwd"] {
            assert!(normalize_segment_path(root, bad).is_err(), "{bad}");
        }
    }
}
