//! Containment by the real file: a data-relative path is accepted only if the file it names —
//! after every symbolic link is resolved — lies under the workspace's data root.
//!
//! The lexical check of [`crate::workspace::normalize_data_path`] refuses `../x` and absolute
//! paths outside `data/`; this module refuses what the text cannot show: a symlink inside
//! `data/segments` to a file or a folder elsewhere (`/etc/passwd`, `/home/other`). It runs at
//! import (where the file may not exist yet: then its deepest existing ancestor is checked) and
//! again at every read of a segment's audio, so a link created after import is refused too.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::workspace::WorkspaceError;

/// The real (canonical) form of the data root, or the root itself if it cannot be resolved.
pub fn real_root(data_root: &Path) -> PathBuf {
    std::fs::canonicalize(data_root).unwrap_or_else(|_| data_root.to_path_buf())
}

fn escapes(rel: &str, real: &Path) -> WorkspaceError {
    WorkspaceError::LinkEscapes { path: rel.to_string(), real: real.display().to_string() }
}

/// Resolve the data-relative path `rel` (already lexically normalised) to its real location and
/// require it under `root_real` (see [`real_root`]). A path that does not exist yet resolves
/// through its deepest existing ancestor (which must be inside); a dangling symbolic link is
/// refused, since what it would point to cannot be checked.
pub fn real_path_under(data_root: &Path, root_real: &Path, rel: &str) -> Result<PathBuf, WorkspaceError> {
    let abs = data_root.join(rel);
    match std::fs::canonicalize(&abs) {
        Ok(real) => {
            if real.starts_with(root_real) {
                Ok(real)
            } else {
                Err(escapes(rel, &real))
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            // Not there. A link that points nowhere is refused; otherwise check the part that exists.
            if std::fs::symlink_metadata(&abs).is_ok() {
                return Err(WorkspaceError::DanglingLink(rel.to_string()));
            }
            for anc in abs.ancestors().skip(1) {
                match std::fs::canonicalize(anc) {
                    Ok(real) => {
                        if !real.starts_with(root_real) {
                            return Err(escapes(rel, &real));
                        }
                        let rest = abs.strip_prefix(anc).unwrap_or(Path::new(""));
                        return Ok(real.join(rest));
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        if std::fs::symlink_metadata(anc).is_ok() {
                            return Err(WorkspaceError::DanglingLink(rel.to_string()));
                        }
                    }
                    Err(e) => return Err(WorkspaceError::Io { path: anc.display().to_string(), source: e }),
                }
            }
            Ok(abs)
        }
        Err(e) => Err(WorkspaceError::Io { path: abs.display().to_string(), source: e }),
    }
}

/// The import-time check, with the folders' verdicts cached so a million rows in one folder cost
/// one `lstat` each (a symlinked row pays a full resolution).
pub struct ContainmentCheck {
    data_root: PathBuf,
    root_real: PathBuf,
    dirs: HashMap<String, Result<(), String>>,
}

impl ContainmentCheck {
    pub fn new(data_root: &Path) -> ContainmentCheck {
        ContainmentCheck { data_root: data_root.to_path_buf(), root_real: real_root(data_root), dirs: HashMap::new() }
    }

    /// Check a normalised data-relative path; the error is a message for the manifest's problem list.
    pub fn check(&mut self, rel: &str) -> Result<(), String> {
        let (dir, _) = rel.rsplit_once('/').unwrap_or(("", rel));
        if !self.dirs.contains_key(dir) {
            let verdict = if dir.is_empty() {
                Ok(())
            } else {
                real_path_under(&self.data_root, &self.root_real, dir).map(|_| ()).map_err(|e| e.to_string())
            };
            self.dirs.insert(dir.to_string(), verdict);
        }
        if let Some(Err(e)) = self.dirs.get(dir) {
            return Err(e.clone());
        }
        let abs = self.data_root.join(rel);
        match std::fs::symlink_metadata(&abs) {
            Err(_) => Ok(()), // not there (yet): its folder is inside
            Ok(m) if m.file_type().is_symlink() => {
                let real = real_path_under(&self.data_root, &self.root_real, rel).map_err(|e| e.to_string())?;
                if real.is_dir() {
                    return Err(format!("'{rel}' is a folder, not an audio file"));
                }
                Ok(())
            }
            Ok(m) if m.is_dir() => Err(format!("'{rel}' is a folder, not an audio file")),
            Ok(_) => Ok(()),
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn layout() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("ws/data");
        std::fs::create_dir_all(data.join("segments")).unwrap();
        let outside = d.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.wav"), b"secret").unwrap();
        std::fs::write(data.join("segments/ok.wav"), b"ok").unwrap();
        (d, data, outside)
    }

    #[test]
    fn symlinks_out_of_the_data_root_are_refused() {
        let (_d, data, outside) = layout();
        symlink(outside.join("secret.wav"), data.join("segments/file_link.wav")).unwrap();
        symlink(&outside, data.join("segments/dir_link")).unwrap();
        symlink(outside.join("gone.wav"), data.join("segments/dangling.wav")).unwrap();
        symlink(data.join("segments/ok.wav"), data.join("segments/inside_link.wav")).unwrap();
        let root = real_root(&data);
        for bad in ["segments/file_link.wav", "segments/dir_link/secret.wav", "segments/dir_link/new.wav"] {
            let e = real_path_under(&data, &root, bad).unwrap_err();
            assert!(matches!(e, WorkspaceError::LinkEscapes { .. }), "{bad}: {e}");
            assert!(e.to_string().contains("outside"), "{e}");
        }
        assert!(matches!(real_path_under(&data, &root, "segments/dangling.wav"), Err(WorkspaceError::DanglingLink(_))));
        // Inside links and not-yet-existing files are fine.
        assert_eq!(real_path_under(&data, &root, "segments/inside_link.wav").unwrap(), root.join("segments/ok.wav"));
        assert_eq!(real_path_under(&data, &root, "segments/new.wav").unwrap(), root.join("segments/new.wav"));
        assert_eq!(real_path_under(&data, &root, "raw/a/b.flac").unwrap(), root.join("raw/a/b.flac"));

        let mut c = ContainmentCheck::new(&data);
        assert!(c.check("segments/ok.wav").is_ok());
        assert!(c.check("segments/not_yet.wav").is_ok());
        assert!(c.check("segments/inside_link.wav").is_ok());
        assert!(c.check("segments/file_link.wav").unwrap_err().contains("outside"));
        assert!(c.check("segments/dir_link/secret.wav").unwrap_err().contains("outside"));
        assert!(c.check("segments/dir_link/again.wav").is_err(), "cached folder verdict");
        assert!(c.check("segments/dangling.wav").is_err());
        std::fs::create_dir_all(data.join("segments/sub")).unwrap();
        assert!(c.check("segments/sub").unwrap_err().contains("folder"));
    }
}
