//! A dams workspace: a folder laid out like the DAMS project.
//!
//! ```text
//! <root>/data/raw/                     long-form recordings
//! <root>/data/segments/                10 s windows (<stem>_sNNNN.wav)
//! <root>/data/metadata/                manifest CSVs, dams.sqlite
//! <root>/data/metadata/experiments/    dated snapshots of label sets
//! ```

use std::path::{Component, Path, PathBuf};

use thiserror::Error;

use crate::store::{Store, StoreError};

#[derive(Debug, Error)]
pub enum WorkspaceError {
    #[error("{0} is not a dams workspace (no data/metadata folder); create one with `dams init {0}`")]
    NotAWorkspace(String),
    #[error("cannot create workspace at {path}: {source}")]
    Create { path: String, source: std::io::Error },
    #[error("path '{0}' resolves outside the workspace's data root")]
    Escapes(String),
    #[error("path '{0}' is empty")]
    EmptyPath(String),
    #[error("the path is {0} bytes long; at most {max} are accepted", max = MAX_PATH_BYTES)]
    TooLong(usize),
    #[error("the path contains a control character ({0}) at byte {1}; paths must be printable")]
    ControlChar(String, usize),
    #[error("'{0}' does not name a file in a folder of data/ (like segments/x.wav or raw/show.flac)")]
    NotAFile(String),
    #[error("'{path}' is a symbolic link that resolves outside the workspace's data root (to {real})")]
    LinkEscapes { path: String, real: String },
    #[error("'{0}' is a symbolic link to nothing")]
    DanglingLink(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
}

pub const DB_FILE: &str = "dams.sqlite";

/// The longest path (in bytes) a manifest or the store may name.
pub const MAX_PATH_BYTES: usize = 4096;

impl Workspace {
    /// Create (or complete) the workspace layout under `root`.
    pub fn init(root: impl AsRef<Path>) -> Result<Workspace, WorkspaceError> {
        let ws = Workspace { root: absolute(root.as_ref()) };
        for d in [ws.raw_dir(), ws.segments_dir(), ws.metadata_dir(), ws.experiments_dir()] {
            std::fs::create_dir_all(&d)
                .map_err(|source| WorkspaceError::Create { path: d.display().to_string(), source })?;
        }
        // Create the database (and run migrations) right away so `init` leaves a complete workspace.
        ws.open_store()?;
        Ok(ws)
    }

    /// Open an existing workspace.
    pub fn open(root: impl AsRef<Path>) -> Result<Workspace, WorkspaceError> {
        let ws = Workspace { root: absolute(root.as_ref()) };
        if !ws.metadata_dir().is_dir() {
            return Err(WorkspaceError::NotAWorkspace(root.as_ref().display().to_string()));
        }
        Ok(ws)
    }

    /// The workspace at `dir` or any of its parents, if there is one.
    pub fn discover(dir: impl AsRef<Path>) -> Option<Workspace> {
        let mut cur = Some(absolute(dir.as_ref()));
        while let Some(d) = cur {
            if d.join("data").join("metadata").is_dir() {
                return Some(Workspace { root: d });
            }
            cur = d.parent().map(Path::to_path_buf);
        }
        None
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }
    pub fn raw_dir(&self) -> PathBuf {
        self.data_dir().join("raw")
    }
    pub fn segments_dir(&self) -> PathBuf {
        self.data_dir().join("segments")
    }
    pub fn metadata_dir(&self) -> PathBuf {
        self.data_dir().join("metadata")
    }
    pub fn experiments_dir(&self) -> PathBuf {
        self.metadata_dir().join("experiments")
    }
    pub fn db_path(&self) -> PathBuf {
        self.metadata_dir().join(DB_FILE)
    }

    /// Open the workspace's store (refused if it is lost or damaged, see
    /// [`crate::store::integrity`]); the first open in a process also cleans crash leftovers
    /// ([`crate::recovery`]).
    pub fn open_store(&self) -> Result<Store, StoreError> {
        let mut store = Store::open(self.db_path())?;
        crate::recovery::on_open(self, &mut store);
        Ok(store)
    }

    /// Normalise a manifest path to its data-relative form (`segments/x.wav`).
    ///
    /// Accepted: paths relative to `data/` (`segments/x.wav`, `raw/show.flac`), bare file names
    /// (resolved under `data/segments/`), and absolute paths inside the data root. Anything that
    /// resolves outside the data root (`../x`, `/etc/passwd`, `segments/../../x`) is refused.
    pub fn normalize_data_path(&self, p: &str) -> Result<String, WorkspaceError> {
        normalize_data_path(&self.data_dir(), p)
    }

    /// Absolute path of a data-relative path that was normalised by [`normalize_data_path`].
    pub fn abs_data_path(&self, rel: &str) -> PathBuf {
        self.data_dir().join(rel)
    }

    /// Resolve a manifest or stored path to the real file it names, for reading: symbolic links
    /// are resolved and the result must lie under the data root (see [`crate::containment`]).
    pub fn resolve_data_path(&self, p: &str) -> Result<PathBuf, WorkspaceError> {
        let rel = self.normalize_data_path(p)?;
        let data = self.data_dir();
        crate::containment::real_path_under(&data, &crate::containment::real_root(&data), &rel)
    }
}

/// See [`Workspace::normalize_data_path`]; a free function so it can be tested without a workspace.
pub fn normalize_data_path(data_root: &Path, p: &str) -> Result<String, WorkspaceError> {
    check_path_text(p)?;
    let trimmed = p.trim();
    if trimmed.is_empty() {
        return Err(WorkspaceError::EmptyPath(p.to_string()));
    }
    // A path that ends in a separator, `.` or `..` names a folder.
    if trimmed.ends_with(['/', '\\']) || matches!(trimmed.rsplit(['/', '\\']).next(), Some("." | "..")) {
        return Err(WorkspaceError::NotAFile(trimmed.to_string()));
    }
    // Manifests written on Windows may use backslashes.
    let unified = trimmed.replace('\\', "/");
    let path = Path::new(&unified);
    let rel: PathBuf = if path.is_absolute() {
        let root = absolute(data_root);
        match lexical_normalize(path) {
            Some(n) => match n.strip_prefix(&root) {
                Ok(r) => r.to_path_buf(),
                Err(_) => return Err(WorkspaceError::Escapes(p.to_string())),
            },
            None => return Err(WorkspaceError::Escapes(p.to_string())),
        }
    } else if path.components().count() == 1 {
        Path::new("segments").join(path)
    } else {
        path.to_path_buf()
    };
    let normalized = lexical_normalize(&rel).ok_or_else(|| WorkspaceError::Escapes(p.to_string()))?;
    if normalized.as_os_str().is_empty() || normalized.is_absolute() {
        return Err(WorkspaceError::Escapes(p.to_string()));
    }
    let parts: Vec<String> = normalized.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    // Stored paths name a file in a folder of data/ (`segments/x.wav`, `raw/show.flac`). A file
    // directly in data/ would read back as `segments/<name>` (a bare name means that), so two
    // spellings would name two files: refused, which keeps normalisation idempotent.
    if parts.len() < 2 {
        return Err(WorkspaceError::NotAFile(trimmed.to_string()));
    }
    Ok(parts.join("/"))
}

/// Refuse path text that no file name of a manifest should have: over [`MAX_PATH_BYTES`], or with a
/// control character (line feed, tab, NUL, ...) anywhere but surrounding whitespace.
pub fn check_path_text(p: &str) -> Result<(), WorkspaceError> {
    if p.len() > MAX_PATH_BYTES {
        return Err(WorkspaceError::TooLong(p.len()));
    }
    let t = p.trim();
    let lead = p.len() - p.trim_start().len();
    if let Some((i, c)) = t.char_indices().find(|(_, c)| c.is_control()) {
        return Err(WorkspaceError::ControlChar(c.escape_default().to_string(), lead + i + 1));
    }
    Ok(())
}

/// Resolve `.` and `..` without touching the file system; `None` if `..` climbs above the start.
fn lexical_normalize(p: &Path) -> Option<PathBuf> {
    let mut out: Vec<Component> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                _ => return None,
            },
            other => out.push(other),
        }
    }
    Some(out.iter().collect())
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        lexical_normalize(p).unwrap_or_else(|| p.to_path_buf())
    } else {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        lexical_normalize(&cwd.join(p)).unwrap_or_else(|| cwd.join(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_refuses_escapes() {
        let root = Path::new("/w/data");
        assert_eq!(normalize_data_path(root, "x.wav").unwrap(), "segments/x.wav");
        assert_eq!(normalize_data_path(root, "segments/x.wav").unwrap(), "segments/x.wav");
        assert_eq!(normalize_data_path(root, "./segments/./x.wav").unwrap(), "segments/x.wav");
        assert_eq!(normalize_data_path(root, "raw/a/b.flac").unwrap(), "raw/a/b.flac");
        assert_eq!(normalize_data_path(root, "/w/data/segments/y.wav").unwrap(), "segments/y.wav");
        assert_eq!(normalize_data_path(root, "segments\\z.wav").unwrap(), "segments/z.wav");
        for bad in ["../x.wav", "segments/../../x.wav", "/etc/passwd", "/w/data/../secret.wav", "..", ""] {
            assert!(normalize_data_path(root, bad).is_err(), "{bad} should be refused");
        }
    }

    /// One file is one row: every spelling of a file normalises to the same text, and that text
    /// normalises to itself; folders, dot paths and files directly in data/ are refused.
    #[test]
    fn normalisation_is_idempotent_and_refuses_folders() {
        let root = Path::new("/w/data");
        for p in ["x.wav", "segments/x.wav", "./segments/x.wav", "segments/sub/../x.wav", "/w/data/segments/x.wav"] {
            let n = normalize_data_path(root, p).unwrap();
            assert_eq!(n, "segments/x.wav", "{p}");
            assert_eq!(normalize_data_path(root, &n).unwrap(), n);
        }
        for bad in [".", "./", "segments/", "segments/.", "segments/x/..", "segments/../x.wav", "/w/data/x.wav"] {
            let e = normalize_data_path(root, bad).unwrap_err();
            assert!(matches!(e, WorkspaceError::NotAFile(_)), "{bad}: {e}");
        }
    }

    #[test]
    fn refuses_control_characters_and_overlong_paths() {
        let root = Path::new("/w/data");
        for (bad, at) in [("seg\nments/x.wav", 4), ("segments/x\t.wav", 11), ("x\0.wav", 2), ("a\u{85}b.wav", 2)] {
            match normalize_data_path(root, bad) {
                Err(WorkspaceError::ControlChar(_, i)) => assert_eq!(i, at, "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        // Surrounding whitespace (a CSV cell's trailing CR) is trimmed, not refused.
        assert_eq!(normalize_data_path(root, " x.wav\r").unwrap(), "segments/x.wav");
        let long = format!("segments/{}.wav", "a".repeat(MAX_PATH_BYTES));
        assert!(matches!(normalize_data_path(root, &long), Err(WorkspaceError::TooLong(n)) if n == long.len()));
        let edge = format!("segments/{}", "a".repeat(MAX_PATH_BYTES - 9));
        assert_eq!(edge.len(), MAX_PATH_BYTES);
        assert!(normalize_data_path(root, &edge).is_ok());
    }
}
