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
    /// Segmentation throughput (decode + resample + write windows) vs ffmpeg on the same file.
    Segment(super::audio::SegmentBenchArgs),
    /// Threshold move → recomputed metrics at 100,000 scored segments, vs a full rescan.
    Thresholds(super::eval::BenchThresholdsArgs),
    /// Import a generated manifest (default 1,000,000 rows); compare with the sqlite3 CLI's .import.
    Import(super::manifest::ImportBenchArgs),
}

pub fn run(ctx: &Ctx, a: BenchArgs) -> Result<()> {
    match a.which {
        BenchWhich::Segment(b) => super::audio::run_bench_segment(ctx, b),
        BenchWhich::Thresholds(b) => super::eval::run_bench_thresholds(b),
        BenchWhich::Import(b) => super::manifest::bench_import(b),
    }
}
