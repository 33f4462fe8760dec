//! Installed AST weights: `<model cache>/ast/{config.json, model.safetensors, dams-install.json}`, through the
//! shared install code ([`crate::teachers::weights::install`]).
//!
//! `dams teachers add ast --from DIR` checks a local checkpoint folder ([`check_folder`]: config, 527 outputs, every
//! tensor the config implies with its shape, no tensor left unused, every value finite) and copies it in;
//! `dams teachers pull ast` fills the Hugging Face cache and installs from there.

use std::path::{Path, PathBuf};

use super::AstError;
use super::config::AstConfig;
use crate::teachers::audioset::N_AUDIOSET;
use crate::teachers::descriptor::InstallSpec;
use crate::teachers::weights::install as shared;
pub use crate::teachers::weights::install::{InstallRecord, download_to, sha256_file};
use crate::teachers::weights::safetensors::Checkpoint;

/// The files of a checkpoint folder.
pub const FILES: [&str; 2] = ["config.json", "model.safetensors"];

/// How AST is installed (the descriptor's install spec).
pub const INSTALL: InstallSpec = InstallSpec {
    hf_repo: super::HF_REPO,
    revision: "main",
    files: &FILES,
    urls: &[],
    check: |dir| {
        check_folder(dir)
            .map(|c| format!("{} layers, hidden {}", c.num_hidden_layers, c.hidden_size))
            .map_err(|e| e.to_string())
    },
};

/// The folder AST is installed in.
pub fn install_dir(model_cache: &Path) -> PathBuf {
    shared::install_dir(super::ID, model_cache)
}

/// The install record, if AST is installed (record and both files present).
pub fn installed(model_cache: &Path) -> Option<InstallRecord> {
    shared::installed(super::ID, &INSTALL, model_cache)
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
    // Every value finite (a NaN checkpoint fails here, not at scoring), every tensor of the file used.
    let mut ckpt = ckpt;
    for (name, shape) in expected_tensors(&cfg) {
        ckpt.take(&name, &shape)?;
    }
    let unused = ckpt.unused();
    if !unused.is_empty() {
        return Err(AstError::Weights(format!(
            "{}: {} tensor(s) that config.json does not use, e.g. '{}' (config.json describes a smaller model than the \
             weights?)",
            ckpt.path().display(),
            unused.len(),
            unused[0]
        )));
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

/// Copy a local checkpoint folder into the model cache (after [`check_folder`]); a working install is replaced
/// only by a checked one.
pub fn add_from(dir: &Path, model_cache: &Path) -> Result<InstallRecord, AstError> {
    Ok(shared::add_from(super::ID, &INSTALL, dir, model_cache, None)?)
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
