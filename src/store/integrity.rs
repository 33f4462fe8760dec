//! Store integrity: a lost or damaged `dams.sqlite` is an error that names the file, never an
//! empty workspace.
//!
//! - Before SQLite opens the file: a zero-length file, or one that does not start with the SQLite
//!   header, is refused (SQLite would happily treat a zero-length file as a new database and the
//!   migrations would recreate an empty workspace over the lost one).
//! - On the first open in a process: `PRAGMA quick_check` (O(pages), no index cross-check). A
//!   store that fails it is refused, for reading and writing.
//! - `dams check` runs the full `PRAGMA integrity_check`; a failure leaves a marker file
//!   (`dams.sqlite.check-failed`) next to the store, and every later open refuses the store
//!   until `dams check` passes again (after a restore or `sqlite3 .recover`).

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use rusqlite::{Connection, OpenFlags};

use super::StoreError;

const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// The marker `dams check` leaves next to a store that failed the full check.
pub fn failed_marker(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".check-failed");
    PathBuf::from(s)
}

fn corrupt(path: &Path, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt { path: path.display().to_string(), detail: detail.into() }
}

/// Refuse a file that exists but is not a SQLite database (zero length, wrong header), and a store
/// marked by a failed `dams check`. A file that does not exist is fine (it is created).
pub fn check_file(path: &Path) -> Result<(), StoreError> {
    check_marker(path)?;
    check_header(path)
}

/// Refuse a store marked by a failed `dams check`.
fn check_marker(path: &Path) -> Result<(), StoreError> {
    let marker = failed_marker(path);
    if let Ok(text) = std::fs::read_to_string(&marker) {
        let first = text.lines().next().unwrap_or("").to_string();
        return Err(corrupt(
            path,
            format!(
                "it failed `dams check` ({first}); writes are refused until it passes (restore a backup, or repair \
                 it with `sqlite3 {} .recover`, then run `dams check` again; the report is in {})",
                path.display(),
                marker.display()
            ),
        ));
    }
    Ok(())
}

/// Refuse a file that exists but is not a SQLite database.
fn check_header(path: &Path) -> Result<(), StoreError> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(corrupt(path, format!("cannot read it: {e}"))),
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len == 0 {
        return Err(corrupt(
            path,
            "the file is empty (0 bytes): the workspace's labels are not in it. Restore it from a backup; \
             if this workspace is new and has no labels yet, delete the file and run `dams init` again",
        ));
    }
    let mut head = [0u8; 16];
    let n = f.read(&mut head).unwrap_or(0);
    if n < 16 || &head != SQLITE_HEADER {
        return Err(corrupt(
            path,
            format!("it is not a SQLite database ({len} bytes, no SQLite header); restore it from a backup"),
        ));
    }
    Ok(())
}

fn checked() -> &'static Mutex<HashSet<PathBuf>> {
    static CHECKED: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    CHECKED.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Run `PRAGMA quick_check` on the first open of `path` in this process.
pub fn quick_check_once(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if checked().lock().map(|s| s.contains(&key)).unwrap_or(false) {
        return Ok(());
    }
    let problems = run_check(conn, "quick_check", 20)
        .map_err(|e| corrupt(path, format!("cannot be checked ({e}); it is damaged or not a dams store")))?;
    if !problems.is_empty() {
        return Err(corrupt(
            path,
            format!(
                "PRAGMA quick_check found damage: {}; run `dams check` for the full report, restore a backup",
                problems.join("; ")
            ),
        ));
    }
    if let Ok(mut s) = checked().lock() {
        s.insert(key);
    }
    Ok(())
}

/// Rows of `PRAGMA <pragma>(limit)`, empty when the store is sound.
fn run_check(conn: &Connection, pragma: &str, limit: usize) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("PRAGMA {pragma}({limit})"))?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let rows: Vec<String> = rows.collect::<rusqlite::Result<_>>()?;
    Ok(if rows.len() == 1 && rows[0] == "ok" { Vec::new() } else { rows })
}

/// What `dams check` found.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    pub path: PathBuf,
    /// Problems reported by `PRAGMA integrity_check` and `PRAGMA foreign_key_check` (empty: sound).
    pub problems: Vec<String>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The full check of `dams check`: file header, `PRAGMA integrity_check` and foreign keys, on a
/// read-only connection. Writes the failure marker when it fails and removes it when it passes.
pub fn full_check(path: &Path) -> Result<CheckReport, StoreError> {
    let marker = failed_marker(path);
    // (The marker of an earlier failure does not stop the check itself.)
    let header = check_header(path);
    if !path.exists() {
        return Err(corrupt(path, "the file does not exist"));
    }
    let problems = match header {
        Err(StoreError::Corrupt { detail, .. }) => vec![detail],
        Err(e) => return Err(e),
        Ok(()) => {
            let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
            let _ = conn.busy_timeout(std::time::Duration::from_secs(30));
            let mut p = match run_check(&conn, "integrity_check", 100) {
                Ok(p) => p,
                Err(e) => vec![format!("integrity_check could not run: {e}")],
            };
            if p.is_empty() {
                match conn.prepare("PRAGMA foreign_key_check").and_then(|mut s| {
                    let rows = s.query_map([], |r| {
                        Ok(format!(
                            "row {} of {} refers to a missing {} row",
                            r.get::<_, Option<i64>>(1)?.map_or("?".to_string(), |i| i.to_string()),
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(2)?
                        ))
                    })?;
                    rows.take(100).collect::<rusqlite::Result<Vec<_>>>()
                }) {
                    Ok(fk) => p.extend(fk),
                    Err(e) => p.push(format!("foreign_key_check could not run: {e}")),
                }
            }
            p
        }
    };
    if problems.is_empty() {
        let _ = std::fs::remove_file(&marker);
    } else {
        let when = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
        let text = format!("{} problem(s) found at {when}\n{}\n", problems.len(), problems.join("\n"));
        std::fs::write(&marker, text).map_err(|e| corrupt(path, format!("cannot write {}: {e}", marker.display())))?;
    }
    Ok(CheckReport { path: path.to_path_buf(), problems })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn zero_length_and_foreign_files_are_refused_and_left_alone() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("dams.sqlite");
        std::fs::write(&p, b"").unwrap();
        let e = Store::open(&p).err().expect("a zero-length store must be refused");
        let msg = e.to_string();
        assert!(msg.contains(&p.display().to_string()) && msg.contains("empty"), "{msg}");
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 0, "the file was not recreated");

        std::fs::write(&p, b"id,segment_path\n1,x.wav\n").unwrap();
        let msg = Store::open(&p).err().unwrap().to_string();
        assert!(msg.contains("not a SQLite database"), "{msg}");
        assert_eq!(std::fs::read(&p).unwrap(), b"id,segment_path\n1,x.wav\n");
    }

    /// Damage the table pages of a real store: open refuses it (quick_check), `dams check` reports
    /// it and leaves the marker, and the marker keeps refusing the store until a check passes.
    #[test]
    fn a_damaged_store_is_refused_until_check_passes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("dams.sqlite");
        {
            let mut s = Store::open(&p).unwrap();
            let rows: Vec<_> = (0..3000)
                .map(|i| crate::store::NewSegment {
                    segment_path: format!("segments/x{i:05}.wav"),
                    raw_file: "r.flac".into(),
                    start_time: i as f64,
                    end_time: i as f64 + 10.0,
                    split: crate::labels::Split::Dev,
                    label_source: crate::labels::LabelSource::none(),
                    labels: None,
                    scores: [None; 3],
                    extra: None,
                })
                .collect();
            s.upsert_segments(&rows).unwrap();
            s.conn().execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        }
        let good = full_check(&p).unwrap();
        assert!(good.ok(), "{:?}", good.problems);
        // Overwrite the middle of the file (B-tree pages) with garbage, keeping the header.
        let mut bytes = std::fs::read(&p).unwrap();
        assert!(bytes.len() > 64 * 1024, "{}", bytes.len());
        let mid = bytes.len() / 2;
        for b in &mut bytes[mid..mid + 16 * 1024] {
            *b = 0x5a;
        }
        std::fs::write(&p, &bytes).unwrap();
        let bad = full_check(&p).unwrap();
        assert!(!bad.ok(), "damage not found");
        assert!(failed_marker(&p).exists());
        let msg = Store::open(&p).err().expect("refused").to_string();
        assert!(msg.contains("dams check") && msg.contains(&p.display().to_string()), "{msg}");
        // A repaired store (here: the marker of a store that now passes) opens again.
        std::fs::remove_file(&p).unwrap();
        Store::open(&p).err().expect("the marker still refuses a new file under that name");
        std::fs::remove_file(failed_marker(&p)).unwrap();
        Store::open(&p).unwrap();
        assert!(full_check(&p).unwrap().ok());
        assert!(!failed_marker(&p).exists());
    }

    #[test]
    fn quick_check_refuses_damage_on_open() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("q.sqlite");
        {
            let mut s = Store::open(&p).unwrap();
            s.conn_mut()
                .execute_batch(
                    "CREATE TABLE filler (x TEXT); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 4000) \
                     INSERT INTO filler SELECT printf('%0200d', i) FROM n; PRAGMA wal_checkpoint(TRUNCATE);",
                )
                .unwrap();
        }
        let mut bytes = std::fs::read(&p).unwrap();
        let mid = bytes.len() * 3 / 4;
        for b in &mut bytes[mid..mid + 8192] {
            *b = 0xff;
        }
        // A path this process never opened (the check runs once per store and process).
        let damaged = d.path().join("damaged.sqlite");
        std::fs::write(&damaged, &bytes).unwrap();
        let msg = Store::open(&damaged).err().expect("quick_check must refuse it").to_string();
        assert!(msg.contains(&damaged.display().to_string()) && msg.contains("damaged"), "{msg}");
    }
}
