//! Teacher runs shipped with the demo (`data/demo/teacher_runs.json`): the built-in teacher's and INA's scores of
//! every demo segment, computed by dams itself with the embedded teachers and committed, so that the segment view,
//! thresholds, pseudo-labels and the disagreement browser show two real, independent teachers on first start
//! without minutes of scoring (INA alone takes about a minute of CPU on the demo's windows).
//!
//! Honest by construction: a shipped run is stored only when the embedded teacher it names has the same weights
//! checksum as the one in this binary (else it is left out and [`ship`] says so: score with `dams score`), its
//! settings say `"via": "demo"`, and `tests/demo_runs.rs` re-scores demo segments with the live teachers and
//! requires the shipped scores (it also regenerates the file: `DAMS_BLESS_DEMO_RUNS=1`). Raw outputs (INA's
//! per-patch posteriors) are not shipped: `dams score --teacher ina` computes a run with them.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::store::{NewRun, ScoreRow, Store};

/// The committed file.
pub const SHIPPED: &str = include_str!("../../data/demo/teacher_runs.json");
/// The one format this code reads and writes.
pub const FORMAT: u32 = 1;
/// The teachers whose runs are shipped, in order.
pub const TEACHERS: &[&str] = &["builtin", "ina"];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShippedRuns {
    pub format: u32,
    pub runs: Vec<ShippedRun>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShippedRun {
    pub teacher: String,
    pub version: String,
    pub checksum: String,
    /// The run's settings as scoring stored them (without `via`).
    pub settings: String,
    pub zero_shot: bool,
    /// Scores per segment path (workspace-relative, as the store keeps it).
    pub scores: BTreeMap<String, [f32; 3]>,
}

/// What the teacher in this binary is: checksum, version, default thresholds. `None`: not in this build.
fn live(teacher: &str) -> Result<Option<(String, String, Option<[f64; 3]>)>> {
    use crate::teachers::Teacher;
    let t: Box<dyn Teacher> = match teacher {
        "builtin" => Box::new(crate::teachers::builtin::BuiltinTeacher::embedded()?),
        #[cfg(feature = "burn")]
        "ina" => Box::new(
            crate::teachers::ina::InaTeacher::open(crate::engine::Engine::cpu()).map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
        _ => return Ok(None),
    };
    Ok(Some((t.checksum().to_string(), t.version(), t.default_thresholds())))
}

/// The shipped runs, parsed.
pub fn shipped() -> Result<ShippedRuns> {
    let s: ShippedRuns = serde_json::from_str(SHIPPED).context("the embedded data/demo/teacher_runs.json")?;
    if s.format != FORMAT {
        bail!("data/demo/teacher_runs.json has format {}, this dams reads {FORMAT}", s.format);
    }
    Ok(s)
}

/// The settings a shipped run is stored with: its scoring settings plus `"via": "demo"`.
pub fn stored_settings(settings: &str) -> String {
    let mut m = match serde_json::from_str::<serde_json::Value>(settings) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    m.insert("via".into(), serde_json::json!("demo"));
    serde_json::Value::Object(m).to_string()
}

/// Whether a run's settings mark it as shipped with the demo.
pub fn is_shipped(settings: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(settings)
        .is_ok_and(|v| v.get("via").and_then(|x| x.as_str()) == Some("demo"))
}

/// Store the shipped runs in the demo's store (once: a teacher that already has a shipped run is skipped). Returns
/// a line per run left out (weights differ from this binary's, teacher not in this build, segment missing).
pub fn ship(store: &mut Store) -> Result<Vec<String>> {
    let runs = shipped()?;
    let by_path = store.segment_ids_by_path()?;
    let existing = store.runs()?;
    let mut left_out = Vec::new();
    for run in &runs.runs {
        if existing.iter().any(|r| r.teacher == run.teacher && is_shipped(&r.settings)) {
            continue;
        }
        let Some((checksum, version, defaults)) = live(&run.teacher)? else {
            left_out.push(format!("{}: not in this build of dams", run.teacher));
            continue;
        };
        if checksum != run.checksum {
            left_out.push(format!(
                "{}: the shipped scores come from other weights ({}, this dams has {checksum}); score with \
                 `dams score --teacher {}`",
                run.teacher, run.checksum, run.teacher
            ));
            continue;
        }
        let mut rows = Vec::with_capacity(run.scores.len());
        for (path, s) in &run.scores {
            let Some(&id) = by_path.get(path) else {
                bail!("the shipped {} run scores segment {path}, which the demo does not have", run.teacher);
            };
            rows.push(ScoreRow { segment_id: id, scores: *s, raw: None });
        }
        let settings = stored_settings(&run.settings);
        let id = store.create_run(&NewRun {
            teacher: &run.teacher,
            checksum: &run.checksum,
            settings: &settings,
            imported: false,
            zero_shot: run.zero_shot,
        })?;
        store.put_scores(id, &rows)?;
        store.finish_run(id, "done")?;
        if let Some(d) = defaults {
            crate::teachers::score::store_default_thresholds(store, &run.teacher, &version, d, id)?;
        }
    }
    Ok(left_out)
}

/// The latest computed (not shipped) run of each of [`TEACHERS`] in `store`, as the file to commit.
pub fn collect(store: &Store) -> Result<ShippedRuns> {
    let segs: std::collections::HashMap<i64, String> =
        store.segment_ids_by_path()?.into_iter().map(|(p, id)| (id, p)).collect();
    let mut runs = Vec::new();
    for &t in TEACHERS {
        let Some(run) =
            store.runs()?.into_iter().rev().find(|r| r.teacher == t && r.state == "done" && !is_shipped(&r.settings))
        else {
            bail!("no finished run of {t} to ship (score the demo with it first)");
        };
        let (_, version, _) = live(t)?.with_context(|| format!("{t} is not in this build"))?;
        let scores = store
            .run_scores(run.id)?
            .into_iter()
            .map(|(id, s)| Ok((segs.get(&id).cloned().context("segment without a path")?, s)))
            .collect::<Result<BTreeMap<_, _>>>()?;
        runs.push(ShippedRun {
            teacher: t.into(),
            version,
            checksum: run.checksum,
            settings: run.settings,
            zero_shot: run.zero_shot,
            scores,
        });
    }
    Ok(ShippedRuns { format: FORMAT, runs })
}
