//! `dams segment` / `dams stats`.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::Ctx;
use crate::audio::segment::{SegmentOptions, segment_file_with_progress};
use crate::audio::stats::compute_workspace_stats;
use crate::labels::Split;

#[derive(Debug, Args)]
pub struct SegmentArgs {
    /// Audio files or folders (folders are searched recursively for .wav .flac .ogg .oga .mp3).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Window length in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub window: f64,
    /// Hop between window starts in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub hop: f64,
    /// Drop windows (the tail of a recording) shorter than this many seconds.
    #[arg(long, default_value_t = 1.0)]
    pub min_tail: f64,
    /// Split of the new segment rows.
    #[arg(long, default_value = "unlabeled")]
    pub split: Split,
    /// Do not copy recordings from outside the workspace into data/raw/ (register their absolute path).
    #[arg(long)]
    pub no_copy: bool,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Recompute the stats of segments that already have them.
    #[arg(long)]
    pub force: bool,
}

/// Some inputs of a batch failed. Exit status (see README, "Exit status"): [`EXIT_FAILED`] when
/// every input failed (nothing was done), [`EXIT_PARTIAL`] when some failed and the rest were done.
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {total} {what} failed")]
pub struct PartialFailure {
    pub failed: usize,
    pub total: usize,
    pub what: &'static str,
}

/// Exit status of a command that failed: nothing (or no input) was done.
pub const EXIT_FAILED: u8 = 1;
/// Exit status of a batch command where some inputs failed and the others were done.
pub const EXIT_PARTIAL: u8 = 3;

impl PartialFailure {
    pub fn exit_code(&self) -> u8 {
        if self.failed >= self.total { EXIT_FAILED } else { EXIT_PARTIAL }
    }
}

const AUDIO_EXTS: [&str; 5] = ["wav", "flac", "ogg", "oga", "mp3"];

/// Files named on the command line plus the audio files found (recursively, sorted) in folders.
pub fn collect_inputs(paths: &[PathBuf]) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| AUDIO_EXTS.contains(&e.to_ascii_lowercase().as_str()))
            {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out);
        } else {
            out.push(p.clone());
        }
    }
    out
}

pub fn run_segment(ctx: &Ctx, a: SegmentArgs) -> Result<()> {
    let ws = ctx.workspace()?;
    let mut store = ws.open_store()?;
    let opts =
        SegmentOptions { window: a.window, hop: a.hop, min_tail: a.min_tail, split: a.split, copy_raw: !a.no_copy };
    let files = collect_inputs(&a.paths);
    if files.is_empty() {
        anyhow::bail!("no audio files (.wav .flac .ogg .oga .mp3) in the given paths");
    }
    let multi = MultiProgress::new();
    let overall = multi.add(ProgressBar::new(files.len() as u64));
    overall.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} files, {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    overall.set_prefix("segment");
    let file_style = ProgressStyle::with_template("{prefix:>10} [{bar:30}] {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let mut failed = 0usize;
    let (mut written, mut skipped, mut windows) = (0usize, 0usize, 0usize);
    for f in &files {
        let bar = multi.insert_before(&overall, ProgressBar::new(1000));
        bar.set_style(file_style.clone());
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        bar.set_prefix(truncate(&name, 10));
        let mut on_progress = |done: f64, total: Option<f64>| {
            if let Some(t) = total.filter(|t| *t > 0.0) {
                bar.set_position(((done / t).min(1.0) * 1000.0) as u64);
                bar.set_message(format!("{done:.0}/{t:.0} s"));
            } else {
                bar.set_message(format!("{done:.0} s"));
            }
        };
        match segment_file_with_progress(&ws, &mut store, f, &opts, &mut on_progress) {
            Ok(r) => {
                written += r.written;
                skipped += r.skipped;
                windows += r.windows;
                let what = if r.up_to_date {
                    "up to date".to_string()
                } else {
                    format!("{} written, {} already there", r.written, r.skipped)
                };
                multi.suspend(|| {
                    println!(
                        "{}: {:.2} s ({} Hz, {} ch) -> {} windows ({what}){}",
                        f.display(),
                        r.duration,
                        r.source_rate,
                        r.source_channels,
                        r.windows,
                        if r.dropped_tail > 0 {
                            format!(", {} short tail dropped", r.dropped_tail)
                        } else {
                            String::new()
                        }
                    )
                });
            }
            Err(e) => {
                failed += 1;
                multi.suspend(|| eprintln!("error: {e}"));
            }
        }
        bar.finish_and_clear();
        overall.inc(1);
    }
    overall.finish_and_clear();
    println!(
        "{} recordings, {windows} windows ({written} written, {skipped} already there) in {}",
        files.len(),
        ws.segments_dir().display()
    );
    if failed > 0 {
        return Err(PartialFailure { failed, total: files.len(), what: "recordings" }.into());
    }
    Ok(())
}

pub fn run_stats(ctx: &Ctx, a: StatsArgs) -> Result<()> {
    let ws = ctx.workspace()?;
    let mut store = ws.open_store()?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("     stats [{bar:30}] {pos}/{len} segments, {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let rep = compute_workspace_stats(&ws, &mut store, a.force, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    for (path, err) in &rep.failed {
        eprintln!("error: {path}: {err}");
    }
    println!(
        "acoustic stats: {} computed, {} already there{}, {} failed (stored with had_error)",
        rep.computed,
        rep.skipped,
        if a.force { "" } else { " (use --force to recompute)" },
        rep.failed.len()
    );
    if !rep.failed.is_empty() {
        return Err(PartialFailure {
            failed: rep.failed.len(),
            total: rep.computed + rep.failed.len(),
            what: "segments",
        }
        .into());
    }
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { s.chars().take(n - 1).chain(std::iter::once('…')).collect() }
}

#[derive(Debug, Args)]
pub struct SegmentBenchArgs {
    /// Minutes of audio in the generated input (the demo show repeated, 44.1 kHz stereo FLAC).
    #[arg(long, default_value_t = 30.0)]
    pub minutes: f64,
    /// Keep the temporary folder (input and outputs) and print where it is.
    #[arg(long)]
    pub keep: bool,
}

/// `dams bench segment`: segmentation throughput (decode + resample + write 10 s / 5 s-hop
/// windows) against ffmpeg doing the same job on the same file in the same run.
///
/// The ffmpeg equivalent is one ffmpeg process that decodes once, resamples to 16 kHz mono once,
/// and feeds two segment muxers (10 s pieces starting at 0 s and at 5 s), so it writes the same
/// overlapping windows as dams — the fastest fair equivalent (one `-ss/-t` call per window would
/// decode the file hundreds of times). It runs with ffmpeg's default resampler (swr, a short
/// filter) and with soxr (closer to dams' 256-tap sinc in quality).
pub fn run_bench_segment(_ctx: &Ctx, a: SegmentBenchArgs) -> Result<()> {
    use std::time::Instant;
    anyhow::ensure!(a.minutes > 0.0 && a.minutes <= 600.0, "--minutes must be in (0, 600]");
    let tmp = std::env::temp_dir().join(format!("dams-bench-segment-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let result = (|| -> Result<()> {
        let show = crate::demo::FILES
            .iter()
            .find(|(n, _)| *n == crate::demo::DEMO_SHOW)
            .map(|(_, b)| *b)
            .ok_or_else(|| anyhow::anyhow!("the embedded demo show is missing"))?;
        let show_path = tmp.join("show.flac");
        std::fs::write(&show_path, show)?;
        let seconds = a.minutes * 60.0;
        let have_ffmpeg = Command::new("ffmpeg").arg("-version").output().is_ok_and(|o| o.status.success());
        // The input: the demo show looped to the wanted length, 44.1 kHz stereo.
        let input = if have_ffmpeg {
            let p = tmp.join("long_44k1_stereo.flac");
            let st = Command::new("ffmpeg")
                .args(["-loglevel", "error", "-y", "-stream_loop", "-1", "-i"])
                .arg(&show_path)
                .args(["-t", &format!("{seconds}"), "-ar", "44100", "-ac", "2", "-c:a", "flac"])
                .arg(&p)
                .status()?;
            anyhow::ensure!(st.success(), "ffmpeg could not build the input file");
            p
        } else {
            // No ffmpeg: a 44.1 kHz stereo WAV made with dams' own resampler.
            let mono = crate::audio::decode(&show_path)?.samples;
            let up = crate::audio::resample(&mono, 16_000, 44_100)?;
            let p = tmp.join("long_44k1_stereo.wav");
            let spec = hound::WavSpec {
                channels: 2,
                sample_rate: 44_100,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let mut w = hound::WavWriter::create(&p, spec)?;
            let total = (seconds * 44_100.0) as usize;
            for i in 0..total {
                let s = crate::audio::decode::f32_to_i16(up[i % up.len()]);
                w.write_sample(s)?;
                w.write_sample(s)?;
            }
            w.finalize()?;
            p
        };
        let hours = seconds / 3600.0;
        println!(
            "input: {:.1} min of 44.1 kHz stereo ({}), {:.1} MB",
            a.minutes,
            input.extension().and_then(|e| e.to_str()).unwrap_or("?"),
            std::fs::metadata(&input)?.len() as f64 / 1e6
        );
        if cfg!(debug_assertions) {
            println!("note: this is a debug build; measure with `cargo run --release -- bench segment`");
        }

        // dams
        let ws = crate::workspace::Workspace::init(tmp.join("ws"))?;
        let mut store = ws.open_store()?;
        let opts = SegmentOptions { copy_raw: false, ..SegmentOptions::default() };
        let t0 = Instant::now();
        let rep = crate::audio::segment::segment_file(&ws, &mut store, &input, &opts)?;
        let dams_s = t0.elapsed().as_secs_f64();
        let dams_rate = hours / (dams_s / 60.0);
        println!(
            "dams:   {:>7.2} s  {:>7.1} h of audio per minute  ({} windows written)",
            dams_s, dams_rate, rep.written
        );
        if !have_ffmpeg {
            println!("ffmpeg not found: no reference measured, dams' figure only");
            return Ok(());
        }
        for (label, resampler) in [("ffmpeg (swr, default)", "swr"), ("ffmpeg (soxr)", "soxr")] {
            let out = tmp.join(format!("ff_{resampler}"));
            std::fs::create_dir_all(&out)?;
            let graph = format!(
                "[0:a]aresample=16000:resampler={resampler},pan=mono|c0=0.5*c0+0.5*c1,asplit=2[a][b];\
                 [b]atrim=start=5,asetpts=PTS-STARTPTS[b5]"
            );
            let t0 = Instant::now();
            let st = Command::new("ffmpeg")
                .args(["-loglevel", "error", "-y", "-i"])
                .arg(&input)
                .args(["-filter_complex", &graph])
                .args(["-map", "[a]", "-c:a", "pcm_s16le", "-f", "segment", "-segment_time", "10"])
                .arg(out.join("a_%05d.wav"))
                .args(["-map", "[b5]", "-c:a", "pcm_s16le", "-f", "segment", "-segment_time", "10"])
                .arg(out.join("b_%05d.wav"))
                .status()?;
            let ff_s = t0.elapsed().as_secs_f64();
            if !st.success() {
                println!("{label}: failed (exit {st}); skipped");
                continue;
            }
            let n = std::fs::read_dir(&out)?.count();
            let ff_rate = hours / (ff_s / 60.0);
            println!(
                "{label:<22} {:>7.2} s  {:>7.1} h of audio per minute  ({n} files)  -> dams/ffmpeg throughput ratio {:.2}",
                ff_s,
                ff_rate,
                dams_rate / ff_rate
            );
        }
        Ok(())
    })();
    if a.keep {
        println!("kept {}", tmp.display());
    } else {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}
