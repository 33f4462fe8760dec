//! `dams bench <name>`: speed measured against a reference in the same run, reported as ratios.
use anyhow::Result;
use clap::{Args, Subcommand};

use super::Ctx;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub which: BenchWhich,
}

#[derive(Debug, Subcommand)]
pub enum BenchWhich {
    /// Threshold move → recomputed metrics at 100,000 scored segments, vs a full rescan.
    Thresholds(super::eval::BenchThresholdsArgs),
    /// Built-in teacher: per-segment scoring time (features + head) on generated 10 s segments, against decoding
    /// the same segment from a 16-bit WAV and against the bare 512-point spectrogram.
    Builtin(super::teachers::BenchBuiltinArgs),
    /// AST: forward segments/s against PyTorch + transformers on the same checkpoint, and fbank per 10 s segment
    /// against the Hugging Face extractor (the reference runs in the same invocation when python + torch exist).
    Ast(super::ast::BenchAstArgs),
}

pub fn run(ctx: &Ctx, a: BenchArgs) -> Result<()> {
    match a.which {
        BenchWhich::Thresholds(b) => super::eval::run_bench_thresholds(b),
        BenchWhich::Builtin(b) => super::teachers::bench_builtin(b),
        BenchWhich::Ast(b) => super::ast::bench(ctx, b),
    }
}
