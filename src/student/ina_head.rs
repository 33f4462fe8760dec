//! Student kind (3), `ina-head`: INA's speech/music/noise CNN (embedded, MIT; see
//! [`crate::teachers::ina`]) as a frozen pretrained backbone with a new multi-label head.
//!
//! The backbone was trained on hours of broadcast audio for exclusive speech/music/noise decisions per
//! 20 ms; its last dense layer (256 ReLU units) is a radio-specific representation. Per 10 s segment
//! the embedding is [`InaTeacher::embedding`]: over the energetic patches, the mean and standard
//! deviation of those 256 activations, INA's mean posteriors and the share of energetic patches (516
//! values). The head — LayerNorm + Linear(516 → 3), as the ast-head's — learns *multi-label* decisions
//! (music or noise under speech, which INA's exclusive labels hide) from the pseudo-labels.
//!
//! The embedding is fixed for a segment and the INA weights, so it is computed once and kept in the
//! workspace's embedding cache (kind [`EMBEDDING_KIND`], keyed by the weights' SHA-256): training
//! costs one INA pass per segment and then seconds per run. Dataset, training loop, checkpoints and
//! scoring are the head machinery of [`super::ast_head`].
//!
//! Not built: fine-tuning INA's convolutions. The per-patch network runs ~500 times per segment, so
//! back-propagating through it costs about 500× a CNN student's step on the CPU; the frozen backbone
//! is what makes this student cheap.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::ast_head::{Backbone, WEIGHT_DECAY, fit, short};
use super::checkpoint::{self, Meta};
use super::data::SourceSpec;
use super::train::TrainConfig;
use crate::engine::Engine;
use crate::jobs::JobCtx;
use crate::teachers::Teacher;
use crate::teachers::ina::InaTeacher;
use crate::workspace::Workspace;

/// The kind recorded in `meta.json`.
pub const KIND: &str = "ina-head";
/// The kind of the pooled INA vectors in the shared embedding cache (`v1`: mean, std, posteriors, energetic share);
/// INA's teacher runs fill it too.
pub use crate::teachers::ina::EMBEDDING_KIND;
/// The head's LayerNorm epsilon.
pub const LAYER_NORM_EPS: f64 = 1e-5;

/// The backbone an ina-head student was trained on (in `meta.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InaHeadMeta {
    /// `sha256:<hex>` of the embedded INA weights.
    pub checksum: String,
    /// [`EMBEDDING_KIND`] at training time.
    pub embedding: String,
    /// Width of the embedding.
    pub dim: usize,
    pub weight_decay: f64,
}

/// The embedded INA on `engine`, checked against a student's record (the same weights and embedding).
pub fn open_ina(engine: Engine, expect: Option<&InaHeadMeta>) -> Result<InaTeacher> {
    let ina = InaTeacher::open(engine)?;
    if let Some(e) = expect {
        if e.checksum != ina.checksum() {
            bail!(
                "this ina-head student was trained on INA weights {} but this dams embeds {}; \
                 train it again with this version",
                short(&e.checksum),
                short(ina.checksum())
            );
        }
        if e.embedding != EMBEDDING_KIND || e.dim != InaTeacher::EMBEDDING_DIM {
            bail!(
                "this ina-head student reads embeddings '{}' of {} values; this dams computes '{EMBEDDING_KIND}' of {}",
                e.embedding,
                e.dim,
                InaTeacher::EMBEDDING_DIM
            );
        }
    }
    Ok(ina)
}

/// The record of the embedded INA.
pub fn ina_meta(ina: &InaTeacher) -> InaHeadMeta {
    InaHeadMeta {
        checksum: ina.checksum().to_string(),
        embedding: EMBEDDING_KIND.into(),
        dim: InaTeacher::EMBEDDING_DIM,
        weight_decay: WEIGHT_DECAY,
    }
}

/// The `meta.json` of a new ina-head student.
pub fn new_meta(im: InaHeadMeta, train: TrainConfig, sources: Vec<SourceSpec>) -> Meta {
    Meta { kind: KIND.into(), cnn: Default::default(), train, sources, ast_head: None, ina_head: Some(im) }
}

/// Train an ina-head student of the workspace inside a job: INA's embeddings (cached), then the epochs.
pub fn run_training(ws: &Workspace, req: &super::TrainRequest, ctx: &JobCtx) -> Result<serde_json::Value> {
    let dir = super::student_dir(ws, &req.name)?;
    let engine = super::ast_head::select_engine(req, ctx)?;
    let saved = if req.resume { checkpoint::read_meta(&dir).ok().filter(|m| m.ina_head.is_some()) } else { None };
    ctx.phase("loading INA");
    let ina = open_ina(engine.clone(), saved.as_ref().and_then(|m| m.ina_head.as_ref()))?;
    let meta = match saved {
        Some(mut old) => {
            old.train.epochs = req.train.epochs.max(old.train.epochs);
            old
        }
        None => new_meta(ina_meta(&ina), req.train.clone(), req.sources.clone()),
    };
    ctx.log(format!(
        "INA {} frozen, head on {} pooled values per segment (cached embeddings)",
        short(ina.checksum()),
        InaTeacher::EMBEDDING_DIM
    ));
    fit(ws, req, &meta, &mut Backbone::Ina(ina), &dir, &engine.device, ctx)
}
