//! The jobs a user can start from the TUI's jobs pane, and the small form that collects their
//! parameters. The form is plain state (fields, cursor, values); the TUI draws it and maps keys
//! onto [`JobForm::up`], [`JobForm::left`], ... ; [`JobForm::start`] validates and spawns.

use anyhow::{Result, bail};
use serde_json::json;

use super::{JobError, JobRunner};
use crate::labels::Split;
use crate::pseudo::{self, PseudoError};
use crate::teachers::LoadOptions;
use crate::teachers::score::{ScoreOptions, spawn_scoring};
use crate::workspace::Workspace;

/// What a form starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Score,
    PseudoLabel,
}

impl JobKind {
    pub fn title(self) -> &'static str {
        match self {
            JobKind::Score => "scoring",
            JobKind::PseudoLabel => "pseudo-labeling",
        }
    }
}

/// One form field's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Options with on/off marks; `multi` allows several (otherwise exactly one is on).
    Choice {
        options: Vec<String>,
        on: Vec<bool>,
        multi: bool,
        cursor: usize,
    },
    Number {
        value: i64,
        min: i64,
        max: i64,
    },
    Flag(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: &'static str,
    pub help: &'static str,
    pub value: Value,
}

/// A job form: fields and the selected one.
#[derive(Debug, Clone, PartialEq)]
pub struct JobForm {
    pub kind: JobKind,
    pub fields: Vec<Field>,
    pub cursor: usize,
}

const SPLITS: [Split; 5] = [Split::Train, Split::Unlabeled, Split::Dev, Split::Test, Split::Unsplit];

impl JobForm {
    /// The scoring form: one of the installed teachers, the splits to score (all by default),
    /// and whether to start a fresh run instead of resuming an unfinished one.
    pub fn score(teachers: &[String]) -> JobForm {
        let mut on = vec![false; teachers.len()];
        if let Some(x) = on.first_mut() {
            *x = true;
        }
        JobForm {
            kind: JobKind::Score,
            fields: vec![
                Field {
                    name: "teacher",
                    help: "installed teachers (dams teachers lists them all)",
                    value: Value::Choice { options: teachers.to_vec(), on, multi: false, cursor: 0 },
                },
                Field {
                    name: "splits",
                    help: "segments of these splits are scored",
                    value: Value::Choice {
                        options: SPLITS.iter().map(|s| s.as_str().to_string()).collect(),
                        on: vec![true; SPLITS.len()],
                        multi: true,
                        cursor: 0,
                    },
                },
                Field {
                    name: "fresh run",
                    help: "off: resume the teacher's unfinished run, never redoing scored segments",
                    value: Value::Flag(false),
                },
            ],
            cursor: 0,
        }
    }

    /// The pseudo-labeling form over the teachers that have scores (all selected; k = 2 when
    /// there are several; train + unlabeled splits, as `dams pseudo-label`).
    pub fn pseudo(teachers: &[String]) -> JobForm {
        let n = teachers.len().max(1) as i64;
        JobForm {
            kind: JobKind::PseudoLabel,
            fields: vec![
                Field {
                    name: "teachers",
                    help: "Space toggles; several teachers vote for a consensus",
                    value: Value::Choice {
                        options: teachers.to_vec(),
                        on: vec![true; teachers.len()],
                        multi: true,
                        cursor: 0,
                    },
                },
                Field {
                    name: "k",
                    help: "consensus: a class is on when at least k teachers vote for it",
                    value: Value::Number { value: 2.min(n), min: 1, max: n },
                },
                Field {
                    name: "residual noise",
                    help: "noise = not speech and not music (the Python AST rule)",
                    value: Value::Flag(false),
                },
                Field {
                    name: "splits",
                    help: "splits that receive pseudo-labels (gold always wins)",
                    value: Value::Choice {
                        options: SPLITS.iter().map(|s| s.as_str().to_string()).collect(),
                        on: SPLITS.iter().map(|s| matches!(s, Split::Train | Split::Unlabeled)).collect(),
                        multi: true,
                        cursor: 0,
                    },
                },
            ],
            cursor: 0,
        }
    }

    pub fn up(&mut self) {
        self.cursor = self.cursor.saturating_sub(1);
    }
    pub fn down(&mut self) {
        self.cursor = (self.cursor + 1).min(self.fields.len().saturating_sub(1));
    }
    /// Left/right: move inside a choice, change a number, flip a flag.
    pub fn left(&mut self) {
        self.step(-1)
    }
    pub fn right(&mut self) {
        self.step(1)
    }
    fn step(&mut self, d: i64) {
        let Some(f) = self.fields.get_mut(self.cursor) else { return };
        match &mut f.value {
            Value::Choice { options, on, multi, cursor } => {
                let n = options.len() as i64;
                if n == 0 {
                    return;
                }
                *cursor = (*cursor as i64 + d).rem_euclid(n) as usize;
                if !*multi {
                    on.iter_mut().enumerate().for_each(|(i, x)| *x = i == *cursor);
                }
            }
            Value::Number { value, min, max } => *value = (*value + d).clamp(*min, *max),
            Value::Flag(b) => *b = !*b,
        }
    }
    /// Space: toggle the option under the cursor (choices) or the flag.
    pub fn toggle(&mut self) {
        let Some(f) = self.fields.get_mut(self.cursor) else { return };
        match &mut f.value {
            Value::Choice { on, multi: true, cursor, .. } => {
                if let Some(x) = on.get_mut(*cursor) {
                    *x = !*x;
                }
            }
            Value::Flag(b) => *b = !*b,
            _ => {}
        }
    }

    fn chosen(&self, name: &str) -> Vec<String> {
        match self.fields.iter().find(|f| f.name == name).map(|f| &f.value) {
            Some(Value::Choice { options, on, .. }) => {
                options.iter().zip(on).filter(|(_, o)| **o).map(|(s, _)| s.clone()).collect()
            }
            _ => Vec::new(),
        }
    }
    fn number(&self, name: &str) -> i64 {
        match self.fields.iter().find(|f| f.name == name).map(|f| &f.value) {
            Some(Value::Number { value, .. }) => *value,
            _ => 0,
        }
    }
    fn flag(&self, name: &str) -> bool {
        matches!(self.fields.iter().find(|f| f.name == name).map(|f| &f.value), Some(Value::Flag(true)))
    }

    /// The pseudo-labeling parameters this form describes (validated).
    pub fn pseudo_params(&self, created_by: &str) -> Result<pseudo::Params> {
        let teachers = self.chosen("teachers");
        if teachers.is_empty() {
            bail!("choose at least one teacher");
        }
        let splits: Vec<Split> = self.chosen("splits").iter().filter_map(|s| s.parse().ok()).collect();
        if splits.is_empty() {
            bail!("choose at least one split");
        }
        let k = self.number("k").max(1) as usize;
        if teachers.len() > 1 && k > teachers.len() {
            bail!("k = {k} is more than the {} chosen teachers", teachers.len());
        }
        Ok(pseudo::Params {
            teachers,
            k,
            residual_noise: self.flag("residual noise"),
            splits,
            created_by: created_by.to_string(),
        })
    }

    /// The teacher and scoring options this form describes (validated).
    pub fn score_params(&self) -> Result<(String, ScoreOptions)> {
        let Some(teacher) = self.chosen("teacher").into_iter().next() else { bail!("choose a teacher") };
        let splits: Vec<Split> = self.chosen("splits").iter().filter_map(|s| s.parse().ok()).collect();
        if splits.is_empty() {
            bail!("choose at least one split");
        }
        let all = splits.len() == SPLITS.len();
        Ok((
            teacher,
            ScoreOptions { splits: (!all).then_some(splits), batch_size: None, fresh: self.flag("fresh run") },
        ))
    }

    /// Validate and start the job on `runner`; returns its id.
    pub fn start(&self, runner: &mut JobRunner, ws: &Workspace, created_by: &str) -> Result<i64> {
        match self.kind {
            JobKind::Score => {
                let (teacher, opts) = self.score_params()?;
                spawn_scoring(runner, ws, &teacher, LoadOptions::default(), opts)
            }
            JobKind::PseudoLabel => spawn_pseudo(runner, ws, self.pseudo_params(created_by)?),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_form_edits_and_validates() {
        let mut f = JobForm::pseudo(&["a".into(), "b".into()]);
        let p = f.pseudo_params("me").unwrap();
        assert_eq!((p.teachers.len(), p.k, p.residual_noise), (2, 2, false));
        assert_eq!(p.splits, vec![Split::Train, Split::Unlabeled]);
        // untick both teachers → refused
        f.toggle();
        f.right();
        f.toggle();
        assert!(f.pseudo_params("me").unwrap_err().to_string().contains("at least one teacher"));
        f.toggle();
        // k down to 1, residual noise on, only dev
        f.down();
        f.left();
        f.down();
        f.right();
        f.down();
        f.toggle(); // train off
        f.right();
        f.toggle(); // unlabeled off
        f.right();
        f.toggle(); // dev on
        let p = f.pseudo_params("me").unwrap();
        assert_eq!((p.teachers, p.k, p.residual_noise, p.splits), (vec!["b".to_string()], 1, true, vec![Split::Dev]));
        f.down();
        assert_eq!(f.cursor, 3, "stays on the last field");
    }

    #[test]
    fn score_form_picks_one_teacher_and_splits() {
        let mut f = JobForm::score(&["builtin".into(), "ast".into()]);
        let (t, o) = f.score_params().unwrap();
        assert_eq!((t.as_str(), o.splits, o.fresh), ("builtin", None, false));
        f.right(); // single choice: moving selects
        f.down();
        f.toggle(); // train off
        f.down();
        f.toggle();
        let (t, o) = f.score_params().unwrap();
        assert_eq!(t, "ast");
        assert_eq!(o.splits, Some(vec![Split::Unlabeled, Split::Dev, Split::Test, Split::Unsplit]));
        assert!(o.fresh);
    }
}
