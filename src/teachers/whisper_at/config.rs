//! Model dimensions (`dims` of an OpenAI checkpoint) and the kind of TL-TR head.

use super::WhisperAtError;
use crate::teachers::weights::torch::{TorchCheckpoint, Value};

/// `whisper.model.ModelDimensions`, audio side (the text side is read only to be checked for sanity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhisperDims {
    pub n_mels: usize,
    pub n_audio_ctx: usize,
    pub n_audio_state: usize,
    pub n_audio_head: usize,
    pub n_audio_layer: usize,
}

impl WhisperDims {
    /// The published sizes' names by encoder width and depth (for messages and the version string).
    pub fn size_name(&self) -> &'static str {
        match (self.n_audio_state, self.n_audio_layer) {
            (384, 4) => "tiny",
            (512, 6) => "base",
            (768, 12) => "small",
            (1024, 24) => "medium",
            (1280, 32) => "large",
            _ => "custom",
        }
    }

    /// Read and check `dims` of an opened OpenAI checkpoint.
    pub fn from_checkpoint(ckpt: &TorchCheckpoint) -> Result<WhisperDims, WhisperAtError> {
        let path = ckpt.path().display().to_string();
        let dims = ckpt.root().get("dims").ok_or_else(|| {
            WhisperAtError::Config(format!(
                "{path}: no 'dims' (an OpenAI Whisper checkpoint is {{'dims': ..., 'model_state_dict': ...}}; the root is {})",
                ckpt.root().kind()
            ))
        })?;
        let get = |k: &str, max: usize| -> Result<usize, WhisperAtError> {
            match dims.get(k) {
                Some(Value::Int(v)) if *v >= 1 && (*v as usize) <= max => Ok(*v as usize),
                Some(Value::Int(v)) => {
                    Err(WhisperAtError::Config(format!("{path}: dims.{k} = {v} (expected 1..={max})")))
                }
                Some(other) => Err(WhisperAtError::Config(format!("{path}: dims.{k} is {}, not an int", other.kind()))),
                None => Err(WhisperAtError::Config(format!("{path}: dims has no '{k}'"))),
            }
        };
        let d = WhisperDims {
            n_mels: get("n_mels", 512)?,
            n_audio_ctx: get("n_audio_ctx", 1 << 16)?,
            n_audio_state: get("n_audio_state", 1 << 14)?,
            n_audio_head: get("n_audio_head", 1 << 10)?,
            n_audio_layer: get("n_audio_layer", 256)?,
        };
        if d.n_mels != 80 {
            return Err(WhisperAtError::Config(format!(
                "{path}: {} mel bins; Whisper-AT heads exist for the 80-bin models (tiny … large-v2), not large-v3's 128",
                d.n_mels
            )));
        }
        if d.n_audio_state % d.n_audio_head != 0 {
            return Err(WhisperAtError::Config(format!(
                "{path}: width {} is not a multiple of {} heads",
                d.n_audio_state, d.n_audio_head
            )));
        }
        if d.n_audio_ctx < 1500 {
            return Err(WhisperAtError::Config(format!(
                "{path}: n_audio_ctx {} (Whisper's 30 s window is 1500 tokens)",
                d.n_audio_ctx
            )));
        }
        Ok(d)
    }
}

/// Which TL-TR head a whisper-at `.pth` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadKind {
    /// `tl_tr_1_8` (`*_ori.pth`): time and layer transformers at the encoder's width.
    TlTr,
    /// `tl_down_tr_<w>_1_8` (`*_low.pth`, w = 512 as published): LayerNorm + Linear down to `w` first.
    TlDownTr(usize),
}

impl HeadKind {
    pub fn as_str(self) -> String {
        match self {
            HeadKind::TlTr => "tl_tr".into(),
            HeadKind::TlDownTr(w) => format!("tl_down_tr_{w}"),
        }
    }

    /// From the tensors of a head checkpoint (state dict selected).
    pub fn detect(ckpt: &TorchCheckpoint, d: usize) -> Result<HeadKind, WhisperAtError> {
        let path = ckpt.path().display().to_string();
        if !ckpt.contains("at_model.time_tr.attn.query.weight") {
            return Err(WhisperAtError::Weights(format!(
                "{path}: no 'at_model.time_tr.*' tensors: not a whisper-at head checkpoint (*_ori.pth or *_low.pth)"
            )));
        }
        match ckpt.shape("at_model.down_layer.1.weight") {
            None => Ok(HeadKind::TlTr),
            Some([w, din]) if *din == d && *w >= 1 => Ok(HeadKind::TlDownTr(*w)),
            Some(s) => Err(WhisperAtError::Weights(format!(
                "{path}: 'at_model.down_layer.1.weight' has shape {s:?}; the encoder's width is {d}"
            ))),
        }
    }
}

fn block_tensors(name: &str, d: usize, out: &mut Vec<(String, Vec<usize>)>) {
    for ln in ["attn_ln", "mlp_ln"] {
        out.push((format!("{name}.{ln}.weight"), vec![d]));
        out.push((format!("{name}.{ln}.bias"), vec![d]));
    }
    for (m, o, i, bias) in [
        ("attn.query", d, d, true),
        ("attn.key", d, d, false),
        ("attn.value", d, d, true),
        ("attn.out", d, d, true),
        ("mlp.0", 4 * d, d, true),
        ("mlp.2", d, 4 * d, true),
    ] {
        out.push((format!("{name}.{m}.weight"), vec![o, i]));
        if bias {
            out.push((format!("{name}.{m}.bias"), vec![o]));
        }
    }
}

/// Every encoder tensor (OpenAI names, shapes) that `dims` implies, `ln_post` included (present in every
/// checkpoint, unused by the AT branch).
pub fn encoder_tensors(dims: &WhisperDims) -> Vec<(String, Vec<usize>)> {
    let d = dims.n_audio_state;
    let mut v = vec![
        ("encoder.conv1.weight".to_string(), vec![d, dims.n_mels, 3]),
        ("encoder.conv1.bias".to_string(), vec![d]),
        ("encoder.conv2.weight".to_string(), vec![d, d, 3]),
        ("encoder.conv2.bias".to_string(), vec![d]),
        ("encoder.positional_embedding".to_string(), vec![dims.n_audio_ctx, d]),
        ("encoder.ln_post.weight".to_string(), vec![d]),
        ("encoder.ln_post.bias".to_string(), vec![d]),
    ];
    for i in 0..dims.n_audio_layer {
        block_tensors(&format!("encoder.blocks.{i}"), d, &mut v);
    }
    v
}

/// Every head tensor (whisper-at names, shapes) of a `kind` head on an encoder of width `d`.
pub fn head_tensors(kind: HeadKind, d: usize, labels: usize) -> Vec<(String, Vec<usize>)> {
    let mut v = Vec::new();
    let w = match kind {
        HeadKind::TlTr => d,
        HeadKind::TlDownTr(w) => {
            v.push(("at_model.down_layer.0.weight".into(), vec![d]));
            v.push(("at_model.down_layer.0.bias".into(), vec![d]));
            v.push(("at_model.down_layer.1.weight".into(), vec![w, d]));
            v.push(("at_model.down_layer.1.bias".into(), vec![w]));
            w
        }
    };
    block_tensors("at_model.time_tr", w, &mut v);
    block_tensors("at_model.layer_tr", w, &mut v);
    v.push(("at_model.mlp_layer.0.weight".into(), vec![w]));
    v.push(("at_model.mlp_layer.0.bias".into(), vec![w]));
    v.push(("at_model.mlp_layer.1.weight".into(), vec![labels, w]));
    v.push(("at_model.mlp_layer.1.bias".into(), vec![labels]));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_v2_parameter_counts() {
        let dims =
            WhisperDims { n_mels: 80, n_audio_ctx: 1500, n_audio_state: 1280, n_audio_head: 20, n_audio_layer: 32 };
        let count = |v: Vec<(String, Vec<usize>)>| v.iter().map(|(_, s)| s.iter().product::<usize>()).sum::<usize>();
        // teachers.md: the encoder has 637 M parameters (the positional table is a buffer, ln_post counted too).
        let enc = count(encoder_tensors(&dims));
        assert!((630_000_000..640_000_000).contains(&enc), "{enc}");
        // TL-TR head of large: 24 d² + 527 d ≈ 40.0 M.
        let head = count(head_tensors(HeadKind::TlTr, 1280, 527));
        assert!((39_900_000..40_100_000).contains(&head), "{head}");
        assert_eq!(dims.size_name(), "large");
    }
}
