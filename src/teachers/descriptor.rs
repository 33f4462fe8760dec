//! What a teacher declares about itself: its [`TeacherDescriptor`].
//!
//! Every teacher folder (`teachers/<id>/`, `student/teacher.rs`) exports one `DESCRIPTOR`; the one list of them is
//! [`crate::catalog`]. Everything that names teachers — `dams teachers`, `dams score --teacher <id> --option k=v`,
//! `dams teachers pull|add`, the TUI's score form, thresholds, pseudo-labels, eval — reads that list. A teacher is
//! opened with an [`OpenContext`] (model cache, workspace models dir, device, options), never from globals, so tests
//! never see the user's real cache.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Teacher, TeacherError};
use crate::labels::LabelSource;

/// One option a teacher takes (`--option name=value`), with its default and help. The TUI's score form shows it as
/// a choice field when `choices` is not empty, as a text field otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionSpec {
    pub name: &'static str,
    pub default: &'static str,
    pub help: &'static str,
    /// The allowed values; empty: free text (checked by the teacher when it opens).
    pub choices: &'static [&'static str],
}

/// How a teacher's weights are installed (`dams teachers pull|add <id>`).
#[derive(Debug, Clone, Copy)]
pub struct InstallSpec {
    /// The Hugging Face repository `pull` downloads from (through the HF cache layout).
    pub hf_repo: &'static str,
    /// The revision (`main`, a tag or a commit).
    pub revision: &'static str,
    /// The files a checkpoint folder holds.
    pub files: &'static [&'static str],
    /// Check a checkpoint folder without keeping it (config valid, tensors present with the right shapes...);
    /// returns a one-line summary.
    pub check: fn(&Path) -> Result<String, String>,
    /// Weights published outside the Hugging Face hub: `pull` downloads these instead (empty: the hub).
    pub urls: &'static [UrlFile],
}

/// One file of a checkpoint published at a plain URL.
#[derive(Debug, Clone, Copy)]
pub struct UrlFile {
    /// The name it has in the checkpoint folder.
    pub file: &'static str,
    pub url: &'static str,
    /// Its sha256 when the publisher gives one (checked after the download).
    pub sha256: Option<&'static str>,
}

/// Whether a teacher can be opened now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallState {
    /// Embedded in dams (nothing to install).
    Embedded,
    /// Installed; the string says which weights (checksum, source).
    Installed(String),
    /// Not installed: the string is the command that installs it.
    Missing(String),
}

impl InstallState {
    pub fn usable(&self) -> bool {
        !matches!(self, InstallState::Missing(_))
    }
}

/// What a teacher declares: registered in [`crate::catalog`] with one line.
#[derive(Debug, Clone, Copy)]
pub struct TeacherDescriptor {
    /// The teacher id (`builtin`, `ast`...). For a family (`family = true`) the id is a prefix and an instance is
    /// `<prefix><name>` (students: `student:` + name).
    pub id: &'static str,
    pub family: bool,
    pub description: &'static str,
    /// The label source of its pseudo-labels (`ast_pseudo`, `clap_zero_shot`...); `None`: `<id>_pseudo`, or
    /// `<id>_zero_shot` for zero-shot teachers.
    pub label_source: Option<&'static str>,
    pub zero_shot: bool,
    /// The vocabulary of its raw outputs (see [`super::raw`]), when it stores them.
    pub raw_vocab: Option<&'static str>,
    /// Devices it runs on (`auto` is always accepted).
    pub devices: &'static [&'static str],
    pub options: &'static [OptionSpec],
    pub install: Option<InstallSpec>,
    /// Whether it can be opened in this context.
    pub state: fn(&OpenContext) -> InstallState,
    /// Open it (`id` is the full id: a family's instance name included).
    pub open: fn(&str, &OpenContext) -> Result<Box<dyn Teacher>, TeacherError>,
    /// For a family: the instances that exist in this context (e.g. the workspace's students).
    pub instances: Option<fn(&OpenContext) -> Vec<String>>,
}

impl TeacherDescriptor {
    /// Whether `id` names this teacher (or an instance of this family).
    pub fn matches(&self, id: &str) -> bool {
        if self.family { id.starts_with(self.id) && id.len() > self.id.len() } else { id == self.id }
    }

    /// The label source of teacher `id`'s pseudo-labels.
    pub fn label_source_of(&self, id: &str) -> LabelSource {
        match self.label_source {
            Some(s) if !self.family => LabelSource::from_raw(s),
            _ => LabelSource::for_teacher(id, self.zero_shot),
        }
    }

    pub fn option(&self, name: &str) -> Option<&'static OptionSpec> {
        self.options.iter().find(|o| o.name == name)
    }

    /// Check `given` (`name=value` pairs) against the declared options and fill in the defaults.
    pub fn parse_options<'a>(
        &self,
        given: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<TeacherOptions, TeacherError> {
        let mut values: BTreeMap<String, String> =
            self.options.iter().map(|o| (o.name.to_string(), o.default.to_string())).collect();
        for (k, v) in given {
            let Some(spec) = self.option(k) else {
                let known: Vec<&str> = self.options.iter().map(|o| o.name).collect();
                return Err(TeacherError::Input {
                    id: self.id.into(),
                    detail: if known.is_empty() {
                        format!("unknown option '{k}': this teacher takes no options")
                    } else {
                        format!("unknown option '{k}' (options: {})", known.join(", "))
                    },
                });
            };
            if !spec.choices.is_empty() && !spec.choices.contains(&v) {
                return Err(TeacherError::Input {
                    id: self.id.into(),
                    detail: format!("option {k}={v}: expected one of {}", spec.choices.join(", ")),
                });
            }
            values.insert(k.to_string(), v.to_string());
        }
        Ok(TeacherOptions(values))
    }

    /// Check a device name against the devices this teacher runs on.
    pub fn check_device(&self, device: &str) -> Result<(), TeacherError> {
        if device == "auto" || self.devices.contains(&device) {
            Ok(())
        } else {
            Err(TeacherError::Input {
                id: self.id.into(),
                detail: format!("device '{device}': this teacher runs on {}", self.devices.join(", ")),
            })
        }
    }
}

/// A teacher's option values (every declared option, defaults filled in), in name order.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TeacherOptions(pub BTreeMap<String, String>);

impl TeacherOptions {
    /// The value of option `name` (`""` when the teacher has no such option).
    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map(String::as_str).unwrap_or("")
    }
    /// Parse `k=v` strings (as `--option` gives them).
    pub fn parse_pairs(pairs: &[String]) -> Result<Vec<(String, String)>, String> {
        pairs
            .iter()
            .map(|p| match p.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
                _ => Err(format!("--option expects NAME=VALUE, got '{p}'")),
            })
            .collect()
    }
}

/// What opening a teacher gets: where models live, which device, which options.
#[derive(Debug, Clone)]
pub struct OpenContext {
    /// dams' model cache (`<cache>/models`): installed checkpoints, one folder per teacher.
    pub model_cache: PathBuf,
    /// The Hugging Face hub cache `pull` fills and reads (`HF_HUB_CACHE`, `HF_HOME/hub`...).
    pub hub_cache: PathBuf,
    /// The workspace's `data/models/` (students), when a workspace is open.
    pub models_dir: Option<PathBuf>,
    /// `auto`, `cpu`, `gpu`...
    pub device: String,
    pub options: TeacherOptions,
}

impl OpenContext {
    /// A context over `model_cache` alone (device `auto`, no options, no workspace).
    pub fn new(model_cache: impl Into<PathBuf>) -> OpenContext {
        let model_cache = model_cache.into();
        OpenContext {
            hub_cache: super::hub::HubCache::from_env().root,
            model_cache,
            models_dir: None,
            device: "auto".into(),
            options: TeacherOptions::default(),
        }
    }

    /// The context of the user's dirs and a workspace.
    pub fn for_workspace(dirs: &crate::config::Dirs, ws: Option<&crate::workspace::Workspace>) -> OpenContext {
        let mut c = OpenContext::new(dirs.model_cache());
        c.models_dir = ws.map(|w| w.data_dir().join("models"));
        c
    }

    pub fn with_device(mut self, device: impl Into<String>) -> Self {
        self.device = device.into();
        self
    }
    pub fn with_options(mut self, options: TeacherOptions) -> Self {
        self.options = options;
        self
    }
}
