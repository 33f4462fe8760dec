//! `dams pool build`: radio-like unlabelled training shows generated from a folder of separate speech, music and
//! noise recordings laid out like the shared data set's `stems/` (a `stems.csv` with `file, kind, speaker, gender,
//! license, attribution, source`), seeded and deterministic, with every source's licence tracked.
//!
//! The generator behind `tools/make_train_show.py`, in Rust and generalised: instead of one fixed plan, shows of
//! about `show_secs` are drawn scene by scene (speech, music, noise and their combinations, dead air), until the
//! pool holds `hours` of audio. Per scene, as in the script: speech at −27…−21 dBFS active RMS, one speaker per
//! scene, utterances back to back; music 6–20 dB under the voice (or alone near its level), noise 3–15 dB under it
//! (or 0–10 dB under music); music and noise fade in and out over 1 s at the ends of a run and change level with
//! 0.3 s ramps; a pink floor 78 dB under full scale throughout (below the silence gate; not labelled noise).
//!
//! Evaluation material never trains: `exclude` names event tables (any CSV with `source, src_start, src_end`
//! columns, e.g. the dev set's `clip_events.csv` and `*_events.csv`); a speech file any part of which is used
//! there is left out whole, and music/noise keep only the parts of a recording those tables do not use (±0.5 s).
//! Speakers stay shared when the stems hold other utterances of them: [`PoolReport::overlap`] lists them (and the
//! recordings) so that the closing figures can say so. Non-commercial licences are refused.
//!
//! Output (`out`): `pool_NNN.wav` (16 kHz mono 16-bit), per show `pool_NNN_timeline.csv` (exact partition
//! `start,end,speech,music,noise`) and `pool_NNN_events.csv` (every placed source part), and `sources.csv` (each
//! stem used, with its licence and attribution: what a redistribution of the pool must credit). It registers
//! nothing: `dams segment OUT --split unlabeled` takes the shows in; the timelines are there to check
//! pseudo-labels, never to train on.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::rng::SplitMix64;

const SR: usize = 16_000;

/// What to build.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub stems: PathBuf,
    pub out: PathBuf,
    pub hours: f64,
    pub seed: u64,
    /// Length of each show, seconds.
    pub show_secs: f64,
    /// Event tables whose source parts must not be used.
    pub exclude: Vec<PathBuf>,
    /// Event tables of material the pool may share recordings with, only to report that overlap.
    pub disclose: Vec<PathBuf>,
}

/// What was built.
#[derive(Debug, Clone, Serialize)]
pub struct PoolReport {
    pub shows: Vec<String>,
    pub seconds: f64,
    /// Seconds of audio with each label combination (`S--`, `-M-`, ... `---` for dead air).
    pub combination_secs: BTreeMap<String, f64>,
    pub stems_used: usize,
    /// Stems left out: non-commercial, or used by the excluded tables.
    pub stems_excluded: usize,
    /// Speakers and recordings shared with the excluded or disclosed (evaluation) material: other utterances of a
    /// speaker, other parts of a recording, or (disclosed only) the same parts.
    pub overlap: Vec<String>,
}

#[derive(Debug, Clone)]
struct Stem {
    file: String,
    kind: String,
    speaker: String,
    license: String,
    attribution: String,
    source: String,
}

/// A usable part of a recording: samples at 16 kHz.
struct Part {
    stem: usize,
    offset: f64,
    x: Vec<f32>,
}

fn db(x: f64) -> f64 {
    10f64.powf(x / 20.0)
}

fn frame_db(x: &[f32]) -> Vec<f64> {
    x.chunks_exact(160)
        .map(|c| 10.0 * (c.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / 160.0 + 1e-12).log10())
        .collect()
}

fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return -120.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let pos = p / 100.0 * (s.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

/// RMS over 10 ms frames within 30 dB of the 95th-percentile frame level.
fn active_rms(x: &[f32]) -> f64 {
    let f = frame_db(x);
    let gate = percentile(&f, 95.0) - 30.0;
    let (mut e, mut n) = (0f64, 0usize);
    for (c, d) in x.chunks_exact(160).zip(&f) {
        if *d > gate {
            e += c.iter().map(|&v| (v as f64).powi(2)).sum::<f64>();
            n += 160;
        }
    }
    if n == 0 { 1e-6 } else { (e / n as f64).sqrt().max(1e-6) }
}

/// Sample range of the speech in an utterance: frames above p95 − 35 dB, with 50 ms margins.
fn trim_speech(x: &[f32]) -> (usize, usize) {
    let f = frame_db(x);
    let gate = percentile(&f, 95.0) - 35.0;
    let act: Vec<usize> = f.iter().enumerate().filter(|(_, d)| **d > gate).map(|(i, _)| i).collect();
    match (act.first(), act.last()) {
        (Some(&a), Some(&b)) => ((a * 160).saturating_sub(800), ((b + 1) * 160 + 800).min(x.len())),
        _ => (0, x.len()),
    }
}

fn fade(n: usize, up: bool) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let r = 0.5 - 0.5 * (std::f64::consts::PI * i as f64 / n.max(1) as f64).cos();
            (if up { r } else { 1.0 - r }) as f32
        })
        .collect()
}

fn normal(rng: &mut SplitMix64) -> f64 {
    let u1 = rng.f64().max(1e-12);
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Pink (≈1/f power: Paul Kellet's refined filter of white noise, within ±0.05 dB of 1/f above 9 Hz at 44.1 kHz,
/// ±0.5 dB here) or brown (1/f²: leaky integration of white noise) noise of unit RMS. Time-domain filters: no FFT of
/// odd-length buffers.
fn coloured(n: usize, rng: &mut SplitMix64, brown: bool) -> Vec<f32> {
    let mut y = Vec::with_capacity(n);
    let mut b = [0f64; 7];
    for _ in 0..n {
        let w = normal(rng);
        let v = if brown {
            b[0] = 0.998 * b[0] + 0.0632 * w;
            b[0]
        } else {
            b[0] = 0.99886 * b[0] + w * 0.0555179;
            b[1] = 0.99332 * b[1] + w * 0.0750759;
            b[2] = 0.96900 * b[2] + w * 0.1538520;
            b[3] = 0.86650 * b[3] + w * 0.3104856;
            b[4] = 0.55000 * b[4] + w * 0.5329522;
            b[5] = -0.7616 * b[5] - w * 0.0168980;
            let p = b[0] + b[1] + b[2] + b[3] + b[4] + b[5] + b[6] + w * 0.5362;
            b[6] = w * 0.115926;
            p
        };
        y.push(v);
    }
    let rms = (y.iter().map(|v| v * v).sum::<f64>() / n.max(1) as f64).sqrt().max(1e-12);
    y.into_iter().map(|v| (v / rms) as f32).collect()
}

/// Noise of any length from a part: read straight while it lasts, then grains of 0.8–1.6 s from random places,
/// cross-faded over 0.2 s (no audible loop period).
fn texture(part: &[f32], n: usize, rng: &mut SplitMix64) -> Vec<f32> {
    let scale = (1.0 / active_rms(part)) as f32;
    if part.len() >= n {
        let s = rng.below(part.len() - n + 1);
        return part[s..s + n].iter().map(|v| v * scale).collect();
    }
    let mut out = vec![0f32; n];
    let xf = SR / 5;
    let mut t = 0usize;
    while t < n {
        let g = ((rng.range(0.8, 1.6) * SR as f64) as usize).min(part.len().saturating_sub(1)).max(2 * xf + 1);
        let g = g.min(part.len());
        let s = rng.below(part.len() - g + 1);
        let (fi, fo) = (fade(xf.min(g / 2), true), fade(xf.min(g / 2), false));
        for i in 0..g {
            if t + i >= n {
                break;
            }
            let mut v = part[s + i] * scale;
            if i < fi.len() {
                v *= fi[i];
            }
            if i >= g - fo.len() {
                v *= fo[i - (g - fo.len())];
            }
            out[t + i] += v;
        }
        t += g - xf.min(g / 2);
    }
    out
}

fn read_stems(dir: &Path) -> Result<Vec<Stem>> {
    let path = dir.join("stems.csv");
    let mut r = csv::Reader::from_path(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let h = r.headers().with_context(|| format!("{}: unreadable header", path.display()))?.clone();
    let col = |name: &str| {
        h.iter().position(|c| c == name).with_context(|| format!("{}: no column '{name}'", path.display()))
    };
    let (f, k, s, l, a, src) =
        (col("file")?, col("kind")?, col("speaker")?, col("license")?, col("attribution")?, col("source")?);
    let mut out = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("{} line {}", path.display(), i + 2))?;
        let get = |c: usize| rec.get(c).unwrap_or("").to_string();
        out.push(Stem {
            file: get(f),
            kind: get(k),
            speaker: get(s),
            license: get(l),
            attribution: get(a),
            source: get(src),
        });
    }
    Ok(out)
}

/// `source → used intervals (s)` from event tables.
fn read_excluded(paths: &[PathBuf]) -> Result<HashMap<String, Vec<(f64, f64)>>> {
    let mut out: HashMap<String, Vec<(f64, f64)>> = HashMap::new();
    for path in paths {
        let mut r = csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
        let h = r.headers()?.clone();
        let col = |name: &str| {
            h.iter().position(|c| c == name).with_context(|| {
                format!("{}: no column '{name}' (an event table has source, src_start, src_end)", path.display())
            })
        };
        let (s, a, b) = (col("source")?, col("src_start")?, col("src_end")?);
        for (i, rec) in r.records().enumerate() {
            let rec = rec.with_context(|| format!("{} line {}", path.display(), i + 2))?;
            let num = |c: usize, what: &str| -> Result<f64> {
                rec.get(c)
                    .unwrap_or("")
                    .trim()
                    .parse::<f64>()
                    .with_context(|| format!("{} line {}, column {what}: not a number", path.display(), i + 2))
            };
            out.entry(rec.get(s).unwrap_or("").to_string())
                .or_default()
                .push((num(a, "src_start")?, num(b, "src_end")?));
        }
    }
    Ok(out)
}

/// Scene combinations and their weights (radio: mostly speech, often over music).
const COMBOS: [(&str, f64); 8] =
    [("S", 0.22), ("SM", 0.22), ("M", 0.15), ("SN", 0.12), ("SMN", 0.08), ("MN", 0.07), ("N", 0.07), ("-", 0.07)];

fn pick_combo(rng: &mut SplitMix64) -> &'static str {
    let total: f64 = COMBOS.iter().map(|c| c.1).sum();
    let mut u = rng.f64() * total;
    for (c, w) in COMBOS {
        if u < w {
            return c;
        }
        u -= w;
    }
    "S"
}

struct Sources {
    stems: Vec<Stem>,
    /// Speech utterances (or their free parts) by speaker: (stem index, offset s, samples).
    speakers: Vec<Vec<(usize, f64, Vec<f32>)>>,
    music: Vec<Part>,
    noise: Vec<Part>,
    used: std::collections::BTreeSet<usize>,
}

/// One show: samples, timeline rows, events.
struct Show {
    mix: Vec<f32>,
    timeline: Vec<(f64, f64, [bool; 3])>,
    events: Vec<(String, f64, f64, String, f64, f64)>,
}

fn load_sources(o: &PoolOptions, overlap: &mut Vec<String>, excluded_n: &mut usize) -> Result<Sources> {
    let stems = read_stems(&o.stems)?;
    let excluded = read_excluded(&o.exclude)?;
    let mut by_speaker: BTreeMap<String, Vec<(usize, f64, Vec<f32>)>> = BTreeMap::new();
    let mut music = Vec::new();
    let mut noise = Vec::new();
    let mut shared_speakers = std::collections::BTreeSet::new();
    let disclosed = read_excluded(&o.disclose)?;
    for (i, s) in stems.iter().enumerate() {
        if s.license.to_ascii_uppercase().contains("NC") {
            *excluded_n += 1;
            continue;
        }
        let used = excluded.get(&s.source);
        let shared = used.is_some() || disclosed.contains_key(&s.source);
        let path = o.stems.join(&s.file);
        let x = crate::audio::load_mono_16k(&path).with_context(|| format!("stem {}", path.display()))?;
        let dur = x.len() as f64 / SR as f64;
        // The parts of the recording the excluded tables do not use (±0.5 s).
        let mut free = vec![(0.0, dur)];
        for &(a, b) in used.map(Vec::as_slice).unwrap_or(&[]) {
            let (a, b) = (a - 0.5, b + 0.5);
            free = free
                .into_iter()
                .flat_map(|(x0, x1)| {
                    let mut v = Vec::new();
                    if a > x0 {
                        v.push((x0, a.min(x1)));
                    }
                    if b < x1 {
                        v.push((b.max(x0), x1));
                    }
                    v
                })
                .filter(|(x0, x1)| x1 - x0 > 0.0)
                .collect();
        }
        let min_len = if s.kind == "speech" { 1.5 } else { 3.0 };
        let parts: Vec<Part> = free
            .into_iter()
            .filter(|(a, b)| b - a >= min_len)
            .map(|(a, b)| Part {
                stem: i,
                offset: a,
                x: x[(a * SR as f64) as usize..((b * SR as f64) as usize).min(x.len())].to_vec(),
            })
            .collect();
        if parts.is_empty() {
            *excluded_n += 1;
            continue;
        }
        if shared {
            match s.kind.as_str() {
                "speech" => {
                    shared_speakers.insert(s.speaker.clone());
                }
                _ if used.is_some() => {
                    overlap.push(format!("{} (other parts of a recording the evaluation uses)", s.file))
                }
                _ => overlap.push(format!("{} (a recording the evaluation also uses, parts included)", s.file)),
            }
        }
        match s.kind.as_str() {
            "speech" => by_speaker
                .entry(s.speaker.clone())
                .or_default()
                .extend(parts.into_iter().map(|p| (p.stem, p.offset, p.x))),
            "music" => music.extend(parts),
            "noise" => noise.extend(parts),
            other => bail!("stems.csv: {} has kind '{other}' (expected speech, music or noise)", s.file),
        }
    }
    for sp in &shared_speakers {
        overlap.push(format!(
            "speaker {sp} ({})",
            if o.exclude.is_empty() {
                "a speaker the evaluation also uses"
            } else {
                "other speech than the evaluation uses"
            }
        ));
    }
    let speakers: Vec<_> = by_speaker.into_values().collect();
    if speakers.is_empty() {
        bail!("no usable speech in {} after exclusions", o.stems.display());
    }
    if music.is_empty() {
        bail!("no usable music (≥ 3 s) in {} after exclusions", o.stems.display());
    }
    Ok(Sources { stems, speakers, music, noise, used: Default::default() })
}

fn make_show(src: &mut Sources, secs: f64, rng: &mut SplitMix64) -> Show {
    // Plan.
    let mut plan: Vec<(&str, f64)> = Vec::new();
    let mut t = 0.0;
    while t < secs {
        let c = pick_combo(rng);
        let d = if c == "-" { rng.range(2.0, 6.0) } else { rng.range(8.0, 20.0) };
        plan.push((c, d));
        t += d;
    }
    let mut starts = vec![0.0];
    for (_, d) in &plan {
        starts.push(starts.last().unwrap_or(&0.0) + d);
    }
    let total = *starts.last().unwrap_or(&0.0);
    let n = (total * SR as f64).round() as usize;
    let smp = |t: f64| ((t * SR as f64).round() as usize).min(n);
    let mut speech = vec![0f32; n];
    let mut music = vec![0f32; n];
    let mut noise = vec![0f32; n];
    let mut events = Vec::new();
    let mut speech_spans: Vec<(f64, f64)> = Vec::new();
    let mut levels = Vec::new();
    for (i, (combo, d)) in plan.iter().enumerate() {
        let lvl = rng.range(-27.0, -21.0);
        levels.push(lvl);
        if !combo.contains('S') {
            continue;
        }
        let t0 = starts[i];
        let mut t = t0 + if combo.contains('M') { rng.range(1.5, 3.0) } else { rng.range(0.3, 0.8) };
        let end = t0 + d - rng.range(0.6, 1.5);
        let spk = rng.below(src.speakers.len());
        let utts = &src.speakers[spk];
        let mut used_now = Vec::new();
        let mut k = rng.below(utts.len());
        while t < end - 1.0 {
            let (stem, offset, x) = &utts[k % utts.len()];
            k += 1;
            let (a, b) = trim_speech(x);
            let mut seg: Vec<f32> = x[a..b].to_vec();
            let room = smp(end).saturating_sub(smp(t));
            if room < SR {
                break;
            }
            if seg.len() > room {
                seg.truncate(room);
                let f = fade(320.min(seg.len()), false);
                let l = seg.len();
                for (j, g) in f.iter().enumerate() {
                    seg[l - f.len() + j] *= g;
                }
            }
            let g = (db(lvl) / active_rms(&seg)) as f32;
            let s0 = smp(t);
            for (j, v) in seg.iter().enumerate() {
                if s0 + j < n {
                    speech[s0 + j] += v * g;
                }
            }
            let len = seg.len() as f64 / SR as f64;
            let (ta, tb) = trim_speech(&seg);
            speech_spans.push((t + ta as f64 / SR as f64, t + tb as f64 / SR as f64));
            used_now.push(*stem);
            events.push((
                "speech".into(),
                t,
                t + len,
                src.stems[*stem].source.clone(),
                offset + a as f64 / SR as f64,
                offset + a as f64 / SR as f64 + len,
            ));
            t += len + rng.range(0.2, 0.5);
        }
        src.used.extend(used_now);
    }
    // Runs of consecutive scenes with a layer.
    let runs = |letter: char| -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut cur: Option<(usize, usize)> = None;
        for (i, (c, _)) in plan.iter().enumerate() {
            if c.contains(letter) {
                cur = Some(match cur {
                    Some((a, _)) => (a, i),
                    None => (i, i),
                });
            } else if let Some(r) = cur.take() {
                out.push(r);
            }
        }
        out.extend(cur);
        out
    };
    let mut mus_lvl = vec![0.0; plan.len()];
    let mut noi_lvl = vec![0.0; plan.len()];
    for (i, (c, _)) in plan.iter().enumerate() {
        let ls = levels[i];
        if c.contains('M') {
            mus_lvl[i] = if c.contains('S') { ls - rng.range(6.0, 20.0) } else { ls + rng.range(-3.0, 1.0) };
        }
        if c.contains('N') {
            noi_lvl[i] = if c.contains('S') {
                ls - rng.range(3.0, 15.0)
            } else if c.contains('M') {
                mus_lvl[i] - rng.range(0.0, 10.0)
            } else {
                ls + rng.range(-6.0, 0.0)
            };
        }
    }
    let envelope = |lo: usize, hi: usize, lv: &[f64]| -> Vec<f32> {
        let t0 = starts[lo];
        let len = smp(starts[hi + 1]) - smp(t0);
        let mut g = vec![0f64; len];
        for i in lo..=hi {
            let (a, b) = (smp(starts[i]) - smp(t0), (smp(starts[i + 1]) - smp(t0)).min(len));
            g[a..b].iter_mut().for_each(|v| *v = db(lv[i]));
        }
        let r = (0.3 * SR as f64) as usize;
        for i in lo + 1..=hi {
            let c = smp(starts[i]) - smp(t0);
            let (a, b) = (c.saturating_sub(r / 2), (c + r / 2).min(len));
            if b > a + 1 {
                let (ga, gb) = (g[a], g[b - 1]);
                for (j, v) in g[a..b].iter_mut().enumerate() {
                    *v = ga + (gb - ga) * j as f64 / (b - a - 1) as f64;
                }
            }
        }
        let e = SR.min(len / 2);
        let (fi, fo) = (fade(e, true), fade(e, false));
        for j in 0..e {
            g[j] *= fi[j] as f64;
            g[len - e + j] *= fo[j] as f64;
        }
        g.into_iter().map(|v| v as f32).collect()
    };
    for (lo, hi) in runs('M') {
        let g = envelope(lo, hi, &mus_lvl);
        let s0 = smp(starts[lo]);
        // Playback from a random free part, switching (1 s cross-fade) when it runs out.
        let mut t = 0usize;
        let xf = SR;
        while t < g.len() {
            let p = rng.below(src.music.len());
            let part = &src.music[p];
            let scale = (1.0 / active_rms(&part.x)) as f32;
            let want = (g.len() - t + if t > 0 { xf } else { 0 }).min(part.x.len());
            let off = rng.below(part.x.len() - want + 1);
            let start = if t > 0 { t - xf.min(t) } else { 0 };
            let (fi, fo) = (fade(xf.min(want), true), fade(xf.min(want), false));
            if t > 0 {
                for j in 0..fo.len() {
                    if s0 + start + j < n {
                        music[s0 + start + j] *= fo[j];
                    }
                }
            }
            for j in 0..want {
                let mut v = part.x[off + j] * scale;
                if t > 0 && j < fi.len() {
                    v *= fi[j];
                }
                if start + j < g.len() && s0 + start + j < n {
                    music[s0 + start + j] += v;
                }
            }
            src.used.insert(part.stem);
            let a = starts[lo] + start as f64 / SR as f64;
            let sa = part.offset + off as f64 / SR as f64;
            events.push((
                "music".into(),
                a,
                a + want as f64 / SR as f64,
                src.stems[part.stem].source.clone(),
                sa,
                sa + want as f64 / SR as f64,
            ));
            t = start + want;
        }
        for (j, gv) in g.iter().enumerate() {
            if s0 + j < n {
                music[s0 + j] *= gv;
            }
        }
    }
    for (lo, hi) in runs('N') {
        let g = envelope(lo, hi, &noi_lvl);
        let s0 = smp(starts[lo]);
        let mut y = vec![0f32; g.len()];
        let xf = SR;
        for i in lo..=hi {
            let a = (smp(starts[i]) - s0).saturating_sub(if i > lo { xf / 2 } else { 0 });
            let b = (smp(starts[i + 1]) - s0 + if i < hi { xf / 2 } else { 0 }).min(y.len());
            if b <= a {
                continue;
            }
            // A recorded noise part (4 in 5) or generated pink/brown noise.
            let (chunk, source, sa) = if !src.noise.is_empty() && rng.f64() < 0.8 {
                let p = rng.below(src.noise.len());
                let part = &src.noise[p];
                src.used.insert(part.stem);
                (texture(&part.x, b - a, rng), src.stems[part.stem].source.clone(), part.offset)
            } else {
                let brown = rng.chance(0.5);
                (coloured(b - a, rng, brown), format!("generated {} noise", if brown { "brown" } else { "pink" }), 0.0)
            };
            let f = xf.min(chunk.len() / 2);
            let (fi, fo) = (fade(f, true), fade(f, false));
            for (j, v) in chunk.iter().enumerate() {
                let mut v = *v;
                if i > lo && j < f {
                    v *= fi[j];
                }
                if i < hi && j >= chunk.len() - f {
                    v *= fo[j - (chunk.len() - f)];
                }
                y[a + j] += v;
            }
            let t = starts[lo] + a as f64 / SR as f64;
            events.push((
                "noise".into(),
                t,
                t + (b - a) as f64 / SR as f64,
                source,
                sa,
                sa + (b - a) as f64 / SR as f64,
            ));
        }
        for (j, (v, gv)) in y.iter().zip(&g).enumerate() {
            if s0 + j < n {
                noise[s0 + j] += v * gv;
            }
        }
    }
    let floor = coloured(n, rng, false);
    let fl = db(-78.0) as f32;
    let mut mix: Vec<f32> = (0..n).map(|i| speech[i] + music[i] + noise[i] + floor[i] * fl).collect();
    let peak = mix.iter().fold(0f32, |m, v| m.max(v.abs()));
    if peak > 0.97 {
        mix.iter_mut().for_each(|v| *v *= 0.97 / peak);
    }
    // Timeline: speech spans (pauses < 0.6 s count as speech), music and noise runs; exact partition.
    speech_spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut sp: Vec<(f64, f64)> = Vec::new();
    for (a, b) in speech_spans {
        match sp.last_mut() {
            Some(last) if a - last.1 < 0.6 => last.1 = last.1.max(b),
            _ => sp.push((a, b)),
        }
    }
    let mu: Vec<(f64, f64)> = runs('M').into_iter().map(|(lo, hi)| (starts[lo], starts[hi + 1])).collect();
    let no: Vec<(f64, f64)> = runs('N').into_iter().map(|(lo, hi)| (starts[lo], starts[hi + 1])).collect();
    let layers = [sp, mu, no];
    let r3 = |t: f64| (t * 1000.0).round() / 1000.0;
    let mut cuts: Vec<f64> = vec![0.0, r3(total)];
    for l in &layers {
        for &(a, b) in l {
            cuts.push(r3(a.clamp(0.0, total)));
            cuts.push(r3(b.clamp(0.0, total)));
        }
    }
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();
    let mut timeline: Vec<(f64, f64, [bool; 3])> = Vec::new();
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        if b - a < 1e-9 {
            continue;
        }
        let m = (a + b) / 2.0;
        let lab = [0, 1, 2].map(|k| layers[k].iter().any(|&(s, e)| s <= m && m < e));
        match timeline.last_mut() {
            Some(last) if last.2 == lab => last.1 = b,
            _ => timeline.push((a, b, lab)),
        }
    }
    Show { mix, timeline, events }
}

fn combo_name(l: &[bool; 3]) -> String {
    format!("{}{}{}", if l[0] { 'S' } else { '-' }, if l[1] { 'M' } else { '-' }, if l[2] { 'N' } else { '-' })
}

/// Build the pool (see the module docs).
pub fn build(o: &PoolOptions, mut progress: impl FnMut(usize, usize)) -> Result<PoolReport> {
    if !(o.hours > 0.0 && o.hours.is_finite()) {
        bail!("--hours must be a positive number of hours, not {}", o.hours);
    }
    if !(o.show_secs >= 30.0) {
        bail!("shows must be at least 30 s long, not {}", o.show_secs);
    }
    let mut overlap = Vec::new();
    let mut excluded_n = 0;
    let mut src = load_sources(o, &mut overlap, &mut excluded_n)?;
    std::fs::create_dir_all(&o.out).with_context(|| format!("cannot create {}", o.out.display()))?;
    let mut rng = SplitMix64::new(o.seed);
    let n_shows = ((o.hours * 3600.0) / o.show_secs).ceil().max(1.0) as usize;
    let mut report = PoolReport {
        shows: Vec::new(),
        seconds: 0.0,
        combination_secs: BTreeMap::new(),
        stems_used: 0,
        stems_excluded: excluded_n,
        overlap,
    };
    let want = o.hours * 3600.0;
    for k in 0..n_shows {
        progress(k, n_shows);
        // The last show takes what is left (at least 30 s).
        let secs = (want - report.seconds).min(o.show_secs).max(30.0);
        let show = make_show(&mut src, secs, &mut rng);
        let name = format!("pool_{:03}", k + 1);
        let wav = o.out.join(format!("{name}.wav"));
        crate::audio::write_wav_16k(&wav, &show.mix).with_context(|| format!("writing {}", wav.display()))?;
        let mut w = csv::Writer::from_path(o.out.join(format!("{name}_timeline.csv")))?;
        w.write_record(["start", "end", "speech", "music", "noise"])?;
        for (a, b, l) in &show.timeline {
            let bit = |x: bool| if x { "1" } else { "0" };
            w.write_record([
                format!("{a:.3}"),
                format!("{b:.3}"),
                bit(l[0]).into(),
                bit(l[1]).into(),
                bit(l[2]).into(),
            ])?;
            *report.combination_secs.entry(combo_name(l)).or_default() += b - a;
        }
        w.flush()?;
        let mut w = csv::Writer::from_path(o.out.join(format!("{name}_events.csv")))?;
        w.write_record(["layer", "start", "end", "source", "src_start", "src_end"])?;
        let mut ev = show.events;
        ev.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        for (layer, a, b, s, sa, sb) in ev {
            w.write_record([layer, format!("{a:.3}"), format!("{b:.3}"), s, format!("{sa:.3}"), format!("{sb:.3}")])?;
        }
        w.flush()?;
        report.seconds += show.mix.len() as f64 / SR as f64;
        report.shows.push(format!("{name}.wav"));
    }
    progress(n_shows, n_shows);
    let mut w = csv::Writer::from_path(o.out.join("sources.csv"))?;
    w.write_record(["file", "kind", "license", "attribution", "source"])?;
    for &i in &src.used {
        let s = &src.stems[i];
        w.write_record([&s.file, &s.kind, &s.license, &s.attribution, &s.source])?;
    }
    w.flush()?;
    report.stems_used = src.used.len();
    Ok(report)
}
