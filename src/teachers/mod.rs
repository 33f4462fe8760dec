//! Teachers: models that score segments as speech / music / noise.
//!
//! A [`Teacher`] scores batches of 16 kHz mono segments into `[speech, music, noise]` scores in [0, 1]
//! (AudioSet taggers also return their 527 logits, collapsed through [`audioset`]). The [`registry`] lists the
//! teachers dams knows, installed or not; [`load`] opens one. [`score`] runs a teacher over the workspace's
//! segments into a resumable teacher run.

pub mod ast;
pub mod audioset;
pub mod builtin;
pub mod ina;
pub mod remap;
pub mod score;

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
    /// The 527 AudioSet logits, for AudioSet taggers.
    pub logits: Option<Vec<f32>>,
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
    /// Whether [`TeacherOutput::logits`] holds the 527 AudioSet logits.
    fn audioset_logits(&self) -> bool {
        false
    }
    /// Settings that change the scores (pooling, device...), as JSON; part of a run's identity.
    fn settings_json(&self) -> String {
        "{}".into()
    }
    /// Pool AudioSet logits with `pooling` from now on (part of [`settings_json`](Self::settings_json)).
    /// Teachers without AudioSet logits refuse.
    fn set_pooling(&mut self, pooling: audioset::Pooling) -> Result<(), TeacherError> {
        Err(TeacherError::Input {
            id: self.id().to_string(),
            detail: format!(
                "{} pooling applies to teachers with AudioSet logits (ast); {} scores speech, music and noise directly",
                pooling.as_str(),
                self.id()
            ),
        })
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

/// A teacher dams knows of, installed or not.
#[derive(Debug, Clone, PartialEq)]
pub struct TeacherInfo {
    pub id: &'static str,
    pub description: &'static str,
    pub installed: bool,
    /// The command that installs it, when it is not installed.
    pub install: Option<&'static str>,
    pub zero_shot: bool,
}

/// Every teacher dams knows, in display order.
pub fn registry() -> Vec<TeacherInfo> {
    vec![
        TeacherInfo {
            id: builtin::ID,
            description: "classical spectral features + small learned head, embedded (no download)",
            installed: true,
            install: None,
            zero_shot: false,
        },
        TeacherInfo {
            id: "ast",
            description: "Audio Spectrogram Transformer, MIT/ast-finetuned-audioset-10-10-0.4593 (527 AudioSet classes)",
            installed: ast::install::installed(&crate::config::Dirs::get().model_cache()).is_some(),
            install: Some("dams teachers pull ast   (or: dams teachers add ast --from DIR)"),
            zero_shot: false,
        },
    ]
}

/// Options for opening a teacher.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `auto`, `cpu` or `gpu`; the built-in teacher always runs on the CPU.
    pub device: Option<String>,
    /// For the built-in teacher: a head file to use instead of the embedded one.
    pub builtin_weights: Option<std::path::PathBuf>,
    /// The workspace's `data/models/` directory, where students (`student:<name>`) live.
    pub models_dir: Option<std::path::PathBuf>,
    /// How AudioSet taggers pool their logits (`None`: the teacher's default, noisy-OR). Refused
    /// by teachers without AudioSet logits.
    pub pooling: Option<audioset::Pooling>,
}

/// Whether teacher `id` scores through the 527 AudioSet logits (so pooling applies), known
/// without loading it.
pub fn has_audioset_logits(id: &str) -> bool {
    id == ast::ID
}

/// Open a teacher by id (with the pooling `opts` asks for).
pub fn load(id: &str, opts: &LoadOptions) -> Result<Box<dyn Teacher>, TeacherError> {
    let mut t = load_teacher(id, opts)?;
    if let Some(p) = opts.pooling {
        t.set_pooling(p)?;
    }
    Ok(t)
}

fn load_teacher(id: &str, opts: &LoadOptions) -> Result<Box<dyn Teacher>, TeacherError> {
    match id {
        builtin::ID => {
            if let Some(d) = opts.device.as_deref()
                && !matches!(d, "auto" | "cpu")
            {
                return Err(TeacherError::Input {
                    id: id.into(),
                    detail: format!("device '{d}': the built-in teacher runs on the CPU only (use --device cpu)"),
                });
            }
            let t = match &opts.builtin_weights {
                Some(p) => builtin::BuiltinTeacher::from_file(p)?,
                None => builtin::BuiltinTeacher::embedded()?,
            };
            Ok(Box::new(t))
        }
        ast::ID => ast::load_installed(&crate::config::Dirs::get().model_cache(), opts),
        #[cfg(feature = "burn")]
        student if student.starts_with(crate::student::teacher::PREFIX) => {
            let name = &student[crate::student::teacher::PREFIX.len()..];
            let device = match opts.device.as_deref() {
                None | Some("auto") => crate::student::DeviceChoice::Auto,
                Some("cpu") => crate::student::DeviceChoice::Cpu,
                Some("gpu") => crate::student::DeviceChoice::Gpu,
                Some("ndarray") => crate::student::DeviceChoice::Ndarray,
                Some(d) => {
                    return Err(TeacherError::Input {
                        id: id.into(),
                        detail: format!("unknown device '{d}' (auto, cpu or gpu)"),
                    });
                }
            };
            let Some(dir) = &opts.models_dir else {
                return Err(TeacherError::NotInstalled {
                    id: id.into(),
                    hint: "students are scored inside a workspace".into(),
                });
            };
            Ok(Box::new(crate::student::teacher::StudentTeacher::open(dir, name, device)?))
        }
        other => match registry().into_iter().find(|t| t.id == other) {
            Some(info) => Err(TeacherError::NotInstalled {
                id: other.into(),
                hint: format!("install it with `{}`", info.install.unwrap_or("dams teachers")),
            }),
            None => Err(TeacherError::Unknown(other.into())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_and_load() {
        let r = registry();
        assert!(r.iter().any(|t| t.id == "builtin" && t.installed));
        assert!(r.iter().any(|t| t.id == "ast" && t.install.is_some()));
        let ast_installed = r.iter().any(|t| t.id == "ast" && t.installed);
        let t = load("builtin", &LoadOptions::default()).unwrap();
        assert_eq!(t.label_source().as_str(), "builtin_pseudo");
        assert_eq!(t.sample_rate(), 16_000);
        assert!(t.checksum().starts_with("sha256:"));
        if !ast_installed {
            assert!(matches!(load("ast", &LoadOptions::default()), Err(TeacherError::NotInstalled { .. })));
        }
        assert!(matches!(load("nope", &LoadOptions::default()), Err(TeacherError::Unknown(_))));
        let gpu = LoadOptions { device: Some("gpu".into()), ..Default::default() };
        assert!(load("builtin", &gpu).is_err());
        let max = LoadOptions { pooling: Some(audioset::Pooling::Max), ..Default::default() };
        let e = load("builtin", &max).err().unwrap().to_string();
        assert!(e.contains("max pooling applies to teachers with AudioSet logits"), "{e}");
        assert!(has_audioset_logits("ast") && !has_audioset_logits("builtin") && !has_audioset_logits("student:s1"));
    }
}
