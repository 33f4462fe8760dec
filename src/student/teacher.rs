//! A trained student as a teacher (`student:<name>`): `dams score --teacher student:NAME` scores
//! segments with its best checkpoint, so thresholds, pseudo-labels and evaluation work with it
//! like with any teacher, and rounds of self-training can be compared.

use std::path::Path;

use sha2::Digest;

use super::{DeviceChoice, Student, select_device};
use crate::teachers::{Teacher, TeacherError, TeacherOutput};

/// The teacher-id prefix of students.
pub const PREFIX: &str = "student:";

/// Students' registration (see [`crate::catalog`]): a family of teachers `student:<name>`, one per trained student
/// in the workspace's `data/models/`.
pub const DESCRIPTOR: crate::teachers::TeacherDescriptor = crate::teachers::TeacherDescriptor {
    id: PREFIX,
    family: true,
    description: "a student trained in this workspace (dams train), as a teacher: student:<name>",
    label_source: None,
    zero_shot: false,
    raw_vocab: None,
    devices: &["cpu", "gpu", "gpu:software", "ndarray"],
    options: &[],
    install: None,
    state: |ctx| match &ctx.models_dir {
        Some(d) if !super::checkpoint::list(d).is_empty() => crate::teachers::InstallState::Embedded,
        _ => crate::teachers::InstallState::Missing("dams train --name NAME (inside a workspace)".into()),
    },
    open: |id, ctx| {
        let name = &id[PREFIX.len()..];
        let device: DeviceChoice =
            ctx.device.parse().map_err(|detail| TeacherError::Input { id: id.into(), detail })?;
        let Some(dir) = &ctx.models_dir else {
            return Err(TeacherError::NotInstalled {
                id: id.into(),
                hint: "students are scored inside a workspace".into(),
            });
        };
        Ok(Box::new(StudentTeacher::open(dir, name, device)?))
    },
    instances: Some(|ctx| match &ctx.models_dir {
        Some(d) => super::checkpoint::list(d).into_iter().map(|n| format!("{PREFIX}{n}")).collect(),
        None => Vec::new(),
    }),
};

pub struct StudentTeacher {
    id: String,
    checksum: String,
    settings: String,
    student: Student,
    /// Embeddings computed by the last batch (head students with a frozen backbone), for the workspace's cache.
    last_embeddings: Option<(String, &'static str, Vec<Vec<f32>>)>,
}

impl StudentTeacher {
    /// Open `student:<name>` from a workspace's models directory.
    pub fn open(models_dir: &Path, name: &str, device: DeviceChoice) -> Result<StudentTeacher, TeacherError> {
        let id = format!("{PREFIX}{name}");
        let err = |detail: String| TeacherError::Weights { id: id.clone(), detail };
        super::checkpoint::check_name(name).map_err(|e| err(e.to_string()))?;
        let dir = models_dir.join(name);
        if !dir.join(super::checkpoint::META).exists() {
            return Err(TeacherError::NotInstalled {
                id: id.clone(),
                hint: format!("no student named '{name}' in this workspace; train it with `dams train --name {name}`"),
            });
        }
        let (dev, desc) = select_device(device).map_err(|e| err(format!("{e:#}")))?;
        let student = Student::load(&dir, &dev).map_err(|e| err(format!("{e:#}")))?;
        let weights = std::fs::read(dir.join("best").join("model.bpk")).map_err(|e| err(e.to_string()))?;
        let checksum = format!("{:x}", sha2::Sha256::digest(&weights));
        let m = &student.meta;
        let settings = match (&m.ast_head, &m.ina_head) {
            (Some(ast), _) => serde_json::json!({ "kind": m.kind, "ast": ast, "device": desc }),
            (None, Some(ina)) => serde_json::json!({ "kind": m.kind, "ina": ina, "device": desc }),
            (None, None) => serde_json::json!({ "kind": m.kind, "cnn": m.cnn, "device": desc }),
        }
        .to_string();
        Ok(StudentTeacher { id, checksum, settings, student, last_embeddings: None })
    }
}

impl Teacher for StudentTeacher {
    fn id(&self) -> &str {
        &self.id
    }
    fn version(&self) -> String {
        format!("{} {}", self.student.meta.kind, &self.checksum[..12.min(self.checksum.len())])
    }
    fn checksum(&self) -> &str {
        &self.checksum
    }
    fn settings_json(&self) -> String {
        self.settings.clone()
    }
    fn batch_size(&self) -> usize {
        16
    }
    fn score_batch(&mut self, segments: &[&[f32]]) -> Result<Vec<TeacherOutput>, TeacherError> {
        let (scores, embeddings) = self
            .student
            .score_waves_embedding(segments)
            .map_err(|e| TeacherError::Input { id: self.id.clone(), detail: format!("{e:#}") })?;
        self.last_embeddings = embeddings;
        Ok(scores.into_iter().map(|s| TeacherOutput { scores: s, raw: None }).collect())
    }
    /// A head student's backbone embeddings of the last batch go to the workspace's cache: the next scoring (a later
    /// round's student on the same backbone) reads them instead of running the backbone again.
    fn take_embeddings(&mut self) -> Option<(String, &'static str, Vec<Vec<f32>>)> {
        self.last_embeddings.take()
    }
    fn score_stored(
        &mut self,
        store: &crate::store::Store,
        segment_ids: &[i64],
    ) -> Result<Vec<Option<TeacherOutput>>, TeacherError> {
        let scores = self
            .student
            .score_stored(store, segment_ids)
            .map_err(|e| TeacherError::Input { id: self.id.clone(), detail: format!("{e:#}") })?;
        Ok(scores.into_iter().map(|s| s.map(|scores| TeacherOutput { scores, raw: None })).collect())
    }
    /// Trained with BCE on sigmoid outputs: 0.5 is the natural starting threshold.
    fn default_thresholds(&self) -> Option<[f64; 3]> {
        Some([0.5; 3])
    }
}
