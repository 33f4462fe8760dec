//! Installed CLAP weights: `<model cache>/clap/{config.json, model.safetensors, tokenizer.json,
//! preprocessor_config.json, dams-install.json}`, through the shared install code.
//!
//! `dams teachers add clap --from DIR` checks a local checkpoint folder ([`check_folder`]: configs, tokenizer, and,
//! with the model engine, the whole model loaded on the CPU: every tensor the config implies with its shape and
//! finite values, none left unused) and copies it in; `dams teachers pull clap` fills the Hugging Face cache and
//! installs from there.

use std::path::{Path, PathBuf};

use super::ClapError;
use super::config::{ClapConfig, FrontConfig};
use crate::teachers::descriptor::InstallSpec;
use crate::teachers::weights::install as shared;
pub use crate::teachers::weights::install::InstallRecord;

/// The files of a checkpoint folder.
pub const FILES: [&str; 4] = ["config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json"];

/// How CLAP is installed (the descriptor's install spec).
pub const INSTALL: InstallSpec = InstallSpec {
    hf_repo: super::HF_REPO,
    revision: "main",
    files: &FILES,
    urls: &[],
    check: |dir| {
        check_folder(dir)
            .map(|c| {
                format!(
                    "HTSAT {} {:?}, text {} layers x {}, projection {}",
                    c.audio_config.patch_embeds_hidden_size,
                    c.audio_config.depths,
                    c.text_config.num_hidden_layers,
                    c.text_config.hidden_size,
                    c.projection_dim
                )
            })
            .map_err(|e| e.to_string())
    },
};

pub fn install_dir(model_cache: &Path) -> PathBuf {
    shared::install_dir(super::ID, model_cache)
}

pub fn installed(model_cache: &Path) -> Option<InstallRecord> {
    shared::installed(super::ID, &INSTALL, model_cache)
}

/// Check a checkpoint folder: every file there, configs valid (fused checkpoints refused with the reason),
/// tokenizer consistent with the text tower, and (with the `burn` feature) the model loads on the CPU.
pub fn check_folder(dir: &Path) -> Result<ClapConfig, ClapError> {
    for f in FILES {
        if !dir.join(f).is_file() {
            return Err(ClapError::Weights(format!("{} has no {f}", dir.display())));
        }
    }
    let cfg = ClapConfig::from_file(&dir.join("config.json"))?;
    FrontConfig::from_file(&dir.join("preprocessor_config.json"))?;
    #[cfg(feature = "burn")]
    {
        super::ClapTeacher::open(dir, crate::engine::Engine::cpu(), Some("check".into()))?;
    }
    Ok(cfg)
}

/// Copy a local checkpoint folder into the model cache (after [`check_folder`]).
pub fn add_from(dir: &Path, model_cache: &Path) -> Result<InstallRecord, ClapError> {
    Ok(shared::add_from(super::ID, &INSTALL, dir, model_cache, None)?)
}
