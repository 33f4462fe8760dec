//! AST, the Audio Spectrogram Transformer (`MIT/ast-finetuned-audioset-10-10-0.4593`), ported faithfully: the
//! Kaldi fbank front end ([`features`]), `config.json` ([`config`]), a checked safetensors reader
//! ([`crate::teachers::weights::safetensors`]), the ViT on burn ([`model`]) and the installed weights ([`install`]).

/// The checked safetensors reader, shared by every teacher (kept here under its old path).
pub use crate::teachers::weights::safetensors as checkpoint;

use crate::teachers::audioset::Pooling;
pub mod config;
pub mod features;
pub mod install;
#[cfg(feature = "burn")]
pub mod kernels;
#[cfg(feature = "burn")]
pub mod model;

#[cfg(feature = "burn")]
pub use teacher::AstTeacher;

/// Why an AST checkpoint cannot be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum AstError {
    #[error("AST config: {0}")]
    Config(String),
    #[error("AST weights: {0}")]
    Weights(String),
    #[error("AST: {0}")]
    Run(String),
}

/// The teacher id.
pub const ID: &str = "ast";
/// The published checkpoint.
pub const HF_REPO: &str = "MIT/ast-finetuned-audioset-10-10-0.4593";

/// AST's registration (see [`crate::catalog`]).
pub const DESCRIPTOR: crate::teachers::TeacherDescriptor = crate::teachers::TeacherDescriptor {
    id: ID,
    family: false,
    description: "Audio Spectrogram Transformer, MIT/ast-finetuned-audioset-10-10-0.4593 (527 AudioSet classes)",
    label_source: None,
    zero_shot: false,
    raw_vocab: Some(crate::teachers::raw::AUDIOSET_527),
    devices: &["cpu", "gpu", "gpu:software", "ndarray"],
    options: &[
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
            "dams teachers pull ast   (or: dams teachers add ast --from DIR)".into(),
        ),
    },
    open: |_, ctx| load_installed(ctx),
    instances: None,
};

/// Open the installed AST (see [`install`]) with the device and pooling of `ctx`; the weights are verified against
/// their install record first (changed on disk: refused).
pub fn load_installed(
    ctx: &crate::teachers::OpenContext,
) -> Result<Box<dyn crate::teachers::Teacher>, crate::teachers::TeacherError> {
    use crate::teachers::TeacherError;
    let weights = |detail: String| TeacherError::Weights { id: ID.into(), detail };
    let Some(rec) = crate::teachers::weights::install::verified(ID, &install::INSTALL, &ctx.model_cache)
        .map_err(|e| weights(e.0))?
    else {
        return Err(TeacherError::NotInstalled {
            id: ID.into(),
            hint: "install it with `dams teachers pull ast` (or `dams teachers add ast --from DIR`)".into(),
        });
    };
    let pooling: Pooling = ctx
        .options
        .get("pooling")
        .parse()
        .or_else(|e: String| if ctx.options.get("pooling").is_empty() { Ok(Pooling::default()) } else { Err(e) })
        .map_err(|detail| TeacherError::Input { id: ID.into(), detail })?;
    #[cfg(feature = "burn")]
    {
        let choice: crate::engine::DeviceChoice =
            ctx.device.parse().map_err(|detail| TeacherError::Input { id: ID.into(), detail })?;
        let engine =
            crate::engine::Engine::select(choice).map_err(|detail| TeacherError::Input { id: ID.into(), detail })?;
        let t =
            AstTeacher::open(&install::install_dir(&ctx.model_cache), engine, Some(format!("sha256:{}", rec.sha256)))
                .map_err(|e| weights(e.to_string()))?
                .with_pooling(pooling)
                .with_precision(ctx.options.get("precision"))
                .map_err(|e| TeacherError::Input { id: ID.into(), detail: e.to_string() })?;
        Ok(Box::new(t))
    }
    #[cfg(not(feature = "burn"))]
    {
        let _ = (rec, pooling);
        Err(TeacherError::Input {
            id: ID.into(),
            detail: "this build of dams has no model engine (rebuild with the `burn` feature)".into(),
        })
    }
}

#[cfg(feature = "burn")]
mod teacher {
    use std::path::Path;

    use burn::tensor::{FloatDType, Tensor, TensorData};

    use super::Pooling;
    use super::config::AstConfig;
    use super::features::Fbank;
    use super::model::AstModel;
    use super::{AstError, ID};
    use crate::engine::Engine;
    use crate::teachers::audioset::{N_AUDIOSET, collapse_logits};
    use crate::teachers::weights::safetensors::Checkpoint;
    use crate::teachers::{Teacher, TeacherError, TeacherOutput};

    /// A loaded AST checkpoint on a device.
    pub struct AstTeacher {
        model: AstModel,
        engine: Engine,
        fbank: Fbank,
        cfg: AstConfig,
        checksum: String,
        version: String,
        pooling: Pooling,
        batch: usize,
        /// `None`: f32 throughout; `Some(F16)`: weights and activations in half precision (wgpu only).
        half: Option<FloatDType>,
    }

    /// Casts every float parameter of a module to one float type.
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

    impl std::fmt::Debug for AstTeacher {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("AstTeacher")
                .field("version", &self.version)
                .field("device", &self.engine.description)
                .finish()
        }
    }

    /// The CPU kernels are on unless `DAMS_AST_BURN_OPS` is set (to compare with burn's own softmax and GELU).
    fn cpu_kernels() -> bool {
        std::env::var_os("DAMS_AST_BURN_OPS").is_none()
    }

    /// The kernels work on host memory: only for a plain CPU device (not a GPU, not an autodiff device).
    fn host_device(engine: &Engine) -> bool {
        crate::engine::is_host_inference_device(&engine.device)
    }

    impl AstTeacher {
        /// Load `config.json` + `model.safetensors` from `dir` onto `engine`'s device. `checksum` identifies the
        /// weights (the install record's sha256; computed when `None`).
        pub fn open(dir: &Path, engine: Engine, checksum: Option<String>) -> Result<AstTeacher, AstError> {
            let cfg = AstConfig::from_file(&dir.join("config.json"))?;
            let weights = dir.join("model.safetensors");
            let mut ckpt = Checkpoint::open(&weights)?;
            let model = AstModel::load(&cfg, &mut ckpt, &engine.device)?
                .with_cpu_kernels(host_device(&engine) && cpu_kernels());
            let unused = ckpt.unused();
            if !unused.is_empty() {
                return Err(AstError::Weights(format!(
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
                    super::install::sha256_file(&weights).map_err(|e| AstError::Weights(e.to_string()))?
                ),
            };
            // The largest buffer per segment is one layer's attention scores, heads × tokens² f32.
            let tokens = (cfg.num_patches() + 2) as u64;
            let batch = engine.batch_for(4, cfg.num_attention_heads as u64 * tokens * tokens * 4, 64);
            Ok(AstTeacher {
                fbank: Fbank::new(cfg.fbank()),
                version: format!("{} ({} layers, hidden {})", super::HF_REPO, cfg.num_hidden_layers, cfg.hidden_size),
                model,
                engine,
                cfg,
                checksum,
                pooling: Pooling::default(),
                batch,
                half: None,
            })
        }

        /// Run in half precision (`f16`) or single (`f32`, the default). Half precision is for GPUs: it is refused
        /// on the CPU and on adapters without `shader-f16`, with a message saying why.
        pub fn with_precision(mut self, precision: &str) -> Result<Self, AstError> {
            match precision {
                "f32" | "" => {
                    self.half = None;
                    Ok(self)
                }
                "f16" => {
                    if !self.engine.gpu {
                        return Err(AstError::Run(
                            "precision f16 runs on a GPU (wgpu) only; on the CPU dams computes in f32".into(),
                        ));
                    }
                    if !self.engine.device.supports_dtype(FloatDType::F16) {
                        return Err(AstError::Run(format!(
                            "precision f16: the adapter {} has no shader-f16 support; use f32",
                            self.engine.description
                        )));
                    }
                    self.model = burn::module::Module::map(self.model, &mut CastParams(FloatDType::F16));
                    self.half = Some(FloatDType::F16);
                    Ok(self)
                }
                other => Err(AstError::Run(format!("unknown precision '{other}' (f32 or f16)"))),
            }
        }

        pub fn config(&self) -> &AstConfig {
            &self.cfg
        }

        pub fn engine(&self) -> &Engine {
            &self.engine
        }

        /// Softmax and GELU on the CPU kernels ([`super::kernels`]); on by default on the CPU, ignored on a GPU.
        pub fn with_cpu_kernels(mut self, on: bool) -> Self {
            self.model = self.model.with_cpu_kernels(on && host_device(&self.engine));
            self
        }

        /// The network (for embeddings and fine-tuning: see `student::ast_head`).
        pub fn model(&self) -> &AstModel {
            &self.model
        }

        pub fn with_pooling(mut self, pooling: Pooling) -> Self {
            self.pooling = pooling;
            self
        }

        /// The model input of a batch of waveforms: `[B, max_length, num_mel_bins]`, row-major.
        pub fn features(&mut self, segments: &[&[f32]]) -> Vec<f32> {
            let per = self.fbank.output_len();
            let mut x = vec![0f32; per * segments.len()];
            for (s, out) in segments.iter().zip(x.chunks_exact_mut(per)) {
                self.fbank.features_into(s, out);
            }
            x
        }

        /// Logits `[B][num_labels]` for precomputed features (`B × max_length × num_mel_bins` values).
        pub fn logits_from_features(&self, feats: Vec<f32>, batch: usize) -> Result<Vec<Vec<f32>>, AstError> {
            let [t, f] = self.model.input_shape();
            if feats.len() != batch * t * f {
                return Err(AstError::Run(format!(
                    "{} feature values for a batch of {batch} × {t} × {f}",
                    feats.len()
                )));
            }
            if batch == 0 {
                return Ok(Vec::new());
            }
            let mut x = Tensor::<3>::from_data(TensorData::new(feats, [batch, t, f]), &self.engine.device);
            if let Some(d) = self.half {
                x = x.cast(d);
            }
            let mut logits = self.model.forward(x);
            if self.half.is_some() {
                logits = logits.cast(FloatDType::F32);
            }
            let data = logits.try_into_data().map_err(|e| AstError::Run(format!("the device failed: {e:?}")))?;
            let v: Vec<f32> = data.try_to_vec::<f32>().map_err(|e| AstError::Run(format!("reading logits: {e:?}")))?;
            let n = self.cfg.num_labels();
            Ok(v.chunks_exact(n).map(|c| c.to_vec()).collect())
        }

        /// Logits for a batch of 16 kHz mono waveforms.
        pub fn logits(&mut self, segments: &[&[f32]]) -> Result<Vec<Vec<f32>>, AstError> {
            if let Some(i) = segments.iter().position(|s| s.iter().any(|v| !v.is_finite())) {
                return Err(AstError::Run(format!("segment {i} of the batch holds non-finite samples")));
            }
            let feats = self.features(segments);
            self.logits_from_features(feats, segments.len())
        }
    }

    impl Teacher for AstTeacher {
        fn id(&self) -> &str {
            ID
        }
        fn version(&self) -> String {
            self.version.clone()
        }
        fn checksum(&self) -> &str {
            &self.checksum
        }
        fn raw_vocab(&self) -> Option<&'static str> {
            (self.cfg.num_labels() == N_AUDIOSET).then_some(crate::teachers::raw::AUDIOSET_527)
        }
        fn settings_json(&self) -> String {
            let mut v = serde_json::json!({"device": if self.engine.gpu { "gpu" } else { "cpu" }, "pooling": self.pooling.as_str()});
            // Half precision changes the scores: part of the run's identity (f32 runs keep their old settings).
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
