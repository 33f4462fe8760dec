//! Checkpoints under `data/models/<name>/`:
//!
//! - `meta.json`: architecture, label sources, training settings (written once);
//! - `last/`: model + optimizer state + training state (epoch, RNG state, history, best
//!   metric) after each finished epoch, replaced atomically (a directory written next to it,
//!   then swapped in by renames), so a killed training resumes from its last finished epoch;
//! - `best/model.bpk`: the weights of the best epoch on gold dev (what scoring loads).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::model::{CnnConfig, CnnStudent};
use super::train::{TrainConfig, TrainState};

pub const META: &str = "meta.json";

/// What a student is (written once when training starts).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    /// `cnn`, `ast-head` or `ina-head`.
    pub kind: String,
    /// The CNN's architecture (unused by an ast-head student).
    #[serde(default)]
    pub cnn: CnnConfig,
    pub train: TrainConfig,
    pub sources: Vec<super::data::SourceSpec>,
    /// The AST an ast-head student was trained on (checksum, config, unfrozen layers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ast_head: Option<super::ast_head::AstHeadMeta>,
    /// The INA an ina-head student was trained on (checksum, embedding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ina_head: Option<super::ina_head::InaHeadMeta>,
}

/// Refuse names that would make odd paths.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        && !name.starts_with('.');
    if !ok {
        bail!(
            "invalid student name '{name}': use letters, digits, '_', '-' or '.' (at most 64, not starting with '.')"
        );
    }
    Ok(())
}

fn io(e: burn::store::RecordError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

pub fn write_json_atomic(path: &Path, value: &impl Serialize) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(value)?).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub fn read_meta(dir: &Path) -> Result<Meta> {
    let p = dir.join(META);
    let bytes = fs::read(&p).with_context(|| format!("no student at {} (missing {META})", dir.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not a valid student description", p.display()))
}

fn last_dir(dir: &Path) -> PathBuf {
    dir.join("last")
}

/// Save the state after a finished epoch (and the best weights when this epoch is the best).
pub fn save<M: Module>(
    dir: &Path,
    model: &M,
    optim: &ModuleOptimizer,
    state: &TrainState,
    is_best: bool,
) -> Result<()> {
    let new = dir.join("last.new");
    let old = dir.join("last.old");
    let last = last_dir(dir);
    // Finish a swap a crash interrupted before starting another.
    if !last.exists() {
        if new.join("state.json").exists() {
            fs::rename(&new, &last)?;
        } else if old.join("state.json").exists() {
            fs::rename(&old, &last)?;
        }
    }
    let _ = fs::remove_dir_all(&new);
    fs::create_dir_all(&new).with_context(|| format!("creating {}", new.display()))?;
    model.clone().save_file(new.join("model.bpk")).map_err(io).context("saving the model")?;
    optim.save(new.join("optim.bpk")).map_err(io).context("saving the optimizer state")?;
    write_json_atomic(&new.join("state.json"), state)?;
    if is_best {
        let best = dir.join("best");
        fs::create_dir_all(&best)?;
        // burnpack writes to a scratch file and renames it into place.
        model.clone().save_file(best.join("model.bpk")).map_err(io).context("saving the best model")?;
        write_json_atomic(&best.join("state.json"), state)?;
    }
    let _ = fs::remove_dir_all(&old);
    if last.exists() {
        fs::rename(&last, &old)?;
    }
    fs::rename(&new, &last)?;
    let _ = fs::remove_dir_all(&old);
    Ok(())
}

/// The last finished epoch's state, if any. A crash during [`save`] leaves `last`, or a
/// complete `last.new` (its `state.json` is written last), or `last.old`: taken in that order.
pub fn last_state(dir: &Path) -> Result<Option<(PathBuf, TrainState)>> {
    for d in [last_dir(dir), dir.join("last.new"), dir.join("last.old")] {
        let p = d.join("state.json");
        if p.exists() {
            let bytes = fs::read(&p)?;
            let st: TrainState =
                serde_json::from_slice(&bytes).with_context(|| format!("{} is corrupt", p.display()))?;
            return Ok(Some((d, st)));
        }
    }
    Ok(None)
}

/// Load model + optimizer of a saved `last` directory onto `device` (a CNN student).
pub fn load_last(
    ckpt: &Path,
    cnn: &CnnConfig,
    optim: ModuleOptimizer,
    device: &Device,
) -> Result<(CnnStudent, ModuleOptimizer)> {
    load_last_into(ckpt, CnnStudent::new(cnn, device), optim)
}

/// Load the best weights of a trained CNN student.
pub fn load_best(dir: &Path, device: &Device) -> Result<(Meta, CnnStudent)> {
    let meta = read_meta(dir)?;
    let model = load_best_into(dir, CnnStudent::new(&meta.cnn, device))?;
    Ok((meta, model))
}

/// The students under `models_dir` (folders with a [`META`]), sorted by name.
pub fn list(models_dir: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(models_dir) else { return Vec::new() };
    let mut out: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(META).is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| check_name(n).is_ok())
        .collect();
    out.sort();
    out
}

/// Load model + optimizer of a saved `last` directory into `skeleton` (a network of the same
/// shape on the training device).
pub fn load_last_into<M: Module>(ckpt: &Path, skeleton: M, optim: ModuleOptimizer) -> Result<(M, ModuleOptimizer)> {
    let model = skeleton
        .try_load_file(ckpt.join("model.bpk"))
        .map_err(io)
        .with_context(|| format!("loading {}", ckpt.join("model.bpk").display()))?;
    let optim = optim
        .load(ckpt.join("optim.bpk"))
        .map_err(io)
        .with_context(|| format!("loading {}", ckpt.join("optim.bpk").display()))?;
    Ok((model, optim))
}

/// Load the best weights of a trained student into `skeleton`.
pub fn load_best_into<M: Module>(dir: &Path, skeleton: M) -> Result<M> {
    let p = dir.join("best").join("model.bpk");
    if !p.exists() {
        bail!("student at {} has no finished epoch yet (no best/model.bpk)", dir.display());
    }
    skeleton.try_load_file(&p).map_err(io).with_context(|| format!("loading {}", p.display()))
}
