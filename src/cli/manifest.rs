//! `dams import` / `dams export`.
use anyhow::Result;
use clap::Args;

use super::Ctx;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The manifest CSV.
    pub manifest: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub struct ExportArgs {}

pub fn run_import(_ctx: &Ctx, _a: ImportArgs) -> Result<()> {
    anyhow::bail!("import: not implemented yet")
}

pub fn run_export(_ctx: &Ctx, _a: ExportArgs) -> Result<()> {
    anyhow::bail!("export: not implemented yet")
}
