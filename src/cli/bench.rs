//! `dams bench <name>`: speed measured against a reference in the same run, reported as ratios.
use anyhow::Result;
use clap::{Args, Subcommand};

use super::Ctx;
#[cfg(feature = "burn")]
use super::student::KindArg;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub which: BenchWhich,
}

#[derive(Debug, Subcommand)]
pub enum BenchWhich {
    /// Built-in teacher: per-segment scoring time (features + head) on generated 10 s segments, against decoding
    /// the same segment from a 16-bit WAV and against the bare 512-point spectrogram.
    Builtin(super::teachers::BenchBuiltinArgs),
    /// Segmentation throughput (decode + resample + write windows) vs ffmpeg on the same file.
    Segment(super::audio::SegmentBenchArgs),
    /// Threshold move → recomputed metrics at 100,000 scored segments, vs a full rescan.
    Thresholds(super::eval::BenchThresholdsArgs),
    /// Import a generated manifest (default 1,000,000 rows); compare with the sqlite3 CLI's .import.
    Import(super::manifest::ImportBenchArgs),
    /// Segment switch: decode + spectrogram + first frame, cold and with prefetch (p50/p99).
    TuiSwitch {
        /// Number of 10-s segments to switch through.
        #[arg(long, default_value_t = 60)]
        segments: usize,
    },
    /// Keypress to durable label (p50/p99) against a bare SQLite INSERT+commit.
    TuiLabel {
        #[arg(long, default_value_t = 500)]
        keys: usize,
        /// Measure through the label writer, idle and while an import of this many generated rows runs.
        #[arg(long, value_name = "ROWS")]
        during_import: Option<usize>,
    },
    /// Frame time of a 200x60 terminal with many rows loaded, against a plain ratatui Table.
    TuiRender {
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        #[arg(long, default_value_t = 300)]
        frames: usize,
    },
    /// Sharded-run merge: rows/s and peak RSS of `dams merge` over generated part files (default 1,000,000 rows
    /// in 8 parts), and a second (no-op) merge.
    Merge {
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        #[arg(long, default_value_t = 8)]
        parts: usize,
        /// Keep the generated workspace (its path is printed).
        #[arg(long)]
        keep: bool,
    },
    /// Sharded scoring: built-in teacher throughput with 1 shard vs N shards run at once on this machine.
    Shards {
        /// Generated 10 s segments.
        #[arg(long, default_value_t = 64)]
        segments: usize,
        #[arg(long, default_value_t = 2)]
        shards: usize,
        #[arg(long)]
        keep: bool,
    },
    /// AST: forward segments/s against PyTorch + transformers on the same checkpoint, and fbank per 10 s segment
    /// against the Hugging Face extractor (the reference runs in the same invocation when python + torch exist).
    Ast(super::ast::BenchAstArgs),
    /// CLAP: audio embedding segments/s and text ms per prompt against PyTorch + transformers on the same checkpoint
    /// (same run), and the prompt workbench's Enter → updated F1 time at 10,000 embedded segments.
    Clap(super::clap_teacher::BenchClapArgs),
    /// Whisper-AT: encoder + head segments/s per context against PyTorch + whisper-at on the same checkpoint
    /// (the reference runs in the same invocation when python + torch + whisper-at exist).
    WhisperAt(super::whisper_at::BenchWhisperAtArgs),
    /// Training throughput (segments/s) of the CNN student on the CPU, vs the same net in PyTorch; with
    /// `--kind ast-head|ina-head`: the backbone's embedding rate vs its teacher pass, and head training on cached
    /// embeddings.
    #[cfg(feature = "burn")]
    Student {
        #[arg(long, value_enum, default_value_t = super::student::KindArg::Cnn)]
        kind: super::student::KindArg,
        /// ast-head: an AST checkpoint folder instead of the installed AST.
        #[arg(long, value_name = "DIR")]
        ast: Option<std::path::PathBuf>,
        #[arg(long, default_value_t = 96)]
        segments: usize,
        #[arg(long, default_value_t = 16)]
        batch: usize,
        #[arg(long, default_value_t = 16)]
        width: usize,
        /// tools/student_torch_bench.py: run the PyTorch reference when python3 has torch.
        #[arg(long)]
        torch_script: Option<std::path::PathBuf>,
    },
}

pub fn run(ctx: &Ctx, a: BenchArgs) -> Result<()> {
    if cfg!(debug_assertions) {
        eprintln!(
            "note: this is a debug build of dams; its own code runs unoptimised, so figures are not representative \
             (build with `cargo build --release` for benchmarks)"
        );
    }
    match a.which {
        BenchWhich::Builtin(b) => super::teachers::bench_builtin(b),
        BenchWhich::Segment(b) => super::audio::run_bench_segment(ctx, b),
        BenchWhich::Thresholds(b) => super::eval::run_bench_thresholds(b),
        BenchWhich::Import(b) => super::manifest::bench_import(b),
        BenchWhich::TuiSwitch { segments } => crate::tui::bench::switch(segments),
        BenchWhich::TuiLabel { keys, during_import: None } => crate::tui::bench::label(keys),
        BenchWhich::TuiLabel { keys, during_import: Some(rows) } => {
            crate::tui::bench_writes::label_during_import(keys, rows)
        }
        BenchWhich::TuiRender { rows, frames } => crate::tui::bench::render(rows, frames),
        BenchWhich::Merge { rows, parts, keep } => super::slurm::bench_merge(rows, parts, keep),
        BenchWhich::Shards { segments, shards, keep } => super::slurm::bench_shards(segments, shards, keep),
        BenchWhich::Ast(b) => super::ast::bench(ctx, b),
        BenchWhich::Clap(b) => super::clap_teacher::bench(ctx, b),
        BenchWhich::WhisperAt(b) => super::whisper_at::bench(ctx, b),
        #[cfg(feature = "burn")]
        BenchWhich::Student { kind: k @ (KindArg::AstHead | KindArg::InaHead), segments, batch, ast, .. } => {
            crate::student::bench::run_head(k == KindArg::InaHead, segments, batch, ast.as_deref())
        }
        #[cfg(feature = "burn")]
        BenchWhich::Student { segments, batch, width, torch_script, .. } => {
            crate::student::bench::run(segments, batch, width, torch_script.as_deref())
        }
    }
}

/// A deterministic 10 s test signal at 16 kHz for the model benches: a chirp (its start frequency set by `k`) over
/// noise.
#[cfg(feature = "burn")]
pub(super) fn test_signal(k: usize) -> Vec<f32> {
    let mut seed = 0x2545_f491_4f6c_dd1du64 ^ k as u64;
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    (0..160_000)
        .map(|i| {
            let t = i as f32 / 16_000.0;
            0.3 * (2.0 * std::f32::consts::PI * (200.0 + 50.0 * k as f32 + 300.0 * t) * t).sin() + 0.05 * noise()
        })
        .collect()
}

/// The checkpoint folder a model bench runs on: `--model DIR` when given, else the installed copy (`installed` maps
/// the model cache to the model's folder when it is installed); `missing` is the error when neither exists.
#[cfg(feature = "burn")]
pub(super) fn model_dir(
    ctx: &Ctx,
    given: Option<std::path::PathBuf>,
    installed: impl FnOnce(&std::path::Path) -> Option<std::path::PathBuf>,
    missing: &str,
) -> Result<std::path::PathBuf> {
    match given {
        Some(d) => Ok(d),
        None => installed(&ctx.dirs.model_cache()).ok_or_else(|| anyhow::anyhow!("{missing}")),
    }
}
