//! Installed AST weights: `<model cache>/ast/{config.json, model.safetensors, dams-install.json}`.
//!
//! `dams teachers add ast --from DIR` checks a local checkpoint folder (config, safetensors header, 527 outputs)
//! and copies it in; `dams teachers pull ast` downloads it from the Hugging Face hub. Either way the record holds
//! where it came from and the sha256 of the weights, which identifies the teacher's runs.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::AstError;
use super::checkpoint::Checkpoint;
use super::config::AstConfig;
use crate::teachers::audioset::N_AUDIOSET;

/// The files of a checkpoint folder.
pub const FILES: [&str; 2] = ["config.json", "model.safetensors"];
const RECORD: &str = "dams-install.json";

/// What `dams-install.json` records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstallRecord {
    /// Where the files came from (a folder or a URL).
    pub source: String,
    /// sha256 of `model.safetensors`.
    pub sha256: String,
    /// sha256 of `config.json`.
    pub config_sha256: String,
    pub bytes: u64,
    pub installed_at: String,
}

/// The folder AST is installed in.
pub fn install_dir(model_cache: &Path) -> PathBuf {
    model_cache.join(super::ID)
}

/// The install record, if AST is installed (record and both files present).
pub fn installed(model_cache: &Path) -> Option<InstallRecord> {
    let dir = install_dir(model_cache);
    let text = std::fs::read_to_string(dir.join(RECORD)).ok()?;
    let rec: InstallRecord = serde_json::from_str(&text).ok()?;
    FILES.iter().all(|f| dir.join(f).is_file()).then_some(rec)
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

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Check a checkpoint folder without loading the weights: config.json valid, 527 outputs, safetensors header
/// consistent with the file, and every tensor the config implies present with the right shape.
pub fn check_folder(dir: &Path) -> Result<AstConfig, AstError> {
    for f in FILES {
        if !dir.join(f).is_file() {
            return Err(AstError::Weights(format!("{} has no {f}", dir.display())));
        }
    }
    let cfg = AstConfig::from_file(&dir.join("config.json"))?;
    if cfg.num_labels() != N_AUDIOSET {
        return Err(AstError::Config(format!(
            "{}: {} output classes; dams needs the {N_AUDIOSET} AudioSet classes",
            dir.join("config.json").display(),
            cfg.num_labels()
        )));
    }
    let ckpt = Checkpoint::open(&dir.join("model.safetensors"))?;
    for (name, shape) in expected_tensors(&cfg) {
        match ckpt.shape(&name) {
            None => {
                return Err(AstError::Weights(format!(
                    "{}: missing tensor '{name}' (expected shape {shape:?})",
                    ckpt.path().display()
                )));
            }
            Some(s) if s != shape.as_slice() => {
                return Err(AstError::Weights(format!(
                    "{}: tensor '{name}' has shape {s:?}, but config.json implies {shape:?}",
                    ckpt.path().display()
                )));
            }
            Some(_) => {}
        }
    }
    Ok(cfg)
}

/// Every tensor name (HF naming) and shape the config implies.
pub fn expected_tensors(cfg: &AstConfig) -> Vec<(String, Vec<usize>)> {
    let d = cfg.hidden_size;
    let p = cfg.patch_size;
    let im = cfg.intermediate_size;
    let e = "audio_spectrogram_transformer.embeddings";
    let mut v = vec![
        (format!("{e}.cls_token"), vec![1, 1, d]),
        (format!("{e}.distillation_token"), vec![1, 1, d]),
        (format!("{e}.position_embeddings"), vec![1, cfg.num_patches() + 2, d]),
        (format!("{e}.patch_embeddings.projection.weight"), vec![d, 1, p, p]),
        (format!("{e}.patch_embeddings.projection.bias"), vec![d]),
    ];
    for i in 0..cfg.num_hidden_layers {
        let n = format!("audio_spectrogram_transformer.encoder.layer.{i}");
        for (m, o, inp) in [
            ("attention.attention.query", d, d),
            ("attention.attention.key", d, d),
            ("attention.attention.value", d, d),
            ("attention.output.dense", d, d),
            ("intermediate.dense", im, d),
            ("output.dense", d, im),
        ] {
            v.push((format!("{n}.{m}.weight"), vec![o, inp]));
            v.push((format!("{n}.{m}.bias"), vec![o]));
        }
        for ln in ["layernorm_before", "layernorm_after"] {
            v.push((format!("{n}.{ln}.weight"), vec![d]));
            v.push((format!("{n}.{ln}.bias"), vec![d]));
        }
    }
    for ln in ["audio_spectrogram_transformer.layernorm", "classifier.layernorm"] {
        v.push((format!("{ln}.weight"), vec![d]));
        v.push((format!("{ln}.bias"), vec![d]));
    }
    v.push(("classifier.dense.weight".into(), vec![cfg.num_labels(), d]));
    v.push(("classifier.dense.bias".into(), vec![cfg.num_labels()]));
    v
}

/// A staging folder next to the install folder; renamed into place when complete, so a failed or interrupted
/// install never leaves a half-written checkpoint that looks installed.
fn staging(model_cache: &Path) -> Result<PathBuf, AstError> {
    std::fs::create_dir_all(model_cache)
        .map_err(|e| AstError::Weights(format!("cannot create {}: {e}", model_cache.display())))?;
    let dir = model_cache.join(format!(".{}-partial-{}", super::ID, std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| AstError::Weights(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}

fn commit(model_cache: &Path, stage: &Path, rec: &InstallRecord) -> Result<(), AstError> {
    let io = |e: std::io::Error| AstError::Weights(format!("installing into {}: {e}", model_cache.display()));
    let json = serde_json::to_string_pretty(rec).map_err(|e| AstError::Weights(e.to_string()))?;
    std::fs::write(stage.join(RECORD), json).map_err(io)?;
    let dest = install_dir(model_cache);
    if dest.exists() {
        std::fs::remove_dir_all(&dest).map_err(io)?;
    }
    std::fs::rename(stage, &dest).map_err(io)
}

/// Copy a local checkpoint folder into the model cache (after [`check_folder`]).
pub fn add_from(dir: &Path, model_cache: &Path) -> Result<InstallRecord, AstError> {
    check_folder(dir)?;
    let stage = staging(model_cache)?;
    let result = (|| {
        for f in FILES {
            std::fs::copy(dir.join(f), stage.join(f))
                .map_err(|e| AstError::Weights(format!("cannot copy {}: {e}", dir.join(f).display())))?;
        }
        let io = |e: std::io::Error| AstError::Weights(e.to_string());
        let rec = InstallRecord {
            source: std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()).display().to_string(),
            sha256: sha256_file(&stage.join("model.safetensors")).map_err(io)?,
            config_sha256: sha256_file(&stage.join("config.json")).map_err(io)?,
            bytes: std::fs::metadata(stage.join("model.safetensors")).map_err(io)?.len(),
            installed_at: chrono::Utc::now().to_rfc3339(),
        };
        commit(model_cache, &stage, &rec)?;
        Ok(rec)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&stage);
    }
    result
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
    Ok((hex(&h.finalize()), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_tensor_count_of_ast_base() {
        let cfg = AstConfig::from_json(r#"{"id2label": {}}"#).unwrap();
        // 5 embedding tensors + 16 per layer + 4 final LayerNorm + 2 classifier.
        assert_eq!(expected_tensors(&cfg).len(), 5 + 12 * 16 + 4 + 2);
    }

    #[test]
    fn missing_folder_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = check_folder(dir.path()).unwrap_err().to_string();
        assert!(e.contains("config.json"), "{e}");
        assert!(installed(dir.path()).is_none());
    }
}
