//! Installed M2D-CLAP: `<model cache>/m2d/{checkpoint-30.pth, tokenizer.json, dams-install.json}`.
//!
//! `checkpoint-30.pth` is the published checkpoint as it is in the release zip (e.g.
//! `m2d_clap_vit_base-80x1001p16x16p16kpBpTI-2025/checkpoint-30.pth`: a `torch.save` dict with `'model'` and an
//! `argparse.Namespace` in `'args'`); `tokenizer.json` is the WordPiece tokenizer of `google-bert/bert-base-uncased`
//! (not in the checkpoint). `dams teachers add m2d --from DIR` checks a folder holding both ([`check_folder`]: sizes
//! from the shapes, every tensor present with the implied shape and finite, every other tensor one the reference
//! drops by name, the tokenizer readable, its vocabulary the size of BERT's embedding table, the prompts within
//! BERT's positions) and copies it in. The checkpoint is read by [`crate::teachers::weights::torch`], which never runs
//! pickled code.

use std::path::{Path, PathBuf};

use super::M2dError;
use super::config::{M2dConfig, M2dWeights};
use crate::teachers::descriptor::InstallSpec;
use crate::teachers::weights::WeightsError;
use crate::teachers::weights::install as shared;
pub use crate::teachers::weights::install::InstallRecord;

/// The checkpoint, under its published name.
pub const PTH: &str = "checkpoint-30.pth";
/// `bert-base-uncased`'s `tokenizer.json`.
pub const TOKENIZER: &str = "tokenizer.json";
/// The files of a checkpoint folder; the last one is the install record's main weights file.
pub const FILES: [&str; 2] = [TOKENIZER, PTH];

/// How M2D-CLAP is installed: from a folder only (the release is a zip on GitHub, the tokenizer on the HF hub).
pub const INSTALL: InstallSpec = InstallSpec {
    hf_repo: "",
    revision: "main",
    files: &FILES,
    check: |dir| check_folder(dir).map_err(|e| e.to_string()),
    urls: &[],
};

pub fn install_dir(model_cache: &Path) -> PathBuf {
    shared::install_dir(super::ID, model_cache)
}

pub fn installed(model_cache: &Path) -> Option<InstallRecord> {
    shared::installed(super::ID, &INSTALL, model_cache)
}

fn combine(pth_sha: &str, tok_sha: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(pth_sha.as_bytes());
    h.update(b"+");
    h.update(tok_sha.as_bytes());
    format!("sha256:{}", shared::hex(&h.finalize()))
}

/// The checksum of a checkpoint and a tokenizer (both change the scores).
pub fn checksum_of(pth: &Path, tokenizer: &Path) -> std::io::Result<String> {
    Ok(combine(&shared::sha256_file(pth)?, &shared::sha256_file(tokenizer)?))
}

/// The installed files' checksum, both verified against the install record; `None` when not installed.
pub fn verified_checksum(model_cache: &Path) -> Result<Option<String>, WeightsError> {
    let Some(rec) = shared::verified(super::ID, &INSTALL, model_cache)? else { return Ok(None) };
    let tok = install_dir(model_cache).join(TOKENIZER);
    let sha = shared::sha256_file(&tok).map_err(|e| WeightsError(format!("{}: {e}", tok.display())))?;
    match rec.files.get(TOKENIZER) {
        Some(want) if *want == sha => Ok(Some(combine(&rec.sha256, &sha))),
        _ => Err(WeightsError(format!(
            "{} changed on disk after it was installed; reinstall with `dams teachers add m2d --from DIR`",
            tok.display()
        ))),
    }
}

/// Open a checkpoint and check its sizes and tensor names (nothing read yet but the pickle).
pub fn open_checked(pth: &Path) -> Result<(M2dWeights, M2dConfig), M2dError> {
    let w = M2dWeights::open(pth)?;
    let c = w.config()?;
    Ok((w, c))
}

/// Check a checkpoint folder: [`open_checked`], every tensor read (finite values), the tokenizer loaded and
/// checked against BERT. Returns a one-line summary.
pub fn check_folder(dir: &Path) -> Result<String, M2dError> {
    for f in FILES {
        if !dir.join(f).is_file() {
            return Err(M2dError::Weights(format!(
                "{} has no {f} (the folder holds the M2D-CLAP checkpoint as {PTH}, e.g. \
                 m2d_clap_vit_base-80x1001p16x16p16kpBpTI-2025/checkpoint-30.pth, and bert-base-uncased's {TOKENIZER})",
                dir.display()
            )));
        }
    }
    let (mut w, c) = open_checked(&dir.join(PTH))?;
    for (name, shape) in c.tensors() {
        crate::teachers::weights::TensorSource::take(&mut w, &name, &shape)?;
    }
    #[cfg(feature = "burn")]
    {
        let tok = super::text::WordPiece::open(&dir.join(TOKENIZER), c.bert.vocab, c.bert.positions)?;
        for p in super::PROMPTS {
            tok.ids(p)?;
        }
    }
    Ok(c.summary())
}
