//! The scoring job: run a teacher over the workspace's segments into a teacher run.
//!
//! Resumable (an unfinished run of the same teacher, weights and settings continues where it stopped),
//! cancellable through an `AtomicBool`, writes each batch in one transaction, reports progress through a callback,
//! and reports-and-skips segments whose audio cannot be read. Knows nothing of the terminal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::Teacher;
use crate::labels::Split;
use crate::store::{NewRun, ScoreRow, Store};
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
}

/// Score segments of `ws` with `teacher` into a new or resumed run.
pub fn score_segments(
    ws: &Workspace,
    store: &mut Store,
    teacher: &mut dyn Teacher,
    opts: &ScoreOptions,
    cancel: &AtomicBool,
    mut progress: impl FnMut(&Progress),
) -> Result<ScoreReport> {
    let started = Instant::now();
    let split_names = opts.splits.as_ref().map(|s| s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(","));
    let base: serde_json::Value = serde_json::from_str(&teacher.settings_json()).unwrap_or(serde_json::json!({}));
    let mut settings = match base {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    settings.insert("splits".into(), serde_json::json!(split_names.clone().unwrap_or_else(|| "all".into())));
    let settings = serde_json::Value::Object(settings).to_string();

    let existing = if opts.fresh { None } else { store.resumable_run(teacher.id(), teacher.checksum(), &settings)? };
    let (run_id, resumed) = match existing {
        Some(id) => {
            store.conn().execute("UPDATE teacher_runs SET state = 'running' WHERE id = ?1", [id])?;
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
            (id, false)
        }
    };

    let segments = store.segments(opts.splits.as_deref())?;
    let done_before = store.scored_segments(run_id)?;
    let todo: Vec<_> = segments.iter().filter(|s| !done_before.contains(&s.id)).collect();
    let total = segments.len();
    let already = total - todo.len();
    let batch = opts.batch_size.unwrap_or_else(|| teacher.batch_size()).max(1);
    let rate_of_teacher = teacher.sample_rate();

    let mut report = ScoreReport {
        run_id,
        resumed,
        scored: 0,
        already,
        failed: Vec::new(),
        cancelled: false,
        elapsed: Duration::ZERO,
    };
    let mut handled = 0usize;
    let report_progress = |handled: usize, failed: usize, progress: &mut dyn FnMut(&Progress)| {
        let secs = started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { handled as f64 / secs } else { 0.0 };
        let left = todo.len() - handled;
        let eta = (rate > 0.0).then(|| Duration::from_secs_f64(left as f64 / rate));
        progress(&Progress { done: already + handled, total, rate, eta, failed });
    };
    report_progress(0, 0, &mut progress);

    for chunk in todo.chunks(batch) {
        if cancel.load(Ordering::Relaxed) {
            report.cancelled = true;
            break;
        }
        let mut ids = Vec::with_capacity(chunk.len());
        let mut audio: Vec<Vec<f32>> = Vec::with_capacity(chunk.len());
        for seg in chunk {
            let loaded = ws
                .resolve_data_path(&seg.segment_path)
                .map_err(|e| e.to_string())
                .and_then(|p| crate::audio::load_mono_16k(&p).map_err(|e| e.to_string()))
                .and_then(|x| {
                    if rate_of_teacher == crate::audio::TARGET_RATE {
                        Ok(x)
                    } else {
                        crate::audio::resample(&x, crate::audio::TARGET_RATE, rate_of_teacher)
                            .map_err(|e| e.to_string())
                    }
                });
            match loaded {
                Ok(x) => {
                    ids.push(seg.id);
                    audio.push(x);
                }
                Err(e) => report.failed.push((seg.segment_path.clone(), e)),
            }
        }
        if !audio.is_empty() {
            let refs: Vec<&[f32]> = audio.iter().map(|a| a.as_slice()).collect();
            match teacher.score_batch(&refs) {
                Ok(outs) => {
                    let rows: Vec<ScoreRow> = ids
                        .iter()
                        .zip(outs)
                        .map(|(&segment_id, o)| ScoreRow { segment_id, scores: o.scores, logits: o.logits })
                        .collect();
                    store.put_scores(run_id, &rows)?;
                    report.scored += rows.len();
                }
                Err(e) => {
                    for seg in chunk.iter().filter(|s| ids.contains(&s.id)) {
                        report.failed.push((seg.segment_path.clone(), e.to_string()));
                    }
                }
            }
        }
        handled += chunk.len();
        report_progress(handled, report.failed.len(), &mut progress);
    }

    store.finish_run(run_id, if report.cancelled { "cancelled" } else { "done" })?;
    report.elapsed = started.elapsed();
    Ok(report)
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
                    TeacherOutput { scores: [r, 0.0, 1.0], logits: None }
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
