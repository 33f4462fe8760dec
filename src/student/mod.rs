//! The student: a classifier trained in burn on a chosen mix of label sources, saved as
//! checkpoints under `data/models/<name>/`, and usable for scoring like a teacher
//! (`student:<name>`).
//!
//! Kind (1) is a compact CNN on log-mel spectrograms ([`model::CnnStudent`]); kind (2),
//! `ast-head`, is a new 3-way head on the frozen AST encoder with cached embeddings, optionally
//! fine-tuning its last layers ([`ast_head`]); kind (3), `ina-head`, is the same head on INA's
//! frozen CNN, the embedded radio-trained backbone ([`ina_head`]). Training runs as a job
//! ([`spawn_training`]) so the TUI jobs pane and the CLI show the same progress.

pub mod ast_head;
pub mod bench;
pub mod checkpoint;
pub mod data;
pub mod ina_head;
pub mod model;
pub mod teacher;
pub mod train;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::tensor::Device;
use serde_json::json;

use crate::jobs::{JobCtx, JobRunner};
use crate::workspace::Workspace;
use checkpoint::Meta;
use data::SourceSpec;
use model::{CnnConfig, CnnStudent};
use train::TrainConfig;

/// `auto | cpu | gpu`: the engine's device choice (one probe, driver noise silenced).
pub use crate::engine::DeviceChoice;

/// The device for `choice` and a description of it (see [`crate::engine`]: burn-flex on the CPU, a
/// real GPU adapter through wgpu; `auto` falls back to the CPU).
pub fn select_device(choice: DeviceChoice) -> Result<(Device, String)> {
    let e = crate::engine::Engine::select(choice).map_err(anyhow::Error::msg)?;
    let desc = match e.notice {
        Some(n) => format!("{} — {n}", e.description),
        None => e.description,
    };
    Ok((e.device, desc))
}

/// The models directory of a workspace.
pub fn models_dir(ws: &Workspace) -> PathBuf {
    ws.data_dir().join("models")
}

/// The directory of student `name` (the name is checked).
pub fn student_dir(ws: &Workspace, name: &str) -> Result<PathBuf> {
    checkpoint::check_name(name)?;
    Ok(models_dir(ws).join(name))
}

/// A trained student loaded for scoring.
pub struct Student {
    pub meta: Meta,
    net: Net,
    device: Device,
}

/// The network of a student, by kind.
enum Net {
    Cnn(CnnStudent),
    Head(Box<ast_head::HeadScorer>),
}

impl Student {
    /// Load the best checkpoint of the student in `dir` (of either kind; an ast-head student also
    /// loads the AST it was trained on, and fails clearly when those weights are gone).
    pub fn load(dir: &Path, device: &Device) -> Result<Student> {
        let meta = checkpoint::read_meta(dir)?;
        match meta.kind.as_str() {
            "cnn" => {
                let (meta, model) = checkpoint::load_best(dir, device)?;
                Ok(Student { meta, net: Net::Cnn(model.valid()), device: device.clone() })
            }
            ast_head::KIND | ina_head::KIND => {
                let scorer = ast_head::HeadScorer::load(dir, &meta, device)?;
                Ok(Student { meta, net: Net::Head(Box::new(scorer)), device: device.clone() })
            }
            other => bail!("{}: unknown student kind '{other}' (cnn, ast-head or ina-head)", dir.display()),
        }
    }

    /// A student from an in-memory model (e.g. right after training).
    pub fn from_model(meta: Meta, model: CnnStudent, device: &Device) -> Student {
        Student { meta, net: Net::Cnn(model.valid()), device: device.clone() }
    }

    /// A head student (ast-head, ina-head) from an in-memory scorer.
    pub fn from_head(meta: Meta, scorer: ast_head::HeadScorer, device: &Device) -> Student {
        Student { meta, net: Net::Head(Box::new(scorer)), device: device.clone() }
    }

    /// Sigmoid scores (speech, music, noise) of 16-kHz mono waveforms, whatever the kind.
    pub fn score_waves(&self, waves: &[&[f32]]) -> Result<Vec<[f32; 3]>> {
        match &self.net {
            Net::Cnn(_) => {
                let mut spec = crate::dsp::spectrogram::MelSpectrogrammer::new(data::spec_config());
                let feats: Vec<Vec<f32>> =
                    waves.iter().map(|w| data::log_mel(&mut spec, w, self.meta.cnn.frames)).collect();
                let refs: Vec<&[f32]> = feats.iter().map(Vec::as_slice).collect();
                self.score_features(&refs)
            }
            Net::Head(s) => s.score_waves(waves),
        }
    }

    /// [`score_waves`](Self::score_waves), and the embeddings a head student with a frozen backbone computed on the
    /// way, with their cache key `(backbone checksum, kind)`; `None` for other students.
    #[allow(clippy::type_complexity)]
    pub fn score_waves_embedding(
        &self,
        waves: &[&[f32]],
    ) -> Result<(Vec<[f32; 3]>, Option<(String, &'static str, Vec<Vec<f32>>)>)> {
        match &self.net {
            Net::Head(s) => s.score_waves_embedding(waves),
            Net::Cnn(_) => Ok((self.score_waves(waves)?, None)),
        }
    }

    /// Sigmoid scores (speech, music, noise) of feature matrices from [`data::log_mel`] at the
    /// student's shape (CNN students).
    pub fn score_features(&self, feats: &[&[f32]]) -> Result<Vec<[f32; 3]>> {
        let Net::Cnn(model) = &self.net else {
            bail!("an {} student scores waveforms, not log-mel features", self.meta.kind);
        };
        let (m, f) = (self.meta.cnn.n_mels, self.meta.cnn.frames);
        if let Some(bad) = feats.iter().find(|x| x.len() != m * f) {
            bail!("feature matrix of {} values; the student expects {m}x{f}", bad.len());
        }
        train::predict(model, feats, m, f, &self.device)
    }

    /// Scores from what the workspace already holds, without audio (a head student with a frozen backbone reads its
    /// cached embeddings): one entry per id, `None` where the audio is needed.
    pub fn score_stored(&self, store: &crate::store::Store, ids: &[i64]) -> Result<Vec<Option<[f32; 3]>>> {
        match &self.net {
            Net::Head(s) => s.score_cached(store, ids),
            Net::Cnn(_) => Ok(vec![None; ids.len()]),
        }
    }

    /// Scores of 16-kHz mono samples.
    pub fn score_samples(&self, samples: &[f32]) -> Result<[f32; 3]> {
        self.score_waves(&[samples])?.into_iter().next().ok_or_else(|| anyhow::anyhow!("no scores"))
    }
}

/// Which kind of student to train.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StudentKind {
    /// The compact CNN on log-mel spectrograms.
    #[default]
    Cnn,
    /// A new 3-way head on the frozen AST encoder (optionally fine-tuning its last layers).
    AstHead(ast_head::AstHeadOptions),
    /// A new 3-way head on INA's frozen CNN (embedded, radio-trained).
    InaHead,
}

impl StudentKind {
    /// The kind as `meta.json` records it.
    pub fn as_str(&self) -> &'static str {
        match self {
            StudentKind::Cnn => "cnn",
            StudentKind::AstHead(_) => ast_head::KIND,
            StudentKind::InaHead => ina_head::KIND,
        }
    }
}

/// What `dams train` asks for.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    pub name: String,
    pub sources: Vec<SourceSpec>,
    pub train: TrainConfig,
    pub width: usize,
    pub device: DeviceChoice,
    pub resume: bool,
    /// CNN (the default), ast-head or ina-head. On resume the kind saved with the student wins.
    pub kind: StudentKind,
}

/// Train a student of the workspace inside a job: features first, then the epochs.
pub fn run_training(ws: &Workspace, req: &TrainRequest, ctx: &JobCtx) -> Result<serde_json::Value> {
    let dir = student_dir(ws, &req.name)?;
    let saved_kind = if req.resume { checkpoint::read_meta(&dir).ok().map(|m| m.kind) } else { None };
    match (saved_kind.as_deref(), &req.kind) {
        (Some(ast_head::KIND), StudentKind::AstHead(o)) => return ast_head::run_training(ws, req, o, ctx),
        (Some(ast_head::KIND), _) => {
            return ast_head::run_training(ws, req, &ast_head::AstHeadOptions::default(), ctx);
        }
        (Some(ina_head::KIND), _) => return ina_head::run_training(ws, req, ctx),
        (Some("cnn"), _) => {}
        (_, StudentKind::AstHead(o)) => return ast_head::run_training(ws, req, o, ctx),
        (_, StudentKind::InaHead) => return ina_head::run_training(ws, req, ctx),
        _ => {}
    }
    let (device, device_desc) = select_device(req.device)?;
    ctx.log(format!("device: {device_desc}"));
    // On resume the saved description wins (architecture, sources, augmentation); only the
    // number of epochs may grow.
    let meta = match (req.resume, checkpoint::read_meta(&dir)) {
        (true, Ok(mut old)) => {
            old.train.epochs = req.train.epochs.max(old.train.epochs);
            old
        }
        _ => Meta {
            kind: "cnn".into(),
            cnn: CnnConfig { n_mels: data::N_MELS, frames: data::frames_for(160_000), width: req.width },
            train: req.train.clone(),
            sources: req.sources.clone(),
            ast_head: None,
            ina_head: None,
        },
    };
    ctx.phase("features");
    let store = ws.open_store()?;
    let ds = data::workspace_dataset(
        ws,
        &store,
        &meta.sources,
        meta.train.targets,
        meta.cnn.frames,
        |i, n| ctx.progress(i as u64, Some(n as u64)),
        |msg| ctx.log(format!("skipped {msg}")),
    )?;
    drop(store);
    ctx.check_cancel()?;
    let st = train::train(&ds, &meta, &dir, &device, req.resume, ctx)?.state;
    Ok(json!({
        "name": req.name,
        "dir": dir.display().to_string(),
        "epochs_done": st.epochs_done,
        "best_epoch": st.best_epoch,
        "best_dev_macro_f1": st.best_metric,
        "stopped_early": st.stopped_early,
        "train_examples": ds.train.len(),
        "dev_examples": ds.dev.len(),
    }))
}

/// Start [`run_training`] as a `train` job.
pub fn spawn_training(runner: &mut JobRunner, ws: &Workspace, req: TrainRequest) -> Result<i64> {
    let params = json!({
        "name": req.name,
        "sources": req.sources,
        "train": req.train,
        "width": req.width,
        "device": format!("{:?}", req.device).to_lowercase(),
        "resume": req.resume,
        "kind": req.kind.as_str(),
        "unfreeze": match &req.kind { StudentKind::AstHead(o) => o.unfreeze, _ => 0 },
    });
    let ws = Workspace::open(ws.root()).context("opening the workspace for the job")?;
    runner.spawn("train", params, None, move |ctx| run_training(&ws, &req, ctx))
}
