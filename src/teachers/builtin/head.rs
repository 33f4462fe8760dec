//! The learned head of the built-in teacher: feature standardisation, a one-hidden-layer MLP (tanh) with three
//! sigmoid outputs, and per-class Platt calibration. Stored as JSON whose `checksum` is the SHA-256 of the
//! compact serialisation of `head`; floats are written in Rust's shortest round-trip form, so parsing and
//! re-serialising reproduces the bytes exactly and the checksum can be verified on load.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::features::{FEATURE_NAMES, FEATURES_VERSION, N_FEATURES};

pub const FORMAT: &str = "dams-builtin-head/1";

/// How the head was trained (recorded for provenance; no timestamps or absolute paths, so rebuilds are identical).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    pub command: String,
    pub seed: u64,
    pub stems_digest: String,
    pub n_train: usize,
    pub n_val: usize,
    pub epochs: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    /// Per-class F1 at 0.5 on the validation mixtures (made from held-out stems), after calibration.
    pub val_f1: [f64; 3],
    pub val_macro_f1: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadParams {
    pub format: String,
    pub features_version: u32,
    pub feature_names: Vec<String>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub hidden: usize,
    /// `hidden × n_features`, row-major.
    pub w1: Vec<f32>,
    pub b1: Vec<f32>,
    /// `3 × hidden`, row-major.
    pub w2: Vec<f32>,
    pub b2: Vec<f32>,
    /// Platt scaling per class: `p = sigmoid(a · logit + b)`.
    pub platt_a: [f32; 3],
    pub platt_b: [f32; 3],
    pub training: TrainingInfo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadFile {
    pub checksum: String,
    pub head: HeadParams,
}

#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("the head file is not valid JSON of the expected shape: {0}")]
    Parse(String),
    #[error(
        "checksum mismatch: the file says {stored}, its contents hash to {actual} (the file was edited or corrupted)"
    )]
    Checksum { stored: String, actual: String },
    #[error("the head file is incompatible: {0}")]
    Incompatible(String),
}

pub fn checksum_of(head: &HeadParams) -> String {
    let bytes = serde_json::to_vec(head).expect("head params serialise");
    let digest = Sha256::digest(&bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

impl HeadParams {
    /// Check shapes and names against this build's feature extractor.
    pub fn validate(&self) -> Result<(), HeadError> {
        let bad = |m: String| Err(HeadError::Incompatible(m));
        if self.format != FORMAT {
            return bad(format!("format '{}', expected '{FORMAT}'", self.format));
        }
        if self.features_version != FEATURES_VERSION {
            return bad(format!(
                "trained on feature version {}, this dams computes version {FEATURES_VERSION}; retrain with `dams teachers train-builtin`",
                self.features_version
            ));
        }
        if self.feature_names.iter().map(String::as_str).ne(FEATURE_NAMES.iter().copied()) {
            return bad("feature names differ from this build's features".into());
        }
        let d = N_FEATURES;
        let h = self.hidden;
        if h == 0 || h > 4096 {
            return bad(format!("hidden size {h} out of range"));
        }
        let shapes = [
            ("mean", self.mean.len(), d),
            ("std", self.std.len(), d),
            ("w1", self.w1.len(), h * d),
            ("b1", self.b1.len(), h),
            ("w2", self.w2.len(), 3 * h),
            ("b2", self.b2.len(), 3),
        ];
        for (name, got, want) in shapes {
            if got != want {
                return bad(format!("{name} has {got} values, expected {want}"));
            }
        }
        let all = self.mean.iter().chain(&self.std).chain(&self.w1).chain(&self.b1).chain(&self.w2).chain(&self.b2);
        if !all.chain(&self.platt_a).chain(&self.platt_b).all(|v| v.is_finite()) {
            return bad("non-finite weight".into());
        }
        if self.std.iter().any(|&s| s <= 0.0) {
            return bad("non-positive standard deviation".into());
        }
        Ok(())
    }

    /// Raw (uncalibrated) output logits for one feature vector; `hidden_buf.len() == hidden`.
    pub fn logits(&self, x: &[f32; N_FEATURES], hidden_buf: &mut [f32]) -> [f32; 3] {
        let d = N_FEATURES;
        let mut z = [0f32; N_FEATURES];
        for i in 0..d {
            z[i] = (x[i] - self.mean[i]) / self.std[i];
        }
        for (j, h) in hidden_buf.iter_mut().enumerate() {
            let row = &self.w1[j * d..(j + 1) * d];
            let mut s = self.b1[j];
            for i in 0..d {
                s += row[i] * z[i];
            }
            *h = s.tanh();
        }
        let mut out = [0f32; 3];
        for (c, o) in out.iter_mut().enumerate() {
            let row = &self.w2[c * self.hidden..(c + 1) * self.hidden];
            let mut s = self.b2[c];
            for (w, h) in row.iter().zip(hidden_buf.iter()) {
                s += w * h;
            }
            *o = s;
        }
        out
    }

    /// Calibrated scores in [0, 1].
    pub fn scores(&self, x: &[f32; N_FEATURES], hidden_buf: &mut [f32]) -> [f32; 3] {
        let l = self.logits(x, hidden_buf);
        let mut out = [0f32; 3];
        for c in 0..3 {
            let v = self.platt_a[c] * l[c] + self.platt_b[c];
            out[c] = 1.0 / (1.0 + (-v).exp());
        }
        out
    }
}

impl HeadFile {
    pub fn new(head: HeadParams) -> HeadFile {
        HeadFile { checksum: checksum_of(&head), head }
    }

    /// Parse, verify the checksum and validate the shapes.
    pub fn parse(text: &str) -> Result<HeadFile, HeadError> {
        let f: HeadFile = serde_json::from_str(text).map_err(|e| HeadError::Parse(e.to_string()))?;
        let actual = checksum_of(&f.head);
        if actual != f.checksum {
            return Err(HeadError::Checksum { stored: f.checksum, actual });
        }
        f.head.validate()?;
        Ok(f)
    }

    /// The file's exact bytes (pretty JSON plus a final newline).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("head file serialises");
        s.push('\n');
        s
    }
}
