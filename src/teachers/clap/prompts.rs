//! Prompt sets: `prompts.toml` in the workspace folder, named sets with one or more prompts per class (their
//! embeddings are averaged into the class's anchor) and optional negative prompts per class (for the `pairwise`
//! scoring). The Python project's three prompts are the built-in set `python`, used when the workspace defines no
//! set of that name. Saving a set records its provenance (when, from which set, the F1 it had on gold, a note).
//!
//! ```toml
//! [sets.python]
//! template = "This is a sound of {}."
//! speech = ["An audio recording where clear spoken human voice ..."]
//! music = ["..."]
//! noise = ["..."]
//! speech_negative = ["..."]          # optional
//! [sets.python.provenance]           # written by the workbench
//! saved = "2026-12-07T07:10:00Z"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::scoring::CLASSES;

/// The pipeline's default `hypothesis_template`.
pub const TEMPLATE: &str = "This is a sound of {}.";
/// The name of the built-in set.
pub const DEFAULT_SET: &str = "python";
/// The file in the workspace folder.
pub const FILE: &str = "prompts.toml";

/// The Python project's candidate labels (`apply_clap.py`).
pub const PYTHON_PROMPTS: [&str; 3] = [
    "An audio recording where clear spoken human voice is the main sound in the foreground (talking, announcements, \
     conversation or monologue). Any music or background noise is quiet and not the focus.",
    "An audio recording where music is the main sound in the foreground (instruments and or singing with melody or \
     rhythm). Any speech is brief or in the background and not the focus.",
    "An audio recording that contains environmental or background noise only (traffic, nature, machinery, room tone, \
     crowd hubbub) with no clearly intelligible speech and no clear melodic music.",
];

/// Negative prompts of the built-in set (only the `pairwise` scoring reads them; not from the Python project).
pub const PYTHON_NEGATIVES: [&str; 3] = [
    "An audio recording with no human speech at all.",
    "An audio recording with no music at all.",
    "An audio recording of clear speech or music with no background noise.",
];

/// Where a saved set came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub saved: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from_set: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macro_f1: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<usize>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// One named set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptSet {
    #[serde(default = "default_template")]
    pub template: String,
    #[serde(default)]
    pub speech: Vec<String>,
    #[serde(default)]
    pub music: Vec<String>,
    #[serde(default)]
    pub noise: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub speech_negative: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub music_negative: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub noise_negative: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
}

fn default_template() -> String {
    TEMPLATE.into()
}

impl PromptSet {
    /// The Python project's prompts (plus negatives for `pairwise`).
    pub fn python() -> PromptSet {
        let v = |s: &str| vec![s.to_string()];
        PromptSet {
            template: TEMPLATE.into(),
            speech: v(PYTHON_PROMPTS[0]),
            music: v(PYTHON_PROMPTS[1]),
            noise: v(PYTHON_PROMPTS[2]),
            speech_negative: v(PYTHON_NEGATIVES[0]),
            music_negative: v(PYTHON_NEGATIVES[1]),
            noise_negative: v(PYTHON_NEGATIVES[2]),
            provenance: None,
        }
    }

    /// The prompts of class `c`.
    pub fn class(&self, c: usize) -> &Vec<String> {
        [&self.speech, &self.music, &self.noise][c]
    }
    pub fn class_mut(&mut self, c: usize) -> &mut Vec<String> {
        match c {
            0 => &mut self.speech,
            1 => &mut self.music,
            _ => &mut self.noise,
        }
    }
    pub fn negatives(&self, c: usize) -> &Vec<String> {
        [&self.speech_negative, &self.music_negative, &self.noise_negative][c]
    }

    /// Prompt groups in layout order (the three classes, then the classes' negatives that exist), each a list of
    /// prompts already wrapped in the template.
    pub fn groups(&self) -> Vec<Vec<String>> {
        let wrap = |v: &Vec<String>| v.iter().map(|p| self.wrap(p)).collect::<Vec<_>>();
        let mut g: Vec<Vec<String>> = (0..3).map(|c| wrap(self.class(c))).collect();
        for c in 0..3 {
            if !self.negatives(c).is_empty() {
                g.push(wrap(self.negatives(c)));
            }
        }
        g
    }

    pub fn has_negatives(&self) -> [bool; 3] {
        [0, 1, 2].map(|c| !self.negatives(c).is_empty())
    }

    /// `template.format(prompt)`.
    pub fn wrap(&self, prompt: &str) -> String {
        self.template.replacen("{}", prompt, 1)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.template.matches("{}").count() != 1 {
            return Err(format!("template '{}' must contain '{{}}' exactly once", self.template));
        }
        for c in 0..3 {
            if self.class(c).is_empty() {
                return Err(format!("no prompt for {}", CLASSES[c]));
            }
            if self.class(c).iter().chain(self.negatives(c)).any(|p| p.trim().is_empty()) {
                return Err(format!("an empty prompt for {}", CLASSES[c]));
            }
        }
        Ok(())
    }

    /// A short stable digest of what changes the scores (template and prompts, not provenance).
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.template.as_bytes());
        for g in self.groups() {
            h.update(b"\x1e");
            for p in g {
                h.update(p.as_bytes());
                h.update(b"\x1f");
            }
        }
        for (c, n) in self.has_negatives().iter().enumerate() {
            h.update([c as u8, *n as u8]);
        }
        h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptFile {
    /// Segments the user marked as background (noise only, dead air...): the audio background profile's input.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub background: Vec<i64>,
    #[serde(default)]
    pub sets: BTreeMap<String, PromptSet>,
}

impl PromptFile {
    pub fn path(ws_root: &Path) -> PathBuf {
        ws_root.join(FILE)
    }

    /// Read the workspace's file (absent: no sets).
    pub fn load(ws_root: &Path) -> Result<PromptFile, String> {
        let p = Self::path(ws_root);
        match std::fs::read_to_string(&p) {
            Ok(t) => {
                let f: PromptFile = toml::from_str(&t).map_err(|e| format!("{}: {e}", p.display()))?;
                for (name, s) in &f.sets {
                    s.validate().map_err(|e| format!("{}: set '{name}': {e}", p.display()))?;
                }
                Ok(f)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PromptFile::default()),
            Err(e) => Err(format!("{}: {e}", p.display())),
        }
    }

    /// Set `name`: from the file, or the built-in `python` set.
    pub fn get(&self, name: &str) -> Result<PromptSet, String> {
        match self.sets.get(name) {
            Some(s) => Ok(s.clone()),
            None if name == DEFAULT_SET => Ok(PromptSet::python()),
            None => {
                let mut known: Vec<&str> = self.sets.keys().map(String::as_str).collect();
                if !known.contains(&DEFAULT_SET) {
                    known.push(DEFAULT_SET);
                }
                Err(format!("no prompt set '{name}' in {FILE} (sets: {})", known.join(", ")))
            }
        }
    }

    /// Write set `name` (replacing it), atomically.
    pub fn save_set(ws_root: &Path, name: &str, set: &PromptSet) -> Result<(), String> {
        set.validate()?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
            return Err(format!("set name '{name}': use letters, digits, '_', '-', '.'"));
        }
        let mut f = Self::load(ws_root)?;
        f.sets.insert(name.to_string(), set.clone());
        f.save(ws_root)
    }

    /// Write the whole file, atomically.
    pub fn save(&self, ws_root: &Path) -> Result<(), String> {
        let text = toml::to_string_pretty(self).map_err(|e| e.to_string())?;
        let p = Self::path(ws_root);
        let tmp = p.with_extension("toml.tmp");
        std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, &p)).map_err(|e| format!("{}: {e}", p.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_set_wraps_the_python_prompts() {
        let s = PromptSet::python();
        let g = s.groups();
        assert_eq!(g.len(), 6);
        assert_eq!(g[0][0], format!("This is a sound of {}.", PYTHON_PROMPTS[0]));
        assert!(s.validate().is_ok());
    }

    #[test]
    fn sets_round_trip_and_unknown_names_are_refused() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(PromptFile::load(d.path()).unwrap().get("python").unwrap(), PromptSet::python());
        let mut s = PromptSet::python();
        s.music.push("Radio jingle with drums.".into());
        s.provenance = Some(Provenance { saved: "now".into(), macro_f1: Some(0.5), ..Default::default() });
        PromptFile::save_set(d.path(), "mine", &s).unwrap();
        let f = PromptFile::load(d.path()).unwrap();
        assert_eq!(f.get("mine").unwrap(), s);
        assert_ne!(s.digest(), PromptSet::python().digest());
        assert!(f.get("nope").unwrap_err().contains("mine"));
        std::fs::write(d.path().join(FILE), "[sets.bad]\nspeech = []\n").unwrap();
        assert!(PromptFile::load(d.path()).unwrap_err().contains("no prompt for speech"));
    }
}
