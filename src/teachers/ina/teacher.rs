//! The INA model on a burn device, as a dams teacher and as a segmenter of long recordings.

use std::path::Path;

use burn::tensor::{Tensor, TensorData};

use super::features::{FRAME_LEN, Features, Frontend, N_MELS, N_MELS_USED, PATCH_FRAMES, PATCH_LEN, PATCH_STEP};
use super::model::{InaCnn, Window};
use super::weights::{self, Weights};
use super::{Analysis, ID, InaError, Segment, VERSION, features, viterbi};
use crate::engine::{DeviceChoice, Engine};
use crate::teachers::{Teacher, TeacherError, TeacherOutput};

/// Windows per forward pass on the CPU.
const CPU_BATCH: usize = 256;
/// On wgpu the largest buffer of a batch must fit one storage binding ([`Engine::batch_for`]): about 300 KB per
/// window (the im2col matrices of convolutions 2 and 3: 98 × 576 and 60 × 1152 f32), so 128 MiB (lavapipe, and
/// wgpu's default) holds about 380 windows; a real GPU's larger limit allows up to this cap.
const GPU_BYTES_PER_WINDOW: u64 = 320 * 1024;
const GPU_BATCH_CAP: usize = 2048;

/// The kind of [`InaTeacher::embedding`]'s vectors in a workspace's embedding cache (`v1`: mean, std, posteriors,
/// energetic share), under the weights' checksum; scoring fills it ([`Teacher::take_embeddings`]).
pub const EMBEDDING_KIND: &str = "ina-pooled-v1";

/// The INA speech/music/noise model, loaded on a device.
///
/// As a [`Teacher`] it analyses each segment on its own (as inaSpeechSegmenter run on that clip would: the energy
/// threshold is relative to the segment's mean log-energy) and scores each class by the **mean CNN posterior over
/// the segment's energetic 20 ms patches** ([`Analysis::scores`]; 0 for all classes when nothing is energetic).
/// The three scores sum to 1 (or 0), so they are not independent probabilities: the default threshold is 0.1 per
/// class ([`Teacher::default_thresholds`]), where a class that INA's exclusive labels hide under speech is still
/// found. [`Analysis::fractions`] (the share of patches INA *labels* with each class) is the alternative
/// `docs/ina.md` compares it with. [`TeacherOutput::raw`] holds the raw output (vocabulary `ina-patch-posteriors`): the CNN's posteriors per patch,
/// `[speech, music, noise]` × patches, flattened (zeros for `noEnergy` patches, 0.5 for non-finite ones, see
/// [`Analysis::posteriors`]).
pub struct InaTeacher {
    model: InaCnn,
    engine: Engine,
    frontend: Frontend,
    checksum: String,
    batch: usize,
    /// Embeddings of the last scored batch, for the workspace's cache.
    last_embeddings: Vec<Vec<f32>>,
}

impl std::fmt::Debug for InaTeacher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InaTeacher").field("device", &self.engine.description).finish()
    }
}

/// Open the embedded INA model on `device` (`auto`, `cpu` or `gpu`).
pub fn open_embedded(device: &str) -> Result<InaTeacher, TeacherError> {
    let choice: DeviceChoice = device.parse().map_err(|detail| TeacherError::Input { id: ID.into(), detail })?;
    let engine = Engine::select(choice).map_err(|detail| TeacherError::Input { id: ID.into(), detail })?;
    InaTeacher::open(engine).map_err(|e| TeacherError::Weights { id: ID.into(), detail: e.to_string() })
}

/// Decode `path` (any format dams reads; resampled to 16 kHz mono) and segment it with the embedded model on
/// `device`: INA's analysis of the whole recording (see [`Analysis::segments`] for the time-stamped segments).
pub fn segment_file(path: &Path, device: &str) -> Result<Analysis, TeacherError> {
    let t = open_embedded(device)?;
    t.analyze_file(path).map_err(|e| TeacherError::Input { id: ID.into(), detail: e.to_string() })
}

impl InaTeacher {
    /// The embedded weights (checked against their SHA-256) on `engine`'s device.
    pub fn open(engine: Engine) -> Result<InaTeacher, InaError> {
        Self::from_bytes(weights::EMBEDDED, weights::expected_sha256(), engine)
    }

    /// Weights from a safetensors image written by `tools/ina/convert_weights.py`, which must hash to `sha256`.
    pub fn from_bytes(bytes: &[u8], sha256: &str, engine: Engine) -> Result<InaTeacher, InaError> {
        let mut w = Weights::parse_checked(bytes, sha256)?;
        match w.metadata().get("format").map(String::as_str) {
            Some(weights::FORMAT) => {}
            other => {
                return Err(InaError::Weights(format!(
                    "metadata format {other:?}, expected '{}' (not written by tools/ina/convert_weights.py?)",
                    weights::FORMAT
                )));
            }
        }
        let model = InaCnn::load(&mut w, &engine.device)?;
        let batch = engine.batch_for(CPU_BATCH, GPU_BYTES_PER_WINDOW, GPU_BATCH_CAP);
        Ok(InaTeacher {
            model,
            engine,
            frontend: Frontend::new(),
            checksum: format!("sha256:{}", sha256.trim().to_ascii_lowercase()),
            batch,
            last_embeddings: Vec::new(),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The network.
    pub fn model(&self) -> &InaCnn {
        &self.model
    }

    /// Patches per forward pass.
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// The front end's output for 16 kHz mono samples (16-bit scale: PCM / 32768). Refuses non-finite samples and
    /// inputs shorter than one 25 ms frame.
    pub fn features(&self, samples: &[f32]) -> Result<Features, InaError> {
        if let Some(i) = samples.iter().position(|v| !v.is_finite()) {
            return Err(InaError::Input(format!("sample {i} is not finite")));
        }
        if samples.len() < FRAME_LEN {
            return Err(InaError::Input(format!(
                "{} samples: INA needs at least {FRAME_LEN} (25 ms at 16 kHz)",
                samples.len()
            )));
        }
        Ok(self.frontend.compute(samples))
    }

    /// The CNN's posteriors for patches `which` of `mspec` (see [`features::patch_into`]), with whether each patch
    /// is finite; non-finite patches get `[0.5; 3]` as in INA. Runs [`InaCnn::forward_windows`]: the first layer
    /// once per frame, each distinct window once (edge patches repeat the first and last windows).
    pub fn posteriors(&self, mspec: &[[f32; N_MELS]], which: &[usize]) -> Result<(Vec<[f32; 3]>, Vec<bool>), InaError> {
        let (v, finite) = self.patch_outputs(mspec, which, false)?;
        let post =
            v.chunks_exact(3).zip(&finite).map(|(p, &ok)| if ok { [p[0], p[1], p[2]] } else { [0.5; 3] }).collect();
        Ok((post, finite))
    }

    /// Per requested patch the network's outputs, flattened: the 3 posteriors, or with `hidden` the last dense
    /// layer's 256 activations followed by the posteriors ([`InaCnn::forward_windows_hidden`]); non-finite patches
    /// hold whatever the network gave and are flagged `false`.
    fn patch_outputs(
        &self,
        mspec: &[[f32; N_MELS]],
        which: &[usize],
        hidden: bool,
    ) -> Result<(Vec<f32>, Vec<bool>), InaError> {
        let width = if hidden { InaCnn::HIDDEN + 3 } else { 3 };
        let source = features::patch_source(mspec);
        let n = features::num_patches(mspec.len());
        if let Some(&p) = which.iter().find(|&&p| p >= n) {
            return Err(InaError::Input(format!("patch {p} of {n}")));
        }
        // Distinct windows in order of first use, and which one each requested patch reads.
        let mut windows: Vec<Window> = Vec::new();
        let mut slot = Vec::with_capacity(which.len());
        let mut index = std::collections::HashMap::new();
        for &p in which {
            let start = features::patch_window(p, source.len()) * PATCH_STEP;
            let k = *index.entry(start).or_insert_with(|| {
                windows.push(Window { start, stats: features::window_stats(&source, start) });
                windows.len() - 1
            });
            slot.push(k);
        }
        // Chunks: at most `batch` windows spanning few enough frames (a gap of silence starts a new chunk).
        let max_span = 4 * self.batch * PATCH_STEP + PATCH_FRAMES;
        let mut chunks = Vec::new();
        let mut i = 0;
        while i < windows.len() {
            let first = windows[i].start;
            let mut j = i + 1;
            while j < windows.len()
                && j - i < self.batch
                && windows[j].start >= first
                && windows[j].start + PATCH_FRAMES - first <= max_span
            {
                j += 1;
            }
            chunks.push(i..j);
            i = j;
        }
        let run = |r: &std::ops::Range<usize>| -> Result<Vec<f32>, InaError> {
            let y = if hidden {
                self.model.forward_windows_hidden(&source, &windows[r.clone()])
            } else {
                self.model.forward_windows(&source, &windows[r.clone()])
            };
            let data = y.try_into_data().map_err(|e| InaError::Run(format!("the device failed: {e:?}")))?;
            data.try_into_vec::<f32>().map_err(|e| InaError::Run(format!("reading posteriors: {e:?}")))
        };
        // On the CPU, chunks run on all cores (burn-flex runs one chunk's layers mostly on one); a GPU queues them.
        let outs: Vec<Vec<f32>> = if self.engine.gpu || chunks.len() < 2 {
            chunks.iter().map(run).collect::<Result<_, _>>()?
        } else {
            use rayon::prelude::*;
            chunks.par_iter().map(run).collect::<Result<_, _>>()?
        };
        let per_window: Vec<f32> = outs.concat();
        let mut out = Vec::with_capacity(slot.len() * width);
        for &k in &slot {
            out.extend_from_slice(&per_window[k * width..(k + 1) * width]);
        }
        let finite = slot.iter().map(|&k| windows[k].stats.is_some()).collect();
        Ok((out, finite))
    }

    /// Width of [`embedding`](Self::embedding).
    pub const EMBEDDING_DIM: usize = 2 * InaCnn::HIDDEN + 4;

    /// A fixed-size description of a segment by the frozen network, for a student head: over the energetic, finite
    /// patches (as the teacher's score), the mean and the standard deviation of the last dense layer's 256
    /// activations, the mean posteriors (speech, music, noise: the teacher's own scores) and the share of patches
    /// that are energetic — 516 values. A segment without energetic patches gives zeros.
    pub fn embedding(&self, samples: &[f32]) -> Result<Vec<f32>, InaError> {
        Ok(self.analyze_with_embedding(samples)?.1)
    }

    /// INA's [analysis](Self::analyze) and the [embedding](Self::embedding) of the same samples from one pass of the
    /// network (the analysis is the one [`analyze`](Self::analyze) gives: the posteriors are the same layers' output).
    pub fn analyze_with_embedding(&self, samples: &[f32]) -> Result<(Analysis, Vec<f32>), InaError> {
        let f = self.features(samples)?;
        let n = features::num_patches(f.frames());
        let energy: Vec<bool> = viterbi::energy_activity(&f.loge).into_iter().step_by(2).collect();
        let which: Vec<usize> = (0..n).filter(|&p| energy[p]).collect();
        const H: usize = InaCnn::HIDDEN;
        let (v, fin) =
            if which.is_empty() { (Vec::new(), Vec::new()) } else { self.patch_outputs(&f.mspec, &which, true)? };
        let mut posteriors = vec![[0f32; 3]; n];
        let mut finite = vec![true; n];
        let mut sum = vec![0f64; H + 3];
        let mut sq = vec![0f64; H];
        let mut count = 0usize;
        for ((&p, row), &ok) in which.iter().zip(v.chunks_exact(H + 3)).zip(&fin) {
            // As `posteriors`: a patch that is not finite gets [0.5; 3] and stays out of the pooled description.
            posteriors[p] = if ok { [row[H], row[H + 1], row[H + 2]] } else { [0.5; 3] };
            finite[p] = ok;
            if ok {
                count += 1;
                for (k, &x) in row.iter().enumerate() {
                    sum[k] += x as f64;
                    if k < H {
                        sq[k] += x as f64 * x as f64;
                    }
                }
            }
        }
        let mut e = vec![0f32; Self::EMBEDDING_DIM];
        if count > 0 {
            let c = count as f64;
            for k in 0..H {
                let m = sum[k] / c;
                e[k] = m as f32;
                e[H + k] = (sq[k] / c - m * m).max(0.0).sqrt() as f32;
            }
            for k in 0..3 {
                e[2 * H + k] = (sum[H + k] / c) as f32;
            }
        }
        e[2 * H + 3] = which.len() as f32 / n.max(1) as f32;
        Ok((Analysis::from_parts(f.frames(), energy, finite, posteriors), e))
    }

    /// [`posteriors`](Self::posteriors) the plain way, each patch normalised and run through the whole network
    /// ([`InaCnn::forward`]): the reference the shared path is checked against.
    pub fn posteriors_per_patch(
        &self,
        mspec: &[[f32; N_MELS]],
        which: &[usize],
    ) -> Result<(Vec<[f32; 3]>, Vec<bool>), InaError> {
        let source = features::patch_source(mspec);
        let n = features::num_patches(mspec.len());
        if let Some(&p) = which.iter().find(|&&p| p >= n) {
            return Err(InaError::Input(format!("patch {p} of {n}")));
        }
        let mut post = Vec::with_capacity(which.len());
        let mut finite = Vec::with_capacity(which.len());
        let mut buf = Vec::new();
        for chunk in which.chunks(self.batch) {
            buf.clear();
            buf.resize(chunk.len() * PATCH_LEN, 0.0);
            let start = finite.len();
            for (&p, out) in chunk.iter().zip(buf.chunks_exact_mut(PATCH_LEN)) {
                finite.push(features::patch_into(&source, p, out));
            }
            let x = Tensor::<3>::from_data(
                TensorData::new(std::mem::take(&mut buf), [chunk.len(), PATCH_FRAMES, N_MELS_USED]),
                &self.engine.device,
            );
            let y = self.model.forward(x);
            let data = y.try_into_data().map_err(|e| InaError::Run(format!("the device failed: {e:?}")))?;
            let v: Vec<f32> =
                data.try_into_vec::<f32>().map_err(|e| InaError::Run(format!("reading posteriors: {e:?}")))?;
            for (k, r) in v.chunks_exact(3).enumerate() {
                post.push(if finite[start + k] { [r[0], r[1], r[2]] } else { [0.5; 3] });
            }
            buf = Vec::with_capacity(self.batch.min(which.len()) * PATCH_LEN);
        }
        Ok((post, finite))
    }

    /// INA's analysis of features: energy activity, posteriors of the energetic patches, smoothing.
    pub fn analyze_features(&self, f: &Features) -> Result<Analysis, InaError> {
        let n = features::num_patches(f.frames());
        let energy: Vec<bool> = viterbi::energy_activity(&f.loge).into_iter().step_by(2).collect();
        debug_assert_eq!(energy.len(), n);
        let which: Vec<usize> = (0..n).filter(|&p| energy[p]).collect();
        let (post, fin) = self.posteriors(&f.mspec, &which)?;
        let mut posteriors = vec![[0f32; 3]; n];
        // Finiteness of unclassified patches does not matter to INA; computed for the record.
        let mut finite = vec![true; n];
        for ((&p, q), ok) in which.iter().zip(post).zip(fin) {
            posteriors[p] = q;
            finite[p] = ok;
        }
        Ok(Analysis::from_parts(f.frames(), energy, finite, posteriors))
    }

    /// INA's analysis of 16 kHz mono samples.
    pub fn analyze(&self, samples: &[f32]) -> Result<Analysis, InaError> {
        let f = self.features(samples)?;
        self.analyze_features(&f)
    }

    /// INA's segmentation of 16 kHz mono samples.
    pub fn segment(&self, samples: &[f32]) -> Result<Vec<Segment>, InaError> {
        Ok(self.analyze(samples)?.segments())
    }

    /// Decode (any format dams reads, resampled to 16 kHz mono) and analyse a whole recording.
    pub fn analyze_file(&self, path: &Path) -> Result<Analysis, InaError> {
        let samples = crate::audio::decode::load_mono_16k(path).map_err(|e| InaError::Input(e.to_string()))?;
        self.analyze(&samples)
    }
}

impl Teacher for InaTeacher {
    fn id(&self) -> &str {
        ID
    }
    fn version(&self) -> String {
        VERSION.into()
    }
    fn checksum(&self) -> &str {
        &self.checksum
    }
    fn raw_vocab(&self) -> Option<&'static str> {
        Some(crate::teachers::raw::INA_PATCH_POSTERIORS)
    }
    fn settings_json(&self) -> String {
        serde_json::json!({"device": if self.engine.gpu { "gpu" } else { "cpu" }, "score": "mean_posterior"})
            .to_string()
    }
    fn batch_size(&self) -> usize {
        8
    }
    fn default_thresholds(&self) -> Option<[f64; 3]> {
        Some([0.1; 3])
    }
    fn notice(&self) -> Option<String> {
        self.engine.notice.clone()
    }
    /// Scores, and on the way each segment's [embedding](InaTeacher::embedding) for the workspace's cache (the same
    /// network pass): an `ina-head` student trained or scored later on these segments does not run INA again.
    fn score_batch(&mut self, segments: &[&[f32]]) -> Result<Vec<TeacherOutput>, TeacherError> {
        let mut embeddings = Vec::with_capacity(segments.len());
        let outs = segments
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (a, e) = self
                    .analyze_with_embedding(s)
                    .map_err(|e| TeacherError::Input { id: ID.into(), detail: format!("segment {i}: {e}") })?;
                embeddings.push(e);
                let raw: Vec<f32> = a.posteriors.iter().flat_map(|p| p.iter().copied()).collect();
                Ok(TeacherOutput { scores: a.scores(), raw: Some(raw) })
            })
            .collect::<Result<Vec<_>, TeacherError>>()?;
        self.last_embeddings = embeddings;
        Ok(outs)
    }
    fn take_embeddings(&mut self) -> Option<(String, &'static str, Vec<Vec<f32>>)> {
        Some((self.checksum.clone(), EMBEDDING_KIND, std::mem::take(&mut self.last_embeddings)))
    }
}
