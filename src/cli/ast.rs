//! `dams bench ast` (installing AST is the generic `dams teachers add|pull`, see `cli/teachers.rs`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::Ctx;

#[derive(Debug, Args)]
pub struct BenchAstArgs {
    /// A checkpoint folder (default: the installed AST). A full-size random-weight one is made by
    /// `tests/reference/make_ast_fixtures.py --full DIR`.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Segments per forward batch.
    #[arg(long, default_value_t = 2)]
    pub batch: usize,
    /// Batches to time (after one warm-up batch).
    #[arg(long, default_value_t = 2)]
    pub batches: usize,
    /// auto, cpu or gpu.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Python with torch + transformers for the reference (skipped when it cannot run).
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// dams' precision: f32, or f16 (GPU adapters with shader-f16).
    #[arg(long, default_value = "f32")]
    pub precision: String,
    /// Where the PyTorch reference runs: cpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub torch_device: String,
    /// The PyTorch reference's precision: fp32, bf16 or fp16.
    #[arg(long, default_value = "fp32")]
    pub torch_dtype: String,
    /// Segments for the fbank timing.
    #[arg(long, default_value_t = 200)]
    pub fbank_segments: usize,
}

#[cfg(feature = "burn")]
pub fn bench(ctx: &Ctx, a: BenchAstArgs) -> Result<()> {
    use std::time::Instant;

    use anyhow::Context as _;

    use crate::engine::{DeviceChoice, Engine};
    use crate::teachers::ast::AstTeacher;
    use crate::teachers::ast::features::Fbank;
    use crate::teachers::ast::install;

    let dir = super::bench::model_dir(
        ctx,
        a.model,
        |c| install::installed(c).map(|_| install::install_dir(c)),
        "AST is not installed; pass --model DIR or run `dams teachers pull ast`",
    )?;
    let segs: Vec<Vec<f32>> = (0..a.batch.max(1)).map(super::bench::test_signal).collect();

    // fbank.
    let cfg = crate::teachers::ast::config::AstConfig::from_file(&dir.join("config.json"))?;
    let mut fb = Fbank::new(cfg.fbank());
    let mut out = vec![0f32; fb.output_len()];
    let n_fb = a.fbank_segments.max(10);
    let t0 = Instant::now();
    for i in 0..n_fb {
        fb.features_into(&segs[i % segs.len()], &mut out);
    }
    let fbank_ms = t0.elapsed().as_secs_f64() * 1e3 / n_fb as f64;

    let choice: DeviceChoice = a.device.parse().map_err(anyhow::Error::msg)?;
    let engine = Engine::select(choice).map_err(anyhow::Error::msg)?;
    if let Some(n) = &engine.notice {
        eprintln!("note: {n}");
    }
    let desc = engine.description.clone();
    let t0 = Instant::now();
    let mut t = AstTeacher::open(&dir, engine, Some("bench".into()))?.with_precision(&a.precision)?;
    let load_s = t0.elapsed().as_secs_f64();
    let refs: Vec<&[f32]> = segs.iter().map(|s| s.as_slice()).collect();
    t.logits(&refs)?; // warm-up
    let t0 = Instant::now();
    for _ in 0..a.batches.max(1) {
        t.logits(&refs)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let n = (a.batches.max(1) * refs.len()) as f64;
    let dams_sps = n / secs;
    println!(
        "model {} ({} layers, hidden {}), loaded in {load_s:.2} s",
        dir.display(),
        cfg.num_hidden_layers,
        cfg.hidden_size
    );
    println!("dams fbank: {fbank_ms:.3} ms per 10 s segment (1 thread)");
    println!(
        "dams forward on {desc} ({}): {dams_sps:.3} segments/s (batch {}, {} batches)",
        a.precision,
        refs.len(),
        a.batches.max(1)
    );

    // The reference: PyTorch + transformers on the same checkpoint and signal, in the same run.
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/bench_ast_torch.py");
    let out = std::process::Command::new(&a.python)
        .arg(&script)
        .arg(&dir)
        .args(["--batch", &refs.len().to_string(), "--batches", &a.batches.max(1).to_string()])
        .args(["--fbank-segments", &n_fb.to_string()])
        .args(["--device", &a.torch_device, "--dtype", &a.torch_dtype])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let v: serde_json::Value = serde_json::from_str(text.trim().lines().last().unwrap_or(""))
                .with_context(|| format!("unexpected output from the reference script: {text}"))?;
            let ref_sps = v["forward_seg_per_s"].as_f64().unwrap_or(f64::NAN);
            let ref_fb = v["fbank_ms"].as_f64().unwrap_or(f64::NAN);
            println!(
                "pytorch {} / transformers {} ({} threads, {} {}): forward {ref_sps:.3} segments/s, fbank ({}) {ref_fb:.3} ms",
                v["torch"].as_str().unwrap_or("?"),
                v["transformers"].as_str().unwrap_or("?"),
                v["threads"],
                v["device"].as_str().unwrap_or("cpu"),
                v["dtype"].as_str().unwrap_or("fp32"),
                v["fbank_backend"].as_str().unwrap_or("?")
            );
            println!("ratio forward (dams / pytorch): {:.2}x", dams_sps / ref_sps);
            println!("ratio fbank (pytorch time / dams time): {:.1}x", ref_fb / fbank_ms);
        }
        Ok(o) => {
            eprintln!("reference not run ({} failed): {}", a.python, String::from_utf8_lossy(&o.stderr).trim())
        }
        Err(e) => eprintln!("reference not run (cannot start {}: {e}); dams figures only", a.python),
    }
    Ok(())
}

#[cfg(not(feature = "burn"))]
pub fn bench(_ctx: &Ctx, _a: BenchAstArgs) -> Result<()> {
    anyhow::bail!("this build of dams has no model engine (rebuild with the `burn` feature)")
}
