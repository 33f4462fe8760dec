//! Teacher runs beyond their scores: the vocabulary of their raw outputs, the scope thresholds are set in, and
//! paged reads of raw outputs (for `dams remap` and `dams export-scores --raw`).

use rusqlite::{OptionalExtension, params};

use super::{Result, Store, bytes_to_f32s};
use crate::teachers::raw::scoring_key;

/// What `dams remap` and `dams export-scores` need of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunHead {
    pub id: i64,
    pub teacher: String,
    pub checksum: String,
    pub settings: String,
    pub kind: String,
    pub state: String,
    pub raw_vocab: Option<String>,
}

impl Store {
    /// Record the vocabulary of a run's raw outputs.
    pub fn set_run_raw_vocab(&mut self, run_id: i64, vocab: Option<&str>) -> Result<()> {
        self.conn().execute("UPDATE teacher_runs SET raw_vocab = ?1 WHERE id = ?2", params![vocab, run_id])?;
        Ok(())
    }

    /// The vocabulary of run `run_id`'s raw outputs: as recorded, or for runs written before vocabularies were
    /// recorded, `audioset-527` when its raw outputs are 527 values (the only raw outputs dams kept then).
    pub fn raw_vocab_of(&self, run_id: i64) -> Result<Option<String>> {
        if let Some(v) = self.run_head(run_id)?.and_then(|h| h.raw_vocab) {
            return Ok(Some(v));
        }
        let (_, _, len) = self.raw_coverage(run_id)?;
        Ok((len == Some(4 * crate::teachers::audioset::N_AUDIOSET as i64))
            .then(|| crate::teachers::raw::AUDIOSET_527.to_string()))
    }

    /// One run's identity, state and raw vocabulary.
    pub fn run_head(&self, run_id: i64) -> Result<Option<RunHead>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id, teacher, checksum, settings, kind, state, raw_vocab FROM teacher_runs WHERE id = ?1",
                [run_id],
                |r| {
                    Ok(RunHead {
                        id: r.get(0)?,
                        teacher: r.get(1)?,
                        checksum: r.get(2)?,
                        settings: r.get(3)?,
                        kind: r.get(4)?,
                        state: r.get(5)?,
                        raw_vocab: r.get(6)?,
                    })
                },
            )
            .optional()?)
    }

    /// The newest run of `teacher` that has scores (what views, eval and pseudo-labels use by default).
    pub fn latest_run_of(&self, teacher: &str) -> Result<Option<i64>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT r.id FROM teacher_runs r WHERE r.teacher = ?1 \
                 AND EXISTS (SELECT 1 FROM teacher_scores s WHERE s.run_id = r.id) ORDER BY r.id DESC LIMIT 1",
                [teacher],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The scope thresholds of `teacher` are set in: the scoring key (see [`scoring_key`]) of run `run_id`, or of
    /// the teacher's latest run with scores; `None` when the teacher has no run.
    pub fn threshold_scope(&self, teacher: &str, run_id: Option<i64>) -> Result<Option<String>> {
        let run = match run_id {
            Some(id) => Some(id),
            None => self.latest_run_of(teacher)?,
        };
        let Some(id) = run else { return Ok(None) };
        let settings: Option<String> =
            self.conn().query_row("SELECT settings FROM teacher_runs WHERE id = ?1", [id], |r| r.get(0)).optional()?;
        Ok(settings.map(|s| scoring_key(&s)))
    }

    /// Every teacher named by a threshold or a run, sorted.
    pub fn teachers_with_thresholds_or_runs(&self) -> Result<Vec<String>> {
        let mut stmt =
            self.conn().prepare("SELECT teacher FROM thresholds UNION SELECT teacher FROM teacher_runs ORDER BY 1")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// `(id, split, raw_file, segment_path)` of every segment.
    pub fn segment_keys(&self) -> Result<Vec<(i64, String, String, String)>> {
        let mut stmt = self.conn().prepare("SELECT id, split, raw_file, segment_path FROM segments")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Segment id by segment path.
    pub fn segment_ids_by_path(&self) -> Result<std::collections::HashMap<String, i64>> {
        let mut stmt = self.conn().prepare("SELECT segment_path, id FROM segments")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Append one line to a job's stored log.
    pub fn append_job_log(&mut self, job_id: i64, line: &str) -> Result<()> {
        self.conn().execute("UPDATE jobs SET log = log || ?1 || char(10) WHERE id = ?2", params![line, job_id])?;
        Ok(())
    }

    /// The newest pseudo-label run of a label source.
    pub fn latest_pseudo_run(&self, label_source: &str) -> Result<Option<i64>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id FROM pseudo_runs WHERE label_source = ?1 ORDER BY id DESC LIMIT 1",
                [label_source],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The pseudo-labels of a pseudo-label run: `(segment_id, [speech, music, noise])`.
    pub fn pseudo_labels_of(&self, pseudo_run_id: i64) -> Result<Vec<(i64, [bool; 3])>> {
        let mut stmt = self
            .conn()
            .prepare("SELECT segment_id, speech, music, noise FROM pseudo_labels WHERE pseudo_run_id = ?1")?;
        let rows = stmt.query_map([pseudo_run_id], |r| {
            Ok((r.get::<_, i64>(0)?, [r.get::<_, i64>(1)? != 0, r.get::<_, i64>(2)? != 0, r.get::<_, i64>(3)? != 0]))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The labels and stored scores of a pseudo-labelling run (scores: the teacher's score, the consensus mean, or
    /// the label model's posterior; `None` where the run stored none).
    pub fn pseudo_scored_labels_of(&self, pseudo_run_id: i64) -> Result<Vec<(i64, [bool; 3], Option<[f32; 3]>)>> {
        let mut stmt = self.conn().prepare(
            "SELECT segment_id, speech, music, noise, speech_score, music_score, noise_score FROM pseudo_labels \
             WHERE pseudo_run_id = ?1",
        )?;
        let rows = stmt.query_map([pseudo_run_id], |r| {
            let s: [Option<f64>; 3] = [r.get(4)?, r.get(5)?, r.get(6)?];
            Ok((
                r.get::<_, i64>(0)?,
                [r.get::<_, i64>(1)? != 0, r.get::<_, i64>(2)? != 0, r.get::<_, i64>(3)? != 0],
                match s {
                    [Some(a), Some(b), Some(c)] if a.is_finite() && b.is_finite() && c.is_finite() => {
                        Some([a as f32, b as f32, c as f32])
                    }
                    _ => None,
                },
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// What was written in a workspace by anyone but `builder` (the demo's own annotator): `(what, count)` for gold
    /// labels, label changes beyond one per labelled window, notes, review flags, runs, thresholds, pseudo-label
    /// runs and jobs.
    pub fn work_beyond(&self, builder: &str) -> Result<Vec<(&'static str, i64)>> {
        let count = |sql: &str| -> Result<i64> { Ok(self.conn().query_row(sql, [builder], |r| r.get::<_, i64>(0))?) };
        let b = "(SELECT id FROM annotators WHERE name = ?1)";
        Ok(vec![
            ("gold labels", count(&format!("SELECT count(*) FROM gold_labels WHERE annotator_id IS NOT {b}"))?),
            (
                "label changes",
                // building writes one history row per labelled window; more means labels were changed
                count(&format!(
                    "SELECT max(0, (SELECT count(*) FROM label_history WHERE annotator_id IS NOT {b}) \
                     + (SELECT count(*) FROM label_history WHERE annotator_id IS {b}) \
                     - (SELECT count(DISTINCT segment_id) FROM label_history WHERE annotator_id IS {b}))"
                ))?,
            ),
            ("notes", count("SELECT count(*) FROM notes WHERE ?1 IS NOT NULL")?),
            ("review flags", count("SELECT count(*) FROM review_flags WHERE ?1 IS NOT NULL")?),
            // the runs shipped with the demo (settings `"via": "demo"`) and their default thresholds are the build's
            (
                "teacher runs",
                count(
                    "SELECT count(*) FROM teacher_runs WHERE ?1 IS NOT NULL \
                     AND json_extract(settings, '$.via') IS NOT 'demo'",
                )?,
            ),
            (
                "thresholds",
                count(
                    "SELECT count(*) FROM thresholds WHERE ?1 IS NOT NULL AND NOT (method = 'default' AND run_id IN \
                     (SELECT id FROM teacher_runs WHERE json_extract(settings, '$.via') IS 'demo'))",
                )?,
            ),
            ("pseudo-label runs", count("SELECT count(*) FROM pseudo_runs WHERE ?1 IS NOT NULL")?),
            ("jobs", count("SELECT count(*) FROM jobs WHERE ?1 IS NOT NULL")?),
        ])
    }

    /// Segments per split, by split name.
    pub fn split_counts(&self) -> Result<Vec<(String, i64)>> {
        let mut stmt = self.conn().prepare("SELECT split, count(*) FROM segments GROUP BY split ORDER BY split")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Segments with gold labels, and gold labels per annotator (by name).
    pub fn gold_counts(&self) -> Result<(i64, Vec<(String, i64)>)> {
        let gold: i64 =
            self.conn().query_row("SELECT count(DISTINCT segment_id) FROM gold_labels", [], |r| r.get(0))?;
        let mut per = Vec::new();
        for (id, name) in self.annotators()? {
            let n: i64 =
                self.conn()
                    .query_row("SELECT count(*) FROM gold_labels WHERE annotator_id = ?1", [id], |r| r.get(0))?;
            per.push((name, n));
        }
        Ok((gold, per))
    }

    /// Put run `run_id` back to `running` (it is being resumed).
    pub fn reopen_run(&mut self, run_id: i64) -> Result<()> {
        self.conn().execute("UPDATE teacher_runs SET state = 'running' WHERE id = ?1", [run_id])?;
        Ok(())
    }

    /// How many scores run `run_id` has, and how many of them keep a raw output; the byte length of one raw output.
    pub fn raw_coverage(&self, run_id: i64) -> Result<(i64, i64, Option<i64>)> {
        let (n, with): (i64, i64) = self.conn().query_row(
            "SELECT count(*), count(logits) FROM teacher_scores WHERE run_id = ?1",
            [run_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let len: Option<i64> = self
            .conn()
            .query_row(
                "SELECT length(logits) FROM teacher_scores WHERE run_id = ?1 AND logits IS NOT NULL LIMIT 1",
                [run_id],
                |r| r.get(0),
            )
            .optional()?;
        Ok((n, with, len))
    }

    /// Whether `teacher` has thresholds set in `scope` or on run `run_id`.
    pub fn has_thresholds_in(&self, teacher: &str, scope: Option<&str>, run_id: i64) -> Result<bool> {
        let n: i64 = self.conn().query_row(
            "SELECT count(*) FROM thresholds WHERE teacher = ?1 AND (scope = ?2 OR run_id = ?3)",
            params![teacher, scope, run_id],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    /// A new run of `from_run`'s teacher and weights with `settings`, whose scores are `derive(segment, raw)` of
    /// every raw output of `from_run`, all in one transaction: when `derive` fails (its message, with the
    /// segment) or anything else does, nothing is written. Returns the new run and the number of scores.
    pub fn derive_run(
        &mut self,
        from_run: i64,
        settings: &str,
        mut derive: impl FnMut(i64, &[f32]) -> std::result::Result<[f32; 3], String>,
    ) -> Result<std::result::Result<(i64, usize), String>> {
        const PAGE: i64 = 512;
        let tx = self.conn_mut().transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO teacher_runs (teacher, checksum, settings, kind, zero_shot, state, created_at, device, raw_vocab) \
             SELECT teacher, checksum, ?2, kind, zero_shot, 'running', strftime('%Y-%m-%dT%H:%M:%fZ','now'), device, raw_vocab \
             FROM teacher_runs WHERE id = ?1",
            params![from_run, settings],
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
                let page: Vec<(i64, Option<Vec<u8>>)> = read
                    .query_map(params![from_run, after, PAGE], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                let Some(last) = page.last() else { break };
                after = last.0;
                for (segment_id, blob) in &page {
                    let raw = blob.as_deref().map(bytes_to_f32s).unwrap_or_default();
                    let s = match derive(*segment_id, &raw) {
                        Ok(s) => s,
                        Err(e) => return Ok(Err(format!("segment #{segment_id} of run #{from_run}: {e}"))),
                    };
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
        Ok(Ok((new_id, scored)))
    }

    /// Every log line a job wrote (newline-separated).
    pub fn job_log(&self, job_id: i64) -> Result<String> {
        Ok(self
            .conn()
            .query_row("SELECT log FROM jobs WHERE id = ?1", [job_id], |r| r.get::<_, String>(0))
            .optional()?
            .unwrap_or_default())
    }

    /// Scores and raw outputs of a run with segment id greater than `after`, in segment order, at most `limit`:
    /// `(segment_id, scores, raw)`.
    #[allow(clippy::type_complexity)]
    pub fn run_rows_page(
        &self,
        run_id: i64,
        after: i64,
        limit: i64,
        with_raw: bool,
    ) -> Result<Vec<(i64, [f32; 3], Option<Vec<f32>>)>> {
        let sql = if with_raw {
            "SELECT segment_id, speech, music, noise, logits FROM teacher_scores WHERE run_id = ?1 AND segment_id > ?2 \
             ORDER BY segment_id LIMIT ?3"
        } else {
            "SELECT segment_id, speech, music, noise, NULL FROM teacher_scores WHERE run_id = ?1 AND segment_id > ?2 \
             ORDER BY segment_id LIMIT ?3"
        };
        let mut stmt = self.conn().prepare_cached(sql)?;
        let rows = stmt.query_map(params![run_id, after, limit], |r| {
            let blob: Option<Vec<u8>> = r.get(4)?;
            Ok((
                r.get::<_, i64>(0)?,
                [r.get::<_, f64>(1)? as f32, r.get::<_, f64>(2)? as f32, r.get::<_, f64>(3)? as f32],
                blob.map(|b| bytes_to_f32s(&b)),
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
