//! Whisper-AT (`whisper-at` 0.5, Gong et al. 2023): Whisper's audio encoder + the TL-TR AudioSet head, ported to
//! burn. The Python project runs `large-v2` with `transcribe(at_time_res=10, fp16=False)` and keeps row 0 of
//! `audio_tag` per 10 s segment as `whisper_pseudo`.
//!
//! [`features`] is Whisper's log-mel, in the two contexts ([`features::Context`]); [`model`] the encoder (any size,
//! from the checkpoint's `dims`) and the head (`tl_tr` or `tl_down_tr_<w>`); [`config`] the dimensions and head
//! kind; [`install`] the checkpoint folder (OpenAI's `.pt` + whisper-at's head `.pth`, read by
//! [`crate::teachers::weights::torch`] without running pickled code). Docs: `docs/whisper_at.md`.

use crate::teachers::audioset::Pooling;

pub mod config;
pub mod features;
pub mod install;
#[cfg(feature = "burn")]
pub mod model;

#[cfg(feature = "burn")]
pub use teacher::WhisperAtTeacher;

/// Why a Whisper-AT checkpoint cannot be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum WhisperAtError {
    #[error("Whisper-AT dims: {0}")]
    Config(String),
    #[error("Whisper-AT weights: {0}")]
    Weights(String),
    #[error("Whisper-AT: {0}")]
    Run(String),
}

impl From<crate::teachers::weights::WeightsError> for WhisperAtError {
    fn from(e: crate::teachers::weights::WeightsError) -> Self {
        WhisperAtError::Weights(e.0)
    }
}

/// The teacher id.
pub const ID: &str = "whisper-at";
/// The label source of its pseudo-labels (the Python project's name).
pub const LABEL_SOURCE: &str = "whisper_pseudo";

/// Whisper-AT's registration (see [`crate::catalog`]).
pub const DESCRIPTOR: crate::teachers::TeacherDescriptor = crate::teachers::TeacherDescriptor {
    id: ID,
    family: false,
    description: "Whisper-AT (whisper-at 0.5): Whisper encoder + TL-TR head, 527 AudioSet classes; large-v2 as in the \
                  Python project, any size",
    label_source: Some(LABEL_SOURCE),
    zero_shot: false,
    raw_vocab: Some(crate::teachers::raw::AUDIOSET_527),
    devices: &["cpu", "gpu", "gpu:software", "ndarray"],
    options: &[
        crate::teachers::OptionSpec {
            name: "context",
            default: "30",
            help: "30: each segment + 30 s of zeros, a 1500-token window, as transcribe() does (matches the Python \
                   project's numbers); 10: the segment alone, 500 tokens, as Whisper-AT was trained (about a third \
                   of the cost, different scores)",
            choices: &["30", "10"],
        },
        crate::teachers::OptionSpec {
            name: "pooling",
            default: "noisy_or",
            help: "how the 527 logits of a class's bucket become its score (noisy_or, max, mean); re-pool a finished \
               run without the model with `dams remap --run ID --option pooling=P`",
            choices: &["noisy_or", "max", "mean"],
        },
        crate::teachers::OptionSpec {
            name: "precision",
            default: "f32",
            help: "f16 runs weights and activations in half precision on a GPU with shader-f16 (refused elsewhere)",
            choices: &["f32", "f16"],
        },
    ],
    install: Some(install::INSTALL),
    state: |ctx| match install::installed(&ctx.model_cache) {
        Some(r) => crate::teachers::InstallState::Installed(format!("sha256:{} from {}", r.sha256, r.source)),
        None => crate::teachers::InstallState::Missing(
            "dams teachers pull whisper-at   (or: dams teachers add whisper-at --from DIR, DIR holding OpenAI's \
             large-v2.pt as whisper.pt and whisper-at's large-v2_ori.pth as whisper_at.pth)"
                .into(),
        ),
    },
    open: |_, ctx| load_installed(ctx),
    instances: None,
};

/// Open the installed Whisper-AT with the device and options of `ctx`; both files are verified against their
/// install record first.
pub fn load_installed(
    ctx: &crate::teachers::OpenContext,
) -> Result<Box<dyn crate::teachers::Teacher>, crate::teachers::TeacherError> {
    use crate::teachers::TeacherError;
    let weights = |detail: String| TeacherError::Weights { id: ID.into(), detail };
    let input = |detail: String| TeacherError::Input { id: ID.into(), detail };
    let Some(checksum) = install::verified_checksum(&ctx.model_cache).map_err(|e| weights(e.to_string()))? else {
        return Err(TeacherError::NotInstalled {
            id: ID.into(),
            hint: "install it with `dams teachers pull whisper-at` (or `dams teachers add whisper-at --from DIR`; see \
                   docs/whisper_at.md)"
                .into(),
        });
    };
    let pooling: Pooling = match ctx.options.get("pooling") {
        "" => Pooling::default(),
        p => p.parse().map_err(input)?,
    };
    let context: features::Context = ctx.options.get("context").parse().map_err(input)?;
    #[cfg(feature = "burn")]
    {
        let choice: crate::engine::DeviceChoice = ctx.device.parse().map_err(input)?;
        let engine = crate::engine::Engine::select(choice).map_err(input)?;
        let t = WhisperAtTeacher::open(&install::install_dir(&ctx.model_cache), engine, Some(checksum))
            .map_err(|e| weights(e.to_string()))?
            .with_pooling(pooling)
            .with_context(context)
            .with_precision(ctx.options.get("precision"))
            .map_err(|e| input(e.to_string()))?;
        Ok(Box::new(t))
    }
    #[cfg(not(feature = "burn"))]
    {
        let _ = (checksum, pooling, context);
        Err(input("this build of dams has no model engine (rebuild with the `burn` feature)".into()))
    }
}

#[cfg(feature = "burn")]
mod teacher {
    use std::path::Path;

    use burn::tensor::{FloatDType, Tensor, TensorData};

    use super::config::{HeadKind, WhisperDims};
    use super::features::{Context, LogMel, N_MELS};
    use super::model::{Encoder, Head, WhisperAt};
    use super::{ID, Pooling, WhisperAtError, install};
    use crate::engine::Engine;
    use crate::teachers::audioset::{N_AUDIOSET, collapse_logits};
    use crate::teachers::{Teacher, TeacherError, TeacherOutput};

    /// A loaded Whisper-AT on a device.
    pub struct WhisperAtTeacher {
        model: WhisperAt,
        engine: Engine,
        mel: LogMel,
        dims: WhisperDims,
        head: HeadKind,
        context: Context,
        checksum: String,
        pooling: Pooling,
        batch: usize,
        half: Option<FloatDType>,
    }

    impl std::fmt::Debug for WhisperAtTeacher {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("WhisperAtTeacher")
                .field("version", &self.version())
                .field("device", &self.engine.description)
                .finish()
        }
    }

    struct CastParams(FloatDType);

    impl burn::module::ModuleMapper for CastParams {
        fn map_float<const D: usize>(
            &mut self,
            param: burn::module::Param<Tensor<D>>,
        ) -> burn::module::Param<Tensor<D>> {
            let d = self.0;
            param.map(|t| t.cast(d))
        }
    }

    /// The CPU kernels (softmax, GELU) are on unless `DAMS_AST_BURN_OPS` is set, as for AST.
    fn cpu_kernels(engine: &Engine) -> bool {
        std::env::var_os("DAMS_AST_BURN_OPS").is_none() && crate::engine::is_host_inference_device(&engine.device)
    }

    /// Load the encoder of an OpenAI `.pt` and a whisper-at head `.pth` (only the encoder's tensors are read).
    pub fn load_model(
        pt: &Path,
        pth: &Path,
        engine: &Engine,
    ) -> Result<(WhisperAt, WhisperDims, HeadKind), WhisperAtError> {
        let (mut whisper, dims, mut at, kind) = install::open_checked(pt, pth)?;
        let encoder = Encoder::load(&dims, &mut whisper, &engine.device)?;
        let head = Head::load(kind, dims.n_audio_state, N_AUDIOSET, &mut at, &engine.device)?;
        let model = WhisperAt { encoder, head }.with_cpu_kernels(cpu_kernels(engine));
        Ok((model, dims, kind))
    }

    impl WhisperAtTeacher {
        /// Load `whisper.pt` + `whisper_at.pth` from `dir` onto `engine`'s device. `checksum` identifies the weights
        /// (computed from both files when `None`).
        pub fn open(dir: &Path, engine: Engine, checksum: Option<String>) -> Result<WhisperAtTeacher, WhisperAtError> {
            Self::open_files(&dir.join(install::PT), &dir.join(install::PTH), engine, checksum)
        }

        pub fn open_files(
            pt: &Path,
            pth: &Path,
            engine: Engine,
            checksum: Option<String>,
        ) -> Result<WhisperAtTeacher, WhisperAtError> {
            let (model, dims, head) = load_model(pt, pth, &engine)?;
            let checksum = match checksum {
                Some(c) => c,
                None => install::checksum_of(pt, pth).map_err(|e| WhisperAtError::Weights(e.to_string()))?,
            };
            // Large models hold ~L × 20 MB of activations per segment at 30 s: keep CPU batches small.
            let batch = if engine.gpu { 4 } else { 2 };
            Ok(WhisperAtTeacher {
                model,
                engine,
                mel: LogMel::new(),
                dims,
                head,
                context: Context::S30,
                checksum,
                pooling: Pooling::default(),
                batch,
                half: None,
            })
        }

        pub fn with_pooling(mut self, pooling: Pooling) -> Self {
            self.pooling = pooling;
            self
        }

        pub fn with_context(mut self, context: Context) -> Self {
            self.context = context;
            self
        }

        /// `f16` (GPU with shader-f16 only) or `f32`.
        pub fn with_precision(mut self, precision: &str) -> Result<Self, WhisperAtError> {
            match precision {
                "f32" | "" => Ok(self),
                "f16" => {
                    if !self.engine.gpu {
                        return Err(WhisperAtError::Run(
                            "precision f16 runs on a GPU (wgpu) only; on the CPU dams computes in f32".into(),
                        ));
                    }
                    if !self.engine.device.supports_dtype(FloatDType::F16) {
                        return Err(WhisperAtError::Run(format!(
                            "precision f16: the adapter {} has no shader-f16 support; use f32",
                            self.engine.description
                        )));
                    }
                    self.model = burn::module::Module::map(self.model, &mut CastParams(FloatDType::F16));
                    self.half = Some(FloatDType::F16);
                    Ok(self)
                }
                other => Err(WhisperAtError::Run(format!("unknown precision '{other}' (f32 or f16)"))),
            }
        }

        /// Softmax and GELU on the CPU kernels (on by default on the CPU; ignored on a GPU).
        pub fn with_cpu_kernels(mut self, on: bool) -> Self {
            let on = on && crate::engine::is_host_inference_device(&self.engine.device);
            self.model = self.model.with_cpu_kernels(on);
            self
        }

        pub fn dims(&self) -> &WhisperDims {
            &self.dims
        }

        pub fn head_kind(&self) -> HeadKind {
            self.head
        }

        pub fn context(&self) -> Context {
            self.context
        }

        pub fn engine(&self) -> &Engine {
            &self.engine
        }

        pub fn model(&self) -> &WhisperAt {
            &self.model
        }

        /// The encoder input of a batch: `[B, 80, frames]`, row-major.
        pub fn features(&mut self, segments: &[&[f32]]) -> Vec<f32> {
            let per = N_MELS * self.context.frames();
            let mut x = Vec::with_capacity(per * segments.len());
            for s in segments {
                x.extend(self.mel.features(s, self.context));
            }
            x
        }

        /// (pooled `[B, L, frames/40, d]` flattened, logits `[B][527]`) for precomputed features.
        pub fn run_features(&self, feats: Vec<f32>, batch: usize) -> Result<(Vec<f32>, Vec<Vec<f32>>), WhisperAtError> {
            let frames = self.context.frames();
            if feats.len() != batch * N_MELS * frames {
                return Err(WhisperAtError::Run(format!(
                    "{} feature values for a batch of {batch} × 80 × {frames}",
                    feats.len()
                )));
            }
            if batch == 0 {
                return Ok((Vec::new(), Vec::new()));
            }
            let mut x = Tensor::<3>::from_data(TensorData::new(feats, [batch, N_MELS, frames]), &self.engine.device);
            if let Some(d) = self.half {
                x = x.cast(d);
            }
            let (mut pooled, mut logits) = self.model.forward(x, self.context);
            if self.half.is_some() {
                pooled = pooled.cast(FloatDType::F32);
                logits = logits.cast(FloatDType::F32);
            }
            let read = |t: TensorData| -> Result<Vec<f32>, WhisperAtError> {
                t.try_to_vec::<f32>().map_err(|e| WhisperAtError::Run(format!("reading the device's output: {e:?}")))
            };
            let p =
                read(pooled.try_into_data().map_err(|e| WhisperAtError::Run(format!("the device failed: {e:?}")))?)?;
            let l =
                read(logits.try_into_data().map_err(|e| WhisperAtError::Run(format!("the device failed: {e:?}")))?)?;
            Ok((p, l.chunks_exact(N_AUDIOSET).map(|c| c.to_vec()).collect()))
        }

        /// Logits `[B][527]` of a batch of 16 kHz mono segments (row 0 of `audio_tag`, one per segment).
        pub fn logits(&mut self, segments: &[&[f32]]) -> Result<Vec<Vec<f32>>, WhisperAtError> {
            if let Some(i) = segments.iter().position(|s| s.iter().any(|v| !v.is_finite())) {
                return Err(WhisperAtError::Run(format!("segment {i} of the batch holds non-finite samples")));
            }
            let feats = self.features(segments);
            Ok(self.run_features(feats, segments.len())?.1)
        }
    }

    impl Teacher for WhisperAtTeacher {
        fn id(&self) -> &str {
            ID
        }
        fn version(&self) -> String {
            format!(
                "whisper-at 0.5 port: Whisper {} ({} layers, width {}) + {} head",
                self.dims.size_name(),
                self.dims.n_audio_layer,
                self.dims.n_audio_state,
                self.head.as_str()
            )
        }
        fn checksum(&self) -> &str {
            &self.checksum
        }
        fn raw_vocab(&self) -> Option<&'static str> {
            Some(crate::teachers::raw::AUDIOSET_527)
        }
        fn settings_json(&self) -> String {
            let mut v = serde_json::json!({
                "device": if self.engine.gpu { "gpu" } else { "cpu" },
                "pooling": self.pooling.as_str(),
                "context": self.context.as_str(),
                "head": self.head.as_str(),
            });
            if self.half.is_some() {
                v["precision"] = serde_json::json!("f16");
            }
            v.to_string()
        }
        fn batch_size(&self) -> usize {
            self.batch
        }
        fn notice(&self) -> Option<String> {
            self.engine.notice.clone()
        }
        fn label_source(&self) -> crate::labels::LabelSource {
            crate::labels::LabelSource::from_raw(super::LABEL_SOURCE)
        }
        fn score_batch(&mut self, segments: &[&[f32]]) -> Result<Vec<TeacherOutput>, TeacherError> {
            let input = |detail: String| TeacherError::Input { id: ID.into(), detail };
            let logits = self.logits(segments).map_err(|e| input(e.to_string()))?;
            logits
                .into_iter()
                .map(|l| {
                    let scores = collapse_logits(&l, self.pooling).map_err(input)?;
                    Ok(TeacherOutput { scores, raw: Some(l) })
                })
                .collect()
        }
    }
}
