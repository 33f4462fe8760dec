//! `dams bench whisper-at` (installing Whisper-AT is the generic `dams teachers add`, see `cli/teachers.rs`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::Ctx;

#[derive(Debug, Args)]
pub struct BenchWhisperAtArgs {
    /// A checkpoint folder (`whisper.pt` + `whisper_at.pth`; default: the installed one). Random-weight folders of
    /// any size: `tools/whisper_at/make_goldens.py --out DIR --size base|small|large-v2 --no-decoder`.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Contexts to time: 30, 10, or both (comma-separated).
    #[arg(long, default_value = "30,10", value_delimiter = ',')]
    pub context: Vec<String>,
    /// Segments per forward batch in dams (whisper-at itself runs one segment at a time).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Segments to time (after one warm-up batch).
    #[arg(long, default_value_t = 2)]
    pub segments: usize,
    /// auto, cpu or gpu.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// dams' precision: f32, or f16 (GPU adapters with shader-f16).
    #[arg(long, default_value = "f32")]
    pub precision: String,
    /// Python with torch + whisper-at for the reference (skipped when it cannot run).
    #[arg(long, default_value = "python3")]
    pub python: String,
}

#[cfg(feature = "burn")]
pub fn bench(ctx: &Ctx, a: BenchWhisperAtArgs) -> Result<()> {
    use std::time::Instant;

    use anyhow::Context as _;

    use crate::engine::{DeviceChoice, Engine};
    use crate::teachers::whisper_at::WhisperAtTeacher;
    use crate::teachers::whisper_at::features::Context;
    use crate::teachers::whisper_at::install;

    let dir = super::bench::model_dir(
        ctx,
        a.model,
        |c| install::installed(c).map(|_| install::install_dir(c)),
        "Whisper-AT is not installed; pass --model DIR or run `dams teachers add whisper-at --from DIR`",
    )?;
    let contexts: Vec<Context> =
        a.context.iter().map(|c| c.parse::<Context>().map_err(anyhow::Error::msg)).collect::<Result<_>>()?;
    let choice: DeviceChoice = a.device.parse().map_err(anyhow::Error::msg)?;
    let engine = Engine::select(choice).map_err(anyhow::Error::msg)?;
    if let Some(n) = &engine.notice {
        eprintln!("note: {n}");
    }
    let desc = engine.description.clone();
    let t0 = Instant::now();
    let mut t = WhisperAtTeacher::open(&dir, engine, Some("bench".into()))?.with_precision(&a.precision)?;
    let load_s = t0.elapsed().as_secs_f64();
    let dims = t.dims().clone();
    println!(
        "model {}: Whisper {} ({} layers, width {}) + {} head, loaded in {load_s:.2} s (peak RSS {:.0} MB)",
        dir.display(),
        dims.size_name(),
        dims.n_audio_layer,
        dims.n_audio_state,
        t.head_kind().as_str(),
        super::slurm::peak_rss_mib().unwrap_or(f64::NAN)
    );
    let batch = a.batch.max(1);
    let n = a.segments.max(1).div_ceil(batch) * batch;
    let segs: Vec<Vec<f32>> = (0..n).map(super::bench::test_signal).collect();
    for context in contexts {
        t = t.with_context(context);
        let refs: Vec<&[f32]> = segs.iter().map(|s| s.as_slice()).collect();
        t.logits(&refs[..batch])?; // warm-up
        let t0 = Instant::now();
        let c0 = super::manifest::cpu_seconds();
        for chunk in refs.chunks(batch) {
            t.logits(chunk)?;
        }
        let secs = t0.elapsed().as_secs_f64();
        let cpu_per_seg = c0.zip(super::manifest::cpu_seconds()).map(|(a, b)| (b - a) / n as f64).unwrap_or(f64::NAN);
        let dams_sps = n as f64 / secs;
        println!(
            "context {}: dams on {desc} ({}): {dams_sps:.4} segments/s, {cpu_per_seg:.2} CPU-s per segment (batch \
             {batch}, {n} segments; peak RSS {:.0} MB)",
            context.as_str(),
            a.precision,
            super::slurm::peak_rss_mib().unwrap_or(f64::NAN)
        );
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/whisper_at/bench_torch.py");
        let out = std::process::Command::new(&a.python)
            .arg(&script)
            .arg(&dir)
            .args(["--context", context.as_str(), "--segments", &n.to_string()])
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let text = String::from_utf8_lossy(&o.stdout);
                let v: serde_json::Value = serde_json::from_str(text.trim().lines().last().unwrap_or(""))
                    .with_context(|| format!("unexpected output from the reference script: {text}"))?;
                let ref_sps = v["seg_per_s"].as_f64().unwrap_or(f64::NAN);
                let ref_cpu = v["cpu_s_per_seg"].as_f64().unwrap_or(f64::NAN);
                println!(
                    "context {}: pytorch {} + whisper-at 0.5 ({} threads, batch 1): {ref_sps:.4} segments/s, {ref_cpu:.2} \
                     CPU-s per segment (peak RSS {:.0} MB)",
                    context.as_str(),
                    v["torch"].as_str().unwrap_or("?"),
                    v["threads"],
                    v["max_rss_mb"].as_f64().unwrap_or(f64::NAN)
                );
                println!(
                    "context {}: ratio (dams / pytorch): {:.2}x segments/s, {:.2}x by CPU time (pytorch CPU-s / dams CPU-s)",
                    context.as_str(),
                    dams_sps / ref_sps,
                    ref_cpu / cpu_per_seg
                );
            }
            Ok(o) => {
                eprintln!("reference not run ({} failed): {}", a.python, String::from_utf8_lossy(&o.stderr).trim())
            }
            Err(e) => eprintln!("reference not run (cannot start {}: {e}); dams figures only", a.python),
        }
    }
    Ok(())
}

#[cfg(not(feature = "burn"))]
pub fn bench(_ctx: &Ctx, _a: BenchWhisperAtArgs) -> Result<()> {
    anyhow::bail!("this build of dams has no model engine (rebuild with the `burn` feature)")
}
