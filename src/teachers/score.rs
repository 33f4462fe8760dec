//! The scoring job: run a teacher over the workspace's segments into a teacher run.
//!
//! Resumable (an unfinished run of the same teacher, weights and settings continues where it stopped),
//! cancellable (an `AtomicBool`, or any flag such as a job's, checked between batches), writes each batch in one
//! transaction, reports progress through a callback, and reports-and-skips segments whose audio cannot be read.
//! Knows nothing of the terminal. [`crate::jobs::catalog`] runs it as a job (the CLI and the TUI alike).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::Teacher;
use crate::labels::{CLASSES, Split};
use crate::store::{NewRun, NewThreshold, ScoreRow, Store};
use crate::workspace::Workspace;

/// What to score.
#[derive(Debug, Clone, Default)]
pub struct ScoreOptions {
    /// Only segments of these splits (all segments when `None`).
    pub splits: Option<Vec<Split>>,
    /// Segments per batch (the teacher's preference when `None`).
    pub batch_size: Option<usize>,
    /// Start a new run even if an unfinished one could be resumed.
    pub fresh: bool,
}

/// Progress of a scoring job.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Segments handled in this run so far (scored or failed), including those scored before a resume.
    pub done: usize,
    pub total: usize,
    /// Segments per second in this session.
    pub rate: f64,
    pub eta: Option<Duration>,
    pub failed: usize,
}

/// The outcome of a scoring job.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreReport {
    pub run_id: i64,
    pub resumed: bool,
    /// Segments scored in this session.
    pub scored: usize,
    /// Segments that were already scored in the resumed run.
    pub already: usize,
    /// Segments whose audio could not be read or scored: `(segment path, error)`.
    pub failed: Vec<(String, String)>,
    pub cancelled: bool,
    pub elapsed: Duration,
    /// The teacher's default thresholds were stored because the workspace had none.
    pub default_thresholds_set: bool,
}

/// Score segments of `ws` with `teacher` into a new or resumed run.
pub fn score_segments(
    ws: &Workspace,
    store: &mut Store,
    teacher: &mut dyn Teacher,
    opts: &ScoreOptions,
    cancel: &AtomicBool,
    progress: impl FnMut(&Progress),
) -> Result<ScoreReport> {
    score_segments_with(ws, store, teacher, opts, || cancel.load(Ordering::Relaxed), progress)
}

/// [`score_segments`] with any cancellation test (checked between batches).
pub fn score_segments_with(
    ws: &Workspace,
    store: &mut Store,
    teacher: &mut dyn Teacher,
    opts: &ScoreOptions,
    cancelled: impl Fn() -> bool,
    mut progress: impl FnMut(&Progress),
) -> Result<ScoreReport> {
    let started = Instant::now();
    let split_names = opts.splits.as_ref().map(|s| s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(","));
    let settings = run_settings(teacher, opts.splits.as_deref());

    let segments = store.segments(opts.splits.as_deref())?;
    if segments.is_empty() {
        anyhow::bail!(
            "no segments to score{} (import a manifest or cut recordings with `dams segment` first)",
            split_names.as_deref().map(|s| format!(" in split(s) {s}")).unwrap_or_default()
        );
    }
    let existing = if opts.fresh { None } else { store.resumable_run(teacher.id(), teacher.checksum(), &settings)? };
    let (run_id, resumed) = match existing {
        Some(id) => {
            store.reopen_run(id)?;
            (id, true)
        }
        None => {
            let id = store.create_run(&NewRun {
                teacher: teacher.id(),
                checksum: teacher.checksum(),
                settings: &settings,
                imported: false,
                zero_shot: teacher.zero_shot(),
            })?;
            store.set_run_raw_vocab(id, teacher.raw_vocab())?;
            (id, false)
        }
    };
    // One process scores a run at a time: a second one would score the same segments twice.
    let _lease = crate::store::lease::RunLease::acquire(store, run_id)?;

    let done_before = store.scored_segments(run_id)?;
    let todo: Vec<_> = segments.iter().filter(|s| !done_before.contains(&s.id)).collect();
    let total = segments.len();
    let already = total - todo.len();
    // What the teacher scores from the store alone (e.g. an ast-head student on cached embeddings) needs no audio.
    let ids: Vec<i64> = todo.iter().map(|s| s.id).collect();
    let stored = if ids.is_empty() { Vec::new() } else { teacher.score_stored(store, &ids)? };
    let mut from_store: Vec<ScoreRow> = Vec::new();
    let mut rest = Vec::with_capacity(todo.len());
    for (seg, out) in todo.into_iter().zip(stored.into_iter().chain(std::iter::repeat(None))) {
        match out {
            Some(o) if o.scores.iter().all(|v| v.is_finite()) => from_store.push(ScoreRow {
                segment_id: seg.id,
                scores: o.scores.map(|v| v.clamp(0.0, 1.0)),
                raw: o.raw,
            }),
            _ => rest.push((seg.id, seg.segment_path.as_str())),
        }
    }
    let todo = rest;
    for rows in from_store.chunks(512) {
        store.put_scores(run_id, rows)?;
    }
    let start_done = already + from_store.len();
    let batch = opts.batch_size.unwrap_or_else(|| teacher.batch_size()).max(1);

    let mut report = ScoreReport {
        run_id,
        resumed,
        scored: from_store.len(),
        already,
        failed: Vec::new(),
        cancelled: false,
        elapsed: Duration::ZERO,
        default_thresholds_set: false,
    };
    let outcome = score_batches(
        ws,
        teacher,
        &todo,
        batch,
        cancelled,
        |rows, embeddings| {
            // Embeddings the teacher computed on the way go to the shared cache (CLAP re-scores other prompts from
            // them without the audio tower).
            if let Some(e) = embeddings {
                store.put_embeddings(&e.checksum, e.kind, &e.rows)?;
            }
            Ok(store.put_scores(run_id, rows)?)
        },
        |handled, failed| {
            let secs = started.elapsed().as_secs_f64();
            let rate = if secs > 0.0 { handled as f64 / secs } else { 0.0 };
            let left = todo.len() - handled;
            let eta = (rate > 0.0).then(|| Duration::from_secs_f64(left as f64 / rate));
            progress(&Progress { done: start_done + handled, total, rate, eta, failed });
        },
    )?;
    report.scored += outcome.scored;
    report.cancelled = outcome.cancelled;
    report.failed = outcome.failed.into_iter().map(|(_, path, e)| (path, e)).collect();

    // A session that scored nothing and failed on every segment it tried leaves the run unfinished (resumable once
    // the audio is fixed), never `done` with no scores, and stores no thresholds.
    let all_failed = report.scored == 0 && !report.failed.is_empty() && report.already == 0;
    let state = if report.cancelled {
        "cancelled"
    } else if all_failed {
        "failed"
    } else {
        "done"
    };
    store.finish_run(run_id, state)?;
    if all_failed {
        report.elapsed = started.elapsed();
        return Ok(report);
    }
    if let Some(defaults) = teacher.default_thresholds() {
        report.default_thresholds_set =
            store_default_thresholds(store, teacher.id(), &teacher.version(), defaults, run_id)?;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The settings that identify a run of `teacher` over `splits`: the teacher's own settings plus the splits. A
/// sharded run (see [`crate::slurm`]) computes them the same way, so it is the same run as an unsharded one.
pub fn run_settings(teacher: &dyn Teacher, splits: Option<&[Split]>) -> String {
    let split_names = splits.map(|s| s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(","));
    let base: serde_json::Value = serde_json::from_str(&teacher.settings_json()).unwrap_or(serde_json::json!({}));
    let mut settings = match base {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    settings.insert("splits".into(), serde_json::json!(split_names.unwrap_or_else(|| "all".into())));
    serde_json::Value::Object(settings).to_string()
}

/// Store `defaults` as `teacher`'s thresholds (method `default`) for the classes that have none yet in this
/// workspace; whether any was stored.
pub fn store_default_thresholds(
    store: &mut Store,
    teacher: &str,
    version: &str,
    defaults: [f64; 3],
    run_id: i64,
) -> Result<bool> {
    let current = store.thresholds(teacher)?;
    let mut set = false;
    for c in CLASSES {
        if current[c.index()].is_none() {
            store.save_threshold(&NewThreshold {
                teacher: teacher.to_string(),
                class: Some(c),
                value: Some(defaults[c.index()]),
                method: "default".into(),
                run_id: Some(run_id),
                created_by: "dams".into(),
                note: Some(format!("default of teacher {teacher} ({version})")),
                ..Default::default()
            })?;
            set = true;
        }
    }
    Ok(set)
}

/// What [`score_batches`] did.
#[derive(Debug, Clone, Default)]
pub struct BatchOutcome {
    /// Segments whose scores were handed to `write`.
    pub scored: usize,
    /// `(segment id, segment path, error)` of segments that could not be read or scored.
    pub failed: Vec<(i64, String, String)>,
    pub cancelled: bool,
}

/// Embeddings a teacher computed while scoring one batch ([`super::Teacher::take_embeddings`]), keyed for the
/// workspace's embedding cache.
#[derive(Debug, Clone)]
pub struct BatchEmbeddings {
    pub checksum: String,
    pub kind: &'static str,
    /// `(segment id, embedding)` of the batch's scored segments.
    pub rows: Vec<(i64, Vec<f32>)>,
}

/// The scoring loop every scoring path shares (a local run into the store, a shard into its part file): decode
/// `todo` (`(segment id, data-relative path)`) one batch ahead on a second thread, score each batch with
/// `teacher`, clamp the scores into [0, 1], hand each batch's rows (and the embeddings the teacher computed on the
/// way, if it offers them) to `write` (one commit per batch), report
/// `(segments handled, failed so far)` after each batch, stop between batches when `cancelled()`.
pub fn score_batches(
    ws: &Workspace,
    teacher: &mut dyn Teacher,
    todo: &[(i64, &str)],
    batch: usize,
    cancelled: impl Fn() -> bool,
    mut write: impl FnMut(&[ScoreRow], Option<&BatchEmbeddings>) -> Result<()>,
    mut progress: impl FnMut(usize, usize),
) -> Result<BatchOutcome> {
    let batch = batch.max(1);
    let rate_of_teacher = teacher.sample_rate();
    let mut out = BatchOutcome::default();
    let mut handled = 0usize;
    progress(0, 0);

    // Decoding runs one thread ahead of scoring (at most two batches in flight), so the two overlap.
    struct Decoded<'s> {
        chunk: &'s [(i64, &'s str)],
        ids: Vec<i64>,
        audio: Vec<Vec<f32>>,
        failed: Vec<(i64, String, String)>,
    }
    let decode = |path: &str| -> std::result::Result<Vec<f32>, String> {
        let path = ws.resolve_data_path(path).map_err(|e| e.to_string())?;
        let x = crate::audio::load_mono_16k(&path).map_err(|e| e.to_string())?;
        if rate_of_teacher == crate::audio::TARGET_RATE {
            Ok(x)
        } else {
            crate::audio::resample(&x, crate::audio::TARGET_RATE, rate_of_teacher).map_err(|e| e.to_string())
        }
    };
    let (tx, rx) = std::sync::mpsc::sync_channel::<Decoded<'_>>(1);
    let outcome: Result<()> = std::thread::scope(|scope| {
        scope.spawn(move || {
            for chunk in todo.chunks(batch) {
                let mut d = Decoded { chunk, ids: Vec::new(), audio: Vec::new(), failed: Vec::new() };
                for &(id, path) in chunk {
                    match decode(path) {
                        Ok(x) => {
                            d.ids.push(id);
                            d.audio.push(x);
                        }
                        Err(e) => d.failed.push((id, path.to_string(), e)),
                    }
                }
                if tx.send(d).is_err() {
                    break; // the scorer stopped (cancelled or failed)
                }
            }
        });
        let result = (|| -> Result<()> {
            for d in rx.iter() {
                if cancelled() {
                    out.cancelled = true;
                    break;
                }
                out.failed.extend(d.failed);
                if !d.audio.is_empty() {
                    let refs: Vec<&[f32]> = d.audio.iter().map(|a| a.as_slice()).collect();
                    let scored = teacher.score_batch(&refs).and_then(|outs| {
                        if outs.len() == d.ids.len() {
                            Ok(outs)
                        } else {
                            Err(super::TeacherError::Input {
                                id: teacher.id().to_string(),
                                detail: format!("returned {} results for {} segments", outs.len(), d.ids.len()),
                            })
                        }
                    });
                    let decoded = || d.chunk.iter().filter(|(id, _)| d.ids.contains(id));
                    match scored {
                        Ok(outs) => {
                            let mut rows: Vec<ScoreRow> = Vec::with_capacity(outs.len());
                            for (o, &(segment_id, path)) in outs.into_iter().zip(decoded()) {
                                if o.scores.iter().all(|v| v.is_finite()) {
                                    let scores = o.scores.map(|v| v.clamp(0.0, 1.0));
                                    rows.push(ScoreRow { segment_id, scores, raw: o.raw });
                                } else {
                                    out.failed.push((
                                        segment_id,
                                        path.to_string(),
                                        format!("teacher returned non-finite scores {:?}", o.scores),
                                    ));
                                }
                            }
                            let embeddings = teacher.take_embeddings().and_then(|(checksum, kind, embs)| {
                                (embs.len() == d.ids.len()).then(|| BatchEmbeddings {
                                    checksum,
                                    kind,
                                    rows: d
                                        .ids
                                        .iter()
                                        .copied()
                                        .zip(embs)
                                        .filter(|(id, e)| {
                                            e.iter().all(|v| v.is_finite()) && rows.iter().any(|r| r.segment_id == *id)
                                        })
                                        .collect(),
                                })
                            });
                            write(&rows, embeddings.as_ref())?;
                            out.scored += rows.len();
                        }
                        Err(e) => {
                            for &(id, path) in decoded() {
                                out.failed.push((id, path.to_string(), e.to_string()));
                            }
                        }
                    }
                }
                handled += d.chunk.len();
                progress(handled, out.failed.len());
            }
            Ok(())
        })();
        drop(rx); // unblocks and ends the decoder if scoring stopped early
        result
    });
    outcome?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::{LabelSource, Split};
    use crate::store::NewSegment;
    use crate::teachers::{TeacherError, TeacherOutput};

    /// A teacher whose score is the segment's RMS, so results are easy to check.
    struct RmsTeacher {
        calls: usize,
    }
    impl Teacher for RmsTeacher {
        fn id(&self) -> &str {
            "rms"
        }
        fn version(&self) -> String {
            "1".into()
        }
        fn checksum(&self) -> &str {
            "sha256:test"
        }
        fn batch_size(&self) -> usize {
            2
        }
        fn score_batch(&mut self, segs: &[&[f32]]) -> Result<Vec<TeacherOutput>, TeacherError> {
            self.calls += 1;
            Ok(segs
                .iter()
                .map(|s| {
                    let r = (s.iter().map(|v| v * v).sum::<f32>() / s.len().max(1) as f32).sqrt();
                    TeacherOutput { scores: [r, 0.0, 1.0], raw: None }
                })
                .collect())
        }
    }

    fn workspace_with_segments(n: usize, broken: &[usize]) -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::init(dir.path()).unwrap();
        let mut store = ws.open_store().unwrap();
        let mut rows = Vec::new();
        for i in 0..n {
            let rel = format!("segments/s{i}.wav");
            let path = ws.abs_data_path(&rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            if broken.contains(&i) {
                std::fs::write(&path, b"not audio at all").unwrap();
            } else {
                let amp = 0.1 * (i + 1) as f32;
                let x: Vec<f32> = (0..1600).map(|k| if k % 2 == 0 { amp } else { -amp }).collect();
                crate::audio::write_wav_16k(&path, &x).unwrap();
            }
            rows.push(NewSegment {
                segment_path: rel,
                raw_file: "raw.wav".into(),
                start_time: i as f64 * 5.0,
                end_time: i as f64 * 5.0 + 10.0,
                split: if i % 2 == 0 { Split::Dev } else { Split::Test },
                label_source: LabelSource::none(),
                labels: None,
                scores: [None; 3],
                extra: None,
            });
        }
        store.upsert_segments(&rows).unwrap();
        (dir, ws)
    }

    /// Returns NaN for quiet segments: those are reported as failed, never stored.
    struct NanTeacher;
    impl Teacher for NanTeacher {
        fn id(&self) -> &str {
            "nan"
        }
        fn version(&self) -> String {
            "1".into()
        }
        fn checksum(&self) -> &str {
            "x"
        }
        fn score_batch(&mut self, segs: &[&[f32]]) -> Result<Vec<TeacherOutput>, TeacherError> {
            Ok(segs
                .iter()
                .map(|s| {
                    let loud = s.iter().any(|v| v.abs() > 0.15);
                    TeacherOutput { scores: if loud { [1.5, -0.2, 0.5] } else { [f32::NAN; 3] }, raw: None }
                })
                .collect())
        }
    }

    #[test]
    fn empty_selection_and_bad_scores_are_clear() {
        let (_d, ws) = workspace_with_segments(3, &[]);
        let mut store = ws.open_store().unwrap();
        let cancel = AtomicBool::new(false);
        let none = ScoreOptions { splits: Some(vec![Split::Unlabeled]), ..Default::default() };
        let err = score_segments(&ws, &mut store, &mut NanTeacher, &none, &cancel, |_| {}).unwrap_err();
        assert!(err.to_string().contains("no segments to score in split(s) unlabeled"), "{err}");
        assert!(store.runs().unwrap().is_empty());
        // Amplitudes 0.1, 0.2, 0.3: the first is "quiet" and gets NaN.
        let r = score_segments(&ws, &mut store, &mut NanTeacher, &ScoreOptions::default(), &cancel, |_| {}).unwrap();
        assert_eq!((r.scored, r.failed.len()), (2, 1));
        assert!(r.failed[0].0.ends_with("s0.wav") && r.failed[0].1.contains("non-finite"), "{:?}", r.failed);
        // Out-of-range scores are clamped into [0, 1].
        assert!(store.run_scores(r.run_id).unwrap().iter().all(|(_, s)| *s == [1.0, 0.0, 0.5]));
    }

    #[test]
    fn a_run_that_failed_on_every_segment_is_not_done_and_sets_no_thresholds() {
        struct Calibrated;
        impl Teacher for Calibrated {
            fn id(&self) -> &str {
                "cal"
            }
            fn version(&self) -> String {
                "1".into()
            }
            fn checksum(&self) -> &str {
                "sha256:cal"
            }
            fn default_thresholds(&self) -> Option<[f64; 3]> {
                Some([0.5; 3])
            }
            fn score_batch(&mut self, segs: &[&[f32]]) -> Result<Vec<TeacherOutput>, TeacherError> {
                Ok(segs.iter().map(|_| TeacherOutput { scores: [0.5; 3], raw: None }).collect())
            }
        }
        let (_d, ws) = workspace_with_segments(3, &[0, 1, 2]);
        let mut store = ws.open_store().unwrap();
        let cancel = AtomicBool::new(false);
        let r = score_segments(&ws, &mut store, &mut Calibrated, &ScoreOptions::default(), &cancel, |_| {}).unwrap();
        assert_eq!((r.scored, r.failed.len(), r.default_thresholds_set), (0, 3, false));
        let run = &store.runs().unwrap()[0];
        assert_eq!(run.state, "failed");
        assert!(store.thresholds("cal").unwrap().iter().all(|t| t.is_none()));
        // Fixed audio: the same run resumes and completes.
        for i in 0..3 {
            crate::audio::write_wav_16k(&ws.abs_data_path(&format!("segments/s{i}.wav")), &[0.1; 1600]).unwrap();
        }
        let r2 = score_segments(&ws, &mut store, &mut Calibrated, &ScoreOptions::default(), &cancel, |_| {}).unwrap();
        assert_eq!((r2.run_id, r2.resumed, r2.scored, r2.default_thresholds_set), (r.run_id, true, 3, true));
        assert_eq!(store.runs().unwrap()[0].state, "done");
    }

    #[test]
    fn scores_skips_bad_audio_cancels_and_resumes() {
        let (_d, ws) = workspace_with_segments(6, &[3]);
        let mut store = ws.open_store().unwrap();
        let mut t = RmsTeacher { calls: 0 };
        // Cancel after the first batch.
        let cancel = AtomicBool::new(false);
        let mut seen = Vec::new();
        let r = score_segments(&ws, &mut store, &mut t, &ScoreOptions::default(), &cancel, |p| {
            seen.push(p.done);
            if p.done >= 2 {
                cancel.store(true, Ordering::Relaxed);
            }
        })
        .unwrap();
        assert!(r.cancelled && !r.resumed);
        assert_eq!(r.scored, 2);
        assert_eq!(store.scored_segments(r.run_id).unwrap().len(), 2);
        assert_eq!(seen, vec![0, 2]);

        // Resume: the same run continues, the broken file is reported and skipped.
        let cancel = AtomicBool::new(false);
        let r2 = score_segments(&ws, &mut store, &mut t, &ScoreOptions::default(), &cancel, |_| {}).unwrap();
        assert!(r2.resumed && !r2.cancelled);
        assert_eq!(r2.run_id, r.run_id);
        assert_eq!((r2.already, r2.scored), (2, 3));
        assert_eq!(r2.failed.len(), 1);
        assert!(r2.failed[0].0.ends_with("s3.wav"), "{:?}", r2.failed);
        let scores = store.run_scores(r.run_id).unwrap();
        assert_eq!(scores.len(), 5);
        // Square wave of amplitude 0.1 (i + 1): RMS equals the amplitude (16-bit rounding aside).
        let seg0 = store.segment_by_path("segments/s0.wav").unwrap().unwrap();
        let s0 = scores.iter().find(|(id, _)| *id == seg0.id).unwrap().1;
        assert!((s0[0] - 0.1).abs() < 1e-3, "{s0:?}");
        let run = store.runs().unwrap().into_iter().find(|x| x.id == r.run_id).unwrap();
        assert_eq!(run.state, "done");

        // A finished run is not resumed; a split filter gives a run of its own.
        let only_dev = ScoreOptions { splits: Some(vec![Split::Dev]), ..Default::default() };
        let r3 = score_segments(&ws, &mut store, &mut t, &only_dev, &cancel, |_| {}).unwrap();
        assert_ne!(r3.run_id, r.run_id);
        assert_eq!(r3.scored, 3);
    }
}
