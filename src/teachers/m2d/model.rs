//! M2D-CLAP on burn: the audio ViT (timm `VisionTransformer` as `portable_m2d.LocalViT` uses it), its CLAP projector
//! and the BERT text encoder with `text_proj`.
//!
//! Audio (`LocalViT.forward_encoder` + `encode_lms` with `flat_features=True`): `[B, 80, 1001]` → 16×16 patches of
//! the first 992 frames (the last 9 frames are dropped by the strided convolution), a 5 × 62 grid in
//! frequency-major order → `patch_embed.proj` → `+ pos_embed[1:]`, a cls token (`cls_token + pos_embed[:1]`) in
//! front → pre-LN blocks (LayerNorm eps 1e-6, fused qkv, softmax(q·kᵀ/√64), exact GELU MLP) → `norm` → the 310
//! patch tokens (cls dropped).
//!
//! Projector: the 2025 `AudioToSemantic` (a `sem_token` in front of the tokens, timm blocks with 1 head and
//! LayerNorm eps 1e-5, token 0, `norm`), or the 2024 token mean + `Linear → ReLU → Linear`.
//!
//! Text (`BertXEncoder`: transformers' `BertModel`, eval): word + position + token-type-0 embeddings → LayerNorm
//! (eps 1e-12) → post-LN layers (self-attention, `attention.output` dense + residual + LayerNorm, exact-GELU
//! intermediate, `output` dense + residual + LayerNorm) → the [CLS] state → `text_proj`. One prompt at a time,
//! so no padding and no attention mask (the reference pads a batch and masks: same values).

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, Linear};
use burn::tensor::activation::{gelu, relu};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::config::{AudioProj, M2dConfig, PATCH, TEXT_PREFIX, TextProj};
use crate::teachers::ast::model::{cpu_attention, cpu_gelu};
use crate::teachers::weights::WeightsError;
use crate::teachers::weights::layers::Loader;

/// LayerNorm epsilon of the ViT (`partial(nn.LayerNorm, eps=1e-6)`).
const VIT_EPS: f64 = 1e-6;
/// LayerNorm epsilon of the semantic projector (`nn.LayerNorm` default).
const SEM_EPS: f64 = 1e-5;
/// BERT's `layer_norm_eps`.
const BERT_EPS: f64 = 1e-12;

fn act(x: Tensor<3>, cpu: bool) -> Tensor<3> {
    if cpu { cpu_gelu(x) } else { gelu(x) }
}

/// `softmax(q·kᵀ/√d_h)·v` over `[B, H, N, d_h]` (self-attention).
fn attend(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, cpu: bool) -> Tensor<4> {
    if cpu { cpu_attention(q, k, v) } else { attention(q, k, v, None, None, AttentionModuleOptions::default()) }
}

/// A timm ViT block: `x + proj(attn(norm1(x)))`, then `x + fc2(gelu(fc1(norm2(x))))`.
#[derive(Module, Debug)]
pub struct VitBlock {
    norm1: LayerNorm,
    qkv: Linear,
    proj: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    #[module(skip)]
    heads: usize,
}

impl VitBlock {
    fn load(l: &mut Loader, name: &str, d: usize, hidden: usize, heads: usize, eps: f64) -> Result<Self, WeightsError> {
        Ok(VitBlock {
            norm1: l.layer_norm(&format!("{name}.norm1"), d, eps)?,
            qkv: l.linear(&format!("{name}.attn.qkv"), d, 3 * d)?,
            proj: l.linear(&format!("{name}.attn.proj"), d, d)?,
            norm2: l.layer_norm(&format!("{name}.norm2"), d, eps)?,
            fc1: l.linear(&format!("{name}.mlp.fc1"), d, hidden)?,
            fc2: l.linear(&format!("{name}.mlp.fc2"), hidden, d)?,
            heads,
        })
    }

    fn forward(&self, x: Tensor<3>, cpu: bool) -> Tensor<3> {
        let [b, n, d] = x.dims();
        let h = self.heads;
        let dh = d / h;
        // qkv: [B, N, 3·d] laid out (3, heads, d_h), as timm's reshape(B, N, 3, H, d_h).
        let qkv = self.qkv.forward(self.norm1.forward(x.clone())).reshape([b, n, 3, h, dh]);
        let part = |i: usize| qkv.clone().narrow(2, i, 1).reshape([b, n, h, dh]).swap_dims(1, 2);
        let ctx = attend(part(0), part(1), part(2), cpu);
        let x = x + self.proj.forward(ctx.swap_dims(1, 2).reshape([b, n, d]));
        let y = self.fc2.forward(act(self.fc1.forward(self.norm2.forward(x.clone())), cpu));
        x + y
    }
}

/// The CLAP audio projector.
/// The CLAP audio projector: the 2025 semantic one (`sem_token`, `blocks`, `norm`), or the 2024 MLP (`mlp`).
#[derive(Module, Debug)]
pub struct Projector {
    sem_token: Option<Param<Tensor<3>>>,
    blocks: Vec<VitBlock>,
    norm: Option<LayerNorm>,
    mlp: Vec<Linear>,
}

/// The audio side: ViT + projector.
#[derive(Module, Debug)]
pub struct AudioEncoder {
    /// `patch_embed.proj` as a `[256, d]` linear map of flattened patches.
    patch: Linear,
    cls: Param<Tensor<3>>,
    pos: Param<Tensor<3>>,
    blocks: Vec<VitBlock>,
    norm: LayerNorm,
    projector: Projector,
    #[module(skip)]
    grid: (usize, usize),
    #[module(skip)]
    pub cpu_kernels: bool,
}

impl AudioEncoder {
    pub fn load(c: &M2dConfig, l: &mut Loader) -> Result<AudioEncoder, WeightsError> {
        let d = c.dim;
        // Conv2d(1, d, 16, stride 16) weight [d, 1, 16, 16] → linear [256 → d] over patches flattened (row, col).
        let w = l.ckpt.take("patch_embed.proj.weight", &[d, 1, PATCH, PATCH])?;
        let k = PATCH * PATCH;
        let mut t = vec![0f32; w.len()];
        for o in 0..d {
            for i in 0..k {
                t[i * d + o] = w[o * k + i];
            }
        }
        let patch = Linear {
            weight: Param::from_tensor(Tensor::from_data(TensorData::new(t, [k, d]), l.device)),
            bias: Some(l.param("patch_embed.proj.bias", [d])?),
        };
        let n = c.grid.0 * c.grid.1;
        let mut blocks = Vec::with_capacity(c.depth);
        for i in 0..c.depth {
            blocks.push(VitBlock::load(l, &format!("blocks.{i}"), d, c.mlp_hidden, c.heads, VIT_EPS)?);
        }
        let projector = match &c.audio_proj {
            AudioProj::Semantic { depth, hidden } => {
                let mut sb = Vec::with_capacity(*depth);
                for i in 0..*depth {
                    sb.push(VitBlock::load(l, &format!("audio_proj.sem_blocks.{i}"), d, *hidden, 1, SEM_EPS)?);
                }
                Projector {
                    sem_token: Some(l.param("audio_proj.sem_token", [1, 1, d])?),
                    blocks: sb,
                    norm: Some(l.layer_norm("audio_proj.norm", d, SEM_EPS)?),
                    mlp: Vec::new(),
                }
            }
            AudioProj::Mlp => Projector {
                sem_token: None,
                blocks: Vec::new(),
                norm: None,
                mlp: vec![l.linear("audio_proj.0", d, d)?, l.linear("audio_proj.2", d, d)?],
            },
        };
        Ok(AudioEncoder {
            patch,
            cls: l.param("cls_token", [1, 1, d])?,
            pos: l.param("pos_embed", [1, 1 + n, d])?,
            blocks,
            norm: l.layer_norm("norm", d, VIT_EPS)?,
            projector,
            grid: c.grid,
            cpu_kernels: false,
        })
    }

    /// `[B, 80, frames ≥ 62·16]` normalised log-mel → `[B, 310, d]` patch tokens (after `norm`, cls dropped).
    pub fn tokens(&self, lms: Tensor<3>) -> Tensor<3> {
        let [b, _, _] = lms.dims();
        let (gf, gt) = self.grid;
        let x = lms.narrow(2, 0, gt * PATCH).reshape([b, gf, PATCH, gt, PATCH]).permute([0, 1, 3, 2, 4]);
        let x = self.patch.forward(x.reshape([b, gf * gt, PATCH * PATCH]));
        let d = x.dims()[2];
        let pos = self.pos.val();
        let x = x + pos.clone().narrow(1, 1, gf * gt);
        let cls = (self.cls.val() + pos.narrow(1, 0, 1)).expand([b, 1, d]);
        let mut x = Tensor::cat(vec![cls, x], 1);
        for blk in &self.blocks {
            x = blk.forward(x, self.cpu_kernels);
        }
        self.norm.forward(x).narrow(1, 1, gf * gt)
    }

    /// Patch tokens `[B, 310, d]` → CLAP audio embeddings `[B, d]`.
    pub fn project(&self, tokens: Tensor<3>) -> Tensor<2> {
        let [b, _, d] = tokens.dims();
        let p = &self.projector;
        match (&p.sem_token, &p.norm, p.mlp.as_slice()) {
            (Some(sem), Some(norm), _) => {
                let mut x = Tensor::cat(vec![sem.val().expand([b, 1, d]), tokens], 1);
                for blk in &p.blocks {
                    x = blk.forward(x, self.cpu_kernels);
                }
                norm.forward(x.narrow(1, 0, 1)).reshape([b, d])
            }
            (_, _, [fc0, fc2]) => fc2.forward(relu(fc0.forward(tokens.mean_dim(1).reshape([b, d])))),
            _ => unreachable!("a projector is loaded as one of the two kinds"),
        }
    }
}

/// One post-LN BERT layer.
#[derive(Module, Debug)]
pub struct BertLayer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_ln: LayerNorm,
    inter: Linear,
    out: Linear,
    out_ln: LayerNorm,
    #[module(skip)]
    heads: usize,
}

impl BertLayer {
    fn forward(&self, x: Tensor<3>, cpu: bool) -> Tensor<3> {
        let [b, n, d] = x.dims();
        let h = self.heads;
        let split = |t: Tensor<3>| t.reshape([b, n, h, d / h]).swap_dims(1, 2);
        let q = split(self.query.forward(x.clone()));
        let k = split(self.key.forward(x.clone()));
        let v = split(self.value.forward(x.clone()));
        let ctx = attend(q, k, v, cpu).swap_dims(1, 2).reshape([b, n, d]);
        let x = self.attn_ln.forward(self.attn_out.forward(ctx) + x);
        let y = self.out.forward(act(self.inter.forward(x.clone()), cpu));
        self.out_ln.forward(y + x)
    }
}

/// BERT + `text_proj`.
#[derive(Module, Debug)]
pub struct TextEncoder {
    word: Param<Tensor<2>>,
    position: Param<Tensor<2>>,
    token_type: Param<Tensor<2>>,
    emb_ln: LayerNorm,
    layers: Vec<BertLayer>,
    proj: Vec<Linear>,
    #[module(skip)]
    pub cpu_kernels: bool,
}

impl TextEncoder {
    pub fn load(c: &M2dConfig, l: &mut Loader) -> Result<TextEncoder, WeightsError> {
        let b = &c.bert;
        let h = b.hidden;
        let t = |s: &str| format!("{TEXT_PREFIX}{s}");
        let mut layers = Vec::with_capacity(b.layers);
        for i in 0..b.layers {
            let p = t(&format!("encoder.layer.{i}"));
            layers.push(BertLayer {
                query: l.linear(&format!("{p}.attention.self.query"), h, h)?,
                key: l.linear(&format!("{p}.attention.self.key"), h, h)?,
                value: l.linear(&format!("{p}.attention.self.value"), h, h)?,
                attn_out: l.linear(&format!("{p}.attention.output.dense"), h, h)?,
                attn_ln: l.layer_norm(&format!("{p}.attention.output.LayerNorm"), h, BERT_EPS)?,
                inter: l.linear(&format!("{p}.intermediate.dense"), h, b.intermediate)?,
                out: l.linear(&format!("{p}.output.dense"), b.intermediate, h)?,
                out_ln: l.layer_norm(&format!("{p}.output.LayerNorm"), h, BERT_EPS)?,
                heads: b.heads,
            });
        }
        let proj = match &c.text_proj {
            TextProj::Linear { d_in, d_out } => vec![l.linear("text_proj", *d_in, *d_out)?],
            TextProj::Mlp { d_in, d_out } => {
                vec![l.linear("text_proj.0", *d_in, *d_in)?, l.linear("text_proj.2", *d_in, *d_out)?]
            }
        };
        Ok(TextEncoder {
            word: l.param(&t("embeddings.word_embeddings.weight"), [b.vocab, h])?,
            position: l.param(&t("embeddings.position_embeddings.weight"), [b.positions, h])?,
            token_type: l.param(&t("embeddings.token_type_embeddings.weight"), [b.token_types, h])?,
            emb_ln: l.layer_norm(&t("embeddings.LayerNorm"), h, BERT_EPS)?,
            layers,
            proj,
            cpu_kernels: false,
        })
    }

    /// Vocabulary size and positions (ids must be below the first, sequences no longer than the second).
    pub fn limits(&self) -> (usize, usize) {
        (self.word.val().dims()[0], self.position.val().dims()[0])
    }

    /// The [CLS] state of the last layer for one sequence of token ids: `[1, hidden]`.
    pub fn cls(&self, ids: &[u32], device: &Device) -> Tensor<2> {
        let n = ids.len();
        let idx = Tensor::<1, Int>::from_data(
            TensorData::new(ids.iter().map(|&i| i as i64).collect::<Vec<_>>(), [n]),
            device,
        );
        let h = self.word.val().dims()[1];
        let x = self.word.val().select(0, idx)
            + self.position.val().narrow(0, 0, n)
            + self.token_type.val().narrow(0, 0, 1);
        let mut x = self.emb_ln.forward(x.reshape([1, n, h]));
        for layer in &self.layers {
            x = layer.forward(x, self.cpu_kernels);
        }
        x.narrow(1, 0, 1).reshape([1, h])
    }

    /// `text_proj` of [CLS] states.
    pub fn project(&self, cls: Tensor<2>) -> Tensor<2> {
        match self.proj.as_slice() {
            [p] => p.forward(cls),
            [a, b] => b.forward(relu(a.forward(cls))),
            _ => cls,
        }
    }
}

/// Audio + text sides.
#[derive(Module, Debug)]
pub struct M2dClap {
    pub audio: AudioEncoder,
    pub text: TextEncoder,
}

impl M2dClap {
    pub fn load(c: &M2dConfig, l: &mut Loader) -> Result<M2dClap, WeightsError> {
        Ok(M2dClap { audio: AudioEncoder::load(c, l)?, text: TextEncoder::load(c, l)? })
    }

    pub fn with_cpu_kernels(mut self, on: bool) -> Self {
        self.audio.cpu_kernels = on;
        self.text.cpu_kernels = on;
        self
    }
}
