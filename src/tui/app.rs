//! The TUI's state and what every action does to it. No drawing and no terminal I/O here:
//! [`super::view`] renders an [`App`], [`super::run`] feeds it events.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::labels::{Class, LabelSet};
use crate::store::{AcousticStats, Segment, Store, StoreError, Threshold};
use crate::tui::browse::{Column, Filter, Labeled, SegmentIndex, Sort};
use crate::tui::keymap::{Action, Diagnostic, Key, KeyCode, Keymap};
use crate::tui::playback::{Output, Playback};
use crate::workspace::Workspace;

use super::colormap::ColorMap;
use super::worker::{Analysis, Worker};

/// Analyses kept in memory (current, neighbours, a few recently seen).
const CACHE: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Help {
        scroll: u16,
    },
    /// Typing a path search (`/`).
    Search {
        buf: String,
    },
    /// Editing the note of the current segment.
    Note {
        buf: String,
    },
    /// Keymap problems found at startup.
    Diagnostics,
}

/// What the segment view shows about the current segment.
#[derive(Debug, Clone)]
pub struct Current {
    pub segment: Segment,
    pub gold: Option<LabelSet>,
    pub review: bool,
    pub note: Option<String>,
    pub scores: Vec<TeacherScores>,
    pub stats: Option<AcousticStats>,
    pub neighbours: (Option<Segment>, Option<Segment>),
    pub analysis: Option<Arc<Analysis>>,
    pub analysis_error: Option<String>,
    /// When the segment was selected (for the switch-time figure in the status bar).
    pub selected_at: Instant,
}

/// One teacher's scores for the current segment, with the active threshold of each class.
#[derive(Debug, Clone, PartialEq)]
pub struct TeacherScores {
    pub teacher: String,
    pub run_id: i64,
    pub scores: [f32; 3],
    pub thresholds: [Option<f64>; 3],
}

/// Screen regions recorded by the last draw (for mouse hit-testing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Areas {
    /// Table body: first row's y, x range, number of rows.
    pub list: (u16, u16, u16, u16),
    /// Spectrogram cells: x, y, width, height.
    pub spec: (u16, u16, u16, u16),
}

pub struct App {
    pub ws: Workspace,
    pub store: Store,
    pub annotator: String,
    pub annotator_id: i64,
    /// Where teachers are opened from (model cache, the workspace's students): what the score form lists and jobs use.
    pub teachers: crate::teachers::OpenContext,
    pub allow_any_split: bool,
    pub index: SegmentIndex,
    /// Position of the selection in the index's view.
    pub cursor: usize,
    /// First visible view position of the list.
    pub offset: usize,
    pub keymap: Keymap,
    pub diagnostics: Vec<Diagnostic>,
    pub mode: Mode,
    pub message: String,
    pub playback: Playback,
    pub autoplay: bool,
    pub loop_in: Option<f64>,
    pub current: Option<Current>,
    pub cache: HashMap<i64, Arc<Analysis>>,
    cache_order: Vec<i64>,
    pub worker: Option<Worker>,
    /// The label writer (its own thread and connection); `None`: label writes are synchronous.
    pub writer: Option<super::writer::LabelWriter>,
    /// Quit was asked for again while label changes were pending: quit without waiting.
    pub force_quit: bool,
    /// The segment view fills the screen (list hidden).
    pub expanded: bool,
    pub colormap: ColorMap,
    pub areas: Areas,
    pub quit: bool,
    /// Last measured segment-switch time (selection to spectrogram ready), ms.
    pub last_switch_ms: Option<f64>,
    /// The research screens (threshold view, disagreement browser, jobs pane).
    pub research: super::research::Research,
}

impl App {
    /// Build the app on a workspace (annotator, gold policy and auto-play from `config`).
    /// Opens the store and loads the segment index.
    pub fn new(
        ws: Workspace,
        config: &Config,
        keymap: Keymap,
        diagnostics: Vec<Diagnostic>,
        playback: Playback,
        worker: Option<Worker>,
    ) -> anyhow::Result<App> {
        let annotator = config.annotator.as_str();
        let mut store = ws.open_store()?;
        // Jobs left `running` by a process that is gone were marked interrupted when the store was
        // opened (by whichever dams process opened it first, see `crate::recovery`).
        let interrupted = crate::recovery::take_interrupted(&ws, &mut store);
        let runner = crate::jobs::JobRunner::new(ws.db_path());
        let annotator_id = store.annotator_id(annotator)?;
        let index = SegmentIndex::load(&store, annotator_id)?;
        let mode = if diagnostics.is_empty() { Mode::Normal } else { Mode::Diagnostics };
        let teachers = crate::teachers::OpenContext::for_workspace(&crate::config::Dirs::get(), Some(&ws));
        let mut app = App {
            ws,
            store,
            annotator: annotator.to_string(),
            annotator_id,
            teachers,
            allow_any_split: config.allow_gold_on_all_splits,
            index,
            cursor: 0,
            offset: 0,
            keymap,
            diagnostics,
            mode,
            message: String::new(),
            playback,
            autoplay: config.autoplay,
            loop_in: None,
            current: None,
            cache: HashMap::new(),
            cache_order: Vec::new(),
            worker,
            writer: None,
            force_quit: false,
            expanded: false,
            colormap: ColorMap::default(),
            areas: Areas::default(),
            quit: false,
            last_switch_ms: None,
            research: super::research::Research::new(runner),
        };
        if interrupted > 0 {
            app.message = format!("{interrupted} job(s) of an earlier session were interrupted (J shows them)");
        }
        app.poll_playback();
        app.select(0);
        Ok(app)
    }

    pub fn current_id(&self) -> Option<i64> {
        self.current.as_ref().map(|c| c.segment.id)
    }

    fn report(&mut self, e: impl std::fmt::Display) {
        self.message = format!("error: {e}");
    }

    // ------------------------------------------------------------------ selection

    /// Select the segment at view position `pos` (clamped): load its details and ask the worker
    /// for it and its neighbours.
    pub fn select(&mut self, pos: usize) {
        let n = self.index.view_len();
        if n == 0 {
            self.cursor = 0;
            self.current = None;
            self.playback.load(Arc::new(Vec::new()));
            return;
        }
        let pos = pos.min(n - 1);
        self.cursor = pos;
        let Some((_, row)) = self.index.view_row(pos) else { return };
        let id = row.id;
        if self.current_id() == Some(id) {
            return;
        }
        match self.load_current(id) {
            Ok(c) => {
                self.current = Some(c);
                self.overlay_pending();
            }
            Err(e) => {
                self.current = None;
                self.report(e);
            }
        }
        self.loop_in = None;
        self.playback.load(Arc::new(Vec::new()));
        if let Some(a) = self.cache.get(&id).cloned() {
            self.install_analysis(a);
        }
        self.request_analyses();
    }

    fn load_current(&self, id: i64) -> Result<Current, StoreError> {
        let segment = self.store.segment(id)?;
        let (gold, review) = self.store.gold(id, self.annotator_id)?;
        let note = self.store.note(id, self.annotator_id)?;
        let mut scores = Vec::new();
        for (teacher, run, s) in self.store.segment_scores(id)? {
            let th: [Option<Threshold>; 3] = self.store.thresholds(&teacher)?;
            let thresholds = th.map(|t| t.and_then(|t| t.value));
            scores.push(TeacherScores { teacher, run_id: run, scores: s, thresholds });
        }
        Ok(Current {
            stats: self.store.stats(id)?,
            neighbours: self.store.neighbours(id)?,
            segment,
            gold,
            review,
            note,
            scores,
            analysis: None,
            analysis_error: None,
            selected_at: Instant::now(),
        })
    }

    fn request_analyses(&mut self) {
        let Some(worker) = &self.worker else { return };
        let mut want = Vec::new();
        for d in [0isize, 1, -1, 2] {
            let p = self.cursor as isize + d;
            if p < 0 {
                continue;
            }
            if let Some((_, r)) = self.index.view_row(p as usize)
                && !self.cache.contains_key(&r.id)
            {
                // Containment by the real file: a symlink out of the data root is never read.
                match self.ws.resolve_data_path(self.index.path(r)) {
                    Ok(path) => want.push((r.id, path)),
                    Err(e) => {
                        let id = r.id;
                        if let Some(c) = self.current.as_mut().filter(|c| c.segment.id == id) {
                            c.analysis_error = Some(e.to_string());
                        }
                    }
                }
            }
        }
        if !want.is_empty() {
            worker.request(want);
        }
    }

    fn install_analysis(&mut self, a: Arc<Analysis>) {
        let autoplay_now = self.autoplay;
        if let Some(c) = &mut self.current
            && c.segment.id == a.id
            && c.analysis.is_none()
        {
            self.playback.load(a.samples.clone());
            self.last_switch_ms = Some(c.selected_at.elapsed().as_secs_f64() * 1e3);
            let wanted = self.research.play_when_ready == Some(a.id);
            c.analysis = Some(a);
            if wanted {
                self.research.play_when_ready = None;
            }
            if autoplay_now || wanted {
                self.playback.play();
            }
        }
    }

    /// Take finished analyses from the worker (non-blocking). Returns true if anything changed.
    pub fn poll_worker(&mut self) -> bool {
        let mut changed = false;
        while let Some((id, result)) = self.worker.as_ref().and_then(|w| w.try_recv()) {
            changed = true;
            match result {
                Ok(a) => {
                    self.cache.insert(id, a.clone());
                    self.cache_order.retain(|&x| x != id);
                    self.cache_order.push(id);
                    while self.cache_order.len() > CACHE {
                        let old = self.cache_order.remove(0);
                        if Some(old) != self.current_id() {
                            self.cache.remove(&old);
                        }
                    }
                    self.install_analysis(a);
                }
                Err(e) => {
                    if let Some(c) = &mut self.current
                        && c.segment.id == id
                    {
                        c.analysis_error = Some(e);
                    }
                }
            }
        }
        changed
    }

    /// Pick up news from the audio thread; a missing device is announced in the message line.
    pub fn poll_playback(&mut self) -> bool {
        let changed = self.playback.poll();
        if let Output::None(reason) = self.playback.output()
            && (self.message.is_empty() || changed)
        {
            self.message = format!("no audio output: {reason}");
        }
        changed
    }

    // ------------------------------------------------------------------ keys

    /// Handle one key press. Label changes are committed before this returns.
    pub fn on_key(&mut self, key: Key) {
        let text_mode = match &self.mode {
            Mode::Search { buf } => Some((true, buf.clone())),
            Mode::Note { buf } => Some((false, buf.clone())),
            _ => None,
        };
        if let Some((is_search, mut buf)) = text_mode {
            match key.code {
                KeyCode::Esc => {
                    if is_search {
                        self.set_text_filter(String::new());
                    }
                    self.mode = Mode::Normal;
                }
                KeyCode::Enter => {
                    self.mode = Mode::Normal;
                    if is_search { self.set_text_filter(buf) } else { self.save_note(&buf) }
                }
                KeyCode::Backspace | KeyCode::Char(_) => {
                    match key.code {
                        KeyCode::Char(c) if !key.ctrl && !key.alt => buf.push(c),
                        KeyCode::Backspace => {
                            buf.pop();
                        }
                        _ => return,
                    }
                    if is_search {
                        self.set_text_filter(buf.clone());
                        self.mode = Mode::Search { buf };
                    } else {
                        self.mode = Mode::Note { buf };
                    }
                }
                _ => {}
            }
            return;
        }
        if self.mode == Mode::Diagnostics {
            self.mode = Mode::Normal;
            return;
        }
        let in_help = matches!(self.mode, Mode::Help { .. });
        if !in_help && self.research_key(key) {
            return;
        }
        if let Some(action) = self.keymap.lookup(key, in_help) {
            self.run(action);
        } else if in_help && key.code == KeyCode::Esc {
            self.mode = Mode::Normal;
        }
    }

    pub fn page(&self) -> usize {
        (self.areas.list.3 as usize).max(1)
    }

    /// Run an action (keys, benchmarks and tests all come through here).
    pub fn run(&mut self, action: Action) {
        use Action::*;
        match action {
            Quit => {
                self.force_quit = self.quit;
                self.quit = true;
            }
            Help => self.mode = Mode::Help { scroll: 0 },
            CloseHelp => self.mode = Mode::Normal,
            ScrollDown => {
                if let Mode::Help { scroll } = &mut self.mode {
                    *scroll = scroll.saturating_add(1);
                }
            }
            ScrollUp => {
                if let Mode::Help { scroll } = &mut self.mode {
                    *scroll = scroll.saturating_sub(1);
                }
            }
            ToggleLayout => self.expanded = !self.expanded,
            CycleColormap => {
                self.colormap = self.colormap.next();
                self.message = format!("colour map {}", self.colormap.name());
            }
            MoveDown => self.select(self.cursor + 1),
            MoveUp => self.select(self.cursor.saturating_sub(1)),
            PageDown => self.select(self.cursor + self.page()),
            PageUp => self.select(self.cursor.saturating_sub(self.page())),
            First => self.select(0),
            Last => self.select(self.index.view_len().saturating_sub(1)),
            Search => self.mode = Mode::Search { buf: self.index.filter().text.clone() },
            CycleSplitFilter => {
                let mut f = self.index.filter().clone();
                f.split = SegmentIndex::next_split(f.split);
                self.apply_filter(f);
            }
            CycleSourceFilter => {
                let mut f = self.index.filter().clone();
                let n = self.index.sources().len() as u16;
                f.source = match f.source {
                    None if n > 0 => Some(0),
                    Some(s) if s + 1 < n => Some(s + 1),
                    _ => None,
                };
                self.apply_filter(f);
            }
            CycleLabeledFilter => {
                let mut f = self.index.filter().clone();
                f.labeled = match f.labeled {
                    Labeled::Any => Labeled::Unlabeled,
                    Labeled::Unlabeled => Labeled::Labeled,
                    Labeled::Labeled => Labeled::Any,
                };
                self.apply_filter(f);
            }
            ToggleReviewFilter => {
                let mut f = self.index.filter().clone();
                f.review_only = !f.review_only;
                self.apply_filter(f);
            }
            ClearFilters => self.apply_filter(Filter::default()),
            SortNext | SortPrev => {
                let cols = self.index.columns();
                let s = self.index.sort();
                let i = cols.iter().position(|&c| c == s.column).unwrap_or(0);
                let j = if action == SortNext { (i + 1) % cols.len() } else { (i + cols.len() - 1) % cols.len() };
                self.apply_sort(Sort { column: cols[j], descending: s.descending });
            }
            SortReverse => {
                let s = self.index.sort();
                self.apply_sort(Sort { descending: !s.descending, ..s });
            }
            PlayPause => {
                self.playback.toggle();
                if let Output::None(reason) = self.playback.output() {
                    self.message = format!("no audio output: {reason}");
                }
            }
            SeekForward => self.playback.seek_by(1.0),
            SeekBack => self.playback.seek_by(-1.0),
            SeekForwardLong => self.playback.seek_by(5.0),
            SeekBackLong => self.playback.seek_by(-5.0),
            JumpStart => {
                let start = self.playback.loop_span().filter(|_| self.playback.looping()).map(|s| s.0).unwrap_or(0.0);
                self.playback.seek_to(start);
            }
            ToggleLoop => {
                let on = !self.playback.looping();
                self.playback.set_looping(on);
                self.message = match (on, self.playback.loop_span()) {
                    (false, _) => "loop off".into(),
                    (true, Some((a, b))) => format!("looping {a:.1}–{b:.1} s"),
                    (true, None) => "looping the segment".into(),
                };
            }
            LoopIn => {
                let p = self.playback.position();
                self.loop_in = Some(p);
                self.playback.set_loop_span(None);
                self.message = format!("span start {p:.1} s (mark its end with {})", self.keymap.keys_for(LoopOut));
            }
            LoopOut => {
                let p = self.playback.position();
                match self.loop_in {
                    Some(a) if p > a + 0.05 => {
                        self.playback.set_loop_span(Some((a, p)));
                        self.playback.set_looping(true);
                        self.playback.seek_to(a);
                        self.message = format!("looping {a:.1}–{p:.1} s");
                    }
                    _ => self.message = "mark the span start first, before the playhead".into(),
                }
            }
            SpeedUp | SpeedDown => {
                let d = if action == SpeedUp { 0.25 } else { -0.25 };
                self.playback.set_speed(self.playback.speed() + d);
                self.message = format!("speed {:.2}× (plain rate change: pitch shifts)", self.playback.speed());
            }
            VolumeUp | VolumeDown => {
                let d = if action == VolumeUp { 0.1 } else { -0.1 };
                self.playback.set_volume(self.playback.volume() + d);
                self.message = format!("volume {:.0}%", self.playback.volume() * 100.0);
            }
            ToggleAutoplay => {
                self.autoplay = !self.autoplay;
                self.message = format!("auto-play on next: {}", if self.autoplay { "on" } else { "off" });
            }
            ToggleSpeech => self.toggle_class(Class::Speech),
            ToggleMusic => self.toggle_class(Class::Music),
            ToggleNoise => self.toggle_class(Class::Noise),
            CommitNext => {
                if let Some(c) = &self.current
                    && c.gold.is_none()
                {
                    // Commit "none of the three" explicitly.
                    let review = c.review;
                    if !self.write_label(Some(LabelSet::default()), review) {
                        return;
                    }
                }
                self.select(self.cursor + 1);
                if self.autoplay {
                    self.playback.play();
                }
            }
            ToggleReview => {
                if let Some(c) = &self.current {
                    let (g, r) = (c.gold, !c.review);
                    self.write_label(g, r);
                }
            }
            ClearLabel => {
                if let Some(c) = &self.current {
                    let r = c.review;
                    self.write_label(None, r);
                }
            }
            EditNote => {
                if let Some(c) = &self.current {
                    self.mode = Mode::Note { buf: c.note.clone().unwrap_or_default() };
                }
            }
            Undo | Redo => self.undo_redo(action == Undo),
            ShowThresholds
            | ShowDisagreements
            | ShowJobs
            | ShowPrompts
            | ShowRounds
            | EditPrompt
            | TauUp
            | TauDown
            | CycleAdapt
            | CycleScoring
            | ToggleBackground
            | SavePrompts
            | Back
            | ItemDown
            | ItemUp
            | OpenItem
            | ThresholdUp
            | ThresholdDown
            | ThresholdUpCoarse
            | ThresholdDownCoarse
            | NextTeacher
            | PrevTeacher
            | NextClass
            | CalibratePrecision
            | CalibrateQuantile
            | CalibrateF1
            | TargetUp
            | TargetDown
            | QuantileUp
            | QuantileDown
            | SaveThreshold
            | CycleOrder
            | CycleClassFilter
            | CycleSplitFilterQueue
            | NewScoreJob
            | NewPseudoJob
            | NewTrainJob
            | OpenResults
            | CancelJob => self.run_research(action),
        }
    }

    fn apply_filter(&mut self, f: Filter) {
        let keep = self.current_id();
        self.index.set_filter(f);
        self.reselect(keep);
    }

    fn apply_sort(&mut self, s: Sort) {
        let keep = self.current_id();
        self.index.set_sort(s);
        self.reselect(keep);
        let col = s.column.title(&self.index);
        self.message = format!("sorted by {col} {}", if s.descending { "↓" } else { "↑" });
    }

    fn set_text_filter(&mut self, text: String) {
        if self.index.filter().text == text {
            return;
        }
        let mut f = self.index.filter().clone();
        f.text = text;
        self.apply_filter(f);
    }

    /// After a view change keep the same segment selected if it is still visible.
    fn reselect(&mut self, keep: Option<i64>) {
        let pos = keep.and_then(|id| self.index.view_position(id)).unwrap_or(0);
        if keep.is_some() && self.index.view_position(keep.unwrap_or(0)).is_none() {
            self.current = None;
        }
        self.select(pos);
        self.offset = self.offset.min(self.cursor);
    }

    // ------------------------------------------------------------------ labels

    fn toggle_class(&mut self, class: Class) {
        let Some(c) = &self.current else { return };
        let mut l = c.gold.unwrap_or_default();
        l.toggle(class);
        let r = c.review;
        self.write_label(Some(l), r);
    }

    /// Commit a label change (one transaction, durable on return). Returns false if refused.
    fn write_label(&mut self, labels: Option<LabelSet>, review: bool) -> bool {
        if self.writer.is_some() {
            return self.write_label_async(labels, review);
        }
        let Some(c) = &mut self.current else { return false };
        let id = c.segment.id;
        match self.store.set_gold(id, self.annotator_id, labels, review, self.allow_any_split) {
            Ok(()) => {
                c.gold = labels;
                c.review = review;
                self.index.set_label_state(id, labels, review);
                self.message = match labels {
                    Some(l) => format!(
                        "saved {} = {}{}",
                        c.segment.file_name(),
                        describe(l),
                        if review { " (needs review)" } else { "" }
                    ),
                    None => format!("cleared {}{}", c.segment.file_name(), if review { " (needs review)" } else { "" }),
                };
                true
            }
            Err(e) => {
                self.report(e);
                false
            }
        }
    }

    fn undo_redo(&mut self, undo: bool) {
        if self.writer.is_some() {
            return self.undo_redo_async(undo);
        }
        let r = if undo { self.store.undo(self.annotator_id) } else { self.store.redo(self.annotator_id) };
        match r {
            Ok(Some(ch)) => {
                self.index.set_label_state(ch.segment_id, ch.labels, ch.needs_review);
                if let Some(c) = &mut self.current
                    && c.segment.id == ch.segment_id
                {
                    c.gold = ch.labels;
                    c.review = ch.needs_review;
                }
                let name = self.index.by_id(ch.segment_id).map(|r| self.index.path(r).to_string()).unwrap_or_default();
                let what = ch.labels.map(describe).unwrap_or_else(|| "no label".into());
                self.message = format!("{} {name}: now {what}", if undo { "undid" } else { "redid" });
                // Jump to the segment that changed, if it is in the view.
                if self.current_id() != Some(ch.segment_id)
                    && let Some(p) = self.index.view_position(ch.segment_id)
                {
                    self.select(p);
                }
            }
            Ok(None) => self.message = format!("nothing to {}", if undo { "undo" } else { "redo" }),
            Err(e) => self.report(e),
        }
    }

    fn save_note(&mut self, text: &str) {
        if self.writer.is_some() {
            return self.save_note_async(text);
        }
        let Some(c) = &mut self.current else { return };
        let id = c.segment.id;
        match self.store.set_note(id, self.annotator_id, text) {
            Ok(()) => {
                let t = text.trim();
                c.note = (!t.is_empty()).then(|| text.to_string());
                self.index.set_note_flag(id, !t.is_empty());
                self.message = if t.is_empty() { "note removed".into() } else { "note saved".into() };
            }
            Err(e) => self.report(e),
        }
    }

    // ------------------------------------------------------------------ mouse

    /// A left click at a cell: select a list row, or seek in the spectrogram.
    pub fn on_click(&mut self, x: u16, y: u16) {
        let (ly, lx, lw, lh) = self.areas.list;
        if !self.expanded && y >= ly && y < ly + lh && x >= lx && x < lx + lw {
            let pos = self.offset + (y - ly) as usize;
            if pos < self.index.view_len() {
                self.select(pos);
            }
            return;
        }
        let (sx, sy, sw, sh) = self.areas.spec;
        if sw > 0 && x >= sx && x < sx + sw && y >= sy && y < sy + sh {
            let dur = self.playback.duration();
            self.playback.seek_to((x - sx) as f64 / sw as f64 * dur);
        }
    }
}

/// `speech+music`, or `none` for an empty set.
pub fn describe(l: LabelSet) -> String {
    let names: Vec<&str> = crate::labels::CLASSES.iter().filter(|&&c| l.get(c)).map(|c| c.name()).collect();
    if names.is_empty() { "none".into() } else { names.join("+") }
}

/// Keep the cursor inside the visible window of `height` rows.
pub fn scroll_to(offset: usize, cursor: usize, height: usize) -> usize {
    let h = height.max(1);
    if cursor < offset {
        cursor
    } else if cursor >= offset + h {
        cursor + 1 - h
    } else {
        offset
    }
}

/// Used by `Column` titles in the header.
pub fn column_title(index: &SegmentIndex, c: Column) -> String {
    c.title(index)
}
