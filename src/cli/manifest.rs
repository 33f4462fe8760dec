//! `dams import` / `dams export`.
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::Ctx;
use crate::labels::Split;
use crate::manifest::export::{export_csv, snapshot_file_name, write_csv};
use crate::manifest::{ExportOptions, ImportOptions, LABELS_CSV, RowFilter, SEGMENTS_CSV, Spelling, import_path};

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The manifest CSV (columns raw_file, segment_path, start_time, end_time, split, label_source,
    /// speech_label|speech, music_label|music, noise_label|noise, *_score; only segment_path is required).
    pub manifest: PathBuf,
    /// Validate and report what would change, without writing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the process's peak resident memory at the end (used by `dams bench import`).
    #[arg(long, hide = true)]
    pub report_peak_memory: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write the manifest to FILE (`-`: standard output) instead of
    /// data/metadata/blocs_smad_segments.csv and blocs_smad_labels.csv.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Names of the label columns: `dams` (speech_label, music_label, noise_label, what the Python
    /// code writes) or `dams-readme` (speech, music, noise).
    #[arg(long, default_value = "dams", value_parser = parse_spelling)]
    pub spelling: Spelling,
    /// Write a dated snapshot data/metadata/experiments/<source>_<splits>_<YYYYMMDD>.csv
    /// (rows of --source, default gold, in --splits).
    #[arg(long)]
    pub snapshot: bool,
    /// Only rows whose effective label source is this (gold, ast_pseudo, ...).
    #[arg(long)]
    pub source: Option<String>,
    /// Only these splits, comma-separated (e.g. dev,test).
    #[arg(long, value_delimiter = ',')]
    pub splits: Option<Vec<Split>>,
    /// Only labeled rows (label source other than none).
    #[arg(long)]
    pub labeled_only: bool,
    /// Also write the same rows as Parquet to FILE (loads with Hugging Face `datasets` and pandas).
    #[arg(long, value_name = "FILE")]
    pub parquet: Option<PathBuf>,
}

fn parse_spelling(s: &str) -> Result<Spelling, String> {
    s.parse()
}

/// Peak resident memory of this process in bytes (Linux: `VmHWM` of /proc/self/status).
pub fn peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

pub fn run_import(ctx: &Ctx, a: ImportArgs) -> Result<()> {
    let ws = ctx.workspace()?;
    let mut store = ws.open_store()?;
    let opts = ImportOptions {
        dry_run: a.dry_run,
        allow_gold_on_all_splits: ctx.config.allow_gold_on_all_splits,
        ..ImportOptions::default()
    };
    let summary = import_path(&mut store, &ws.data_dir(), &a.manifest, &opts)?;
    println!("{summary}");
    if a.report_peak_memory {
        match peak_memory_bytes() {
            Some(b) => println!("peak_memory_bytes {b}"),
            None => println!("peak_memory_bytes unknown"),
        }
    }
    Ok(())
}

pub fn run_export(ctx: &Ctx, a: ExportArgs) -> Result<()> {
    let ws = ctx.workspace()?;
    let store = ws.open_store()?;
    let source = match (&a.source, a.snapshot) {
        (Some(s), _) => Some(s.trim().to_string()),
        (None, true) => Some("gold".to_string()),
        (None, false) => None,
    };
    if let Some(s) = &source {
        s.parse::<crate::labels::LabelSource>().map_err(anyhow::Error::msg)?;
    }
    let filter = RowFilter { labeled_only: a.labeled_only, source: source.clone(), splits: a.splits.clone() };
    let opts = ExportOptions { spelling: a.spelling, filter };

    let main_out: Option<PathBuf> = if a.snapshot {
        let date = chrono::Utc::now().date_naive();
        let name = snapshot_file_name(source.as_deref().unwrap_or("gold"), a.splits.as_deref().unwrap_or(&[]), date);
        Some(ws.experiments_dir().join(name))
    } else {
        a.out.clone()
    };
    match main_out.as_deref() {
        Some(p) if p.as_os_str() == "-" => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            write_csv(&store, &mut lock, &opts, "standard output")?;
            lock.flush().context("writing standard output")?;
        }
        Some(p) => {
            let s = export_csv(&store, p, &opts)?;
            println!("wrote {} ({} rows)", s.path, s.rows);
        }
        None => {
            let s = export_csv(&store, &ws.metadata_dir().join(SEGMENTS_CSV), &opts)?;
            println!("wrote {} ({} rows)", s.path, s.rows);
            let labeled =
                ExportOptions { filter: RowFilter { labeled_only: true, ..opts.filter.clone() }, ..opts.clone() };
            let s = export_csv(&store, &ws.metadata_dir().join(LABELS_CSV), &labeled)?;
            println!("wrote {} ({} labeled rows)", s.path, s.rows);
        }
    }
    if let Some(p) = &a.parquet {
        write_parquet_file(&store, p, &opts)?;
    }
    Ok(())
}

#[cfg(feature = "parquet")]
fn write_parquet_file(store: &crate::store::Store, p: &std::path::Path, opts: &ExportOptions) -> Result<()> {
    let s = crate::manifest::export::export_parquet(store, p, opts)?;
    println!("wrote {} ({} rows, Parquet)", s.path, s.rows);
    Ok(())
}

#[cfg(not(feature = "parquet"))]
fn write_parquet_file(_store: &crate::store::Store, _p: &std::path::Path, _opts: &ExportOptions) -> Result<()> {
    anyhow::bail!("this dams was built without the `parquet` feature; rebuild with `--features parquet`")
}
