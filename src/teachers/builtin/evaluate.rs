//! Evaluating a teacher on labelled audio files outside a workspace: a manifest of clips
//! (`file,speech,music,noise,...`) and long recordings cut into 10 s / 5 s-hop windows with per-window labels
//! (`start,end,...,speech,music,noise`). Per-class precision / recall / F1 at a threshold, and macro F1.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::labels::CLASSES;

/// One labelled item to score.
#[derive(Debug, Clone)]
pub struct Item {
    pub name: String,
    pub labels: [bool; 3],
    pub samples: Vec<f32>,
}

fn flag(rec: &csv::StringRecord, col: usize, path: &Path, line: usize, name: &str) -> Result<bool> {
    match rec.get(col).map(str::trim) {
        Some("1") | Some("1.0") | Some("true") => Ok(true),
        Some("0") | Some("0.0") | Some("false") => Ok(false),
        other => {
            bail!("{} line {line}, column '{name}': expected 0 or 1, found {:?}", path.display(), other.unwrap_or(""))
        }
    }
}

fn columns(rdr: &mut csv::Reader<std::fs::File>, path: &Path, need: &[&str]) -> Result<Vec<usize>> {
    let h = rdr.headers().with_context(|| format!("cannot read the header of {}", path.display()))?.clone();
    need.iter()
        .map(|n| {
            h.iter().position(|x| x.trim() == *n).ok_or_else(|| anyhow::anyhow!("{}: no column '{n}'", path.display()))
        })
        .collect()
}

/// Items of a clip manifest; `file` paths are relative to `root` (default: the manifest's folder).
pub fn load_manifest(manifest: &Path, root: Option<&Path>, mut on_error: impl FnMut(&str)) -> Result<Vec<Item>> {
    let root: PathBuf = match root {
        Some(r) => r.to_path_buf(),
        None => manifest.parent().unwrap_or(Path::new(".")).to_path_buf(),
    };
    let mut rdr = csv::Reader::from_path(manifest).with_context(|| format!("cannot read {}", manifest.display()))?;
    let cols = columns(&mut rdr, manifest, &["file", "speech", "music", "noise"])?;
    let mut items = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i + 2;
        let rec = rec.with_context(|| format!("{} line {line}", manifest.display()))?;
        let file = rec.get(cols[0]).unwrap_or("").to_string();
        let labels = [
            flag(&rec, cols[1], manifest, line, "speech")?,
            flag(&rec, cols[2], manifest, line, "music")?,
            flag(&rec, cols[3], manifest, line, "noise")?,
        ];
        match crate::audio::load_mono_16k(&root.join(&file)) {
            Ok(samples) => items.push(Item { name: file, labels, samples }),
            Err(e) => on_error(&format!("skipped {file}: {e}")),
        }
    }
    Ok(items)
}

/// 10 s windows of a long recording with labels from a windows CSV (`start,end,speech,music,noise` in seconds).
pub fn load_windows(audio: &Path, windows: &Path) -> Result<Vec<Item>> {
    let x = crate::audio::load_mono_16k(audio)?;
    let mut rdr = csv::Reader::from_path(windows).with_context(|| format!("cannot read {}", windows.display()))?;
    let cols = columns(&mut rdr, windows, &["start", "end", "speech", "music", "noise"])?;
    let name = audio.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let mut items = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i + 2;
        let rec = rec.with_context(|| format!("{} line {line}", windows.display()))?;
        let num = |c: usize, n: &str| -> Result<f64> {
            rec.get(c).and_then(|v| v.trim().parse::<f64>().ok()).filter(|v| v.is_finite() && *v >= 0.0).ok_or_else(
                || anyhow::anyhow!("{} line {line}, column '{n}': not a time in seconds", windows.display()),
            )
        };
        let (s, e) = (num(cols[0], "start")?, num(cols[1], "end")?);
        if e <= s {
            bail!("{} line {line}: end {e} is not after start {s}", windows.display());
        }
        let a = ((s * 16_000.0).round() as usize).min(x.len());
        let b = ((e * 16_000.0).round() as usize).min(x.len());
        if b <= a {
            continue;
        }
        let labels = [
            flag(&rec, cols[2], windows, line, "speech")?,
            flag(&rec, cols[3], windows, line, "music")?,
            flag(&rec, cols[4], windows, line, "noise")?,
        ];
        items.push(Item { name: format!("{name}[{s:.1}-{e:.1}s]"), labels, samples: x[a..b].to_vec() });
    }
    Ok(items)
}

/// Precision, recall, F1 and counts of one class.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ClassMetrics {
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
    pub tn: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    pub per_class: [ClassMetrics; 3],
    pub macro_f1: f64,
    pub n: usize,
}

/// Metrics of `scores ≥ threshold` against labels. Precision with no predicted positives is 0 (and so is F1).
pub fn metrics(scores: &[[f32; 3]], labels: &[[bool; 3]], threshold: [f32; 3]) -> Metrics {
    let mut per_class = [ClassMetrics::default(); 3];
    for c in CLASSES {
        let i = c.index();
        let m = &mut per_class[i];
        for (s, l) in scores.iter().zip(labels) {
            match (s[i] >= threshold[i], l[i]) {
                (true, true) => m.tp += 1,
                (true, false) => m.fp += 1,
                (false, true) => m.fn_ += 1,
                (false, false) => m.tn += 1,
            }
        }
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        m.precision = ratio(m.tp, m.tp + m.fp);
        m.recall = ratio(m.tp, m.tp + m.fn_);
        m.f1 = ratio(2 * m.tp, 2 * m.tp + m.fp + m.fn_);
    }
    let macro_f1 = per_class.iter().map(|m| m.f1).sum::<f64>() / 3.0;
    Metrics { per_class, macro_f1, n: scores.len() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_by_hand() {
        let scores = [[0.9, 0.1, 0.6], [0.4, 0.8, 0.2], [0.7, 0.7, 0.5], [0.2, 0.3, 0.9]];
        let labels = [[true, false, false], [true, true, false], [false, true, true], [false, false, true]];
        let m = metrics(&scores, &labels, [0.5; 3]);
        // speech: predicted {0, 2}, true {0, 1} → tp 1, fp 1, fn 1 → P = R = F1 = 0.5.
        let s = m.per_class[0];
        assert_eq!((s.tp, s.fp, s.fn_, s.tn), (1, 1, 1, 1));
        assert!((s.f1 - 0.5).abs() < 1e-12);
        // music: predicted {1, 2}, true {1, 2} → F1 = 1.
        assert!((m.per_class[1].f1 - 1.0).abs() < 1e-12);
        // noise: predicted {0, 2, 3} (0.5 ≥ 0.5), true {2, 3} → tp 2, fp 1 → P 2/3, R 1, F1 0.8.
        let n = m.per_class[2];
        assert!((n.precision - 2.0 / 3.0).abs() < 1e-12 && (n.recall - 1.0).abs() < 1e-12);
        assert!((n.f1 - 0.8).abs() < 1e-12);
        assert!((m.macro_f1 - (0.5 + 1.0 + 0.8) / 3.0).abs() < 1e-12);
    }
}
