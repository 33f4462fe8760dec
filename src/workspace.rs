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
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
}

pub const DB_FILE: &str = "dams.sqlite";

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

    pub fn open_store(&self) -> Result<Store, StoreError> {
        Store::open(self.db_path())
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

    /// Resolve a manifest path to an absolute path inside the data root.
    pub fn resolve_data_path(&self, p: &str) -> Result<PathBuf, WorkspaceError> {
        Ok(self.abs_data_path(&self.normalize_data_path(p)?))
    }
}

/// See [`Workspace::normalize_data_path`]; a free function so it can be tested without a workspace.
pub fn normalize_data_path(data_root: &Path, p: &str) -> Result<String, WorkspaceError> {
    let trimmed = p.trim();
    if trimmed.is_empty() {
        return Err(WorkspaceError::EmptyPath(p.to_string()));
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
    Ok(parts.join("/"))
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
}
