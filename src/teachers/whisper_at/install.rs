//! Installed Whisper-AT weights: `<model cache>/whisper-at/{whisper.pt, whisper_at.pth, dams-install.json}`.
//!
//! `whisper.pt` is an OpenAI Whisper checkpoint as published (`{'dims': {...}, 'model_state_dict': {...}}`, fp16;
//! e.g. `large-v2.pt`), `whisper_at.pth` a whisper-at head as published (the flat `at_model.*` state dict, e.g.
//! `large-v2_ori.pth`, or `large-v2_low.pth` for TL-TR-512). `dams teachers add whisper-at --from DIR` checks a
//! folder holding both ([`check_folder`]: dims sane, every encoder and head tensor present with the shape the dims
//! imply, every value finite, nothing in the head file left unused, nothing in the Whisper file but the encoder, its
//! `ln_post` and the decoder) and copies it in. Both files are read by [`crate::teachers::weights::torch`], which never
//! runs pickled code.

use std::path::{Path, PathBuf};

use super::WhisperAtError;
use super::config::{HeadKind, WhisperDims};
use crate::teachers::audioset::N_AUDIOSET;
use crate::teachers::descriptor::{InstallSpec, UrlFile};
use crate::teachers::weights::WeightsError;
use crate::teachers::weights::install as shared;
pub use crate::teachers::weights::install::InstallRecord;
use crate::teachers::weights::torch::TorchCheckpoint;

/// The OpenAI Whisper checkpoint (rename `large-v2.pt` to this).
pub const PT: &str = "whisper.pt";
/// The whisper-at head (rename `large-v2_ori.pth` or `large-v2_low.pth` to this).
pub const PTH: &str = "whisper_at.pth";
/// The files of a checkpoint folder; the last one is the install record's main weights file.
pub const FILES: [&str; 2] = [PTH, PT];

/// The published files of the Python project's model (see docs/whisper_at.md).
pub const LARGE_V2_PT_URL: &str = "https://openaipublic.azureedge.net/main/whisper/models/81f7c96c852ee8fc832187b0132e569d6c3065a3252ed18e56effd0b6a73e524/large-v2.pt";
pub const LARGE_V2_AT_URL: &str = "https://www.dropbox.com/s/3zxpyvdrxy22eq7/large-v2_ori.pth?dl=1";

/// sha256 of `large-v2.pt`, as OpenAI's URL gives it.
pub const LARGE_V2_PT_SHA256: &str = "81f7c96c852ee8fc832187b0132e569d6c3065a3252ed18e56effd0b6a73e524";

/// How Whisper-AT is installed (the descriptor's install spec). Its weights are not on the Hugging Face hub in this
/// layout: `dams teachers pull whisper-at` downloads the Python project's files from their published URLs
/// (OpenAI's `large-v2.pt`, sha256-checked, and whisper-at's `large-v2_ori.pth`).
pub const INSTALL: InstallSpec = InstallSpec {
    hf_repo: "",
    revision: "main",
    files: &FILES,
    check: |dir| check_folder(dir).map_err(|e| e.to_string()),
    urls: &[
        UrlFile { file: PTH, url: LARGE_V2_AT_URL, sha256: None },
        UrlFile { file: PT, url: LARGE_V2_PT_URL, sha256: Some(LARGE_V2_PT_SHA256) },
    ],
};

/// The folder Whisper-AT is installed in.
pub fn install_dir(model_cache: &Path) -> PathBuf {
    shared::install_dir(super::ID, model_cache)
}

/// The install record, if Whisper-AT is installed.
pub fn installed(model_cache: &Path) -> Option<InstallRecord> {
    shared::installed(super::ID, &INSTALL, model_cache)
}

/// The weights' identity: `sha256:` of the two files' sha256 (hex, `.pt` then `.pth`).
fn combine(pt_sha: &str, pth_sha: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(pt_sha.as_bytes());
    h.update(b"+");
    h.update(pth_sha.as_bytes());
    format!("sha256:{}", shared::hex(&h.finalize()))
}

/// The checksum of two files (see [`verified_checksum`]).
pub fn checksum_of(pt: &Path, pth: &Path) -> std::io::Result<String> {
    Ok(combine(&shared::sha256_file(pt)?, &shared::sha256_file(pth)?))
}

/// The installed weights' checksum, both files verified against the install record (the large `.pt` by size and
/// time, or its hash when they changed; the head `.pth` by its hash); `None` when not installed.
pub fn verified_checksum(model_cache: &Path) -> Result<Option<String>, WeightsError> {
    let Some(rec) = shared::verified(super::ID, &INSTALL, model_cache)? else { return Ok(None) };
    let head = install_dir(model_cache).join(PTH);
    let sha = shared::sha256_file(&head).map_err(|e| WeightsError(format!("{}: {e}", head.display())))?;
    match rec.files.get(PTH) {
        Some(want) if *want == sha => Ok(Some(combine(&rec.sha256, &sha))),
        _ => Err(WeightsError(format!(
            "{} changed on disk after it was installed; reinstall with `dams teachers add whisper-at --from DIR`",
            head.display()
        ))),
    }
}

/// Open both files, read `dims`, detect the head, and check every tensor name and shape (nothing read yet but the
/// pickles): the Whisper file's state dict selected (`model_state_dict`), the head file's root dict.
pub fn open_checked(
    pt: &Path,
    pth: &Path,
) -> Result<(TorchCheckpoint, WhisperDims, TorchCheckpoint, HeadKind), WhisperAtError> {
    let mut whisper = TorchCheckpoint::open(pt)?;
    let dims = WhisperDims::from_checkpoint(&whisper)?;
    whisper.select(Some("model_state_dict"))?;
    let at = TorchCheckpoint::open_state_dict(pth, None)?;
    let kind = HeadKind::detect(&at, dims.n_audio_state)?;
    check_shapes(&whisper, &super::config::encoder_tensors(&dims))?;
    check_shapes(&at, &super::config::head_tensors(kind, dims.n_audio_state, N_AUDIOSET))?;
    // The Whisper file: the encoder (ln_post included) and the decoder, nothing else.
    let expected: std::collections::BTreeSet<String> =
        super::config::encoder_tensors(&dims).into_iter().map(|(n, _)| n).collect();
    if let Some(extra) = whisper.names().find(|n| !n.starts_with("decoder.") && !expected.contains(*n)) {
        return Err(WhisperAtError::Weights(format!(
            "{}: unexpected tensor '{extra}' for a {}-layer encoder of width {} (do dims match the weights?)",
            pt.display(),
            dims.n_audio_layer,
            dims.n_audio_state
        )));
    }
    let head_expected: std::collections::BTreeSet<String> =
        super::config::head_tensors(kind, dims.n_audio_state, N_AUDIOSET).into_iter().map(|(n, _)| n).collect();
    if let Some(extra) = at.names().find(|n| !head_expected.contains(*n)) {
        return Err(WhisperAtError::Weights(format!(
            "{}: unexpected tensor '{extra}' for a {} head (is it a whisper-at head for this Whisper size?)",
            pth.display(),
            kind.as_str()
        )));
    }
    Ok((whisper, dims, at, kind))
}

fn check_shapes(ckpt: &TorchCheckpoint, expected: &[(String, Vec<usize>)]) -> Result<(), WhisperAtError> {
    for (name, shape) in expected {
        match ckpt.shape(name) {
            None => {
                return Err(WhisperAtError::Weights(format!(
                    "{}: missing tensor '{name}' (expected shape {shape:?})",
                    ckpt.path().display()
                )));
            }
            Some(s) if s != shape.as_slice() => {
                return Err(WhisperAtError::Weights(format!(
                    "{}: tensor '{name}' has shape {s:?}, but the model's dimensions imply {shape:?}",
                    ckpt.path().display()
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Check a checkpoint folder: [`open_checked`], then every encoder and head tensor read (finite values). The
/// decoder is never read. Returns a one-line summary.
pub fn check_folder(dir: &Path) -> Result<String, WhisperAtError> {
    for f in FILES {
        if !dir.join(f).is_file() {
            return Err(WhisperAtError::Weights(format!(
                "{} has no {f} (the folder holds OpenAI's Whisper checkpoint as {PT}, e.g. large-v2.pt, and the \
                 whisper-at head as {PTH}, e.g. large-v2_ori.pth)",
                dir.display()
            )));
        }
    }
    let (mut whisper, dims, mut at, kind) = open_checked(&dir.join(PT), &dir.join(PTH))?;
    for (name, shape) in super::config::encoder_tensors(&dims) {
        whisper.take(&name, &shape)?;
    }
    for (name, shape) in super::config::head_tensors(kind, dims.n_audio_state, N_AUDIOSET) {
        at.take(&name, &shape)?;
    }
    Ok(format!(
        "Whisper {} ({} layers, width {}) + {} head",
        dims.size_name(),
        dims.n_audio_layer,
        dims.n_audio_state,
        kind.as_str()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = check_folder(dir.path()).unwrap_err().to_string();
        assert!(e.contains(PTH) && e.contains("large-v2"), "{e}");
        assert!(installed(dir.path()).is_none());
    }
}
