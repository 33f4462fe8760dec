//! Label vocabulary shared by every module: classes, label sets, splits and label sources.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The three classes dams labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Speech,
    Music,
    Noise,
}

/// All classes in their canonical order (the column order of every manifest and score vector).
pub const CLASSES: [Class; 3] = [Class::Speech, Class::Music, Class::Noise];

impl Class {
    pub fn index(self) -> usize {
        match self {
            Class::Speech => 0,
            Class::Music => 1,
            Class::Noise => 2,
        }
    }
    pub fn from_index(i: usize) -> Option<Class> {
        CLASSES.get(i).copied()
    }
    pub fn name(self) -> &'static str {
        match self {
            Class::Speech => "speech",
            Class::Music => "music",
            Class::Noise => "noise",
        }
    }
    /// One-letter abbreviation used in compact table cells (`S`, `M`, `N`).
    pub fn letter(self) -> char {
        match self {
            Class::Speech => 'S',
            Class::Music => 'M',
            Class::Noise => 'N',
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Class {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "speech" | "s" => Ok(Class::Speech),
            "music" | "m" => Ok(Class::Music),
            "noise" | "n" => Ok(Class::Noise),
            other => Err(format!("unknown class '{other}' (expected speech, music or noise)")),
        }
    }
}

/// A multi-hot `[speech, music, noise]` label, stored as three bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct LabelSet(u8);

impl LabelSet {
    pub const EMPTY: LabelSet = LabelSet(0);

    pub fn new(speech: bool, music: bool, noise: bool) -> Self {
        LabelSet(speech as u8 | (music as u8) << 1 | (noise as u8) << 2)
    }
    pub fn from_array(a: [bool; 3]) -> Self {
        Self::new(a[0], a[1], a[2])
    }
    /// From the 3-bit code used by the 8-combination confusion matrix (bit 0 speech, 1 music, 2 noise).
    pub fn from_bits(bits: u8) -> Self {
        LabelSet(bits & 0b111)
    }
    pub fn bits(self) -> u8 {
        self.0
    }
    pub fn get(self, c: Class) -> bool {
        self.0 >> c.index() & 1 == 1
    }
    pub fn set(&mut self, c: Class, on: bool) {
        if on {
            self.0 |= 1 << c.index();
        } else {
            self.0 &= !(1 << c.index());
        }
    }
    pub fn toggle(&mut self, c: Class) {
        self.0 ^= 1 << c.index();
    }
    pub fn with(mut self, c: Class, on: bool) -> Self {
        self.set(c, on);
        self
    }
    pub fn to_array(self) -> [bool; 3] {
        [self.get(Class::Speech), self.get(Class::Music), self.get(Class::Noise)]
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Compact form such as `SM-` (speech and music on, noise off).
    pub fn compact(self) -> String {
        CLASSES.iter().map(|&c| if self.get(c) { c.letter() } else { '-' }).collect()
    }
}

impl fmt::Display for LabelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.compact())
    }
}

/// Dataset split of a segment, as in the DAMS manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Dev,
    Test,
    Unlabeled,
    Unsplit,
}

pub const SPLITS: [Split; 5] = [Split::Train, Split::Dev, Split::Test, Split::Unlabeled, Split::Unsplit];

impl Split {
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Dev => "dev",
            Split::Test => "test",
            Split::Unlabeled => "unlabeled",
            Split::Unsplit => "unsplit",
        }
    }
    /// Splits on which gold labels are allowed by default (as in the Python project).
    pub fn allows_gold_by_default(self) -> bool {
        matches!(self, Split::Dev | Split::Test)
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Split {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "train" => Ok(Split::Train),
            "dev" => Ok(Split::Dev),
            "test" => Ok(Split::Test),
            "unlabeled" => Ok(Split::Unlabeled),
            "unsplit" | "" => Ok(Split::Unsplit),
            other => Err(format!("unknown split '{other}' (expected train, dev, test, unlabeled or unsplit)")),
        }
    }
}

/// Parse a comma-separated split list such as `dev,test`.
pub fn parse_splits(s: &str) -> Result<Vec<Split>, String> {
    s.split(',').filter(|p| !p.trim().is_empty()).map(Split::from_str).collect()
}

/// Where a label came from. The DAMS vocabulary plus one source per further teacher or student
/// (`<teacher>_pseudo`, `<teacher>_zero_shot`, `student:<name>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LabelSource(String);

/// The label sources the Python project defines.
pub const KNOWN_SOURCES: [&str; 7] =
    ["none", "gold", "ast_pseudo", "whisper_pseudo", "clap_zero_shot", "m2d_zero_shot", "panns_pseudo"];

impl LabelSource {
    pub fn none() -> Self {
        LabelSource("none".into())
    }
    pub fn gold() -> Self {
        LabelSource("gold".into())
    }
    /// A label source by its stored name (`whisper_pseudo`, `clap_zero_shot`...).
    pub fn from_raw(name: &str) -> Self {
        LabelSource(name.to_string())
    }
    /// `<teacher>_pseudo` or `<teacher>_zero_shot` for a teacher id.
    pub fn for_teacher(teacher: &str, zero_shot: bool) -> Self {
        let t = teacher.replace(':', "_");
        LabelSource(if zero_shot { format!("{t}_zero_shot") } else { format!("{t}_pseudo") })
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn is_gold(&self) -> bool {
        self.0 == "gold"
    }
    pub fn is_none(&self) -> bool {
        self.0 == "none"
    }
}

impl fmt::Display for LabelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for LabelSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(LabelSource::none());
        }
        if KNOWN_SOURCES.contains(&s) {
            return Ok(LabelSource(s.to_string()));
        }
        let valid_ident =
            |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
        let project_defined =
            s.strip_suffix("_pseudo").or_else(|| s.strip_suffix("_zero_shot")).map(valid_ident).unwrap_or(false)
                || s.strip_prefix("student:").map(valid_ident).unwrap_or(false)
                || s == "consensus_pseudo";
        if project_defined {
            Ok(LabelSource(s.to_string()))
        } else {
            Err(format!(
                "unknown label source '{s}' (expected one of {}, or <teacher>_pseudo, <teacher>_zero_shot, student:<name>)",
                KNOWN_SOURCES.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_set_bits_and_compact() {
        let mut l = LabelSet::new(true, false, true);
        assert_eq!(l.compact(), "S-N");
        assert_eq!(l.bits(), 0b101);
        l.toggle(Class::Music);
        assert!(l.get(Class::Music));
        l.set(Class::Speech, false);
        assert_eq!(l.to_array(), [false, true, true]);
        assert_eq!(LabelSet::from_bits(l.bits()), l);
    }

    #[test]
    fn splits_parse() {
        assert_eq!(parse_splits("dev,test").unwrap(), vec![Split::Dev, Split::Test]);
        assert!("validation".parse::<Split>().is_err());
    }

    #[test]
    fn label_sources() {
        for s in KNOWN_SOURCES {
            assert_eq!(s.parse::<LabelSource>().unwrap().as_str(), s);
        }
        assert!("builtin_pseudo".parse::<LabelSource>().is_ok());
        assert!("student:cnn-r1".parse::<LabelSource>().is_ok());
        assert!("bogus".parse::<LabelSource>().is_err());
        assert_eq!(LabelSource::for_teacher("student:a", false).as_str(), "student_a_pseudo");
    }
}
