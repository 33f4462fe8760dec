//! `dams bench student`: training throughput (segments/s) of the CNN student on the CPU, against
//! the same architecture in PyTorch on the same machine and in the same run when `python3` has
//! torch (tools/student_torch_bench.py, passed with `--torch-script`).

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use burn::tensor::Device;

use super::checkpoint::Meta;
use super::data::{self, Augment, Dataset, Example, Rng, SourceSpec};
use super::model::CnnConfig;
use super::train::{self, TrainConfig};
use crate::jobs::JobRunner;

/// Generated 10-s segments: tones (music), noise and harmonic bursts (speech).
fn dataset(n: usize) -> Dataset {
    let frames = data::frames_for(160_000);
    let mut spec = crate::dsp::spectrogram::MelSpectrogrammer::new(data::spec_config());
    let mut rng = Rng::new(1);
    let train = (0..n)
        .map(|i| {
            let kind = i % 3;
            let f = 110.0 * (1 + rng.below(8)) as f32;
            let x: Vec<f32> = (0..160_000)
                .map(|k| {
                    let t = k as f32 / 16_000.0;
                    match kind {
                        0 => (2.0 * std::f32::consts::PI * f * t).sin() * 0.2,
                        1 => (rng.unit() * 2.0 - 1.0) * 0.2,
                        _ => (2.0 * std::f32::consts::PI * f * t).sin().signum() * 0.1 * (t * 25.0).sin().abs(),
                    }
                })
                .collect();
            let mut target = [0.0; 3];
            target[[1, 2, 0][kind]] = 1.0;
            Example { segment_id: i as i64, feats: data::log_mel(&mut spec, &x, frames), target, weight: 1.0 }
        })
        .collect();
    Dataset { n_mels: data::N_MELS, frames, train, dev: Vec::new() }
}

pub fn run(segments: usize, batch: usize, width: usize, torch_script: Option<&Path>) -> Result<()> {
    let segments = segments.max(batch * 2);
    println!("generating {segments} 10-s segments (log-mel {}x{})...", data::N_MELS, data::frames_for(160_000));
    let ds = dataset(segments);
    let tmp = tempfile_dir()?;
    let meta = Meta {
        kind: "cnn".into(),
        cnn: CnnConfig { n_mels: ds.n_mels, frames: ds.frames, width },
        train: bench_config(1, batch),
        ast_head: None,
        ina_head: None,
        sources: bench_sources(),
    };
    // Warm-up: one short epoch (allocators, thread pool), then the timed epoch.
    let warm = Dataset { train: ds.train[..batch].to_vec(), ..ds.clone() };
    let mut runner = JobRunner::in_memory();
    let (m2, d2) = (meta.clone(), tmp.join("warm"));
    let id = runner.spawn("bench", serde_json::Value::Null, None, move |ctx| {
        train::train(&warm, &m2, &d2, &Device::flex(), false, ctx).map(|_| serde_json::Value::Null)
    })?;
    runner.wait(id);
    let t0 = Instant::now();
    let (m3, d3, ds3) = (meta.clone(), tmp.join("timed"), ds.clone());
    let id = runner.spawn("bench", serde_json::Value::Null, None, move |ctx| {
        train::train(&ds3, &m3, &d3, &Device::flex(), false, ctx).map(|_| serde_json::Value::Null)
    })?;
    let v = runner.wait(id);
    let secs = t0.elapsed().as_secs_f64();
    if let Some(e) = v.and_then(|v| v.error) {
        anyhow::bail!("training failed: {e}");
    }
    let dams = segments as f64 / secs;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "dams (burn-flex, CPU, {threads} threads): {dams:.2} segments/s training (width {width}, batch {batch}, 1 epoch of {segments}, checkpoint included)"
    );
    let _ = std::fs::remove_dir_all(&tmp);
    match torch_script {
        None => println!("PyTorch reference: not run (pass --torch-script tools/student_torch_bench.py)"),
        Some(script) => {
            let out = std::process::Command::new("python3")
                .arg(script)
                .args([segments, batch, width, ds.n_mels, ds.frames, threads].map(|v| v.to_string()))
                .output();
            match out {
                Ok(o) if o.status.code() == Some(3) => {
                    println!("PyTorch reference: torch is not installed for python3; dams figure only")
                }
                Ok(o) if o.status.success() => {
                    let s = String::from_utf8_lossy(&o.stdout);
                    match s.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()) {
                        Some(torch) => println!(
                            "PyTorch (same architecture, {threads} threads): {torch:.2} segments/s; dams/PyTorch = {:.2}x",
                            dams / torch
                        ),
                        None => println!("PyTorch reference: unexpected output {s:?}"),
                    }
                }
                Ok(o) => println!("PyTorch reference failed: {}", String::from_utf8_lossy(&o.stderr).trim()),
                Err(e) => println!("PyTorch reference: cannot run python3 ({e})"),
            }
        }
    }
    Ok(())
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("dams-bench-student-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// The training settings every student bench times: `epochs` of `batch`, no augmentation, seed 0.
fn bench_config(epochs: usize, batch: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: batch,
        lr: 1e-3,
        patience: 0,
        seed: 0,
        threshold: 0.5,
        augment: Augment::none(),
        targets: Default::default(),
    }
}

fn bench_sources() -> Vec<SourceSpec> {
    vec![SourceSpec { source: "gold".into(), weight: 1.0 }]
}

/// `dams bench student --kind ast-head|ina-head`: embedding throughput of the frozen backbone
/// (segments/s, the one-off cost per segment) against the backbone's own teacher pass on the same
/// segments (the reference: the AST's forward to logits, INA's analysis; a teacher scoring run),
/// and head training on the cached embeddings against that embedding rate (how much cheaper an
/// epoch is than recomputing the backbone).
pub fn run_head(ina: bool, segments: usize, batch: usize, ast_dir: Option<&Path>) -> Result<()> {
    use super::ast_head::{self, Backbone, HeadDataset, HeadExample, HeadInput};
    use crate::teachers::Teacher;
    let segments = segments.max(2);
    let (train_cfg, sources) = (bench_config(2, batch), bench_sources());
    let (mut backbone, meta) = if ina {
        let t = crate::teachers::ina::InaTeacher::open(crate::engine::Engine::cpu())?;
        println!("INA {} (embedded), {segments} generated 10-s segments, CPU", ast_head::short(t.checksum()));
        let meta = super::ina_head::new_meta(super::ina_head::ina_meta(&t), train_cfg, sources);
        (Backbone::Ina(t), meta)
    } else {
        let src = ast_head::locate_ast(ast_dir)?;
        let (ast, am) = ast_head::open_ast(&src, crate::engine::Engine::cpu(), None)?;
        println!(
            "AST {} ({} layers, hidden {}), {segments} generated 10-s segments, CPU",
            ast_head::short(&src.checksum),
            am.num_hidden_layers,
            am.hidden_size
        );
        (Backbone::Ast(ast), ast_head::new_meta(am, train_cfg, sources))
    };
    let reference = |b: &mut Backbone, c: &[&[f32]]| -> Result<()> {
        match b {
            Backbone::Ast(a) => {
                a.logits(c)?;
            }
            Backbone::Ina(i) => {
                for w in c {
                    i.analyze(w)?;
                }
            }
        }
        Ok(())
    };
    let mut rng = Rng::new(3);
    let waves: Vec<Vec<f32>> =
        (0..segments).map(|_| (0..160_000).map(|_| (rng.unit() * 2.0 - 1.0) * 0.1).collect()).collect();
    let refs: Vec<&[f32]> = waves.iter().map(Vec::as_slice).collect();
    let chunk = 4;
    // Warm-up.
    reference(&mut backbone, &refs[..1.min(refs.len())])?;
    let t0 = Instant::now();
    for c in refs.chunks(chunk) {
        reference(&mut backbone, c)?;
    }
    let forward = segments as f64 / t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let mut embs = Vec::with_capacity(segments);
    for c in refs.chunks(chunk) {
        embs.extend(backbone.embed(c)?);
    }
    let embed = segments as f64 / t0.elapsed().as_secs_f64();
    let what = if ina { "INA analysis (teacher scoring, reference)" } else { "AST forward to logits (reference)" };
    println!("{what}: {forward:.2} segments/s");
    println!(
        "embedding (pooled vector, cached once): {embed:.2} segments/s = {:.2}x the forward rate",
        embed / forward
    );

    // Head training on the cached embeddings: enough copies for a measurable epoch.
    let train: Vec<HeadExample> = (0..segments.max(4096))
        .map(|i| {
            let mut target = [0.0; 3];
            target[i % 3] = 1.0;
            HeadExample {
                segment_id: i as i64,
                input: HeadInput::Embedding(embs[i % embs.len()].clone()),
                target,
                weight: 1.0,
            }
        })
        .collect();
    let n = train.len();
    let ds = HeadDataset { train, dev: Vec::new() };
    let tmp = tempfile_dir()?;
    let mut runner = JobRunner::in_memory();
    let d = tmp.join("head");
    let t0 = Instant::now();
    let id = runner.spawn("bench", serde_json::Value::Null, None, move |ctx| {
        ast_head::train(&ds, &meta, None, &d, &Device::flex(), false, ctx).map(|_| serde_json::Value::Null)
    })?;
    let v = runner.wait(id);
    let secs = t0.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&tmp);
    if let Some(e) = v.and_then(|v| v.error) {
        anyhow::bail!("training failed: {e}");
    }
    let head = 2.0 * n as f64 / secs;
    println!(
        "head training on cached embeddings: {head:.0} segments/s (batch {batch}, 2 epochs of {n}, checkpoints included) \
         = {:.0}x the embedding rate",
        head / embed
    );
    Ok(())
}
