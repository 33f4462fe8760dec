//! The embedded demo workspace, unpacked into the user's data dir on first use.
use anyhow::Result;

use crate::config::Dirs;
use crate::workspace::Workspace;

/// The demo workspace, created from the embedded data if it does not exist yet (or `reset`).
pub fn ensure(dirs: &Dirs, reset: bool) -> Result<Workspace> {
    let root = dirs.demo_workspace();
    if reset && root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    Ok(Workspace::init(&root)?)
}
