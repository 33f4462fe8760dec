//! The built-in teacher: classical spectral features ([`features`]) and a small learned head ([`head`]) whose
//! weights are embedded from `assets/builtin/head.json` (rebuilt with `dams teachers train-builtin`, see [`train`]).
//! Needs no download, runs on one CPU core in a few milliseconds per 10 s segment.

pub mod evaluate;
pub mod features;
pub mod fft;
pub mod head;
pub mod train;

use std::path::Path;

use features::{FeatureExtractor, N_FEATURES, SILENCE_DBFS};
use head::{HeadFile, HeadParams};

use super::descriptor::{InstallState, OpenContext, OptionSpec, TeacherDescriptor};
use super::{Teacher, TeacherError, TeacherOutput};

pub const ID: &str = "builtin";

/// The built-in teacher's registration (see [`crate::catalog`]).
pub const DESCRIPTOR: TeacherDescriptor = TeacherDescriptor {
    id: ID,
    family: false,
    description: "classical spectral features + small learned head, embedded (no download)",
    label_source: None,
    zero_shot: false,
    raw_vocab: None,
    devices: &["cpu"],
    options: &[OptionSpec {
        name: "weights",
        default: "",
        help: "a head file (dams teachers train-builtin) instead of the embedded weights",
        choices: &[],
    }],
    install: None,
    state: |_| InstallState::Embedded,
    open: |_, ctx: &OpenContext| {
        let t = match ctx.options.get("weights") {
            "" => BuiltinTeacher::embedded()?,
            p => BuiltinTeacher::from_file(Path::new(p))?,
        };
        Ok(Box::new(t))
    },
    instances: None,
};

/// The committed head, embedded at build time.
pub const EMBEDDED_HEAD: &str = include_str!("../../../assets/builtin/head.json");

pub struct BuiltinTeacher {
    head: HeadParams,
    checksum: String,
    fx: FeatureExtractor,
    hidden: Vec<f32>,
}

impl BuiltinTeacher {
    /// The teacher with the embedded weights (checksum verified).
    pub fn embedded() -> Result<BuiltinTeacher, TeacherError> {
        Self::from_json(EMBEDDED_HEAD, "embedded assets/builtin/head.json")
    }

    /// The teacher with weights from a head file (e.g. a freshly trained one).
    pub fn from_file(path: &Path) -> Result<BuiltinTeacher, TeacherError> {
        let text = std::fs::read_to_string(path).map_err(|e| TeacherError::Weights {
            id: ID.into(),
            detail: format!("cannot read head file {}: {e}", path.display()),
        })?;
        Self::from_json(&text, &path.display().to_string())
    }

    pub fn from_json(text: &str, what: &str) -> Result<BuiltinTeacher, TeacherError> {
        let f = HeadFile::parse(text)
            .map_err(|e| TeacherError::Weights { id: ID.into(), detail: format!("{what}: {e}") })?;
        Ok(Self::from_head(f.head))
    }

    pub fn from_head(head: HeadParams) -> BuiltinTeacher {
        let checksum = head::checksum_of(&head);
        let hidden = vec![0.0; head.hidden];
        BuiltinTeacher { head, checksum, fx: FeatureExtractor::new(), hidden }
    }

    pub fn head(&self) -> &HeadParams {
        &self.head
    }

    /// The feature vector of one segment.
    pub fn features(&mut self, samples: &[f32]) -> [f32; N_FEATURES] {
        self.fx.extract(samples)
    }

    /// Scores of one segment: digital silence scores 0 for every class.
    pub fn score_one(&mut self, samples: &[f32]) -> [f32; 3] {
        if FeatureExtractor::rms_dbfs(samples) < SILENCE_DBFS {
            return [0.0; 3];
        }
        let f = self.fx.extract(samples);
        self.head.scores(&f, &mut self.hidden)
    }
}

impl Teacher for BuiltinTeacher {
    fn id(&self) -> &str {
        ID
    }
    fn version(&self) -> String {
        format!("features v{} + mlp{} ({})", self.head.features_version, self.head.hidden, &self.checksum[..15])
    }
    fn checksum(&self) -> &str {
        &self.checksum
    }
    fn settings_json(&self) -> String {
        r#"{"device":"cpu"}"#.into()
    }
    fn batch_size(&self) -> usize {
        32
    }
    /// The head is Platt-calibrated on held-out mixtures, so 0.5 is the default for every class.
    fn default_thresholds(&self) -> Option<[f64; 3]> {
        Some([0.5; 3])
    }
    fn score_batch(&mut self, segments: &[&[f32]]) -> Result<Vec<TeacherOutput>, TeacherError> {
        Ok(segments.iter().map(|s| TeacherOutput { scores: self.score_one(s), raw: None }).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_head_loads_and_tampering_is_detected() {
        let mut t = BuiltinTeacher::embedded().expect("embedded head verifies");
        let s = t.score_one(&vec![0.0; 160_000]);
        assert_eq!(s, [0.0; 3]);
        let noise: Vec<f32> =
            (0..160_000u32).map(|i| ((i.wrapping_mul(2654435761) >> 8) as f32 / 8388608.0 - 1.0) * 0.05).collect();
        let s = t.score_one(&noise);
        assert!(s.iter().all(|v| (0.0..=1.0).contains(v)));
        // Change one digit of one weight: the checksum no longer matches.
        let pos = EMBEDDED_HEAD.find("\"w1\": [").unwrap() + 7;
        let digit = EMBEDDED_HEAD[pos..].find(|c: char| c.is_ascii_digit()).unwrap() + pos;
        let mut bad = EMBEDDED_HEAD.to_string();
        let d = bad.as_bytes()[digit];
        bad.replace_range(digit..digit + 1, if d == b'1' { "2" } else { "1" });
        let err = BuiltinTeacher::from_json(&bad, "tampered").err().expect("tampering detected");
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        assert!(BuiltinTeacher::from_json("{", "truncated").is_err());
    }
}
