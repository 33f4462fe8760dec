//! The researcher's screens inside the TUI: which one is shown and what their keys do. The
//! state lives in core types ([`ThresholdSession`], [`DisagreementSession`], [`JobRunner`],
//! [`JobForm`]); this file only routes actions to them and back to the segment view.

use std::time::{Duration, Instant};

use crate::eval::calibrate::Method;
use crate::eval::workbench::{DisagreementSession, ThresholdSession};
use crate::jobs::{JobRunner, JobState, JobView};
use crate::store::Job;
use crate::tui::form::JobForm;
use crate::tui::keymap::{Action, Key, KeyCode};

use super::app::App;

/// The screen on show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Screen {
    /// The annotation screen: segment list + segment view.
    #[default]
    Segments,
    Thresholds,
    Disagreements,
    Jobs,
    /// The CLAP prompt workbench.
    Prompts,
    /// Rounds of self-training (`dams loop` records).
    Rounds,
}

impl Screen {
    /// The keymap context of the screen (`None`: the main annotation contexts).
    pub fn context(self) -> Option<&'static str> {
        match self {
            Screen::Segments => None,
            Screen::Thresholds => Some("thresholds"),
            Screen::Disagreements => Some("disagreements"),
            Screen::Jobs => Some("jobs"),
            Screen::Prompts => Some("prompts"),
            Screen::Rounds => Some("rounds"),
        }
    }
}

/// One row of the jobs list: a job of this session (live) or one from the store's history.
#[derive(Debug, Clone)]
pub enum JobRow {
    Live(JobView),
    Past(Job),
}

impl JobRow {
    pub fn id(&self) -> i64 {
        match self {
            JobRow::Live(v) => v.id,
            JobRow::Past(j) => j.id,
        }
    }
}

/// The jobs pane: the runner of this session, the store's history, the form.
pub struct JobsPane {
    pub runner: JobRunner,
    pub history: Vec<Job>,
    pub cursor: usize,
    pub form: Option<JobForm>,
    /// Show the selected job's parameters, result and whole log.
    pub inspect: bool,
    /// The per-epoch history of the training job being inspected: `(job id, student, epochs or
    /// why there are none)`, read from the student's checkpoint.
    pub epochs: Option<(i64, String, Result<StudentEpochs, String>)>,
    refreshed: Option<Instant>,
    /// Jobs seen running (to notice when they finish).
    running: Vec<i64>,
    /// Sharded runs (`dams slurm submit`) of the workspace, newest first: their progress from the part files.
    pub sharded: Vec<crate::slurm::status::RunProgress>,
    sharded_watch: crate::slurm::status::Watch,
}

impl JobsPane {
    pub fn new(runner: JobRunner) -> JobsPane {
        JobsPane {
            runner,
            history: Vec::new(),
            cursor: 0,
            form: None,
            inspect: false,
            epochs: None,
            refreshed: None,
            running: vec![],
            sharded: Vec::new(),
            sharded_watch: Default::default(),
        }
    }

    /// Live jobs first (newest first), then the store's history without them.
    pub fn rows(&self) -> Vec<JobRow> {
        let live = self.runner.snapshot();
        let mut out: Vec<JobRow> = Vec::with_capacity(live.len() + self.history.len());
        for j in &self.history {
            if !live.iter().any(|v| v.id == j.id) {
                out.push(JobRow::Past(j.clone()));
            }
        }
        let mut rows: Vec<JobRow> = live.into_iter().map(JobRow::Live).collect();
        rows.append(&mut out);
        rows
    }
}

/// What a trained (or training) student's checkpoint says about its epochs.
#[derive(Debug, Clone, PartialEq)]
pub struct StudentEpochs {
    /// `(epoch, loss, dev F1 per class, dev macro F1)`.
    pub rows: Vec<(usize, f64, Option<[f64; 3]>, Option<f64>)>,
    pub best_epoch: usize,
}

impl StudentEpochs {
    /// Read the last checkpoint of student `name` in `ws`.
    #[cfg(feature = "burn")]
    pub fn load(ws: &crate::workspace::Workspace, name: &str) -> Result<StudentEpochs, String> {
        let dir = crate::student::student_dir(ws, name).map_err(|e| e.to_string())?;
        match crate::student::checkpoint::last_state(&dir) {
            Ok(Some((_, st))) => Ok(StudentEpochs {
                rows: st.history.iter().map(|h| (h.epoch, h.loss, h.dev_f1, h.dev_macro_f1)).collect(),
                best_epoch: st.best_epoch,
            }),
            Ok(None) => Err(format!("student {name} has no finished epoch yet")),
            Err(e) => Err(format!("{e:#}")),
        }
    }
    #[cfg(not(feature = "burn"))]
    pub fn load(_ws: &crate::workspace::Workspace, _name: &str) -> Result<StudentEpochs, String> {
        Err("this build of dams has no model engine".into())
    }
}

/// The student a `train` job trains (its `name` parameter).
pub fn trained_student(kind: &str, params: &serde_json::Value) -> Option<String> {
    (kind == "train").then(|| params.get("name").and_then(|n| n.as_str()).map(str::to_string)).flatten()
}

/// The state of the research screens.
pub struct Research {
    pub screen: Screen,
    pub thresholds: Option<ThresholdSession>,
    pub disagreements: Option<DisagreementSession>,
    pub jobs: JobsPane,
    /// Why a screen could not load (shown on it).
    pub error: Option<String>,
    /// Play this segment as soon as its audio is decoded (Enter on a flip).
    pub play_when_ready: Option<i64>,
    /// The prompt workbench (loaded on first show).
    pub prompts: Option<PromptsPane>,
    /// The rounds screen (reloaded on each show).
    pub rounds: RoundsPane,
}

/// The rounds screen: every `dams loop` record of the workspace, newest first, and the selected one.
#[derive(Debug, Default)]
pub struct RoundsPane {
    pub records: Vec<crate::eval::rounds::LoopRecord>,
    /// Files that could not be read.
    pub errors: Vec<String>,
    pub cursor: usize,
}

/// The prompt workbench's state: the live session (text tower + cached embeddings), the selected class, the
/// prompt being typed, the flips cursor.
pub struct PromptsPane {
    #[cfg(feature = "burn")]
    pub session: crate::teachers::clap::workbench::Session,
    /// Selected class (0 speech, 1 music, 2 noise).
    pub class: usize,
    /// The prompt being edited (Enter applies, Esc cancels).
    pub editing: Option<String>,
    pub flip_cursor: usize,
    /// Milliseconds of the last update (Enter → new F1).
    pub last_ms: Option<f64>,
}

impl Research {
    pub fn new(runner: JobRunner) -> Research {
        Research {
            screen: Screen::Segments,
            thresholds: None,
            disagreements: None,
            jobs: JobsPane::new(runner),
            error: None,
            play_when_ready: None,
            prompts: None,
            rounds: RoundsPane::default(),
        }
    }
}

impl App {
    /// Switch screens; the threshold view and disagreement browser load on first show (and
    /// reload when shown again, so new labels and runs count).
    pub fn show_screen(&mut self, screen: Screen) {
        self.research.screen = screen;
        self.research.error = None;
        match screen {
            Screen::Segments => {}
            Screen::Thresholds => {
                let r = match &mut self.research.thresholds {
                    Some(s) => s.reload(&self.store),
                    None => ThresholdSession::load(&self.store).map(|s| self.research.thresholds = Some(s)),
                };
                if let Err(e) = r {
                    self.research.error = Some(e.to_string());
                }
            }
            Screen::Disagreements => {
                let keep = self.research.disagreements.take();
                match DisagreementSession::load(&self.store) {
                    Ok(mut d) => {
                        if let Some(k) = keep {
                            // Keep the user's order and filters.
                            while d.order != k.order {
                                d.cycle_order();
                            }
                            while d.filter.class != k.filter.class {
                                d.cycle_class();
                            }
                            while d.filter.splits != k.filter.splits {
                                d.cycle_split();
                            }
                            d.cursor = k.cursor.min(d.queue.len().saturating_sub(1));
                        }
                        self.research.disagreements = Some(d);
                    }
                    Err(e) => self.research.error = Some(e.to_string()),
                }
            }
            Screen::Jobs => self.refresh_jobs(true),
            Screen::Rounds => {
                let (records, errors) = crate::eval::rounds::list(&self.ws.experiments_dir());
                let cursor = self.research.rounds.cursor.min(records.len().saturating_sub(1));
                self.research.rounds = RoundsPane { records, errors, cursor };
            }
            Screen::Prompts => {
                if self.research.prompts.is_none() {
                    match self.open_prompts() {
                        Ok(p) => self.research.prompts = Some(p),
                        Err(e) => self.research.error = Some(e),
                    }
                }
            }
        }
    }

    /// Open the workbench on the installed CLAP (its text tower on the CPU) and the workspace's cached
    /// embeddings.
    #[cfg(feature = "burn")]
    fn open_prompts(&mut self) -> Result<PromptsPane, String> {
        use crate::teachers::clap::prompts::{DEFAULT_SET, PromptFile};
        use crate::teachers::clap::{ClapTeacher, install, workbench::Session};
        let cache = &self.teachers.model_cache;
        let Some(rec) = install::installed(cache) else {
            return Err("CLAP is not installed: dams teachers pull clap (or dams teachers add clap --from DIR)".into());
        };
        let teacher = ClapTeacher::open(
            &install::install_dir(cache),
            crate::engine::Engine::cpu(),
            Some(format!("sha256:{}", rec.sha256)),
        )
        .map_err(|e| e.to_string())?;
        let file = PromptFile::load(self.ws.root())?;
        let set = file.get(DEFAULT_SET)?;
        let session =
            Session::open(teacher, &self.store, DEFAULT_SET, set, &file.background).map_err(|e| e.to_string())?;
        if session.pool.is_empty() {
            return Err("no segment has a CLAP embedding yet: run `dams score --teacher clap` first".into());
        }
        Ok(PromptsPane { session, class: 0, editing: None, flip_cursor: 0, last_ms: None })
    }

    #[cfg(not(feature = "burn"))]
    fn open_prompts(&mut self) -> Result<PromptsPane, String> {
        Err("this build of dams has no model engine (rebuild with the `burn` feature)".into())
    }

    /// Re-read the job history (at most every 2 s unless `force`) and notice finished jobs.
    pub fn refresh_jobs(&mut self, force: bool) {
        let pane = &mut self.research.jobs;
        let live = pane.runner.snapshot();
        let finished: Vec<&JobView> =
            live.iter().filter(|v| v.state.is_finished() && pane.running.contains(&v.id)).collect();
        let changed = !finished.is_empty();
        for v in &finished {
            self.message = match v.state {
                JobState::Done => format!("job #{} ({}) done", v.id, v.kind),
                JobState::Cancelled => format!("job #{} ({}) cancelled", v.id, v.kind),
                _ => format!("job #{} ({}) failed: {}", v.id, v.kind, v.error.as_deref().unwrap_or("?")),
            };
        }
        let scored = finished.iter().any(|v| v.kind == "score");
        pane.running = live.iter().filter(|v| !v.state.is_finished()).map(|v| v.id).collect();
        let due = pane.refreshed.is_none_or(|t| t.elapsed() >= Duration::from_secs(2));
        if force || changed || (due && self.research.screen == Screen::Jobs) {
            pane.refreshed = Some(Instant::now());
            match self.store.jobs(100) {
                Ok(h) => pane.history = h,
                Err(e) => self.message = format!("error: cannot read the job history: {e}"),
            }
            pane.sharded = pane.sharded_watch.scan(&self.ws, Some(&self.store), 3);
            if pane.inspect {
                self.load_epochs();
            }
        }
        if scored {
            self.reload_index();
        }
    }

    /// Read the epoch history of the selected job's student (a `train` job being inspected).
    pub fn load_epochs(&mut self) {
        let pane = &mut self.research.jobs;
        let rows = pane.rows();
        let sel = rows.get(pane.cursor.min(rows.len().saturating_sub(1)));
        let student = sel.and_then(|r| match r {
            JobRow::Live(v) => trained_student(&v.kind, &v.params).map(|n| (v.id, n)),
            JobRow::Past(j) => {
                serde_json::from_str(&j.params).ok().and_then(|p| trained_student(&j.kind, &p)).map(|n| (j.id, n))
            }
        });
        pane.epochs = student.map(|(id, name)| {
            let e = StudentEpochs::load(&self.ws, &name);
            (id, name, e)
        });
    }

    /// Re-read the segment list after new scores arrived (keeping filter, sort and selection)
    /// so its teacher columns and the segment view's score bars show them.
    pub fn reload_index(&mut self) {
        match crate::tui::browse::SegmentIndex::load(&self.store, self.annotator_id) {
            Ok(mut idx) => {
                idx.set_filter(self.index.filter().clone());
                let sort = self.index.sort();
                if idx.columns().contains(&sort.column) {
                    idx.set_sort(sort);
                }
                let keep = self.current_id();
                self.index = idx;
                self.current = None;
                let pos = keep.and_then(|id| self.index.view_position(id)).unwrap_or(0);
                self.select(pos);
            }
            Err(e) => self.message = format!("error: cannot reload the segment list: {e}"),
        }
    }

    /// A key on a research screen. Returns false if the screen does not take it.
    pub fn research_key(&mut self, key: Key) -> bool {
        let Some(ctx) = self.research.screen.context() else { return false };
        if self.research.screen == Screen::Jobs && self.research.jobs.form.is_some() {
            self.form_key(key);
            return true;
        }
        if self.research.screen == Screen::Prompts
            && self.research.prompts.as_ref().is_some_and(|p| p.editing.is_some())
        {
            self.prompt_edit_key(key);
            return true;
        }
        if let Some(a) = self.keymap.lookup_screen(ctx, key) {
            self.run(a);
        }
        true
    }

    /// Keys of the job form (fixed, like the text inputs; shown in the form's footer).
    fn form_key(&mut self, key: Key) {
        let Some(form) = self.research.jobs.form.as_mut() else { return };
        match key.code {
            KeyCode::Esc => {
                self.research.jobs.form = None;
                self.message = "job not started".into();
            }
            KeyCode::Char(c) if !key.ctrl && !key.alt && form.type_char(c) => {}
            KeyCode::Backspace => form.backspace(),
            KeyCode::Up | KeyCode::Char('k') | KeyCode::BackTab => form.up(),
            KeyCode::Down | KeyCode::Char('j') | KeyCode::Tab => form.down(),
            KeyCode::Left | KeyCode::Char('h') => form.left(),
            KeyCode::Right | KeyCode::Char('l') => form.right(),
            KeyCode::Char(' ') => form.toggle(),
            KeyCode::Enter => {
                let form = form.clone();
                match form.start(&mut self.research.jobs.runner, &self.ws, &self.teachers, &self.annotator) {
                    Ok(id) => {
                        self.research.jobs.form = None;
                        self.research.jobs.cursor = 0;
                        self.message = format!("started job #{id} ({})", form.kind.title());
                        self.refresh_jobs(true);
                    }
                    Err(e) => self.message = format!("error: {e:#}"),
                }
            }
            _ => {}
        }
    }

    /// Run a research-screen action.
    pub fn run_research(&mut self, action: Action) {
        use Action::*;
        match action {
            ShowThresholds => self.show_screen(Screen::Thresholds),
            ShowDisagreements => self.show_screen(Screen::Disagreements),
            ShowJobs => self.show_screen(Screen::Jobs),
            ShowPrompts => self.show_screen(Screen::Prompts),
            ShowRounds => self.show_screen(Screen::Rounds),
            Back => {
                if self.research.screen == Screen::Jobs && self.research.jobs.inspect {
                    self.research.jobs.inspect = false;
                } else {
                    self.research.screen = Screen::Segments;
                }
            }
            _ => match self.research.screen {
                Screen::Thresholds => self.thresholds_action(action),
                Screen::Disagreements => self.disagreements_action(action),
                Screen::Jobs => self.jobs_action(action),
                Screen::Prompts => self.prompts_action(action),
                Screen::Rounds => {
                    let p = &mut self.research.rounds;
                    match action {
                        ItemDown => p.cursor = (p.cursor + 1).min(p.records.len().saturating_sub(1)),
                        ItemUp => p.cursor = p.cursor.saturating_sub(1),
                        _ => {}
                    }
                }
                Screen::Segments => {}
            },
        }
    }

    fn thresholds_action(&mut self, action: Action) {
        use Action::*;
        let Some(s) = self.research.thresholds.as_mut() else { return };
        let mut err = None;
        match action {
            ThresholdUp => s.nudge(1, false),
            ThresholdDown => s.nudge(-1, false),
            ThresholdUpCoarse => s.nudge(1, true),
            ThresholdDownCoarse => s.nudge(-1, true),
            NextTeacher | PrevTeacher => {
                err = s.switch_teacher(&self.store, if action == NextTeacher { 1 } else { -1 }).err();
            }
            NextClass => s.next_class(),
            TargetUp | TargetDown => {
                let d = if action == TargetUp { 0.01 } else { -0.01 };
                s.target_precision = ((s.target_precision + d) * 100.0).round().clamp(1.0, 100.0) / 100.0;
                self.message = format!("target precision {:.2} (p calibrates)", s.target_precision);
            }
            QuantileUp | QuantileDown => {
                let d = if action == QuantileUp { 0.05 } else { -0.05 };
                s.quantile = ((s.quantile + d) * 100.0).round().clamp(0.0, 100.0) / 100.0;
                self.message = format!("quantile {:.2} (e calibrates)", s.quantile);
            }
            CalibratePrecision | CalibrateQuantile | CalibrateF1 => {
                let m = match action {
                    CalibratePrecision => Method::TargetPrecision,
                    CalibrateQuantile => Method::Quantile,
                    _ => Method::F1Optimal,
                };
                if let Some(c) = s.calibrate(m) {
                    self.message = match (c.threshold, &c.reason) {
                        (Some(t), _) => format!("{}: threshold {t:.4} (s saves it)", m.as_str()),
                        (None, r) => format!(
                            "{}: {} — threshold unchanged",
                            m.as_str(),
                            r.as_deref().unwrap_or("goal unreachable")
                        ),
                    };
                }
            }
            SaveThreshold => match s.save(&mut self.store, &self.annotator) {
                Ok(Some((id, v))) => {
                    let t = s.run().map(|r| r.teacher.clone()).unwrap_or_default();
                    self.message = format!("saved {t} {} threshold {v:.4} (#{id})", s.class.name());
                    // The segment view's score bars show the active thresholds.
                    if let Some(c) = &mut self.current {
                        for ts in &mut c.scores {
                            if ts.teacher == t {
                                ts.thresholds[s.class.index()] = Some(v);
                            }
                        }
                    }
                }
                Ok(None) => self.message = "no teacher run to save a threshold for".into(),
                Err(e) => err = Some(e),
            },
            ItemDown | ItemUp => {
                let n = s.explorer().map(|e| e.flip_count()).unwrap_or(0);
                if n > 0 {
                    s.flip_cursor = if action == ItemDown {
                        (s.flip_cursor + 1).min(n - 1)
                    } else {
                        s.flip_cursor.saturating_sub(1)
                    };
                }
            }
            OpenItem => {
                let flip = s.explorer().and_then(|e| e.flips().nth(s.flip_cursor));
                match flip {
                    Some(f) => self.open_segment(f.segment_id, true),
                    None => self.message = "no flipped segment: move the slider first".into(),
                }
            }
            _ => {}
        }
        if let Some(e) = err {
            self.message = format!("error: {e}");
        }
    }

    fn disagreements_action(&mut self, action: Action) {
        use Action::*;
        let Some(d) = self.research.disagreements.as_mut() else { return };
        match action {
            ItemDown => d.move_cursor(1),
            ItemUp => d.move_cursor(-1),
            CycleOrder => d.cycle_order(),
            CycleClassFilter => d.cycle_class(),
            CycleSplitFilterQueue => d.cycle_split(),
            OpenItem => {
                if let Some(id) = d.selected().map(|r| r.segment_id) {
                    self.open_segment(id, false);
                }
            }
            _ => {}
        }
    }

    fn jobs_action(&mut self, action: Action) {
        use Action::*;
        let n = self.research.jobs.rows().len();
        let pane = &mut self.research.jobs;
        match action {
            ItemDown => pane.cursor = (pane.cursor + 1).min(n.saturating_sub(1)),
            ItemUp => pane.cursor = pane.cursor.saturating_sub(1),
            OpenItem => {
                pane.inspect = !pane.inspect;
                if pane.inspect {
                    self.load_epochs();
                }
            }
            NewPseudoJob => match self.store.latest_runs() {
                Ok(runs) if runs.is_empty() => {
                    self.message = "no teacher runs with scores yet: score or import some first".into()
                }
                Ok(runs) => {
                    let names: Vec<String> = runs.into_iter().map(|r| r.teacher).collect();
                    pane.form = Some(JobForm::pseudo(&names));
                }
                Err(e) => self.message = format!("error: {e}"),
            },
            NewScoreJob => {
                let names = crate::catalog::usable(&self.teachers);
                self.research.jobs.form = Some(JobForm::score(&names));
            }
            NewTrainJob => match self.store.pseudo_sources() {
                Ok(sources) => {
                    let students = self.students();
                    self.research.jobs.form = Some(JobForm::train(&sources, &students));
                }
                Err(e) => self.message = format!("error: {e}"),
            },
            OpenResults => self.open_results(),
            CancelJob => {
                let rows = pane.rows();
                match rows.get(pane.cursor) {
                    Some(JobRow::Live(v)) if !v.state.is_finished() => {
                        pane.runner.cancel(v.id);
                        self.message = format!("cancelling job #{}…", v.id);
                    }
                    Some(r) => self.message = format!("job #{} is not running in this session", r.id()),
                    None => {}
                }
            }
            _ => {}
        }
    }

    /// The students of the workspace (trained or training).
    fn students(&self) -> Vec<String> {
        #[cfg(feature = "burn")]
        {
            crate::student::checkpoint::list(&crate::student::models_dir(&self.ws))
        }
        #[cfg(not(feature = "burn"))]
        {
            Vec::new()
        }
    }

    /// Open the results of the selected job: a scoring job's teacher in the threshold view; for
    /// a training job, its student there once scored (else a scoring job for it starts).
    fn open_results(&mut self) {
        let rows = self.research.jobs.rows();
        let Some(row) = rows.get(self.research.jobs.cursor.min(rows.len().saturating_sub(1))) else { return };
        let (id, kind, state, params) = match row {
            JobRow::Live(v) => (v.id, v.kind.clone(), v.state.as_str().to_string(), v.params.clone()),
            JobRow::Past(j) => (
                j.id,
                j.kind.clone(),
                j.state.clone(),
                serde_json::from_str::<serde_json::Value>(&j.params).unwrap_or_default(),
            ),
        };
        let teacher = match kind.as_str() {
            "score" => params.get("teacher").and_then(|t| t.as_str()).map(str::to_string),
            "train" => trained_student(&kind, &params).map(|n| format!("student:{n}")),
            _ => None,
        };
        let Some(teacher) = teacher else {
            self.message = format!(
                "job #{id} ({kind}) has no results view: {} shows its result and log",
                self.keymap.keys_in("jobs", crate::tui::keymap::Action::OpenItem)
            );
            return;
        };
        let scored = match self.store.latest_runs() {
            Ok(runs) => runs.iter().any(|r| r.teacher == teacher && r.state == "done"),
            Err(e) => {
                self.message = format!("error: {e}");
                return;
            }
        };
        if scored {
            self.show_screen(Screen::Thresholds);
            if let Some(s) = self.research.thresholds.as_mut()
                && let Some(i) = s.teachers.iter().position(|r| r.teacher == teacher)
            {
                let delta = i as isize - s.teacher as isize;
                if let Err(e) = s.switch_teacher(&self.store, delta) {
                    self.research.error = Some(e.to_string());
                }
            }
            self.message = format!("{teacher} in the threshold view (its latest run)");
            return;
        }
        if kind != "train" {
            self.message = format!("job #{id}: {teacher} has no finished run with scores yet");
            return;
        }
        if state == "running" {
            self.message = format!("job #{id} is still training; o scores {teacher} once it is done");
            return;
        }
        let spec = crate::jobs::catalog::ScoreJob::new(&teacher, &[], None, None, false, None)
            .map(crate::jobs::catalog::JobSpec::Score);
        match spec.and_then(|s| s.start(&mut self.research.jobs.runner, &self.ws, &self.teachers)) {
            Ok(job) => {
                self.research.jobs.cursor = 0;
                self.message =
                    format!("scoring every segment with {teacher} (job #{job}); o on it opens the threshold view");
                self.refresh_jobs(true);
            }
            Err(e) => self.message = format!("error: {e:#}"),
        }
    }

    /// Show a segment in the segment view (clearing list filters that hide it); `play` starts
    /// playback as soon as its audio is ready. Labels typed there are ordinary gold labels.
    pub fn open_segment(&mut self, id: i64, play: bool) {
        if self.index.view_position(id).is_none() {
            self.run(Action::ClearFilters);
        }
        let Some(pos) = self.index.view_position(id) else {
            self.message = format!("segment #{id} is not in the list");
            return;
        };
        let from = self.research.screen;
        self.research.screen = Screen::Segments;
        self.research.play_when_ready = play.then_some(id);
        self.select(pos);
        if play && self.current.as_ref().is_some_and(|c| c.analysis.is_some()) {
            self.research.play_when_ready = None;
            self.playback.seek_to(0.0);
            self.playback.play();
        }
        let back = match from {
            Screen::Thresholds => Action::ShowThresholds,
            Screen::Disagreements => Action::ShowDisagreements,
            Screen::Prompts => Action::ShowPrompts,
            _ => Action::ShowJobs,
        };
        let name = self.current.as_ref().map(|c| c.segment.file_name()).unwrap_or_default();
        self.message = format!("{name}: label it here; {} goes back", self.keymap.keys_in("app", back));
    }
}

impl App {
    /// Keys while a prompt is typed: text, Backspace, Enter (apply), Esc (cancel).
    fn prompt_edit_key(&mut self, key: Key) {
        let Some(p) = self.research.prompts.as_mut() else { return };
        let Some(buf) = p.editing.as_mut() else { return };
        match key.code {
            KeyCode::Esc => {
                p.editing = None;
                self.message = "prompt unchanged".into();
            }
            KeyCode::Backspace => {
                buf.pop();
            }
            KeyCode::Char('u') if key.ctrl => buf.clear(),
            KeyCode::Char(c) if !key.ctrl && !key.alt => buf.push(c),
            KeyCode::Enter => {
                let text = p.editing.take().unwrap_or_default();
                self.apply_prompt(text);
            }
            _ => {}
        }
    }

    #[cfg(feature = "burn")]
    fn apply_prompt(&mut self, text: String) {
        let Some(p) = self.research.prompts.as_mut() else { return };
        let text = text.trim().to_string();
        if text.is_empty() {
            self.message = "an empty prompt is not applied".into();
            return;
        }
        let mut set = p.session.set.clone();
        let class = p.class;
        let prompts = set.class_mut(class);
        if prompts.is_empty() {
            prompts.push(text);
        } else {
            prompts[0] = text;
        }
        let before = p.session.current.macro_f1;
        let t0 = Instant::now();
        match p.session.apply(set) {
            Ok(()) => {
                let ms = t0.elapsed().as_secs_f64() * 1e3;
                p.last_ms = Some(ms);
                p.flip_cursor = 0;
                self.message = format!(
                    "{} segments re-scored in {ms:.1} ms: macro F1 {before:.3} → {:.3}, {} flipped",
                    p.session.pool.len(),
                    p.session.current.macro_f1,
                    p.session.flipped().len()
                );
            }
            Err(e) => self.message = format!("error: {e}"),
        }
    }

    #[cfg(not(feature = "burn"))]
    fn apply_prompt(&mut self, _text: String) {}

    #[cfg(feature = "burn")]
    fn prompts_action(&mut self, action: Action) {
        use crate::teachers::clap::prompts::{DEFAULT_SET, PromptFile, Provenance};
        use crate::teachers::clap::scoring::Scoring;
        use crate::teachers::clap::workbench::Adapt;
        use Action::*;
        let root = self.ws.root().to_path_buf();
        let Some(p) = self.research.prompts.as_mut() else { return };
        let mut settings = p.session.settings.clone();
        let mut resettle = false;
        match action {
            EditPrompt => p.editing = Some(p.session.set.class(p.class).first().cloned().unwrap_or_default()),
            NextClass => p.class = (p.class + 1) % 3,
            TauUp | TauDown => {
                let d = if action == TauUp { 0.05 } else { -0.05 };
                settings.tau = ((settings.tau + d) * 100.0).round().clamp(0.0, 300.0) / 100.0;
                resettle = true;
            }
            CycleAdapt => {
                settings.adapt = match (settings.adapt.tgap, settings.adapt.background) {
                    (false, false) => Adapt { tgap: true, background: false },
                    (true, false) => Adapt { tgap: false, background: true },
                    (false, true) => Adapt { tgap: true, background: true },
                    (true, true) => Adapt::default(),
                };
                resettle = true;
            }
            CycleScoring => {
                settings.scoring = match settings.scoring {
                    Scoring::Softmax => Scoring::Pairwise,
                    Scoring::Pairwise => Scoring::Cosine,
                    Scoring::Cosine => Scoring::Softmax,
                };
                resettle = true;
            }
            ItemDown | ItemUp => {
                let n = p.session.flipped().len();
                if n > 0 {
                    p.flip_cursor = if action == ItemDown {
                        (p.flip_cursor + 1).min(n - 1)
                    } else {
                        p.flip_cursor.saturating_sub(1)
                    };
                }
            }
            ToggleBackground => {
                let Some(&i) = p.session.flipped().get(p.flip_cursor) else {
                    self.message = "select a flipped segment to mark it as background".into();
                    return;
                };
                p.session.pool.background[i] = !p.session.pool.background[i];
                let ids: Vec<i64> = (0..p.session.pool.len())
                    .filter(|&k| p.session.pool.background[k])
                    .map(|k| p.session.pool.ids[k])
                    .collect();
                let saved = PromptFile::load(&root).and_then(|mut f| {
                    f.background = ids.clone();
                    f.save(&root)
                });
                self.message = match saved {
                    Ok(()) => format!("{} background segment(s) (saved in prompts.toml)", ids.len()),
                    Err(e) => format!("error: {e}"),
                };
                resettle = settings.adapt.background;
            }
            OpenItem => {
                let id = p.session.flipped().get(p.flip_cursor).map(|&i| p.session.pool.ids[i]);
                match id {
                    Some(id) => self.open_segment(id, true),
                    None => self.message = "no flipped segment: edit a prompt first".into(),
                }
                return;
            }
            SavePrompts => {
                let s = &p.session;
                let name = if s.set_name == DEFAULT_SET { "workbench".to_string() } else { s.set_name.clone() };
                let mut set = s.set.clone();
                set.provenance = Some(Provenance {
                    saved: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    from_set: s.set_name.clone(),
                    model: crate::teachers::Teacher::checksum(&s.teacher).to_string(),
                    macro_f1: Some((s.current.macro_f1 * 1e4).round() / 1e4),
                    segments: Some(s.current.n_gold),
                    note: format!(
                        "scoring {}, adapt {}, tau {:.2}, annotator {}",
                        s.settings.scoring.as_str(),
                        s.settings.adapt.as_str(),
                        s.settings.tau,
                        self.annotator
                    ),
                });
                self.message = match PromptFile::save_set(&root, &name, &set) {
                    Ok(()) => {
                        p.session.set_name = name.clone();
                        format!(
                            "saved prompt set '{name}' in prompts.toml (dams score --teacher clap --option prompts={name})"
                        )
                    }
                    Err(e) => format!("error: {e}"),
                };
            }
            _ => {}
        }
        if resettle {
            let t0 = Instant::now();
            match p.session.resettle(settings) {
                Ok(()) => {
                    p.last_ms = Some(t0.elapsed().as_secs_f64() * 1e3);
                    let st = &p.session.settings;
                    self.message = format!(
                        "scoring {}, adapt {}, τ {:.2}: macro F1 {:.3}",
                        st.scoring.as_str(),
                        st.adapt.as_str(),
                        st.tau,
                        p.session.current.macro_f1
                    );
                }
                Err(e) => self.message = format!("error: {e}"),
            }
        }
    }

    #[cfg(not(feature = "burn"))]
    fn prompts_action(&mut self, _action: Action) {}
}
