//! The catalog of job kinds: what the CLI and the TUI start, with typed parameters.
//!
//! Both start a job by building a [`JobSpec`] and calling [`JobSpec::start`] on a [`JobRunner`], so a job started
//! from `dams score` and one started from the TUI's score form write the same parameters into the job row and open
//! the same teacher run (and resume each other's). The CLI then follows the job with one shared follower
//! (`cli::follow`), the TUI draws it in its jobs pane.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{JobCtx, JobError, JobRunner};
use crate::labels::Split;
use crate::pseudo::{self, PseudoError};
use crate::teachers::OpenContext;
use crate::teachers::score::{ScoreOptions, score_segments_with};
use crate::workspace::Workspace;

/// A job kind of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobKindInfo {
    /// The `kind` of its job rows.
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
}

/// Every job kind dams runs.
pub const KINDS: &[JobKindInfo] = &[
    JobKindInfo { name: "score", title: "scoring", description: "score segments with a teacher into a teacher run" },
    JobKindInfo {
        name: "remap",
        title: "re-deriving scores",
        description: "derive a run's scores again from its raw outputs with other settings",
    },
    JobKindInfo {
        name: "pseudo_label",
        title: "pseudo-labeling",
        description: "pseudo-labels from one teacher or a consensus of several",
    },
    JobKindInfo { name: "train", title: "student training", description: "train or resume a student" },
];

/// The splits a job covers, in canonical order; `None` for all of them.
fn canonical_splits(splits: Option<&[Split]>) -> Option<Vec<String>> {
    const ALL: [Split; 5] = [Split::Train, Split::Unlabeled, Split::Dev, Split::Test, Split::Unsplit];
    let s = splits?;
    let v: Vec<String> = ALL.iter().filter(|x| s.contains(x)).map(|x| x.as_str().to_string()).collect();
    (v.len() < ALL.len()).then_some(v)
}

/// A scoring job's parameters. Built with [`ScoreJob::new`], which checks the options against the teacher's
/// declared ones and fills in their defaults, so equal requests give equal parameters whoever makes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreJob {
    pub teacher: String,
    /// Every option of the teacher, defaults filled in.
    pub options: BTreeMap<String, String>,
    pub device: String,
    /// `None`: every split.
    pub splits: Option<Vec<String>>,
    pub fresh: bool,
    pub batch_size: Option<usize>,
}

impl ScoreJob {
    pub fn new(
        teacher: &str,
        options: &[(String, String)],
        device: Option<&str>,
        splits: Option<&[Split]>,
        fresh: bool,
        batch_size: Option<usize>,
    ) -> Result<ScoreJob> {
        let d = crate::catalog::find(teacher)?;
        let device = device.unwrap_or("auto").trim().to_ascii_lowercase();
        d.check_device(&device)?;
        let opts = d.parse_options(options.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        if let Some(s) = splits
            && s.is_empty()
        {
            bail!("choose at least one split");
        }
        if batch_size == Some(0) {
            bail!("--batch-size must be at least 1");
        }
        Ok(ScoreJob {
            teacher: teacher.to_string(),
            options: opts.0,
            device,
            splits: canonical_splits(splits),
            fresh,
            batch_size,
        })
    }

    fn score_options(&self) -> Result<ScoreOptions> {
        let splits = match &self.splits {
            Some(v) => Some(v.iter().map(|s| s.parse::<Split>().map_err(anyhow::Error::msg)).collect::<Result<_>>()?),
            None => None,
        };
        Ok(ScoreOptions { splits, batch_size: self.batch_size, fresh: self.fresh })
    }
}

/// A remap job's parameters (see [`crate::teachers::remap`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemapJob {
    pub run: i64,
    pub options: BTreeMap<String, String>,
}

/// A job to start.
#[derive(Debug, Clone)]
pub enum JobSpec {
    Score(ScoreJob),
    Remap(RemapJob),
    PseudoLabel(crate::pseudo::Params),
    #[cfg(feature = "burn")]
    Train(crate::student::TrainRequest),
}

impl JobSpec {
    /// The kind of its job row.
    pub fn kind(&self) -> &'static str {
        match self {
            JobSpec::Score(_) => "score",
            JobSpec::Remap(_) => "remap",
            JobSpec::PseudoLabel(_) => "pseudo_label",
            #[cfg(feature = "burn")]
            JobSpec::Train(_) => "train",
        }
    }

    /// Start it on `runner`; `ctx` says where models live (and, for scoring, gets the job's device and options).
    pub fn start(self, runner: &mut JobRunner, ws: &Workspace, ctx: &OpenContext) -> Result<i64> {
        match self {
            JobSpec::Score(p) => spawn_score(runner, ws, ctx, p),
            JobSpec::Remap(p) => spawn_remap(runner, ws, p),
            JobSpec::PseudoLabel(p) => spawn_pseudo(runner, ws, p),
            #[cfg(feature = "burn")]
            JobSpec::Train(r) => crate::student::spawn_training(runner, ws, r),
        }
    }
}

fn spawn_score(runner: &mut JobRunner, ws: &Workspace, ctx: &OpenContext, p: ScoreJob) -> Result<i64> {
    let params = serde_json::to_value(&p)?;
    let opts = p.score_options()?;
    let ws = ws.clone();
    let ctx = ctx.clone().with_device(p.device.clone());
    runner.spawn("score", params, None, move |job: &JobCtx| {
        job.phase(format!("loading teacher {}", p.teacher));
        let d = crate::catalog::find(&p.teacher)?;
        let options = d.parse_options(p.options.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        let mut teacher = crate::catalog::open(&p.teacher, &ctx.with_options(options))?;
        if let Some(n) = teacher.notice() {
            job.log(format!("note: {n}"));
        }
        let mut store = ws.open_store()?;
        job.phase(format!("scoring with {}", p.teacher));
        let mut resumed = false;
        let report = score_segments_with(
            &ws,
            &mut store,
            teacher.as_mut(),
            &opts,
            || job.is_cancelled(),
            |pr| {
                if !resumed {
                    job.resume_from(pr.done as u64);
                    resumed = true;
                }
                job.progress(pr.done as u64, Some(pr.total as u64));
            },
        )?;
        for (path, e) in &report.failed {
            job.log(format!("skipped {path}: {e}"));
        }
        if report.cancelled {
            job.check_cancel()?;
        }
        let result = json!({
            "run_id": report.run_id,
            "teacher": teacher.id(),
            "label_source": teacher.label_source().as_str(),
            "resumed": report.resumed,
            "scored": report.scored,
            "already": report.already,
            "failed": report.failed.len(),
            "default_thresholds_set": report.default_thresholds_set,
            "elapsed_s": report.elapsed.as_secs_f64(),
        });
        if report.scored == 0 && report.already == 0 && !report.failed.is_empty() {
            let (path, e) = &report.failed[0];
            bail!(
                "scoring failed on all {} segment(s) tried; run #{} is marked failed (`dams score` resumes it once the \
                 audio is fixed) and no thresholds were stored (first failure: {path}: {e})",
                report.failed.len(),
                report.run_id
            );
        }
        Ok(result)
    })
}

fn spawn_remap(runner: &mut JobRunner, ws: &Workspace, p: RemapJob) -> Result<i64> {
    let params = serde_json::to_value(&p)?;
    let ws = ws.clone();
    runner.spawn("remap", params, None, move |job: &JobCtx| {
        job.phase(format!("re-deriving the scores of run #{}", p.run));
        let mut store = ws.open_store()?;
        let changes: Vec<(String, String)> = p.options.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let r = crate::teachers::remap::remap_run(&mut store, p.run, &changes)?;
        job.progress(r.scored as u64, Some(r.scored as u64));
        Ok(json!({
            "run_id": r.run_id,
            "teacher": r.teacher,
            "from_run": r.logits_run,
            "scored": r.scored,
            "changed": r.changed.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "thresholds_left": r.thresholds_left,
            "elapsed_s": r.elapsed.as_secs_f64(),
        }))
    })
}

/// Run [`pseudo::run_with`] as a job on its own connection (WAL + busy timeout: labeling goes on).
pub fn spawn_pseudo(runner: &mut JobRunner, ws: &Workspace, p: pseudo::Params) -> Result<i64> {
    let params = json!({
        "teachers": p.teachers,
        "k": p.k,
        "residual_noise": p.residual_noise,
        "splits": p.splits.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "created_by": p.created_by,
    });
    let ws = ws.clone();
    runner.spawn("pseudo_label", params, None, move |ctx| {
        ctx.log(format!("pseudo-labeling with {} (k = {})", p.teachers.join(", "), p.k));
        let mut store = ws.open_store()?;
        match pseudo::run_with(&ws, &mut store, &p, Some(ctx)) {
            Ok(o) => {
                ctx.log(format!(
                    "{} segments labelled (speech {}, music {}, noise {}); {} left out empty, {} unscored, {} kept gold",
                    o.labeled,
                    o.positives[0],
                    o.positives[1],
                    o.positives[2],
                    o.excluded_empty,
                    o.excluded_unscored,
                    o.skipped_gold
                ));
                ctx.log(format!("wrote {}", o.labels_csv.display()));
                ctx.log(format!("wrote {}", o.snapshot_csv.display()));
                Ok(serde_json::to_value(&o)?)
            }
            Err(PseudoError::Cancelled) => Err(JobError::Cancelled.into()),
            Err(e) => Err(e.into()),
        }
    })
}

/// Why a job ended without a result, for a caller that ran it in the foreground.
pub fn outcome(view: &super::JobView) -> Result<Value> {
    match view.state {
        super::JobState::Done => Ok(view.result.clone().unwrap_or(Value::Null)),
        super::JobState::Cancelled => Err(JobError::Cancelled.into()),
        _ => bail!("{}", view.error.clone().unwrap_or_else(|| "the job failed".into())),
    }
}
