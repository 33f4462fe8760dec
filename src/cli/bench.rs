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
    /// Import a generated manifest (default 1,000,000 rows); compare with the sqlite3 CLI's .import.
    Import(super::manifest::ImportBenchArgs),
}

pub fn run(_ctx: &Ctx, a: BenchArgs) -> Result<()> {
    match a.which {
        BenchWhich::Import(a) => super::manifest::bench_import(a),
    }
}
