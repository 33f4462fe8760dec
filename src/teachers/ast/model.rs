//! The AST ViT as a burn module, built from any `config.json` and filled from `model.safetensors` with the
//! Hugging Face key names (see `checkpoint`).
//!
//! `[B, T, F]` features → image `[B, 1, F, T]` → `Conv2d(1, D, k = p, stride = (fs, ts))` → patches flattened
//! frequency-major → `[cls, distillation, patches] + position embeddings` → L pre-LN layers (multi-head attention
//! with scale d_h^−½, exact GELU MLP) → LayerNorm → (tok₀ + tok₁)/2 → classifier LayerNorm → Linear → logits.

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, Linear};
use burn::tensor::activation::gelu;
use burn::tensor::module::{attention, conv2d};
use burn::tensor::ops::{AttentionModuleOptions, ConvOptions};
use burn::tensor::{Device, Tensor};

use super::AstError;
use super::config::AstConfig;
use crate::teachers::weights::layers::Loader;
use crate::teachers::weights::safetensors::Checkpoint;

const PREFIX: &str = "audio_spectrogram_transformer";

/// One pre-LN transformer layer.
#[derive(Module, Debug)]
pub struct AstLayer {
    ln_before: LayerNorm,
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    ln_after: LayerNorm,
    intermediate: Linear,
    output: Linear,
    #[module(skip)]
    heads: usize,
}

impl AstLayer {
    /// `cpu_kernels`: softmax and GELU through [`kernels`](super::kernels) (inference on the CPU only).
    fn forward(&self, h: Tensor<3>, cpu_kernels: bool) -> Tensor<3> {
        let [b, n, d] = h.dims();
        let dh = d / self.heads;
        let x = self.ln_before.forward(h.clone());
        let split = |t: Tensor<3>| t.reshape([b, n, self.heads, dh]).swap_dims(1, 2);
        let q = split(self.query.forward(x.clone()));
        let k = split(self.key.forward(x.clone()));
        let v = split(self.value.forward(x));
        let ctx = if cpu_kernels {
            cpu_attention(q, k, v)
        } else {
            attention(q, k, v, None, None, AttentionModuleOptions::default())
        };
        let ctx = ctx.swap_dims(1, 2).reshape([b, n, d]);
        let h = self.attn_out.forward(ctx) + h;
        let y = self.intermediate.forward(self.ln_after.forward(h.clone()));
        let y = if cpu_kernels { cpu_gelu(y) } else { gelu(y) };
        self.output.forward(y) + h
    }
}

/// `softmax(q·kᵀ/√d_h)·v` with the two products on burn (gemm) and the softmax in place on the scores' memory.
pub(crate) fn cpu_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    let [_, _, n, dh] = q.dims();
    let device = q.device();
    let scores = (q * (dh as f64).powf(-0.5)).matmul(k.swap_dims(2, 3));
    let mut data = scores.into_data();
    match data.as_mut_slice::<f32>() {
        Ok(s) => super::kernels::softmax_rows_inplace(s, n),
        Err(_) => return burn::tensor::activation::softmax(Tensor::<4>::from_data(data, &device), 3).matmul(v),
    }
    Tensor::<4>::from_data(data, &device).matmul(v)
}

/// Exact GELU in place on the tensor's memory.
pub(crate) fn cpu_gelu<const D: usize>(y: Tensor<D>) -> Tensor<D> {
    let device = y.device();
    let mut data = y.into_data();
    match data.as_mut_slice::<f32>() {
        Ok(s) => super::kernels::gelu_inplace(s),
        Err(_) => return gelu(Tensor::<D>::from_data(data, &device)),
    }
    Tensor::<D>::from_data(data, &device)
}

/// The whole model.
#[derive(Module, Debug)]
pub struct AstModel {
    patch_weight: Param<Tensor<4>>,
    patch_bias: Param<Tensor<1>>,
    cls_token: Param<Tensor<3>>,
    distillation_token: Param<Tensor<3>>,
    position_embeddings: Param<Tensor<3>>,
    layers: Vec<AstLayer>,
    layernorm: LayerNorm,
    head_layernorm: LayerNorm,
    head: Linear,
    #[module(skip)]
    strides: [usize; 2],
    #[module(skip)]
    input: [usize; 2],
    /// Softmax and GELU on the CPU kernels of [`kernels`](super::kernels) (off unless the owner turns it on for
    /// CPU inference: those tensors leave burn's graph).
    #[module(skip)]
    cpu_kernels: bool,
}

/// The final LayerNorm, then the mean of the cls and distillation tokens: `[B, N, D]` → `[B, D]`.
fn pool(layernorm: &LayerNorm, h: Tensor<3>) -> Tensor<2> {
    let [b, _, d] = h.dims();
    let h = layernorm.forward(h);
    (h.clone().narrow(1, 0, 1) + h.narrow(1, 1, 1)).reshape([b, d]) * 0.5
}

/// The last encoder layers and the final LayerNorm of an [`AstModel`], as a module of their own (the trainable
/// part when a student fine-tunes the end of the encoder).
#[derive(Module, Debug)]
pub struct AstTail {
    layers: Vec<AstLayer>,
    layernorm: LayerNorm,
}

impl AstTail {
    /// Token sequence after the frozen prefix `[B, N, D]` → pooled embedding `[B, D]`.
    pub fn forward(&self, mut h: Tensor<3>) -> Tensor<2> {
        for layer in &self.layers {
            h = layer.forward(h, false);
        }
        pool(&self.layernorm, h)
    }

    /// Number of layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }
}

impl AstModel {
    /// Build the model `cfg` describes from the checkpoint's tensors (every expected tensor must be there with the
    /// expected shape; see [`Checkpoint::unused`] for extra ones).
    pub fn load(cfg: &AstConfig, ckpt: &mut Checkpoint, device: &Device) -> Result<AstModel, AstError> {
        let d = cfg.hidden_size;
        let p = cfg.patch_size;
        let eps = cfg.layer_norm_eps;
        let mut l = Loader { ckpt, device };
        let e = format!("{PREFIX}.embeddings");
        let patch_weight = l.param(&format!("{e}.patch_embeddings.projection.weight"), [d, 1, p, p])?;
        let patch_bias = l.param(&format!("{e}.patch_embeddings.projection.bias"), [d])?;
        let cls_token = l.param(&format!("{e}.cls_token"), [1, 1, d])?;
        let distillation_token = l.param(&format!("{e}.distillation_token"), [1, 1, d])?;
        let position_embeddings = l.param(&format!("{e}.position_embeddings"), [1, cfg.num_patches() + 2, d])?;
        if !cfg.qkv_bias {
            return Err(AstError::Config("qkv_bias = false is not supported (AST checkpoints have biases)".into()));
        }
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let n = format!("{PREFIX}.encoder.layer.{i}");
            let im = cfg.intermediate_size;
            layers.push(AstLayer {
                ln_before: l.layer_norm(&format!("{n}.layernorm_before"), d, eps)?,
                query: l.linear(&format!("{n}.attention.attention.query"), d, d)?,
                key: l.linear(&format!("{n}.attention.attention.key"), d, d)?,
                value: l.linear(&format!("{n}.attention.attention.value"), d, d)?,
                attn_out: l.linear(&format!("{n}.attention.output.dense"), d, d)?,
                ln_after: l.layer_norm(&format!("{n}.layernorm_after"), d, eps)?,
                intermediate: l.linear(&format!("{n}.intermediate.dense"), d, im)?,
                output: l.linear(&format!("{n}.output.dense"), im, d)?,
                heads: cfg.num_attention_heads,
            });
        }
        Ok(AstModel {
            patch_weight,
            patch_bias,
            cls_token,
            distillation_token,
            position_embeddings,
            layers,
            layernorm: l.layer_norm(&format!("{PREFIX}.layernorm"), d, eps)?,
            head_layernorm: l.layer_norm("classifier.layernorm", d, eps)?,
            head: l.linear("classifier.dense", d, cfg.num_labels())?,
            strides: [cfg.frequency_stride, cfg.time_stride],
            input: [cfg.max_length, cfg.num_mel_bins],
            cpu_kernels: false,
        })
    }

    /// Run softmax and GELU on the CPU kernels (for inference on a CPU device: faster, same results within 1e-6).
    pub fn with_cpu_kernels(mut self, on: bool) -> Self {
        self.cpu_kernels = on;
        self
    }

    /// `[B, max_length, num_mel_bins]` features → `[B, num_labels]` logits: [`embed`](Self::embed), then the
    /// classifier (LayerNorm → Linear).
    pub fn forward(&self, x: Tensor<3>) -> Tensor<2> {
        self.head.forward(self.head_layernorm.forward(self.embed(x)))
    }

    /// `[B, max_length, num_mel_bins]` features → `[B, hidden]`: the pooled vector the classifier sees (the mean
    /// of the cls and distillation tokens after the encoder's final LayerNorm).
    pub fn embed(&self, x: Tensor<3>) -> Tensor<2> {
        let h = self.encode(x, self.layers.len());
        pool(&self.layernorm, h)
    }

    /// The token sequence `[B, 2 + patches, hidden]` after the patch embedding and the first `layers` encoder
    /// layers (all of them when `layers` is larger): the frozen prefix when the last layers are fine-tuned.
    pub fn encode(&self, x: Tensor<3>, layers: usize) -> Tensor<3> {
        let [b, _, _] = x.dims();
        let img = x.swap_dims(1, 2).unsqueeze_dim::<4>(1);
        let patches = conv2d(
            img,
            self.patch_weight.val(),
            Some(self.patch_bias.val()),
            ConvOptions::new(self.strides, [0, 0], [1, 1], 1),
        );
        let [_, d, fg, tg] = patches.dims();
        let emb = patches.reshape([b, d, fg * tg]).swap_dims(1, 2);
        let cls = self.cls_token.val().expand([b, 1, d]);
        let dist = self.distillation_token.val().expand([b, 1, d]);
        let mut h = Tensor::cat(vec![cls, dist, emb], 1) + self.position_embeddings.val();
        for layer in self.layers.iter().take(layers) {
            h = layer.forward(h, self.cpu_kernels);
        }
        h
    }

    /// A copy of the last `k` encoder layers and the final LayerNorm (`k` ≤ the number of layers), to be trained
    /// on top of [`encode`](Self::encode)`(x, L − k)`.
    pub fn tail(&self, k: usize) -> AstTail {
        let k = k.min(self.layers.len());
        AstTail { layers: self.layers[self.layers.len() - k..].to_vec(), layernorm: self.layernorm.clone() }
    }

    /// Number of encoder layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Width of the pooled embedding.
    pub fn hidden_size(&self) -> usize {
        self.cls_token.val().dims()[2]
    }

    /// Features per segment expected by [`forward`](Self::forward): `[max_length, num_mel_bins]`.
    pub fn input_shape(&self) -> [usize; 2] {
        self.input
    }
}
