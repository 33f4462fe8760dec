//! CLAP (`laion/larger_clap_music_and_speech`), the Python project's zero-shot teacher, ported faithfully:
//! `config.json` ([`config`]), the 16 → 48 kHz torchaudio resampler and the feature extractor ([`features`]), HTSAT
//! and RoBERTa on burn ([`model`]), the checkpoint's own `tokenizer.json` ([`tokenizer`]), prompt sets
//! ([`prompts`]), scorings and the AudioText seed's domain adaptation ([`scoring`]), installed weights
//! ([`install`]).
//!
//! A run's raw output is one cosine similarity per prompt group ([`crate::teachers::raw::CLAP_PROMPT_SIMS`]), so a
//! different scoring is a `dams remap`; audio embeddings go to the workspace's embedding cache (kind
//! [`EMBEDDING_KIND`]), so different prompts re-score every embedded segment with the text tower only.

pub mod config;
pub mod features;
pub mod install;
#[cfg(feature = "burn")]
pub mod model;
pub mod prompts;
pub mod scoring;
#[cfg(feature = "burn")]
pub mod tokenizer;
pub mod workbench;

#[cfg(feature = "burn")]
pub use teacher::ClapTeacher;

use crate::teachers::weights::WeightsError;

/// Why a CLAP checkpoint cannot be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ClapError {
    #[error("CLAP config: {0}")]
    Config(String),
    #[error("CLAP weights: {0}")]
    Weights(String),
    #[error("CLAP tokenizer: {0}")]
    Tokenizer(String),
    #[error("CLAP: {0}")]
    Unsupported(String),
    #[error("CLAP: {0}")]
    Run(String),
}

impl From<WeightsError> for ClapError {
    fn from(e: WeightsError) -> Self {
        ClapError::Weights(e.0)
    }
}

/// The teacher id.
pub const ID: &str = "clap";
/// The published checkpoint the Python project uses.
pub const HF_REPO: &str = "laion/larger_clap_music_and_speech";
/// The Python project's thresholds for CLAP's softmax scores (speech, music, noise).
pub const PYTHON_THRESHOLDS: [f64; 3] = [0.45, 0.35, 0.35];
/// The embedding cache kind of CLAP audio embeddings (projected, L2-normalised).
pub const EMBEDDING_KIND: &str = "clap-audio";

/// CLAP's registration (see [`crate::catalog`]).
pub const DESCRIPTOR: crate::teachers::TeacherDescriptor = crate::teachers::TeacherDescriptor {
    id: ID,
    family: false,
    description: "CLAP zero-shot (laion/larger_clap_music_and_speech: HTSAT + RoBERTa), prompts from prompts.toml",
    label_source: Some("clap_zero_shot"),
    zero_shot: true,
    raw_vocab: Some(crate::teachers::raw::CLAP_PROMPT_SIMS),
    devices: &["cpu", "gpu", "gpu:software"],
    options: &[
        crate::teachers::OptionSpec {
            name: "scoring",
            default: "softmax",
            help: "softmax: over the three class prompts (the Python pipeline, scores sum to 1); pairwise: each class \
               against its negative prompt(s) (multi-label); cosine: (cos+1)/2 per class, for per-class thresholds. \
               Re-score a finished run with `dams remap --run ID --option scoring=S`",
            choices: &["softmax", "pairwise", "cosine"],
        },
        crate::teachers::OptionSpec {
            name: "prompts",
            default: prompts::DEFAULT_SET,
            help: "the prompt set (a [sets.NAME] of the workspace's prompts.toml; `python` is built in: the Python \
               project's three prompts)",
            choices: &[],
        },
        crate::teachers::OptionSpec {
            name: "adapt",
            default: "none",
            help: "AudioText domain adaptation from the workspace's own cached embeddings (score with adapt=none \
               first): tgap = text-guided audio prototypes (top 35 segments per class), background = subtract τ·B, \
               the profile of the segments marked as background in prompts.toml",
            choices: &["none", "tgap", "background", "tgap+background"],
        },
        crate::teachers::OptionSpec {
            name: "tau",
            default: "0.5",
            help: "τ of the background subtraction S' = S − τ·B (adapt=background)",
            choices: &[],
        },
    ],
    install: Some(install::INSTALL),
    state: |ctx| match install::installed(&ctx.model_cache) {
        Some(r) => crate::teachers::InstallState::Installed(format!("sha256:{} from {}", r.sha256, r.source)),
        None => crate::teachers::InstallState::Missing(
            "dams teachers pull clap   (or: dams teachers add clap --from DIR)".into(),
        ),
    },
    open: |_, ctx| load_installed(ctx),
    instances: None,
};

/// Open the installed CLAP with the device, scoring and prompt set of `ctx` (prompt sets are read from the
/// workspace folder, the parent of its `data/models`).
pub fn load_installed(
    ctx: &crate::teachers::OpenContext,
) -> Result<Box<dyn crate::teachers::Teacher>, crate::teachers::TeacherError> {
    use crate::teachers::TeacherError;
    let weights = |detail: String| TeacherError::Weights { id: ID.into(), detail };
    let input = |detail: String| TeacherError::Input { id: ID.into(), detail };
    let Some(rec) = crate::teachers::weights::install::verified(ID, &install::INSTALL, &ctx.model_cache)
        .map_err(|e| weights(e.0))?
    else {
        return Err(TeacherError::NotInstalled {
            id: ID.into(),
            hint: "install it with `dams teachers pull clap` (or `dams teachers add clap --from DIR`)".into(),
        });
    };
    let scoring: scoring::Scoring = ctx.options.get("scoring").parse().map_err(input)?;
    let set_name = match ctx.options.get("prompts") {
        "" => prompts::DEFAULT_SET,
        s => s,
    };
    let ws_root = ctx.models_dir.as_ref().and_then(|m| m.parent()).and_then(|d| d.parent());
    let file = match ws_root {
        Some(r) => prompts::PromptFile::load(r).map_err(input)?,
        None => prompts::PromptFile::default(),
    };
    let set = file.get(set_name).map_err(input)?;
    let adapt = workbench::Adapt::parse(ctx.options.get("adapt")).map_err(input)?;
    let tau: f32 = match ctx.options.get("tau") {
        "" => 0.5,
        t => t
            .parse()
            .ok()
            .filter(|v: &f32| v.is_finite() && (0.0..=10.0).contains(v))
            .ok_or_else(|| input(format!("tau={t}: expected a number between 0 and 10")))?,
    };
    #[cfg(feature = "burn")]
    {
        let choice: crate::engine::DeviceChoice = ctx.device.parse().map_err(input)?;
        let engine = crate::engine::Engine::select(choice).map_err(input)?;
        let t =
            ClapTeacher::open(&install::install_dir(&ctx.model_cache), engine, Some(format!("sha256:{}", rec.sha256)))
                .map_err(|e| weights(e.to_string()))?
                .with_prompts(set_name, &set)
                .and_then(|t| t.with_scoring(scoring))
                .map_err(|e| input(e.to_string()))?
                .with_adaptation(adapt, tau, file.background.clone());
        Ok(Box::new(t))
    }
    #[cfg(not(feature = "burn"))]
    {
        let _ = (rec, scoring, set, adapt, tau);
        Err(input("this build of dams has no model engine (rebuild with the `burn` feature)".into()))
    }
}

#[cfg(feature = "burn")]
mod teacher {
    use std::collections::HashMap;
    use std::path::Path;

    use burn::tensor::Tensor;

    use super::config::{ClapConfig, FrontConfig};
    use super::features::{MelFrontEnd, SincResampler};
    use super::model::ClapModel;
    use super::prompts::PromptSet;
    use super::scoring::{self, Scoring};
    use super::tokenizer::ClapTokenizer;
    use super::{ClapError, EMBEDDING_KIND, ID};
    use crate::engine::Engine;
    use crate::teachers::weights::safetensors::Checkpoint;
    use crate::teachers::{Teacher, TeacherError, TeacherOutput};

    /// A loaded CLAP checkpoint on a device, with a prompt set's anchors.
    pub struct ClapTeacher {
        model: ClapModel,
        engine: Engine,
        tokenizer: ClapTokenizer,
        resampler: SincResampler,
        front: MelFrontEnd,
        cfg: ClapConfig,
        checksum: String,
        version: String,
        batch: usize,
        scoring: Scoring,
        set_name: String,
        set: PromptSet,
        /// Group anchors (L2-normalised mean of the group's prompt embeddings), layout of `set.groups()`.
        anchors: Vec<Vec<f32>>,
        group_names: Vec<String>,
        /// Text embeddings per wrapped prompt (the text tower runs once per prompt).
        text_cache: HashMap<String, Vec<f32>>,
        /// Audio embeddings of the last `score_batch`, for the embedding cache.
        last_embeddings: Vec<Vec<f32>>,
        adapt: super::workbench::Adapt,
        tau: f32,
        background_ids: Vec<i64>,
        /// With an adaptation: the anchors (TGAP prototypes or the text anchors) and the background profile,
        /// computed once from the store's cached embeddings.
        adapted: Option<(Vec<Vec<f32>>, Option<Vec<f32>>, usize)>,
    }

    impl std::fmt::Debug for ClapTeacher {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("ClapTeacher")
                .field("version", &self.version)
                .field("device", &self.engine.description)
                .finish()
        }
    }

    impl ClapTeacher {
        /// Load `config.json`, `preprocessor_config.json` (LAION's settings when absent), `tokenizer.json` and
        /// `model.safetensors` from `dir` onto `engine`'s device, with the built-in prompt set.
        pub fn open(dir: &Path, engine: Engine, checksum: Option<String>) -> Result<ClapTeacher, ClapError> {
            let cfg = ClapConfig::from_file(&dir.join("config.json"))?;
            let pre = dir.join("preprocessor_config.json");
            let front_cfg = if pre.is_file() { FrontConfig::from_file(&pre)? } else { FrontConfig::default() };
            if front_cfg.feature_size != cfg.audio_config.num_mel_bins {
                return Err(ClapError::Config(format!(
                    "preprocessor feature_size {} differs from audio_config.num_mel_bins {}",
                    front_cfg.feature_size, cfg.audio_config.num_mel_bins
                )));
            }
            let front = MelFrontEnd::new(&front_cfg).map_err(ClapError::Config)?;
            if front.frames() > cfg.audio_config.spec_size * cfg.audio_config.freq_ratio() {
                return Err(ClapError::Config(format!(
                    "{} mel frames do not fit the {}-frame HTSAT input",
                    front.frames(),
                    cfg.audio_config.spec_size * cfg.audio_config.freq_ratio()
                )));
            }
            let tokenizer = ClapTokenizer::from_file(&dir.join("tokenizer.json"), cfg.text_config.vocab_size)?;
            let weights = dir.join("model.safetensors");
            if !weights.is_file() {
                let alt = if dir.join("pytorch_model.bin").is_file() {
                    " (it has pytorch_model.bin: dams reads safetensors only; the Hub's CLAP repos ship \
                     model.safetensors next to it)"
                } else {
                    ""
                };
                return Err(ClapError::Weights(format!("{} has no model.safetensors{alt}", dir.display())));
            }
            let mut ckpt = Checkpoint::open(&weights)?;
            let host = crate::engine::is_host_inference_device(&engine.device);
            let model = ClapModel::load(&cfg, &mut ckpt, &engine.device)?.with_cpu_kernels(host && cpu_kernels());
            let unused = ckpt.unused();
            if !unused.is_empty() {
                return Err(ClapError::Weights(format!(
                    "{}: {} unexpected tensor(s), e.g. '{}' (does config.json match the weights?)",
                    weights.display(),
                    unused.len(),
                    unused[0]
                )));
            }
            let checksum = match checksum {
                Some(c) => c,
                None => format!(
                    "sha256:{}",
                    crate::teachers::weights::install::sha256_file(&weights)
                        .map_err(|e| ClapError::Weights(e.to_string()))?
                ),
            };
            // Largest buffer per segment: stage-1 attention scores, heads × windows × N² f32.
            let st = &cfg.audio_config.stages()[0];
            let n = (st.window * st.window) as u64;
            let windows = (st.resolution[0] * st.resolution[1]) as u64 / n;
            let batch = engine.batch_for(4, st.heads as u64 * windows * n * n * 4, 32);
            let a = &cfg.audio_config;
            let version = format!(
                "{} (HTSAT {}x{:?}, text {} layers x {}, proj {})",
                super::HF_REPO,
                a.patch_embeds_hidden_size,
                a.depths,
                cfg.text_config.num_hidden_layers,
                cfg.text_config.hidden_size,
                cfg.projection_dim
            );
            let mut t = ClapTeacher {
                model,
                engine,
                tokenizer,
                resampler: SincResampler::new(16_000, front_cfg.sampling_rate).map_err(ClapError::Config)?,
                front,
                cfg,
                checksum,
                version,
                batch,
                scoring: Scoring::Softmax,
                set_name: String::new(),
                set: PromptSet::python(),
                anchors: Vec::new(),
                group_names: Vec::new(),
                text_cache: HashMap::new(),
                last_embeddings: Vec::new(),
                adapt: Default::default(),
                tau: 0.5,
                background_ids: Vec::new(),
                adapted: None,
            };
            t = t.with_prompts(super::prompts::DEFAULT_SET, &PromptSet::python())?;
            Ok(t)
        }

        /// Use prompt set `set` (named `name` in the run's settings): its anchors are computed now.
        pub fn with_prompts(mut self, name: &str, set: &PromptSet) -> Result<Self, ClapError> {
            self.set_prompts(name, set)?;
            Ok(self)
        }

        pub fn set_prompts(&mut self, name: &str, set: &PromptSet) -> Result<(), ClapError> {
            set.validate().map_err(ClapError::Run)?;
            let mut anchors = Vec::new();
            for g in set.groups() {
                let embs = g.iter().map(|p| self.text_embedding(p)).collect::<Result<Vec<_>, _>>()?;
                anchors.push(scoring::anchor(&embs));
            }
            self.anchors = anchors;
            self.group_names = scoring::group_names(set.has_negatives());
            self.set_name = name.to_string();
            self.set = set.clone();
            Ok(())
        }

        pub fn with_scoring(mut self, s: Scoring) -> Result<Self, ClapError> {
            if s == Scoring::Pairwise && self.set.has_negatives() != [true; 3] {
                return Err(ClapError::Run(format!(
                    "scoring 'pairwise' needs negative prompts for every class in set '{}'",
                    self.set_name
                )));
            }
            self.scoring = s;
            Ok(self)
        }

        /// The AudioText seed's adaptation for this run (applied from the store's cached embeddings).
        pub fn with_adaptation(mut self, adapt: super::workbench::Adapt, tau: f32, background: Vec<i64>) -> Self {
            self.adapt = adapt;
            self.tau = tau;
            self.background_ids = background;
            self.adapted = None;
            self
        }

        /// Compute TGAP anchors / the background profile from every cached embedding of these weights.
        fn prepare_adaptation(&mut self, store: &crate::store::Store) -> Result<(), String> {
            if self.adapt == super::workbench::Adapt::default() || self.adapted.is_some() {
                return Ok(());
            }
            let cached =
                store.embeddings(&self.checksum, EMBEDDING_KIND, self.cfg.projection_dim).map_err(|e| e.to_string())?;
            if cached.is_empty() {
                return Err(format!(
                    "adapt={} works on the workspace's cached CLAP embeddings, and there are none yet: run `dams \
                     score --teacher clap` (adapt=none) first",
                    self.adapt.as_str()
                ));
            }
            let mut ids: Vec<&i64> = cached.keys().collect();
            ids.sort_unstable();
            let pool: Vec<Vec<f32>> = ids.iter().map(|id| cached[*id].clone()).collect();
            let anchors = if self.adapt.tgap { scoring::tgap(&pool, &self.anchors, 35) } else { self.anchors.clone() };
            let profile = if self.adapt.background {
                let bg: Vec<Vec<f32>> = self.background_ids.iter().filter_map(|id| cached.get(id).cloned()).collect();
                if bg.is_empty() {
                    return Err("adapt=background needs segments marked as background (`background = [ids]` in \
                                prompts.toml, or x in the prompt workbench) that have cached embeddings"
                        .into());
                }
                Some(scoring::background_profile(&bg, &anchors))
            } else {
                None
            };
            self.adapted = Some((anchors, profile, pool.len()));
            Ok(())
        }

        pub fn config(&self) -> &ClapConfig {
            &self.cfg
        }
        pub fn engine(&self) -> &Engine {
            &self.engine
        }
        pub fn model(&self) -> &ClapModel {
            &self.model
        }
        pub fn tokenizer(&self) -> &ClapTokenizer {
            &self.tokenizer
        }
        pub fn anchors(&self) -> &[Vec<f32>] {
            &self.anchors
        }
        pub fn group_names(&self) -> &[String] {
            &self.group_names
        }
        pub fn scoring(&self) -> Scoring {
            self.scoring
        }
        /// `exp(logit_scale_a)`, the pipeline's logit multiplier.
        pub fn logit_scale(&self) -> f32 {
            self.model.logit_scale_a.exp()
        }

        /// The L2-normalised text embedding of one (already templated) text; cached per text.
        pub fn text_embedding(&mut self, text: &str) -> Result<Vec<f32>, ClapError> {
            if let Some(e) = self.text_cache.get(text) {
                return Ok(e.clone());
            }
            let ids = self.tokenizer.encode(text)?;
            let e = to_vec(self.model.embed_text(&ids, &self.engine.device)?)?;
            self.text_cache.insert(text.to_string(), e.clone());
            Ok(e)
        }

        /// The 48 kHz waveform of a 16 kHz segment (torchaudio's resampler).
        pub fn resample(&self, x16: &[f32]) -> Vec<f32> {
            self.resampler.apply(x16)
        }

        /// The log-mel `[frames · mels]` of a 48 kHz waveform.
        pub fn log_mel(&self, x48: &[f32]) -> Vec<f32> {
            self.front.log_mel(x48)
        }

        /// Audio embeddings `[B][proj]` of log-mels.
        pub fn embed_mels(&self, mels: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, ClapError> {
            if mels.is_empty() {
                return Ok(Vec::new());
            }
            let frames = self.front.frames();
            let flat: Vec<f32> = mels.iter().flat_map(|m| m.iter().copied()).collect();
            let e = self.model.embed_audio(&flat, mels.len(), frames, &self.engine.device);
            let v = to_vec(e)?;
            Ok(v.chunks_exact(self.cfg.projection_dim).map(|c| c.to_vec()).collect())
        }

        /// Audio embeddings of 16 kHz segments (resample, front end on all cores, audio tower).
        pub fn embed_audio(&self, segments: &[&[f32]]) -> Result<Vec<Vec<f32>>, ClapError> {
            use rayon::prelude::*;
            if let Some(i) = segments.iter().position(|s| s.iter().any(|v| !v.is_finite())) {
                return Err(ClapError::Run(format!("segment {i} of the batch holds non-finite samples")));
            }
            let mels: Vec<Vec<f32>> =
                segments.par_iter().map(|s| self.front.log_mel(&self.resampler.apply(s))).collect();
            self.embed_mels(&mels)
        }

        /// Group similarities of one audio embedding.
        pub fn similarities(&self, emb: &[f32]) -> Vec<f32> {
            self.anchors.iter().map(|a| scoring::dot(emb, a)).collect()
        }

        fn output(&self, emb: &[f32]) -> Result<TeacherOutput, String> {
            let sims = match &self.adapted {
                Some((anchors, profile, _)) => {
                    let s: Vec<f32> = anchors.iter().map(|a| scoring::dot(emb, a)).collect();
                    match profile {
                        Some(b) => scoring::subtract_background(&s, b, self.tau),
                        None => s,
                    }
                }
                None if self.adapt != super::workbench::Adapt::default() => {
                    return Err("the adaptation was not prepared from the store".into());
                }
                None => self.similarities(emb),
            };
            let scores = scoring::score(&sims, &self.group_names, self.scoring, self.logit_scale())?;
            Ok(TeacherOutput { scores, raw: Some(sims) })
        }
    }

    /// The CPU kernels are on unless `DAMS_CLAP_BURN_OPS` is set (to compare with burn's own softmax and GELU).
    fn cpu_kernels() -> bool {
        std::env::var_os("DAMS_CLAP_BURN_OPS").is_none()
    }

    fn to_vec(t: Tensor<2>) -> Result<Vec<f32>, ClapError> {
        let data = t.try_into_data().map_err(|e| ClapError::Run(format!("the device failed: {e:?}")))?;
        data.try_to_vec::<f32>().map_err(|e| ClapError::Run(format!("reading a result: {e:?}")))
    }

    impl Teacher for ClapTeacher {
        fn id(&self) -> &str {
            ID
        }
        fn version(&self) -> String {
            self.version.clone()
        }
        fn checksum(&self) -> &str {
            &self.checksum
        }
        fn zero_shot(&self) -> bool {
            true
        }
        fn raw_vocab(&self) -> Option<&'static str> {
            Some(crate::teachers::raw::CLAP_PROMPT_SIMS)
        }
        fn settings_json(&self) -> String {
            serde_json::json!({
                "device": if self.engine.gpu { "gpu" } else { "cpu" },
                "scoring": self.scoring.as_str(),
                "prompts": self.set_name,
                "prompts_digest": self.set.digest(),
                "groups": self.group_names,
                "logit_scale": self.logit_scale(),
                "adapt": self.adapt.as_str(),
                "tau": if self.adapt.background { Some(self.tau) } else { None },
                "background_segments": if self.adapt.background { Some(self.background_ids.len()) } else { None },
            })
            .to_string()
        }
        fn batch_size(&self) -> usize {
            self.batch
        }
        fn notice(&self) -> Option<String> {
            self.engine.notice.clone()
        }
        /// The Python project's thresholds for its softmax scores (`>=`, per class).
        fn default_thresholds(&self) -> Option<[f64; 3]> {
            (self.scoring == Scoring::Softmax).then_some(super::PYTHON_THRESHOLDS)
        }
        fn score_batch(&mut self, segments: &[&[f32]]) -> Result<Vec<TeacherOutput>, TeacherError> {
            let input = |detail: String| TeacherError::Input { id: ID.into(), detail };
            let embs = self.embed_audio(segments).map_err(|e| input(e.to_string()))?;
            let outs = embs.iter().map(|e| self.output(e).map_err(input)).collect::<Result<Vec<_>, _>>()?;
            self.last_embeddings = embs;
            Ok(outs)
        }
        fn score_stored(
            &mut self,
            store: &crate::store::Store,
            segment_ids: &[i64],
        ) -> Result<Vec<Option<TeacherOutput>>, TeacherError> {
            self.prepare_adaptation(store).map_err(|detail| TeacherError::Input { id: ID.into(), detail })?;
            let cached = store
                .embeddings_of(&self.checksum, EMBEDDING_KIND, self.cfg.projection_dim, segment_ids)
                .map_err(|e| TeacherError::Input { id: ID.into(), detail: e.to_string() })?;
            Ok(segment_ids.iter().map(|id| cached.get(id).and_then(|e| self.output(e).ok())).collect())
        }
        fn take_embeddings(&mut self) -> Option<(String, &'static str, Vec<Vec<f32>>)> {
            Some((self.checksum.clone(), EMBEDDING_KIND, std::mem::take(&mut self.last_embeddings)))
        }
    }
}
