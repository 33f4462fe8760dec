//! Derive a run's scores again from its stored raw outputs with other settings (`dams remap`): a NEW teacher run of
//! the same teacher and weights whose speech / music / noise scores come from the raw output kept with every score
//! of the original run (the 527 AudioSet logits of any tagger, ...), re-derived by [`super::raw::rescore`] with the
//! changed settings (AudioSet pooling, ...). The model does not run; the original run is left as it is.
//!
//! The new run's settings are the original's with the changed options replaced and `remapped_from` naming the run
//! that holds the raw outputs (a remapped run keeps none of its own: remapping it again reads them from that run).
//! Imported runs, teachers that keep no raw outputs and settings the raw outputs do not decide are refused.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Map, Value};

use super::raw;
use crate::store::Store;

/// What [`remap_run`] made.
#[derive(Debug, Clone, PartialEq)]
pub struct RemapReport {
    /// The new run.
    pub run_id: i64,
    pub teacher: String,
    /// The settings that changed, as `name=value`.
    pub changed: Vec<(String, String)>,
    /// The run the logits came from (the asked-for run, or the run it was remapped from).
    pub logits_run: i64,
    pub scored: usize,
    /// The teacher had thresholds for the old settings: they do not apply to the new run.
    pub thresholds_left: bool,
    pub elapsed: Duration,
}

use crate::store::runs::RunHead as RunRow;

fn run_row(store: &Store, id: i64) -> Result<Option<RunRow>> {
    Ok(store.run_head(id)?)
}

fn settings_map(json: &str) -> Map<String, Value> {
    match serde_json::from_str(json) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Make a new run of `run_id`'s teacher with its scores derived again from the stored raw outputs with the
/// settings in `changes` (`name`, `value`) replaced (one transaction: on any error nothing is written).
pub fn remap_run(store: &mut Store, run_id: i64, changes: &[(String, String)]) -> Result<RemapReport> {
    let started = Instant::now();
    let Some(run) = run_row(store, run_id)? else {
        bail!("there is no teacher run #{run_id} (`dams eval` lists the runs of each teacher)");
    };
    if changes.is_empty() {
        bail!("nothing to change: give the new settings with --option NAME=VALUE (e.g. --option pooling=max)");
    }
    if run.kind == "imported" {
        bail!(
            "run #{run_id} ({}) was imported from a score file: it has no raw outputs (AudioSet logits...) to derive \
             scores from again; score the segments with the model to keep them",
            run.teacher
        );
    }
    let mut settings = settings_map(&run.settings);
    let old_settings = settings.clone();
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
    let (n, with_logits, _) = store.raw_coverage(logits_run)?;
    if n == 0 {
        bail!("run #{logits_run} ({}) has no scores", run.teacher);
    }
    if with_logits == 0 {
        bail!(
            "run #{logits_run} ({}) kept no raw outputs: {} scores speech, music and noise directly; \
             remap applies to teachers with raw outputs (AudioSet taggers such as ast...)",
            run.teacher,
            run.teacher
        );
    }
    if with_logits < n {
        bail!(
            "{} of the {n} scores of run #{logits_run} have no raw output: score again with the model",
            n - with_logits
        );
    }
    let Some(vocab) = store.raw_vocab_of(logits_run)? else {
        bail!("run #{logits_run} ({}) does not say what its raw outputs are; score again with the model", run.teacher)
    };
    let allowed = raw::remappable(&vocab);
    for (k, v) in changes {
        if !allowed.contains(&k.as_str()) {
            bail!(
                "{k} is not decided by the stored raw outputs ({vocab}){}: score again with the model",
                if allowed.is_empty() { String::new() } else { format!("; remap can change {}", allowed.join(", ")) }
            );
        }
        settings.insert(k.clone(), Value::from(v.as_str()));
    }
    // The new settings must be understood (an unknown pooling is refused before anything is written).
    if let Some(first) = changes.first() {
        if let Err(e) = raw::rescore(&vocab, &raw::probe(&vocab, &settings), &settings) {
            bail!("{}={}: {e}", first.0, first.1);
        }
    }
    let same = |m: &Map<String, Value>| {
        changes.iter().all(|(k, _)| m.get(k) == settings.get(k)) && changes.iter().any(|(k, _)| m.contains_key(k))
    };
    if same(&old_settings)
        || (raw::scoring_key(&Value::Object(old_settings.clone()).to_string())
            == raw::scoring_key(&Value::Object(settings.clone()).to_string()))
    {
        let shown: Vec<String> = changes.iter().map(|(k, v)| format!("{k}={v}")).collect();
        bail!("run #{run_id} ({}) already uses {}", run.teacher, shown.join(", "));
    }
    settings.insert("remapped_from".into(), Value::from(logits_run));
    let settings = Value::Object(settings).to_string();

    let settings_obj = settings_map(&settings);
    let (new_id, scored) = store
        .derive_run(logits_run, &settings, |_, raw| raw::rescore(&vocab, raw, &settings_obj))?
        .map_err(anyhow::Error::msg)?;
    let old_scope = store.threshold_scope(&run.teacher, Some(run_id))?;
    let new_scope = store.threshold_scope(&run.teacher, Some(new_id))?;
    let thresholds_left =
        old_scope != new_scope && store.has_thresholds_in(&run.teacher, old_scope.as_deref(), run_id)?;
    Ok(RemapReport {
        run_id: new_id,
        teacher: run.teacher,
        changed: changes.to_vec(),
        logits_run,
        scored,
        thresholds_left,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::{LabelSource, Split};
    use crate::store::{NewRun, NewSegment, ScoreRow};
    use crate::teachers::audioset::{N_AUDIOSET, Pooling, collapse_logits};

    fn p(pooling: &str) -> Vec<(String, String)> {
        vec![("pooling".to_string(), pooling.to_string())]
    }

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
                    raw: keep.then_some(l),
                }
            })
            .collect();
        store.put_scores(id, &rows).unwrap();
        if keep {
            store.set_run_raw_vocab(id, Some(crate::teachers::raw::AUDIOSET_527)).unwrap();
        }
        store.finish_run(id, "done").unwrap();
        id
    }

    #[test]
    fn remapped_runs_hold_the_logits_pooled_the_new_way() {
        let mut store = store_with_segments(600);
        let src = run_with_logits(&mut store, 600, false, true);
        let r = remap_run(&mut store, src, &p("max")).unwrap();
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
        let e = remap_run(&mut store, r.run_id, &p("max")).unwrap_err().to_string();
        assert!(e.contains("already uses pooling=max"), "{e}");
        let r2 = remap_run(&mut store, r.run_id, &p("mean")).unwrap();
        assert_eq!(r2.logits_run, src);
        let want = collapse_logits(&logits(0), Pooling::Mean).unwrap();
        assert_eq!(store.run_scores(r2.run_id).unwrap()[0].1, want);
    }

    #[test]
    fn runs_without_logits_are_refused_and_nothing_is_written() {
        let mut store = store_with_segments(3);
        let imported = run_with_logits(&mut store, 3, true, false);
        let e = remap_run(&mut store, imported, &p("max")).unwrap_err().to_string();
        assert!(e.contains("imported from a score file") && e.contains("no raw outputs"), "{e}");
        let plain = run_with_logits(&mut store, 3, false, false);
        let e = remap_run(&mut store, plain, &p("max")).unwrap_err().to_string();
        assert!(e.contains("kept no raw outputs"), "{e}");
        let e = remap_run(&mut store, 99, &p("max")).unwrap_err().to_string();
        assert!(e.contains("no teacher run #99"), "{e}");
        let e = remap_run(&mut store, plain, &p("noisy_or")).unwrap_err().to_string();
        assert!(e.contains("kept no raw outputs") || e.contains("already uses pooling=noisy_or"), "{e}");
        // A run still being scored.
        let running = run_with_logits(&mut store, 3, false, true);
        store.conn().execute("UPDATE teacher_runs SET state = 'cancelled' WHERE id = ?1", [running]).unwrap();
        let e = remap_run(&mut store, running, &p("max")).unwrap_err().to_string();
        assert!(e.contains("is cancelled: finish it first"), "{e}");
        // A corrupt logit vector fails the whole remap: no half run is left behind.
        let ok = run_with_logits(&mut store, 3, false, true);
        store
            .conn()
            .execute("UPDATE teacher_scores SET logits = x'00000000' WHERE run_id = ?1 AND segment_id = 3", [ok])
            .unwrap();
        let before = store.runs().unwrap().len();
        let e = format!("{:#}", remap_run(&mut store, ok, &p("max")).unwrap_err());
        assert!(e.contains("segment #3") && e.contains("expected 527"), "{e}");
        assert_eq!(store.runs().unwrap().len(), before);
    }
}
