//! The Hugging Face hub cache, in the layout `huggingface_hub` (and so Python `transformers`) uses, so a checkpoint
//! the user already downloaded with Python is found without downloading it again, and what `dams teachers pull`
//! downloads is found by Python:
//!
//! ```text
//! <cache>/models--<org>--<name>/refs/<revision>          the commit a revision points to
//! <cache>/models--<org>--<name>/blobs/<etag>             file contents, named by their ETag (sha256 for LFS files)
//! <cache>/models--<org>--<name>/snapshots/<commit>/<f>   relative symlinks into blobs/
//! ```
//!
//! The cache is `HF_HUB_CACHE`, else `HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else
//! `~/.cache/huggingface/hub`; files come from `HF_ENDPOINT` (default `https://huggingface.co`) as
//! `<endpoint>/<repo>/resolve/<revision>/<file>`; `HF_HUB_OFFLINE=1` never touches the network; `HF_TOKEN` is sent
//! as a bearer token when set.

use std::path::{Path, PathBuf};

use super::weights::WeightsError;
use super::weights::install::download_to;

/// The default hub endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// A hub cache folder and how to reach the hub.
#[derive(Debug, Clone)]
pub struct HubCache {
    pub root: PathBuf,
    pub endpoint: String,
    pub offline: bool,
    pub token: Option<String>,
}

fn env_nonempty(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.trim().is_empty())
}

impl HubCache {
    /// The cache and endpoint the environment names (the same variables `huggingface_hub` reads).
    pub fn from_env() -> HubCache {
        let root = env_nonempty("HF_HUB_CACHE")
            .map(PathBuf::from)
            .or_else(|| env_nonempty("HF_HOME").map(|h| PathBuf::from(h).join("hub")))
            .or_else(|| env_nonempty("XDG_CACHE_HOME").map(|x| PathBuf::from(x).join("huggingface").join("hub")))
            .or_else(|| env_nonempty("HOME").map(|h| PathBuf::from(h).join(".cache").join("huggingface").join("hub")))
            .unwrap_or_else(|| PathBuf::from(".cache/huggingface/hub"));
        let offline = env_nonempty("HF_HUB_OFFLINE")
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"));
        HubCache {
            root,
            endpoint: env_nonempty("HF_ENDPOINT")
                .unwrap_or_else(|| DEFAULT_ENDPOINT.into())
                .trim_end_matches('/')
                .into(),
            offline,
            token: env_nonempty("HF_TOKEN"),
        }
    }

    /// A cache at `root` reaching `endpoint` (tests).
    pub fn at(root: impl Into<PathBuf>, endpoint: &str) -> HubCache {
        HubCache { root: root.into(), endpoint: endpoint.trim_end_matches('/').into(), offline: false, token: None }
    }

    /// `models--<org>--<name>` of a repo id.
    pub fn repo_dir(&self, repo: &str) -> PathBuf {
        self.root.join(format!("models--{}", repo.replace('/', "--")))
    }

    /// The snapshot folder of `revision` (a branch/tag through `refs/`, or a commit), if the cache has one holding
    /// every file in `files`.
    pub fn find(&self, repo: &str, revision: &str, files: &[&str]) -> Option<PathBuf> {
        let dir = self.repo_dir(repo);
        let commit = if is_commit(revision) {
            revision.to_string()
        } else {
            std::fs::read_to_string(dir.join("refs").join(revision)).ok()?.trim().to_string()
        };
        if commit.is_empty() || commit.contains(['/', '\\']) || commit.starts_with('.') {
            return None;
        }
        let snap = dir.join("snapshots").join(commit);
        files.iter().all(|f| snap.join(f).is_file()).then_some(snap)
    }

    /// Make sure `files` of `repo@revision` are in the cache (downloading what is missing, unless offline) and
    /// return the snapshot folder. LFS files are checked against the sha256 the hub sends as their ETag; a file is
    /// published into `blobs/` only once complete, so an interrupted download is never mistaken for a finished one.
    /// `progress(file, bytes so far, total)`.
    pub fn fetch(
        &self,
        repo: &str,
        revision: &str,
        files: &[&str],
        mut progress: impl FnMut(&str, u64, Option<u64>),
    ) -> Result<PathBuf, WeightsError> {
        if let Some(s) = self.find(repo, revision, files) {
            return Ok(s);
        }
        if self.offline {
            return Err(WeightsError(format!(
                "{repo}@{revision} is not in the Hugging Face cache {} and HF_HUB_OFFLINE is set",
                self.root.display()
            )));
        }
        let dir = self.repo_dir(repo);
        let blobs = dir.join("blobs");
        std::fs::create_dir_all(&blobs).map_err(|e| WeightsError(format!("cannot create {}: {e}", blobs.display())))?;
        let agent: ureq::Agent =
            ureq::Agent::config_builder().timeout_connect(Some(std::time::Duration::from_secs(30))).build().into();
        let mut commit: Option<String> = None;
        let mut fetched: Vec<(String, String)> = Vec::new(); // (file, blob name)
        for f in files {
            let url = format!("{}/{repo}/resolve/{revision}/{f}", self.endpoint);
            let mut req = agent.get(&url);
            if let Some(t) = &self.token {
                req = req.header("authorization", &format!("Bearer {t}"));
            }
            let resp = req.call().map_err(|e| WeightsError(format!("cannot download {url}: {e}")))?;
            let header = |h: &str| resp.headers().get(h).and_then(|v| v.to_str().ok()).map(str::to_string);
            let c = header("x-repo-commit").filter(|c| is_commit(c));
            match (&commit, c) {
                (None, Some(c)) => commit = Some(c),
                (Some(a), Some(b)) if *a != b => {
                    return Err(WeightsError(format!(
                        "{repo}@{revision} changed while downloading (commit {a}, then {b}); run the pull again"
                    )));
                }
                _ => {}
            }
            let etag = ["x-linked-etag", "etag"]
                .iter()
                .find_map(|h| header(h))
                .map(|s| s.trim_start_matches("W/").trim_matches('"').to_ascii_lowercase())
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()));
            let len: Option<u64> = header("content-length").and_then(|v| v.parse().ok());
            let part = blobs.join(format!(".{}.incomplete-{}", f.replace('/', "_"), std::process::id()));
            let got = download_to(resp.into_body().into_reader(), &part, |n| progress(f, n, len));
            let (sha, n) = match got {
                Ok(x) => x,
                Err(e) => {
                    let _ = std::fs::remove_file(&part);
                    return Err(WeightsError(format!("download of {url} failed: {e}")));
                }
            };
            let fail = |m: String| {
                let _ = std::fs::remove_file(&part);
                WeightsError(m)
            };
            if let Some(l) = len
                && l != n
            {
                return Err(fail(format!("{url}: received {n} of {l} bytes (connection cut?); nothing was installed")));
            }
            // A 64-hex ETag is the file's sha256 (LFS); a 40-hex one is a git blob id, kept as the blob name only.
            if let Some(e) = etag.as_deref().filter(|e| e.len() == 64)
                && e != sha
            {
                return Err(fail(format!(
                    "{url}: checksum mismatch (server says sha256 {e}, received {sha}); nothing was installed"
                )));
            }
            let blob = etag.unwrap_or_else(|| sha.clone());
            std::fs::rename(&part, blobs.join(&blob)).map_err(|e| fail(format!("cannot store {url}: {e}")))?;
            fetched.push((f.to_string(), blob));
        }
        // Without a commit from the server, the snapshot is named by the revision (still found through refs/).
        let commit = commit.unwrap_or_else(|| revision.replace(['/', '\\'], "_"));
        let snap = dir.join("snapshots").join(&commit);
        for (f, blob) in &fetched {
            let link = snap.join(f);
            if let Some(p) = link.parent() {
                std::fs::create_dir_all(p).map_err(|e| WeightsError(format!("cannot create {}: {e}", p.display())))?;
            }
            let _ = std::fs::remove_file(&link);
            let depth = f.matches('/').count();
            let target = Path::new(&"../".repeat(2 + depth)).join("blobs").join(blob);
            link_or_copy(&target, &blobs.join(blob), &link)?;
        }
        if !is_commit(revision) || revision != commit {
            let refs = dir.join("refs");
            std::fs::create_dir_all(&refs)
                .map_err(|e| WeightsError(format!("cannot create {}: {e}", refs.display())))?;
            std::fs::write(refs.join(revision.replace(['/', '\\'], "_")), &commit)
                .map_err(|e| WeightsError(format!("cannot write {}: {e}", refs.display())))?;
        }
        Ok(snap)
    }
}

#[cfg(unix)]
fn link_or_copy(target: &Path, _blob: &Path, link: &Path) -> Result<(), WeightsError> {
    std::os::unix::fs::symlink(target, link).map_err(|e| WeightsError(format!("cannot link {}: {e}", link.display())))
}

#[cfg(not(unix))]
fn link_or_copy(_target: &Path, blob: &Path, link: &Path) -> Result<(), WeightsError> {
    std::fs::copy(blob, link).map(|_| ()).map_err(|e| WeightsError(format!("cannot write {}: {e}", link.display())))
}

/// A full 40-hex git commit id.
pub fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_snapshot_python_downloaded() {
        let root = tempfile::tempdir().unwrap();
        let hub = HubCache::at(root.path(), "http://127.0.0.1:9");
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let repo = hub.repo_dir("MIT/ast-x");
        assert!(repo.ends_with("models--MIT--ast-x"));
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), commit).unwrap();
        std::fs::create_dir_all(repo.join("blobs")).unwrap();
        std::fs::write(repo.join("blobs/abc"), "{}").unwrap();
        let snap = repo.join("snapshots").join(commit);
        std::fs::create_dir_all(&snap).unwrap();
        assert_eq!(hub.find("MIT/ast-x", "main", &["config.json"]), None);
        link_or_copy(Path::new("../../blobs/abc"), &repo.join("blobs/abc"), &snap.join("config.json")).unwrap();
        assert_eq!(hub.find("MIT/ast-x", "main", &["config.json"]), Some(snap.clone()));
        assert_eq!(hub.find("MIT/ast-x", commit, &["config.json"]), Some(snap.clone()));
        // Already cached: no network needed (the endpoint is unreachable).
        assert_eq!(hub.fetch("MIT/ast-x", "main", &["config.json"], |_, _, _| {}).unwrap(), snap);
        // Offline and missing: a clear error.
        let mut off = hub.clone();
        off.offline = true;
        let e = off.fetch("MIT/ast-x", "main", &["model.safetensors"], |_, _, _| {}).unwrap_err();
        assert!(e.0.contains("HF_HUB_OFFLINE"), "{e}");
    }
}
