//! The form that collects a job's parameters in the TUI's jobs pane. The form is plain state (fields, cursor,
//! values); the TUI draws it and maps keys onto [`JobForm::up`], [`JobForm::left`], [`JobForm::type_char`], ...;
//! [`JobForm::start`] validates, builds the job's [`JobSpec`] (the same the CLI builds) and starts it. The scoring
//! form's fields come from the catalog: the usable teachers, and the options the selected teacher declares.

use anyhow::{Result, bail};

use crate::jobs::JobRunner;
use crate::jobs::catalog::{JobSpec, ScoreJob};
use crate::labels::Split;
use crate::pseudo;
use crate::teachers::OpenContext;
use crate::workspace::Workspace;

/// What a form starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Score,
    PseudoLabel,
    Train,
}

impl JobKind {
    pub fn title(self) -> &'static str {
        match self {
            JobKind::Score => "scoring",
            JobKind::PseudoLabel => "pseudo-labeling",
            JobKind::Train => "student training",
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
    /// A whole number; ←→ step it, digits type it (the range is checked when the job starts).
    Number {
        value: i64,
        min: i64,
        max: i64,
    },
    Flag(bool),
    /// Free text (typed; Backspace deletes).
    Text(String),
    /// An option that is used or not, with a weight in tenths (label sources of a training).
    Weighted {
        on: bool,
        tenths: i64,
    },
}

/// Weights of [`Value::Weighted`] fields, in tenths: 0.1 to 5.0.
const WEIGHT_TENTHS: (i64, i64) = (1, 50);
/// Longest text a [`Value::Text`] field takes.
const TEXT_MAX: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub help: &'static str,
    pub value: Value,
}

impl Field {
    /// A single choice among `options`, `selected` on.
    pub fn choice(name: &str, help: &'static str, options: &[&str], selected: usize) -> Field {
        Field {
            name: name.into(),
            help,
            value: Value::Choice {
                options: options.iter().map(|s| s.to_string()).collect(),
                on: (0..options.len()).map(|i| i == selected).collect(),
                multi: false,
                cursor: selected.min(options.len().saturating_sub(1)),
            },
        }
    }
    pub fn number(name: &str, help: &'static str, value: i64, min: i64, max: i64) -> Field {
        Field { name: name.into(), help, value: Value::Number { value, min, max } }
    }
    pub fn flag(name: &str, help: &'static str, on: bool) -> Field {
        Field { name: name.into(), help, value: Value::Flag(on) }
    }
    pub fn text(name: &str, help: &'static str, text: &str) -> Field {
        Field { name: name.into(), help, value: Value::Text(text.into()) }
    }
}

/// A job form: fields and the selected one.
#[derive(Debug, Clone, PartialEq)]
pub struct JobForm {
    pub kind: JobKind,
    pub fields: Vec<Field>,
    pub cursor: usize,
    /// Training form: the students that exist already (their names cannot start afresh).
    pub students: Vec<String>,
    /// Scoring form: the names of the fields that are the selected teacher's options.
    pub option_fields: Vec<String>,
}

/// Prefix of the scoring form's option fields (`option pooling`).
const OPTION_FIELD: &str = "option ";

const SPLITS: [Split; 5] = [Split::Train, Split::Unlabeled, Split::Dev, Split::Test, Split::Unsplit];

impl JobForm {
    /// The scoring form: one of the usable teachers (from the catalog), the splits to score (all by default), the
    /// device, the selected teacher's options (generated from its descriptor, with their defaults and help), and
    /// whether to start a fresh run instead of resuming an unfinished one.
    pub fn score(teachers: &[String]) -> JobForm {
        let mut on = vec![false; teachers.len()];
        if let Some(x) = on.first_mut() {
            *x = true;
        }
        let mut f = JobForm {
            kind: JobKind::Score,
            fields: vec![
                Field {
                    name: "teacher".into(),
                    help: "installed teachers and trained students (dams teachers lists them all)",
                    value: Value::Choice { options: teachers.to_vec(), on, multi: false, cursor: 0 },
                },
                Field {
                    name: "splits".into(),
                    help: "segments of these splits are scored",
                    value: Value::Choice {
                        options: SPLITS.iter().map(|s| s.as_str().to_string()).collect(),
                        on: vec![true; SPLITS.len()],
                        multi: true,
                        cursor: 0,
                    },
                },
                Field::choice(
                    "device",
                    "where the teacher runs (auto: a GPU if there is one)",
                    &["auto", "cpu", "gpu"],
                    0,
                ),
                Field::flag(
                    "fresh run",
                    "off: resume the teacher's unfinished run, never redoing scored segments",
                    false,
                ),
            ],
            cursor: 0,
            students: Vec::new(),
            option_fields: Vec::new(),
        };
        f.refresh_options();
        f
    }

    /// Scoring form: put the selected teacher's option fields (before `fresh run`), keeping values the user set
    /// for options of the same name.
    fn refresh_options(&mut self) {
        if self.kind != JobKind::Score {
            return;
        }
        let teacher = self.chosen("teacher").into_iter().next();
        let specs = teacher.and_then(|t| crate::catalog::find(&t).ok()).map(|d| d.options).unwrap_or(&[]);
        let old: Vec<Field> = self.fields.iter().filter(|f| self.option_fields.contains(&f.name)).cloned().collect();
        self.fields.retain(|f| !f.name.starts_with(OPTION_FIELD));
        let at = self.fields.iter().position(|f| f.name == "fresh run").unwrap_or(self.fields.len());
        let mut new = Vec::new();
        for o in specs {
            let name = format!("{OPTION_FIELD}{}", o.name);
            let field = match old.iter().find(|f| f.name == name) {
                Some(f) => f.clone(),
                None if o.choices.is_empty() => Field::text(&name, o.help, o.default),
                None => {
                    let sel = o.choices.iter().position(|c| *c == o.default).unwrap_or(0);
                    Field::choice(&name, o.help, o.choices, sel)
                }
            };
            new.push(field);
        }
        self.option_fields = new.iter().map(|f| f.name.clone()).collect();
        for (k, f) in new.into_iter().enumerate() {
            self.fields.insert(at + k, f);
        }
        self.cursor = self.cursor.min(self.fields.len().saturating_sub(1));
    }

    /// The pseudo-labeling form over the teachers that have scores (all selected; k = 2 when
    /// there are several; train + unlabeled splits, as `dams pseudo-label`).
    pub fn pseudo(teachers: &[String]) -> JobForm {
        let n = teachers.len().max(1) as i64;
        JobForm {
            kind: JobKind::PseudoLabel,
            fields: vec![
                Field {
                    name: "teachers".into(),
                    help: "Space toggles; several teachers vote for a consensus",
                    value: Value::Choice {
                        options: teachers.to_vec(),
                        on: vec![true; teachers.len()],
                        multi: true,
                        cursor: 0,
                    },
                },
                Field::number("k", "consensus: a class is on when at least k teachers vote for it", 2.min(n), 1, n),
                Field::flag("residual noise", "noise = not speech and not music (the Python AST rule)", false),
                Field {
                    name: "splits".into(),
                    help: "splits that receive pseudo-labels (gold always wins)",
                    value: Value::Choice {
                        options: SPLITS.iter().map(|s| s.as_str().to_string()).collect(),
                        on: SPLITS.iter().map(|s| matches!(s, Split::Train | Split::Unlabeled)).collect(),
                        multi: true,
                        cursor: 0,
                    },
                },
                Field::choice(
                    "model",
                    "vote: k-vote consensus; dawid-skene: a label model weighs each teacher by its accuracy (EM)",
                    &["vote", "dawid-skene"],
                    0,
                ),
                Field::choice(
                    "bins",
                    "label model: 2 = votes, 4 = scores binned around each threshold",
                    &["4", "2"],
                    0,
                ),
                Field::flag("anchor gold", "label model: segments with gold keep it while fitting", false),
            ],
            cursor: 0,
            students: Vec::new(),
            option_fields: Vec::new(),
        }
    }

    /// The student training form (`dams train`'s settings): a fresh student name (`s1`, `s2`,
    /// ... the first not in `students`), the label sources — `gold` and each pseudo-label source
    /// of `pseudo_sources`, each used or not with a weight — epochs, batch size, width,
    /// augmentation, seed, device and resume.
    pub fn train(pseudo_sources: &[String], students: &[String]) -> JobForm {
        let fresh = (1..).map(|i| format!("s{i}")).find(|n| !students.contains(n)).unwrap_or_default();
        let mut fields = vec![Field::text(
            "student",
            "name under data/models/ (letters, digits, _ - .); scored as teacher student:<name>",
            &fresh,
        )];
        let sources = std::iter::once("gold").chain(pseudo_sources.iter().map(String::as_str).filter(|s| *s != "gold"));
        for (i, s) in sources.enumerate() {
            fields.push(Field {
                name: s.to_string(),
                help: "label source: Space uses it, ←→ its weight in the loss (gold wins where both label)",
                value: Value::Weighted { on: true, tenths: if i == 0 { 10 } else { 5 } },
            });
        }
        fields.extend([
            // The defaults of `dams train`.
            Field::number(
                "epochs",
                "at most this many epochs (early stop after 5 without a better dev F1)",
                20,
                1,
                1000,
            ),
            Field::number("batch size", "examples per optimizer step", 16, 1, 1024),
            Field::number("width", "channels of the first conv block (the CNN doubles it twice)", 16, 2, 256),
            Field::flag(
                "augmentation",
                "gain, time shift, noise mixing, band-limiting, compression, hard negatives",
                true,
            ),
            Field::number("seed", "same seed, same data order and weights: same student", 0, 0, u32::MAX as i64),
            Field::choice("device", "auto: the GPU when one works, else the CPU", &["auto", "cpu", "gpu"], 0),
            Field::choice(
                "kind",
                "cnn: compact CNN on log-mel; ast-head / ina-head: new head on the frozen AST / INA CNN (cached)",
                &["cnn", "ast-head", "ina-head"],
                0,
            ),
            Field::flag("resume", "continue the student of this name from its last finished epoch", false),
            Field::flag("soft targets", "train on pseudo-labels' scores (e.g. label-model posteriors), not 0/1", false),
            Field::flag("confidence weight", "weigh pseudo-labelled examples by |2q − 1| of their scores", false),
        ]);
        JobForm { kind: JobKind::Train, fields, cursor: 0, students: students.to_vec(), option_fields: Vec::new() }
    }

    pub fn up(&mut self) {
        self.cursor = self.cursor.saturating_sub(1);
    }
    pub fn down(&mut self) {
        self.cursor = (self.cursor + 1).min(self.fields.len().saturating_sub(1));
    }
    /// Left/right: move inside a choice, change a number or a weight, flip a flag.
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
            Value::Text(_) => {}
            Value::Weighted { tenths, .. } => *tenths = (*tenths + d).clamp(WEIGHT_TENTHS.0, WEIGHT_TENTHS.1),
        }
        if f.name == "teacher" {
            self.refresh_options();
        }
    }
    /// Space: toggle the option under the cursor (choices), the flag or the weighted option.
    pub fn toggle(&mut self) {
        let Some(f) = self.fields.get_mut(self.cursor) else { return };
        match &mut f.value {
            Value::Choice { on, multi: true, cursor, .. } => {
                if let Some(x) = on.get_mut(*cursor) {
                    *x = !*x;
                }
            }
            Value::Flag(b) | Value::Weighted { on: b, .. } => *b = !*b,
            _ => {}
        }
    }
    /// A typed character: text fields take any printable one, number fields digits. Returns
    /// false when the field under the cursor does not take it (the key keeps its other meaning).
    pub fn type_char(&mut self, c: char) -> bool {
        let Some(f) = self.fields.get_mut(self.cursor) else { return false };
        match &mut f.value {
            Value::Text(t) if !c.is_control() => {
                if t.chars().count() < TEXT_MAX {
                    t.push(c);
                }
                true
            }
            Value::Number { value, max, .. } => match c.to_digit(10) {
                Some(d) => {
                    let typed = value.saturating_mul(10).saturating_add(d as i64);
                    *value = if typed <= *max { typed } else { d as i64 };
                    true
                }
                None => false,
            },
            _ => false,
        }
    }
    /// Backspace: delete the last character of a text field or the last digit of a number.
    pub fn backspace(&mut self) {
        let Some(f) = self.fields.get_mut(self.cursor) else { return };
        match &mut f.value {
            Value::Text(t) => {
                t.pop();
            }
            Value::Number { value, .. } => *value /= 10,
            _ => {}
        }
    }
    /// Whether the field under the cursor is a text field (it takes letters the form would
    /// otherwise read as moves).
    pub fn editing_text(&self) -> bool {
        matches!(self.fields.get(self.cursor).map(|f| &f.value), Some(Value::Text(_)))
    }

    fn field(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|f| f.name == name).map(|f| &f.value)
    }
    fn chosen(&self, name: &str) -> Vec<String> {
        match self.field(name) {
            Some(Value::Choice { options, on, .. }) => {
                options.iter().zip(on).filter(|(_, o)| **o).map(|(s, _)| s.clone()).collect()
            }
            _ => Vec::new(),
        }
    }
    fn number(&self, name: &str) -> i64 {
        match self.field(name) {
            Some(Value::Number { value, .. }) => *value,
            _ => 0,
        }
    }
    /// A number field's value, refused outside its range.
    #[cfg_attr(not(feature = "burn"), allow(dead_code))]
    fn number_in_range(&self, name: &str) -> Result<i64> {
        match self.field(name) {
            Some(Value::Number { value, min, max }) if (*min..=*max).contains(value) => Ok(*value),
            Some(Value::Number { value, min, max }) => bail!("{name} must be between {min} and {max}, not {value}"),
            _ => bail!("the form has no field '{name}'"),
        }
    }
    fn flag(&self, name: &str) -> bool {
        matches!(self.field(name), Some(Value::Flag(true)))
    }
    fn text(&self, name: &str) -> String {
        match self.field(name) {
            Some(Value::Text(t)) => t.trim().to_string(),
            _ => String::new(),
        }
    }
    /// The weighted options that are on: `(name, weight)`.
    #[cfg_attr(not(feature = "burn"), allow(dead_code))]
    fn weighted(&self) -> Vec<(String, f32)> {
        self.fields
            .iter()
            .filter_map(|f| match f.value {
                Value::Weighted { on: true, tenths } => Some((f.name.clone(), tenths as f32 / 10.0)),
                _ => None,
            })
            .collect()
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
        let model_name = self.chosen("model").into_iter().next().unwrap_or_else(|| "vote".into());
        let bins = self.chosen("bins").into_iter().next().and_then(|b| b.parse().ok()).unwrap_or(4);
        let model = pseudo::Combine::parse(&model_name, bins, self.flag("anchor gold")).map_err(anyhow::Error::msg)?;
        if model == pseudo::Combine::Vote && teachers.len() > 1 && k > teachers.len() {
            bail!("k = {k} is more than the {} chosen teachers", teachers.len());
        }
        if model != pseudo::Combine::Vote && teachers.len() < 2 {
            bail!("the label model combines teachers: choose at least two");
        }
        Ok(pseudo::Params {
            teachers,
            k,
            model,
            residual_noise: self.flag("residual noise"),
            splits,
            created_by: created_by.to_string(),
        })
    }

    /// The scoring job this form describes (validated against the teacher's declared options and devices): the
    /// same [`ScoreJob`] `dams score` builds for the same choices.
    pub fn score_job(&self) -> Result<ScoreJob> {
        let Some(teacher) = self.chosen("teacher").into_iter().next() else { bail!("choose a teacher") };
        let splits: Vec<Split> = self.chosen("splits").iter().filter_map(|s| s.parse().ok()).collect();
        if splits.is_empty() {
            bail!("choose at least one split");
        }
        let mut options = Vec::new();
        for f in &self.fields {
            if let Some(name) = f.name.strip_prefix(OPTION_FIELD) {
                let v = match &f.value {
                    Value::Choice { .. } => self.chosen(&f.name).into_iter().next().unwrap_or_default(),
                    Value::Text(t) => t.trim().to_string(),
                    _ => continue,
                };
                options.push((name.to_string(), v));
            }
        }
        let device = self.chosen("device").into_iter().next().unwrap_or_else(|| "auto".into());
        ScoreJob::new(&teacher, &options, Some(&device), Some(&splits), self.flag("fresh run"), None)
    }

    /// For the training form: what the student name under the cursor means (shown under the
    /// fields). `None` for other forms.
    pub fn hint(&self) -> Option<String> {
        if self.kind != JobKind::Train {
            return None;
        }
        let name = self.text("student");
        Some(if self.students.contains(&name) {
            if self.flag("resume") {
                format!("student {name} exists: it continues after its last finished epoch")
            } else {
                format!("student {name} exists: turn resume on to continue it, or choose another name")
            }
        } else {
            format!("a new student {name} (data/models/{name}/)")
        })
    }

    /// The training this form describes (validated: name, at least one label source, ranges,
    /// and an existing student only with resume).
    #[cfg(feature = "burn")]
    pub fn train_request(&self) -> Result<crate::student::TrainRequest> {
        use crate::student::data::{Augment, SourceSpec};
        use crate::student::train::TrainConfig;
        let name = self.text("student");
        crate::student::checkpoint::check_name(&name)?;
        let resume = self.flag("resume");
        if self.students.contains(&name) && !resume {
            bail!("student {name} exists: turn resume on to continue it, or choose another name");
        }
        let sources: Vec<SourceSpec> =
            self.weighted().into_iter().map(|(source, weight)| SourceSpec { source, weight }).collect();
        if sources.is_empty() {
            bail!("choose at least one label source");
        }
        let device: Option<crate::student::DeviceChoice> =
            self.chosen("device").first().map(|d| d.parse()).transpose().map_err(anyhow::Error::msg)?;
        let d = TrainConfig::default();
        Ok(crate::student::TrainRequest {
            name,
            sources,
            train: TrainConfig {
                epochs: self.number_in_range("epochs")? as usize,
                batch_size: self.number_in_range("batch size")? as usize,
                lr: d.lr,
                patience: d.patience,
                seed: self.number_in_range("seed")? as u64,
                threshold: d.threshold,
                augment: if self.flag("augmentation") { Augment::default() } else { Augment::none() },
                targets: crate::student::data::Targets {
                    soft: self.flag("soft targets"),
                    confidence_weight: self.flag("confidence weight"),
                },
            },
            width: self.number_in_range("width")? as usize,
            device: device.unwrap_or(crate::student::DeviceChoice::Auto),
            resume,
            kind: match self.chosen("kind").first().map(String::as_str) {
                Some("ast-head") => crate::student::StudentKind::AstHead(Default::default()),
                Some("ina-head") => crate::student::StudentKind::InaHead,
                _ => crate::student::StudentKind::Cnn,
            },
        })
    }

    /// Validate and start the job on `runner` (through the job catalog, as the CLI does); returns its id.
    pub fn start(&self, runner: &mut JobRunner, ws: &Workspace, ctx: &OpenContext, created_by: &str) -> Result<i64> {
        let spec = match self.kind {
            JobKind::Score => JobSpec::Score(self.score_job()?),
            JobKind::PseudoLabel => JobSpec::PseudoLabel(self.pseudo_params(created_by)?),
            #[cfg(feature = "burn")]
            JobKind::Train => JobSpec::Train(self.train_request()?),
            #[cfg(not(feature = "burn"))]
            JobKind::Train => bail!("this build of dams has no model engine (rebuild with the `burn` feature)"),
        };
        spec.start(runner, ws, ctx)
    }
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
        assert_eq!(p.model, pseudo::Combine::Vote);
        // the label model needs two teachers; with both, 2 bins and gold anchoring
        f.down();
        f.right(); // dawid-skene
        assert!(f.pseudo_params("me").unwrap_err().to_string().contains("at least two"));
        f.cursor = 0;
        f.left();
        f.toggle(); // a back on
        f.cursor = 5;
        f.right(); // 2 bins
        f.down();
        f.toggle(); // anchor gold
        let p = f.pseudo_params("me").unwrap();
        assert_eq!(
            p.model,
            pseudo::Combine::DawidSkene { bins: 2, anchor: crate::labelmodel::Anchor::Gold },
            "{:?}",
            f.fields
        );
        f.down();
        assert_eq!(f.cursor, 6, "stays on the last field");
    }

    #[test]
    fn score_form_fields_come_from_the_teachers_options() {
        let mut f = JobForm::score(&["builtin".into(), "ast".into()]);
        let names: Vec<&str> = f.fields.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["teacher", "splits", "device", "option weights", "fresh run"]);
        let j = f.score_job().unwrap();
        assert_eq!(
            (j.teacher.as_str(), j.splits.clone(), j.fresh, j.device.as_str()),
            ("builtin", None, false, "auto")
        );
        assert_eq!(j.options.get("weights").map(String::as_str), Some(""));
        f.right(); // single choice: moving selects ast, whose option is pooling
        let names: Vec<&str> = f.fields.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["teacher", "splits", "device", "option pooling", "option precision", "fresh run"]);
        f.down();
        f.toggle(); // train off
        f.down();
        f.right(); // device cpu
        f.down();
        f.right(); // pooling max
        f.down(); // precision stays f32
        f.down();
        f.toggle();
        let j = f.score_job().unwrap();
        assert_eq!(j.teacher, "ast");
        assert_eq!(j.options.get("pooling").map(String::as_str), Some("max"));
        assert_eq!(j.options.get("precision").map(String::as_str), Some("f32"));
        assert_eq!(j.device, "cpu");
        assert_eq!(j.splits, Some(vec!["unlabeled".into(), "dev".into(), "test".into(), "unsplit".into()]));
        assert!(j.fresh);
        // Back to builtin: its own option returns, and cpu is fine for it; gpu is refused before anything starts.
        f.cursor = 0;
        f.left();
        assert!(f.fields.iter().any(|x| x.name == "option weights"));
        f.cursor = 2;
        f.right(); // gpu
        let e = f.score_job().unwrap_err().to_string();
        assert!(e.contains("device 'gpu'") && e.contains("runs on cpu"), "{e}");
    }

    #[test]
    fn number_fields_take_typed_digits_and_ranges_are_checked_at_start() {
        let mut f = JobForm::train(&[], &[]);
        f.cursor = f.fields.iter().position(|x| x.name == "epochs").unwrap();
        assert!(!f.type_char('x'), "letters are not numbers: the key keeps its meaning");
        f.backspace();
        f.backspace();
        assert_eq!(f.number("epochs"), 0);
        assert!(f.number_in_range("epochs").unwrap_err().to_string().contains("between 1 and 1000, not 0"));
        assert!(f.type_char('3') && f.type_char('5'));
        assert_eq!(f.number("epochs"), 35);
        // Past the maximum, a digit starts over.
        f.type_char('0');
        assert_eq!(f.number("epochs"), 350);
        f.type_char('9');
        assert_eq!(f.number("epochs"), 9);
        f.backspace();
        f.left(); // stepping clamps into the range
        assert_eq!(f.number("epochs"), 1);
    }

    #[test]
    fn train_form_defaults_to_a_fresh_name_and_gold_plus_pseudo_sources() {
        let f = JobForm::train(&["builtin_pseudo".into(), "ast_pseudo".into()], &["s1".into(), "s3".into()]);
        assert_eq!(f.text("student"), "s2");
        let names: Vec<&str> = f.fields.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "student",
                "gold",
                "builtin_pseudo",
                "ast_pseudo",
                "epochs",
                "batch size",
                "width",
                "augmentation",
                "seed",
                "device",
                "kind",
                "resume",
                "soft targets",
                "confidence weight"
            ]
        );
        assert_eq!(
            f.weighted(),
            vec![("gold".into(), 1.0), ("builtin_pseudo".into(), 0.5), ("ast_pseudo".into(), 0.5)]
        );
        assert_eq!(f.hint().unwrap(), "a new student s2 (data/models/s2/)");
        assert_eq!(JobForm::score(&[]).hint(), None);
    }

    #[cfg(feature = "burn")]
    #[test]
    fn train_form_edits_into_a_request_and_refuses_bad_input() {
        use crate::student::DeviceChoice;
        use crate::student::data::Augment;
        let mut f = JobForm::train(&["builtin_pseudo".into()], &["old".into()]);
        let r = f.train_request().unwrap();
        assert_eq!((r.name.as_str(), r.width, r.device, r.resume), ("s1", 16, DeviceChoice::Auto, false));
        assert_eq!((r.train.epochs, r.train.batch_size, r.train.seed), (20, 16, 0));
        assert_eq!(r.train.augment, Augment::default());
        assert_eq!(r.sources.len(), 2);
        // Name: typed over the default; j/k/h/l are letters here.
        assert!(f.editing_text());
        f.backspace();
        f.backspace();
        for c in "kid/..".chars() {
            assert!(f.type_char(c));
        }
        let e = f.train_request().unwrap_err().to_string();
        assert!(e.contains("invalid student name 'kid/..'"), "{e}");
        for _ in 0..3 {
            f.backspace();
        }
        f.type_char('2');
        // gold off, pseudo weight 0.5 → 0.8
        f.down();
        f.toggle();
        f.down();
        f.right();
        f.right();
        f.right();
        f.down(); // epochs
        f.backspace();
        f.backspace();
        f.type_char('3');
        f.down(); // batch size
        f.right();
        f.down(); // width
        f.left();
        f.down(); // augmentation off
        f.toggle();
        f.down(); // seed
        f.type_char('7');
        f.down(); // device: cpu
        f.right();
        let r = f.train_request().unwrap();
        assert_eq!(r.name, "kid2");
        assert_eq!(r.sources.len(), 1);
        assert_eq!((r.sources[0].source.as_str(), r.sources[0].weight), ("builtin_pseudo", 0.8));
        assert_eq!((r.train.epochs, r.train.batch_size, r.width, r.train.seed), (3, 17, 15, 7));
        assert_eq!(r.train.augment, Augment::none());
        assert_eq!(r.device, DeviceChoice::Cpu);
        assert!(matches!(r.kind, crate::student::StudentKind::Cnn));
        f.down(); // kind: ast-head
        f.right();
        assert!(matches!(f.train_request().unwrap().kind, crate::student::StudentKind::AstHead(_)));
        f.left();
        // No source at all: refused.
        f.cursor = 2;
        f.toggle();
        assert!(f.train_request().unwrap_err().to_string().contains("at least one label source"));
        f.toggle();
        // An existing student only with resume.
        f.cursor = 0;
        while f.editing_text() && !f.text("student").is_empty() {
            f.backspace();
        }
        for c in "old".chars() {
            f.type_char(c);
        }
        let e = f.train_request().unwrap_err().to_string();
        assert!(e.contains("student old exists: turn resume on"), "{e}");
        assert!(f.hint().unwrap().contains("turn resume on"));
        f.cursor = f.fields.iter().position(|x| x.name == "resume").unwrap();
        f.toggle();
        assert!(f.train_request().unwrap().resume);
        assert!(f.hint().unwrap().contains("continues after its last finished epoch"));
        // Weights stay within 0.1–5.0.
        f.cursor = 2;
        for _ in 0..100 {
            f.left();
        }
        assert_eq!(f.train_request().unwrap().sources[0].weight, 0.1);
    }
}
