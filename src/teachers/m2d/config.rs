//! What an M2D-CLAP checkpoint holds, read from its tensor names and shapes: the key prefixes the reference loader
//! tolerates, the pretraining-only keys it drops, and the sizes of the audio ViT, its projector, the BERT text
//! encoder and `text_proj`.
//!
//! The checkpoint's `'args'` is an `argparse.Namespace`, kept opaque by the torch reader (never built): nothing is
//! read from it. The reference builds ViT-B with 12 heads and BERT-base with 12 heads whatever the checkpoint says;
//! dams derives the head count as width / 64, which gives those (and every timm ViT and BERT size).

use std::collections::{BTreeMap, BTreeSet};

use super::M2dError;
use crate::teachers::weights::torch::TorchCheckpoint;
use crate::teachers::weights::{TensorSource, WeightsError};

/// Mel bins and patch size of every published M2D.
pub const N_MELS: usize = 80;
pub const PATCH: usize = 16;
/// Frames of one 10 s input (`80x1001`).
pub const FRAMES: usize = 1001;
/// Width of one attention head (ViT-B 768/12, BERT-base 768/12).
pub const HEAD_DIM: usize = 64;
/// The prefix under which the reference finds BERT's weights (`extract_weight(weights, 'text_encoder.')` of a
/// `BertXEncoder`, whose model is its attribute `text_encoder`).
pub const TEXT_PREFIX: &str = "text_encoder.text_encoder.";

/// The audio projector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioProj {
    /// M2D-CLAP 2025 `AudioToSemantic`: a sem token, `depth` 1-head blocks with MLP width `hidden`, a LayerNorm.
    Semantic { depth: usize, hidden: usize },
    /// M2D-CLAP 2024: token mean, then `Linear(d, d) → ReLU → Linear(d, d)`.
    Mlp,
}

/// `text_proj`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextProj {
    Linear { d_in: usize, d_out: usize },
    Mlp { d_in: usize, d_out: usize },
}

impl TextProj {
    pub fn d_in(&self) -> usize {
        match self {
            TextProj::Linear { d_in, .. } | TextProj::Mlp { d_in, .. } => *d_in,
        }
    }
    pub fn d_out(&self) -> usize {
        match self {
            TextProj::Linear { d_out, .. } | TextProj::Mlp { d_out, .. } => *d_out,
        }
    }
}

/// The BERT text encoder's sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BertDims {
    pub vocab: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub positions: usize,
    pub token_types: usize,
}

/// Sizes of an M2D-CLAP checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct M2dConfig {
    pub dim: usize,
    pub depth: usize,
    pub heads: usize,
    pub mlp_hidden: usize,
    /// Patch grid (frequency, time): 5 × 62 for 80×1001.
    pub grid: (usize, usize),
    pub audio_proj: AudioProj,
    pub text_proj: TextProj,
    pub bert: BertDims,
}

impl M2dConfig {
    /// One line for `dams teachers` and messages.
    pub fn summary(&self) -> String {
        let proj = match &self.audio_proj {
            AudioProj::Semantic { depth, .. } => format!("2025 semantic projector ({depth} block(s))"),
            AudioProj::Mlp => "2024 MLP projector".into(),
        };
        format!(
            "M2D-CLAP ViT {} layers, width {} ({}×{} patches) + {proj}; BERT {} layers, width {}, vocab {}; \
             embedding {}",
            self.depth,
            self.dim,
            self.grid.0,
            self.grid.1,
            self.bert.layers,
            self.bert.hidden,
            self.bert.vocab,
            self.text_proj.d_out()
        )
    }

    /// Every tensor the port reads, by its model name, with the shape the sizes imply.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>)> {
        let d = self.dim;
        let mut v: Vec<(String, Vec<usize>)> = vec![
            ("norm_stats".into(), vec![2]),
            ("cls_token".into(), vec![1, 1, d]),
            ("pos_embed".into(), vec![1, 1 + self.grid.0 * self.grid.1, d]),
            ("patch_embed.proj.weight".into(), vec![d, 1, PATCH, PATCH]),
            ("patch_embed.proj.bias".into(), vec![d]),
            ("norm.weight".into(), vec![d]),
            ("norm.bias".into(), vec![d]),
        ];
        for i in 0..self.depth {
            block_tensors(&mut v, &format!("blocks.{i}"), d, self.mlp_hidden);
        }
        match &self.audio_proj {
            AudioProj::Semantic { depth, hidden } => {
                v.push(("audio_proj.sem_token".into(), vec![1, 1, d]));
                for i in 0..*depth {
                    block_tensors(&mut v, &format!("audio_proj.sem_blocks.{i}"), d, *hidden);
                }
                v.push(("audio_proj.norm.weight".into(), vec![d]));
                v.push(("audio_proj.norm.bias".into(), vec![d]));
            }
            AudioProj::Mlp => linear_tensors(&mut v, "audio_proj.0", d, d),
        }
        match &self.text_proj {
            TextProj::Linear { d_in, d_out } => linear_tensors(&mut v, "text_proj", *d_in, *d_out),
            TextProj::Mlp { d_in, d_out } => {
                linear_tensors(&mut v, "text_proj.0", *d_in, *d_in);
                linear_tensors(&mut v, "text_proj.2", *d_in, *d_out);
            }
        }
        if self.audio_proj == AudioProj::Mlp {
            linear_tensors(&mut v, "audio_proj.2", d, d);
        }
        let b = &self.bert;
        let h = b.hidden;
        let t = |s: &str| format!("{TEXT_PREFIX}{s}");
        v.push((t("embeddings.word_embeddings.weight"), vec![b.vocab, h]));
        v.push((t("embeddings.position_embeddings.weight"), vec![b.positions, h]));
        v.push((t("embeddings.token_type_embeddings.weight"), vec![b.token_types, h]));
        v.push((t("embeddings.LayerNorm.weight"), vec![h]));
        v.push((t("embeddings.LayerNorm.bias"), vec![h]));
        for i in 0..b.layers {
            let l = format!("{TEXT_PREFIX}encoder.layer.{i}");
            for n in ["query", "key", "value"] {
                linear_tensors(&mut v, &format!("{l}.attention.self.{n}"), h, h);
            }
            linear_tensors(&mut v, &format!("{l}.attention.output.dense"), h, h);
            v.push((format!("{l}.attention.output.LayerNorm.weight"), vec![h]));
            v.push((format!("{l}.attention.output.LayerNorm.bias"), vec![h]));
            linear_tensors(&mut v, &format!("{l}.intermediate.dense"), h, b.intermediate);
            linear_tensors(&mut v, &format!("{l}.output.dense"), b.intermediate, h);
            v.push((format!("{l}.output.LayerNorm.weight"), vec![h]));
            v.push((format!("{l}.output.LayerNorm.bias"), vec![h]));
        }
        v
    }
}

fn linear_tensors(v: &mut Vec<(String, Vec<usize>)>, name: &str, d_in: usize, d_out: usize) {
    v.push((format!("{name}.weight"), vec![d_out, d_in]));
    v.push((format!("{name}.bias"), vec![d_out]));
}

fn block_tensors(v: &mut Vec<(String, Vec<usize>)>, name: &str, d: usize, hidden: usize) {
    v.push((format!("{name}.norm1.weight"), vec![d]));
    v.push((format!("{name}.norm1.bias"), vec![d]));
    linear_tensors(v, &format!("{name}.attn.qkv"), d, 3 * d);
    linear_tensors(v, &format!("{name}.attn.proj"), d, d);
    v.push((format!("{name}.norm2.weight"), vec![d]));
    v.push((format!("{name}.norm2.bias"), vec![d]));
    linear_tensors(v, &format!("{name}.mlp.fc1"), d, hidden);
    linear_tensors(v, &format!("{name}.mlp.fc2"), hidden, d);
}

/// Whether a key (after prefix handling) is one the reference drops as not part of the inference model:
/// pretraining-only parts (the target encoder, the decoder, the mask token, offline caption projections), BERT's
/// pooler and position-id buffer, an EVAR fine-tuning head.
pub fn is_dropped(name: &str) -> bool {
    const PREFIXES: [&str; 8] = [
        "target_",
        "decoder",
        "mask_token",
        "text_encoder.text_encoder.pooler.",
        "text_encoder.text_encoder.embeddings.position_ids",
        "text_encoder.text_encoder.embeddings.token_type_ids",
        "module.head.",
        "head.",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p))
}

/// A checkpoint's `'model'` state dict under the names the reference uses after its prefix handling:
/// `backbone.` (a RuntimeM2D's weights: when any key has it, only those keys are the audio model) and
/// `module.ar.runtime.backbone.` (an EVAR fine-tuning) removed. Reads go to the original keys.
pub struct M2dWeights {
    ckpt: TorchCheckpoint,
    /// model name → checkpoint key.
    map: BTreeMap<String, String>,
}

impl std::fmt::Debug for M2dWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("M2dWeights").field("path", &self.ckpt.path()).field("tensors", &self.map.len()).finish()
    }
}

impl M2dWeights {
    /// Open `path` (a `torch.save` dict with `'model'`, or a bare state dict) without running pickled code; only
    /// `argparse.Namespace` (the `'args'`) is accepted besides dicts, lists, numbers, strings and tensors.
    pub fn open(path: &std::path::Path) -> Result<M2dWeights, M2dError> {
        let mut ckpt = TorchCheckpoint::open_with(path, &["argparse.Namespace"])?;
        let key = if ckpt.root().get("model").is_some() { Some("model") } else { None };
        ckpt.select(key)?;
        let names: Vec<String> = ckpt.names().map(str::to_string).collect();
        let runtime = names.iter().any(|n| n.starts_with("backbone."));
        let mut map = BTreeMap::new();
        for n in &names {
            let mut m = n.as_str();
            if runtime {
                match m.strip_prefix("backbone.") {
                    Some(s) => m = s,
                    // The text encoder stays under its own prefix in a RuntimeM2D checkpoint.
                    None if m.starts_with("text_encoder.") => {}
                    None => continue,
                }
            }
            let m = m.replace("module.ar.runtime.backbone.", "");
            if map.insert(m.clone(), n.clone()).is_some() {
                return Err(M2dError::Weights(format!(
                    "{}: two tensors are named '{m}' once the key prefixes are removed",
                    path.display()
                )));
            }
        }
        Ok(M2dWeights { ckpt, map })
    }

    pub fn path(&self) -> &std::path::Path {
        self.ckpt.path()
    }

    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.ckpt.shape(self.map.get(name)?)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    fn err(&self, m: impl std::fmt::Display) -> M2dError {
        M2dError::Config(format!("{}: {m}", self.path().display()))
    }

    fn dims(&self, name: &str, rank: usize) -> Result<Vec<usize>, M2dError> {
        match self.shape(name) {
            Some(s) if s.len() == rank && s.iter().all(|&x| x > 0) => Ok(s.to_vec()),
            Some(s) => Err(self.err(format!("tensor '{name}' has shape {s:?} (expected {rank} non-empty dimensions)"))),
            None => Err(self.err(format!("missing tensor '{name}'"))),
        }
    }

    fn count(&self, prefix: &str) -> usize {
        let idx: BTreeSet<usize> =
            self.names().filter_map(|n| n.strip_prefix(prefix)?.split('.').next()?.parse::<usize>().ok()).collect();
        idx.into_iter().max().map_or(0, |m| m + 1)
    }

    /// The sizes, from the tensors' shapes; then every expected tensor checked by shape, and every other tensor
    /// either dropped by name ([`is_dropped`]) or refused.
    pub fn config(&self) -> Result<M2dConfig, M2dError> {
        let pos = self.dims("pos_embed", 3)?;
        let dim = pos[2];
        if dim % HEAD_DIM != 0 {
            return Err(self.err(format!("width {dim} is not a multiple of the {HEAD_DIM}-wide heads of ViT")));
        }
        let fbins = N_MELS / PATCH;
        let tokens = pos[1] - 1;
        if tokens % fbins != 0 || tokens / fbins != (FRAMES / PATCH) {
            return Err(self.err(format!(
                "pos_embed has {} positions: dams runs the 80×1001 models (1 + 5 × 62 positions, 10 s inputs)",
                pos[1]
            )));
        }
        let depth = self.count("blocks.");
        if depth == 0 {
            return Err(self.err("no transformer blocks ('blocks.N.*'): not an M2D audio encoder"));
        }
        let mlp_hidden = self.dims("blocks.0.mlp.fc1.weight", 2)?[0];
        let audio_proj = if self.shape("audio_proj.sem_token").is_some() {
            let depth = self.count("audio_proj.sem_blocks.");
            if depth == 0 {
                return Err(self.err("audio_proj.sem_token without sem_blocks"));
            }
            AudioProj::Semantic { depth, hidden: self.dims("audio_proj.sem_blocks.0.mlp.fc1.weight", 2)?[0] }
        } else if self.shape("audio_proj.0.weight").is_some() {
            AudioProj::Mlp
        } else {
            return Err(self.err(
                "no audio projector ('audio_proj.*'): an M2D without CLAP; dams runs M2D-CLAP checkpoints (…pBpTI…)",
            ));
        };
        let text_proj = if let Some(s) = self.shape("text_proj.weight") {
            let s = s.to_vec();
            if s.len() != 2 {
                return Err(self.err(format!("text_proj.weight has shape {s:?}")));
            }
            TextProj::Linear { d_in: s[1], d_out: s[0] }
        } else if self.shape("text_proj.2.weight").is_some() {
            let s = self.dims("text_proj.2.weight", 2)?;
            TextProj::Mlp { d_in: s[1], d_out: s[0] }
        } else {
            return Err(self.err("no text_proj: not an M2D-CLAP checkpoint"));
        };
        if text_proj.d_out() != dim {
            return Err(self.err(format!("text_proj gives {}-d embeddings, the audio side {dim}-d", text_proj.d_out())));
        }
        let word = format!("{TEXT_PREFIX}embeddings.word_embeddings.weight");
        if self.shape(&word).is_none() {
            return Err(self.err(
                "no text encoder weights ('text_encoder.text_encoder.*'): dams runs the M2D-CLAP checkpoints that \
                 include BERT (…pBpTI…)",
            ));
        }
        let w = self.dims(&word, 2)?;
        let hidden = w[1];
        if hidden % HEAD_DIM != 0 {
            return Err(self.err(format!("BERT width {hidden} is not a multiple of {HEAD_DIM}-wide heads")));
        }
        let bert = BertDims {
            vocab: w[0],
            hidden,
            layers: self.count(&format!("{TEXT_PREFIX}encoder.layer.")),
            heads: hidden / HEAD_DIM,
            intermediate: self.dims(&format!("{TEXT_PREFIX}encoder.layer.0.intermediate.dense.weight"), 2)?[0],
            positions: self.dims(&format!("{TEXT_PREFIX}embeddings.position_embeddings.weight"), 2)?[0],
            token_types: self.dims(&format!("{TEXT_PREFIX}embeddings.token_type_embeddings.weight"), 2)?[0],
        };
        if text_proj.d_in() != hidden {
            return Err(self.err(format!("text_proj takes {}-d input, BERT gives {hidden}-d", text_proj.d_in())));
        }
        let c = M2dConfig {
            dim,
            depth,
            heads: dim / HEAD_DIM,
            mlp_hidden,
            grid: (fbins, tokens / fbins),
            audio_proj,
            text_proj,
            bert,
        };
        let expected = c.tensors();
        for (name, shape) in &expected {
            match self.shape(name) {
                None => return Err(self.err(format!("missing tensor '{name}' (expected shape {shape:?})"))),
                Some(s) if s != shape.as_slice() => {
                    return Err(self
                        .err(format!("tensor '{name}' has shape {s:?}, but the model's dimensions imply {shape:?}")));
                }
                Some(_) => {}
            }
        }
        let known: BTreeSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
        if let Some(extra) = self.names().find(|n| !known.contains(n) && !is_dropped(n)) {
            return Err(self.err(format!(
                "unexpected tensor '{extra}' for {} (not a part dams knows to drop; is it an M2D-CLAP checkpoint?)",
                c.summary()
            )));
        }
        Ok(c)
    }

    /// Model tensors never read (dropped ones included).
    pub fn unused(&self) -> Vec<String> {
        let raw: BTreeSet<String> = self.ckpt.unused().into_iter().collect();
        self.map.iter().filter(|(_, k)| raw.contains(*k)).map(|(m, _)| m.clone()).collect()
    }
}

impl TensorSource for M2dWeights {
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, WeightsError> {
        match self.map.get(name) {
            Some(k) => {
                let k = k.clone();
                self.ckpt.take(&k, shape)
            }
            None => Err(WeightsError(format!(
                "{}: missing tensor '{name}' (expected shape {shape:?})",
                self.ckpt.path().display()
            ))),
        }
    }
}
