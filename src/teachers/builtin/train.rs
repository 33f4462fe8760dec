//! Training the built-in teacher's head on mixtures generated from separate speech / music / noise recordings
//! ("stems"), the way radio mixes them: music 6–20 dB under the voice, noise 3–15 dB under, music vs noise
//! 0–10 dB, speech often starting 1.5–3 s into a music bed, partial layers with fades, a quiet recording floor
//! that is *not* labelled noise, the whole mix at −30..−18 dBFS, and some band-limiting.
//!
//! Deterministic: a SplitMix64 stream seeded by `--seed`, single-threaded, fixed-order reductions, scalar FFT,
//! floats written in shortest round-trip form — the same seed and stems rebuild the same file bit for bit.
//! Speakers and one music and one noise recording are held out of training; mixtures made from them calibrate the
//! outputs (Platt scaling, so 0.5 is the default threshold) and give the validation figures recorded in the file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use super::features::{FEATURE_NAMES, FEATURES_VERSION, FeatureExtractor, N_FEATURES, SAMPLE_RATE};
use super::head::{FORMAT, HeadFile, HeadParams, TrainingInfo};
use crate::labels::Class;

const SR: f64 = SAMPLE_RATE as f64;
const SEG: usize = 10 * SAMPLE_RATE as usize;

/// The training stream (SplitMix64; see `crate::rng`).
pub use crate::rng::SplitMix64 as Rng;

/// One source recording.
#[derive(Debug, Clone)]
pub struct Stem {
    pub file: String,
    pub kind: Class,
    pub speaker: String,
    pub samples: Vec<f32>,
}

/// Read `stems.csv` (columns `file,kind,speaker,...`) in `dir` and decode every stem to 16 kHz mono.
/// Returns the stems sorted by file name and a digest of the files' bytes.
pub fn load_stems(dir: &Path, mut progress: impl FnMut(&str)) -> Result<(Vec<Stem>, String)> {
    let manifest = dir.join("stems.csv");
    let mut rdr = csv::Reader::from_path(&manifest).with_context(|| format!("cannot read {}", manifest.display()))?;
    let headers = rdr.headers()?.clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (Some(fc), Some(kc)) = (col("file"), col("kind")) else {
        bail!("{}: needs columns 'file' and 'kind'", manifest.display());
    };
    let sc = col("speaker");
    let mut rows = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.with_context(|| format!("{} line {}", manifest.display(), i + 2))?;
        let file = rec.get(fc).unwrap_or("").to_string();
        let kind: Class = rec
            .get(kc)
            .unwrap_or("")
            .parse()
            .map_err(|e: String| anyhow::anyhow!("{} line {}, column 'kind': {e}", manifest.display(), i + 2))?;
        let speaker = sc.and_then(|c| rec.get(c)).unwrap_or("").to_string();
        if file.contains("..") || Path::new(&file).is_absolute() {
            bail!("{} line {}: stem path '{file}' leaves the stems folder", manifest.display(), i + 2);
        }
        rows.push((file, kind, speaker));
    }
    rows.sort();
    let mut digest = Sha256::new();
    let mut stems = Vec::with_capacity(rows.len());
    for (file, kind, speaker) in rows {
        let path: PathBuf = dir.join(&file);
        progress(&format!("decoding {file}"));
        let bytes = std::fs::read(&path).with_context(|| format!("cannot read stem {}", path.display()))?;
        digest.update(file.as_bytes());
        digest.update(Sha256::digest(&bytes));
        let samples = crate::audio::load_mono_16k(&path)?;
        let speaker = if speaker.is_empty() { file.clone() } else { speaker };
        stems.push(Stem { file, kind, speaker, samples });
    }
    let hex: String = digest.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((stems, format!("sha256:{hex}")))
}

/// Training settings.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub seed: u64,
    /// Mixtures per label combination (7 non-empty combinations) for training and for validation.
    pub train_per_combo: usize,
    pub val_per_combo: usize,
    pub hidden: usize,
    pub epochs: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    /// The command line recorded in the file.
    pub command: String,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 1,
            train_per_combo: 1000,
            val_per_combo: 100,
            hidden: 16,
            epochs: 1500,
            learning_rate: 0.01,
            weight_decay: 1e-2,
            command: "dams teachers train-builtin --stems STEMS --seed 1".into(),
        }
    }
}

/// Stems of one kind, split into training and held-out pools.
struct Pools {
    train: [Vec<usize>; 3],
    val: [Vec<usize>; 3],
}

fn split_pools(stems: &[Stem]) -> Result<Pools> {
    let mut train: [Vec<usize>; 3] = Default::default();
    let mut val: [Vec<usize>; 3] = Default::default();
    // Speech: every fourth speaker (sorted) is held out. Music / noise: the middle recording is held out.
    let speakers: Vec<String> = stems
        .iter()
        .filter(|s| s.kind == Class::Speech)
        .map(|s| s.speaker.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for c in [Class::Speech, Class::Music, Class::Noise] {
        // Recordings shorter than 0.1 s cannot be looped into a window; they are left out.
        let usable = |i: usize| stems[i].kind == c && stems[i].samples.len() >= SAMPLE_RATE as usize / 10;
        let idx: Vec<usize> = (0..stems.len()).filter(|&i| usable(i)).collect();
        if idx.is_empty() {
            bail!("no {c} stems (of at least 0.1 s): training needs speech, music and noise recordings");
        }
        for (k, &i) in idx.iter().enumerate() {
            let held = match c {
                Class::Speech => speakers.iter().position(|s| *s == stems[i].speaker).unwrap_or(0) % 4 == 3,
                _ => k == idx.len() / 2,
            };
            if held { val[c.index()].push(i) } else { train[c.index()].push(i) }
        }
        // With too few recordings to hold one out, use the same pool for both.
        if train[c.index()].is_empty() {
            train[c.index()] = val[c.index()].clone();
        }
        if val[c.index()].is_empty() {
            val[c.index()] = train[c.index()].clone();
        }
    }
    Ok(Pools { train, val })
}

fn rms(x: &[f32]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / x.len() as f64).sqrt()
}

fn db_to_lin(db: f64) -> f64 {
    10f64.powf(db / 20.0)
}

/// RMS over the active 10 ms frames (within 35 dB of the 95th-percentile frame).
fn active_rms(x: &[f32]) -> f64 {
    let frames: Vec<f64> = x.chunks(160).map(rms).collect();
    let mut sorted = frames.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    if sorted.is_empty() {
        return 0.0;
    }
    let p95 = sorted[((sorted.len() - 1) as f64 * 0.95).round() as usize];
    let gate = p95 * db_to_lin(-35.0);
    let (mut s, mut n) = (0f64, 0usize);
    for (f, c) in frames.iter().zip(x.chunks(160)) {
        if *f > gate && *f > 0.0 {
            s += c.iter().map(|&v| v as f64 * v as f64).sum::<f64>();
            n += c.len();
        }
    }
    if n == 0 { 0.0 } else { (s / n as f64).sqrt() }
}

/// Share of 10 ms frames within 30 dB of the window's 95th-percentile frame (the dev set's activity check).
fn activity(x: &[f32]) -> f64 {
    let frames: Vec<f64> = x.chunks(160).map(rms).collect();
    let mut sorted = frames.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let p95 = sorted[((sorted.len() - 1) as f64 * 0.95).round() as usize];
    if p95 <= 0.0 {
        return 0.0;
    }
    frames.iter().filter(|&&f| f > p95 * db_to_lin(-30.0)).count() as f64 / frames.len() as f64
}

/// A `len`-sample window of `src` starting at a random offset, looping with 0.5 s cross-fades if `src` is short.
fn window_of(src: &[f32], len: usize, rng: &mut Rng) -> Vec<f32> {
    if src.len() >= len {
        let off = rng.index(src.len() - len + 1);
        return src[off..off + len].to_vec();
    }
    let xf = (SAMPLE_RATE as usize / 2).min(src.len() / 3).max(1);
    let off = rng.index(src.len());
    let mut out: Vec<f32> = Vec::with_capacity(off + len + src.len());
    out.extend_from_slice(src);
    while out.len() < off + len {
        let start = out.len() - xf;
        for i in 0..xf {
            let a = i as f32 / xf as f32;
            out[start + i] = out[start + i] * (1.0 - a) + src[i] * a;
        }
        out.extend_from_slice(&src[xf..]);
    }
    out.drain(..off);
    out.truncate(len);
    out
}

/// A window of a music or noise stem that passes the activity check (best of a few tries).
fn active_window(stems: &[Stem], pool: &[usize], rng: &mut Rng) -> Vec<f32> {
    let s = &stems[pool[rng.index(pool.len())]];
    let mut best = window_of(&s.samples, SEG, rng);
    let mut best_a = activity(&best);
    for _ in 0..6 {
        if best_a >= 0.8 {
            break;
        }
        let w = window_of(&s.samples, SEG, rng);
        let a = activity(&w);
        if a > best_a {
            best = w;
            best_a = a;
        }
    }
    best
}

/// White, pink or brown noise, unit RMS.
fn coloured_noise(len: usize, rng: &mut Rng) -> Vec<f32> {
    let colour = rng.index(3);
    let (mut b0, mut b1, mut b2, mut brown) = (0f64, 0f64, 0f64, 0f64);
    let mut v: Vec<f32> = (0..len)
        .map(|_| {
            let w = rng.range(-1.0, 1.0);
            (match colour {
                0 => w,
                1 => {
                    b0 = 0.99765 * b0 + w * 0.0990460;
                    b1 = 0.96300 * b1 + w * 0.2965164;
                    b2 = 0.57000 * b2 + w * 1.0526913;
                    b0 + b1 + b2 + w * 0.1848
                }
                _ => {
                    brown = 0.995 * brown + w * 0.1;
                    brown
                }
            }) as f32
        })
        .collect();
    let r = rms(&v).max(1e-12);
    for x in &mut v {
        *x = (*x as f64 / r) as f32;
    }
    v
}

/// Fade a layer in and out so it only covers part of the window (≥ 2.5 s), like a scene change in a show.
fn partial(x: &mut [f32], rng: &mut Rng) {
    let len = x.len();
    let dur = (rng.range(2.5, 8.0) * SR) as usize;
    let start = if rng.chance(0.5) { 0 } else { len - dur };
    let fade = SAMPLE_RATE as usize;
    for (i, v) in x.iter_mut().enumerate() {
        let g = if i < start || i >= start + dur {
            0.0
        } else {
            let from_start = (i - start) as f32 / fade as f32;
            let to_end = (start + dur - i) as f32 / fade as f32;
            let mut g = 1f32;
            if start > 0 {
                g = g.min(from_start);
            }
            if start + dur < len {
                g = g.min(to_end);
            }
            g.min(1.0)
        };
        *v *= g;
    }
}

/// The speech layer: utterances of one speaker with short pauses, from `start` seconds (possibly ending early).
fn speech_layer(stems: &[Stem], pool: &[usize], start_s: f64, rng: &mut Rng) -> Vec<f32> {
    let mut out = vec![0f32; SEG];
    let speaker = &stems[pool[rng.index(pool.len())]].speaker;
    let own: Vec<usize> = pool.iter().copied().filter(|&i| stems[i].speaker == *speaker).collect();
    let end = if rng.chance(0.15) { ((start_s + rng.range(1.5, 4.0)) * SR) as usize } else { SEG };
    let mut pos = (start_s * SR) as usize;
    while pos < end.min(SEG) {
        let u = &stems[own[rng.index(own.len())]].samples;
        let n = u.len().min(end.min(SEG) - pos);
        out[pos..pos + n].copy_from_slice(&u[..n]);
        pos += u.len() + (rng.range(0.15, 0.6) * SR) as usize;
    }
    out
}

/// One 10 s mixture with the classes of `combo` (bit 0 speech, 1 music, 2 noise).
pub fn mixture(stems: &[Stem], pools: &[Vec<usize>; 3], combo: u8, rng: &mut Rng) -> Vec<f32> {
    let (s, m, n) = (combo & 1 != 0, combo & 2 != 0, combo & 4 != 0);
    let mut mix = vec![0f32; SEG];
    let mut add = |layer: &[f32], gain: f64| {
        for (o, v) in mix.iter_mut().zip(layer) {
            *o += (*v as f64 * gain) as f32;
        }
    };
    // Levels relative to the main layer at 1.0 RMS.
    let mut music_db = 0.0;
    if s {
        let start = if m && rng.chance(0.5) { rng.range(1.5, 3.0) } else { rng.range(0.0, 0.6) };
        let sp = speech_layer(stems, &pools[0], start, rng);
        let r = active_rms(&sp).max(1e-9);
        add(&sp, 1.0 / r);
    }
    if m {
        let mut mu = active_window(stems, &pools[1], rng);
        let r = rms(&mu).max(1e-9);
        if s {
            music_db = -rng.range(6.0, 20.0);
        }
        if rng.chance(0.12) {
            partial(&mut mu, rng);
        }
        add(&mu, db_to_lin(music_db) / r);
    }
    if n {
        let mut no = if rng.chance(0.2) { coloured_noise(SEG, rng) } else { active_window(stems, &pools[2], rng) };
        let r = rms(&no).max(1e-9);
        let db = if s {
            -rng.range(3.0, 15.0)
        } else if m {
            music_db - rng.range(0.0, 10.0)
        } else {
            0.0
        };
        if rng.chance(0.12) {
            partial(&mut no, rng);
        }
        add(&no, db_to_lin(db) / r);
    }
    // A quiet recording floor (hiss / room tone), far below the content: not labelled noise.
    if rng.chance(0.7) {
        let fl = coloured_noise(SEG, rng);
        let db = -rng.range(40.0, 65.0);
        add(&fl, db_to_lin(db));
    }
    // Band-limiting like a broadcast chain or a cheap recorder.
    if rng.chance(0.3) {
        let fc = rng.range(3000.0, 7000.0);
        let a = (-2.0 * std::f64::consts::PI * fc / SR).exp();
        let mut y = 0f64;
        for v in &mut mix {
            y = (1.0 - a) * *v as f64 + a * y;
            *v = y as f32;
        }
    }
    if rng.chance(0.2) {
        let fc = rng.range(80.0, 300.0);
        let a = (-2.0 * std::f64::consts::PI * fc / SR).exp();
        let (mut y, mut xp) = (0f64, 0f64);
        for v in &mut mix {
            let x = *v as f64;
            y = a * (y + x - xp);
            xp = x;
            *v = y as f32;
        }
    }
    let target = db_to_lin(rng.range(-30.0, -18.0));
    let r = rms(&mix).max(1e-12);
    let mut g = target / r;
    let peak = mix.iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
    if peak * g > 0.97 {
        g = 0.97 / peak;
    }
    for v in &mut mix {
        *v = (*v as f64 * g) as f32;
    }
    mix
}

/// A generated data set: features and labels.
pub struct DataSet {
    pub x: Vec<[f32; N_FEATURES]>,
    pub y: Vec<[bool; 3]>,
}

/// Generate `per_combo` mixtures of each of the 7 non-empty label combinations and compute their features.
pub fn generate(
    stems: &[Stem],
    pools: &[Vec<usize>; 3],
    per_combo: usize,
    rng: &mut Rng,
    mut progress: impl FnMut(usize, usize),
) -> DataSet {
    let mut fx = FeatureExtractor::new();
    let total = per_combo * 7;
    let mut ds = DataSet { x: Vec::with_capacity(total), y: Vec::with_capacity(total) };
    for i in 0..total {
        let combo = (i % 7 + 1) as u8;
        let mix = mixture(stems, pools, combo, rng);
        ds.x.push(fx.extract(&mix));
        ds.y.push([combo & 1 != 0, combo & 2 != 0, combo & 4 != 0]);
        if (i + 1) % 50 == 0 || i + 1 == total {
            progress(i + 1, total);
        }
    }
    ds
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Full-batch Adam on mean binary cross-entropy + L2, single-threaded, in f64. Returns (w1, b1, w2, b2).
#[allow(clippy::type_complexity)]
fn fit_mlp(
    z: &[Vec<f64>],
    y: &[[bool; 3]],
    hidden: usize,
    cfg: &TrainConfig,
    rng: &mut Rng,
    mut progress: impl FnMut(usize, f64),
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let d = N_FEATURES;
    let h = hidden;
    let n = z.len() as f64;
    let a1 = (6.0 / (d + h) as f64).sqrt();
    let a2 = (6.0 / (h + 3) as f64).sqrt();
    // Parameters in one vector: w1 (h*d), b1 (h), w2 (3*h), b2 (3).
    let (o_b1, o_w2, o_b2) = (h * d, h * d + h, h * d + h + 3 * h);
    let np = o_b2 + 3;
    let mut p = vec![0f64; np];
    for v in &mut p[..o_b1] {
        *v = rng.range(-a1, a1);
    }
    for v in &mut p[o_w2..o_b2] {
        *v = rng.range(-a2, a2);
    }
    let (mut m, mut s) = (vec![0f64; np], vec![0f64; np]);
    let (b1m, b2m, eps) = (0.9f64, 0.999f64, 1e-8);
    let mut g = vec![0f64; np];
    let mut hid = vec![0f64; h];
    let mut dh = vec![0f64; h];
    for epoch in 0..cfg.epochs {
        g.iter_mut().for_each(|v| *v = 0.0);
        let mut loss = 0f64;
        for (x, t) in z.iter().zip(y) {
            for j in 0..h {
                let row = &p[j * d..(j + 1) * d];
                let mut acc = p[o_b1 + j];
                for i in 0..d {
                    acc += row[i] * x[i];
                }
                hid[j] = acc.tanh();
            }
            dh.iter_mut().for_each(|v| *v = 0.0);
            for c in 0..3 {
                let mut o = p[o_b2 + c];
                for j in 0..h {
                    o += p[o_w2 + c * h + j] * hid[j];
                }
                let q = sigmoid(o);
                let tgt = if t[c] { 1.0 } else { 0.0 };
                loss -= tgt * q.max(1e-12).ln() + (1.0 - tgt) * (1.0 - q).max(1e-12).ln();
                let go = (q - tgt) / n;
                g[o_b2 + c] += go;
                for j in 0..h {
                    g[o_w2 + c * h + j] += go * hid[j];
                    dh[j] += go * p[o_w2 + c * h + j];
                }
            }
            for j in 0..h {
                let dp = dh[j] * (1.0 - hid[j] * hid[j]);
                g[o_b1 + j] += dp;
                let row = &mut g[j * d..(j + 1) * d];
                for i in 0..d {
                    row[i] += dp * x[i];
                }
            }
        }
        // L2 on the weights (not the biases).
        for k in (0..o_b1).chain(o_w2..o_b2) {
            g[k] += cfg.weight_decay * p[k];
        }
        let t = (epoch + 1) as i32;
        let (c1, c2) = (1.0 - b1m.powi(t), 1.0 - b2m.powi(t));
        for k in 0..np {
            m[k] = b1m * m[k] + (1.0 - b1m) * g[k];
            s[k] = b2m * s[k] + (1.0 - b2m) * g[k] * g[k];
            p[k] -= cfg.learning_rate * (m[k] / c1) / ((s[k] / c2).sqrt() + eps);
        }
        if (epoch + 1) % 100 == 0 || epoch + 1 == cfg.epochs {
            progress(epoch + 1, loss / n / 3.0);
        }
    }
    (p[..o_b1].to_vec(), p[o_b1..o_w2].to_vec(), p[o_w2..o_b2].to_vec(), p[o_b2..].to_vec())
}

/// Platt scaling of one class's logits with Platt's smoothed targets, by Newton's method.
fn platt(logits: &[f64], y: &[bool]) -> (f64, f64) {
    let npos = y.iter().filter(|&&b| b).count() as f64;
    let nneg = y.len() as f64 - npos;
    let (tp, tn) = ((npos + 1.0) / (npos + 2.0), 1.0 / (nneg + 2.0));
    let (mut a, mut b) = (1.0f64, 0.0f64);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0f64, 0f64, 1e-9, 0f64, 1e-9);
        for (&l, &t) in logits.iter().zip(y) {
            let q = sigmoid(a * l + b);
            let tg = if t { tp } else { tn };
            let r = q - tg;
            ga += r * l;
            gb += r;
            let w = q * (1.0 - q);
            haa += w * l * l;
            hab += w * l;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-18 {
            break;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        a -= da;
        b -= db;
        if da.abs() < 1e-12 && db.abs() < 1e-12 {
            break;
        }
    }
    (a, b)
}

/// Per-class F1 of `scores ≥ 0.5` against labels.
pub fn f1_at_half(scores: &[[f32; 3]], y: &[[bool; 3]]) -> [f64; 3] {
    let mut out = [0f64; 3];
    for (c, o) in out.iter_mut().enumerate() {
        let (mut tp, mut fp, mut fneg) = (0f64, 0f64, 0f64);
        for (s, t) in scores.iter().zip(y) {
            match (s[c] >= 0.5, t[c]) {
                (true, true) => tp += 1.0,
                (true, false) => fp += 1.0,
                (false, true) => fneg += 1.0,
                _ => {}
            }
        }
        *o = if tp == 0.0 { 0.0 } else { 2.0 * tp / (2.0 * tp + fp + fneg) };
    }
    out
}

/// Progress of training, for the caller to show.
pub enum TrainEvent<'a> {
    Phase(&'a str),
    Mixtures { done: usize, total: usize },
    Epoch { epoch: usize, loss: f64 },
}

/// Train a head from decoded stems. Deterministic for a given `cfg` and stems.
pub fn train(
    stems: &[Stem],
    stems_digest: &str,
    cfg: &TrainConfig,
    mut ev: impl FnMut(TrainEvent),
) -> Result<HeadFile> {
    if cfg.hidden == 0 || cfg.train_per_combo == 0 || cfg.val_per_combo == 0 {
        bail!("hidden size and mixture counts must be positive");
    }
    let pools = split_pools(stems)?;
    let mut rng = Rng::new(cfg.seed);
    ev(TrainEvent::Phase("generating training mixtures"));
    let train = generate(stems, &pools.train, cfg.train_per_combo, &mut rng, |done, total| {
        ev(TrainEvent::Mixtures { done, total })
    });
    ev(TrainEvent::Phase("generating validation mixtures (held-out speakers and recordings)"));
    let val = generate(stems, &pools.val, cfg.val_per_combo, &mut rng, |done, total| {
        ev(TrainEvent::Mixtures { done, total })
    });

    // Standardisation from the training set.
    let d = N_FEATURES;
    let nt = train.x.len() as f64;
    let mut mean = vec![0f64; d];
    let mut std = vec![0f64; d];
    for x in &train.x {
        for i in 0..d {
            mean[i] += x[i] as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= nt);
    for x in &train.x {
        for i in 0..d {
            std[i] += (x[i] as f64 - mean[i]).powi(2);
        }
    }
    for s in &mut std {
        *s = (*s / nt).sqrt();
        if *s < 1e-6 {
            *s = 1.0;
        }
    }
    let mean32: Vec<f32> = mean.iter().map(|&v| v as f32).collect();
    let std32: Vec<f32> = std.iter().map(|&v| v as f32).collect();
    let standardise =
        |x: &[f32; N_FEATURES]| -> Vec<f64> { (0..d).map(|i| ((x[i] - mean32[i]) / std32[i]) as f64).collect() };
    let z: Vec<Vec<f64>> = train.x.iter().map(standardise).collect();

    ev(TrainEvent::Phase("training the head"));
    let (w1, b1, w2, b2) =
        fit_mlp(&z, &train.y, cfg.hidden, cfg, &mut rng, |epoch, loss| ev(TrainEvent::Epoch { epoch, loss }));
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let mut head = HeadParams {
        format: FORMAT.into(),
        features_version: FEATURES_VERSION,
        feature_names: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
        mean: mean32.clone(),
        std: std32.clone(),
        hidden: cfg.hidden,
        w1: f32s(&w1),
        b1: f32s(&b1),
        w2: f32s(&w2),
        b2: f32s(&b2),
        platt_a: [1.0; 3],
        platt_b: [0.0; 3],
        training: TrainingInfo {
            command: cfg.command.clone(),
            seed: cfg.seed,
            stems_digest: stems_digest.to_string(),
            n_train: train.x.len(),
            n_val: val.x.len(),
            epochs: cfg.epochs,
            learning_rate: cfg.learning_rate,
            weight_decay: cfg.weight_decay,
            val_f1: [0.0; 3],
            val_macro_f1: 0.0,
        },
    };

    ev(TrainEvent::Phase("calibrating on the validation mixtures"));
    let mut hb = vec![0f32; cfg.hidden];
    let val_logits: Vec<[f32; 3]> = val.x.iter().map(|x| head.logits(x, &mut hb)).collect();
    for c in 0..3 {
        let l: Vec<f64> = val_logits.iter().map(|v| v[c] as f64).collect();
        let y: Vec<bool> = val.y.iter().map(|t| t[c]).collect();
        let (a, b) = platt(&l, &y);
        head.platt_a[c] = a as f32;
        head.platt_b[c] = b as f32;
    }
    let val_scores: Vec<[f32; 3]> = val.x.iter().map(|x| head.scores(x, &mut hb)).collect();
    let f1 = f1_at_half(&val_scores, &val.y);
    let r4 = |v: f64| (v * 1e4).round() / 1e4;
    head.training.val_f1 = f1.map(r4);
    head.training.val_macro_f1 = r4((f1[0] + f1[1] + f1[2]) / 3.0);
    head.validate()?;
    Ok(HeadFile::new(head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_stream_is_fixed() {
        let mut r = Rng::new(1);
        // SplitMix64 reference values for seed 1.
        assert_eq!(r.next_u64(), 0x910A_2DEC_8902_5CC1);
        assert_eq!(r.next_u64(), 0xBEEB_8DA1_658E_EC67);
        let mut r = Rng::new(7);
        for _ in 0..1000 {
            let i = r.index(5);
            assert!(i < 5);
            let f = r.f64();
            assert!((0.0..1.0).contains(&f));
        }
    }

    #[test]
    fn platt_recovers_a_known_scaling() {
        // Labels drawn from sigmoid(2 l - 1) with a fixed stream: the fit lands near (2, -1).
        let mut r = Rng::new(3);
        let l: Vec<f64> = (0..4000).map(|_| r.range(-4.0, 4.0)).collect();
        let y: Vec<bool> = l.iter().map(|&v| r.f64() < sigmoid(2.0 * v - 1.0)).collect();
        let (a, b) = platt(&l, &y);
        assert!((a - 2.0).abs() < 0.25 && (b + 1.0).abs() < 0.25, "a={a} b={b}");
    }
}
