//! The DAMS manifest: import of `blocs_smad_segments.csv`-style CSVs into the store, and export
//! of the store back to the canonical CSV (and Parquet).
//!
//! Two spellings of the label columns exist: the one the Python code really writes
//! (`speech_label, music_label, noise_label`) and the one the DAMS README documents
//! (`speech, music, noise`). Both are read; [`Spelling`] picks the one written.
//!
//! Floats are written in Python's `repr` form ([`fmt_float`]): the shortest digits that parse
//! back to the same `f64`, always with a decimal point or an exponent (`5.0`, `0.25`, `1e-05`).
//! This is what pandas writes, so a manifest written by the Python project round-trips byte for
//! byte.

pub mod bench;
pub mod export;
pub mod import;

use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use thiserror::Error;

use crate::labels::Class;
use crate::store::StoreError;

pub use export::{ExportOptions, ExportSummary, RowFilter, snapshot_file_name};
pub use import::{ImportOptions, ImportSummary, import_path, import_reader};

/// The annotator that gold rows of an imported manifest are recorded under.
pub const MANIFEST_ANNOTATOR: &str = "manifest";
/// Default file names under `data/metadata/` (as in the DAMS project).
pub const SEGMENTS_CSV: &str = "blocs_smad_segments.csv";
pub const LABELS_CSV: &str = "blocs_smad_labels.csv";
/// At most this many problems are listed when a file is refused; the rest are counted.
pub const MAX_PROBLEMS: usize = 50;

/// Which names the label columns carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Spelling {
    /// `speech_label, music_label, noise_label`: what the Python code writes.
    #[default]
    Dams,
    /// `speech, music, noise`: what the DAMS README documents.
    DamsReadme,
}

impl Spelling {
    pub fn label_column(self, c: Class) -> &'static str {
        match (self, c) {
            (Spelling::Dams, Class::Speech) => "speech_label",
            (Spelling::Dams, Class::Music) => "music_label",
            (Spelling::Dams, Class::Noise) => "noise_label",
            (Spelling::DamsReadme, Class::Speech) => "speech",
            (Spelling::DamsReadme, Class::Music) => "music",
            (Spelling::DamsReadme, Class::Noise) => "noise",
        }
    }

    /// The twelve canonical columns in canonical order.
    pub fn header(self) -> [&'static str; 12] {
        [
            "raw_file",
            "segment_path",
            "start_time",
            "end_time",
            "split",
            "label_source",
            self.label_column(Class::Speech),
            self.label_column(Class::Music),
            self.label_column(Class::Noise),
            "speech_score",
            "music_score",
            "noise_score",
        ]
    }
}

impl std::str::FromStr for Spelling {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "dams" | "python" | "label" => Ok(Spelling::Dams),
            "dams-readme" | "readme" => Ok(Spelling::DamsReadme),
            other => Err(format!("unknown spelling '{other}' (expected dams or dams-readme)")),
        }
    }
}

/// A known manifest column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    RawFile,
    SegmentPath,
    StartTime,
    EndTime,
    Split,
    LabelSource,
    Label(Class),
    Score(Class),
}

impl Field {
    /// The field a header name (already trimmed and lower-cased) names, if any, and, for label
    /// columns, the spelling it uses.
    pub fn from_header(name: &str) -> Option<(Field, Option<Spelling>)> {
        let f = match name {
            "raw_file" => Field::RawFile,
            "segment_path" => Field::SegmentPath,
            "start_time" => Field::StartTime,
            "end_time" => Field::EndTime,
            "split" => Field::Split,
            "label_source" => Field::LabelSource,
            "speech_label" => return Some((Field::Label(Class::Speech), Some(Spelling::Dams))),
            "music_label" => return Some((Field::Label(Class::Music), Some(Spelling::Dams))),
            "noise_label" => return Some((Field::Label(Class::Noise), Some(Spelling::Dams))),
            "speech" => return Some((Field::Label(Class::Speech), Some(Spelling::DamsReadme))),
            "music" => return Some((Field::Label(Class::Music), Some(Spelling::DamsReadme))),
            "noise" => return Some((Field::Label(Class::Noise), Some(Spelling::DamsReadme))),
            "speech_score" => Field::Score(Class::Speech),
            "music_score" => Field::Score(Class::Music),
            "noise_score" => Field::Score(Class::Noise),
            _ => return None,
        };
        Some((f, None))
    }

    /// Position among the twelve canonical columns.
    pub fn index(self) -> usize {
        match self {
            Field::RawFile => 0,
            Field::SegmentPath => 1,
            Field::StartTime => 2,
            Field::EndTime => 3,
            Field::Split => 4,
            Field::LabelSource => 5,
            Field::Label(c) => 6 + c.index(),
            Field::Score(c) => 9 + c.index(),
        }
    }
}

/// One problem in a manifest: where (as a text editor shows it) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line number (the line a record starts on).
    pub line: u64,
    /// Column name as written in the header, and its 1-based index.
    pub column: Option<(String, usize)>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some((name, idx)) => write!(f, "line {}, column {} '{}': {}", self.line, idx, name, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {err}")]
    Read { path: String, err: std::io::Error },
    #[error("cannot write {path}: {err}")]
    Write { path: String, err: std::io::Error },
    #[error("{path} is empty: a manifest needs a header line naming at least the segment_path column")]
    Empty { path: String },
    #[error("{}", invalid_message(.path, .problems, *.more))]
    Invalid { path: String, problems: Vec<Problem>, more: usize },
    #[error("segment {segment_path}: its stored extra columns are not a JSON object ({message})")]
    BadExtra { segment_path: String, message: String },
    #[error("writing Parquet {path}: {message}")]
    Parquet { path: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for ManifestError {
    fn from(e: rusqlite::Error) -> Self {
        ManifestError::Store(StoreError::Sql(e))
    }
}

fn invalid_message(path: &str, problems: &[Problem], more: usize) -> String {
    let n = problems.len() + more;
    let mut s = format!(
        "{path}: {n} problem{} found; the manifest was refused and nothing was imported:",
        if n == 1 { "" } else { "s" }
    );
    for p in problems {
        s.push_str("\n  ");
        s.push_str(&p.to_string());
    }
    if more > 0 {
        s.push_str(&format!("\n  ... and {more} more"));
    }
    s
}

/// Format a float as Python's `repr` does: the shortest digits that parse back to the same
/// value, fixed notation with at least one decimal (`5.0`, `0.0001`) for decimal exponents in
/// [-4, 16), scientific otherwise (`1e-05`, `1.5e+16`). Non-finite values never reach a
/// manifest (they are refused on import), but are written as `nan`/`inf` like Python.
pub fn fmt_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // `{:e}` gives the shortest round-tripping digits: "1.2345e-5", "5e0", "-3e2".
    let e = format!("{x:e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::with_capacity(digits.len() + 8);
    if neg {
        out.push('-');
    }
    if x == 0.0 {
        out.push_str("0.0");
        return out;
    }
    let decpt = exp + 1; // position of the decimal point relative to the first digit
    let nd = digits.len() as i32;
    if decpt > -4 && decpt <= 16 {
        if decpt <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-decpt) as usize));
            out.push_str(&digits);
        } else if decpt >= nd {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', (decpt - nd) as usize));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..decpt as usize]);
            out.push('.');
            out.push_str(&digits[decpt as usize..]);
        }
    } else {
        out.push_str(&digits[..1]);
        if nd > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = decpt - 1;
        out.push_str(&format!("e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs()));
    }
    out
}

/// Encode extra columns as a JSON object that keeps their order.
pub fn extra_to_json(pairs: &[(String, String)]) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        // Serialising a str cannot fail.
        s.push_str(&serde_json::to_string(k).unwrap_or_default());
        s.push(':');
        s.push_str(&serde_json::to_string(v).unwrap_or_default());
    }
    s.push('}');
    s
}

/// Decode a `segments.extra` JSON object into ordered `(column, value)` pairs. Non-string values
/// (written by something other than the importer) are kept in their JSON form.
pub fn extra_from_json(json: &str) -> Result<Vec<(String, String)>, serde_json::Error> {
    struct Pairs;
    impl<'de> Visitor<'de> for Pairs {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object of extra manifest columns")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                };
                out.push((k, v));
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(json);
    let v = (&mut de).deserialize_map(Pairs)?;
    de.end()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_written_like_python_repr() {
        let cases = [
            (5.0, "5.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (10.0, "10.0"),
            (9218.472, "9218.472"),
            (0.1, "0.1"),
            (0.25, "0.25"),
            (1.0 / 3.0, "0.3333333333333333"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (-0.93, "-0.93"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345e17, "1.2345e+17"),
            (123456.0, "123456.0"),
            (2.5e-300, "2.5e-300"),
        ];
        for (x, want) in cases {
            assert_eq!(fmt_float(x), want, "{x:?}");
            assert_eq!(fmt_float(x).parse::<f64>().unwrap().to_bits(), x.to_bits());
        }
    }

    #[test]
    fn extra_json_keeps_order_and_values() {
        let pairs = vec![
            ("zeta".to_string(), "1".to_string()),
            ("alpha".to_string(), "a \"quoted\", value".to_string()),
            ("".to_string(), "".to_string()),
            ("ünï".to_string(), "x\ny".to_string()),
        ];
        let json = extra_to_json(&pairs);
        assert_eq!(extra_from_json(&json).unwrap(), pairs);
        assert_eq!(
            extra_from_json(r#"{"b":1,"a":null}"#).unwrap(),
            vec![("b".into(), "1".into()), ("a".into(), "".into())]
        );
        assert!(extra_from_json("[1]").is_err());
    }

    #[test]
    fn header_names() {
        assert_eq!(Field::from_header("speech"), Some((Field::Label(Class::Speech), Some(Spelling::DamsReadme))));
        assert_eq!(Field::from_header("noise_label"), Some((Field::Label(Class::Noise), Some(Spelling::Dams))));
        assert_eq!(Field::from_header("needs_review"), None);
        assert_eq!(Spelling::DamsReadme.header()[6], "speech");
        for (i, name) in Spelling::Dams.header().iter().enumerate() {
            assert_eq!(Field::from_header(name).unwrap().0.index(), i);
        }
    }
}
