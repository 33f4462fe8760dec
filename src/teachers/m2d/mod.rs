//! M2D-CLAP (nttcslab/m2d, `portable_m2d.py`): the Python project's fourth teacher, zero-shot, ported to burn.
//!
//! The Python project (`apply_m2d.py`) runs `m2d_clap_vit_base-80x1001p16x16p16kpBpTI-2025/checkpoint-30.pth`: each
//! 10 s segment → M2D log-mel ([`features`]) → ViT-B patch tokens → the 2025 semantic projector → an audio
//! embedding; each of three prompts → BERT-base (weights in the checkpoint) → [CLS] → `text_proj`; the scores are
//! the raw cosine similarities of the L2-normalised embeddings (range −1…1), thresholds 0.24 / 0.26 / 0.24 (`>=`),
//! label source `m2d_zero_shot`.
//!
//! [`config`] reads the sizes from the checkpoint's shapes and checks its keys; [`model`] is the network;
//! [`text`] the WordPiece tokenizer; [`install`] the checkpoint folder. Text embeddings are computed once, when the
//! teacher opens. The run's raw output per segment is the three cosines (scores are those, clamped into [0, 1] by
//! the scoring pipeline). Docs: `docs/m2d.md`.

pub mod config;
pub mod features;
pub mod install;
#[cfg(feature = "burn")]
pub mod model;
#[cfg(feature = "burn")]
pub mod text;

#[cfg(feature = "burn")]
pub use teacher::M2dTeacher;

/// Why an M2D-CLAP checkpoint cannot be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum M2dError {
    #[error("M2D-CLAP checkpoint: {0}")]
    Config(String),
    #[error("M2D-CLAP weights: {0}")]
    Weights(String),
    #[error("M2D-CLAP tokenizer: {0}")]
    Tokenizer(String),
    #[error("M2D-CLAP: {0}")]
    Run(String),
}

impl From<crate::teachers::weights::WeightsError> for M2dError {
    fn from(e: crate::teachers::weights::WeightsError) -> Self {
        M2dError::Weights(e.0)
    }
}

/// The teacher id.
pub const ID: &str = "m2d";
/// The Python project's label source.
pub const LABEL_SOURCE: &str = "m2d_zero_shot";
/// The vocabulary of the raw output: one cosine per prompt, in [`PROMPTS`] order.
pub const RAW_VOCAB: &str = "m2d-prompt-cosines";
/// The Python project's thresholds (`>=`) on the raw cosines: speech, music, noise.
pub const THRESHOLDS: [f64; 3] = [0.24, 0.26, 0.24];
/// The Python project's prompts (`apply_m2d.py`): speech, music, noise.
pub const PROMPTS: [&str; 3] = [
    "Human speech: talking, conversation, announcer, DJ, interview, narration. Includes breath sounds, laughter, \
     sighs, coughs, lip noises. Clear vocal formants, not singing.",
    "Music: instruments, melody, rhythm, harmony, beat patterns. Includes singing, rap, humming, whistling, and \
     background music beds. Musical structure, not ordinary speech.",
    "Noise: environmental and mechanical sound such as static, rumble, wind, traffic, crowd murmur, microphone hiss. \
     Background sound without clear words or melody.",
];

/// M2D-CLAP's registration (see [`crate::catalog`]).
pub const DESCRIPTOR: crate::teachers::TeacherDescriptor = crate::teachers::TeacherDescriptor {
    id: ID,
    family: false,
    description: "M2D-CLAP (nttcslab/m2d 2025, ViT-B + semantic projector, BERT-base): zero-shot, raw cosines \
                  against the Python project's three prompts",
    label_source: Some(LABEL_SOURCE),
    zero_shot: true,
    raw_vocab: Some(RAW_VOCAB),
    devices: &["cpu", "gpu", "gpu:software", "ndarray"],
    options: &[],
    install: Some(install::INSTALL),
    state: |ctx| match install::installed(&ctx.model_cache) {
        Some(r) => crate::teachers::InstallState::Installed(format!("sha256:{} from {}", r.sha256, r.source)),
        None => crate::teachers::InstallState::Missing(
            "dams teachers add m2d --from DIR   (DIR holding the release's checkpoint-30.pth and bert-base-uncased's \
             tokenizer.json)"
                .into(),
        ),
    },
    open: |_, ctx| load_installed(ctx),
    instances: None,
};

/// The L2-normalised vector (`F.normalize`: divided by max(‖x‖, 1e-12)).
pub fn normalized(x: &[f32]) -> Vec<f32> {
    let n = x.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>().sqrt().max(1e-12);
    x.iter().map(|v| (*v as f64 / n) as f32).collect()
}

/// Cosine of two embeddings (normalised first).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (a, b) = (normalized(a), normalized(b));
    a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum::<f64>() as f32
}

/// Open the installed M2D-CLAP with the device of `ctx`; both files verified against their install record first.
pub fn load_installed(
    ctx: &crate::teachers::OpenContext,
) -> Result<Box<dyn crate::teachers::Teacher>, crate::teachers::TeacherError> {
    use crate::teachers::TeacherError;
    let weights = |detail: String| TeacherError::Weights { id: ID.into(), detail };
    let input = |detail: String| TeacherError::Input { id: ID.into(), detail };
    let Some(checksum) = install::verified_checksum(&ctx.model_cache).map_err(|e| weights(e.to_string()))? else {
        return Err(TeacherError::NotInstalled {
            id: ID.into(),
            hint: "install it with `dams teachers add m2d --from DIR` (see docs/m2d.md)".into(),
        });
    };
    #[cfg(feature = "burn")]
    {
        let choice: crate::engine::DeviceChoice = ctx.device.parse().map_err(input)?;
        let engine = crate::engine::Engine::select(choice).map_err(input)?;
        let t = M2dTeacher::open(&install::install_dir(&ctx.model_cache), engine, Some(checksum))
            .map_err(|e| weights(e.to_string()))?;
        Ok(Box::new(t))
    }
    #[cfg(not(feature = "burn"))]
    {
        let _ = checksum;
        Err(input("this build of dams has no model engine (rebuild with the `burn` feature)".into()))
    }
}

#[cfg(feature = "burn")]
mod teacher {
    use std::path::Path;

    use burn::tensor::{Tensor, TensorData};

    use super::config::{M2dConfig, N_MELS};
    use super::features::LogMel;
    use super::model::M2dClap;
    use super::text::WordPiece;
    use super::{ID, M2dError, PROMPTS, install, normalized};
    use crate::engine::Engine;
    use crate::teachers::weights::layers::Loader;
    use crate::teachers::{Teacher, TeacherError, TeacherOutput};

    /// A loaded M2D-CLAP on a device, its prompt embeddings computed.
    pub struct M2dTeacher {
        model: M2dClap,
        engine: Engine,
        mel: LogMel,
        config: M2dConfig,
        norm_stats: [f32; 2],
        prompt_ids: Vec<Vec<u32>>,
        /// `text_proj` outputs per prompt (not normalised).
        text_emb: Vec<Vec<f32>>,
        checksum: String,
        batch: usize,
    }

    impl std::fmt::Debug for M2dTeacher {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("M2dTeacher")
                .field("version", &self.version())
                .field("device", &self.engine.description)
                .finish()
        }
    }

    fn read(t: Tensor<2>) -> Result<Vec<f32>, M2dError> {
        t.try_into_data()
            .map_err(|e| M2dError::Run(format!("the device failed: {e:?}")))?
            .try_to_vec::<f32>()
            .map_err(|e| M2dError::Run(format!("reading the device's output: {e:?}")))
    }

    impl M2dTeacher {
        /// Load `checkpoint-30.pth` + `tokenizer.json` from `dir` onto `engine`'s device and embed the prompts.
        pub fn open(dir: &Path, engine: Engine, checksum: Option<String>) -> Result<M2dTeacher, M2dError> {
            Self::open_files(&dir.join(install::PTH), &dir.join(install::TOKENIZER), engine, checksum)
        }

        pub fn open_files(
            pth: &Path,
            tokenizer: &Path,
            engine: Engine,
            checksum: Option<String>,
        ) -> Result<M2dTeacher, M2dError> {
            let (mut w, config) = install::open_checked(pth)?;
            let tok = WordPiece::open(tokenizer, config.bert.vocab, config.bert.positions)?;
            let stats = crate::teachers::weights::TensorSource::take(&mut w, "norm_stats", &[2])?;
            if stats[1].abs() < 1e-6 {
                return Err(M2dError::Weights(format!("{}: norm_stats std is {}", pth.display(), stats[1])));
            }
            let model = {
                let mut l = Loader { ckpt: &mut w, device: &engine.device };
                M2dClap::load(&config, &mut l)?
            };
            let cpu = std::env::var_os("DAMS_AST_BURN_OPS").is_none()
                && crate::engine::is_host_inference_device(&engine.device);
            let model = model.with_cpu_kernels(cpu);
            let checksum = match checksum {
                Some(c) => c,
                None => install::checksum_of(pth, tokenizer).map_err(|e| M2dError::Weights(e.to_string()))?,
            };
            let batch = if engine.gpu { 8 } else { 4 };
            let mut t = M2dTeacher {
                model,
                mel: LogMel::new(stats[0], stats[1]),
                engine,
                config,
                norm_stats: [stats[0], stats[1]],
                prompt_ids: Vec::new(),
                text_emb: Vec::new(),
                checksum,
                batch,
            };
            for p in PROMPTS {
                let ids = tok.ids(p)?;
                t.text_emb.push(t.embed_ids(&ids)?);
                t.prompt_ids.push(ids);
            }
            Ok(t)
        }

        /// Softmax and GELU on the CPU kernels (on by default on the CPU; ignored on a GPU).
        pub fn with_cpu_kernels(mut self, on: bool) -> Self {
            let on = on && crate::engine::is_host_inference_device(&self.engine.device);
            self.model = self.model.with_cpu_kernels(on);
            self
        }

        pub fn config(&self) -> &M2dConfig {
            &self.config
        }

        pub fn norm_stats(&self) -> [f32; 2] {
            self.norm_stats
        }

        pub fn engine(&self) -> &Engine {
            &self.engine
        }

        /// The prompts' token ids.
        pub fn prompt_ids(&self) -> &[Vec<u32>] {
            &self.prompt_ids
        }

        /// The prompts' embeddings (`text_proj` outputs), in [`PROMPTS`] order.
        pub fn text_embeddings(&self) -> &[Vec<f32>] {
            &self.text_emb
        }

        /// BERT's [CLS] state of token ids (before `text_proj`).
        pub fn text_cls(&self, ids: &[u32]) -> Result<Vec<f32>, M2dError> {
            self.check_ids(ids)?;
            read(self.model.text.cls(ids, &self.engine.device))
        }

        /// The text embedding (`text_proj` of [CLS]) of token ids.
        pub fn embed_ids(&self, ids: &[u32]) -> Result<Vec<f32>, M2dError> {
            self.check_ids(ids)?;
            read(self.model.text.project(self.model.text.cls(ids, &self.engine.device)))
        }

        fn check_ids(&self, ids: &[u32]) -> Result<(), M2dError> {
            let (vocab, positions) = self.model.text.limits();
            if ids.is_empty() || ids.len() > positions || ids.iter().any(|&i| i as usize >= vocab) {
                return Err(M2dError::Run(format!(
                    "{} token ids (1..={positions} ids below {vocab} expected)",
                    ids.len()
                )));
            }
            Ok(())
        }

        /// The encoder input of a batch: `[B, 80, 1001]`, row-major.
        pub fn features(&mut self, segments: &[&[f32]]) -> Vec<f32> {
            let mut x = Vec::with_capacity(N_MELS * LogMel::frames() * segments.len());
            for s in segments {
                x.extend(self.mel.features(s));
            }
            x
        }

        /// (patch tokens `[B, 310, d]` flattened, audio embeddings `[B][d]`) of precomputed features.
        pub fn run_features(&self, feats: Vec<f32>, batch: usize) -> Result<(Vec<f32>, Vec<Vec<f32>>), M2dError> {
            let frames = LogMel::frames();
            if feats.len() != batch * N_MELS * frames {
                return Err(M2dError::Run(format!(
                    "{} feature values for a batch of {batch} × 80 × {frames}",
                    feats.len()
                )));
            }
            if batch == 0 {
                return Ok((Vec::new(), Vec::new()));
            }
            let x = Tensor::<3>::from_data(TensorData::new(feats, [batch, N_MELS, frames]), &self.engine.device);
            let tokens = self.model.audio.tokens(x);
            let [b, n, d] = tokens.dims();
            let emb = read(self.model.audio.project(tokens.clone()))?;
            let tok = read(tokens.reshape([b * n, d]))?;
            Ok((tok, emb.chunks_exact(d).map(<[f32]>::to_vec).collect()))
        }

        /// Audio embeddings `[B][d]` of a batch of 16 kHz mono segments (padded or cut to 10 s).
        pub fn audio_embeddings(&mut self, segments: &[&[f32]]) -> Result<Vec<Vec<f32>>, M2dError> {
            if let Some(i) = segments.iter().position(|s| s.iter().any(|v| !v.is_finite())) {
                return Err(M2dError::Run(format!("segment {i} of the batch holds non-finite samples")));
            }
            let feats = self.features(segments);
            Ok(self.run_features(feats, segments.len())?.1)
        }

        /// The raw cosines `[B][3]` against the prompts.
        pub fn cosines(&mut self, segments: &[&[f32]]) -> Result<Vec<[f32; 3]>, M2dError> {
            let text: Vec<Vec<f32>> = self.text_emb.iter().map(|t| normalized(t)).collect();
            Ok(self
                .audio_embeddings(segments)?
                .into_iter()
                .map(|a| {
                    let a = normalized(&a);
                    let dot = |t: &Vec<f32>| a.iter().zip(t).map(|(x, y)| *x as f64 * *y as f64).sum::<f64>() as f32;
                    [dot(&text[0]), dot(&text[1]), dot(&text[2])]
                })
                .collect())
        }
    }

    impl Teacher for M2dTeacher {
        fn id(&self) -> &str {
            ID
        }
        fn version(&self) -> String {
            format!("portable_m2d port: {}", self.config.summary())
        }
        fn checksum(&self) -> &str {
            &self.checksum
        }
        fn zero_shot(&self) -> bool {
            true
        }
        fn raw_vocab(&self) -> Option<&'static str> {
            Some(super::RAW_VOCAB)
        }
        fn settings_json(&self) -> String {
            serde_json::json!({
                "device": if self.engine.gpu { "gpu" } else { "cpu" },
                "prompts": "python",
            })
            .to_string()
        }
        fn batch_size(&self) -> usize {
            self.batch
        }
        fn notice(&self) -> Option<String> {
            self.engine.notice.clone()
        }
        fn default_thresholds(&self) -> Option<[f64; 3]> {
            Some(super::THRESHOLDS)
        }
        fn label_source(&self) -> crate::labels::LabelSource {
            crate::labels::LabelSource::from_raw(super::LABEL_SOURCE)
        }
        fn score_batch(&mut self, segments: &[&[f32]]) -> Result<Vec<TeacherOutput>, TeacherError> {
            let cos =
                self.cosines(segments).map_err(|e| TeacherError::Input { id: ID.into(), detail: e.to_string() })?;
            Ok(cos.into_iter().map(|c| TeacherOutput { scores: c, raw: Some(c.to_vec()) }).collect())
        }
    }
}
