//! `config.json` of a Hugging Face CLAP checkpoint (`ClapConfig` with its `text_config` and `audio_config`) and
//! `preprocessor_config.json` (`ClapFeatureExtractor`), read and checked before anything is allocated. Every field
//! has transformers' default, because `save_pretrained` writes only the fields that differ from it.

use std::path::Path;

use serde::Deserialize;

use super::ClapError;

/// `ClapTextConfig`: a RoBERTa encoder with a pooler.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct TextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub projection_dim: usize,
    pub pad_token_id: usize,
    pub projection_hidden_act: String,
}

impl Default for TextConfig {
    fn default() -> Self {
        TextConfig {
            vocab_size: 50265,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: "gelu".into(),
            max_position_embeddings: 514,
            type_vocab_size: 1,
            layer_norm_eps: 1e-12,
            projection_dim: 512,
            pad_token_id: 1,
            projection_hidden_act: "relu".into(),
        }
    }
}

/// `patch_stride` is an int or a pair in config files.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum IntOrPair {
    One(usize),
    Two([usize; 2]),
}

impl IntOrPair {
    pub fn pair(self) -> [usize; 2] {
        match self {
            IntOrPair::One(v) => [v, v],
            IntOrPair::Two(p) => p,
        }
    }
}

/// `ClapAudioConfig`: HTSAT (a Swin transformer over the mel image).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct AudioConfig {
    pub window_size: usize,
    pub num_mel_bins: usize,
    pub spec_size: usize,
    pub hidden_act: String,
    pub patch_size: IntOrPair,
    pub patch_stride: IntOrPair,
    pub hidden_size: usize,
    pub projection_dim: usize,
    pub depths: Vec<usize>,
    pub num_attention_heads: Vec<usize>,
    pub enable_fusion: bool,
    pub fusion_type: Option<String>,
    pub patch_embed_input_channels: usize,
    pub flatten_patch_embeds: bool,
    pub patch_embeds_hidden_size: usize,
    pub enable_patch_layer_norm: bool,
    pub qkv_bias: bool,
    pub mlp_ratio: f64,
    pub projection_hidden_act: String,
    pub layer_norm_eps: f64,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            window_size: 8,
            num_mel_bins: 64,
            spec_size: 256,
            hidden_act: "gelu".into(),
            patch_size: IntOrPair::One(4),
            patch_stride: IntOrPair::Two([4, 4]),
            hidden_size: 768,
            projection_dim: 512,
            depths: vec![2, 2, 6, 2],
            num_attention_heads: vec![4, 8, 16, 32],
            enable_fusion: false,
            fusion_type: None,
            patch_embed_input_channels: 1,
            flatten_patch_embeds: true,
            patch_embeds_hidden_size: 96,
            enable_patch_layer_norm: true,
            qkv_bias: true,
            mlp_ratio: 4.0,
            projection_hidden_act: "relu".into(),
            layer_norm_eps: 1e-5,
        }
    }
}

/// The whole `ClapConfig`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct ClapConfig {
    pub text_config: TextConfig,
    pub audio_config: AudioConfig,
    pub projection_dim: usize,
    pub model_type: Option<String>,
}

impl Default for ClapConfig {
    fn default() -> Self {
        ClapConfig {
            text_config: TextConfig::default(),
            audio_config: AudioConfig::default(),
            projection_dim: 512,
            model_type: None,
        }
    }
}

/// The geometry HTSAT derives from its config: stage widths, resolutions and windows.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub dim: usize,
    pub heads: usize,
    pub depth: usize,
    /// Token grid `(height, width)` of the stage.
    pub resolution: [usize; 2],
    /// The attention window actually used (`min(resolution)` when the grid is not larger than the window).
    pub window: usize,
    /// The shift of the odd blocks (0 when the grid fits one window).
    pub shift: usize,
    /// Patch merging at the end (all stages but the last).
    pub downsample: bool,
}

/// Limits far above any published CLAP, so a hostile file cannot make us allocate gigabytes.
const MAX_DIM: usize = 8192;
const MAX_LAYERS: usize = 64;
const MAX_VOCAB: usize = 1_000_000;
const MAX_POSITIONS: usize = 16_384;

fn bad(m: String) -> ClapError {
    ClapError::Config(m)
}

impl AudioConfig {
    /// `spec_size / num_mel_bins`: how many time chunks are stacked into the square mel image.
    pub fn freq_ratio(&self) -> usize {
        self.spec_size / self.num_mel_bins
    }

    /// Tokens per side after the patch embedding.
    pub fn grid(&self) -> [usize; 2] {
        let s = self.patch_stride.pair();
        [self.spec_size / s[0], self.spec_size / s[1]]
    }

    /// The width after the last stage (`patch_embeds_hidden_size · 2^(stages−1)`).
    pub fn num_features(&self) -> usize {
        self.patch_embeds_hidden_size << (self.depths.len().saturating_sub(1))
    }

    pub fn mlp_hidden(&self, dim: usize) -> usize {
        (self.mlp_ratio * dim as f64) as usize
    }

    /// The stages, with the window/shift rule of `ClapAudioLayer.set_shift_and_window_size`.
    pub fn stages(&self) -> Vec<Stage> {
        let g = self.grid();
        let n = self.depths.len();
        (0..n)
            .map(|i| {
                let resolution = [g[0] >> i, g[1] >> i];
                let fits = resolution[0].min(resolution[1]) <= self.window_size;
                Stage {
                    dim: self.patch_embeds_hidden_size << i,
                    heads: self.num_attention_heads[i],
                    depth: self.depths[i],
                    resolution,
                    window: if fits { resolution[0].min(resolution[1]) } else { self.window_size },
                    shift: if fits { 0 } else { self.window_size / 2 },
                    downsample: i + 1 < n,
                }
            })
            .collect()
    }
}

fn check_act(what: &str, act: &str, allowed: &[&str]) -> Result<(), ClapError> {
    if allowed.contains(&act) {
        Ok(())
    } else {
        Err(bad(format!("{what} = '{act}' is not supported (dams implements {})", allowed.join(", "))))
    }
}

impl ClapConfig {
    pub fn from_file(path: &Path) -> Result<ClapConfig, ClapError> {
        let text = std::fs::read_to_string(path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
        Self::from_json(&text).map_err(|e| match e {
            ClapError::Config(m) => ClapError::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    pub fn from_json(text: &str) -> Result<ClapConfig, ClapError> {
        let cfg: ClapConfig = serde_json::from_str(text).map_err(|e| bad(format!("not a CLAP config.json: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Every size consistent and bounded, every activation one dams implements; fused checkpoints refused here.
    pub fn validate(&self) -> Result<(), ClapError> {
        if let Some(t) = &self.model_type
            && t != "clap"
        {
            return Err(bad(format!("model_type is '{t}', not 'clap'")));
        }
        let t = &self.text_config;
        let a = &self.audio_config;
        for (name, v, max) in [
            ("text_config.vocab_size", t.vocab_size, MAX_VOCAB),
            ("text_config.hidden_size", t.hidden_size, MAX_DIM),
            ("text_config.num_hidden_layers", t.num_hidden_layers, MAX_LAYERS),
            ("text_config.num_attention_heads", t.num_attention_heads, MAX_DIM),
            ("text_config.intermediate_size", t.intermediate_size, 4 * MAX_DIM),
            ("text_config.max_position_embeddings", t.max_position_embeddings, MAX_POSITIONS),
            ("text_config.type_vocab_size", t.type_vocab_size, 16),
            ("text_config.projection_dim", t.projection_dim, MAX_DIM),
            ("audio_config.hidden_size", a.hidden_size, MAX_DIM),
            ("audio_config.projection_dim", a.projection_dim, MAX_DIM),
            ("audio_config.patch_embeds_hidden_size", a.patch_embeds_hidden_size, MAX_DIM),
            ("audio_config.window_size", a.window_size, 64),
            ("audio_config.num_mel_bins", a.num_mel_bins, 512),
            ("audio_config.spec_size", a.spec_size, 4096),
            ("projection_dim", self.projection_dim, MAX_DIM),
        ] {
            if v == 0 || v > max {
                return Err(bad(format!("{name} = {v} is out of range (1..={max})")));
            }
        }
        if t.hidden_size % t.num_attention_heads != 0 {
            return Err(bad(format!(
                "text hidden_size {} is not a multiple of num_attention_heads {}",
                t.hidden_size, t.num_attention_heads
            )));
        }
        if t.pad_token_id >= t.vocab_size || t.max_position_embeddings < t.pad_token_id + 2 {
            return Err(bad(format!(
                "text pad_token_id {} does not fit vocab_size {} / max_position_embeddings {}",
                t.pad_token_id, t.vocab_size, t.max_position_embeddings
            )));
        }
        if a.enable_fusion {
            return Err(ClapError::Unsupported(
                "this is a fused CLAP checkpoint (audio_config.enable_fusion = true, e.g. laion/clap-htsat-fused): \
                 dams implements the unfused HTSAT path only (larger_clap_* and clap-htsat-unfused are unfused)"
                    .into(),
            ));
        }
        if a.depths.is_empty() || a.depths.len() > 8 || a.depths.len() != a.num_attention_heads.len() {
            return Err(bad(format!(
                "audio_config.depths {:?} and num_attention_heads {:?} must be non-empty lists of equal length (≤ 8)",
                a.depths, a.num_attention_heads
            )));
        }
        if a.depths.iter().any(|&d| d == 0 || d > MAX_LAYERS) {
            return Err(bad(format!("audio_config.depths {:?} out of range", a.depths)));
        }
        if a.patch_embed_input_channels != 1 || !a.flatten_patch_embeds {
            return Err(bad("audio_config: only patch_embed_input_channels = 1 with flatten_patch_embeds".into()));
        }
        let [ps0, ps1] = a.patch_size.pair();
        let [st0, st1] = a.patch_stride.pair();
        if ps0 != st0 || ps1 != st1 || st0 == 0 || st1 == 0 {
            return Err(bad(format!(
                "audio_config: patch_size {:?} must equal patch_stride {:?} (every published HTSAT)",
                a.patch_size.pair(),
                a.patch_stride.pair()
            )));
        }
        if a.spec_size % a.num_mel_bins != 0 || a.freq_ratio() == 0 {
            return Err(bad(format!(
                "audio_config: spec_size {} is not a multiple of num_mel_bins {}",
                a.spec_size, a.num_mel_bins
            )));
        }
        if a.mlp_ratio <= 0.0 || a.mlp_ratio > 16.0 {
            return Err(bad(format!("audio_config.mlp_ratio {} out of range", a.mlp_ratio)));
        }
        let g = a.grid();
        if g[0] % (1 << (a.depths.len() - 1)) != 0 || g[1] % (1 << (a.depths.len() - 1)) != 0 {
            return Err(bad(format!(
                "audio_config: a {}x{} token grid cannot be merged {} times",
                g[0],
                g[1],
                a.depths.len() - 1
            )));
        }
        for (i, s) in a.stages().iter().enumerate() {
            if s.dim % s.heads.max(1) != 0 || s.heads == 0 {
                return Err(bad(format!("audio stage {i}: width {} is not a multiple of {} heads", s.dim, s.heads)));
            }
            if s.resolution[0] % s.window != 0 || s.resolution[1] % s.window != 0 {
                return Err(bad(format!(
                    "audio stage {i}: grid {:?} is not a multiple of window {} (padding is not implemented)",
                    s.resolution, s.window
                )));
            }
            if s.window < a.window_size {
                return Err(bad(format!(
                    "audio stage {i}: grid {:?} is smaller than window_size {} (the relative-position table would \
                     not match; PyTorch fails on it too)",
                    s.resolution, a.window_size
                )));
            }
        }
        if a.num_features() != a.hidden_size {
            return Err(bad(format!(
                "audio_config.hidden_size {} differs from the last stage's width {}",
                a.hidden_size,
                a.num_features()
            )));
        }
        if a.projection_dim != self.projection_dim || t.projection_dim != self.projection_dim {
            return Err(bad(format!(
                "projection dims differ: text {}, audio {}, model {}",
                t.projection_dim, a.projection_dim, self.projection_dim
            )));
        }
        check_act("text_config.hidden_act", &t.hidden_act, &["gelu"])?;
        check_act("audio_config.hidden_act", &a.hidden_act, &["gelu"])?;
        check_act("text_config.projection_hidden_act", &t.projection_hidden_act, &["relu"])?;
        check_act("audio_config.projection_hidden_act", &a.projection_hidden_act, &["relu"])?;
        Ok(())
    }
}

/// `preprocessor_config.json` (`ClapFeatureExtractor`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct FrontConfig {
    pub feature_size: usize,
    pub sampling_rate: u32,
    pub hop_length: usize,
    pub max_length_s: usize,
    pub fft_window_size: usize,
    pub frequency_min: f64,
    pub frequency_max: f64,
    pub truncation: String,
    pub padding: String,
}

impl Default for FrontConfig {
    /// The LAION checkpoints' settings (transformers' own defaults have `frequency_min` 0 and `fusion`; every
    /// published unfused checkpoint ships a preprocessor config with these values).
    fn default() -> Self {
        FrontConfig {
            feature_size: 64,
            sampling_rate: 48_000,
            hop_length: 480,
            max_length_s: 10,
            fft_window_size: 1024,
            frequency_min: 50.0,
            frequency_max: 14_000.0,
            truncation: "rand_trunc".into(),
            padding: "repeatpad".into(),
        }
    }
}

impl FrontConfig {
    pub fn from_file(path: &Path) -> Result<FrontConfig, ClapError> {
        let text = std::fs::read_to_string(path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
        let c: FrontConfig = serde_json::from_str(&text)
            .map_err(|e| bad(format!("{}: not a preprocessor config: {e}", path.display())))?;
        c.validate().map_err(|m| bad(format!("{}: {m}", path.display())))?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.sampling_rate != 48_000 {
            return Err(format!("sampling_rate {} (dams resamples to 48000 only)", self.sampling_rate));
        }
        if !(16..=8192).contains(&self.fft_window_size) || self.hop_length == 0 || self.hop_length > 8192 {
            return Err(format!(
                "fft_window_size {} / hop_length {} out of range",
                self.fft_window_size, self.hop_length
            ));
        }
        if self.max_length_s == 0 || self.max_length_s > 60 {
            return Err(format!("max_length_s {} out of range", self.max_length_s));
        }
        if self.feature_size == 0 || self.feature_size > 512 {
            return Err(format!("feature_size {} out of range", self.feature_size));
        }
        if !(self.frequency_min >= 0.0
            && self.frequency_min < self.frequency_max
            && self.frequency_max <= self.sampling_rate as f64 / 2.0)
        {
            return Err(format!("frequency range {}..{} Hz is invalid", self.frequency_min, self.frequency_max));
        }
        match self.truncation.as_str() {
            "rand_trunc" => {}
            "fusion" => return Err("truncation 'fusion' belongs to fused checkpoints, which dams does not run".into()),
            t => return Err(format!("truncation '{t}' is unknown")),
        }
        match self.padding.as_str() {
            "repeatpad" | "repeat" | "pad" => Ok(()),
            p => Err(format!("padding '{p}' is unknown")),
        }
    }

    /// Samples in one model input (`max_length_s · sampling_rate`).
    pub fn max_samples(&self) -> usize {
        self.max_length_s * self.sampling_rate as usize
    }
}
