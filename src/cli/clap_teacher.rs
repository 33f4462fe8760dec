//! `dams bench clap` (installing CLAP is the generic `dams teachers add|pull clap`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::Ctx;

#[derive(Debug, Args)]
pub struct BenchClapArgs {
    /// A checkpoint folder (default: the installed CLAP). A random-weight `larger_clap` one is made by
    /// `tools/clap/make_goldens.py --full DIR`.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Segments per audio batch.
    #[arg(long, default_value_t = 2)]
    pub batch: usize,
    /// Batches to time (after one warm-up batch).
    #[arg(long, default_value_t = 2)]
    pub batches: usize,
    /// Prompts to time the text tower on.
    #[arg(long, default_value_t = 8)]
    pub prompts: usize,
    /// Embedded segments for the workbench update timing (Enter → every score and F1 recomputed).
    #[arg(long, default_value_t = 10_000)]
    pub workbench_segments: usize,
    /// auto, cpu or gpu.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Python with torch + transformers (+ torchaudio) for the reference (skipped when it cannot run).
    #[arg(long, default_value = "python3")]
    pub python: String,
}

#[cfg(feature = "burn")]
pub fn bench(ctx: &Ctx, a: BenchClapArgs) -> Result<()> {
    use std::time::Instant;

    use anyhow::Context;

    use crate::engine::{DeviceChoice, Engine};
    use crate::teachers::clap::prompts::PromptSet;
    use crate::teachers::clap::workbench::{Pool, Session};
    use crate::teachers::clap::{ClapTeacher, install};

    let dir = super::bench::model_dir(
        ctx,
        a.model,
        |c| install::installed(c).map(|_| install::install_dir(c)),
        "CLAP is not installed; pass --model DIR or run `dams teachers pull clap`",
    )?;
    let segs: Vec<Vec<f32>> = (0..a.batch.max(1)).map(super::bench::test_signal).collect();
    let choice: DeviceChoice = a.device.parse().map_err(anyhow::Error::msg)?;
    let engine = Engine::select(choice).map_err(anyhow::Error::msg)?;
    let desc = engine.description.clone();
    let t0 = Instant::now();
    let mut t = ClapTeacher::open(&dir, engine, Some("bench".into()))?;
    let load_s = t0.elapsed().as_secs_f64();
    let refs: Vec<&[f32]> = segs.iter().map(|s| s.as_slice()).collect();
    // Front end alone (resample + mel), one segment, one thread.
    let t0 = Instant::now();
    let mel = t.log_mel(&t.resample(refs[0]));
    let front_ms = t0.elapsed().as_secs_f64() * 1e3;
    drop(mel);
    t.embed_audio(&refs)?; // warm-up
    let t0 = Instant::now();
    for _ in 0..a.batches.max(1) {
        t.embed_audio(&refs)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let dams_sps = (a.batches.max(1) * refs.len()) as f64 / secs;
    t.text_embedding("This is a sound of warm-up.")?;
    let n_prompts = a.prompts.max(1);
    let t0 = Instant::now();
    for i in 0..n_prompts {
        t.text_embedding(&format!("This is a sound of radio programme number {i} with speech and music."))?;
    }
    let dams_text_ms = t0.elapsed().as_secs_f64() * 1e3 / n_prompts as f64;
    let cfg = t.config().clone();
    println!(
        "model {} (HTSAT {} {:?}, text {} layers x {}), loaded in {load_s:.2} s",
        dir.display(),
        cfg.audio_config.patch_embeds_hidden_size,
        cfg.audio_config.depths,
        cfg.text_config.num_hidden_layers,
        cfg.text_config.hidden_size
    );
    println!("dams front end (torchaudio resample + mel): {front_ms:.1} ms per 10 s segment (1 thread)");
    println!(
        "dams audio embedding on {desc}: {dams_sps:.3} segments/s (batch {}, {} batches)",
        refs.len(),
        a.batches.max(1)
    );
    println!("dams text embedding: {dams_text_ms:.1} ms per prompt");

    // The workbench: Enter on an edited prompt with N embedded segments → text tower for that prompt, every score,
    // P/R/F1, PR curves, flips.
    let n = a.workbench_segments.max(1);
    let d = cfg.projection_dim;
    let mut pool = Pool { dim: d, ..Default::default() };
    let mut rng = crate::rng::SplitMix64::new(0x2545_f491_4f6c_dd1d);
    let mut noise = move || rng.unit() - 0.5;
    for i in 0..n {
        let v: Vec<f32> = (0..d).map(|_| noise()).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        pool.embs.extend(v.iter().map(|x| x / norm));
        pool.ids.push(i as i64);
        pool.gold.push((i % 3 != 2).then(|| [noise() > 0.0, noise() > 0.0, noise() > 0.0]));
        pool.background.push(i % 50 == 0);
    }
    let mut s = Session::with_pool(t, pool, "python", PromptSet::python())?;
    let mut times = Vec::new();
    for k in 0..5 {
        let mut set = s.set.clone();
        set.music[0] = format!("Music on the radio, edit {k}: instruments, singing, a melody or a beat.");
        let t0 = Instant::now();
        s.apply(set)?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    println!(
        "workbench Enter -> updated F1 at {n} embedded segments: median {:.1} ms (min {:.1}, max {:.1}; text tower \
         for the edited prompt included), macro F1 {:.3}",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        s.current.macro_f1
    );

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/clap/bench_torch.py");
    let out = std::process::Command::new(&a.python)
        .arg(&script)
        .arg(&dir)
        .args(["--batch", &refs.len().to_string(), "--batches", &a.batches.max(1).to_string()])
        .args(["--prompts", &n_prompts.to_string()])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let v: serde_json::Value = serde_json::from_str(text.trim().lines().last().unwrap_or(""))
                .with_context(|| format!("unexpected output from the reference script: {text}"))?;
            let ref_sps = v["audio_seg_per_s"].as_f64().unwrap_or(f64::NAN);
            let ref_text = v["text_ms_per_prompt"].as_f64().unwrap_or(f64::NAN);
            println!(
                "pytorch {} / transformers {} ({} threads, resampler {}): audio {ref_sps:.3} segments/s, text {ref_text:.1} ms per prompt",
                v["torch"].as_str().unwrap_or("?"),
                v["transformers"].as_str().unwrap_or("?"),
                v["threads"],
                v["resampler"].as_str().unwrap_or("?"),
            );
            println!("ratio audio (dams / pytorch): {:.2}x", dams_sps / ref_sps);
            println!("ratio text (pytorch time / dams time): {:.2}x", ref_text / dams_text_ms);
        }
        Ok(o) => eprintln!("reference not run ({} failed): {}", a.python, String::from_utf8_lossy(&o.stderr).trim()),
        Err(e) => eprintln!("reference not run (cannot start {}: {e}); dams figures only", a.python),
    }
    Ok(())
}

#[cfg(not(feature = "burn"))]
pub fn bench(_ctx: &Ctx, _a: BenchClapArgs) -> Result<()> {
    anyhow::bail!("this build of dams has no model engine (rebuild with the `burn` feature)")
}
