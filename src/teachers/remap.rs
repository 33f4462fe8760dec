//! Pool a run's stored AudioSet logits again (`dams remap`): a NEW teacher run of the same
//! teacher and weights whose scores come from the 527-logit vectors kept with every score of the
//! original run, pooled another way. The model does not run; the original run is left as it is.
//!
//! The new run's settings are the original's with `pooling` replaced and `remapped_from` naming
//! the run that holds the logits (a remapped run keeps no logits of its own: remapping it again
//! reads them from that run). Imported runs and teachers that keep no logits are refused.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rusqlite::{OptionalExtension, params};
use serde_json::{Map, Value};

use super::audioset::{Pooling, collapse_logits};
use crate::store::{Store, bytes_to_f32s};

/// Segments read and written per step (bounded memory: 2 KB of logits each).
const PAGE: i64 = 512;

/// What [`remap_run`] made.
#[derive(Debug, Clone, PartialEq)]
pub struct RemapReport {
    /// The new run.
    pub run_id: i64,
    pub teacher: String,
    pub pooling: Pooling,
    /// The run the logits came from (the asked-for run, or the run it was remapped from).
    pub logits_run: i64,
    pub scored: usize,
    /// The teacher has active thresholds (calibrated on other scores).
    pub thresholds_kept: bool,
    pub elapsed: Duration,
}

struct RunRow {
    teacher: String,
    settings: String,
    kind: String,
    state: String,
}

fn run_row(store: &Store, id: i64) -> Result<Option<RunRow>> {
    Ok(store
        .conn()
        .query_row("SELECT teacher, settings, kind, state FROM teacher_runs WHERE id = ?1", [id], |r| {
            Ok(RunRow { teacher: r.get(0)?, settings: r.get(1)?, kind: r.get(2)?, state: r.get(3)? })
        })
        .optional()?)
}

fn settings_map(json: &str) -> Map<String, Value> {
    match serde_json::from_str(json) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// The pooling recorded in a run's settings (noisy-OR, the default, when none is).
fn pooling_of(settings: &Map<String, Value>) -> Pooling {
    settings.get("pooling").and_then(Value::as_str).and_then(|p| p.parse().ok()).unwrap_or_default()
}

/// Make a new run of `run_id`'s teacher with its logits pooled by `pooling` (one transaction:
/// on any error nothing is written).
pub fn remap_run(store: &mut Store, run_id: i64, pooling: Pooling) -> Result<RemapReport> {
    let started = Instant::now();
    let Some(run) = run_row(store, run_id)? else {
        bail!("there is no teacher run #{run_id} (`dams eval` lists the runs of each teacher)");
    };
    let mut settings = settings_map(&run.settings);
    if pooling_of(&settings) == pooling {
        bail!("run #{run_id} ({}) already uses {} pooling", run.teacher, pooling.as_str());
    }
    if run.kind == "imported" {
        bail!(
            "run #{run_id} ({}) was imported from a score file: it has no AudioSet logits to pool again; \
             score the segments with the model to keep them",
            run.teacher
        );
    }
    // A remapped run reads the logits of the run it came from.
    let logits_run = match settings.get("remapped_from").and_then(Value::as_i64) {
        Some(from) => from,
        None => run_id,
    };
    if logits_run != run_id {
        match run_row(store, logits_run)? {
            Some(r) if r.teacher == run.teacher => {}
            _ => bail!(
                "run #{run_id} was pooled from the logits of run #{logits_run}, which is gone; score again with the model"
            ),
        }
    }
    let state = if logits_run == run_id {
        run.state.clone()
    } else {
        run_row(store, logits_run)?.map(|r| r.state).unwrap_or_default()
    };
    if state != "done" {
        bail!(
            "run #{logits_run} ({}) is {state}: finish it first (`dams score --teacher {}` resumes it), then pool it again",
            run.teacher,
            run.teacher
        );
    }
    let (n, with_logits): (i64, i64) = store.conn().query_row(
        "SELECT count(*), count(logits) FROM teacher_scores WHERE run_id = ?1",
        [logits_run],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if n == 0 {
        bail!("run #{logits_run} ({}) has no scores", run.teacher);
    }
    if with_logits == 0 {
        bail!(
            "run #{logits_run} ({}) kept no logits: {} scores speech, music and noise directly; \
             pooling applies to AudioSet taggers such as ast",
            run.teacher,
            run.teacher
        );
    }
    if with_logits < n {
        bail!("{} of the {n} scores of run #{logits_run} have no logits: score again with the model", n - with_logits);
    }
    settings.insert("pooling".into(), Value::from(pooling.as_str()));
    settings.insert("remapped_from".into(), Value::from(logits_run));
    let settings = Value::Object(settings).to_string();

    let tx = store.conn_mut().transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT INTO teacher_runs (teacher, checksum, settings, kind, zero_shot, state, created_at, device) \
         SELECT teacher, checksum, ?2, kind, zero_shot, 'running', strftime('%Y-%m-%dT%H:%M:%fZ','now'), device \
         FROM teacher_runs WHERE id = ?1",
        params![logits_run, settings],
    )?;
    let new_id = tx.last_insert_rowid();
    let mut scored = 0usize;
    {
        let mut read = tx.prepare(
            "SELECT segment_id, logits FROM teacher_scores WHERE run_id = ?1 AND segment_id > ?2 \
             ORDER BY segment_id LIMIT ?3",
        )?;
        let mut write = tx.prepare(
            "INSERT INTO teacher_scores (run_id, segment_id, speech, music, noise, logits) VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
        )?;
        let mut after = i64::MIN;
        loop {
            let page: Vec<(i64, Vec<u8>)> = read
                .query_map(params![logits_run, after, PAGE], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let Some(last) = page.last() else { break };
            after = last.0;
            for (segment_id, blob) in &page {
                let s = collapse_logits(&bytes_to_f32s(blob), pooling)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("segment #{segment_id} of run #{logits_run}"))?;
                write.execute(params![new_id, segment_id, s[0] as f64, s[1] as f64, s[2] as f64])?;
                scored += 1;
            }
        }
    }
    tx.execute(
        "UPDATE teacher_runs SET state = 'done', finished_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?1",
        [new_id],
    )?;
    tx.commit()?;
    let thresholds_kept = store.thresholds(&run.teacher)?.iter().any(|t| t.is_some());
    Ok(RemapReport {
        run_id: new_id,
        teacher: run.teacher,
        pooling,
        logits_run,
        scored,
        thresholds_kept,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::{LabelSource, Split};
    use crate::store::{NewRun, NewSegment, ScoreRow};
    use crate::teachers::audioset::N_AUDIOSET;

    fn store_with_segments(n: usize) -> Store {
        let mut store = Store::open_in_memory().unwrap();
        let rows: Vec<NewSegment> = (0..n)
            .map(|i| NewSegment {
                segment_path: format!("segments/s{i}.wav"),
                raw_file: "raw.wav".into(),
                start_time: i as f64 * 5.0,
                end_time: i as f64 * 5.0 + 10.0,
                split: Split::Dev,
                label_source: LabelSource::none(),
                labels: None,
                scores: [None; 3],
                extra: None,
            })
            .collect();
        store.upsert_segments(&rows).unwrap();
        store
    }

    /// Logits with a strong speech class, a weak music class and everything else very low.
    fn logits(i: usize) -> Vec<f32> {
        let mut l = vec![-8.0f32; N_AUDIOSET];
        l[0] = 2.0 + i as f32; // speech
        l[137] = -1.0; // music
        l[300] = -3.0; // noise
        l
    }

    fn run_with_logits(store: &mut Store, n: usize, kind_imported: bool, keep: bool) -> i64 {
        let id = store
            .create_run(&NewRun {
                teacher: "ast",
                checksum: "sha256:x",
                settings: r#"{"device":"cpu","pooling":"noisy_or","splits":"all"}"#,
                imported: kind_imported,
                zero_shot: false,
            })
            .unwrap();
        let rows: Vec<ScoreRow> = (0..n)
            .map(|i| {
                let l = logits(i);
                ScoreRow {
                    segment_id: i as i64 + 1,
                    scores: collapse_logits(&l, Pooling::NoisyOr).unwrap(),
                    logits: keep.then_some(l),
                }
            })
            .collect();
        store.put_scores(id, &rows).unwrap();
        store.finish_run(id, "done").unwrap();
        id
    }

    #[test]
    fn remapped_runs_hold_the_logits_pooled_the_new_way() {
        let mut store = store_with_segments(600);
        let src = run_with_logits(&mut store, 600, false, true);
        let r = remap_run(&mut store, src, Pooling::Max).unwrap();
        assert_eq!((r.scored, r.logits_run, r.teacher.as_str()), (600, src, "ast"));
        assert!(r.run_id > src);
        let runs = store.runs().unwrap();
        let new = runs.iter().find(|x| x.id == r.run_id).unwrap();
        assert_eq!((new.state.as_str(), new.n_scores, new.checksum.as_str()), ("done", 600, "sha256:x"));
        let s = settings_map(&new.settings);
        assert_eq!(s["pooling"], "max");
        assert_eq!(s["remapped_from"], src);
        assert_eq!(s["device"], "cpu");
        // The new run is the teacher's latest; its scores are max-pooled (over 600 segments:
        // more than one page).
        assert_eq!(store.latest_runs().unwrap()[0].id, r.run_id);
        let scores = store.run_scores(r.run_id).unwrap();
        for (seg, sc) in [&scores[0], &scores[599]] {
            let want = collapse_logits(&logits(*seg as usize - 1), Pooling::Max).unwrap();
            assert_eq!(*sc, want);
        }
        assert_ne!(scores[0].1, store.run_scores(src).unwrap()[0].1, "noisy-OR and max differ");
        // Remapping the remapped run reads the original logits; the same pooling is refused.
        let e = remap_run(&mut store, r.run_id, Pooling::Max).unwrap_err().to_string();
        assert!(e.contains("already uses max pooling"), "{e}");
        let r2 = remap_run(&mut store, r.run_id, Pooling::Mean).unwrap();
        assert_eq!(r2.logits_run, src);
        let want = collapse_logits(&logits(0), Pooling::Mean).unwrap();
        assert_eq!(store.run_scores(r2.run_id).unwrap()[0].1, want);
    }

    #[test]
    fn runs_without_logits_are_refused_and_nothing_is_written() {
        let mut store = store_with_segments(3);
        let imported = run_with_logits(&mut store, 3, true, false);
        let e = remap_run(&mut store, imported, Pooling::Max).unwrap_err().to_string();
        assert!(e.contains("imported from a score file") && e.contains("no AudioSet logits"), "{e}");
        let plain = run_with_logits(&mut store, 3, false, false);
        let e = remap_run(&mut store, plain, Pooling::Max).unwrap_err().to_string();
        assert!(e.contains("kept no logits"), "{e}");
        let e = remap_run(&mut store, 99, Pooling::Max).unwrap_err().to_string();
        assert!(e.contains("no teacher run #99"), "{e}");
        let e = remap_run(&mut store, plain, Pooling::NoisyOr).unwrap_err().to_string();
        assert!(e.contains("already uses noisy_or pooling"), "{e}");
        // A run still being scored.
        let running = run_with_logits(&mut store, 3, false, true);
        store.conn().execute("UPDATE teacher_runs SET state = 'cancelled' WHERE id = ?1", [running]).unwrap();
        let e = remap_run(&mut store, running, Pooling::Max).unwrap_err().to_string();
        assert!(e.contains("is cancelled: finish it first"), "{e}");
        // A corrupt logit vector fails the whole remap: no half run is left behind.
        let ok = run_with_logits(&mut store, 3, false, true);
        store
            .conn()
            .execute("UPDATE teacher_scores SET logits = x'00000000' WHERE run_id = ?1 AND segment_id = 3", [ok])
            .unwrap();
        let before = store.runs().unwrap().len();
        let e = format!("{:#}", remap_run(&mut store, ok, Pooling::Max).unwrap_err());
        assert!(e.contains("segment #3") && e.contains("expected 527"), "{e}");
        assert_eq!(store.runs().unwrap().len(), before);
    }
}
