//! Cutting long-form recordings into fixed windows (10 s, 5 s hop by default) of 16 kHz mono
//! 16-bit PCM under `data/segments/`, named `<stem>_sNNNN.wav`.
//!
//! **Window rule** (the Python project's): a window starts at every multiple of the hop while
//! `start < duration`; `end = min(start + window, duration)`; windows shorter than
//! `min_tail` seconds are dropped. Times are computed on the 16 kHz sample grid.
//!
//! **Streaming:** the recording is decoded packet by packet (on a second thread, a few chunks
//! ahead) and resampled as it goes; only the samples of the windows still open (about one
//! window) are held in memory.
//!
//! **Resume:** each window file is written atomically (temp file + rename); rows for one recording
//! go in with one transaction after its windows are written, together with its `raw_files` row.
//! A re-run skips windows whose file exists with the right length and whose row exists; existing
//! rows (and the labels on them) are never overwritten. When a recording's `raw_files` row, every
//! window file and every row are already there, the recording is not even decoded.
//!
//! **Raw files:** a recording outside the workspace's `data/` folder is copied into `data/raw/`
//! (unless `copy_raw` is off, in which case its absolute path is registered); one inside `data/`
//! is registered under its data-relative path. A different file (other size) already under the
//! same name in `data/raw/` is an error, never overwritten.
use std::path::{Path, PathBuf};

use crate::labels::{LabelSource, Split};
use crate::store::{NewSegment, Store, StoreError};
use crate::workspace::Workspace;

use super::{AudioError, DecodeStream, StreamResampler, TARGET_RATE, resampled_len, write_wav_16k};

/// Mono samples per message from the decoding thread.
const DECODE_BATCH: usize = 32_768;

/// How to cut recordings.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentOptions {
    /// Window length in seconds.
    pub window: f64,
    /// Hop between window starts in seconds.
    pub hop: f64,
    /// Windows shorter than this (seconds) are dropped.
    pub min_tail: f64,
    /// Split given to new segment rows.
    pub split: Split,
    /// Copy recordings from outside the workspace into `data/raw/`.
    pub copy_raw: bool,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        Self { window: 10.0, hop: 5.0, min_tail: 1.0, split: Split::Unlabeled, copy_raw: true }
    }
}

impl SegmentOptions {
    fn check(&self) -> Result<(), SegmentError> {
        let ok = |x: f64| x.is_finite() && x > 0.0;
        if !ok(self.window) || !ok(self.hop) || !self.min_tail.is_finite() || self.min_tail < 0.0 {
            return Err(SegmentError::Options(format!(
                "window ({}) and hop ({}) must be positive and min-tail ({}) non-negative",
                self.window, self.hop, self.min_tail
            )));
        }
        if self.min_tail > self.window {
            return Err(SegmentError::Options(format!(
                "min-tail ({} s) is longer than the window ({} s): every window would be dropped",
                self.min_tail, self.window
            )));
        }
        Ok(())
    }
    fn samples(&self) -> (u64, u64, u64) {
        let r = TARGET_RATE as f64;
        ((self.window * r).round() as u64, (self.hop * r).round().max(1.0) as u64, (self.min_tail * r).round() as u64)
    }
}

/// One planned window, in 16 kHz samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// 1-based index used in the file name.
    pub index: u64,
    pub start: u64,
    pub end: u64,
}

impl Window {
    pub fn start_sec(&self) -> f64 {
        self.start as f64 / TARGET_RATE as f64
    }
    pub fn end_sec(&self) -> f64 {
        self.end as f64 / TARGET_RATE as f64
    }
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// The windows of a recording of `n` samples at 16 kHz, and how many were dropped as too short.
pub fn plan_windows(n: u64, opts: &SegmentOptions) -> (Vec<Window>, usize) {
    let (win, hop, min) = opts.samples();
    let mut out = Vec::new();
    let mut dropped = 0;
    let mut k = 0u64;
    while k * hop < n {
        let start = k * hop;
        let end = (start + win).min(n);
        if end - start >= min.max(1) {
            out.push(Window { index: k + 1, start, end });
        } else {
            dropped += 1;
        }
        k += 1;
    }
    (out, dropped)
}

/// Number of windows started for a recording of `n` samples (kept or dropped): decides the digit
/// count of the names.
fn windows_started(n: u64, opts: &SegmentOptions) -> u64 {
    let (_, hop, _) = opts.samples();
    n.div_ceil(hop)
}

/// `<stem>_sNNNN.wav`: 1-based, 4 digits, more when the recording has more than 9999 windows.
pub fn segment_name(stem: &str, index: u64, total: u64) -> String {
    let width = total.max(1).to_string().len().max(4);
    format!("{stem}_s{index:0width$}.wav")
}

/// What happened to one recording.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SegmentReport {
    /// The recording's file name (the `raw_file` of its segments).
    pub raw_file: String,
    /// Path registered in `raw_files` (data-relative, or absolute when not copied).
    pub raw_path: String,
    /// Duration in seconds at 16 kHz.
    pub duration: f64,
    pub source_rate: u32,
    pub source_channels: u16,
    /// Windows kept (written or already present).
    pub windows: usize,
    /// Window files written in this run.
    pub written: usize,
    /// Window files that were already there with the right length.
    pub skipped: usize,
    /// Rows inserted in this run.
    pub rows_inserted: usize,
    /// Windows dropped as shorter than `min_tail`.
    pub dropped_tail: usize,
    /// The recording was complete already and not decoded.
    pub up_to_date: bool,
    /// Data-relative paths of the kept windows, in order.
    pub segment_paths: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{}: {detail}", .path.display())]
    File { path: PathBuf, detail: String },
    #[error("invalid segmentation options: {0}")]
    Options(String),
}

/// Progress of one recording: seconds of source decoded so far and the total if known.
pub type ProgressFn<'a> = &'a mut dyn FnMut(f64, Option<f64>);

/// Segment one recording into the workspace. See the module docs for the rules.
pub fn segment_file(
    ws: &Workspace,
    store: &mut Store,
    path: &Path,
    opts: &SegmentOptions,
) -> Result<SegmentReport, SegmentError> {
    segment_file_with_progress(ws, store, path, opts, &mut |_, _| {})
}

/// [`segment_file`] with a progress callback.
pub fn segment_file_with_progress(
    ws: &Workspace,
    store: &mut Store,
    path: &Path,
    opts: &SegmentOptions,
    progress: ProgressFn<'_>,
) -> Result<SegmentReport, SegmentError> {
    let Prepared { mut stream, file_name, raw_path, stem, total_windows, mut report } = prepare(ws, path, opts)?;
    let (rate, channels) = (stream.sample_rate(), stream.channels());
    let name_of = |index: u64| segment_name(&stem, index, total_windows);

    // Two recordings with the same stem (show.flac, show.mp3) would write the same window names.
    if let Some(other) = store.segment_by_path(&format!("segments/{}", name_of(1)))?
        && other.raw_file != file_name
        && !other.raw_file.is_empty()
    {
        return Err(SegmentError::File {
            path: path.to_path_buf(),
            detail: format!(
                "its windows would be named like those of {} already in the workspace ({}); rename the file",
                other.raw_file,
                name_of(1)
            ),
        });
    }

    // Fast path: a finished earlier run (raw row present, all files and rows there).
    if let Some(raw) = store.raw_file(&raw_path)?
        && let Some(d) = raw.duration
    {
        let n = (d * TARGET_RATE as f64).round() as u64;
        let (windows, dropped) = plan_windows(n, opts);
        let mut complete = !windows.is_empty();
        for w in &windows {
            let rel = format!("segments/{}", name_of(w.index));
            if !wav_has_len(&ws.abs_data_path(&rel), w.len()) || store.segment_by_path(&rel)?.is_none() {
                complete = false;
                break;
            }
        }
        if complete {
            report.duration = d;
            report.windows = windows.len();
            report.skipped = windows.len();
            report.dropped_tail = dropped;
            report.up_to_date = true;
            report.segment_paths = windows.iter().map(|w| format!("segments/{}", name_of(w.index))).collect();
            return Ok(report);
        }
    }

    let rows = cut_windows(ws, path, opts, &mut stream, &file_name, &name_of, &mut report, progress)?;
    report.rows_inserted = store.add_segmented_file(&raw_path, report.duration, rate, channels, &rows)?;
    progress(report.duration, Some(report.duration));
    Ok(report)
}

/// A recording opened and placed (copied into `data/raw/` if it must be), its windows not cut yet.
struct Prepared {
    stream: DecodeStream,
    file_name: String,
    raw_path: String,
    stem: String,
    total_windows: u64,
    report: SegmentReport,
}

fn prepare(ws: &Workspace, path: &Path, opts: &SegmentOptions) -> Result<Prepared, SegmentError> {
    opts.check()?;
    let stream = DecodeStream::open(path)?;
    let file_name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .ok_or_else(|| SegmentError::File { path: path.to_path_buf(), detail: "no file name".into() })?;
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| file_name.clone());
    let raw_path = place_raw(ws, path, &file_name, opts.copy_raw)?;
    let (rate, channels) = (stream.sample_rate(), stream.channels());
    let seg_dir = ws.segments_dir();
    std::fs::create_dir_all(&seg_dir)
        .map_err(|e| SegmentError::File { path: seg_dir.clone(), detail: format!("cannot create: {e}") })?;
    let report = SegmentReport {
        raw_file: file_name.clone(),
        raw_path: raw_path.clone(),
        source_rate: rate,
        source_channels: channels,
        ..Default::default()
    };
    // Name width from the expected length (container's frame count, or a demux-only pass).
    let expected_n = match stream.frames_hint() {
        Some(f) => resampled_len(f, rate, TARGET_RATE),
        None => resampled_len(count_frames(path)?, rate, TARGET_RATE),
    };
    let total_windows = windows_started(expected_n, opts);
    Ok(Prepared { stream, file_name, raw_path, stem, total_windows, report })
}

/// Cut the windows of an opened recording; a recording that fails leaves no new files behind (windows already
/// there are kept). Returns the rows to store.
#[allow(clippy::too_many_arguments)]
fn cut_windows(
    ws: &Workspace,
    path: &Path,
    opts: &SegmentOptions,
    stream: &mut DecodeStream,
    file_name: &str,
    name_of: &dyn Fn(u64) -> String,
    report: &mut SegmentReport,
    progress: ProgressFn<'_>,
) -> Result<Vec<NewSegment>, SegmentError> {
    let mut written_now: Vec<PathBuf> = Vec::new();
    let result = stream_windows(ws, path, opts, stream, file_name, name_of, report, &mut written_now, progress);
    if result.is_err() {
        for p in &written_now {
            let _ = std::fs::remove_file(p);
        }
    }
    result
}

/// A recording cut into its window files without the store (a shard of a segmentation plan, see
/// `crate::slurm`): the report, the rows to store and the `raw_files` values. Storing them with
/// [`crate::store::add_segmented_file_in`] gives what [`segment_file`] gives, minus its checks against the store
/// (a shard does not open the store: the plan checks names) and its fast path (the shard's part file resumes).
pub fn cut_file(
    ws: &Workspace,
    path: &Path,
    opts: &SegmentOptions,
    progress: ProgressFn<'_>,
) -> Result<(SegmentReport, Vec<NewSegment>), SegmentError> {
    let Prepared { mut stream, file_name, stem, total_windows, mut report, .. } = prepare(ws, path, opts)?;
    let name_of = |index: u64| segment_name(&stem, index, total_windows);
    let rows = cut_windows(ws, path, opts, &mut stream, &file_name, &name_of, &mut report, progress)?;
    Ok((report, rows))
}

#[allow(clippy::too_many_arguments)]
fn stream_windows(
    ws: &Workspace,
    path: &Path,
    opts: &SegmentOptions,
    stream: &mut DecodeStream,
    file_name: &str,
    name_of: &dyn Fn(u64) -> String,
    report: &mut SegmentReport,
    written_now: &mut Vec<PathBuf>,
    progress: ProgressFn<'_>,
) -> Result<Vec<NewSegment>, SegmentError> {
    let rate = stream.sample_rate();
    let (win, hop, min) = opts.samples();
    let min = min.max(1);
    let mut resampler = StreamResampler::new(rate, TARGET_RATE)?;
    // `buf[0]` is sample `buf_start` of the 16 kHz signal.
    let mut buf: Vec<f32> = Vec::with_capacity(win as usize + 65_536);
    let mut buf_start: u64 = 0;
    let mut next_k: u64 = 0;
    let mut rows: Vec<NewSegment> = Vec::new();
    let total_sec = stream.frames_hint().map(|f| f as f64 / rate as f64);

    let emit = |buf: &[f32],
                buf_start: u64,
                w: Window,
                report: &mut SegmentReport,
                rows: &mut Vec<NewSegment>,
                written_now: &mut Vec<PathBuf>|
     -> Result<(), SegmentError> {
        let name = name_of(w.index);
        let rel = format!("segments/{name}");
        let abs = ws.abs_data_path(&rel);
        if wav_has_len(&abs, w.len()) {
            report.skipped += 1;
        } else {
            let a = (w.start - buf_start) as usize;
            let b = (w.end - buf_start) as usize;
            write_wav_16k(&abs, &buf[a..b])?;
            written_now.push(abs);
            report.written += 1;
        }
        report.windows += 1;
        report.segment_paths.push(rel.clone());
        rows.push(NewSegment {
            segment_path: rel,
            raw_file: file_name.to_string(),
            start_time: w.start_sec(),
            end_time: w.end_sec(),
            split: opts.split,
            label_source: LabelSource::none(),
            labels: None,
            scores: [None; 3],
            extra: None,
        });
        Ok(())
    };

    // Decoding runs on its own thread, one step ahead of resampling and writing (a bounded
    // channel keeps at most a few chunks in flight, so memory stays small).
    let mut pending: Vec<f32> = Vec::new();
    std::thread::scope(|scope| -> Result<(), SegmentError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<f32>, AudioError>>(8);
        scope.spawn(move || {
            let mut batch: Vec<f32> = Vec::with_capacity(DECODE_BATCH + 8192);
            loop {
                match stream.next_chunk() {
                    Ok(Some(c)) => {
                        batch.extend_from_slice(c);
                        if batch.len() >= DECODE_BATCH {
                            let full = std::mem::replace(&mut batch, Vec::with_capacity(DECODE_BATCH + 8192));
                            if tx.send(Ok(full)).is_err() {
                                return; // the consumer gave up
                            }
                        }
                    }
                    Ok(None) => {
                        if !batch.is_empty() {
                            let _ = tx.send(Ok(batch));
                        }
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
        });
        let mut decoded: u64 = 0;
        let mut chunks = rx.into_iter();
        loop {
            pending.clear();
            let more = match chunks.next() {
                Some(chunk) => {
                    let chunk = chunk?;
                    decoded += chunk.len() as u64;
                    resampler.push(&chunk, &mut pending)?;
                    true
                }
                None => {
                    resampler.finish(&mut pending)?;
                    false
                }
            };
            buf.extend_from_slice(&pending);
            let buf_end = buf_start + buf.len() as u64;
            // Emit every full window now covered.
            while next_k * hop + win <= buf_end {
                let w = Window { index: next_k + 1, start: next_k * hop, end: next_k * hop + win };
                emit(&buf, buf_start, w, report, &mut rows, written_now)?;
                next_k += 1;
                let keep_from = next_k * hop;
                if keep_from > buf_start {
                    let drop = ((keep_from - buf_start) as usize).min(buf.len());
                    buf.drain(..drop);
                    buf_start += drop as u64;
                }
            }
            if !more {
                return Ok(());
            }
            progress(decoded as f64 / rate as f64, total_sec);
        }
    })?;
    let n = buf_start + buf.len() as u64;
    if n == 0 {
        return Err(AudioError::NoSamples { path: path.to_path_buf() }.into());
    }
    // The tail: windows that start before the end but would run past it.
    while next_k * hop < n {
        let start = next_k * hop;
        let w = Window { index: next_k + 1, start, end: (start + win).min(n) };
        if w.len() >= min {
            emit(&buf, buf_start, w, report, &mut rows, written_now)?;
        } else {
            report.dropped_tail += 1;
        }
        next_k += 1;
    }
    report.duration = n as f64 / TARGET_RATE as f64;
    Ok(rows)
}

/// Whether `path` is a 16 kHz mono 16-bit WAV of exactly `len` samples (reads the header only).
pub fn wav_has_len(path: &Path, len: u64) -> bool {
    match hound::WavReader::open(path) {
        Ok(r) => {
            let s = r.spec();
            s.channels == 1 && s.sample_rate == TARGET_RATE && s.bits_per_sample == 16 && r.duration() as u64 == len
        }
        Err(_) => false,
    }
}

/// Frames in a file, summed from packet durations without decoding (for containers that do not
/// state their length).
fn count_frames(path: &Path) -> Result<u64, AudioError> {
    let mut s = DecodeStream::open(path)?;
    s.count_remaining_frames()
}

/// Where the recording lives in the workspace; copies it into `data/raw/` when asked.
fn place_raw(ws: &Workspace, path: &Path, file_name: &str, copy: bool) -> Result<String, SegmentError> {
    let abs = std::fs::canonicalize(path)
        .map_err(|e| SegmentError::File { path: path.to_path_buf(), detail: e.to_string() })?;
    let data = std::fs::canonicalize(ws.data_dir()).unwrap_or_else(|_| ws.data_dir());
    if let Ok(rel) = abs.strip_prefix(&data) {
        return Ok(rel.to_string_lossy().replace('\\', "/"));
    }
    if !copy {
        return Ok(abs.to_string_lossy().into_owned());
    }
    let raw_dir = ws.raw_dir();
    std::fs::create_dir_all(&raw_dir)
        .map_err(|e| SegmentError::File { path: raw_dir.clone(), detail: format!("cannot create: {e}") })?;
    let dest = raw_dir.join(file_name);
    let src_len = std::fs::metadata(&abs).map(|m| m.len()).unwrap_or(0);
    match std::fs::metadata(&dest) {
        Ok(m) if m.len() == src_len => {}
        Ok(_) => {
            return Err(SegmentError::File {
                path: path.to_path_buf(),
                detail: format!(
                    "a different file with the same name is already in {}; rename one of them",
                    raw_dir.display()
                ),
            });
        }
        Err(_) => {
            let tmp = raw_dir.join(format!(".{file_name}.{}.part", std::process::id()));
            std::fs::copy(&abs, &tmp).and_then(|_| std::fs::rename(&tmp, &dest)).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                SegmentError::File { path: dest.clone(), detail: format!("cannot copy the recording here: {e}") }
            })?;
        }
    }
    Ok(format!("raw/{file_name}"))
}
