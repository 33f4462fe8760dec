//! Student kind (2), `ast-head`: the Python project's recipe. The AST encoder stays frozen and a
//! new 3-way head — LayerNorm(hidden) + Linear(hidden → 3), 3,843 parameters for AST-base — is
//! trained on the pooled output ((cls + distillation token) / 2 after the encoder's final
//! LayerNorm), with BCE-with-logits and `pos_weight` = negatives / positives, Adam (lr 1e-3,
//! weight decay 1e-4, the script's defaults).
//!
//! Because the encoder is frozen, its pooled vector of a segment never changes: it is computed
//! once per (segment, AST checksum) and cached in the workspace database (see
//! `store/embeddings.rs`), in batches, resumable per segment and cancellable, so every later
//! epoch and every later training of a head on the same AST costs only the head.
//!
//! With `--unfreeze K` the last K encoder layers and the final LayerNorm train too (initialised
//! from the AST): nothing is cached then, the frozen prefix (patch embedding + the first L − K
//! layers) runs per batch without autodiff and only the tail is differentiated. That is meant for a
//! GPU; it runs on the CPU with a warning.
//!
//! The waveform augmentations of the CNN (gain, shift, noise mixing) do not apply to cached
//! embeddings and are not used by this kind; hard-negative oversampling (last epoch's confident
//! false positives seen again) does apply.
//!
//! The frozen-backbone machinery here — the [`Backbone`] a head reads, the embedding cache, the
//! dataset, the training loop and the [`HeadScorer`] — is shared with the `ina-head` student
//! ([`super::ina_head`]), whose backbone is INA's CNN.

/// The kind of the pooled AST vectors in the shared embedding cache.
pub const EMBEDDING_KIND: &str = "ast-pooled";

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow, bail};
use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::checkpoint::{self, Meta};
use super::data::{Rng, SourceSpec, training_targets};
use super::train::{EpochEnd, TrainConfig, TrainState, epoch_order, note_hard_negatives, weighted_bce};
use crate::engine::Engine;
use crate::eval::metrics;
use crate::jobs::{JobCtx, JobError};
use crate::labels::{LabelSet, Split};
use crate::store::Store;
use crate::teachers::Teacher;
use crate::teachers::ast::AstTeacher;
use crate::teachers::ast::model::AstTail;
use crate::teachers::ina::InaTeacher;
use crate::workspace::Workspace;

/// The kind recorded in `meta.json`.
pub const KIND: &str = "ast-head";
/// Adam's weight decay (L2 added to the gradient, as `torch.optim.Adam(weight_decay=1e-4)`).
pub const WEIGHT_DECAY: f64 = 1e-4;

/// What `dams train --kind ast-head` asks for beyond the common settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AstHeadOptions {
    /// Encoder layers to fine-tune (0 = frozen encoder, cached embeddings).
    pub unfreeze: usize,
    /// An AST checkpoint folder (`config.json` + `model.safetensors`); `None` = the installed AST.
    pub ast_dir: Option<PathBuf>,
}

/// The AST a student was trained on (in `meta.json`): enough to find the same weights again and
/// to refuse others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AstHeadMeta {
    /// `sha256:<hex>` of `model.safetensors`.
    pub checksum: String,
    /// sha256 of `config.json`.
    pub config_sha256: String,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub max_length: usize,
    pub num_mel_bins: usize,
    pub layer_norm_eps: f64,
    /// Encoder layers fine-tuned with the head.
    pub unfreeze: usize,
    pub weight_decay: f64,
    /// The folder given with `--ast` (`None`: the installed AST).
    pub ast_dir: Option<PathBuf>,
}

/// An AST checkpoint folder and the checksum of its weights.
#[derive(Debug, Clone)]
pub struct AstSource {
    pub dir: PathBuf,
    pub checksum: String,
}

fn installed_ast() -> Option<AstSource> {
    let cache = crate::config::Dirs::get().model_cache();
    let rec = crate::teachers::ast::install::installed(&cache)?;
    Some(AstSource {
        dir: crate::teachers::ast::install::install_dir(&cache),
        checksum: format!("sha256:{}", rec.sha256),
    })
}

fn folder_checksum(dir: &Path) -> Result<String> {
    let w = dir.join("model.safetensors");
    let h = crate::teachers::ast::install::sha256_file(&w)
        .with_context(|| format!("{} is not an AST checkpoint folder (reading {})", dir.display(), w.display()))?;
    Ok(format!("sha256:{h}"))
}

/// The AST to train on: `dir` when given, else the installed one.
pub fn locate_ast(dir: Option<&Path>) -> Result<AstSource> {
    match dir {
        Some(d) => Ok(AstSource { dir: d.to_path_buf(), checksum: folder_checksum(d)? }),
        None => installed_ast().ok_or_else(|| {
            anyhow!(
                "the ast-head student needs the AST weights: install them with `dams teachers pull ast` \
                 (or `dams teachers add ast --from DIR`), or name a checkpoint folder with --ast DIR"
            )
        }),
    }
}

/// The AST a trained student needs: the installed one or the folder it was trained from, if
/// either holds the very weights recorded in its meta; otherwise a clear error.
pub fn ast_for(meta: &AstHeadMeta) -> Result<AstSource> {
    let installed = installed_ast();
    if let Some(src) = installed.as_ref().filter(|s| s.checksum == meta.checksum) {
        return Ok(src.clone());
    }
    if let Some(d) = &meta.ast_dir
        && let Ok(c) = folder_checksum(d)
        && c == meta.checksum
    {
        return Ok(AstSource { dir: d.clone(), checksum: c });
    }
    let now = match installed {
        Some(s) => format!("the installed AST has other weights ({})", short(&s.checksum)),
        None => "no AST is installed".into(),
    };
    bail!(
        "this ast-head student was trained on AST weights {} which are not available ({now}{}); \
         install those weights with `dams teachers add ast --from DIR`",
        short(&meta.checksum),
        meta.ast_dir.as_ref().map(|d| format!(", and {} does not hold them", d.display())).unwrap_or_default()
    )
}

pub(crate) fn short(checksum: &str) -> &str {
    &checksum[..checksum.len().min(19)]
}

/// The frozen network a head reads: the AST (pooled [CLS]/distillation tokens) or INA's CNN (pooled last dense
/// layer, [`InaTeacher::embedding`]).
pub enum Backbone {
    Ast(AstTeacher),
    Ina(InaTeacher),
}

impl Backbone {
    /// `sha256:<hex>` of the weights (part of the embedding cache's key).
    pub fn checksum(&self) -> &str {
        match self {
            Backbone::Ast(a) => a.checksum(),
            Backbone::Ina(i) => i.checksum(),
        }
    }

    /// The embedding kind in the workspace's cache.
    pub fn embedding_kind(&self) -> &'static str {
        match self {
            Backbone::Ast(_) => EMBEDDING_KIND,
            Backbone::Ina(_) => super::ina_head::EMBEDDING_KIND,
        }
    }

    /// Width of an embedding.
    pub fn dim(&self) -> usize {
        match self {
            Backbone::Ast(a) => a.config().hidden_size,
            Backbone::Ina(_) => InaTeacher::EMBEDDING_DIM,
        }
    }

    fn batch(&self) -> usize {
        match self {
            Backbone::Ast(a) if a.engine().gpu => 16,
            Backbone::Ast(_) => 4,
            Backbone::Ina(_) => 8,
        }
    }

    /// Embeddings of a batch of 16-kHz waveforms.
    pub fn embed(&mut self, waves: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        match self {
            Backbone::Ast(a) => embed_waves(a, waves),
            Backbone::Ina(i) => waves.iter().map(|w| i.embedding(w).map_err(anyhow::Error::from)).collect(),
        }
    }

    fn ast_mut(&mut self) -> Option<&mut AstTeacher> {
        match self {
            Backbone::Ast(a) => Some(a),
            Backbone::Ina(_) => None,
        }
    }
}

/// What the training loop needs to know of a head student's backbone, from its `meta.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadShape {
    /// Width of the embedding (the head's input).
    pub dim: usize,
    pub layer_norm_eps: f64,
    /// Encoder layers fine-tuned with the head (AST only).
    pub unfreeze: usize,
    /// Encoder layers the backbone has (0: none can be fine-tuned).
    pub layers: usize,
    pub weight_decay: f64,
    /// The backbone's weights.
    pub checksum: String,
}

/// The [`HeadShape`] of a head student (`ast-head` or `ina-head`).
pub fn head_shape(meta: &Meta) -> Result<HeadShape> {
    if let Some(am) = &meta.ast_head {
        return Ok(HeadShape {
            dim: am.hidden_size,
            layer_norm_eps: am.layer_norm_eps,
            unfreeze: am.unfreeze,
            layers: am.num_hidden_layers,
            weight_decay: am.weight_decay,
            checksum: am.checksum.clone(),
        });
    }
    if let Some(im) = &meta.ina_head {
        return Ok(HeadShape {
            dim: im.dim,
            layer_norm_eps: super::ina_head::LAYER_NORM_EPS,
            unfreeze: 0,
            layers: 0,
            weight_decay: im.weight_decay,
            checksum: im.checksum.clone(),
        });
    }
    bail!("not a head student (no backbone record in its meta)")
}

/// Load the AST of `src` onto `engine`, checking its config against a student's record.
pub fn open_ast(src: &AstSource, engine: Engine, expect: Option<&AstHeadMeta>) -> Result<(AstTeacher, AstHeadMeta)> {
    let t = AstTeacher::open(&src.dir, engine, Some(src.checksum.clone()))
        .with_context(|| format!("loading the AST from {}", src.dir.display()))?;
    let cfg = t.config();
    let config_sha256 = crate::teachers::ast::install::sha256_file(&src.dir.join("config.json"))
        .with_context(|| format!("reading {}", src.dir.join("config.json").display()))?;
    let m = AstHeadMeta {
        checksum: src.checksum.clone(),
        config_sha256,
        hidden_size: cfg.hidden_size,
        num_hidden_layers: cfg.num_hidden_layers,
        num_attention_heads: cfg.num_attention_heads,
        max_length: cfg.max_length,
        num_mel_bins: cfg.num_mel_bins,
        layer_norm_eps: cfg.layer_norm_eps,
        unfreeze: expect.map_or(0, |e| e.unfreeze),
        weight_decay: expect.map_or(WEIGHT_DECAY, |e| e.weight_decay),
        ast_dir: expect.and_then(|e| e.ast_dir.clone()),
    };
    if let Some(e) = expect
        && (e.config_sha256 != m.config_sha256 || e.hidden_size != m.hidden_size)
    {
        bail!(
            "the AST in {} has the recorded weights but another config.json than the student was trained with",
            src.dir.display()
        );
    }
    Ok((t, m))
}

// ---------------------------------------------------------------------------------------------
// The network

/// The trainable part: optionally the last encoder layers (+ final LayerNorm), then the head.
#[derive(Module, Debug)]
pub struct AstHeadNet {
    tail: Option<AstTail>,
    norm: LayerNorm,
    head: Linear,
}

impl AstHeadNet {
    /// A new head (seeded: weights normal(0, 0.02) as Hugging Face initialises a classifier, zero
    /// bias, LayerNorm ones/zeros) on top of `tail`.
    pub fn new(d: usize, eps: f64, tail: Option<AstTail>, seed: u64, device: &Device) -> AstHeadNet {
        let mut rng = Rng::new(seed ^ 0xA57);
        let w: Vec<f32> = (0..d * 3)
            .map(|_| {
                // Box–Muller.
                let (u1, u2) = (rng.unit().max(1e-7), rng.unit());
                0.02 * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
            })
            .collect();
        let head = Linear {
            weight: Param::from_tensor(Tensor::from_data(TensorData::new(w, [d, 3]), device)),
            bias: Some(Param::from_tensor(Tensor::from_data(TensorData::new(vec![0f32; 3], [3]), device))),
        };
        AstHeadNet { tail, norm: LayerNormConfig::new(d).with_epsilon(eps).init(device), head }
    }

    /// Pooled embeddings `[B, hidden]` → logits `[B, 3]` (the frozen-encoder case).
    pub fn forward_pooled(&self, e: Tensor<2>) -> Tensor<2> {
        self.head.forward(self.norm.forward(e))
    }

    /// Tokens after the frozen prefix `[B, N, hidden]` → logits `[B, 3]` (fine-tuning the tail).
    pub fn forward_tokens(&self, h: Tensor<3>) -> Result<Tensor<2>> {
        let tail = self.tail.as_ref().ok_or_else(|| anyhow!("this head has no encoder layers to run"))?;
        Ok(self.forward_pooled(tail.forward(h)))
    }

    /// The fine-tuned encoder layers, if any.
    pub fn tail(&self) -> Option<&AstTail> {
        self.tail.as_ref()
    }

    fn unfrozen(&self) -> usize {
        self.tail.as_ref().map_or(0, AstTail::num_layers)
    }
}

/// Copies every parameter onto an autodiff device as a tracked leaf.
struct Trainable {
    device: Device,
}

impl burn::module::ModuleMapper for Trainable {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let device = self.device.clone();
        param.map(move |t| Tensor::<D>::from_data(t.into_data(), &device).set_require_grad(true))
    }
}

/// The network skeleton of a student (tail copied from `ast` when layers are unfrozen).
fn skeleton(m: &HeadShape, ast: Option<&AstTeacher>, seed: u64, device: &Device) -> Result<AstHeadNet> {
    let tail = match (m.unfreeze, ast) {
        (0, _) => None,
        (k, Some(a)) => Some(a.model().tail(k)),
        (_, None) => bail!("fine-tuning encoder layers needs the AST"),
    };
    Ok(AstHeadNet::new(m.dim, m.layer_norm_eps, tail, seed, device))
}

// ---------------------------------------------------------------------------------------------
// Embeddings and data

/// Pooled embeddings of a batch of 16-kHz waveforms.
pub fn embed_waves(ast: &mut AstTeacher, waves: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
    if waves.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(i) = waves.iter().position(|s| s.iter().any(|v| !v.is_finite())) {
        bail!("segment {i} of the batch holds non-finite samples");
    }
    let device = ast.engine().device.clone();
    let x = features_tensor(ast, waves, &device);
    let e = ast.model().embed(x);
    let d = e.dims()[1];
    let v: Vec<f32> = e
        .try_into_data()
        .map_err(|e| anyhow!("the device failed: {e:?}"))?
        .try_to_vec::<f32>()
        .map_err(|e| anyhow!("reading embeddings: {e:?}"))?;
    Ok(v.chunks_exact(d).map(<[f32]>::to_vec).collect())
}

fn features_tensor(ast: &mut AstTeacher, waves: &[&[f32]], device: &Device) -> Tensor<3> {
    let [t, f] = ast.model().input_shape();
    let feats = ast.features(waves);
    Tensor::<3>::from_data(TensorData::new(feats, [waves.len(), t, f]), device)
}

/// What [`cache_embeddings`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Embeddings computed now.
    pub computed: usize,
    /// Embeddings found in the cache.
    pub cached: usize,
    /// Segments whose audio could not be read (left out).
    pub failed: usize,
}

/// Make sure the cache of `backbone` holds an embedding of every segment in `items` (segment id,
/// audio path): computed in batches, each batch committed, so a cancelled or killed run keeps what
/// it did. Unreadable audio is reported through `on_skip` and left out.
pub fn cache_embeddings(
    store: &mut Store,
    backbone: &mut Backbone,
    items: &[(i64, PathBuf, String)],
    ctx: &JobCtx,
    mut on_skip: impl FnMut(String),
) -> Result<CacheStats> {
    let checksum = backbone.checksum().to_string();
    let kind = backbone.embedding_kind();
    let have = store.embedded_segments(&checksum, kind)?;
    let todo: Vec<&(i64, PathBuf, String)> = items.iter().filter(|(id, _, _)| !have.contains(id)).collect();
    let mut st = CacheStats { cached: items.len() - todo.len(), ..Default::default() };
    let batch = backbone.batch();
    let total = todo.len() as u64;
    ctx.progress(0, Some(total));
    for (b, chunk) in todo.chunks(batch).enumerate() {
        ctx.check_cancel()?;
        let mut ids = Vec::with_capacity(chunk.len());
        let mut waves = Vec::with_capacity(chunk.len());
        for (id, path, shown) in chunk {
            match crate::audio::decode::load_mono_16k(path) {
                Ok(s) if s.iter().all(|v| v.is_finite()) => {
                    ids.push(*id);
                    waves.push(s);
                }
                Ok(_) => {
                    st.failed += 1;
                    on_skip(format!("{shown}: non-finite samples"));
                }
                Err(e) => {
                    st.failed += 1;
                    on_skip(format!("{shown}: {e}"));
                }
            }
        }
        let refs: Vec<&[f32]> = waves.iter().map(Vec::as_slice).collect();
        let embs = backbone.embed(&refs)?;
        let rows: Vec<(i64, Vec<f32>)> = ids.into_iter().zip(embs).collect();
        st.computed += rows.len();
        store.put_embeddings(&checksum, kind, &rows)?;
        ctx.progress(((b + 1) * batch).min(todo.len()) as u64, Some(total));
    }
    Ok(st)
}

/// Where the encoder input of an example comes from when layers are fine-tuned.
#[derive(Debug, Clone)]
pub enum Wave {
    Samples(Arc<Vec<f32>>),
    File(PathBuf),
}

impl Wave {
    fn load(&self) -> Result<Arc<Vec<f32>>> {
        match self {
            Wave::Samples(s) => Ok(s.clone()),
            Wave::File(p) => Ok(Arc::new(
                crate::audio::decode::load_mono_16k(p).with_context(|| format!("reading {}", p.display()))?,
            )),
        }
    }
}

/// The input of one example.
#[derive(Debug, Clone)]
pub enum HeadInput {
    /// The cached pooled embedding (frozen encoder).
    Embedding(Vec<f32>),
    /// The audio (fine-tuning: the encoder runs per batch).
    Wave(Wave),
}

#[derive(Debug, Clone)]
pub struct HeadExample {
    pub segment_id: i64,
    pub input: HeadInput,
    pub target: [f32; 3],
    pub weight: f32,
}

impl HeadExample {
    pub fn labels(&self) -> LabelSet {
        LabelSet::from_array(self.target.map(|t| t >= 0.5))
    }
}

#[derive(Debug, Clone, Default)]
pub struct HeadDataset {
    pub train: Vec<HeadExample>,
    pub dev: Vec<HeadExample>,
}

impl HeadDataset {
    pub fn pos_weight(&self) -> [f32; 3] {
        super::data::pos_weight_of(self.train.iter().map(|e| e.target))
    }
}

fn bool3(l: LabelSet) -> [f32; 3] {
    l.to_array().map(|b| if b { 1.0 } else { 0.0 })
}

/// The dataset of a workspace for an ast-head student: training examples from `sources` (the
/// same mixing as the CNN: gold outside dev/test wins, then pseudo sources in order), dev examples
/// from gold on the dev split. Frozen encoder: embeddings from the cache, computing the missing
/// ones first. Fine-tuning: the audio files (checked readable once).
pub fn workspace_dataset(
    ws: &Workspace,
    store: &mut Store,
    sources: &[SourceSpec],
    how: super::data::Targets,
    backbone: &mut Backbone,
    unfreeze: usize,
    ctx: &JobCtx,
) -> Result<(HeadDataset, CacheStats)> {
    let targets = training_targets(store, sources, how)?;
    let gold: HashMap<i64, LabelSet> = store.resolved_gold()?.into_iter().collect();
    let segments = store.segments(None)?;
    let mut items = Vec::new();
    let mut stats = CacheStats::default();
    for s in
        segments.iter().filter(|s| targets.contains_key(&s.id) || (s.split == Split::Dev && gold.contains_key(&s.id)))
    {
        match ws.resolve_data_path(&s.segment_path) {
            Ok(p) => items.push((s.id, p, s.segment_path.clone())),
            Err(e) => {
                stats.failed += 1;
                ctx.log(format!("skipped {}: {e}", s.segment_path));
            }
        }
    }
    if !items.iter().any(|(id, _, _)| targets.contains_key(id)) {
        bail!("no training examples: the chosen label sources label no readable segment outside dev/test");
    }
    let mut inputs: HashMap<i64, HeadInput> = HashMap::new();
    if unfreeze == 0 {
        ctx.phase("embeddings");
        let st = cache_embeddings(store, backbone, &items, ctx, |m| ctx.log(format!("skipped {m}")))?;
        stats.computed = st.computed;
        stats.cached = st.cached;
        stats.failed += st.failed;
        let mut cached = store.embeddings(backbone.checksum(), backbone.embedding_kind(), backbone.dim())?;
        for (id, _, _) in &items {
            if let Some(v) = cached.remove(id) {
                inputs.insert(*id, HeadInput::Embedding(v));
            }
        }
    } else {
        ctx.phase("audio check");
        let total = items.len() as u64;
        for (i, (id, p, shown)) in items.iter().enumerate() {
            ctx.check_cancel()?;
            match crate::audio::decode::load_mono_16k(p) {
                Ok(_) => {
                    inputs.insert(*id, HeadInput::Wave(Wave::File(p.clone())));
                }
                Err(e) => {
                    stats.failed += 1;
                    ctx.log(format!("skipped {shown}: {e}"));
                }
            }
            ctx.progress(i as u64 + 1, Some(total));
        }
    }
    let mut ds = HeadDataset::default();
    for s in &segments {
        let Some(input) = inputs.remove(&s.id) else { continue };
        if let Some(&(target, weight)) = targets.get(&s.id) {
            ds.train.push(HeadExample { segment_id: s.id, input, target, weight });
        } else if let Some(&labels) = gold.get(&s.id) {
            ds.dev.push(HeadExample { segment_id: s.id, input, target: bool3(labels), weight: 1.0 });
        }
    }
    if ds.train.is_empty() {
        bail!("no training examples: the chosen label sources label no readable segment outside dev/test");
    }
    Ok((ds, stats))
}

// ---------------------------------------------------------------------------------------------
// Training

fn optimizer(weight_decay: f64) -> ModuleOptimizer {
    let mut c = AdamConfig::new();
    if weight_decay > 0.0 {
        c = c.with_weight_decay(Some(WeightDecayConfig::new(weight_decay as f32)));
    }
    c.init()
}

/// Logits of a batch of examples: cached embeddings straight into the head, audio through the
/// frozen prefix (no autodiff, on `inner`) and then the tail on `device`.
fn batch_logits(
    net: &AstHeadNet,
    ast: Option<&mut AstTeacher>,
    examples: &[&HeadExample],
    inner: &Device,
    device: Option<&Device>,
) -> Result<Tensor<2>> {
    let device_or_inner = device.unwrap_or(inner);
    let n = examples.len();
    if net.unfrozen() == 0 {
        let mut v = Vec::new();
        let mut d = 0;
        for e in examples {
            let HeadInput::Embedding(x) = &e.input else { bail!("a frozen-encoder head needs embeddings") };
            d = x.len();
            v.extend_from_slice(x);
        }
        return Ok(net.forward_pooled(Tensor::<2>::from_data(TensorData::new(v, [n, d]), device_or_inner)));
    }
    let ast = ast.ok_or_else(|| anyhow!("fine-tuning encoder layers needs the AST"))?;
    let mut waves = Vec::with_capacity(n);
    for e in examples {
        let HeadInput::Wave(w) = &e.input else { bail!("fine-tuning needs the audio of every example") };
        waves.push(w.load()?);
    }
    let refs: Vec<&[f32]> = waves.iter().map(|w| w.as_slice()).collect();
    let x = features_tensor(ast, &refs, inner);
    let keep = ast.model().num_layers() - net.unfrozen();
    let h = ast.model().encode(x, keep);
    // The prefix ran without autodiff; its output enters the differentiated tail as data.
    let h = match device {
        None => h,
        Some(d) => {
            let data = h.try_into_data().map_err(|e| anyhow!("the device failed: {e:?}"))?;
            Tensor::<3>::from_data(data, d)
        }
    };
    net.forward_tokens(h)
}

fn to_scores(logits: Tensor<2>) -> Result<Vec<[f32; 3]>> {
    let v: Vec<f32> = sigmoid(logits)
        .try_into_data()
        .map_err(|e| anyhow!("the device failed: {e:?}"))?
        .try_to_vec::<f32>()
        .map_err(|e| anyhow!("reading scores: {e:?}"))?;
    Ok(v.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect())
}

/// Sigmoid scores of examples by a network in evaluation mode (on `device`, no autodiff).
pub fn predict(
    net: &AstHeadNet,
    mut ast: Option<&mut AstTeacher>,
    examples: &[&HeadExample],
    device: &Device,
) -> Result<Vec<[f32; 3]>> {
    let mut out = Vec::with_capacity(examples.len());
    let size = if net.unfrozen() == 0 { 256 } else { 4 };
    for chunk in examples.chunks(size) {
        out.extend(to_scores(batch_logits(net, ast.as_deref_mut(), chunk, device, None)?)?);
    }
    Ok(out)
}

fn validate(
    net: &AstHeadNet,
    ast: Option<&mut AstTeacher>,
    ds: &HeadDataset,
    threshold: f32,
    device: &Device,
) -> Result<Option<([f64; 3], f64)>> {
    if ds.dev.is_empty() {
        return Ok(None);
    }
    let refs: Vec<&HeadExample> = ds.dev.iter().collect();
    let scores = predict(net, ast, &refs, device)?;
    let gold: Vec<LabelSet> = ds.dev.iter().map(HeadExample::labels).collect();
    let pred: Vec<LabelSet> = scores.iter().map(|s| LabelSet::from_array(s.map(|p| p >= threshold))).collect();
    let conf = metrics::per_class(&gold, &pred);
    Ok(Some((conf.map(|c| c.f1()), metrics::macro_f1(&conf))))
}

/// The result of a head training: the final state and the last epoch's network.
pub struct TrainedHead {
    pub state: TrainState,
    pub net: AstHeadNet,
}

/// Train (or resume) a head student (`ast-head` or `ina-head`) in `dir`. `ast` is needed when
/// layers are unfrozen (`meta.ast_head.unfreeze > 0`); a frozen-encoder head trains on the cached
/// embeddings alone.
pub fn train(
    ds: &HeadDataset,
    meta: &Meta,
    mut ast: Option<&mut AstTeacher>,
    dir: &Path,
    device: &Device,
    resume: bool,
    ctx: &JobCtx,
) -> Result<TrainedHead> {
    let cfg: &TrainConfig = &meta.train;
    let am = &head_shape(meta)?;
    if cfg.batch_size == 0 || cfg.epochs == 0 {
        bail!("batch size and epochs must be at least 1");
    }
    if !(cfg.lr.is_finite() && cfg.lr > 0.0) {
        bail!("learning rate must be a positive number");
    }
    if am.unfreeze > am.layers {
        bail!("--unfreeze {} but the backbone has only {} layers to fine-tune", am.unfreeze, am.layers);
    }
    if am.unfreeze > 0 && ast.is_none() {
        bail!("fine-tuning encoder layers needs the AST");
    }
    for e in ds.train.iter().chain(&ds.dev) {
        match &e.input {
            HeadInput::Embedding(v) if am.unfreeze > 0 || v.len() != am.dim => {
                bail!(
                    "segment {}: an embedding of {} values; the head expects the audio or {}",
                    e.segment_id,
                    v.len(),
                    am.dim
                )
            }
            HeadInput::Wave(_) if am.unfreeze == 0 => {
                bail!("segment {}: a frozen-encoder head trains on embeddings, not audio", e.segment_id)
            }
            _ => {}
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ad = device.clone().autodiff();
    // Built on the plain device (the tail is a copy of the AST's layers), then moved to the
    // autodiff device with every parameter tracked.
    let fresh = || skeleton(am, ast.as_deref(), cfg.seed, device).map(|n| n.map(&mut Trainable { device: ad.clone() }));
    let existing = checkpoint::last_state(dir)?;
    let (mut net, mut optim, mut st) = match (existing, resume) {
        (Some((ckpt, st)), true) => {
            let old = checkpoint::read_meta(dir)?;
            if old.kind != meta.kind
                || head_shape(&old).ok().map(|o| (o.checksum, o.unfreeze)) != Some((am.checksum.clone(), am.unfreeze))
            {
                bail!(
                    "the checkpoint in {} is another kind of student or another backbone; train under another name",
                    dir.display()
                );
            }
            let (n, o) = checkpoint::load_last_into(&ckpt, fresh()?, optimizer(am.weight_decay))?;
            ctx.log(format!(
                "resuming after epoch {} (best dev macro F1 so far: {})",
                st.epochs_done,
                st.best_metric.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into())
            ));
            (n, o, st)
        }
        (Some(_), false) => {
            bail!("a student already exists in {}; resume it with --resume or choose another name", dir.display())
        }
        (None, r) => {
            if r {
                ctx.log("no checkpoint yet: starting from scratch");
            }
            (fresh()?, optimizer(am.weight_decay), TrainState::new(cfg.seed))
        }
    };
    checkpoint::write_json_atomic(&dir.join(checkpoint::META), meta)?;
    for h in &st.history {
        ctx.metric("loss", h.loss);
        if let Some(f) = h.dev_macro_f1 {
            ctx.metric("dev_macro_f1", f);
        }
    }
    let pos_weight = ds.pos_weight();
    ctx.log(format!(
        "{} training examples, {} dev; pos_weight speech {:.2} music {:.2} noise {:.2}",
        ds.train.len(),
        ds.dev.len(),
        pos_weight[0],
        pos_weight[1],
        pos_weight[2]
    ));
    let per_epoch = ds.train.len().div_ceil(cfg.batch_size) as u64;
    let total = per_epoch * cfg.epochs as u64;
    ctx.resume_from(per_epoch * st.epochs_done as u64);
    ctx.progress(per_epoch * st.epochs_done as u64, Some(total));
    let pw = Tensor::<2>::from_data(TensorData::new(pos_weight.to_vec(), [1, 3]), &ad);

    while st.epochs_done < cfg.epochs && !st.stopped_early {
        let epoch = st.epochs_done + 1;
        ctx.phase(format!("epoch {epoch}/{}", cfg.epochs));
        let mut rng = st.rng;
        let order = epoch_order(ds.train.len(), &st.hard, cfg.augment.hard_negatives, &mut rng);
        let mut hard = Vec::new();
        let (mut loss_sum, mut loss_n) = (0.0f64, 0usize);
        for (b, chunk) in order.chunks(cfg.batch_size).enumerate() {
            ctx.check_cancel()?;
            let examples: Vec<&HeadExample> = chunk.iter().map(|&i| &ds.train[i]).collect();
            let n = chunk.len();
            let targets: Vec<f32> = examples.iter().flat_map(|e| e.target).collect();
            let weights: Vec<f32> = examples.iter().map(|e| e.weight).collect();
            let wsum: f32 = weights.iter().sum();
            let y = Tensor::<2>::from_data(TensorData::new(targets.clone(), [n, 3]), &ad);
            let w = Tensor::<2>::from_data(TensorData::new(weights, [n, 1]), &ad);
            let logits = batch_logits(&net, ast.as_deref_mut(), &examples, device, Some(&ad))?;
            let loss = weighted_bce(logits.clone(), y, w, pw.clone(), wsum);
            let value: f32 = loss.clone().into_scalar();
            if !value.is_finite() {
                bail!("the loss became {value} in epoch {epoch}; lower the learning rate");
            }
            loss_sum += value as f64 * n as f64;
            loss_n += n;
            if cfg.augment.hard_negatives > 0 {
                note_hard_negatives(logits, &targets, chunk, &mut hard);
            }
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(cfg.lr, net, grads);
            ctx.progress(per_epoch * st.epochs_done as u64 + (b as u64 + 1).min(per_epoch), Some(total));
        }
        let loss = loss_sum / loss_n.max(1) as f64;
        let dev = validate(&net.valid(), ast.as_deref_mut(), ds, cfg.threshold, device)?;
        let end = EpochEnd { epoch, loss, examples: order.len(), dev };
        let is_best = st.end_epoch(end, rng, hard, cfg.patience);
        checkpoint::save(dir, &net, &optim, &st, is_best)?;
        st.report_epoch(ctx, &end, is_best, cfg.patience);
    }
    if ctx.is_cancelled() && st.epochs_done < cfg.epochs && !st.stopped_early {
        return Err(JobError::Cancelled.into());
    }
    Ok(TrainedHead { state: st, net })
}

/// The `meta.json` of a new ast-head student.
pub fn new_meta(ast_meta: AstHeadMeta, train: TrainConfig, sources: Vec<SourceSpec>) -> Meta {
    Meta { kind: KIND.into(), cnn: Default::default(), train, sources, ast_head: Some(ast_meta), ina_head: None }
}

/// Train an ast-head student of the workspace inside a job: the AST, the embeddings (cached),
/// then the epochs.
pub fn run_training(
    ws: &Workspace,
    req: &super::TrainRequest,
    opts: &AstHeadOptions,
    ctx: &JobCtx,
) -> Result<serde_json::Value> {
    let dir = super::student_dir(ws, &req.name)?;
    let engine = select_engine(req, ctx)?;
    let saved = if req.resume { checkpoint::read_meta(&dir).ok() } else { None };
    let (src, expect) = match saved.as_ref().and_then(|m| m.ast_head.clone()) {
        Some(old) => (ast_for(&old)?, Some(old)),
        None => (locate_ast(opts.ast_dir.as_deref())?, None),
    };
    ctx.phase("loading AST");
    let (ast, mut am) = open_ast(&src, engine.clone(), expect.as_ref())?;
    let meta = match saved.filter(|m| m.ast_head.is_some()) {
        Some(mut old) => {
            old.train.epochs = req.train.epochs.max(old.train.epochs);
            old
        }
        None => {
            am.unfreeze = opts.unfreeze;
            am.ast_dir = opts.ast_dir.clone();
            new_meta(am, req.train.clone(), req.sources.clone())
        }
    };
    let Some(am) = meta.ast_head.clone() else { bail!("not an ast-head student") };
    ctx.log(format!(
        "AST {} ({} layers, hidden {}), {}",
        short(&am.checksum),
        am.num_hidden_layers,
        am.hidden_size,
        if am.unfreeze == 0 {
            "frozen encoder, cached embeddings".to_string()
        } else {
            format!("fine-tuning the last {} layer(s)", am.unfreeze)
        }
    ));
    if am.unfreeze > am.num_hidden_layers {
        bail!("--unfreeze {} but the AST has only {} layers", am.unfreeze, am.num_hidden_layers);
    }
    if am.unfreeze > 0 && !engine.gpu {
        ctx.log(format!(
            "warning: fine-tuning {} encoder layer(s) on the CPU is very slow; it is meant for --device gpu",
            am.unfreeze
        ));
    }
    fit(ws, req, &meta, &mut Backbone::Ast(ast), &dir, &engine.device, ctx)
}

/// The engine of a head student's training job (`req.device`), logged with its notice.
pub(crate) fn select_engine(req: &super::TrainRequest, ctx: &JobCtx) -> Result<Engine> {
    let engine = Engine::select(req.device).map_err(anyhow::Error::msg)?;
    ctx.log(format!(
        "device: {}{}",
        engine.description,
        engine.notice.as_ref().map(|n| format!(" — {n}")).unwrap_or_default()
    ));
    Ok(engine)
}

/// The common end of training a head student: its dataset (embeddings cached, or the audio when
/// layers are fine-tuned), the epochs, and the summary.
pub(crate) fn fit(
    ws: &Workspace,
    req: &super::TrainRequest,
    meta: &Meta,
    backbone: &mut Backbone,
    dir: &Path,
    device: &Device,
    ctx: &JobCtx,
) -> Result<serde_json::Value> {
    let am = head_shape(meta)?;
    let a = meta.train.augment;
    if a.gain_db > 0.0 || a.shift > 0.0 || a.noise_prob > 0.0 || a.band_prob > 0.0 || a.compress_prob > 0.0 {
        ctx.log(format!(
            "note: gain, shift, noise, band-limiting and compression augmentation do not apply to an {} student \
             (hard negatives do)",
            meta.kind
        ));
    }
    let mut store = ws.open_store()?;
    let (ds, cache) = workspace_dataset(ws, &mut store, &meta.sources, meta.train.targets, backbone, am.unfreeze, ctx)?;
    drop(store);
    if am.unfreeze == 0 {
        ctx.log(format!("embeddings: {} computed, {} from the cache", cache.computed, cache.cached));
    }
    ctx.check_cancel()?;
    let ast_ref = if am.unfreeze > 0 { backbone.ast_mut() } else { None };
    let st = train(&ds, meta, ast_ref, dir, device, req.resume, ctx)?.state;
    Ok(json!({
        "name": req.name,
        "kind": meta.kind,
        "dir": dir.display().to_string(),
        "epochs_done": st.epochs_done,
        "best_epoch": st.best_epoch,
        "best_dev_macro_f1": st.best_metric,
        "stopped_early": st.stopped_early,
        "train_examples": ds.train.len(),
        "dev_examples": ds.dev.len(),
        "embeddings_computed": cache.computed,
        "embeddings_cached": cache.cached,
        "skipped": cache.failed,
    }))
}

// ---------------------------------------------------------------------------------------------
// Scoring

/// A trained head student ready to score waveforms: the frozen backbone it was trained on (the AST
/// or INA's CNN) and its best head.
pub struct HeadScorer {
    backbone: Mutex<Backbone>,
    net: AstHeadNet,
    device: Device,
}

impl HeadScorer {
    /// Load the best checkpoint of the head student in `dir` (whose meta is `meta`) and the
    /// backbone it needs; a clear error when those weights are gone.
    pub fn load(dir: &Path, meta: &Meta, device: &Device) -> Result<HeadScorer> {
        let engine = Engine {
            device: device.clone(),
            description: String::new(),
            gpu: !crate::engine::is_host_inference_device(device),
            notice: None,
            max_binding: crate::engine::probed_max_binding(),
        };
        let shape = head_shape(meta).with_context(|| format!("{} is not a head student", dir.display()))?;
        let backbone = match (&meta.ast_head, &meta.ina_head) {
            (Some(am), _) => Backbone::Ast(open_ast(&ast_for(am)?, engine, Some(am))?.0),
            (None, Some(im)) => Backbone::Ina(super::ina_head::open_ina(engine, Some(im))?),
            (None, None) => bail!("{} is not a head student", dir.display()),
        };
        let net = {
            let ast = match &backbone {
                Backbone::Ast(a) => Some(a),
                Backbone::Ina(_) => None,
            };
            checkpoint::load_best_into(dir, skeleton(&shape, ast, meta.train.seed, device)?)?.valid()
        };
        Ok(HeadScorer { backbone: Mutex::new(backbone), net, device: device.clone() })
    }

    /// A scorer from an in-memory network (e.g. right after training) on the AST.
    pub fn from_net(ast: AstTeacher, net: AstHeadNet) -> HeadScorer {
        Self::with_backbone(Backbone::Ast(ast), net)
    }

    /// A scorer from an in-memory network on any backbone.
    pub fn with_backbone(backbone: Backbone, net: AstHeadNet) -> HeadScorer {
        let device = match &backbone {
            Backbone::Ast(a) => a.engine().device.clone(),
            Backbone::Ina(i) => i.engine().device.clone(),
        };
        HeadScorer { backbone: Mutex::new(backbone), net: net.valid(), device }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Backbone>> {
        self.backbone.lock().map_err(|_| anyhow!("the backbone is poisoned by an earlier panic"))
    }

    /// Sigmoid scores (speech, music, noise) of 16-kHz waveforms.
    pub fn score_waves(&self, waves: &[&[f32]]) -> Result<Vec<[f32; 3]>> {
        Ok(self.score_waves_embedding(waves)?.0)
    }

    /// [`score_waves`](Self::score_waves), and the embeddings computed on the way with their cache key
    /// `(backbone checksum, kind)` when the backbone is frozen (so scoring fills the workspace's embedding cache and
    /// the next round's student scores these segments without the backbone).
    #[allow(clippy::type_complexity)]
    pub fn score_waves_embedding(
        &self,
        waves: &[&[f32]],
    ) -> Result<(Vec<[f32; 3]>, Option<(String, &'static str, Vec<Vec<f32>>)>)> {
        let mut backbone = self.lock()?;
        if let Some(i) = waves.iter().position(|s| s.iter().any(|v| !v.is_finite())) {
            bail!("segment {i} of the batch holds non-finite samples");
        }
        if self.net.unfrozen() == 0 {
            let embs = backbone.embed(waves)?;
            let key = (backbone.checksum().to_string(), backbone.embedding_kind());
            let scores = self.score_embeddings(&embs)?;
            return Ok((scores, Some((key.0, key.1, embs))));
        }
        let examples: Vec<HeadExample> = waves
            .iter()
            .map(|w| HeadExample {
                segment_id: 0,
                input: HeadInput::Wave(Wave::Samples(Arc::new(w.to_vec()))),
                target: [0.0; 3],
                weight: 1.0,
            })
            .collect();
        let refs: Vec<&HeadExample> = examples.iter().collect();
        Ok((predict(&self.net, backbone.ast_mut(), &refs, &self.device)?, None))
    }

    /// Scores from the workspace's embedding cache, without audio: one entry per id, `None` where no vector of this
    /// backbone is cached (or when the student fine-tuned encoder layers, whose input the cache does not hold).
    pub fn score_cached(&self, store: &Store, ids: &[i64]) -> Result<Vec<Option<[f32; 3]>>> {
        let mut out = vec![None; ids.len()];
        if self.net.unfrozen() > 0 {
            return Ok(out);
        }
        let (checksum, kind, dim) = {
            let b = self.lock()?;
            (b.checksum().to_string(), b.embedding_kind(), b.dim())
        };
        let found = store.embeddings_of(&checksum, kind, dim, ids)?;
        let hits: Vec<usize> = (0..ids.len()).filter(|i| found.contains_key(&ids[*i])).collect();
        for chunk in hits.chunks(256) {
            let embs: Vec<Vec<f32>> = chunk.iter().map(|&i| found[&ids[i]].clone()).collect();
            for (&i, s) in chunk.iter().zip(self.score_embeddings(&embs)?) {
                out[i] = Some(s);
            }
        }
        Ok(out)
    }

    /// Scores of cached embeddings (frozen encoder only).
    pub fn score_embeddings(&self, embs: &[Vec<f32>]) -> Result<Vec<[f32; 3]>> {
        let examples: Vec<HeadExample> = embs
            .iter()
            .map(|e| HeadExample {
                segment_id: 0,
                input: HeadInput::Embedding(e.clone()),
                target: [0.0; 3],
                weight: 1.0,
            })
            .collect();
        let refs: Vec<&HeadExample> = examples.iter().collect();
        predict(&self.net, None, &refs, &self.device)
    }

    pub fn net(&self) -> &AstHeadNet {
        &self.net
    }
}
