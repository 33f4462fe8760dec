//! The training loop: weighted BCE-with-logits with per-class `pos_weight`, Adam, per-epoch gold
//! dev validation (per-class and macro F1), early stopping, best-checkpoint saving, checkpoint
//! after every epoch, and resume from the last one. Deterministic for a seed: the data order and
//! augmentations come from a seeded generator saved in each checkpoint, and the initial weights
//! from the same kind of generator.

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::{log_sigmoid, sigmoid};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::checkpoint::{self, Meta};
use super::data::{Augment, Dataset, Example, Rng, augment, normalise};
use super::model::{CnnConfig, CnnStudent};
use crate::eval::metrics;
use crate::jobs::{JobCtx, JobError};
use crate::labels::LabelSet;

/// Training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// Stop after this many epochs without a better dev macro F1 (0 = never stop early).
    pub patience: usize,
    pub seed: u64,
    /// Decision threshold on sigmoid scores for dev F1.
    pub threshold: f32,
    pub augment: Augment,
    /// Soft targets and confidence weights from pseudo-label scores (off in checkpoints written before them).
    #[serde(default)]
    pub targets: super::data::Targets,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 20,
            batch_size: 16,
            lr: 1e-3,
            patience: 5,
            seed: 0,
            threshold: 0.5,
            augment: Augment::default(),
            targets: super::data::Targets::default(),
        }
    }
}

/// What one epoch did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based epoch number.
    pub epoch: usize,
    pub loss: f64,
    /// Examples seen (hard negatives included).
    pub examples: usize,
    pub dev_f1: Option<[f64; 3]>,
    pub dev_macro_f1: Option<f64>,
}

/// What one epoch gave: mean training loss, examples seen, dev (per-class F1, macro F1) when there is gold dev.
#[derive(Debug, Clone, Copy)]
pub struct EpochEnd {
    pub epoch: usize,
    pub loss: f64,
    pub examples: usize,
    pub dev: Option<([f64; 3], f64)>,
}

/// Everything needed to continue training exactly where it stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub epochs_done: usize,
    pub rng: Rng,
    pub best_metric: Option<f64>,
    pub best_epoch: usize,
    pub bad_epochs: usize,
    pub history: Vec<EpochLog>,
    /// Training examples that were confident false positives in the last epoch.
    pub hard: Vec<usize>,
    pub stopped_early: bool,
}

/// The order of one epoch (both student kinds): every training example once, plus last epoch's confident false
/// positives `reps` more times each (the hard-negative oversampling), shuffled with `rng`.
pub fn epoch_order(n_train: usize, hard: &[usize], reps: usize, rng: &mut Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n_train).collect();
    for _ in 0..reps {
        order.extend(hard.iter().copied().filter(|&i| i < n_train));
    }
    rng.shuffle(&mut order);
    order
}

/// Weighted BCE with logits, `−(pw·y·logσ(x) + (1−y)·logσ(−x))` averaged over classes and example weights `w`
/// (`[n, 1]`, summing to `wsum`); `pw` is the per-class `pos_weight` (`[1, 3]`).
pub fn weighted_bce(logits: Tensor<2>, y: Tensor<2>, w: Tensor<2>, pw: Tensor<2>, wsum: f32) -> Tensor<1> {
    let pos = y.clone() * pw * log_sigmoid(logits.clone());
    let neg = (y.neg().add_scalar(1.0)) * log_sigmoid(logits.neg());
    ((pos + neg).neg() * w).sum().div_scalar((wsum.max(1e-6) * 3.0) as f64)
}

/// Add to `hard` the examples of a batch (`chunk`: their training indices) that are confident false positives:
/// probability > 0.8 for a class their target says is off (duplicates are removed at the end of the epoch).
pub fn note_hard_negatives(logits: Tensor<2>, targets: &[f32], chunk: &[usize], hard: &mut Vec<usize>) {
    let probs: Vec<f32> = sigmoid(logits.detach()).into_data().try_to_vec::<f32>().unwrap_or_default();
    for (k, &i) in chunk.iter().enumerate() {
        if (0..3).any(|c| targets[k * 3 + c] < 0.5 && probs.get(k * 3 + c).is_some_and(|&p| p > 0.8)) {
            hard.push(i);
        }
    }
}

impl TrainState {
    /// Book finished epoch `epoch` (both student kinds): the best metric is the dev macro F1 (−loss without gold dev),
    /// patience counts epochs without a better one, the epoch joins the history; the confident false positives in
    /// `hard` and the data-order `rng` carry over to the next epoch. Returns whether this epoch is the best so far.
    pub fn end_epoch(&mut self, end: EpochEnd, rng: Rng, mut hard: Vec<usize>, patience: usize) -> bool {
        let EpochEnd { epoch, loss, examples, dev } = end;
        let metric = dev.map_or(-loss, |d| d.1);
        let is_best = self.best_metric.is_none_or(|b| metric > b);
        if is_best {
            self.best_metric = Some(metric);
            self.best_epoch = epoch;
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
        }
        self.epochs_done = epoch;
        self.rng = rng;
        hard.sort_unstable();
        hard.dedup();
        self.hard = hard;
        self.history.push(EpochLog { epoch, loss, examples, dev_f1: dev.map(|d| d.0), dev_macro_f1: dev.map(|d| d.1) });
        if patience > 0 && self.bad_epochs >= patience {
            self.stopped_early = true;
        }
        is_best
    }

    /// Report the epoch just booked with [`end_epoch`](Self::end_epoch) to the job (metrics and a log line).
    pub fn report_epoch(&self, ctx: &JobCtx, end: &EpochEnd, is_best: bool, patience: usize) {
        let (epoch, loss) = (end.epoch, end.loss);
        ctx.metric("loss", loss);
        match end.dev {
            Some((f, m)) => {
                ctx.metric("dev_macro_f1", m);
                ctx.log(format!(
                    "epoch {epoch}: loss {loss:.4}, dev F1 speech {:.3} music {:.3} noise {:.3}, macro {m:.3}{}",
                    f[0],
                    f[1],
                    f[2],
                    if is_best { " (best)" } else { "" }
                ));
            }
            None => ctx.log(format!("epoch {epoch}: loss {loss:.4} (no gold dev segments to validate on)")),
        }
        if self.stopped_early {
            ctx.log(format!("early stop: no better dev macro F1 for {patience} epochs"));
        }
    }

    /// The state before the first epoch.
    pub fn new(seed: u64) -> TrainState {
        TrainState {
            epochs_done: 0,
            rng: Rng::new(seed),
            best_metric: None,
            best_epoch: 0,
            bad_epochs: 0,
            history: Vec::new(),
            hard: Vec::new(),
            stopped_early: false,
        }
    }
}

/// The result of a training run: the final state and the last epoch's weights.
pub struct Trained {
    pub state: TrainState,
    pub model: CnnStudent,
}

/// Initial weights from our own seeded generator (burn's initialisers draw lazily from a
/// process-wide generator, so concurrent trainings would not be reproducible): He-uniform for
/// conv and linear weights, zero biases; batch-norm keeps its ones/zeros.
struct SeededInit {
    rng: Rng,
    path: Vec<String>,
}

impl burn::module::ModuleMapper for SeededInit {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: burn::module::Param<Tensor<D>>) -> burn::module::Param<Tensor<D>> {
        if self.path.iter().any(|p| p == "norm") {
            return param;
        }
        let rng = &mut self.rng;
        param.map(|t| {
            let dims = t.dims();
            let n: usize = dims.iter().product();
            let fan_in = match D {
                1 => 0,
                // burn's Linear weight is [d_in, d_out].
                2 => dims[0],
                _ => dims[1..].iter().product(),
            };
            let v: Vec<f32> = if fan_in == 0 {
                vec![0.0; n]
            } else {
                let bound = (6.0 / fan_in as f32).sqrt();
                (0..n).map(|_| (rng.unit() * 2.0 - 1.0) * bound).collect()
            };
            let grad = t.is_require_grad();
            Tensor::<D>::from_data(TensorData::new(v, dims), &t.device()).set_require_grad(grad)
        })
    }
}

/// A freshly initialised network, identical for identical seeds.
pub fn init_model(cnn: &CnnConfig, seed: u64, device: &Device) -> CnnStudent {
    CnnStudent::new(cnn, device).map(&mut SeededInit { rng: Rng::new(seed ^ 0x1A17), path: Vec::new() })
}

fn optimizer() -> ModuleOptimizer {
    AdamConfig::new().init()
}

/// A batch as an input tensor `[b, 1, n_mels, frames]` of normalised features.
pub fn batch_tensor(feats: &[&[f32]], n_mels: usize, frames: usize, device: &Device) -> Tensor<4> {
    let mut v = Vec::with_capacity(feats.len() * n_mels * frames);
    for f in feats {
        v.extend(f.iter().map(|&d| normalise(d)));
    }
    Tensor::from_data(TensorData::new(v, [feats.len(), 1, n_mels, frames]), device)
}

/// Sigmoid scores of `feats` by a model in evaluation mode, in batches.
pub fn predict(
    model: &CnnStudent,
    feats: &[&[f32]],
    n_mels: usize,
    frames: usize,
    device: &Device,
) -> Result<Vec<[f32; 3]>> {
    let mut out = Vec::with_capacity(feats.len());
    for chunk in feats.chunks(32) {
        let probs = sigmoid(model.forward(batch_tensor(chunk, n_mels, frames, device)));
        let v: Vec<f32> =
            probs.into_data().try_to_vec::<f32>().map_err(|e| anyhow::anyhow!("reading scores: {e:?}"))?;
        out.extend(v.chunks_exact(3).map(|c| [c[0], c[1], c[2]]));
    }
    Ok(out)
}

/// Per-class and macro F1 of `model` on the dev examples.
fn validate(model: &CnnStudent, ds: &Dataset, threshold: f32, device: &Device) -> Result<Option<([f64; 3], f64)>> {
    if ds.dev.is_empty() {
        return Ok(None);
    }
    let feats: Vec<&[f32]> = ds.dev.iter().map(|e| e.feats.as_slice()).collect();
    let scores = predict(model, &feats, ds.n_mels, ds.frames, device)?;
    let gold: Vec<LabelSet> = ds.dev.iter().map(Example::labels).collect();
    let pred: Vec<LabelSet> = scores.iter().map(|s| LabelSet::from_array(s.map(|p| p >= threshold))).collect();
    let conf = metrics::per_class(&gold, &pred);
    Ok(Some((conf.map(|c| c.f1()), metrics::macro_f1(&conf))))
}

/// Train (or resume) a student in `dir` on `ds`, reporting to `ctx`.
///
/// With `resume`, training continues after the last finished epoch saved in `dir` (nothing is
/// redone); without it, `dir` must not hold a checkpoint yet.
pub fn train(ds: &Dataset, meta: &Meta, dir: &Path, device: &Device, resume: bool, ctx: &JobCtx) -> Result<Trained> {
    let cfg = &meta.train;
    if cfg.batch_size == 0 || cfg.epochs == 0 {
        bail!("batch size and epochs must be at least 1");
    }
    if !(cfg.lr.is_finite() && cfg.lr > 0.0) {
        bail!("learning rate must be a positive number");
    }
    if ds.n_mels != meta.cnn.n_mels || ds.frames != meta.cnn.frames {
        bail!(
            "features are {}x{} but the network expects {}x{}",
            ds.n_mels,
            ds.frames,
            meta.cnn.n_mels,
            meta.cnn.frames
        );
    }
    if ds.frames < super::model::MIN_INPUT || ds.n_mels < super::model::MIN_INPUT {
        bail!("clips are too short for the network ({} frames)", ds.frames);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ad = device.clone().autodiff();
    let existing = checkpoint::last_state(dir)?;
    let (mut model, mut optim, mut st) = match (existing, resume) {
        (Some((ckpt, st)), true) => {
            let old = checkpoint::read_meta(dir)?;
            if old.cnn != meta.cnn {
                bail!("the checkpoint in {} has a different architecture; train under another name", dir.display());
            }
            let (m, o) = checkpoint::load_last(&ckpt, &meta.cnn, optimizer(), &ad)?;
            ctx.log(format!(
                "resuming after epoch {} (best dev macro F1 so far: {})",
                st.epochs_done,
                fmt_opt(st.best_metric)
            ));
            (m, o, st)
        }
        (Some(_), false) => {
            bail!("a student already exists in {}; resume it with --resume or choose another name", dir.display())
        }
        (None, r) => {
            if r {
                ctx.log("no checkpoint yet: starting from scratch");
            }
            (init_model(&meta.cnn, cfg.seed, &ad), optimizer(), TrainState::new(cfg.seed))
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
    let noise_idx = ds.noise_only();
    let synthetic_noise = synthetic_noise_features(ds.n_mels, ds.frames, cfg.seed);
    let per_epoch = ds.train.len().div_ceil(cfg.batch_size) as u64;
    let total = per_epoch * cfg.epochs as u64;
    ctx.resume_from(per_epoch * st.epochs_done as u64);
    ctx.progress(per_epoch * st.epochs_done as u64, Some(total));
    let (n_mels, frames) = (ds.n_mels, ds.frames);
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
            let mut feats: Vec<Vec<f32>> = Vec::with_capacity(chunk.len());
            let mut targets = Vec::with_capacity(chunk.len() * 3);
            let mut weights = Vec::with_capacity(chunk.len());
            for &i in chunk {
                let e = &ds.train[i];
                let mut f = e.feats.clone();
                let noise = if noise_idx.is_empty() || e.target[2] >= 0.5 {
                    Some(synthetic_noise.as_slice())
                } else {
                    Some(ds.train[noise_idx[rng.below(noise_idx.len())]].feats.as_slice())
                };
                augment(&mut f, frames, &cfg.augment, noise, &mut rng);
                feats.push(f);
                targets.extend_from_slice(&e.target);
                weights.push(e.weight);
            }
            let n = chunk.len();
            let wsum: f32 = weights.iter().sum();
            let refs: Vec<&[f32]> = feats.iter().map(|f| f.as_slice()).collect();
            let x = batch_tensor(&refs, n_mels, frames, &ad);
            let y = Tensor::<2>::from_data(TensorData::new(targets.clone(), [n, 3]), &ad);
            let w = Tensor::<2>::from_data(TensorData::new(weights, [n, 1]), &ad);
            let logits = model.forward(x);
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
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(cfg.lr, model, grads);
            ctx.progress(per_epoch * st.epochs_done as u64 + (b as u64 + 1).min(per_epoch), Some(total));
        }
        let loss = loss_sum / loss_n.max(1) as f64;
        let inner = device.clone();
        let dev = validate(&model.valid(), ds, cfg.threshold, &inner)?;
        let end = EpochEnd { epoch, loss, examples: order.len(), dev };
        let is_best = st.end_epoch(end, rng, hard, cfg.patience);
        checkpoint::save(dir, &model, &optim, &st, is_best)?;
        st.report_epoch(ctx, &end, is_best, cfg.patience);
    }
    // A finished job is not a cancelled one, even if cancel came after the last epoch.
    if ctx.is_cancelled() && st.epochs_done < cfg.epochs && !st.stopped_early {
        return Err(JobError::Cancelled.into());
    }
    Ok(Trained { state: st, model })
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into())
}

/// Log-mel features of seeded white noise (for noise mixing when the training set has no
/// noise-only examples).
pub fn synthetic_noise_features(n_mels: usize, frames: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed ^ 0xA5A5);
    let samples = frames * 160 + 240;
    let x: Vec<f32> = (0..samples).map(|_| (rng.unit() * 2.0 - 1.0) * 0.1).collect();
    let mut spec = crate::dsp::spectrogram::MelSpectrogrammer::new(crate::dsp::spectrogram::SpecConfig {
        n_mels,
        ..super::data::spec_config()
    });
    super::data::log_mel(&mut spec, &x, frames)
}
