//! Crash leftovers, cleaned by whichever dams process opens a workspace first (CLI or TUI):
//!
//! - temporary `.part` files under `data/raw/` and `data/segments/` whose writer is gone
//!   (`.<name>.<pid>.part`, see [`crate::audio::write_wav_16k`]; pid-less `*.part` files once
//!   they are an hour old);
//! - job rows left `running` by a process that is gone (marked `interrupted`), and the teacher
//!   runs they left `running`;
//! - a manifest import whose apply was cut off: finished from its stage
//!   ([`crate::store::import_apply::resume_interrupted`]), with a line on stderr.
//!
//! It runs once per workspace and process, from [`crate::workspace::Workspace::open_store`].
//! Nothing here is fatal: a store that is busy (a long import) is left for the next open.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use crate::store::Store;
use crate::workspace::Workspace;

/// Jobs marked interrupted by this process's opens, per workspace, not yet announced (see
/// [`take_interrupted`]).
fn interrupted() -> &'static Mutex<HashMap<PathBuf, usize>> {
    static INTERRUPTED: OnceLock<Mutex<HashMap<PathBuf, usize>>> = OnceLock::new();
    INTERRUPTED.get_or_init(|| Mutex::new(HashMap::new()))
}

/// A pid-less `.part` file younger than this may still be written by someone.
const PIDLESS_PART_AGE: Duration = Duration::from_secs(3600);

/// How many jobs of earlier sessions were marked interrupted in `ws` by this process (at its
/// first open, or now), and reset the count: the TUI announces them.
pub fn take_interrupted(ws: &Workspace, store: &mut Store) -> usize {
    let now = if needs_marking(store) { store.mark_interrupted_jobs().unwrap_or(0) } else { 0 };
    let before = interrupted().lock().map(|mut m| m.remove(ws.root()).unwrap_or(0)).unwrap_or(0);
    before + now
}

fn done() -> &'static Mutex<HashSet<PathBuf>> {
    static DONE: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    DONE.get_or_init(|| Mutex::new(HashSet::new()))
}

/// What one recovery pass did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recovered {
    pub removed_parts: Vec<PathBuf>,
    pub interrupted_jobs: usize,
    /// What happened to imports that were cut off.
    pub imports: Vec<String>,
}

/// Recover `ws` once per process (later calls do nothing).
pub fn on_open(ws: &Workspace, store: &mut Store) -> Recovered {
    let first = done().lock().map(|mut s| s.insert(ws.root().to_path_buf())).unwrap_or(false);
    if !first {
        return Recovered::default();
    }
    recover(ws, store)
}

/// One recovery pass (tests call it directly).
pub fn recover(ws: &Workspace, store: &mut Store) -> Recovered {
    let mut removed_parts = remove_stale_parts(&ws.raw_dir());
    removed_parts.extend(remove_stale_parts(&ws.segments_dir()));
    let interrupted_jobs = if needs_marking(store) { store.mark_interrupted_jobs().unwrap_or(0) } else { 0 };
    if interrupted_jobs > 0
        && let Ok(mut m) = interrupted().lock()
    {
        *m.entry(ws.root().to_path_buf()).or_default() += interrupted_jobs;
    }
    let imports = if crate::store::import_apply::any_unfinished(store) {
        match crate::store::import_apply::resume_interrupted(store) {
            Ok(lines) => lines,
            Err(e) => vec![format!("could not finish an import that was cut off: {e}")],
        }
    } else {
        Vec::new()
    };
    for l in &imports {
        eprintln!("dams: {l}");
    }
    removed_parts.extend(remove_stale_stages(&ws.metadata_dir(), store));
    Recovered { removed_parts, interrupted_jobs, imports }
}

/// Whether [`Store::mark_interrupted_jobs`] has anything to write (it takes the write lock, which a
/// long writer may hold: only ask for it when needed).
fn needs_marking(store: &Store) -> bool {
    let me = std::process::id() as i64;
    let jobs: Vec<Option<i64>> = match store.conn().prepare("SELECT pid FROM jobs WHERE state IN ('running','queued')")
    {
        Ok(mut s) => match s.query_map([], |r| r.get::<_, Option<i64>>(0)) {
            Ok(rows) => rows.filter_map(|r| r.ok()).collect(),
            Err(_) => return false,
        },
        Err(_) => return false,
    };
    if jobs.iter().any(|p| match p {
        Some(p) => *p != me && !crate::store::lease::pid_alive(*p),
        None => true,
    }) {
        return true;
    }
    // Runs left running with no scoring job at all.
    store
        .conn()
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM teacher_runs WHERE state = 'running') AND NOT EXISTS \
             (SELECT 1 FROM jobs WHERE state = 'running' AND kind = 'score')",
            [],
            |r| r.get::<_, bool>(0),
        )
        .unwrap_or(false)
}

/// Remove import stages (`.import-<pid>-<n>.stage`) of a process that is gone and that no
/// unfinished apply refers to (an import cut off while it was still reading its file).
fn remove_stale_stages(dir: &Path, store: &Store) -> Vec<PathBuf> {
    let me = std::process::id() as i64;
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(".import-").and_then(|r| r.strip_suffix(".stage")) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i64>().ok()) else { continue };
        if pid == me || crate::store::lease::pid_alive(pid) {
            continue;
        }
        let path = e.path();
        let referenced = store
            .conn()
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM import_applies WHERE stage = ?1)",
                [path.to_string_lossy().into_owned()],
                |r| r.get::<_, bool>(0),
            )
            .unwrap_or(false);
        if !referenced && std::fs::remove_file(&path).is_ok() {
            out.push(path);
        }
    }
    out
}

/// The writer's pid of a `.<name>.<pid>.part` file, if the name has one.
fn part_pid(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".part")?;
    let (_, pid) = stem.rsplit_once('.')?;
    pid.parse().ok()
}

/// Remove `.part` files under `dir` (recursively, links not followed) whose writer is gone.
pub fn remove_stale_parts(dir: &Path) -> Vec<PathBuf> {
    let me = std::process::id() as i64;
    let mut removed = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let path = e.path();
            if ft.is_dir() {
                if depth < 16 {
                    stack.push((path, depth + 1));
                }
                continue;
            }
            if !ft.is_file() {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".part") {
                continue;
            }
            let stale = match part_pid(&name) {
                Some(pid) => pid != me && !crate::store::lease::pid_alive(pid),
                None => e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .is_some_and(|age| age > PIDLESS_PART_AGE),
            };
            if stale && std::fs::remove_file(&path).is_ok() {
                removed.push(path);
            }
        }
    }
    removed.sort();
    removed
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn stale_parts_and_dead_jobs_are_cleaned_on_open() {
        let d = tempfile::tempdir().unwrap();
        let ws = Workspace::init(d.path()).unwrap();
        let dead = 2_147_483_000i64;
        let parent = unsafe { libc::getppid() } as i64;
        let me = std::process::id();
        let stale_seg = ws.segments_dir().join(format!(".x_s0001.wav.{dead}.part"));
        let stale_raw = ws.raw_dir().join(format!("sub/.show.flac.{dead}.part"));
        let live = ws.segments_dir().join(format!(".x_s0002.wav.{parent}.part"));
        let mine = ws.segments_dir().join(format!(".x_s0003.wav.{me}.part"));
        let young_pidless = ws.raw_dir().join("show.part");
        let keep = ws.segments_dir().join("x_s0001.wav");
        std::fs::create_dir_all(ws.raw_dir().join("sub")).unwrap();
        for p in [&stale_seg, &stale_raw, &live, &mine, &young_pidless, &keep] {
            std::fs::write(p, b"x").unwrap();
        }
        let mut store = Store::open(ws.db_path()).unwrap();
        let job = store.create_job("segment", "{}", None).unwrap();
        store.conn().execute("UPDATE jobs SET pid = ?1 WHERE id = ?2", [dead, job]).unwrap();
        let r = recover(&ws, &mut store);
        assert_eq!(r.removed_parts, vec![stale_raw.clone(), stale_seg.clone()]);
        assert!(!stale_seg.exists() && !stale_raw.exists());
        assert!(live.exists() && mine.exists() && young_pidless.exists() && keep.exists());
        assert_eq!(r.interrupted_jobs, 1);
        assert_eq!(store.jobs(5).unwrap()[0].state, "interrupted");
        // A second pass finds nothing.
        assert_eq!(recover(&ws, &mut store), Recovered::default());
    }

    #[test]
    fn part_names() {
        assert_eq!(part_pid(".a.wav.123.part"), Some(123));
        assert_eq!(part_pid("a.part"), None);
        assert_eq!(part_pid(".a.wav.x.part"), None);
        assert_eq!(part_pid("a.wav"), None);
    }
}
