//! M2D-CLAP parity with the reference `portable_m2d.py` (goldens made by `tools/m2d/make_goldens.py` from a tiny
//! random M2D-CLAP saved in the published `.pth` layout and run through the reference loader), the tokenizer's ids,
//! hostile checkpoints, and scoring a workspace with an installed checkpoint.

mod common;
use std::path::{Path, PathBuf};

use dams::teachers::ast::checkpoint::Checkpoint;
use dams::teachers::m2d::features::{LogMel, mel_filters};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/m2d/tiny")
}

fn meta() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("goldens.json")).unwrap()).unwrap()
}

fn golden(name: &str) -> Vec<f32> {
    Checkpoint::open(&fixtures().join("goldens.safetensors")).unwrap().take_raw(name).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The goldens' clips: the first 10 s of the demo clips, decoded as dams decodes them.
fn clips() -> Vec<(String, Vec<f32>)> {
    meta()["clips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(c["file"].as_str().unwrap());
            let mut x = dams::audio::load_mono_16k(&p).unwrap();
            x.truncate(160_000);
            (c["name"].as_str().unwrap().to_string(), x)
        })
        .collect()
}

#[test]
fn mel_filters_match_nnaudio() {
    let want = golden("mel_filters");
    let got: Vec<f32> = mel_filters().iter().map(|&v| v as f32).collect();
    let err = max_abs_diff(&got, &want);
    eprintln!("mel filters: max |Δ| {err:.3e}");
    assert!(err <= 1e-6, "{err}");
}

#[test]
fn log_mel_matches_portable_m2d() {
    let meta = meta();
    let stats: Vec<f32> = meta["norm_stats"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    let frames: Vec<usize> = meta["frames"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    let mut lm = LogMel::new(stats[0], stats[1]);
    for (name, x) in clips() {
        let f = lm.features(&x);
        assert_eq!(f.len(), 80 * 1001);
        let mut sel = Vec::new();
        for m in 0..80 {
            for &t in &frames {
                sel.push(f[m * 1001 + t]);
            }
        }
        let err = max_abs_diff(&sel, &golden(&format!("{name}.lms_frames")));
        eprintln!("{name}: log-mel max |Δ| {err:.3e}");
        assert!(err <= 1e-4, "{name}: {err}");
    }
}

#[cfg(feature = "burn")]
#[test]
fn tokenizer_ids_match_the_python_tokenizer_exactly() {
    use dams::teachers::m2d::text::WordPiece;
    let meta = meta();
    let tok = WordPiece::open(&fixtures().join("tokenizer.json"), 150, 96).unwrap();
    for (i, p) in dams::teachers::m2d::PROMPTS.iter().enumerate() {
        assert_eq!(*p, meta["prompts"][i].as_str().unwrap(), "the prompts are the Python project's");
        let want: Vec<u32> =
            meta["prompt_ids"][i].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(tok.ids(p).unwrap(), want, "prompt {i}");
    }
    for c in meta["tokenizer_cases"].as_array().unwrap() {
        let want: Vec<u32> = c["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(tok.ids(c["text"].as_str().unwrap()).unwrap(), want, "{c}");
    }
    // A vocabulary that does not fit the checkpoint's BERT is refused.
    let e = WordPiece::open(&fixtures().join("tokenizer.json"), 30522, 512).unwrap_err().to_string();
    assert!(e.contains("150 tokens") && e.contains("30522"), "{e}");
}

#[cfg(feature = "burn")]
mod parity {
    use super::*;
    use dams::engine::Engine;
    use dams::teachers::m2d::M2dTeacher;
    use dams::teachers::m2d::config::AudioProj;

    fn open(engine: Engine, cpu_kernels: bool) -> M2dTeacher {
        M2dTeacher::open(&fixtures(), engine, None).unwrap().with_cpu_kernels(cpu_kernels)
    }

    /// Tokens, audio embeddings, text embeddings and cosines against the goldens, both clips in one batch.
    fn check(engine: Engine, cpu_kernels: bool, tol: f32) {
        let meta = meta();
        let mut t = open(engine, cpu_kernels);
        let c = t.config().clone();
        assert_eq!((c.dim, c.depth, c.heads, c.mlp_hidden, c.grid), (64, 2, 1, 128, (5, 62)));
        assert_eq!(c.audio_proj, AudioProj::Semantic { depth: 1, hidden: 64 });
        assert_eq!((c.bert.hidden, c.bert.layers, c.bert.heads, c.bert.intermediate), (128, 2, 2, 192));
        let stats = t.norm_stats();
        assert!((stats[0] as f64 - meta["norm_stats"][0].as_f64().unwrap()).abs() < 1e-6);

        // Text: ids, [CLS] and text_proj per prompt.
        let cls = golden("text.cls");
        let emb = golden("text.emb");
        let mut worst = (0f32, 0f32);
        for i in 0..3 {
            let want: Vec<u32> =
                meta["prompt_ids"][i].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
            assert_eq!(t.prompt_ids()[i], want);
            let got = t.text_cls(&want).unwrap();
            worst.0 = worst.0.max(max_abs_diff(&got, &cls[i * 128..(i + 1) * 128]));
            worst.1 = worst.1.max(max_abs_diff(&t.text_embeddings()[i], &emb[i * 64..(i + 1) * 64]));
        }
        eprintln!("text: [CLS] max |Δ| {:.3e}, text_proj max |Δ| {:.3e}", worst.0, worst.1);
        assert!(worst.0 <= tol && worst.1 <= tol, "{worst:?}");

        // Audio.
        let clips = clips();
        let batch: Vec<&[f32]> = clips.iter().map(|(_, x)| x.as_slice()).collect();
        let feats = t.features(&batch);
        let (tokens, embs) = t.run_features(feats, batch.len()).unwrap();
        let per = tokens.len() / batch.len();
        assert_eq!(per, 310 * 64);
        let cos = t.cosines(&batch).unwrap();
        for (i, (name, _)) in clips.iter().enumerate() {
            let e_tok = max_abs_diff(&tokens[i * per..(i + 1) * per], &golden(&format!("{name}.tokens")));
            let e_emb = max_abs_diff(&embs[i], &golden(&format!("{name}.audio_emb")));
            let e_cos = max_abs_diff(&cos[i], &golden(&format!("{name}.scores")));
            eprintln!("{name}: tokens max |Δ| {e_tok:.3e}, audio embedding {e_emb:.3e}, cosines {e_cos:.3e}");
            assert!(e_tok <= tol && e_emb <= tol && e_cos <= tol, "{name}: {e_tok} {e_emb} {e_cos}");
        }
    }

    #[test]
    fn embeddings_and_cosines_match_portable_m2d_on_the_cpu() {
        check(Engine::cpu(), true, 1e-4);
    }

    #[test]
    fn burn_softmax_and_gelu_match_too() {
        check(Engine::cpu(), false, 1e-4);
    }

    /// The same goldens through wgpu (a Vulkan adapter, lavapipe included). Skipped, saying so, where there is none.
    #[test]
    fn embeddings_match_portable_m2d_on_wgpu() {
        match Engine::select(dams::engine::DeviceChoice::GpuSoftware) {
            Ok(e) => {
                eprintln!("wgpu parity on {}", e.description);
                check(e, false, 1e-4)
            }
            Err(e) => eprintln!("SKIPPED embeddings_match_portable_m2d_on_wgpu: {e}"),
        }
    }
}

mod hostile {
    use super::*;
    use dams::teachers::m2d::install::check_folder;

    /// A folder with `checkpoint-30.pth` = `pth` and the fixture tokenizer.
    fn folder_with(pth: &[u8]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("checkpoint-30.pth"), pth).unwrap();
        std::fs::copy(fixtures().join("tokenizer.json"), d.path().join("tokenizer.json")).unwrap();
        d
    }

    fn pth() -> Vec<u8> {
        std::fs::read(fixtures().join("checkpoint-30.pth")).unwrap()
    }

    fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        assert_eq!(from.len(), to.len(), "same length keeps the zip offsets");
        let i = bytes.windows(from.len()).position(|w| w == from).expect("pattern in the fixture");
        let mut b = bytes.to_vec();
        b[i..i + to.len()].copy_from_slice(to);
        b
    }

    #[test]
    fn the_fixture_folder_checks_and_pretraining_keys_are_dropped() {
        let s = check_folder(&fixtures()).unwrap();
        assert!(s.contains("2 layers, width 64") && s.contains("semantic projector") && s.contains("vocab 150"), "{s}");
        let (w, _) = dams::teachers::m2d::install::open_checked(&fixtures().join("checkpoint-30.pth")).unwrap();
        for n in [
            "mask_token",
            "target_norm.weight",
            "decoder_embed.weight",
            "text_encoder.text_encoder.pooler.dense.weight",
        ] {
            assert!(w.names().any(|m| m == n), "the fixture has {n} to drop");
        }
    }

    #[test]
    fn key_prefixes_are_handled_as_the_reference_does() {
        use dams::teachers::m2d::config::M2dWeights;
        use dams::teachers::weights::TensorSource;
        // RuntimeM2D: the `backbone.` keys are the audio model; BERT stays under `text_encoder.`; others are ignored.
        let mut w = M2dWeights::open(&fixtures().join("prefix_runtime.pth")).unwrap();
        let names: Vec<&str> = w.names().collect();
        assert_eq!(names, ["cls_token", "norm.weight", "text_encoder.text_encoder.embeddings.LayerNorm.weight"]);
        assert_eq!(w.take("norm.weight", &[4]).unwrap(), [200.0, 201.0, 202.0, 203.0]);
        assert_eq!(
            w.take("text_encoder.text_encoder.embeddings.LayerNorm.weight", &[3]).unwrap(),
            [300.0, 301.0, 302.0]
        );
        let e = w.config().unwrap_err().to_string();
        assert!(e.contains("missing tensor 'pos_embed'"), "{e}");
        // EVAR fine-tuning: `module.ar.runtime.backbone.` removed; its head is a known part to drop.
        let mut w = M2dWeights::open(&fixtures().join("prefix_evar.pth")).unwrap();
        let names: Vec<&str> = w.names().collect();
        assert_eq!(names, ["cls_token", "module.head.mlp.mlp.0.weight"]);
        assert_eq!(w.take("cls_token", &[1, 1, 4]).unwrap(), [500.0, 501.0, 502.0, 503.0]);
        assert!(dams::teachers::m2d::config::is_dropped("module.head.mlp.mlp.0.weight"));
        // A wrong shape is named with both shapes.
        let e = w.take("cls_token", &[1, 1, 8]).unwrap_err().to_string();
        assert!(e.contains("has shape [1, 1, 4]") && e.contains("[1, 1, 8]"), "{e}");
    }

    #[test]
    fn truncated_files_are_clear_errors() {
        let b = pth();
        for cut in [0, 10, 100, 5_000, b.len() / 2, b.len() - 30, b.len() - 1] {
            let e = check_folder(folder_with(&b[..cut]).path()).unwrap_err().to_string();
            assert!(
                e.contains("checkpoint-30.pth") && (e.contains("truncated") || e.contains("not a PyTorch zip")),
                "cut {cut}: {e}"
            );
        }
        let flac =
            std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ex_16k_mono.flac")).unwrap();
        let e = check_folder(folder_with(&flac).path()).unwrap_err().to_string();
        assert!(e.contains("not a PyTorch zip checkpoint"), "{e}");
    }

    #[test]
    fn unknown_pickle_globals_are_refused_by_name() {
        // The args' class swapped for a callable of the same name length.
        let evil = replace(&pth(), b"argparse\nNamespace", b"builtins\nexecfile_");
        let e = check_folder(folder_with(&evil).path()).unwrap_err().to_string();
        assert!(e.contains("'builtins.execfile_'") && e.contains("never imports or runs pickled code"), "{e}");
        let evil = replace(&pth(), b"collections\nOrderedDict", b"subprocess\ncheck_output");
        let e = check_folder(folder_with(&evil).path()).unwrap_err().to_string();
        assert!(e.contains("'subprocess.check_output'") && e.contains("never imports or runs pickled code"), "{e}");
    }

    #[test]
    fn unknown_keys_and_wrong_shapes_are_named() {
        // A key that is neither the model's nor a known pretraining part: renamed in the pickle, same length.
        let odd = replace(&pth(), b"decoder_embed.weight", b"mystery_part.weights");
        let e = check_folder(folder_with(&odd).path()).unwrap_err().to_string();
        assert!(e.contains("unexpected tensor 'mystery_part.weights'"), "{e}");
        // A block's tensor renamed away: missing, named with its shape.
        let miss = replace(&pth(), b"blocks.1.mlp.fc2.bias", b"blocks.1.mlp.fc2.bia_");
        let e = check_folder(folder_with(&miss).path()).unwrap_err().to_string();
        assert!(e.contains("missing tensor 'blocks.1.mlp.fc2.bias'"), "{e}");
        // The tokenizer of another BERT.
        let d = folder_with(&pth());
        let tok = std::fs::read_to_string(fixtures().join("tokenizer.json")).unwrap();
        let wider = tok.replace("\"[PAD]\": 0,", "\"[PAD]\": 0, \"zzextra\": 150,");
        std::fs::write(d.path().join("tokenizer.json"), wider).unwrap();
        let e = check_folder(d.path()).unwrap_err().to_string();
        assert!(e.contains("tokenizer.json") && e.contains("151 tokens"), "{e}");
        // Not a tokenizer at all.
        std::fs::write(d.path().join("tokenizer.json"), "{}").unwrap();
        let e = check_folder(d.path()).unwrap_err().to_string();
        assert!(e.contains("tokenizer.json") && e.contains("not a tokenizer.json"), "{e}");
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

#[cfg(feature = "burn")]
#[test]
fn score_a_workspace_with_an_installed_checkpoint() {
    use dams::labels::{LabelSource, Split};
    use dams::store::NewSegment;
    use dams::workspace::Workspace;

    let home = tempfile::tempdir().unwrap();
    let list = run_ok(common::dams(home.path()).args(["teachers"]));
    assert!(list.contains("m2d") && list.contains("dams teachers add m2d --from DIR"), "{list}");

    let ws_dir = home.path().join("ws");
    let ws = Workspace::init(&ws_dir).unwrap();
    let clips = clips();
    let mut rows = Vec::new();
    for (i, (name, x)) in clips.iter().enumerate() {
        let rel = format!("segments/{name}.wav");
        let path = ws.abs_data_path(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        dams::audio::write_wav_16k(&path, x).unwrap();
        rows.push(NewSegment {
            segment_path: rel,
            raw_file: format!("{name}.flac"),
            start_time: 0.0,
            end_time: x.len() as f64 / 16_000.0,
            split: if i % 2 == 0 { Split::Train } else { Split::Unlabeled },
            label_source: LabelSource::none(),
            labels: None,
            scores: [None; 3],
            extra: None,
        });
    }
    ws.open_store().unwrap().upsert_segments(&rows).unwrap();
    let ws_arg = ws_dir.to_str().unwrap();
    let e = run_err(common::dams(home.path()).args(["-w", ws_arg, "score", "--teacher", "m2d"]));
    assert!(e.contains("not installed") && e.contains("teachers add m2d"), "{e}");

    // A folder without the files is refused; a truncated checkpoint is refused with the file named; the fixture
    // folder installs.
    let e = run_err(common::dams(home.path()).args(["teachers", "add", "m2d", "--from", ws_arg]));
    assert!(e.contains("tokenizer.json") || e.contains("checkpoint-30.pth"), "{e}");
    let bad = tempfile::tempdir().unwrap();
    let b = std::fs::read(fixtures().join("checkpoint-30.pth")).unwrap();
    std::fs::write(bad.path().join("checkpoint-30.pth"), &b[..b.len() / 3]).unwrap();
    std::fs::copy(fixtures().join("tokenizer.json"), bad.path().join("tokenizer.json")).unwrap();
    let e = run_err(common::dams(home.path()).args(["teachers", "add", "m2d", "--from", bad.path().to_str().unwrap()]));
    assert!(e.contains("checkpoint-30.pth") && (e.contains("truncated") || e.contains("not a PyTorch zip")), "{e}");
    let src = tempfile::tempdir().unwrap();
    for f in ["checkpoint-30.pth", "tokenizer.json"] {
        std::fs::copy(fixtures().join(f), src.path().join(f)).unwrap();
    }
    run_ok(common::dams(home.path()).args(["teachers", "add", "m2d", "--from", src.path().to_str().unwrap()]));
    let list = run_ok(common::dams(home.path()).args(["teachers"]));
    assert!(
        list.lines().any(|l| l.starts_with("m2d") && l.contains("installed") && !l.contains("not installed")),
        "{list}"
    );

    let out = run_ok(common::dams(home.path()).args(["-w", ws_arg, "score", "--teacher", "m2d"]));
    assert!(out.contains("2 scored"), "{out}");
    let store = ws.open_store().unwrap();
    let run = store.runs().unwrap().into_iter().rev().find(|r| r.teacher == "m2d").unwrap();
    assert_eq!(run.n_scores, 2);
    let goldens: Vec<Vec<f32>> = clips.iter().map(|(n, _)| golden(&format!("{n}.scores"))).collect();
    for (seg_id, scores) in store.run_scores(run.id).unwrap() {
        let raw = store.logits(run.id, seg_id).unwrap().expect("raw cosines stored");
        assert!(goldens.iter().any(|g| max_abs_diff(g, &raw) <= 1e-4), "segment {seg_id}: cosines differ: {raw:?}");
        // Scores are the cosines clamped into [0, 1].
        let want: Vec<f32> = raw.iter().map(|v| v.clamp(0.0, 1.0)).collect();
        assert!(max_abs_diff(&scores, &want) < 1e-6, "{scores:?} {raw:?}");
    }
    // The Python thresholds are the defaults, and pseudo-labels carry the Python project's label source.
    let th = run_ok(common::dams(home.path()).args(["-w", ws_arg, "thresholds", "show"]));
    assert!(th.contains("m2d") && th.contains("0.24") && th.contains("0.26"), "{th}");
    let out = run_ok(common::dams(home.path()).args(["-w", ws_arg, "pseudo-label", "--teacher", "m2d"]));
    assert!(out.contains("m2d_zero_shot"), "{out}");
    assert_eq!(dams::catalog::label_source("m2d").as_str(), "m2d_zero_shot");
}
