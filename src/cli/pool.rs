//! `dams pool build`: radio-like unlabelled training shows from speech, music and noise stems (see [`crate::pool`]).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct PoolArgs {
    #[command(subcommand)]
    pub cmd: PoolCmd,
}

#[derive(Debug, Subcommand)]
pub enum PoolCmd {
    /// Generate shows from a stems folder (with stems.csv) into OUT; registers nothing (then `dams segment OUT
    /// --split unlabeled`).
    Build(PoolBuildArgs),
}

#[derive(Debug, Args)]
pub struct PoolBuildArgs {
    /// Folder of speech/, music/, noise/ recordings with stems.csv (file, kind, speaker, gender, license,
    /// attribution, source), like the shared data set's stems/.
    #[arg(long)]
    pub stems: PathBuf,
    /// Hours of audio to generate.
    #[arg(long)]
    pub hours: f64,
    /// Seed: the same stems, exclusions and seed give the same pool.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Length of each show in seconds.
    #[arg(long, default_value_t = 300.0)]
    pub show_secs: f64,
    /// Event tables (source, src_start, src_end) of evaluation material whose parts must not be used; repeat.
    #[arg(long)]
    pub exclude: Vec<PathBuf>,
    /// Event tables of evaluation material the pool may share recordings with: only reported (see the output).
    #[arg(long)]
    pub disclose: Vec<PathBuf>,
    /// Output folder.
    #[arg(short, long)]
    pub out: PathBuf,
}

pub fn run_pool(a: PoolArgs) -> Result<()> {
    match a.cmd {
        PoolCmd::Build(b) => {
            let o = crate::pool::PoolOptions {
                stems: b.stems,
                out: b.out.clone(),
                hours: b.hours,
                seed: b.seed,
                show_secs: b.show_secs,
                exclude: b.exclude,
                disclose: b.disclose,
            };
            let r = crate::pool::build(&o, |k, n| {
                if k < n {
                    eprint!("\rshow {}/{n}", k + 1);
                } else {
                    eprintln!();
                }
            })?;
            println!(
                "wrote {} shows, {:.2} h, to {} ({} stems used, {} left out; licences in sources.csv)",
                r.shows.len(),
                r.seconds / 3600.0,
                b.out.display(),
                r.stems_used,
                r.stems_excluded
            );
            for (combo, secs) in &r.combination_secs {
                println!("  {combo}: {:.1} min", secs / 60.0);
            }
            if !r.overlap.is_empty() {
                println!("shared with the excluded or disclosed (evaluation) material:");
                for o in &r.overlap {
                    println!("  {o}");
                }
            }
            println!("next: dams segment {} --split unlabeled", b.out.display());
            Ok(())
        }
    }
}
