//! Whisper's audio encoder and Whisper-AT's TL-TR head as burn modules, any size (the dimensions come from the
//! checkpoint's `dims`).
//!
//! Encoder (`whisper/model.py` `AudioEncoder`): `conv1(80→d, k3, p1)` + GELU, `conv2(d→d, k3, s2, p1)` + GELU,
//! + `positional_embedding[:tokens]` (read from the checkpoint), L pre-LN blocks (LayerNorm eps 1e-5; attention
//! with a bias-free key projection and q·kᵀ scaled by d_h^−½ — Whisper scales q and k by d_h^−¼ each; exact GELU
//! MLP 4d). Whisper-AT keeps every block's output average-pooled over 20 tokens (`avg_pool2d(kernel=(20, 1))`);
//! `ln_post` is not used.
//!
//! TL-TR head (`whisper_at/model.py` `ATModel`, `tl_tr_1_8` or `tl_down_tr_<w>_1_8`): the pooled features of one
//! 10 s window (25 steps per layer) → (`down_layer`: LayerNorm + Linear d→w) → `time_tr` (a Whisper block, 1 head)
//! per layer → mean over time → `layer_tr` (a Whisper block, 8 heads) over the layers → mean over layers →
//! LayerNorm + Linear → 527 logits. No positional encoding in the head.

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, Linear};
use burn::tensor::activation::gelu;
use burn::tensor::module::{attention, conv1d};
use burn::tensor::ops::{AttentionModuleOptions, ConvOptions};
use burn::tensor::{Device, Tensor};

use super::config::{HeadKind, WhisperDims};
use super::features::{Context, N_MELS};
use crate::teachers::ast::model::{cpu_attention, cpu_gelu};
use crate::teachers::weights::WeightsError;
use crate::teachers::weights::layers::Loader;
use crate::teachers::weights::torch::TorchCheckpoint;

/// LayerNorm epsilon everywhere in Whisper and the head.
const EPS: f64 = 1e-5;
/// Encoder tokens averaged into one pooled step.
pub const POOL: usize = 20;
/// Pooled steps per 10 s decision window (`time_resolution * 2.5`).
pub const WINDOW: usize = 25;
/// Heads of the head's time and layer transformers (`_1_8` in every published head).
pub const TIME_HEADS: usize = 1;
pub const LAYER_HEADS: usize = 8;

/// Whisper's `ResidualAttentionBlock` without cross-attention.
#[derive(Module, Debug)]
pub struct Block {
    attn_ln: LayerNorm,
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    mlp_ln: LayerNorm,
    mlp0: Linear,
    mlp2: Linear,
    #[module(skip)]
    heads: usize,
}

impl Block {
    fn load(l: &mut Loader, name: &str, d: usize, heads: usize) -> Result<Block, WeightsError> {
        Ok(Block {
            attn_ln: l.layer_norm(&format!("{name}.attn_ln"), d, EPS)?,
            query: l.linear(&format!("{name}.attn.query"), d, d)?,
            key: l.linear_opt_bias(&format!("{name}.attn.key"), d, d, false)?,
            value: l.linear(&format!("{name}.attn.value"), d, d)?,
            out: l.linear(&format!("{name}.attn.out"), d, d)?,
            mlp_ln: l.layer_norm(&format!("{name}.mlp_ln"), d, EPS)?,
            mlp0: l.linear(&format!("{name}.mlp.0"), d, 4 * d)?,
            mlp2: l.linear(&format!("{name}.mlp.2"), 4 * d, d)?,
            heads,
        })
    }

    fn forward(&self, x: Tensor<3>, cpu: bool) -> Tensor<3> {
        let [b, n, d] = x.dims();
        let dh = d / self.heads;
        let h = self.attn_ln.forward(x.clone());
        let split = |t: Tensor<3>| t.reshape([b, n, self.heads, dh]).swap_dims(1, 2);
        let q = split(self.query.forward(h.clone()));
        let k = split(self.key.forward(h.clone()));
        let v = split(self.value.forward(h));
        let ctx = if cpu { cpu_attention(q, k, v) } else { chunked_attention(q, k, v) };
        let x = x + self.out.forward(ctx.swap_dims(1, 2).reshape([b, n, d]));
        let y = self.mlp0.forward(self.mlp_ln.forward(x.clone()));
        let y = if cpu { cpu_gelu(y) } else { gelu(y) };
        x + self.mlp2.forward(y)
    }
}

/// Largest attention-score tensor one call builds on a GPU (bytes): adapters cap a storage buffer (lavapipe and many
/// cards at 128 MiB), and large-v2 at 1500 tokens has 20 × 1500² scores per segment (180 MB).
const MAX_SCORES_BYTES: usize = 64 << 20;

/// `softmax(q·kᵀ/√d_h)·v` through burn, over blocks of queries so that no score tensor exceeds
/// [`MAX_SCORES_BYTES`] (each query row's softmax is independent: the result is the same).
fn chunked_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    let [b, h, n, _] = q.dims();
    let m = k.dims()[2];
    let per_row = b * h * m * 4;
    let rows = (MAX_SCORES_BYTES / per_row.max(1)).max(1);
    if rows >= n {
        return attention(q, k, v, None, None, AttentionModuleOptions::default());
    }
    let mut parts = Vec::with_capacity(n.div_ceil(rows));
    let mut start = 0;
    while start < n {
        let len = rows.min(n - start);
        parts.push(attention(
            q.clone().narrow(2, start, len),
            k.clone(),
            v.clone(),
            None,
            None,
            AttentionModuleOptions::default(),
        ));
        start += len;
    }
    Tensor::cat(parts, 2)
}

/// Whisper's audio encoder, returning every block's pooled output.
#[derive(Module, Debug)]
pub struct Encoder {
    conv1_w: Param<Tensor<3>>,
    conv1_b: Param<Tensor<1>>,
    conv2_w: Param<Tensor<3>>,
    conv2_b: Param<Tensor<1>>,
    positions: Param<Tensor<2>>,
    blocks: Vec<Block>,
    #[module(skip)]
    cpu_kernels: bool,
}

impl Encoder {
    /// The encoder of `dims` from an OpenAI checkpoint's `model_state_dict` (`encoder.*`; nothing else is read).
    pub fn load(dims: &WhisperDims, ckpt: &mut TorchCheckpoint, device: &Device) -> Result<Encoder, WeightsError> {
        let d = dims.n_audio_state;
        let mut l = Loader { ckpt, device };
        let mut blocks = Vec::with_capacity(dims.n_audio_layer);
        for i in 0..dims.n_audio_layer {
            blocks.push(Block::load(&mut l, &format!("encoder.blocks.{i}"), d, dims.n_audio_head)?);
        }
        Ok(Encoder {
            conv1_w: l.param("encoder.conv1.weight", [d, N_MELS, 3])?,
            conv1_b: l.param("encoder.conv1.bias", [d])?,
            conv2_w: l.param("encoder.conv2.weight", [d, d, 3])?,
            conv2_b: l.param("encoder.conv2.bias", [d])?,
            positions: l.param("encoder.positional_embedding", [dims.n_audio_ctx, d])?,
            blocks,
            cpu_kernels: false,
        })
    }

    pub fn num_layers(&self) -> usize {
        self.blocks.len()
    }

    /// `[B, 80, frames]` log-mel → `[B, L, frames / 40, d]`: every block's output averaged over 20 tokens.
    pub fn forward_pooled(&self, mel: Tensor<3>) -> Tensor<4> {
        let cpu = self.cpu_kernels;
        let act = |t: Tensor<3>| if cpu { cpu_gelu(t) } else { gelu(t) };
        let x = act(conv1d(mel, self.conv1_w.val(), Some(self.conv1_b.val()), ConvOptions::new([1], [1], [1], 1)));
        let x = act(conv1d(x, self.conv2_w.val(), Some(self.conv2_b.val()), ConvOptions::new([2], [1], [1], 1)));
        let [b, d, n] = x.dims();
        let pos = self.positions.val().narrow(0, 0, n).unsqueeze_dim::<3>(0);
        let mut x = x.swap_dims(1, 2) + pos;
        let mut pooled = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            x = block.forward(x, cpu);
            pooled.push(x.clone().reshape([b, n / POOL, POOL, d]).mean_dim(2).reshape([b, 1, n / POOL, d]));
        }
        Tensor::cat(pooled, 1)
    }
}

/// Whisper-AT's TL-TR head.
#[derive(Module, Debug)]
pub struct Head {
    down: Option<(LayerNorm, Linear)>,
    time_tr: Block,
    layer_tr: Block,
    norm: LayerNorm,
    classifier: Linear,
    #[module(skip)]
    cpu_kernels: bool,
}

impl Head {
    /// The head of a whisper-at `.pth` (`at_model.*`) for an encoder of width `d`; `kind` from [`HeadKind::detect`].
    pub fn load(
        kind: HeadKind,
        d: usize,
        labels: usize,
        ckpt: &mut TorchCheckpoint,
        device: &Device,
    ) -> Result<Head, WeightsError> {
        let mut l = Loader { ckpt, device };
        let (down, w) = match kind {
            HeadKind::TlTr => (None, d),
            HeadKind::TlDownTr(w) => {
                (Some((l.layer_norm("at_model.down_layer.0", d, EPS)?, l.linear("at_model.down_layer.1", d, w)?)), w)
            }
        };
        if w % LAYER_HEADS != 0 {
            return Err(WeightsError(format!(
                "head width {w} is not a multiple of the layer transformer's {LAYER_HEADS} heads"
            )));
        }
        Ok(Head {
            down,
            time_tr: Block::load(&mut l, "at_model.time_tr", w, TIME_HEADS)?,
            layer_tr: Block::load(&mut l, "at_model.layer_tr", w, LAYER_HEADS)?,
            norm: l.layer_norm("at_model.mlp_layer.0", w, EPS)?,
            classifier: l.linear("at_model.mlp_layer.1", w, labels)?,
            cpu_kernels: false,
        })
    }

    /// `[B, L, 25, d]` pooled features of one 10 s window → `[B, labels]` logits.
    pub fn forward(&self, pooled: Tensor<4>) -> Tensor<2> {
        let [b, l, t, d] = pooled.dims();
        let mut x = pooled.reshape([b * l, t, d]);
        if let Some((ln, lin)) = &self.down {
            x = lin.forward(ln.forward(x));
        }
        let x = self.time_tr.forward(x, self.cpu_kernels);
        let w = x.dims()[2];
        let x = x.mean_dim(1).reshape([b, l, w]);
        let x = self.layer_tr.forward(x, self.cpu_kernels).mean_dim(1).reshape([b, w]);
        self.classifier.forward(self.norm.forward(x))
    }
}

/// Encoder + head.
#[derive(Module, Debug)]
pub struct WhisperAt {
    pub encoder: Encoder,
    pub head: Head,
}

impl WhisperAt {
    /// Softmax and GELU on the CPU kernels (inference on a host device only).
    pub fn with_cpu_kernels(mut self, on: bool) -> Self {
        self.encoder.cpu_kernels = on;
        self.head.cpu_kernels = on;
        self
    }

    /// `[B, 80, context.frames()]` → (`[B, L, frames / 40, d]` pooled features, `[B, labels]` logits of the first
    /// 10 s window — the row `transcribe()` gives for a segment at seek 0).
    pub fn forward(&self, mel: Tensor<3>, context: Context) -> (Tensor<4>, Tensor<2>) {
        debug_assert_eq!(mel.dims()[2], context.frames());
        let pooled = self.encoder.forward_pooled(mel);
        let window = pooled.clone().narrow(2, 0, WINDOW);
        let logits = self.head.forward(window);
        (pooled, logits)
    }
}
