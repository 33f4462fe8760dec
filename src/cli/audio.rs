//! `dams segment` / `dams stats`.
use anyhow::Result;
use clap::Args;

use super::Ctx;

#[derive(Debug, Args)]
pub struct SegmentArgs {
    /// Audio files or folders.
    pub paths: Vec<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatsArgs {}

pub fn run_segment(_ctx: &Ctx, _a: SegmentArgs) -> Result<()> {
    anyhow::bail!("segment: not implemented yet")
}

pub fn run_stats(_ctx: &Ctx, _a: StatsArgs) -> Result<()> {
    anyhow::bail!("stats: not implemented yet")
}
