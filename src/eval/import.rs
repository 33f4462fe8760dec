//! `dams import-scores`: a CSV of per-segment teacher scores becomes a teacher run
//! (kind `imported`). The file is validated whole before anything is written: one unknown
//! segment or bad number refuses the import, with line and column.
//!
//! Accepted columns (header names are matched case-insensitively, surrounding spaces ignored):
//! - the segment: `segment_path` (data-relative such as `segments/x.wav`, a bare file name
//!   under `data/segments/`, or an absolute path inside the data root);
//! - per class, the first present of `<class>_score`, `<teacher>_<class>_score` (the Python
//!   pipeline's combined files, e.g. `ast_speech_score`), `<class>` and `<teacher>_<class>`.
//!
//! Other columns are ignored. Scores must be finite numbers (any range: zero-shot cosine
//! scores lie in [−1, 1]).

use std::collections::HashMap;
use std::path::Path;

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::labels::{CLASSES, Class};
use crate::store::{NewRun, ScoreRow, Store, StoreError};
use crate::workspace::Workspace;

/// One problem in the file: 1-based line (the header is line 1) and the column it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub column: String,
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, column {}: {}", self.line, self.column, self.message)
    }
}

#[derive(Debug, Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("invalid teacher name '{0}' (letters, digits, '_', '-', '.', ':' only)")]
    BadTeacher(String),
    #[error("{path}: {message}")]
    Header { path: String, message: String },
    #[error("{path}: refused, nothing imported; {n} problem(s):\n{}", list(.errors, *.n))]
    Rows { path: String, errors: Vec<RowError>, n: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

fn list(errors: &[RowError], n: usize) -> String {
    let mut s: String = errors.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n");
    if n > errors.len() {
        s.push_str(&format!("\n  ... and {} more", n - errors.len()));
    }
    s
}

/// At most this many row errors are listed.
const MAX_LISTED: usize = 20;

#[derive(Debug, Clone)]
pub struct ImportOutcome {
    pub run_id: i64,
    pub rows: usize,
    /// The header names used for speech, music, noise.
    pub columns: [String; 3],
}

pub fn valid_teacher_name(t: &str) -> bool {
    !t.is_empty() && t.len() <= 64 && t.chars().all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c))
}

fn norm(h: &str) -> String {
    h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase()
}

/// Find the segment column and one column per class in a header.
pub fn resolve_columns(header: &[String], teacher: &str) -> Result<(usize, [usize; 3]), String> {
    let h: Vec<String> = header.iter().map(|s| norm(s)).collect();
    let find = |name: &str| h.iter().position(|x| x == name);
    let seg = find("segment_path").ok_or_else(|| format!("no 'segment_path' column (found: {})", header.join(", ")))?;
    let t = norm(teacher);
    let mut cols = [0usize; 3];
    for c in CLASSES {
        let n = c.name();
        let candidates = [format!("{n}_score"), format!("{t}_{n}_score"), n.to_string(), format!("{t}_{n}")];
        cols[c.index()] = candidates.iter().find_map(|cand| find(cand)).ok_or_else(|| {
            format!("no {n} score column: expected one of {} (found: {})", candidates.join(", "), header.join(", "))
        })?;
    }
    Ok((seg, cols))
}

/// Validate `csv_path` and store it as a new imported run of `teacher`.
pub fn import_scores(
    ws: &Workspace,
    store: &mut Store,
    teacher: &str,
    csv_path: &Path,
    zero_shot: bool,
) -> Result<ImportOutcome, ImportError> {
    if !valid_teacher_name(teacher) {
        return Err(ImportError::BadTeacher(teacher.to_string()));
    }
    let pstr = csv_path.display().to_string();
    let bytes = std::fs::read(csv_path).map_err(|source| ImportError::Io { path: pstr.clone(), source })?;
    let checksum = format!("sha256:{:x}", Sha256::digest(&bytes));
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(bytes.as_slice());
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| ImportError::Header { path: pstr.clone(), message: format!("unreadable header: {e}") })?
        .iter()
        .map(str::to_string)
        .collect();
    let (seg_col, cols) =
        resolve_columns(&header, teacher).map_err(|message| ImportError::Header { path: pstr.clone(), message })?;

    let by_path: HashMap<String, i64> = store.segment_ids_by_path()?;

    let mut errors: Vec<RowError> = Vec::new();
    let mut n_err = 0usize;
    let mut push = |errors: &mut Vec<RowError>, e: RowError| {
        n_err += 1;
        if errors.len() < MAX_LISTED {
            errors.push(e);
        }
    };
    let mut rows: Vec<ScoreRow> = Vec::new();
    let mut seen: HashMap<i64, u64> = HashMap::new();
    for rec in rdr.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                push(&mut errors, RowError { line, column: "-".into(), message: e.to_string() });
                continue;
            }
        };
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let raw = rec.get(seg_col).unwrap_or("");
        let seg_id = match ws.normalize_data_path(raw) {
            Err(e) => {
                push(&mut errors, RowError { line, column: header[seg_col].clone(), message: e.to_string() });
                None
            }
            Ok(p) => match by_path.get(&p) {
                Some(&id) => Some(id),
                None => {
                    push(
                        &mut errors,
                        RowError {
                            line,
                            column: header[seg_col].clone(),
                            message: format!("unknown segment '{raw}' (import the manifest first)"),
                        },
                    );
                    None
                }
            },
        };
        let mut scores = [0f32; 3];
        let mut ok = seg_id.is_some();
        for c in CLASSES {
            let col = cols[c.index()];
            let v = rec.get(col).unwrap_or("").trim();
            match v.parse::<f64>() {
                Ok(x) if x.is_finite() => scores[c.index()] = x as f32,
                _ => {
                    ok = false;
                    push(
                        &mut errors,
                        RowError {
                            line,
                            column: header[col].clone(),
                            message: format!("'{v}' is not a finite number ({} score)", Class::name(c)),
                        },
                    );
                }
            }
        }
        if let Some(id) = seg_id {
            if let Some(first) = seen.insert(id, line) {
                ok = false;
                push(
                    &mut errors,
                    RowError {
                        line,
                        column: header[seg_col].clone(),
                        message: format!("segment '{raw}' already appears on line {first}"),
                    },
                );
            }
            if ok {
                rows.push(ScoreRow { segment_id: id, scores, raw: None });
            }
        }
    }
    if n_err > 0 {
        return Err(ImportError::Rows { path: pstr, errors, n: n_err });
    }
    if rows.is_empty() {
        return Err(ImportError::Header { path: pstr, message: "no score rows".into() });
    }
    let settings = serde_json::json!({
        "source_file": pstr,
        "columns": { "speech": header[cols[0]], "music": header[cols[1]], "noise": header[cols[2]] },
    })
    .to_string();
    let run_id =
        store.create_run(&NewRun { teacher, checksum: &checksum, settings: &settings, imported: true, zero_shot })?;
    if let Err(e) = store.put_scores(run_id, &rows) {
        let _ = store.finish_run(run_id, "failed");
        return Err(e.into());
    }
    store.finish_run(run_id, "done")?;
    Ok(ImportOutcome { run_id, rows: rows.len(), columns: cols.map(|c| header[c].clone()) })
}
