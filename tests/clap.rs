//! CLAP parity with Hugging Face `transformers` + `torchaudio` (goldens made by `tools/clap/make_goldens.py` from a
//! real clip of the demo workspace), the real tokenizer's ids, hostile checkpoints and tokenizer files, and scoring a
//! workspace with an installed checkpoint.

mod common;
use std::path::{Path, PathBuf};

use dams::teachers::clap::config::{ClapConfig, FrontConfig};
use dams::teachers::clap::features::{MelFrontEnd, SincResampler};
use dams::teachers::weights::safetensors::Checkpoint;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/clap/tiny")
}

fn meta() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture().join("goldens.json")).unwrap()).unwrap()
}

fn golden(name: &str, shape: &[usize]) -> Vec<f32> {
    Checkpoint::open(&fixture().join("goldens.safetensors")).unwrap().take(name, shape).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn sha256_f32le(x: &[f32]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for v in x {
        h.update(v.to_le_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A clip of goldens.json (`clip` or `short_clip`), decoded by dams and checked to be the script's exact input.
fn clip(key: &str) -> Vec<f32> {
    let m = meta();
    let c = &m[key];
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(c["path"].as_str().unwrap());
    let x = dams::audio::load_mono_16k(&path).unwrap();
    let a = (c["start_s"].as_f64().unwrap() * 16_000.0).round() as usize;
    let n = (c["duration_s"].as_f64().unwrap() * 16_000.0).round() as usize;
    let x = x[a..a + n].to_vec();
    assert_eq!(
        sha256_f32le(&x),
        c["sha256_f32le"].as_str().unwrap(),
        "{key}: dams decodes other samples than soundfile"
    );
    x
}

#[test]
fn resampler_matches_torchaudio() {
    let r = SincResampler::new(16_000, 48_000).unwrap();
    let y = r.apply(&clip("clip"));
    assert_eq!(y.len(), 480_000);
    let e = max_abs_diff(&y, &golden("wav48", &[480_000]));
    eprintln!("resampler max abs error {e:.2e} (480 000 samples)");
    assert!(e <= 1e-4, "resampler max abs error {e}");
    let short = r.apply(&clip("short_clip"));
    assert_eq!(short.len(), 144_000);
    let s: Vec<f32> = short.iter().step_by(32).copied().collect();
    let e = max_abs_diff(&s, &golden("short_wav48_stride32", &[4500]));
    eprintln!("resampler (3 s clip) max abs error {e:.2e}");
    assert!(e <= 1e-4);
}

/// Mel bins whose filter has no weight at or above `hz` (the mel of a 16 kHz source resampled to 48 kHz has real
/// content only below 8 kHz).
fn mel_bins_below(cfg: &FrontConfig, hz: f64) -> Vec<bool> {
    let n = cfg.fft_window_size / 2 + 1;
    let m = cfg.feature_size;
    let f = dams::teachers::clap::features::slaney_mel_filters(
        n,
        m,
        cfg.frequency_min,
        cfg.frequency_max,
        cfg.sampling_rate,
    );
    let hz_per_bin = cfg.sampling_rate as f64 / cfg.fft_window_size as f64;
    (0..m).map(|k| (0..n).all(|b| b as f64 * hz_per_bin < hz || f[b * m + k] == 0.0)).collect()
}

fn max_abs_diff_in(a: &[f32], b: &[f32], mels: usize, keep: &[bool]) -> f32 {
    assert_eq!(a.len(), b.len());
    let (mut worst, mut at) = (0f32, 0usize);
    for (i, (x, y)) in a.iter().zip(b).enumerate().filter(|(i, _)| keep[i % mels]) {
        if (x - y).abs() > worst {
            (worst, at) = ((x - y).abs(), i);
        }
    }
    eprintln!("  worst: frame {} mel bin {}: {} vs {} dB", at / mels, at % mels, a[at], b[at]);
    worst
}

#[test]
fn mel_matches_the_feature_extractor() {
    let cfg = FrontConfig::from_file(&fixture().join("preprocessor_config.json")).unwrap();
    let fe = MelFrontEnd::new(&cfg).unwrap();
    assert_eq!(fe.frames(), 1001);
    let want = golden("mel", &[1001, 64]);
    // The front end alone, on exactly the waveform the extractor got (torchaudio's 48 kHz).
    let wav48 = golden("wav48", &[480_000]);
    let e = max_abs_diff(&fe.log_mel(&wav48), &want);
    eprintln!("mel (torchaudio's 48 kHz waveform) max abs error {e:.2e} dB");
    assert!(e <= 1e-3, "mel max abs error {e} dB");
    // `repeatpad` (3 whole copies of 3 s, then zeros) on the same exact input, every 4th frame stored.
    let mel = fe.log_mel(&wav48[..144_000]);
    let rows: Vec<f32> = mel.chunks_exact(64).step_by(4).flatten().copied().collect();
    let e = max_abs_diff(&rows, &golden("repeatpad_mel_rows4", &[251, 64]));
    eprintln!("mel (repeatpad, exact 3 s input) max abs error {e:.2e} dB");
    assert!(e <= 1e-3, "repeatpad mel max abs error {e} dB");

    // The whole path from the 16 kHz clip (dams' f32 resampler, then the mel). Above 8 kHz the mel is the
    // resampler's stopband (-90..-100 dB), where the f32 rounding of the waveform alone moves the reference by 1e-2
    // dB: the golden script measures that (`reference_f32_noise`: the extractor's mel of the same resampling done in
    // float64, rounded once) and dams' whole path is held to it, below 8 kHz and over all bins. What it does
    // downstream is bounded by the audio embedding from the waveform (`model` tests, 1e-4).
    let low = mel_bins_below(&cfg, 8_000.0);
    assert!(low.iter().filter(|b| **b).count() >= 40, "{low:?}");
    let m = meta();
    let r = SincResampler::new(16_000, 48_000).unwrap();
    for (key, rows_step, want) in
        [("clip", 1, golden("mel", &[1001, 64])), ("short_clip", 4, golden("short_mel_rows4", &[251, 64]))]
    {
        let mel = fe.log_mel(&r.apply(&clip(key)));
        let rows: Vec<f32> = mel.chunks_exact(64).step_by(rows_step).flatten().copied().collect();
        let (e_low, e_all) = (max_abs_diff_in(&rows, &want, 64, &low), max_abs_diff(&rows, &want));
        let noise = &m["reference_f32_noise"][key];
        let (n_low, n_all) =
            (noise["mel_db_below_8k"].as_f64().unwrap() as f32, noise["mel_db_all"].as_f64().unwrap() as f32);
        eprintln!(
            "mel from the 16 kHz {key}: max abs error {e_low:.2e} dB below 8 kHz, {e_all:.2e} dB all bins (the \
             reference's own f32-rounding noise: {n_low:.2e}, {n_all:.2e})"
        );
        assert!(e_low <= n_low && e_all <= n_all, "{key}: whole-path mel error {e_low} / {e_all} dB");
    }
}

#[cfg(feature = "burn")]
mod tokenizer {
    use super::*;
    use dams::teachers::clap::tokenizer::ClapTokenizer;

    fn tok() -> ClapTokenizer {
        let cfg = ClapConfig::from_file(&fixture().join("config.json")).unwrap();
        ClapTokenizer::from_file(&fixture().join("tokenizer.json"), cfg.text_config.vocab_size).unwrap()
    }

    #[test]
    fn ids_match_python_including_non_ascii() {
        let t = tok();
        let m = meta();
        let cases = m["tokenizer_cases"].as_array().unwrap();
        assert!(cases.len() >= 6);
        for c in cases {
            let text = c["text"].as_str().unwrap();
            let want: Vec<u32> = c["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
            assert_eq!(t.encode(text).unwrap(), want, "{text:?}");
        }
        // The pipeline's three wrapped prompts (unpadded rows of its padded batch).
        let template = m["template"].as_str().unwrap();
        for (p, ids) in m["prompts"].as_array().unwrap().iter().zip(m["prompt_ids"].as_array().unwrap()) {
            let text = template.replacen("{}", p.as_str().unwrap(), 1);
            let want: Vec<u32> = ids.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
            assert_eq!(t.encode(&text).unwrap(), want);
        }
    }

    #[test]
    fn hostile_tokenizer_files_give_clear_errors() {
        let good = std::fs::read(fixture().join("tokenizer.json")).unwrap();
        for (bytes, want) in [
            (b"{not json".to_vec(), "not a tokenizer.json"),
            (b"{}".to_vec(), "not a tokenizer.json"),
            (good[..good.len() / 2].to_vec(), "not a tokenizer.json"),
        ] {
            let e = ClapTokenizer::from_bytes(&bytes, 620).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        // Ids beyond the text tower's vocabulary: the file belongs to another model.
        let e = ClapTokenizer::from_bytes(&good, 100).unwrap_err().to_string();
        assert!(e.contains("outside the text tower's vocabulary of 100"), "{e}");
        // A vocabulary without RoBERTa's specials.
        let v: serde_json::Value = serde_json::from_slice(&good).unwrap();
        let mut v2 = v.clone();
        v2["model"]["vocab"].as_object_mut().unwrap().remove("</s>");
        v2["added_tokens"] = serde_json::json!([]);
        v2["post_processor"] = serde_json::Value::Null;
        let e = ClapTokenizer::from_bytes(&serde_json::to_vec(&v2).unwrap(), 620).unwrap_err().to_string();
        assert!(e.contains("'</s>'"), "{e}");
    }
}

#[cfg(feature = "burn")]
mod model {
    use super::*;
    use dams::engine::Engine;
    use dams::teachers::clap::prompts::PromptSet;
    use dams::teachers::clap::{ClapError, ClapTeacher};

    fn open_on(dir: &Path, engine: Engine) -> Result<ClapTeacher, ClapError> {
        ClapTeacher::open(dir, engine, None)
    }

    /// Every stage against the goldens: audio embedding from the golden mel (the tower alone), from the waveform
    /// (the whole path), text embeddings, logits, pipeline scores.
    fn check(engine: Engine, tol: f32) {
        let t = open_on(&fixture(), engine).unwrap();
        let d = t.config().projection_dim;
        let m = meta();
        let mel = golden("mel", &[1001, 64]);
        let a = t.embed_mels(&[mel]).unwrap().remove(0);
        let want = golden("audio_embeds", &[1, d]);
        let e = max_abs_diff(&a, &want);
        eprintln!("audio embedding (golden mel) max abs error {e:.2e}");
        assert!(e <= tol, "audio embedding max abs error {e}");
        let a2 = t.embed_audio(&[&clip("clip")]).unwrap().remove(0);
        let e = max_abs_diff(&a2, &want);
        eprintln!("audio embedding (16 kHz waveform) max abs error {e:.2e}");
        assert!(e <= tol, "audio embedding from the waveform: max abs error {e}");
        let s = t.embed_audio(&[&clip("short_clip")]).unwrap().remove(0);
        let e = max_abs_diff(&s, &golden("short_audio_embeds", &[1, d]));
        eprintln!("audio embedding (3 s, repeatpad) max abs error {e:.2e}");
        assert!(e <= tol);

        let mut t = t;
        let want_text = golden("text_embeds", &[3, d]);
        let template = m["template"].as_str().unwrap();
        let mut logits = Vec::new();
        for (i, p) in m["prompts"].as_array().unwrap().iter().enumerate() {
            let te = t.text_embedding(&template.replacen("{}", p.as_str().unwrap(), 1)).unwrap();
            let e = max_abs_diff(&te, &want_text[i * d..(i + 1) * d]);
            eprintln!("text embedding {i} max abs error {e:.2e}");
            assert!(e <= tol, "text embedding {i}: max abs error {e}");
            logits.push(dams::teachers::clap::scoring::dot(&a, &te) * t.logit_scale());
        }
        let e = max_abs_diff(&logits, &golden("logits_per_audio", &[1, 3]));
        eprintln!("logits_per_audio max abs error {e:.2e}");
        assert!(e <= tol, "logits max abs error {e} (logit scale {})", t.logit_scale());
        // The teacher's default scores are the pipeline's (softmax over the three prompts, summing to 1).
        use dams::teachers::Teacher;
        let mut t = t.with_prompts("python", &PromptSet::python()).unwrap();
        let out = t.score_batch(&[&clip("clip")]).unwrap().remove(0);
        let want = golden("pipeline_scores", &[3]);
        let e = max_abs_diff(&out.scores, &want);
        eprintln!("pipeline scores max abs error {e:.2e}: {:?} vs {want:?}", out.scores);
        assert!(e <= tol);
        assert!((out.scores.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert_eq!(out.raw.as_ref().unwrap().len(), 6, "3 class + 3 negative similarities");
    }

    #[test]
    fn embeddings_and_logits_match_transformers() {
        check(Engine::cpu(), 1e-4);
    }

    /// Burn's own softmax and GELU instead of the host kernels (the path a GPU takes), on the CPU.
    #[test]
    fn burn_ops_path_matches_transformers() {
        let t = open_on(&fixture(), Engine::cpu()).unwrap();
        let m = t.model().clone().with_cpu_kernels(false);
        let mel = golden("mel", &[1001, 64]);
        let e = m.embed_audio(&mel, 1, 1001, &Engine::cpu().device);
        let v = e.into_data().try_to_vec::<f32>().unwrap();
        let err = max_abs_diff(&v, &golden("audio_embeds", &[1, t.config().projection_dim]));
        eprintln!("audio embedding, burn ops: max abs error {err:.2e}");
        assert!(err <= 1e-4);
    }

    /// The GPU path on wgpu (Mesa lavapipe where there is no GPU): same goldens, same bounds (1e-4 on embeddings,
    /// logits and scores). Skipped, saying so, without a Vulkan adapter.
    #[test]
    fn embeddings_match_transformers_on_wgpu() {
        let engine = match Engine::select(dams::engine::DeviceChoice::GpuSoftware) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("SKIPPED embeddings_match_transformers_on_wgpu: {e}");
                return;
            }
        };
        eprintln!("wgpu parity on {}", engine.description);
        check(engine, 1e-4);
    }

    /// Copy the fixture to a temp dir and apply `edit` to it.
    fn variant(edit: impl FnOnce(&Path)) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for f in std::fs::read_dir(fixture()).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, d.path().join(f.file_name().unwrap())).unwrap();
        }
        edit(d.path());
        d
    }

    fn rewrite_tensors(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>)) {
        // Integer buffers are recomputed by dams: the rewritten file keeps the float tensors only.
        let p = dir.join("model.safetensors");
        let mut c = Checkpoint::open(&p).unwrap();
        let names: Vec<String> = c.names().map(String::from).collect();
        let mut ts = Vec::new();
        for n in names {
            let shape = c.shape(&n).unwrap().to_vec();
            if let Ok(v) = c.take_raw(&n) {
                ts.push((n, shape, v));
            }
        }
        edit(&mut ts);
        let refs: Vec<(&str, Vec<usize>, &[f32])> =
            ts.iter().map(|(n, s, v)| (n.as_str(), s.clone(), v.as_slice())).collect();
        dams::teachers::weights::safetensors::write_f32(&p, &refs).unwrap();
    }

    fn open_err(dir: &Path) -> String {
        open_on(dir, Engine::cpu()).unwrap_err().to_string()
    }

    #[test]
    fn hostile_checkpoints_give_clear_errors() {
        // Without the integer buffers (recomputed) the checkpoint still loads and gives the same embedding.
        let d = variant(|d| rewrite_tensors(d, |_| {}));
        let t = open_on(d.path(), Engine::cpu()).unwrap();
        let a = t.embed_mels(&[golden("mel", &[1001, 64])]).unwrap().remove(0);
        assert!(max_abs_diff(&a, &golden("audio_embeds", &[1, 16])) <= 1e-4);

        let d = variant(|d| {
            rewrite_tensors(d, |ts| ts.retain(|(n, _, _)| !n.ends_with("layers.2.blocks.1.output.dense.weight")))
        });
        let e = open_err(d.path());
        assert!(e.contains("missing tensor 'audio_model.audio_encoder.layers.2.blocks.1.output.dense.weight'"), "{e}");

        let d = variant(|d| {
            rewrite_tensors(d, |ts| {
                let t = ts.iter_mut().find(|(n, _, _)| n == "text_projection.linear1.weight").unwrap();
                t.2[3] = f32::NAN;
            })
        });
        let e = open_err(d.path());
        assert!(e.contains("text_projection.linear1.weight") && e.contains("non-finite"), "{e}");

        let d = variant(|d| rewrite_tensors(d, |ts| ts.push(("extra.weight".into(), vec![2], vec![1.0, 2.0]))));
        assert!(open_err(d.path()).contains("unexpected tensor(s), e.g. 'extra.weight'"));

        let d = variant(|d| {
            rewrite_tensors(d, |ts| {
                let t = ts.iter_mut().find(|(n, _, _)| n.ends_with("patch_embed.proj.weight")).unwrap();
                t.1 = vec![8, 1, 2, 8];
            })
        });
        let e = open_err(d.path());
        assert!(e.contains("patch_embed.proj.weight") && e.contains("shape [8, 1, 2, 8]"), "{e}");

        // A wrong relative-position index is refused, not silently recomputed.
        let d = variant(|d| {
            let p = d.join("model.safetensors");
            let mut bytes = std::fs::read(&p).unwrap();
            let c = Checkpoint::open(&p).unwrap();
            drop(c);
            // Flip a byte inside the first relative_position_index tensor's data (found through the header).
            let hlen = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
            let h: serde_json::Value = serde_json::from_slice(&bytes[8..8 + hlen]).unwrap();
            let (_, e) = h.as_object().unwrap().iter().find(|(k, _)| k.ends_with("relative_position_index")).unwrap();
            let off = e["data_offsets"][0].as_u64().unwrap() as usize;
            bytes[8 + hlen + off] ^= 1;
            std::fs::write(&p, bytes).unwrap();
        });
        assert!(open_err(d.path()).contains("relative-position index"));

        // Truncated weights, garbage config, fused config, wrong sizes, bad preprocessor, bad tokenizer.
        let d = variant(|d| {
            let p = d.join("model.safetensors");
            let b = std::fs::read(&p).unwrap();
            std::fs::write(&p, &b[..b.len() - 1000]).unwrap();
        });
        let e = open_err(d.path());
        assert!(e.contains("model.safetensors"), "{e}");
        let d = variant(|d| std::fs::write(d.join("config.json"), "[1, 2").unwrap());
        assert!(open_err(d.path()).contains("not a CLAP config.json"));
        let cfg_text = std::fs::read_to_string(fixture().join("config.json")).unwrap();
        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v: serde_json::Value = serde_json::from_str(&cfg_text).unwrap();
            f(&mut v);
            let s = v.to_string();
            variant(move |d| std::fs::write(d.join("config.json"), s).unwrap())
        };
        let d = with(&|v| v["audio_config"]["enable_fusion"] = true.into());
        let e = open_err(d.path());
        assert!(e.contains("fused CLAP checkpoint") && e.contains("unfused HTSAT path only"), "{e}");
        let d = with(&|v| v["text_config"]["hidden_size"] = 1_000_000.into());
        assert!(open_err(d.path()).contains("text_config.hidden_size = 1000000 is out of range"));
        let d = with(&|v| v["audio_config"]["depths"] = serde_json::json!([2, 2, 2]));
        assert!(open_err(d.path()).contains("equal length"));
        let d = with(&|v| v["audio_config"]["hidden_size"] = 128.into());
        assert!(open_err(d.path()).contains("differs from the last stage's width 64"));
        let d = with(&|v| v["text_config"]["hidden_act"] = "swish".into());
        assert!(open_err(d.path()).contains("'swish' is not supported"));
        let d = variant(|d| std::fs::write(d.join("preprocessor_config.json"), r#"{"sampling_rate": 44100}"#).unwrap());
        assert!(open_err(d.path()).contains("48000 only"));
        let d = variant(|d| std::fs::write(d.join("preprocessor_config.json"), r#"{"truncation": "fusion"}"#).unwrap());
        assert!(open_err(d.path()).contains("fused checkpoints"));
        let d = variant(|d| std::fs::write(d.join("tokenizer.json"), "garbage").unwrap());
        assert!(open_err(d.path()).contains("CLAP tokenizer"));
        let d = variant(|d| {
            std::fs::remove_file(d.join("model.safetensors")).unwrap();
            std::fs::write(d.join("pytorch_model.bin"), b"PK").unwrap();
        });
        assert!(open_err(d.path()).contains("dams reads safetensors only"));
    }
}

fn run_ok(c: &mut std::process::Command) -> String {
    let o = c.output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{c:?} failed:\n{out}\n{}", String::from_utf8_lossy(&o.stderr));
    out
}

fn run_err(c: &mut std::process::Command) -> String {
    let o = c.output().unwrap();
    assert!(!o.status.success(), "{c:?} should fail");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The teacher end to end on the demo workspace with the tiny checkpoint: install, score (Python scoring), the
/// embedding cache, other scorings from the cache and by remap, prompt sets, the seed's adaptations, thresholds and
/// pseudo-labels with `label_source = clap_zero_shot`.
#[cfg(feature = "burn")]
#[test]
fn score_the_demo_workspace_with_an_installed_checkpoint() {
    use dams::teachers::clap::scoring::{self, Scoring};
    let home = tempfile::tempdir().unwrap();
    let ws = dams::demo::ensure_at(&home.path().join("demo"), false).unwrap().workspace;
    let ws_arg = ws.root().to_str().unwrap().to_string();
    let dams = || common::dams(home.path());
    let list = run_ok(dams().args(["teachers"]));
    assert!(list.contains("dams teachers pull clap"), "{list}");
    let e = run_err(dams().args(["-w", &ws_arg, "score", "--teacher", "clap"]));
    assert!(e.contains("not installed") && e.contains("dams teachers pull clap"), "{e}");
    // A fused config is refused at install with the reason; the real folder installs.
    let fused = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(fixture()).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, fused.path().join(f.file_name().unwrap())).unwrap();
    }
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("config.json")).unwrap()).unwrap();
    v["audio_config"]["enable_fusion"] = true.into();
    std::fs::write(fused.path().join("config.json"), v.to_string()).unwrap();
    let e = run_err(dams().args(["teachers", "add", "clap", "--from", fused.path().to_str().unwrap()]));
    assert!(e.contains("fused CLAP checkpoint"), "{e}");
    run_ok(dams().args(["teachers", "add", "clap", "--from", fixture().to_str().unwrap()]));

    let out = run_ok(dams().args(["-w", &ws_arg, "score", "--teacher", "clap", "--split", "dev"]));
    let store = ws.open_store().unwrap();
    let n_dev = store.segments(Some(&[dams::labels::Split::Dev])).unwrap().len();
    assert!(n_dev >= 5, "demo dev split: {n_dev}");
    assert!(out.contains(&format!("{n_dev} scored")), "{out}");
    let runs = store.runs().unwrap();
    let run = runs.iter().find(|r| r.teacher == "clap").unwrap().clone();
    assert!(
        run.settings.contains(r#""scoring":"softmax""#) && run.settings.contains(r#""prompts":"python""#),
        "{}",
        run.settings
    );
    let settings: serde_json::Value = serde_json::from_str(&run.settings).unwrap();
    let scale = settings["logit_scale"].as_f64().unwrap() as f32;
    let groups = scoring::group_names([true; 3]);
    let first = store.run_scores(run.id).unwrap();
    assert_eq!(first.len(), n_dev);
    for (id, s) in &first {
        let raw = store.logits(run.id, *id).unwrap().expect("per-prompt similarities stored");
        assert_eq!(raw.len(), 6);
        assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-5, "softmax scores sum to 1: {s:?}");
        let want = scoring::score(&raw, &groups, Scoring::Softmax, scale).unwrap();
        assert!(max_abs_diff(s, &want) < 1e-6);
    }
    // Audio embeddings cached (one per scored segment) and the Python thresholds set.
    let ck = run.checksum.clone();
    assert_eq!(store.embedded_segments(&ck, dams::teachers::clap::EMBEDDING_KIND).unwrap().len(), n_dev);
    let th = store.thresholds("clap").unwrap();
    assert_eq!(
        th.iter().map(|t| t.as_ref().and_then(|t| t.value)).collect::<Vec<_>>(),
        vec![Some(0.45), Some(0.35), Some(0.35)]
    );

    // Another scoring: every segment from the cache (the audio tower does not run), the same raw similarities.
    let out = run_ok(dams().args([
        "-w",
        &ws_arg,
        "score",
        "--teacher",
        "clap",
        "--split",
        "dev",
        "--option",
        "scoring=pairwise",
    ]));
    assert!(out.contains(&format!("{n_dev} scored")), "{out}");
    let pw = store.runs().unwrap().last().unwrap().clone();
    assert!(pw.settings.contains(r#""scoring":"pairwise""#));
    for (id, s) in store.run_scores(pw.id).unwrap() {
        let raw = store.logits(pw.id, id).unwrap().unwrap();
        assert_eq!(raw, store.logits(run.id, id).unwrap().unwrap(), "same similarities from the cache");
        let want = scoring::score(&raw, &groups, Scoring::Pairwise, scale).unwrap();
        assert!(max_abs_diff(&s, &want) < 1e-6);
    }
    // Remap by scoring, without the model.
    let out = run_ok(dams().args(["-w", &ws_arg, "remap", "--run", &run.id.to_string(), "--option", "scoring=cosine"]));
    assert!(out.contains("derived again"), "{out}");
    let rm = store.runs().unwrap().last().unwrap().clone();
    for (id, s) in store.run_scores(rm.id).unwrap() {
        let raw = store.logits(run.id, id).unwrap().unwrap();
        for c in 0..3 {
            assert!((s[c] - (raw[c] + 1.0) / 2.0).abs() < 1e-6);
        }
    }

    // A prompt set of the workspace: several prompts per class, re-scored from the cache.
    std::fs::write(
        ws.root().join("prompts.toml"),
        "[sets.radio]\nspeech = [\"a presenter talking\", \"people speaking on air\"]\nmusic = [\"a song\"]\nnoise = [\"static and hiss\"]\n",
    )
    .unwrap();
    let out = run_ok(dams().args([
        "-w",
        &ws_arg,
        "score",
        "--teacher",
        "clap",
        "--split",
        "dev",
        "--option",
        "prompts=radio",
    ]));
    assert!(out.contains(&format!("{n_dev} scored")), "{out}");
    let radio = store.runs().unwrap().last().unwrap().clone();
    assert!(radio.settings.contains(r#""prompts":"radio""#), "{}", radio.settings);
    let (id0, _) = first[0];
    let r = store.logits(radio.id, id0).unwrap().unwrap();
    assert_eq!(r.len(), 3, "no negatives in this set");
    assert_ne!(r[..3], store.logits(run.id, id0).unwrap().unwrap()[..3]);
    let e = run_err(dams().args(["-w", &ws_arg, "score", "--teacher", "clap", "--option", "prompts=nope"]));
    assert!(e.contains("no prompt set 'nope'") && e.contains("radio"), "{e}");
    let e = run_err(dams().args([
        "-w",
        &ws_arg,
        "score",
        "--teacher",
        "clap",
        "--option",
        "prompts=radio",
        "--option",
        "scoring=pairwise",
    ]));
    assert!(e.contains("needs negative prompts"), "{e}");

    // The seed's adaptation from the cache: background needs marked segments; TGAP works from the pool.
    let e = run_err(dams().args([
        "-w",
        &ws_arg,
        "score",
        "--teacher",
        "clap",
        "--split",
        "dev",
        "--option",
        "adapt=background",
    ]));
    assert!(e.contains("marked as background"), "{e}");
    let bg = first[1].0;
    std::fs::write(ws.root().join("prompts.toml"), format!("background = [{bg}]\n")).unwrap();
    let out = run_ok(dams().args([
        "-w",
        &ws_arg,
        "score",
        "--teacher",
        "clap",
        "--split",
        "dev",
        "--option",
        "adapt=tgap+background",
        "--option",
        "tau=0.25",
    ]));
    assert!(out.contains(&format!("{n_dev} scored")), "{out}");
    let ad = store.runs().unwrap().last().unwrap().clone();
    assert!(
        ad.settings.contains(r#""adapt":"tgap+background""#) && ad.settings.contains(r#""tau":0.25"#),
        "{}",
        ad.settings
    );
    // Check S' = S − τ·B against the arithmetic on the cached embeddings.
    let cached = store.embeddings(&ck, dams::teachers::clap::EMBEDDING_KIND, 16).unwrap();
    let mut ids: Vec<i64> = cached.keys().copied().collect();
    ids.sort_unstable();
    let pool: Vec<Vec<f32>> = ids.iter().map(|i| cached[i].clone()).collect();
    // Text anchors = the run-1 similarities' source: recover them from the teacher.
    let teacher = dams::teachers::clap::ClapTeacher::open(&fixture(), dams::engine::Engine::cpu(), None).unwrap();
    let protos = scoring::tgap(&pool, teacher.anchors(), 35);
    let b = scoring::background_profile(&[cached[&bg].clone()], &protos);
    for (id, s) in store.run_scores(ad.id).unwrap() {
        let sims: Vec<f32> = protos.iter().map(|p| scoring::dot(&cached[&id], p)).collect();
        let adapted = scoring::subtract_background(&sims, &b, 0.25);
        assert!(max_abs_diff(&store.logits(ad.id, id).unwrap().unwrap(), &adapted) < 1e-5);
        assert!(max_abs_diff(&s, &scoring::score(&adapted, &groups, Scoring::Softmax, scale).unwrap()) < 1e-5);
    }

    // Pseudo-labels of the zero-shot teacher carry its label source.
    let out = run_ok(dams().args(["-w", &ws_arg, "pseudo-label", "--teacher", "clap", "--k", "1", "--splits", "dev"]));
    assert!(out.contains("clap_zero_shot"), "{out}");
    assert!(store.latest_pseudo_run("clap_zero_shot").unwrap().is_some());
}
