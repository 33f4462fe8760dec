//! `config.json` of a Hugging Face AST checkpoint (`ASTConfig`), read and checked before anything is allocated.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::AstError;
use super::features::FbankConfig;

/// The sizes and settings of an AST model, as `ASTConfig` writes them to `config.json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AstConfig {
    #[serde(default = "d_hidden")]
    pub hidden_size: usize,
    #[serde(default = "d_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "d_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "d_intermediate")]
    pub intermediate_size: usize,
    #[serde(default = "d_act")]
    pub hidden_act: String,
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "d_patch")]
    pub patch_size: usize,
    #[serde(default = "d_qkv_bias")]
    pub qkv_bias: bool,
    #[serde(default = "d_stride")]
    pub frequency_stride: usize,
    #[serde(default = "d_stride")]
    pub time_stride: usize,
    #[serde(default = "d_max_length")]
    pub max_length: usize,
    #[serde(default = "d_mel")]
    pub num_mel_bins: usize,
    /// Class names by index (`"0": "Speech"`, ...); its size is the number of outputs.
    #[serde(default)]
    pub id2label: BTreeMap<String, String>,
    #[serde(default)]
    pub model_type: Option<String>,
}

fn d_hidden() -> usize {
    768
}
fn d_layers() -> usize {
    12
}
fn d_heads() -> usize {
    12
}
fn d_intermediate() -> usize {
    3072
}
fn d_act() -> String {
    "gelu".into()
}
fn d_eps() -> f64 {
    1e-12
}
fn d_patch() -> usize {
    16
}
fn d_qkv_bias() -> bool {
    true
}
fn d_stride() -> usize {
    10
}
fn d_max_length() -> usize {
    1024
}
fn d_mel() -> usize {
    128
}

/// Limits far above any published AST, so a hostile file cannot make us allocate gigabytes for one tensor.
const MAX_HIDDEN: usize = 8192;
const MAX_LAYERS: usize = 256;
const MAX_LENGTH: usize = 65_536;
const MAX_LABELS: usize = 100_000;

impl AstConfig {
    /// Read and check `config.json`.
    pub fn from_file(path: &Path) -> Result<AstConfig, AstError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AstError::Config(format!("cannot read {}: {e}", path.display())))?;
        Self::from_json(&text).map_err(|e| match e {
            AstError::Config(m) => AstError::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Parse and check a `config.json` text.
    pub fn from_json(text: &str) -> Result<AstConfig, AstError> {
        let cfg: AstConfig = serde_json::from_str(text).map_err(|e| AstError::Config(format!("invalid JSON: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Number of output classes (527 for AudioSet).
    pub fn num_labels(&self) -> usize {
        if self.id2label.is_empty() { 2 } else { self.id2label.len() }
    }

    /// Patch grid: (frequency rows, time columns), as `ASTEmbeddings.get_shape`.
    pub fn grid(&self) -> (usize, usize) {
        (
            (self.num_mel_bins - self.patch_size) / self.frequency_stride + 1,
            (self.max_length - self.patch_size) / self.time_stride + 1,
        )
    }

    /// Number of patches (1212 for AST-base).
    pub fn num_patches(&self) -> usize {
        let (f, t) = self.grid();
        f * t
    }

    /// Head size.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// The front end this checkpoint expects.
    pub fn fbank(&self) -> FbankConfig {
        FbankConfig { num_mel_bins: self.num_mel_bins, max_length: self.max_length, ..FbankConfig::default() }
    }

    fn validate(&self) -> Result<(), AstError> {
        let bad = |m: String| Err(AstError::Config(m));
        if let Some(t) = &self.model_type
            && t != "audio-spectrogram-transformer"
        {
            return bad(format!("model_type is '{t}', not 'audio-spectrogram-transformer'"));
        }
        if self.hidden_act != "gelu" {
            return bad(format!("hidden_act '{}' is not supported (AST uses exact 'gelu')", self.hidden_act));
        }
        for (name, v, max) in [
            ("hidden_size", self.hidden_size, MAX_HIDDEN),
            ("num_hidden_layers", self.num_hidden_layers, MAX_LAYERS),
            ("num_attention_heads", self.num_attention_heads, MAX_HIDDEN),
            ("intermediate_size", self.intermediate_size, 8 * MAX_HIDDEN),
            ("patch_size", self.patch_size, 1024),
            ("frequency_stride", self.frequency_stride, 1024),
            ("time_stride", self.time_stride, 1024),
            ("max_length", self.max_length, MAX_LENGTH),
            ("num_mel_bins", self.num_mel_bins, 256),
        ] {
            if v == 0 || v > max {
                return bad(format!("{name} = {v} is out of range (1..={max})"));
            }
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            return bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.patch_size > self.num_mel_bins || self.patch_size > self.max_length {
            return bad(format!(
                "patch_size {} is larger than num_mel_bins {} or max_length {}",
                self.patch_size, self.num_mel_bins, self.max_length
            ));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0 && self.layer_norm_eps < 1.0) {
            return bad(format!("layer_norm_eps {} is not a small positive number", self.layer_norm_eps));
        }
        if self.id2label.len() > MAX_LABELS {
            return bad(format!("{} labels (at most {MAX_LABELS})", self.id2label.len()));
        }
        for i in 0..self.id2label.len() {
            if !self.id2label.contains_key(&i.to_string()) {
                return bad(format!("id2label has no entry for class {i}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_ast_base() {
        let c = AstConfig::from_json("{}").unwrap();
        assert_eq!(c.grid(), (12, 101));
        assert_eq!(c.num_patches(), 1212);
        assert_eq!(c.head_dim(), 64);
        assert_eq!(c.layer_norm_eps, 1e-12);
    }

    #[test]
    fn bad_configs_are_refused_with_the_field() {
        for (json, needle) in [
            (r#"{"hidden_size": 0}"#, "hidden_size"),
            (r#"{"hidden_size": 100, "num_attention_heads": 12}"#, "multiple"),
            (r#"{"hidden_act": "relu"}"#, "hidden_act"),
            (r#"{"layer_norm_eps": -1}"#, "layer_norm_eps"),
            (r#"{"num_mel_bins": 8}"#, "patch_size"),
            (r#"{"max_length": 99999999}"#, "max_length"),
            (r#"{"model_type": "vit"}"#, "model_type"),
            (r#"{"id2label": {"0": "a", "2": "b"}}"#, "class 1"),
            (r#"{"hidden_size": "x"}"#, "invalid JSON"),
        ] {
            let e = AstConfig::from_json(json).unwrap_err().to_string();
            assert!(e.contains(needle), "{json}: {e}");
        }
    }
}
