//! Teachers: models that score segments as speech / music / noise.
//!
//! A [`Teacher`] scores batches of 16 kHz mono segments into `[speech, music, noise]` scores in [0, 1], with its raw
//! output (AudioSet logits, prompt similarities...) tagged by [`Teacher::raw_vocab`] (see [`raw`]). Each teacher
//! folder declares a [`descriptor::TeacherDescriptor`]; the one list of them is [`crate::catalog`], which opens
//! teachers with a [`descriptor::OpenContext`]. [`score`] runs a teacher over the workspace's segments into a
//! resumable teacher run; [`weights`] and [`hub`] are the loading code every teacher shares.

pub mod ast;
pub mod audioset;
pub mod builtin;
pub mod clap;
pub mod descriptor;
pub mod hub;
pub mod ina;
pub mod m2d;
pub mod raw;
pub mod remap;
pub mod score;
pub mod weights;
pub mod whisper_at;

pub use descriptor::{InstallState, OpenContext, OptionSpec, TeacherDescriptor, TeacherOptions};

use crate::labels::LabelSource;

/// Why a teacher cannot be opened or cannot score.
#[derive(Debug, thiserror::Error)]
pub enum TeacherError {
    #[error("unknown teacher '{0}' (run `dams teachers` for the list)")]
    Unknown(String),
    #[error("teacher '{id}' is not installed: {hint}")]
    NotInstalled { id: String, hint: String },
    #[error("teacher '{id}': {detail}")]
    Weights { id: String, detail: String },
    #[error("teacher '{id}' cannot score this input: {detail}")]
    Input { id: String, detail: String },
}

/// What a teacher produced for one segment.
#[derive(Debug, Clone, PartialEq)]
pub struct TeacherOutput {
    /// `[speech, music, noise]` in [0, 1].
    pub scores: [f32; 3],
    /// The raw model output in the teacher's [`Teacher::raw_vocab`] (the 527 AudioSet logits of a tagger...).
    pub raw: Option<Vec<f32>>,
}

/// A model that scores segments.
pub trait Teacher: Send {
    /// Stable id (`builtin`, `ast`, ...), used as the run's teacher name.
    fn id(&self) -> &str;
    /// Human-readable version of the weights.
    fn version(&self) -> String;
    /// Checksum identifying the exact weights (a run is only resumed with the same checksum).
    fn checksum(&self) -> &str;
    /// Sample rate the segments must be given at.
    fn sample_rate(&self) -> u32 {
        16_000
    }
    /// Zero-shot teachers (CLAP-like) label with `<id>_zero_shot` instead of `<id>_pseudo`.
    fn zero_shot(&self) -> bool {
        false
    }
    /// The vocabulary of [`TeacherOutput::raw`] (see [`raw`]), when the teacher gives raw outputs.
    fn raw_vocab(&self) -> Option<&'static str> {
        None
    }
    /// Settings that change the scores (its options, pooling, device...), as a JSON object; part of a run's identity.
    fn settings_json(&self) -> String {
        "{}".into()
    }
    /// A good batch size for [`score_batch`](Self::score_batch).
    fn batch_size(&self) -> usize {
        16
    }
    /// Score a batch of segments (mono samples at [`sample_rate`](Self::sample_rate)).
    fn score_batch(&mut self, segments: &[&[f32]]) -> Result<Vec<TeacherOutput>, TeacherError>;

    /// Scores the teacher can give from the workspace store alone, without decoding audio (an ast-head student reads
    /// its cached embeddings): one entry per id, `None` where it needs the audio. Default: audio for every segment.
    fn score_stored(
        &mut self,
        _store: &crate::store::Store,
        segment_ids: &[i64],
    ) -> Result<Vec<Option<TeacherOutput>>, TeacherError> {
        Ok(vec![None; segment_ids.len()])
    }
    /// Embeddings computed by the last [`score_batch`](Self::score_batch) (one per segment, in order) with their
    /// cache key `(model checksum, kind)`, for the workspace's embedding cache; taken once. Default: none.
    fn take_embeddings(&mut self) -> Option<(String, &'static str, Vec<Vec<f32>>)> {
        None
    }
    /// Per-class thresholds to store when the workspace has none for this teacher yet (method `default`), e.g.
    /// 0.5 for a calibrated teacher. `None`: leave thresholds to calibration.
    fn default_thresholds(&self) -> Option<[f64; 3]> {
        None
    }
    /// A one-line note for the user about how the teacher runs (e.g. a GPU fallback to the CPU).
    fn notice(&self) -> Option<String> {
        None
    }
    /// The label source of this teacher's pseudo-labels.
    fn label_source(&self) -> LabelSource {
        LabelSource::for_teacher(self.id(), self.zero_shot())
    }
}
