//! Installed checkpoints: `<model cache>/<teacher id>/{<files>, dams-install.json}`.
//!
//! `dams teachers add <id> --from DIR` checks a checkpoint folder with the teacher's own check (config valid, every
//! tensor present with the shape the config implies, values finite) and copies it in; `dams teachers pull <id>`
//! fills the Hugging Face cache first (see [`crate::teachers::hub`]) and installs from there. Installing goes
//! through a staging folder renamed into place, so a failed or interrupted install never replaces a working one.
//! The record holds where the files came from and their sha256, which identifies the teacher's runs; opening the
//! teacher verifies it (size and modification time; the full hash again when they changed).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::WeightsError;
use crate::teachers::descriptor::InstallSpec;

/// The record file in an install folder.
pub const RECORD: &str = "dams-install.json";

/// What `dams-install.json` records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstallRecord {
    /// Where the files came from (a folder, or `hf://<repo>@<commit>`).
    pub source: String,
    /// sha256 of the weights file (the last of the spec's files).
    pub sha256: String,
    /// sha256 of `config.json` (empty when there is none).
    #[serde(default)]
    pub config_sha256: String,
    /// Size of the weights file.
    pub bytes: u64,
    pub installed_at: String,
    /// sha256 of every installed file.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Modification time of the weights file when it was installed or last verified (nanoseconds since the epoch).
    #[serde(default)]
    pub mtime: u64,
}

/// The folder teacher `id` is installed in.
pub fn install_dir(id: &str, model_cache: &Path) -> PathBuf {
    model_cache.join(id)
}

/// The install record of `id`, if it is installed (record and every file present).
pub fn installed(id: &str, spec: &InstallSpec, model_cache: &Path) -> Option<InstallRecord> {
    let dir = install_dir(id, model_cache);
    let text = std::fs::read_to_string(dir.join(RECORD)).ok()?;
    let rec: InstallRecord = serde_json::from_str(&text).ok()?;
    spec.files.iter().all(|f| dir.join(f).is_file()).then_some(rec)
}

fn weights_file(spec: &InstallSpec) -> &'static str {
    spec.files.last().copied().unwrap_or("model.safetensors")
}

fn mtime_of(path: &Path) -> u64 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The install record of `id`, checked against the weights on disk: the same size and modification time as
/// recorded (cheap), or else the full sha256 again. Weights changed on disk after install are an error naming the
/// file, never used under the install-time checksum.
pub fn verified(id: &str, spec: &InstallSpec, model_cache: &Path) -> Result<Option<InstallRecord>, WeightsError> {
    let Some(mut rec) = installed(id, spec, model_cache) else { return Ok(None) };
    let path = install_dir(id, model_cache).join(weights_file(spec));
    let len =
        std::fs::metadata(&path).map(|m| m.len()).map_err(|e| WeightsError(format!("{}: {e}", path.display())))?;
    let mtime = mtime_of(&path);
    if len == rec.bytes && mtime == rec.mtime && rec.mtime != 0 {
        return Ok(Some(rec));
    }
    let sha = sha256_file(&path).map_err(|e| WeightsError(format!("{}: {e}", path.display())))?;
    if sha != rec.sha256 || len != rec.bytes {
        return Err(WeightsError(format!(
            "{} changed on disk after it was installed (sha256 {sha}, installed {}); reinstall it with \
             `dams teachers add {id} --from DIR` or `dams teachers pull {id}`",
            path.display(),
            rec.sha256
        )));
    }
    // Same content, new timestamp (copied, touched): remember it so the next open is cheap again.
    rec.mtime = mtime;
    if let Ok(json) = serde_json::to_string_pretty(&rec) {
        let _ = std::fs::write(install_dir(id, model_cache).join(RECORD), json);
    }
    Ok(Some(rec))
}

/// sha256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Check a checkpoint folder with the teacher's check and copy it into the model cache, replacing an older install
/// only once the new one is complete. `source` is recorded (defaults to the folder).
pub fn add_from(
    id: &str,
    spec: &InstallSpec,
    dir: &Path,
    model_cache: &Path,
    source: Option<String>,
) -> Result<InstallRecord, WeightsError> {
    for f in spec.files {
        if !dir.join(f).is_file() {
            return Err(WeightsError(format!("{} has no {f}", dir.display())));
        }
    }
    (spec.check)(dir).map_err(WeightsError)?;
    std::fs::create_dir_all(model_cache)
        .map_err(|e| WeightsError(format!("cannot create {}: {e}", model_cache.display())))?;
    let stage = model_cache.join(format!(".{id}-partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(&stage).map_err(|e| WeightsError(format!("cannot create {}: {e}", stage.display())))?;
    let result = (|| {
        let io = |e: std::io::Error| WeightsError(format!("installing into {}: {e}", model_cache.display()));
        let mut files = BTreeMap::new();
        for f in spec.files {
            // Through the hub cache's symlinks to the blob itself.
            std::fs::copy(dir.join(f), stage.join(f))
                .map_err(|e| WeightsError(format!("cannot copy {}: {e}", dir.join(f).display())))?;
            files.insert(f.to_string(), sha256_file(&stage.join(f)).map_err(io)?);
        }
        let w = stage.join(weights_file(spec));
        let rec = InstallRecord {
            source: source.clone().unwrap_or_else(|| {
                std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()).display().to_string()
            }),
            sha256: files[weights_file(spec)].clone(),
            config_sha256: files.get("config.json").cloned().unwrap_or_default(),
            bytes: std::fs::metadata(&w).map_err(io)?.len(),
            installed_at: chrono::Utc::now().to_rfc3339(),
            files,
            mtime: mtime_of(&w),
        };
        let json = serde_json::to_string_pretty(&rec).map_err(|e| WeightsError(e.to_string()))?;
        std::fs::write(stage.join(RECORD), json).map_err(io)?;
        let dest = install_dir(id, model_cache);
        // Swap: the old install is moved aside first and removed only after the new one is in place.
        let old = model_cache.join(format!(".{id}-old-{}", std::process::id()));
        if dest.exists() {
            std::fs::rename(&dest, &old).map_err(io)?;
        }
        if let Err(e) = std::fs::rename(&stage, &dest) {
            if old.exists() {
                let _ = std::fs::rename(&old, &dest);
            }
            return Err(io(e));
        }
        let _ = std::fs::remove_dir_all(&old);
        Ok(rec)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&stage);
    }
    result
}

/// The base URL that replaces published URLs (`DAMS_PULL_MIRROR`): file `f` of teacher `id` is then fetched from
/// `<mirror>/<id>/<f>` (an offline site's own copy; the tests' local server).
pub fn pull_mirror() -> Option<String> {
    std::env::var("DAMS_PULL_MIRROR").ok().filter(|s| !s.is_empty()).map(|s| s.trim_end_matches('/').to_string())
}

/// `dams teachers pull` for weights published at plain URLs (`spec.urls`): download every file into
/// `<model cache>/.download-<id>/` (a file already there with the published sha256 is kept), check each against its
/// published sha256, then install through [`add_from`] (the teacher's own check) and remove the downloads. A cut or
/// corrupted download installs nothing and leaves no partial file. `mirror` (see [`pull_mirror`]) replaces the
/// published URLs. `progress(file, bytes so far, total)`.
pub fn pull_urls(
    id: &str,
    spec: &InstallSpec,
    model_cache: &Path,
    mirror: Option<&str>,
    mut progress: impl FnMut(&str, u64, Option<u64>),
) -> Result<InstallRecord, WeightsError> {
    let dir = model_cache.join(format!(".download-{id}"));
    std::fs::create_dir_all(&dir).map_err(|e| WeightsError(format!("cannot create {}: {e}", dir.display())))?;
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_connect(Some(std::time::Duration::from_secs(30))).build().into();
    let mut sources = Vec::new();
    for u in spec.urls {
        let dest = dir.join(u.file);
        let url = match mirror {
            Some(m) => format!("{m}/{id}/{}", u.file),
            None => u.url.to_string(),
        };
        sources.push(url.clone());
        if let Some(want) = u.sha256
            && dest.is_file()
            && sha256_file(&dest).is_ok_and(|h| h == want)
        {
            continue;
        }
        let resp = agent.get(&url).call().map_err(|e| WeightsError(format!("cannot download {url}: {e}")))?;
        let len: Option<u64> =
            resp.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        let part = dir.join(format!(".{}.incomplete-{}", u.file, std::process::id()));
        let fail = |m: String| {
            let _ = std::fs::remove_file(&part);
            WeightsError(m)
        };
        let (sha, n) = download_to(resp.into_body().into_reader(), &part, |n| progress(u.file, n, len))
            .map_err(|e| fail(format!("download of {url} failed: {e}")))?;
        if let Some(l) = len
            && l != n
        {
            return Err(fail(format!("{url}: received {n} of {l} bytes (connection cut?); nothing was installed")));
        }
        if let Some(want) = u.sha256
            && want != sha
        {
            return Err(fail(format!(
                "{url}: checksum mismatch (published sha256 {want}, received {sha}); nothing was installed"
            )));
        }
        std::fs::rename(&part, &dest).map_err(|e| fail(format!("cannot store {}: {e}", dest.display())))?;
    }
    let rec = add_from(id, spec, &dir, model_cache, Some(sources.join(" + ")))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(rec)
}

/// Stream `reader` into `path`, hashing as it goes; `progress(bytes so far)`.
pub fn download_to(
    mut reader: impl Read,
    path: &Path,
    mut progress: impl FnMut(u64),
) -> Result<(String, u64), std::io::Error> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        f.write_all(&buf[..n])?;
        h.update(&buf[..n]);
        total += n as u64;
        progress(total);
    }
    f.flush()?;
    f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok((hex(&h.finalize()), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> InstallSpec {
        InstallSpec {
            hf_repo: "x/y",
            revision: "main",
            files: &["config.json", "w.bin"],
            urls: &[],
            check: |d| {
                let t = std::fs::read_to_string(d.join("config.json")).map_err(|e| e.to_string())?;
                if t.contains("bad") { Err("config says bad".into()) } else { Ok("ok".into()) }
            },
        }
    }

    #[test]
    fn a_failed_check_keeps_the_working_install_and_changes_on_disk_are_caught() {
        let cache = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("config.json"), "{}").unwrap();
        std::fs::write(src.path().join("w.bin"), b"weights v1").unwrap();
        let rec = add_from("t", &spec(), src.path(), cache.path(), None).unwrap();
        assert_eq!(rec.bytes, 10);
        assert_eq!(verified("t", &spec(), cache.path()).unwrap().unwrap().sha256, rec.sha256);
        // A broken checkpoint is refused and the working one stays.
        std::fs::write(src.path().join("config.json"), "bad").unwrap();
        std::fs::write(src.path().join("w.bin"), b"weights v2").unwrap();
        let e = add_from("t", &spec(), src.path(), cache.path(), None).unwrap_err();
        assert!(e.0.contains("config says bad"), "{e}");
        assert_eq!(installed("t", &spec(), cache.path()).unwrap().sha256, rec.sha256);
        assert_eq!(std::fs::read(cache.path().join("t/w.bin")).unwrap(), b"weights v1");
        assert!(std::fs::read_dir(cache.path()).unwrap().count() == 1, "no staging folder left behind");
        // Weights changed on disk after install: caught at open.
        let f = cache.path().join("t/w.bin");
        std::fs::write(&f, b"weights v3").unwrap();
        let e = verified("t", &spec(), cache.path()).unwrap_err();
        assert!(e.0.contains("changed on disk after it was installed"), "{e}");
        // Same content, new timestamp: accepted (and the record remembers the new time).
        std::fs::write(&f, b"weights v1").unwrap();
        assert!(verified("t", &spec(), cache.path()).unwrap().is_some());
    }
}
