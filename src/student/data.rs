//! Training data for the student: log-mel features computed once per segment (kept in memory
//! for the run), targets from a weighted mix of label sources, and the augmentations.

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::dsp::spectrogram::{MelSpectrogrammer, SpecConfig};
use crate::labels::{LabelSet, Split};
use crate::store::Store;
use crate::workspace::Workspace;

/// Mel bands of the student's input.
pub const N_MELS: usize = 64;
/// dB floor of the spectrogram (silence).
const FLOOR_DB: f32 = -100.0;

/// One labelled example: a `n_mels × frames` log-mel matrix (band-major, dB).
#[derive(Debug, Clone)]
pub struct Example {
    pub segment_id: i64,
    pub feats: Vec<f32>,
    pub target: [f32; 3],
    /// Per-source weight of this example in the loss.
    pub weight: f32,
}

impl Example {
    pub fn labels(&self) -> LabelSet {
        LabelSet::from_array(self.target.map(|t| t >= 0.5))
    }
}

/// A training set and its gold dev set, at one feature shape.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub n_mels: usize,
    pub frames: usize,
    pub train: Vec<Example>,
    pub dev: Vec<Example>,
}

impl Dataset {
    /// `pos_weight` per class: negatives / positives over the training targets (1.0 without
    /// positives).
    pub fn pos_weight(&self) -> [f32; 3] {
        pos_weight_of(self.train.iter().map(|e| e.target))
    }

    /// Indices of training examples labelled noise only (used as noise for mixing).
    pub fn noise_only(&self) -> Vec<usize> {
        let noise = LabelSet::new(false, false, true);
        self.train.iter().enumerate().filter(|(_, e)| e.labels() == noise).map(|(i, _)| i).collect()
    }
}

/// `pos_weight` per class of training targets: negatives / positives (1.0 without positives).
pub fn pos_weight_of(targets: impl Iterator<Item = [f32; 3]>) -> [f32; 3] {
    let mut pos = [0usize; 3];
    let mut n = 0usize;
    for t in targets {
        n += 1;
        for (c, p) in pos.iter_mut().enumerate() {
            if t[c] >= 0.5 {
                *p += 1;
            }
        }
    }
    pos.map(|p| if p == 0 { 1.0 } else { (n - p) as f32 / p as f32 })
}

/// The mel front end of the student (64 bands, 25 ms / 10 ms, 16 kHz).
pub fn spec_config() -> SpecConfig {
    SpecConfig { n_mels: N_MELS, ..SpecConfig::default() }
}

/// Frames of a clip of `samples` samples.
pub fn frames_for(samples: usize) -> usize {
    let c = spec_config();
    if samples == 0 { 0 } else { 1 + samples.saturating_sub(c.win) / c.hop }
}

/// Log-mel features of 16-kHz mono `samples`, band-major, tiled (short clips repeat) or cropped
/// to exactly `frames` frames.
pub fn log_mel(spec: &mut MelSpectrogrammer, samples: &[f32], frames: usize) -> Vec<f32> {
    let s = spec.compute(samples);
    let n_mels = s.n_mels;
    let mut out = vec![FLOOR_DB; n_mels * frames];
    if s.n_frames == 0 {
        return out;
    }
    for t in 0..frames {
        let src = t % s.n_frames;
        for m in 0..n_mels {
            out[m * frames + t] = s.data[src * n_mels + m];
        }
    }
    out
}

/// A label source in a training mix: `gold` or a pseudo-label source such as `builtin_pseudo`,
/// with its weight in the loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceSpec {
    pub source: String,
    pub weight: f32,
}

/// Parse `gold,builtin_pseudo:0.5` (weight 1 when left out).
pub fn parse_sources(s: &str) -> Result<Vec<SourceSpec>> {
    let mut out: Vec<SourceSpec> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = match part.rsplit_once(':') {
            Some((n, w)) if w.parse::<f32>().is_ok() => (n.trim(), w.parse::<f32>().unwrap_or(1.0)),
            _ => (part, 1.0),
        };
        if name.is_empty() {
            bail!("empty label source in '{s}'");
        }
        if !(weight.is_finite() && weight > 0.0) {
            bail!("the weight of label source '{name}' must be a positive number, not {weight}");
        }
        if out.iter().any(|o| o.source == name) {
            bail!("label source '{name}' is listed twice");
        }
        out.push(SourceSpec { source: name.to_string(), weight });
    }
    if out.is_empty() {
        bail!("no label sources given (e.g. --sources gold,builtin_pseudo:0.5)");
    }
    Ok(out)
}

/// How pseudo-labels become training targets.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Targets {
    /// Train on the pseudo-labelling run's stored scores (the label model's posteriors, a teacher's score, the
    /// consensus mean) instead of its 0/1 labels. Gold stays hard.
    pub soft: bool,
    /// Weigh each pseudo-labelled example by its confidence, the mean over classes of `|2q − 1|` for its stored
    /// scores `q` (an example the teachers are unsure of counts less).
    pub confidence_weight: bool,
}

/// Confidence of scores `q`: mean over classes of `|2q − 1|` (1 for certain, 0 for all at 0.5).
pub fn confidence(q: &[f32; 3]) -> f32 {
    q.iter().map(|v| (2.0 * v.clamp(0.0, 1.0) - 1.0).abs()).sum::<f32>() / 3.0
}

/// Targets for training: segment id → (target per class in [0, 1], weight). Gold (outside dev and test) wins
/// over pseudo-labels; among pseudo sources the first listed wins. Each pseudo source uses its latest
/// pseudo-labelling run; with [`Targets`] its stored scores become soft targets and/or confidence weights (a run
/// without stored scores keeps hard targets and its source weight).
pub fn training_targets(store: &Store, sources: &[SourceSpec], how: Targets) -> Result<HashMap<i64, ([f32; 3], f32)>> {
    let splits: HashMap<i64, Split> = store.segments(None)?.into_iter().map(|s| (s.id, s.split)).collect();
    let mut out: HashMap<i64, ([f32; 3], f32)> = HashMap::new();
    let mut gold_ids = std::collections::HashSet::new();
    if let Some(g) = sources.iter().find(|s| s.source == "gold") {
        for (id, labels) in store.resolved_gold()? {
            gold_ids.insert(id);
            if matches!(splits.get(&id), Some(Split::Dev | Split::Test) | None) {
                continue;
            }
            out.insert(id, (bool3(labels), g.weight));
        }
    } else {
        gold_ids.extend(store.resolved_gold()?.into_iter().map(|(id, _)| id));
    }
    for src in sources.iter().filter(|s| s.source != "gold") {
        let run: Option<i64> = store.latest_pseudo_run(&src.source)?;
        let Some(run) = run else {
            bail!(
                "no pseudo-labels with label source '{}' in this workspace (run `dams pseudo-label` first, or use gold)",
                src.source
            );
        };
        for (id, [s, m, n], scores) in store.pseudo_scored_labels_of(run)? {
            // Never train on pseudo-labels of segments that have gold, nor of dev/test segments.
            if gold_ids.contains(&id) || matches!(splits.get(&id), Some(Split::Dev | Split::Test) | None) {
                continue;
            }
            let hard = bool3(LabelSet::new(s, m, n));
            let (target, weight) = match scores {
                Some(q) => {
                    let q = q.map(|v| v.clamp(0.0, 1.0));
                    let t = if how.soft { q } else { hard };
                    let w = if how.confidence_weight { src.weight * confidence(&q) } else { src.weight };
                    (t, w)
                }
                None => (hard, src.weight),
            };
            out.entry(id).or_insert((target, weight));
        }
    }
    Ok(out)
}

/// Build the dataset of a workspace: training examples from `sources`, dev examples from gold on
/// the dev split. Audio that cannot be read is reported through `on_skip` and left out.
pub fn workspace_dataset(
    ws: &Workspace,
    store: &Store,
    sources: &[SourceSpec],
    how: Targets,
    frames: usize,
    mut on_progress: impl FnMut(usize, usize),
    mut on_skip: impl FnMut(String),
) -> Result<Dataset> {
    let targets = training_targets(store, sources, how)?;
    let segments = store.segments(None)?;
    let gold: HashMap<i64, LabelSet> = store.resolved_gold()?.into_iter().collect();
    let mut spec = MelSpectrogrammer::new(spec_config());
    let mut ds = Dataset { n_mels: N_MELS, frames, ..Default::default() };
    let wanted: Vec<_> = segments
        .iter()
        .filter(|s| targets.contains_key(&s.id) || (s.split == Split::Dev && gold.contains_key(&s.id)))
        .collect();
    let total = wanted.len();
    for (i, seg) in wanted.into_iter().enumerate() {
        on_progress(i, total);
        let path = match ws.resolve_data_path(&seg.segment_path) {
            Ok(p) => p,
            Err(e) => {
                on_skip(format!("{}: {e}", seg.segment_path));
                continue;
            }
        };
        let samples = match crate::audio::decode::load_mono_16k(&path) {
            Ok(s) => s,
            Err(e) => {
                on_skip(format!("{}: {e}", seg.segment_path));
                continue;
            }
        };
        let feats = log_mel(&mut spec, &samples, frames);
        if let Some(&(target, weight)) = targets.get(&seg.id) {
            ds.train.push(Example { segment_id: seg.id, feats, target, weight });
        } else if let Some(&labels) = gold.get(&seg.id) {
            ds.dev.push(Example { segment_id: seg.id, feats, target: bool3(labels), weight: 1.0 });
        }
    }
    on_progress(total, total);
    if ds.train.is_empty() {
        bail!("no training examples: the chosen label sources label no readable segment outside dev/test");
    }
    Ok(ds)
}

fn bool3(l: LabelSet) -> [f32; 3] {
    l.to_array().map(|b| if b { 1.0 } else { 0.0 })
}

/// Augmentation settings (all off = plain training).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    /// Random gain in ±dB.
    pub gain_db: f32,
    /// Random circular time shift, as a fraction of the clip (0..1).
    pub shift: f32,
    /// Probability of mixing noise into an example.
    pub noise_prob: f32,
    /// SNR range (dB) of mixed-in noise.
    pub snr_db: (f32, f32),
    /// Extra copies of last epoch's confident false positives in the next epoch (0 = off).
    pub hard_negatives: usize,
    /// Probability of band-limiting an example like a radio chain: a random high cut (3.4–8 kHz, telephone to
    /// full band) and low cut (0–300 Hz), 4th-order Butterworth magnitudes applied to each mel band's centre.
    #[serde(default)]
    pub band_prob: f32,
    /// Probability of broadcast-style compression: frame levels above a random threshold are reduced by a random
    /// ratio (2:1–6:1) with a 100 ms release.
    #[serde(default)]
    pub compress_prob: f32,
}

impl Default for Augment {
    fn default() -> Self {
        Augment {
            gain_db: 6.0,
            shift: 0.5,
            noise_prob: 0.3,
            snr_db: (5.0, 25.0),
            hard_negatives: 1,
            band_prob: 0.3,
            compress_prob: 0.3,
        }
    }
}

impl Augment {
    pub fn none() -> Self {
        Augment {
            gain_db: 0.0,
            shift: 0.0,
            noise_prob: 0.0,
            snr_db: (10.0, 30.0),
            hard_negatives: 0,
            band_prob: 0.0,
            compress_prob: 0.0,
        }
    }
}

/// The student's seeded generator (the crate's SplitMix64; its state is saved in checkpoints).
pub use crate::rng::SplitMix64 as Rng;

/// Mean linear power of dB values.
fn mean_power(db: &[f32]) -> f32 {
    if db.is_empty() {
        return 0.0;
    }
    db.iter().map(|&d| 10f32.powf(d / 10.0)).sum::<f32>() / db.len() as f32
}

/// Apply the augmentations to one example's features (in place, dB, band-major).
pub fn augment(feats: &mut [f32], frames: usize, aug: &Augment, noise: Option<&[f32]>, rng: &mut Rng) {
    if frames == 0 {
        return;
    }
    if aug.noise_prob > 0.0 && rng.unit() < aug.noise_prob {
        if let Some(n) = noise.filter(|n| n.len() == feats.len()) {
            let snr = aug.snr_db.0 + (aug.snr_db.1 - aug.snr_db.0) * rng.unit();
            let (ps, pn) = (mean_power(feats), mean_power(n));
            if ps > 0.0 && pn > 0.0 {
                let scale = ps / (pn * 10f32.powf(snr / 10.0));
                for (f, &nd) in feats.iter_mut().zip(n) {
                    let p = 10f32.powf(*f / 10.0) + scale * 10f32.powf(nd / 10.0);
                    *f = (10.0 * p.max(1e-10).log10()).max(FLOOR_DB);
                }
            }
        }
    }
    if aug.gain_db > 0.0 {
        let g = (rng.unit() * 2.0 - 1.0) * aug.gain_db;
        feats.iter_mut().for_each(|f| *f = (*f + g).max(FLOOR_DB));
    }
    if aug.shift > 0.0 {
        let max = ((frames as f32) * aug.shift.min(1.0)) as usize;
        let k = rng.below(max + 1);
        if k > 0 {
            for row in feats.chunks_mut(frames) {
                row.rotate_right(k % frames);
            }
        }
    }
    // Draws for these come after the older augmentations', so settings without them replay exactly.
    if aug.band_prob > 0.0 && rng.unit() < aug.band_prob {
        let high = 3_400.0 + (8_000.0 - 3_400.0) * rng.unit();
        let low = 300.0 * rng.unit();
        band_limit(feats, frames, low, high);
    }
    if aug.compress_prob > 0.0 && rng.unit() < aug.compress_prob {
        let below = 10.0 * rng.unit();
        let ratio = 2.0 + 4.0 * rng.unit();
        compress(feats, frames, below, ratio);
    }
}

/// The centre frequency (Hz) of each of the student's mel bands.
fn band_centres() -> Vec<f32> {
    use crate::dsp::spectrogram::{hz_to_mel, mel_to_hz};
    let c = spec_config();
    let (m0, m1) = (hz_to_mel(c.fmin), hz_to_mel(c.fmax));
    (0..c.n_mels).map(|b| mel_to_hz(m0 + (b + 1) as f32 * (m1 - m0) / (c.n_mels + 1) as f32)).collect()
}

/// Band-limiting in the mel domain: each band's power times a 4th-order Butterworth high-pass at `low` Hz
/// (none at 0) and low-pass at `high` Hz, taken at the band's centre.
pub fn band_limit(feats: &mut [f32], frames: usize, low: f32, high: f32) {
    let centres = band_centres();
    for (row, &f) in feats.chunks_mut(frames).zip(&centres) {
        let mut g = -10.0 * (1.0 + (f / high).powi(8)).log10();
        if low > 0.0 {
            g -= 10.0 * (1.0 + (low / f.max(1.0)).powi(8)).log10();
        }
        row.iter_mut().for_each(|x| *x = (*x + g).max(FLOOR_DB));
    }
}

/// A feed-forward compressor on frame levels: the threshold is `below` dB under the 70th percentile of the
/// example's frame levels; a frame over it is reduced by `(level − threshold)·(1 − 1/ratio)` dB, the reduction
/// released over ~100 ms (10 frames), applied to every band of the frame.
pub fn compress(feats: &mut [f32], frames: usize, below: f32, ratio: f32) {
    let bands = feats.len() / frames;
    if bands == 0 || ratio <= 1.0 {
        return;
    }
    let level: Vec<f32> = (0..frames)
        .map(|t| {
            let p = (0..bands).map(|b| 10f32.powf(feats[b * frames + t] / 10.0)).sum::<f32>() / bands as f32;
            10.0 * p.max(1e-10).log10()
        })
        .collect();
    let mut sorted = level.clone();
    sorted.sort_by(f32::total_cmp);
    let threshold = sorted[(frames * 7 / 10).min(frames - 1)] - below;
    let release = (-1.0f32 / 10.0).exp();
    let mut reduction = 0f32;
    for (t, &l) in level.iter().enumerate() {
        let want = (l - threshold).max(0.0) * (1.0 - 1.0 / ratio);
        // Instant attack, exponential release.
        reduction = if want > reduction { want } else { want + (reduction - want) * release };
        for b in 0..bands {
            let x = &mut feats[b * frames + t];
            *x = (*x - reduction).max(FLOOR_DB);
        }
    }
}

/// The network's input scaling of dB features.
pub fn normalise(db: f32) -> f32 {
    (db + 50.0) / 25.0
}

/// Read a WAV/FLAC/... file as the student's features (for scoring outside a workspace).
pub fn file_features(path: &std::path::Path, frames: usize) -> Result<Vec<f32>> {
    let samples = crate::audio::decode::load_mono_16k(path).with_context(|| format!("reading {}", path.display()))?;
    let mut spec = MelSpectrogrammer::new(spec_config());
    Ok(log_mel(&mut spec, &samples, frames))
}

#[cfg(test)]
mod tests {
    #[test]
    fn band_limiting_cuts_the_top_and_bottom_and_keeps_the_middle() {
        let frames = 4;
        let n = spec_config().n_mels;
        let mut f = vec![-20.0f32; n * frames];
        band_limit(&mut f, frames, 300.0, 3_400.0);
        let centres = band_centres();
        let at = |hz: f32| centres.iter().position(|&c| c >= hz).unwrap();
        let (lo, mid, hi) = (f[0], f[at(1_000.0) * frames], f[(n - 1) * frames]);
        assert!(lo < -35.0, "the lowest band is cut: {lo}");
        assert!((mid + 20.0).abs() < 0.1, "1 kHz passes: {mid}");
        assert!(hi < -45.0, "the top band (~7.8 kHz, 29 dB down at 8th-power roll-off) is cut: {hi}");
        // Monotone above the pass band.
        let top: Vec<f32> = (at(4_000.0)..n).map(|b| f[b * frames]).collect();
        assert!(top.windows(2).all(|w| w[1] <= w[0] + 1e-4), "{top:?}");
        // Full band without a low cut changes (almost) nothing below 6 kHz.
        let mut g = vec![-20.0f32; n * frames];
        band_limit(&mut g, frames, 0.0, 8_000.0);
        assert!((g[at(6_000.0) * frames] + 20.0).abs() < 0.7);
    }

    #[test]
    fn compression_reduces_loud_frames_and_leaves_quiet_ones() {
        let (frames, bands) = (40, 3);
        // 30 quiet frames at -40 dB, then 10 loud ones at -10 dB, then back.
        let level = |t: usize| if (20..30).contains(&t) { -10.0 } else { -40.0 };
        let mut f: Vec<f32> = (0..bands).flat_map(|_| (0..frames).map(level)).collect();
        compress(&mut f, frames, 0.0, 4.0);
        // The 70th percentile is the quiet level: loud frames lose (30 dB)·(1 − 1/4) = 22.5 dB.
        assert!((f[25] - (-10.0 - 22.5)).abs() < 1e-3, "{}", f[25]);
        assert!((f[5] + 40.0).abs() < 1e-4, "quiet frames before are untouched: {}", f[5]);
        // Release: the frame after the loud part is still reduced, less so later.
        assert!(f[30] < -40.0 - 10.0 && f[39] > f[30], "{} {}", f[30], f[39]);
        // Every band of a frame gets the same reduction.
        assert_eq!(f[25], f[frames + 25]);
        // Ratio 1 changes nothing.
        let mut g: Vec<f32> = (0..frames).map(level).collect();
        let before = g.clone();
        compress(&mut g, frames, 0.0, 1.0);
        assert_eq!(g, before);
    }

    use super::*;

    #[test]
    fn sources_parse_with_weights_and_refuse_nonsense() {
        let s = parse_sources("gold, builtin_pseudo:0.5").unwrap();
        assert_eq!(s[0], SourceSpec { source: "gold".into(), weight: 1.0 });
        assert_eq!(s[1], SourceSpec { source: "builtin_pseudo".into(), weight: 0.5 });
        assert!(parse_sources("").is_err());
        assert!(parse_sources("gold:-1").is_err());
        assert!(parse_sources("gold,gold").is_err());
        // A colon in a source name that is not a weight stays part of the name.
        assert_eq!(parse_sources("student:x_pseudo").unwrap()[0].source, "student:x_pseudo");
    }

    #[test]
    fn log_mel_tiles_short_clips_and_crops_long_ones() {
        let mut spec = MelSpectrogrammer::new(spec_config());
        let x: Vec<f32> = (0..8000).map(|i| (i as f32 * 0.1).sin() * 0.3).collect();
        let n = frames_for(x.len());
        let f = log_mel(&mut spec, &x, 2 * n);
        assert_eq!(f.len(), N_MELS * 2 * n);
        for m in [0, 10, 63] {
            assert_eq!(f[m * 2 * n + 3], f[m * 2 * n + n + 3]);
        }
        assert_eq!(log_mel(&mut spec, &x, 10).len(), N_MELS * 10);
    }

    #[test]
    fn augmentation_is_seeded_and_noise_lowers_snr() {
        let frames = 50;
        let feats: Vec<f32> = (0..N_MELS * frames).map(|i| -40.0 + (i % 7) as f32).collect();
        let noise = vec![-20.0; feats.len()];
        let aug = Augment { noise_prob: 1.0, snr_db: (0.0, 0.0), ..Augment::none() };
        let (mut a, mut b) = (feats.clone(), feats.clone());
        augment(&mut a, frames, &aug, Some(&noise), &mut Rng::new(3));
        augment(&mut b, frames, &aug, Some(&noise), &mut Rng::new(3));
        assert_eq!(a, b);
        // At 0 dB SNR the mixture has twice the power: +3 dB on average.
        let gain = 10.0 * (mean_power(&a) / mean_power(&feats)).log10();
        assert!((gain - 3.01).abs() < 0.05, "{gain}");
    }

    #[test]
    fn pos_weight_is_negatives_over_positives() {
        let ex = |t: [f32; 3]| Example { segment_id: 0, feats: vec![], target: t, weight: 1.0 };
        let ds = Dataset {
            train: vec![ex([1.0, 0.0, 0.0]), ex([1.0, 1.0, 0.0]), ex([0.0, 0.0, 0.0]), ex([1.0, 0.0, 0.0])],
            ..Default::default()
        };
        assert_eq!(ds.pos_weight(), [1.0 / 3.0, 3.0, 1.0]);
    }
}

#[cfg(test)]
mod targets_tests {
    use super::*;
    use crate::labels::LabelSource;
    use crate::store::NewSegment;

    fn seg(path: &str, split: Split) -> NewSegment {
        NewSegment {
            segment_path: path.into(),
            raw_file: "show.wav".into(),
            start_time: 0.0,
            end_time: 10.0,
            split,
            label_source: LabelSource::none(),
            labels: None,
            scores: [None; 3],
            extra: None,
        }
    }

    /// Hard, soft and confidence-weighted targets from one pseudo-label run with stored scores; dev never trains.
    #[test]
    fn soft_targets_and_confidence_weights_come_from_stored_scores() {
        let mut store = Store::open_in_memory().unwrap();
        store
            .upsert_segments(&[seg("a.wav", Split::Train), seg("b.wav", Split::Train), seg("c.wav", Split::Dev)])
            .unwrap();
        let ids = store.segment_ids_by_path().unwrap();
        let (a, b, c) = (ids["a.wav"], ids["b.wav"], ids["c.wav"]);
        let src = LabelSource::from_raw("label_model_pseudo");
        let run = store.create_pseudo_run(&src, "{}").unwrap();
        let rows = vec![
            (a, LabelSet::new(true, false, false), [0.9, 0.2, 0.5]),
            (b, LabelSet::new(false, true, true), [0.1, 1.0, 0.6]),
            (c, LabelSet::new(true, true, true), [1.0, 1.0, 1.0]),
        ];
        store.put_pseudo_labels(run, &rows).unwrap();
        let sources = [SourceSpec { source: src.to_string(), weight: 0.5 }];
        let hard = training_targets(&store, &sources, Targets::default()).unwrap();
        assert_eq!(hard.len(), 2, "dev is never a training target");
        assert_eq!(hard[&a], ([1.0, 0.0, 0.0], 0.5));
        let soft = training_targets(&store, &sources, Targets { soft: true, confidence_weight: false }).unwrap();
        assert_eq!(soft[&b], ([0.1, 1.0, 0.6], 0.5));
        let both = training_targets(&store, &sources, Targets { soft: true, confidence_weight: true }).unwrap();
        // a: (|0.8| + |−0.6| + 0) / 3 = 0.4667, times 0.5
        assert!((both[&a].1 - 0.5 * 1.4 / 3.0).abs() < 1e-6, "{:?}", both[&a]);
        assert!((both[&b].1 - 0.5 * (0.8 + 1.0 + 0.2) / 3.0).abs() < 1e-6, "{:?}", both[&b]);
        assert_eq!(confidence(&[0.5; 3]), 0.0);
    }
}
