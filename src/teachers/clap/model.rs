//! CLAP on burn: HTSAT (the audio tower), RoBERTa (the text tower), both projections and the logit scale, built from
//! any [`ClapConfig`] and filled from `model.safetensors` with the Hugging Face key names.
//!
//! Audio `[B, frames, mels]` → BatchNorm over mel bins (running stats) → bicubic (A = −0.75, align_corners) resize
//! of time to `spec_size · freq_ratio` → the `[spec, spec]` image of `freq_ratio` stacked time chunks → 4×4 patch
//! conv + LN → Swin stages (windowed attention with relative-position bias, cyclic shift by window/2 on odd blocks
//! with the −100 region mask, exact-GELU MLP, patch merging (r0c0, r1c0, r0c1, r1c1) → LN → Linear(4C→2C)) → LN →
//! mean over tokens → Linear → ReLU → Linear → L2-normalise.
//!
//! Text ids → word + position (`padding_idx + 1 + i`) + token-type-0 embeddings → LN → post-LN BERT layers →
//! pooler `tanh(W·h₀ + b)` → Linear → ReLU → Linear → L2-normalise.

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, Linear};
use burn::tensor::activation::{gelu, relu, softmax};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};

use super::ClapError;
use super::config::{AudioConfig, ClapConfig, Stage, TextConfig};
use crate::teachers::weights::layers::Loader;
use crate::teachers::weights::safetensors::Checkpoint;
use crate::teachers::weights::{TensorSource, WeightsError};

/// What loading CLAP needs of a checkpoint beyond [`TensorSource`]: PyTorch's integer buffers (checked or
/// acknowledged) and the tensors left unread (a checkpoint with more than the config implies is refused).
pub trait ClapSource: TensorSource {
    fn has(&self, name: &str) -> bool;
    /// Integer buffer `name`, which must have exactly `shape`.
    fn take_ints(&mut self, name: &str, shape: &[usize]) -> Result<Vec<i64>, WeightsError>;
    /// Mark `name` as deliberately unused (a buffer the model recomputes), if present.
    fn skip(&mut self, name: &str);
    fn unused(&self) -> Vec<String>;
}

impl ClapSource for Checkpoint {
    fn has(&self, name: &str) -> bool {
        self.contains(name)
    }
    fn take_ints(&mut self, name: &str, shape: &[usize]) -> Result<Vec<i64>, WeightsError> {
        self.take_i64(name, shape)
    }
    fn skip(&mut self, name: &str) {
        Checkpoint::skip(self, name)
    }
    fn unused(&self) -> Vec<String> {
        Checkpoint::unused(self)
    }
}

/// Layer norms PyTorch builds with its default epsilon in HTSAT (patch embed, merging, final norm).
const TORCH_LN_EPS: f64 = 1e-5;
/// Swin's shifted-window mask value.
const SHIFT_MASK: f32 = -100.0;

/// `softmax(q·kᵀ/√d + bias)·v` (`bias` broadcast over the batch or given per batch entry).
fn attend(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Option<Tensor<4>>, cpu_kernels: bool) -> Tensor<4> {
    let dh = q.dims()[3];
    let mut scores = q.matmul(k.swap_dims(2, 3)) / (dh as f64).sqrt();
    if let Some(b) = bias {
        scores = scores + b;
    }
    let probs = if cpu_kernels {
        let device = scores.device();
        let n = scores.dims()[3];
        let mut data = scores.into_data();
        match data.as_mut_slice::<f32>() {
            Ok(s) => {
                crate::teachers::ast::kernels::softmax_rows_inplace(s, n);
                Tensor::<4>::from_data(data, &device)
            }
            Err(_) => softmax(Tensor::<4>::from_data(data, &device), 3),
        }
    } else {
        softmax(scores, 3)
    };
    probs.matmul(v)
}

fn gelu_any<const D: usize>(y: Tensor<D>, cpu_kernels: bool) -> Tensor<D> {
    if !cpu_kernels {
        return gelu(y);
    }
    let device = y.device();
    let mut data = y.into_data();
    match data.as_mut_slice::<f32>() {
        Ok(s) => {
            crate::teachers::ast::kernels::gelu_inplace(s);
            Tensor::<D>::from_data(data, &device)
        }
        Err(_) => gelu(Tensor::<D>::from_data(data, &device)),
    }
}

/// `Linear → ReLU → Linear` then `x / max(‖x‖, 1e-12)`.
#[derive(Module, Debug)]
pub struct Projection {
    linear1: Linear,
    linear2: Linear,
}

impl Projection {
    fn load(l: &mut Loader, name: &str, d_in: usize, d: usize) -> Result<Projection, ClapError> {
        Ok(Projection {
            linear1: l.linear(&format!("{name}.linear1"), d_in, d)?,
            linear2: l.linear(&format!("{name}.linear2"), d, d)?,
        })
    }

    /// Projected, L2-normalised `[B, d]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let y = self.linear2.forward(relu(self.linear1.forward(x)));
        l2_normalize(y)
    }
}

pub fn l2_normalize(y: Tensor<2>) -> Tensor<2> {
    let norm = y.clone().powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-12);
    y / norm
}

/// One Swin block.
#[derive(Module, Debug)]
pub struct SwinBlock {
    ln_before: LayerNorm,
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    ln_after: LayerNorm,
    intermediate: Linear,
    output: Linear,
    /// `[heads, N, N]` relative-position bias, gathered from the table at load.
    rel_bias: Param<Tensor<3>>,
    /// `[windows, N, N]` shift mask (0 / −100), for shifted blocks.
    shift_mask: Option<Param<Tensor<3>>>,
    #[module(skip)]
    heads: usize,
    #[module(skip)]
    window: usize,
    #[module(skip)]
    shift: usize,
    #[module(skip)]
    resolution: [usize; 2],
}

/// Relative-position index of `create_relative_position_index` for a `w×w` window: `[N·N]`.
pub fn relative_position_index(w: usize) -> Vec<usize> {
    let n = w * w;
    let mut idx = vec![0usize; n * n];
    for i in 0..n {
        for j in 0..n {
            let (hi, wi) = ((i / w) as isize, (i % w) as isize);
            let (hj, wj) = ((j / w) as isize, (j % w) as isize);
            let dh = (hi - hj + w as isize - 1) as usize;
            let dw = (wi - wj + w as isize - 1) as usize;
            idx[i * n + j] = dh * (2 * w - 1) + dw;
        }
    }
    idx
}

/// `ClapAudioLayer.get_attn_mask`: regions `[0, L−w)`, `[L−w, L−s)`, `[L−s, L)` per axis; `[windows · N · N]`.
pub fn shift_mask(res: [usize; 2], w: usize, s: usize) -> Vec<f32> {
    let [h, wd] = res;
    let region = |i: usize, len: usize| (i >= len - w) as usize + (i >= len - s) as usize;
    let (nh, nw) = (h / w, wd / w);
    let n = w * w;
    let mut out = vec![0f32; nh * nw * n * n];
    for wy in 0..nh {
        for wx in 0..nw {
            let ids: Vec<usize> = (0..n).map(|p| region(wy * w + p / w, h) * 3 + region(wx * w + p % w, wd)).collect();
            let base = (wy * nw + wx) * n * n;
            for i in 0..n {
                for j in 0..n {
                    if ids[i] != ids[j] {
                        out[base + i * n + j] = SHIFT_MASK;
                    }
                }
            }
        }
    }
    out
}

impl SwinBlock {
    fn load(
        src: &mut dyn ClapSource,
        name: &str,
        cfg: &AudioConfig,
        st: &Stage,
        shifted: bool,
        device: &Device,
    ) -> Result<SwinBlock, ClapError> {
        let d = st.dim;
        let eps = cfg.layer_norm_eps;
        let a = format!("{name}.attention");
        if !cfg.qkv_bias {
            return Err(ClapError::Config("audio_config.qkv_bias = false is not supported".into()));
        }
        let w = cfg.window_size;
        let table_len = (2 * w - 1) * (2 * w - 1);
        let table = src.take(&format!("{a}.self.relative_position_bias_table"), &[table_len, st.heads])?;
        let n = st.window * st.window;
        let idx = relative_position_index(st.window);
        let rpi = format!("{a}.self.relative_position_index");
        if src.has(&rpi) {
            let stored = src.take_ints(&rpi, &[n, n])?;
            if stored.iter().zip(&idx).any(|(a, b)| *a != *b as i64) {
                return Err(ClapError::Weights(format!(
                    "'{rpi}' differs from the Swin relative-position index of a {}×{} window",
                    st.window, st.window
                )));
            }
        }
        let mut bias = vec![0f32; st.heads * n * n];
        for h in 0..st.heads {
            for (k, &t) in idx.iter().enumerate() {
                bias[h * n * n + k] = table[t * st.heads + h];
            }
        }
        let rel_bias = Param::from_tensor(Tensor::from_data(TensorData::new(bias, [st.heads, n, n]), device));
        let shift = if shifted { st.shift } else { 0 };
        let shift_mask = (shift > 0).then(|| {
            let nw = (st.resolution[0] / st.window) * (st.resolution[1] / st.window);
            let m = shift_mask(st.resolution, st.window, shift);
            Param::from_tensor(Tensor::from_data(TensorData::new(m, [nw, n, n]), device))
        });
        let hidden = cfg.mlp_hidden(d);
        let mut l = Loader { ckpt: src, device };
        Ok(SwinBlock {
            ln_before: l.layer_norm(&format!("{name}.layernorm_before"), d, eps)?,
            query: l.linear(&format!("{a}.self.query"), d, d)?,
            key: l.linear(&format!("{a}.self.key"), d, d)?,
            value: l.linear(&format!("{a}.self.value"), d, d)?,
            attn_out: l.linear(&format!("{a}.output.dense"), d, d)?,
            ln_after: l.layer_norm(&format!("{name}.layernorm_after"), d, eps)?,
            intermediate: l.linear(&format!("{name}.intermediate.dense"), d, hidden)?,
            output: l.linear(&format!("{name}.output.dense"), hidden, d)?,
            rel_bias,
            shift_mask,
            heads: st.heads,
            window: st.window,
            shift,
            resolution: st.resolution,
        })
    }

    /// `[B, H·W, C]` → `[B, H·W, C]`.
    fn forward(&self, x: Tensor<3>, cpu_kernels: bool) -> Tensor<3> {
        let [b, l, c] = x.dims();
        let [h, w] = self.resolution;
        let ws = self.window;
        let (nh, nw) = (h / ws, w / ws);
        let n = ws * ws;
        let dh = c / self.heads;
        let shortcut = x.clone();
        let mut y = self.ln_before.forward(x).reshape([b, h, w, c]);
        if self.shift > 0 {
            let s = self.shift as i64;
            y = y.roll(&[-s, -s], &[1, 2]);
        }
        // Window partition: [B, nh, ws, nw, ws, C] → [B, nh, nw, ws, ws, C] → [B·nW, N, C].
        let win = y.reshape([b, nh, ws, nw, ws, c]).permute([0, 1, 3, 2, 4, 5]).reshape([b * nh * nw, n, c]);
        let split = |t: Tensor<3>| t.reshape([b * nh * nw, n, self.heads, dh]).swap_dims(1, 2);
        let q = split(self.query.forward(win.clone()));
        let k = split(self.key.forward(win.clone()));
        let v = split(self.value.forward(win));
        // [B·nW, heads, N, N]: the relative-position bias, plus each window's shift mask (explicit repeats, no
        // reliance on broadcasting).
        let nwin = nh * nw;
        let rel = self.rel_bias.val().unsqueeze_dim::<4>(0).repeat_dim(0, nwin); // [nW, heads, N, N]
        let per_window = match &self.shift_mask {
            Some(m) => rel + m.val().unsqueeze_dim::<4>(1).repeat_dim(1, self.heads),
            None => rel,
        };
        let bias = per_window.repeat_dim(0, b);
        let ctx = attend(q, k, v, Some(bias), cpu_kernels);
        let ctx = ctx.swap_dims(1, 2).reshape([b * nh * nw, n, c]);
        let att = self.attn_out.forward(ctx);
        // Window reverse.
        let mut y = att.reshape([b, nh, nw, ws, ws, c]).permute([0, 1, 3, 2, 4, 5]).reshape([b, h, w, c]);
        if self.shift > 0 {
            let s = self.shift as i64;
            y = y.roll(&[s, s], &[1, 2]);
        }
        let hs = shortcut + y.reshape([b, l, c]);
        let m = self.intermediate.forward(self.ln_after.forward(hs.clone()));
        hs + self.output.forward(gelu_any(m, cpu_kernels))
    }
}

/// Patch merging: `[B, H·W, C]` → `[B, H/2·W/2, 2C]`.
#[derive(Module, Debug)]
pub struct PatchMerging {
    norm: LayerNorm,
    reduction: Linear,
    #[module(skip)]
    resolution: [usize; 2],
}

impl PatchMerging {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, _, c] = x.dims();
        let [h, w] = self.resolution;
        // [B, H/2, 2 (row), W/2, 2 (col), C] → [B, H/2, W/2, col, row, C]: concat order (r0c0, r1c0, r0c1, r1c1).
        let y =
            x.reshape([b, h / 2, 2, w / 2, 2, c]).permute([0, 1, 3, 4, 2, 5]).reshape([b, (h / 2) * (w / 2), 4 * c]);
        self.reduction.forward(self.norm.forward(y))
    }
}

#[derive(Module, Debug)]
pub struct SwinStage {
    blocks: Vec<SwinBlock>,
    downsample: Option<PatchMerging>,
}

/// The audio tower up to the pooled `[B, hidden]` features.
#[derive(Module, Debug)]
pub struct Htsat {
    /// BatchNorm folded into `x · scale + shift` per mel bin (applied on the host with the resize).
    #[module(skip)]
    bn_scale: Vec<f32>,
    #[module(skip)]
    bn_shift: Vec<f32>,
    patch_weight: Param<Tensor<4>>,
    patch_bias: Param<Tensor<1>>,
    patch_norm: Option<LayerNorm>,
    stages: Vec<SwinStage>,
    norm: LayerNorm,
    #[module(skip)]
    cfg_spec: usize,
    #[module(skip)]
    freq_ratio: usize,
    #[module(skip)]
    mels: usize,
    #[module(skip)]
    stride: usize,
    #[module(skip)]
    cpu_kernels: bool,
}

/// Bicubic resize along time, `align_corners = True`, A = −0.75 (PyTorch's `upsample_bicubic2d` CPU arithmetic in
/// f32: source index `scale · i`, clamped taps). `x` is `[frames · mels]`; returns `[out · mels]`.
pub fn bicubic_time(x: &[f32], frames: usize, mels: usize, out: usize) -> Vec<f32> {
    if frames == out {
        return x.to_vec();
    }
    let a = -0.75f32;
    let c1 = |t: f32| ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0;
    let c2 = |t: f32| ((a * t - 5.0 * a) * t + 8.0 * a) * t - 4.0 * a;
    let scale = if out > 1 { (frames as f32 - 1.0) / (out as f32 - 1.0) } else { 0.0 };
    let mut y = vec![0f32; out * mels];
    for i in 0..out {
        let real = scale * i as f32;
        let idx = (real.floor() as isize).clamp(0, frames as isize - 1);
        let t = (real - idx as f32).clamp(0.0, 1.0);
        let wts = [c2(t + 1.0), c1(t), c1(1.0 - t), c2(2.0 - t)];
        let rows: [usize; 4] = std::array::from_fn(|j| (idx - 1 + j as isize).clamp(0, frames as isize - 1) as usize);
        for m in 0..mels {
            let mut acc = 0f32;
            for j in 0..4 {
                acc += wts[j] * x[rows[j] * mels + m];
            }
            y[i * mels + m] = acc;
        }
    }
    y
}

impl Htsat {
    fn load(cfg: &AudioConfig, src: &mut dyn ClapSource, device: &Device) -> Result<Htsat, ClapError> {
        let p = "audio_model.audio_encoder";
        let mels = cfg.num_mel_bins;
        let w = src.take(&format!("{p}.batch_norm.weight"), &[mels])?;
        let bb = src.take(&format!("{p}.batch_norm.bias"), &[mels])?;
        let rm = src.take(&format!("{p}.batch_norm.running_mean"), &[mels])?;
        let rv = src.take(&format!("{p}.batch_norm.running_var"), &[mels])?;
        src.skip(&format!("{p}.batch_norm.num_batches_tracked"));
        if let Some(i) = rv.iter().position(|v| *v < 0.0) {
            return Err(ClapError::Weights(format!("batch_norm.running_var[{i}] is negative")));
        }
        // BatchNorm2d in eval: (x − mean) / √(var + eps) · w + b = x · scale + shift.
        let scale: Vec<f32> = (0..mels).map(|i| w[i] / (rv[i] + 1e-5).sqrt()).collect();
        let shift: Vec<f32> = (0..mels).map(|i| bb[i] - rm[i] * scale[i]).collect();
        let e = cfg.patch_embeds_hidden_size;
        let [ps0, ps1] = cfg.patch_size.pair();
        let mut l = Loader { ckpt: &mut *src, device };
        let patch_weight = l.param(&format!("{p}.patch_embed.proj.weight"), [e, 1, ps0, ps1])?;
        let patch_bias = l.param(&format!("{p}.patch_embed.proj.bias"), [e])?;
        let patch_norm = if cfg.enable_patch_layer_norm {
            Some(l.layer_norm(&format!("{p}.patch_embed.norm"), e, TORCH_LN_EPS)?)
        } else {
            None
        };
        let mut stages = Vec::new();
        for (s, st) in cfg.stages().iter().enumerate() {
            let mut blocks = Vec::new();
            for bi in 0..st.depth {
                blocks.push(SwinBlock::load(
                    &mut *src,
                    &format!("{p}.layers.{s}.blocks.{bi}"),
                    cfg,
                    st,
                    bi % 2 == 1,
                    device,
                )?);
            }
            let downsample = if st.downsample {
                let d = st.dim;
                let mut l = Loader { ckpt: &mut *src, device };
                Some(PatchMerging {
                    norm: l.layer_norm(&format!("{p}.layers.{s}.downsample.norm"), 4 * d, TORCH_LN_EPS)?,
                    reduction: l.linear_opt_bias(
                        &format!("{p}.layers.{s}.downsample.reduction"),
                        4 * d,
                        2 * d,
                        false,
                    )?,
                    resolution: st.resolution,
                })
            } else {
                None
            };
            stages.push(SwinStage { blocks, downsample });
        }
        let norm = Loader { ckpt: src, device }.layer_norm(&format!("{p}.norm"), cfg.num_features(), TORCH_LN_EPS)?;
        Ok(Htsat {
            bn_scale: scale,
            bn_shift: shift,
            patch_weight,
            patch_bias,
            patch_norm,
            stages,
            norm,
            cfg_spec: cfg.spec_size,
            freq_ratio: cfg.freq_ratio(),
            mels,
            stride: ps0,
            cpu_kernels: false,
        })
    }

    /// The `[B, spec, spec]` mel images of `[B, frames, mels]` log-mels (BatchNorm, bicubic resize, chunk stacking),
    /// on the host: it is a few hundred thousand multiply-adds per segment.
    pub fn mel_images(&self, mel: &[f32], batch: usize, frames: usize) -> Vec<f32> {
        let bn = (&self.bn_scale, &self.bn_shift);
        let mels = self.mels;
        let r = self.freq_ratio;
        let width = self.cfg_spec * r;
        let spec = self.cfg_spec;
        let mut out = vec![0f32; batch * spec * spec];
        for b in 0..batch {
            let x: Vec<f32> = mel[b * frames * mels..(b + 1) * frames * mels]
                .iter()
                .enumerate()
                .map(|(i, v)| v * bn.0[i % mels] + bn.1[i % mels])
                .collect();
            let y = bicubic_time(&x, frames, mels, width);
            // image[row][col] = y[(row / mels) · (width / r) + col][row % mels]
            let chunk = width / r;
            let img = &mut out[b * spec * spec..(b + 1) * spec * spec];
            for row in 0..spec {
                let (c, f) = (row / mels, row % mels);
                for col in 0..spec {
                    img[row * spec + col] = y[(c * chunk + col) * mels + f];
                }
            }
        }
        out
    }

    /// Pooled features `[B, hidden]` of log-mels `[B, frames, mels]` (given flat, on the host).
    pub fn forward(&self, mel: &[f32], batch: usize, frames: usize, device: &Device) -> Tensor<2> {
        let img = self.mel_images(mel, batch, frames);
        let spec = self.cfg_spec;
        let x = Tensor::<4>::from_data(TensorData::new(img, [batch, 1, spec, spec]), device);
        let y = conv2d(
            x,
            self.patch_weight.val(),
            Some(self.patch_bias.val()),
            ConvOptions::new([self.stride, self.stride], [0, 0], [1, 1], 1),
        );
        let [b, c, gh, gw] = y.dims();
        let mut h = y.reshape([b, c, gh * gw]).swap_dims(1, 2);
        if let Some(n) = &self.patch_norm {
            h = n.forward(h);
        }
        for st in &self.stages {
            for blk in &st.blocks {
                h = blk.forward(h, self.cpu_kernels);
            }
            if let Some(d) = &st.downsample {
                h = d.forward(h);
            }
        }
        let h = self.norm.forward(h);
        let [b, _, c] = h.dims();
        h.mean_dim(1).reshape([b, c])
    }
}

/// One post-LN RoBERTa layer.
#[derive(Module, Debug)]
pub struct TextLayer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_ln: LayerNorm,
    intermediate: Linear,
    output: Linear,
    out_ln: LayerNorm,
    #[module(skip)]
    heads: usize,
}

impl TextLayer {
    fn forward(&self, h: Tensor<3>, cpu_kernels: bool) -> Tensor<3> {
        let [b, n, d] = h.dims();
        let dh = d / self.heads;
        let split = |t: Tensor<3>| t.reshape([b, n, self.heads, dh]).swap_dims(1, 2);
        let q = split(self.query.forward(h.clone()));
        let k = split(self.key.forward(h.clone()));
        let v = split(self.value.forward(h.clone()));
        let ctx = attend(q, k, v, None, cpu_kernels).swap_dims(1, 2).reshape([b, n, d]);
        let h = self.attn_ln.forward(self.attn_out.forward(ctx) + h);
        let y = gelu_any(self.intermediate.forward(h.clone()), cpu_kernels);
        self.out_ln.forward(self.output.forward(y) + h)
    }
}

/// The text tower up to the pooled `[1, hidden]` features. Embedding tables stay on the host (a lookup).
#[derive(Module, Debug)]
pub struct Roberta {
    emb_ln: LayerNorm,
    layers: Vec<TextLayer>,
    pooler: Linear,
    #[module(skip)]
    word: Vec<f32>,
    #[module(skip)]
    position: Vec<f32>,
    #[module(skip)]
    token_type0: Vec<f32>,
    #[module(skip)]
    hidden: usize,
    #[module(skip)]
    vocab: usize,
    #[module(skip)]
    max_positions: usize,
    #[module(skip)]
    pad: usize,
    #[module(skip)]
    cpu_kernels: bool,
}

impl Roberta {
    fn load(cfg: &TextConfig, ckpt: &mut dyn ClapSource, device: &Device) -> Result<Roberta, ClapError> {
        let p = "text_model";
        let d = cfg.hidden_size;
        let word = ckpt.take(&format!("{p}.embeddings.word_embeddings.weight"), &[cfg.vocab_size, d])?;
        let position =
            ckpt.take(&format!("{p}.embeddings.position_embeddings.weight"), &[cfg.max_position_embeddings, d])?;
        let tt = ckpt.take(&format!("{p}.embeddings.token_type_embeddings.weight"), &[cfg.type_vocab_size, d])?;
        ckpt.skip(&format!("{p}.embeddings.position_ids"));
        ckpt.skip(&format!("{p}.embeddings.token_type_ids"));
        let mut l = Loader { ckpt, device };
        let eps = cfg.layer_norm_eps;
        let emb_ln = l.layer_norm(&format!("{p}.embeddings.LayerNorm"), d, eps)?;
        let mut layers = Vec::new();
        for i in 0..cfg.num_hidden_layers {
            let n = format!("{p}.encoder.layer.{i}");
            layers.push(TextLayer {
                query: l.linear(&format!("{n}.attention.self.query"), d, d)?,
                key: l.linear(&format!("{n}.attention.self.key"), d, d)?,
                value: l.linear(&format!("{n}.attention.self.value"), d, d)?,
                attn_out: l.linear(&format!("{n}.attention.output.dense"), d, d)?,
                attn_ln: l.layer_norm(&format!("{n}.attention.output.LayerNorm"), d, eps)?,
                intermediate: l.linear(&format!("{n}.intermediate.dense"), d, cfg.intermediate_size)?,
                output: l.linear(&format!("{n}.output.dense"), cfg.intermediate_size, d)?,
                out_ln: l.layer_norm(&format!("{n}.output.LayerNorm"), d, eps)?,
                heads: cfg.num_attention_heads,
            });
        }
        let pooler = l.linear(&format!("{p}.pooler.dense"), d, d)?;
        Ok(Roberta {
            emb_ln,
            layers,
            pooler,
            word,
            position,
            token_type0: tt[..d].to_vec(),
            hidden: d,
            vocab: cfg.vocab_size,
            max_positions: cfg.max_position_embeddings,
            pad: cfg.pad_token_id,
            cpu_kernels: false,
        })
    }

    /// The most tokens one text may have (positions start at `pad + 1`).
    pub fn max_tokens(&self) -> usize {
        self.max_positions - self.pad - 1
    }

    /// Pooled `[1, hidden]` of one unpadded id sequence.
    pub fn forward(&self, ids: &[u32], device: &Device) -> Result<Tensor<2>, ClapError> {
        let d = self.hidden;
        if ids.is_empty() || ids.len() > self.max_tokens() {
            return Err(ClapError::Run(format!(
                "a prompt of {} tokens (the text tower takes 1..={})",
                ids.len(),
                self.max_tokens()
            )));
        }
        let mut x = vec![0f32; ids.len() * d];
        let mut seen = 0usize;
        for (i, &id) in ids.iter().enumerate() {
            let id = id as usize;
            if id >= self.vocab {
                return Err(ClapError::Run(format!("token id {id} is outside the vocabulary of {}", self.vocab)));
            }
            // RoBERTa: position = pad + (number of non-pad tokens so far), a pad id keeps position `pad`.
            let pos = if id == self.pad {
                self.pad
            } else {
                seen += 1;
                self.pad + seen
            };
            let row = &mut x[i * d..(i + 1) * d];
            for k in 0..d {
                row[k] = self.word[id * d + k] + self.token_type0[k] + self.position[pos * d + k];
            }
        }
        let mut h = self.emb_ln.forward(Tensor::<3>::from_data(TensorData::new(x, [1, ids.len(), d]), device));
        for layer in &self.layers {
            h = layer.forward(h, self.cpu_kernels);
        }
        let first = h.narrow(1, 0, 1).reshape([1, d]);
        Ok(self.pooler.forward(first).tanh())
    }
}

/// The whole CLAP model.
#[derive(Module, Debug)]
pub struct ClapModel {
    pub audio: Htsat,
    pub text: Roberta,
    pub audio_projection: Projection,
    pub text_projection: Projection,
    #[module(skip)]
    pub logit_scale_a: f32,
    #[module(skip)]
    pub logit_scale_t: f32,
}

impl ClapModel {
    /// Build the model `cfg` describes from the checkpoint's tensors (every expected tensor present with its shape).
    pub fn load(cfg: &ClapConfig, ckpt: &mut dyn ClapSource, device: &Device) -> Result<ClapModel, ClapError> {
        let audio = Htsat::load(&cfg.audio_config, &mut *ckpt, device)?;
        let text = Roberta::load(&cfg.text_config, &mut *ckpt, device)?;
        let mut l = Loader { ckpt, device };
        let audio_projection =
            Projection::load(&mut l, "audio_projection", cfg.audio_config.hidden_size, cfg.projection_dim)?;
        let text_projection =
            Projection::load(&mut l, "text_projection", cfg.text_config.hidden_size, cfg.projection_dim)?;
        let a = l.ckpt.take("logit_scale_a", &[])?;
        let t = l.ckpt.take("logit_scale_t", &[])?;
        Ok(ClapModel { audio, text, audio_projection, text_projection, logit_scale_a: a[0], logit_scale_t: t[0] })
    }

    /// Softmax and GELU on the host kernels (plain CPU inference only).
    pub fn with_cpu_kernels(mut self, on: bool) -> ClapModel {
        self.audio.cpu_kernels = on;
        self.text.cpu_kernels = on;
        self
    }

    /// L2-normalised audio embeddings `[B, proj]` of log-mels `[B, frames, mels]`.
    pub fn embed_audio(&self, mel: &[f32], batch: usize, frames: usize, device: &Device) -> Tensor<2> {
        self.audio_projection.forward(self.audio.forward(mel, batch, frames, device))
    }

    /// L2-normalised text embedding `[1, proj]` of one id sequence.
    pub fn embed_text(&self, ids: &[u32], device: &Device) -> Result<Tensor<2>, ClapError> {
        Ok(self.text_projection.forward(self.text.forward(ids, device)?))
    }
}
