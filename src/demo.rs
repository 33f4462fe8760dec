//! The embedded demo workspace: the files of `data/demo/` (21 labelled clips, one long-form show,
//! their manifest and event tables, ATTRIBUTION.md) are compiled into the binary and unpacked on
//! first use into [`Dirs::demo_workspace`], then segmented with the ordinary segmenter:
//!
//! - clips → their windows (10 s, 5 s hop, tail ≥ 1 s) on split `dev`;
//! - the show `a_show01` → its windows on split `test`.
//!
//! Every window gets a gold label for annotator `demo`: a class is on when its layer covers at
//! least 1.0 s of the window (the rule of the data set's `*_windows_10s_hop5s.csv`), computed from
//! `clip_events.csv` for clips and from the show's exact `a_show01_timeline.csv`. For a clip's
//! first window this equals the manifest's clip label. Acoustic stats are computed too.
//!
//! Idempotent: a version stamp (`.dams-demo-version`) is written last; while it matches,
//! [`ensure`] only opens the workspace. `reset` deletes and rebuilds it. No network is needed.
use std::path::Path;

use anyhow::{Context, Result};

use crate::audio::segment::{SegmentOptions, segment_file};
use crate::audio::stats::compute_workspace_stats;
use crate::config::Dirs;
use crate::labels::{LabelSet, Split};
use crate::workspace::Workspace;

/// Bump when the embedded files or the way the demo is built change.
pub const DEMO_VERSION: &str = "1";
const STAMP: &str = ".dams-demo-version";
/// Annotator the demo's gold labels are stored under.
pub const DEMO_ANNOTATOR: &str = "demo";
/// The long-form show of the demo.
pub const DEMO_SHOW: &str = "a_show01.flac";

/// Every file of `data/demo/`, embedded.
pub const FILES: &[(&str, &[u8])] = &[
    ("ATTRIBUTION.md", include_bytes!("../data/demo/ATTRIBUTION.md")),
    ("a002.mp3", include_bytes!("../data/demo/a002.mp3")),
    ("a003.flac", include_bytes!("../data/demo/a003.flac")),
    ("a005.flac", include_bytes!("../data/demo/a005.flac")),
    ("a007.flac", include_bytes!("../data/demo/a007.flac")),
    ("a008.flac", include_bytes!("../data/demo/a008.flac")),
    ("a009.flac", include_bytes!("../data/demo/a009.flac")),
    ("a010.flac", include_bytes!("../data/demo/a010.flac")),
    ("a012.flac", include_bytes!("../data/demo/a012.flac")),
    ("a013.flac", include_bytes!("../data/demo/a013.flac")),
    ("a014.flac", include_bytes!("../data/demo/a014.flac")),
    ("a015.flac", include_bytes!("../data/demo/a015.flac")),
    ("a017.flac", include_bytes!("../data/demo/a017.flac")),
    ("a018.flac", include_bytes!("../data/demo/a018.flac")),
    ("a019.flac", include_bytes!("../data/demo/a019.flac")),
    ("a022.flac", include_bytes!("../data/demo/a022.flac")),
    ("a023.flac", include_bytes!("../data/demo/a023.flac")),
    ("a025.flac", include_bytes!("../data/demo/a025.flac")),
    ("a026.flac", include_bytes!("../data/demo/a026.flac")),
    ("a028.flac", include_bytes!("../data/demo/a028.flac")),
    ("a036.flac", include_bytes!("../data/demo/a036.flac")),
    ("a038.flac", include_bytes!("../data/demo/a038.flac")),
    ("a_show01.flac", include_bytes!("../data/demo/a_show01.flac")),
    ("a_show01_timeline.csv", include_bytes!("../data/demo/a_show01_timeline.csv")),
    ("a_show01_windows_10s_hop5s.csv", include_bytes!("../data/demo/a_show01_windows_10s_hop5s.csv")),
    ("clip_events.csv", include_bytes!("../data/demo/clip_events.csv")),
    ("manifest.csv", include_bytes!("../data/demo/manifest.csv")),
];

fn embedded(name: &str) -> Result<&'static [u8]> {
    FILES.iter().find(|(n, _)| *n == name).map(|(_, b)| *b).with_context(|| format!("the embedded demo has no {name}"))
}

/// The demo workspace, created from the embedded data if it does not exist yet (or `reset`).
pub fn ensure(dirs: &Dirs, reset: bool) -> Result<Workspace> {
    ensure_at(&dirs.demo_workspace(), reset)
}

/// [`ensure`] at an explicit folder.
pub fn ensure_at(root: &Path, reset: bool) -> Result<Workspace> {
    if reset && root.exists() {
        std::fs::remove_dir_all(root).with_context(|| format!("cannot remove {}", root.display()))?;
    }
    let stamp = root.join(STAMP);
    match std::fs::read_to_string(&stamp) {
        Ok(s) if s.trim() == DEMO_VERSION => return Ok(Workspace::open(root)?),
        // Built by another version of dams: rebuild from scratch.
        Ok(_) => std::fs::remove_dir_all(root).with_context(|| format!("cannot remove {}", root.display()))?,
        // No stamp: never built, or interrupted; building again completes it (every step is idempotent).
        Err(_) => {}
    }
    let ws = Workspace::init(root)?;
    build(&ws)?;
    std::fs::write(&stamp, DEMO_VERSION).with_context(|| format!("cannot write {}", stamp.display()))?;
    Ok(ws)
}

/// One row of the demo's manifest.csv.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct DemoEntry {
    pub file: String,
    pub kind: String,
    pub duration_s: f64,
    pub speech: u8,
    pub music: u8,
    pub noise: u8,
    pub license: String,
    pub original: String,
}

/// The embedded manifest.
pub fn manifest() -> Result<Vec<DemoEntry>> {
    let mut r = csv::Reader::from_reader(embedded("manifest.csv")?);
    r.deserialize().map(|row| row.context("embedded demo manifest.csv")).collect()
}

/// Labelled spans: `(start, end, labels)` in seconds.
pub type Spans = Vec<(f64, f64, LabelSet)>;

/// Events of each clip from the embedded clip_events.csv: file → spans (one class each).
pub fn clip_events() -> Result<Vec<(String, f64, f64, LabelSet)>> {
    #[derive(serde::Deserialize)]
    struct Ev {
        file: String,
        layer: String,
        start: f64,
        end: f64,
    }
    let mut r = csv::Reader::from_reader(embedded("clip_events.csv")?);
    let mut out = Vec::new();
    for row in r.deserialize::<Ev>() {
        let e = row.context("embedded demo clip_events.csv")?;
        let l = match e.layer.as_str() {
            "speech" => LabelSet::new(true, false, false),
            "music" => LabelSet::new(false, true, false),
            "noise" => LabelSet::new(false, false, true),
            other => anyhow::bail!("clip_events.csv: unknown layer {other}"),
        };
        out.push((e.file, e.start, e.end, l));
    }
    Ok(out)
}

/// The show's timeline (a partition of the show into labelled spans).
pub fn show_timeline() -> Result<Spans> {
    #[derive(serde::Deserialize)]
    struct Row {
        start: f64,
        end: f64,
        speech: u8,
        music: u8,
        noise: u8,
    }
    let mut r = csv::Reader::from_reader(embedded("a_show01_timeline.csv")?);
    let mut out = Vec::new();
    for row in r.deserialize::<Row>() {
        let t = row.context("embedded a_show01_timeline.csv")?;
        out.push((t.start, t.end, LabelSet::new(t.speech == 1, t.music == 1, t.noise == 1)));
    }
    Ok(out)
}

/// Seconds of each class inside `[start, end)` (overlapping spans of one class counted once).
pub fn class_seconds(spans: &[(f64, f64, LabelSet)], start: f64, end: f64) -> [f64; 3] {
    let mut out = [0.0; 3];
    for (c, total) in out.iter_mut().enumerate() {
        let mut iv: Vec<(f64, f64)> = spans
            .iter()
            .filter(|(_, _, l)| l.to_array()[c])
            .map(|&(a, b, _)| (a.max(start), b.min(end)))
            .filter(|(a, b)| b > a)
            .collect();
        iv.sort_by(|x, y| x.0.total_cmp(&y.0));
        let mut cur: Option<(f64, f64)> = None;
        for (a, b) in iv {
            cur = match cur {
                Some((ca, cb)) if a <= cb => Some((ca, cb.max(b))),
                Some((ca, cb)) => {
                    *total += cb - ca;
                    Some((a, b))
                }
                None => Some((a, b)),
            };
        }
        if let Some((ca, cb)) = cur {
            *total += cb - ca;
        }
    }
    out
}

/// The window label rule of the data set: a class is on if it covers at least 1.0 s of the window.
pub fn window_labels(spans: &[(f64, f64, LabelSet)], start: f64, end: f64) -> LabelSet {
    let s = class_seconds(spans, start, end);
    // 1 ms tolerance for the millisecond rounding of the event tables
    LabelSet::from_array(s.map(|x| x >= 1.0 - 1e-3))
}

fn build(ws: &Workspace) -> Result<()> {
    let raw = ws.raw_dir();
    let meta = ws.metadata_dir().join("demo");
    std::fs::create_dir_all(&meta)?;
    for (name, bytes) in FILES {
        let dest = if name.ends_with(".csv") || name.ends_with(".md") { meta.join(name) } else { raw.join(name) };
        if std::fs::metadata(&dest).map(|m| m.len() as usize == bytes.len()).unwrap_or(false) {
            continue;
        }
        let tmp = dest.with_extension("part");
        std::fs::write(&tmp, bytes)
            .and_then(|_| std::fs::rename(&tmp, &dest))
            .with_context(|| format!("cannot unpack {}", dest.display()))?;
    }
    std::fs::copy(meta.join("ATTRIBUTION.md"), ws.root().join("ATTRIBUTION.md"))?;

    let mut store = ws.open_store()?;
    let annotator = store.annotator_id(DEMO_ANNOTATOR)?;
    let events = clip_events()?;
    let timeline = show_timeline()?;
    for entry in manifest()? {
        let (split, spans): (Split, Spans) = if entry.kind == "show" {
            (Split::Test, timeline.clone())
        } else {
            (Split::Dev, events.iter().filter(|e| e.0 == entry.file).map(|e| (e.1, e.2, e.3)).collect())
        };
        let opts = SegmentOptions { split, ..SegmentOptions::default() };
        let rep = segment_file(ws, &mut store, &raw.join(&entry.file), &opts)
            .with_context(|| format!("segmenting the demo's {}", entry.file))?;
        for rel in &rep.segment_paths {
            let seg =
                store.segment_by_path(rel)?.with_context(|| format!("segment {rel} missing after segmentation"))?;
            let labels = window_labels(&spans, seg.start_time, seg.end_time);
            store.set_gold(seg.id, annotator, Some(labels), false, true)?;
        }
    }
    compute_workspace_stats(ws, &mut store, false, &mut |_, _| {})?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_seconds_merges_overlaps() {
        let sp = LabelSet::new(true, false, false);
        let mu = LabelSet::new(false, true, false);
        let spans = vec![(0.0, 3.0, sp), (2.0, 5.0, sp), (8.0, 20.0, sp), (0.0, 0.5, mu)];
        let s = class_seconds(&spans, 0.0, 10.0);
        assert!((s[0] - 7.0).abs() < 1e-9 && (s[1] - 0.5).abs() < 1e-9 && s[2] == 0.0);
        assert_eq!(window_labels(&spans, 0.0, 10.0), sp);
    }

    #[test]
    fn embedded_tables_parse() {
        let m = manifest().unwrap();
        assert_eq!(m.len(), 22);
        assert!(m.iter().all(|e| !e.license.contains("NC")));
        for e in &m {
            assert!(FILES.iter().any(|(n, _)| *n == e.file), "{} not embedded", e.file);
        }
        assert!(!clip_events().unwrap().is_empty());
        assert!(!show_timeline().unwrap().is_empty());
    }
}
