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
    #[arg(long, conflicts_with = "out")]
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

/// CPU time (user + system, every thread) this process has used, in seconds (Linux `/proc/self/stat`): on a shared
/// machine, wall time measures the neighbours as much as the work; CPU seconds measure the work.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15, in clock ticks.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    #[cfg(unix)]
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    #[cfg(not(unix))]
    let hz = 100.0;
    Some(ticks / if hz > 0.0 { hz } else { 100.0 })
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
        if let Some(s) = cpu_seconds() {
            println!("cpu_seconds {s:.3}");
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

#[derive(Debug, Args)]
pub struct ImportBenchArgs {
    /// Rows in the generated manifest.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: usize,
    /// Keep the temporary folder (manifest, workspace) and print its path.
    #[arg(long)]
    pub keep: bool,
}

/// What one measured process did.
struct Measured {
    wall_s: f64,
    cpu_s: Option<f64>,
    peak_bytes: Option<u64>,
}

impl Measured {
    fn line(&self, what: &str, rows: usize) -> String {
        format!(
            "{what:<34} {:7.2} s wall {:>9.0} rows/s  CPU {}  peak memory {}",
            self.wall_s,
            rows as f64 / self.wall_s,
            self.cpu_s.map_or("   ?   ".to_string(), |c| format!("{c:6.2} s")),
            self.peak_bytes.map_or("unknown".to_string(), |b| format!("{:.0} MB", b as f64 / 1e6))
        )
    }
}

/// Run `dams import` as a child process, which reports its own peak memory and CPU time.
fn timed_child_import(ws: &std::path::Path, manifest: &std::path::Path) -> Result<Measured> {
    let exe = std::env::current_exe().context("cannot find the dams executable")?;
    let t = std::time::Instant::now();
    let out = std::process::Command::new(exe)
        .arg("--workspace")
        .arg(ws)
        .arg("import")
        .arg(manifest)
        .arg("--report-peak-memory")
        .output()
        .context("cannot run `dams import`")?;
    let wall_s = t.elapsed().as_secs_f64();
    if !out.status.success() {
        anyhow::bail!("`dams import` failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let value = |key: &str| stdout.lines().find_map(|l| l.strip_prefix(key)).map(|v| v.trim().to_string());
    Ok(Measured {
        wall_s,
        cpu_s: value("cpu_seconds ").and_then(|v| v.parse().ok()),
        peak_bytes: value("peak_memory_bytes ").and_then(|v| v.parse().ok()),
    })
}

/// Run the sqlite3 shell on `script`, under /usr/bin/time when it exists (for CPU and memory).
fn timed_sqlite3(db: &std::path::Path, script: &str) -> std::io::Result<std::result::Result<Measured, String>> {
    use std::process::{Command, Stdio};
    let gnu_time = std::path::Path::new("/usr/bin/time");
    let mut cmd = if gnu_time.exists() {
        let mut c = Command::new(gnu_time);
        c.args(["-f", "dams-measure %U %S %M", "sqlite3"]);
        c
    } else {
        Command::new("sqlite3")
    };
    cmd.arg(db).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
    let t = std::time::Instant::now();
    let mut child = cmd.spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let wall_s = t.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Ok(Err(stderr.trim().to_string()));
    }
    let measure: Option<Vec<f64>> = stderr
        .lines()
        .find_map(|l| l.strip_prefix("dams-measure "))
        .map(|v| v.split_whitespace().filter_map(|x| x.parse().ok()).collect());
    Ok(Ok(Measured {
        wall_s,
        cpu_s: measure.as_ref().filter(|m| m.len() == 3).map(|m| m[0] + m[1]),
        peak_bytes: measure.as_ref().filter(|m| m.len() == 3).map(|m| (m[2] * 1024.0) as u64),
    }))
}

/// `dams bench import`: generate a manifest, import it into a fresh workspace in a child
/// process (so the generator's memory does not count), and compare with the sqlite3 CLI's
/// `.import` of the same file into a table with the same columns and a unique segment_path.
pub fn bench_import(a: ImportBenchArgs) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("dams-bench-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let result = bench_import_in(&dir, &a);
    if a.keep {
        println!("kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn bench_import_in(dir: &std::path::Path, a: &ImportBenchArgs) -> Result<()> {
    if cfg!(debug_assertions) {
        println!("note: this is a debug build; build with --release for representative figures");
    }
    let manifest = dir.join("manifest.csv");
    let t = std::time::Instant::now();
    {
        let file = std::fs::File::create(&manifest).with_context(|| format!("cannot create {}", manifest.display()))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 16, file);
        crate::manifest::bench::generate_manifest(&mut w, a.rows, 0x5eed)?;
        w.flush()?;
    }
    let size = std::fs::metadata(&manifest)?.len();
    println!("generated {} rows ({:.1} MB) in {:.2} s", a.rows, size as f64 / 1e6, t.elapsed().as_secs_f64());

    let ws = crate::workspace::Workspace::init(dir.join("ws"))?;
    let fresh = timed_child_import(ws.root(), &manifest)?;
    println!("{}", fresh.line("dams import (fresh workspace)", a.rows));
    let again = timed_child_import(ws.root(), &manifest)?;
    println!("{}", again.line("dams import (again, all unchanged)", a.rows));

    // Reference: the sqlite3 shell's CSV import of the same file, same machine, same run, into
    // a table with the same columns and a unique segment_path (no validation, no upsert).
    let db = dir.join("reference.sqlite");
    let script = format!(
        "PRAGMA journal_mode=WAL;\n\
         CREATE TABLE segments (raw_file TEXT, segment_path TEXT NOT NULL UNIQUE, start_time REAL, end_time REAL, \
         split TEXT, label_source TEXT, speech_label INTEGER, music_label INTEGER, noise_label INTEGER, \
         speech_score REAL, music_score REAL, noise_score REAL);\n\
         .import --csv --skip 1 '{}' segments\n",
        manifest.display().to_string().replace('\'', "''")
    );
    match timed_sqlite3(&db, &script) {
        Ok(Ok(r)) => {
            println!("{}", r.line("reference: sqlite3 shell .import", a.rows));
            let cpu_ratio = match (fresh.cpu_s, r.cpu_s) {
                (Some(d), Some(s)) if s > 0.0 => format!(", CPU time {:.2}", d / s),
                _ => String::new(),
            };
            println!("ratio dams import / sqlite3 .import: wall time {:.2}{cpu_ratio}", fresh.wall_s / r.wall_s);
        }
        Ok(Err(msg)) => println!("reference: sqlite3 .import failed ({msg}); only dams' figures are shown"),
        Err(_) => println!("reference: no sqlite3 shell on PATH; only dams' figures are shown"),
    }
    if a.rows == 1_000_000 {
        println!(
            "goals for 1,000,000 rows: < 10 s wall ({}), < 500 MB peak memory ({})",
            if fresh.wall_s < 10.0 { "met" } else { "MISSED" },
            match fresh.peak_bytes {
                None => "not measured",
                Some(b) if b < 500_000_000 => "met",
                Some(_) => "MISSED",
            }
        );
    } else {
        println!("goals (< 10 s, < 500 MB) are stated for --rows 1000000");
    }
    Ok(())
}
