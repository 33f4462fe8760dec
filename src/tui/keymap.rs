//! Key bindings: presets under `keymaps/` (embedded in the binary) plus the user's
//! `keymap.toml`, merged, with every problem reported by file and line.
//!
//! A keymap file is a list of `{ on, run, desc }` entries per context:
//! ```toml
//! [[list]]
//! on = "j"
//! run = "move_down"
//! desc = "next segment"
//! ```
//! Contexts `app`, `list`, `player` and `label` are active together in the main screen (they only
//! group the help popup), so a key may be bound once across them; `help` is active while the help
//! popup is open. A user entry replaces the preset's binding of the same key in the same scope;
//! `run = "noop"` unbinds a key. This module knows nothing of the terminal: the TUI converts its
//! key events into [`Key`].

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

/// The keymap presets shipped with dams.
pub const PRESETS: [(&str, &str); 2] =
    [("default", include_str!("../../keymaps/default.toml")), ("vim", include_str!("../../keymaps/vim.toml"))];

/// A named key without modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyCode {
    Char(char),
    Enter,
    Esc,
    Tab,
    BackTab,
    Backspace,
    Delete,
    Insert,
    Up,
    Down,
    Left,
    Right,
    PageUp,
    PageDown,
    Home,
    End,
    F(u8),
}

/// A key press: a code plus Ctrl/Alt (Shift is part of the character for printable keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
    pub alt: bool,
}

impl Key {
    pub const fn plain(code: KeyCode) -> Key {
        Key { code, ctrl: false, alt: false }
    }
    pub const fn ch(c: char) -> Key {
        Key::plain(KeyCode::Char(c))
    }
    pub const fn ctrl(c: char) -> Key {
        Key { code: KeyCode::Char(c), ctrl: true, alt: false }
    }
}

const NAMED: [(&str, KeyCode); 16] = [
    ("Enter", KeyCode::Enter),
    ("Esc", KeyCode::Esc),
    ("Tab", KeyCode::Tab),
    ("BackTab", KeyCode::BackTab),
    ("Backspace", KeyCode::Backspace),
    ("Delete", KeyCode::Delete),
    ("Insert", KeyCode::Insert),
    ("Up", KeyCode::Up),
    ("Down", KeyCode::Down),
    ("Left", KeyCode::Left),
    ("Right", KeyCode::Right),
    ("PageUp", KeyCode::PageUp),
    ("PageDown", KeyCode::PageDown),
    ("Home", KeyCode::Home),
    ("End", KeyCode::End),
    ("Space", KeyCode::Char(' ')),
];

impl std::str::FromStr for Key {
    type Err = String;

    /// `j`, `J`, `?`, `<Space>`, `<Enter>`, `<C-r>`, `<A-x>`, `<S-Tab>`, `<F5>`.
    fn from_str(s: &str) -> Result<Key, String> {
        let mut chars = s.chars();
        if let (Some(c), None) = (chars.next(), chars.next()) {
            if c.is_control() {
                return Err(format!("invalid key {s:?}"));
            }
            return Ok(Key::ch(c));
        }
        let inner = s
            .strip_prefix('<')
            .and_then(|r| r.strip_suffix('>'))
            .ok_or_else(|| format!("invalid key {s:?}: write one character, or a name in <>, e.g. <Enter>, <C-r>"))?;
        let mut key = Key::ch(' ');
        let mut shift = false;
        let mut rest = inner;
        loop {
            let lower = rest.get(..2).map(|p| p.to_ascii_uppercase());
            match lower.as_deref() {
                Some("C-") if rest.len() > 2 => key.ctrl = true,
                Some("A-") if rest.len() > 2 => key.alt = true,
                Some("S-") if rest.len() > 2 => shift = true,
                _ => break,
            }
            rest = &rest[2..];
        }
        let mut rc = rest.chars();
        key.code = if let (Some(c), None) = (rc.next(), rc.next()) {
            KeyCode::Char(if shift { c.to_ascii_uppercase() } else { c })
        } else if let Some(n) =
            rest.strip_prefix('F').and_then(|n| n.parse::<u8>().ok()).filter(|n| (1..=12).contains(n))
        {
            KeyCode::F(n)
        } else if let Some((_, code)) = NAMED.iter().find(|(name, _)| name.eq_ignore_ascii_case(rest)) {
            match (*code, shift) {
                (KeyCode::Tab, true) => KeyCode::BackTab,
                (_, true) => return Err(format!("invalid key {s:?}: Shift only combines with Tab or a character")),
                (c, false) => c,
            }
        } else {
            return Err(format!("invalid key {s:?}: unknown key name {rest:?}"));
        };
        // Ctrl-letters arrive lowercase from terminals.
        if key.ctrl
            && let KeyCode::Char(c) = key.code
        {
            key.code = KeyCode::Char(c.to_ascii_lowercase());
        }
        Ok(key)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.code {
            KeyCode::Char(' ') => "Space".to_string(),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::F(n) => format!("F{n}"),
            KeyCode::BackTab => "S-Tab".to_string(),
            other => NAMED.iter().find(|(_, c)| *c == other).map(|(n, _)| n.to_string()).unwrap_or_default(),
        };
        if !self.ctrl && !self.alt {
            return f.write_str(&name);
        }
        let mut s = String::new();
        if self.ctrl {
            s.push_str("C-");
        }
        if self.alt {
            s.push_str("A-");
        }
        write!(f, "<{s}{name}>")
    }
}

/// Everything a key can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    // app
    Quit,
    Help,
    ToggleLayout,
    CycleColormap,
    // list
    MoveDown,
    MoveUp,
    PageDown,
    PageUp,
    First,
    Last,
    Search,
    CycleSplitFilter,
    CycleSourceFilter,
    CycleLabeledFilter,
    ToggleReviewFilter,
    ClearFilters,
    SortNext,
    SortPrev,
    SortReverse,
    // player
    PlayPause,
    SeekForward,
    SeekBack,
    SeekForwardLong,
    SeekBackLong,
    JumpStart,
    ToggleLoop,
    LoopIn,
    LoopOut,
    SpeedUp,
    SpeedDown,
    VolumeUp,
    VolumeDown,
    ToggleAutoplay,
    // label
    ToggleSpeech,
    ToggleMusic,
    ToggleNoise,
    CommitNext,
    ToggleReview,
    EditNote,
    ClearLabel,
    Undo,
    Redo,
    // help
    CloseHelp,
    ScrollDown,
    ScrollUp,
    // screens (app context)
    ShowThresholds,
    ShowDisagreements,
    ShowJobs,
    ShowPrompts,
    ShowRounds,
    // shared by the research screens
    Back,
    ItemDown,
    ItemUp,
    OpenItem,
    // thresholds
    ThresholdUp,
    ThresholdDown,
    ThresholdUpCoarse,
    ThresholdDownCoarse,
    NextTeacher,
    PrevTeacher,
    NextClass,
    CalibratePrecision,
    CalibrateQuantile,
    CalibrateF1,
    TargetUp,
    TargetDown,
    QuantileUp,
    QuantileDown,
    SaveThreshold,
    // disagreements
    CycleOrder,
    CycleClassFilter,
    CycleSplitFilterQueue,
    // jobs
    NewScoreJob,
    NewPseudoJob,
    NewTrainJob,
    OpenResults,
    CancelJob,
    // prompt workbench
    EditPrompt,
    TauUp,
    TauDown,
    CycleAdapt,
    CycleScoring,
    ToggleBackground,
    SavePrompts,
}

/// `(name in keymap files, action)`; `noop` is handled separately.
pub const ACTIONS: &[(&str, Action)] = &[
    ("quit", Action::Quit),
    ("help", Action::Help),
    ("toggle_layout", Action::ToggleLayout),
    ("cycle_colormap", Action::CycleColormap),
    ("move_down", Action::MoveDown),
    ("move_up", Action::MoveUp),
    ("page_down", Action::PageDown),
    ("page_up", Action::PageUp),
    ("first", Action::First),
    ("last", Action::Last),
    ("search", Action::Search),
    ("cycle_split_filter", Action::CycleSplitFilter),
    ("cycle_source_filter", Action::CycleSourceFilter),
    ("cycle_labeled_filter", Action::CycleLabeledFilter),
    ("toggle_review_filter", Action::ToggleReviewFilter),
    ("clear_filters", Action::ClearFilters),
    ("sort_next", Action::SortNext),
    ("sort_prev", Action::SortPrev),
    ("sort_reverse", Action::SortReverse),
    ("play_pause", Action::PlayPause),
    ("seek_forward", Action::SeekForward),
    ("seek_back", Action::SeekBack),
    ("seek_forward_long", Action::SeekForwardLong),
    ("seek_back_long", Action::SeekBackLong),
    ("jump_start", Action::JumpStart),
    ("toggle_loop", Action::ToggleLoop),
    ("loop_in", Action::LoopIn),
    ("loop_out", Action::LoopOut),
    ("speed_up", Action::SpeedUp),
    ("speed_down", Action::SpeedDown),
    ("volume_up", Action::VolumeUp),
    ("volume_down", Action::VolumeDown),
    ("toggle_autoplay", Action::ToggleAutoplay),
    ("toggle_speech", Action::ToggleSpeech),
    ("toggle_music", Action::ToggleMusic),
    ("toggle_noise", Action::ToggleNoise),
    ("commit_next", Action::CommitNext),
    ("toggle_review", Action::ToggleReview),
    ("edit_note", Action::EditNote),
    ("clear_label", Action::ClearLabel),
    ("undo", Action::Undo),
    ("redo", Action::Redo),
    ("close_help", Action::CloseHelp),
    ("scroll_down", Action::ScrollDown),
    ("scroll_up", Action::ScrollUp),
    ("show_thresholds", Action::ShowThresholds),
    ("show_disagreements", Action::ShowDisagreements),
    ("show_jobs", Action::ShowJobs),
    ("show_prompts", Action::ShowPrompts),
    ("show_rounds", Action::ShowRounds),
    ("edit_prompt", Action::EditPrompt),
    ("tau_up", Action::TauUp),
    ("tau_down", Action::TauDown),
    ("cycle_adapt", Action::CycleAdapt),
    ("cycle_scoring", Action::CycleScoring),
    ("toggle_background", Action::ToggleBackground),
    ("save_prompts", Action::SavePrompts),
    ("back", Action::Back),
    ("item_down", Action::ItemDown),
    ("item_up", Action::ItemUp),
    ("open_item", Action::OpenItem),
    ("threshold_up", Action::ThresholdUp),
    ("threshold_down", Action::ThresholdDown),
    ("threshold_up_coarse", Action::ThresholdUpCoarse),
    ("threshold_down_coarse", Action::ThresholdDownCoarse),
    ("next_teacher", Action::NextTeacher),
    ("prev_teacher", Action::PrevTeacher),
    ("next_class", Action::NextClass),
    ("calibrate_precision", Action::CalibratePrecision),
    ("calibrate_quantile", Action::CalibrateQuantile),
    ("calibrate_f1", Action::CalibrateF1),
    ("target_up", Action::TargetUp),
    ("target_down", Action::TargetDown),
    ("quantile_up", Action::QuantileUp),
    ("quantile_down", Action::QuantileDown),
    ("save_threshold", Action::SaveThreshold),
    ("cycle_order", Action::CycleOrder),
    ("cycle_class_filter", Action::CycleClassFilter),
    ("cycle_queue_split", Action::CycleSplitFilterQueue),
    ("new_score_job", Action::NewScoreJob),
    ("new_pseudo_job", Action::NewPseudoJob),
    ("new_train_job", Action::NewTrainJob),
    ("open_results", Action::OpenResults),
    ("cancel_job", Action::CancelJob),
];

impl Action {
    pub fn name(self) -> &'static str {
        ACTIONS.iter().find(|(_, a)| *a == self).map(|(n, _)| *n).unwrap_or("?")
    }
    pub fn from_name(name: &str) -> Option<Action> {
        ACTIONS.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
    }
}

/// The contexts a keymap file may contain, in help-popup order.
pub const CONTEXTS: [&str; 10] =
    ["app", "list", "player", "label", "thresholds", "disagreements", "jobs", "prompts", "rounds", "help"];

/// The screens with their own key scope (besides the main screen and the help popup).
pub const SCREEN_SCOPES: [&str; 5] = ["thresholds", "disagreements", "jobs", "prompts", "rounds"];

/// Which contexts are active at the same time (a key may be bound once per scope). The research
/// screens each have their own scope; keys they leave unbound fall back to the `app` context.
fn scope_of(context: &str) -> &'static str {
    match context {
        "help" => "help",
        "thresholds" => "thresholds",
        "disagreements" => "disagreements",
        "jobs" => "jobs",
        "prompts" => "prompts",
        "rounds" => "rounds",
        _ => "main",
    }
}

/// One live binding.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub context: &'static str,
    pub key: Key,
    pub action: Action,
    pub desc: String,
    /// `file:line` the binding came from.
    pub origin: String,
}

/// A problem found while loading keymaps: always with file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    on: Spanned<String>,
    run: Spanned<String>,
    #[serde(default)]
    desc: Option<String>,
}

/// The merged, live key bindings.
#[derive(Debug, Clone, Default)]
pub struct Keymap {
    bindings: Vec<Binding>,
    index: HashMap<(&'static str, Key), usize>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Parse one keymap file into `(context, key, action or None for noop, desc, line)` entries.
fn parse_file(
    file: &str,
    text: &str,
    diags: &mut Vec<Diagnostic>,
) -> Vec<(&'static str, Key, Option<Action>, String, usize)> {
    let table: HashMap<String, Vec<Entry>> = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(1);
            let msg = e.message().trim().to_string();
            diags.push(Diagnostic { file: file.into(), line, message: format!("not a valid keymap: {msg}") });
            return Vec::new();
        }
    };
    let mut entries: Vec<(&'static str, &Entry)> = Vec::new();
    for (ctx, es) in &table {
        match CONTEXTS.iter().find(|c| **c == ctx.as_str()) {
            Some(c) => entries.extend(es.iter().map(|e| (*c, e))),
            None => {
                let line = es.first().map(|e| line_of(text, e.on.span().start)).unwrap_or(1);
                diags.push(Diagnostic {
                    file: file.into(),
                    line,
                    message: format!("unknown context [[{ctx}]] (known: {})", CONTEXTS.join(", ")),
                });
            }
        }
    }
    // In file order, so "first binding wins" means what it says.
    entries.sort_by_key(|(_, e)| e.on.span().start);
    let mut out = Vec::new();
    {
        for (context, e) in entries {
            let line = line_of(text, e.on.span().start);
            let key = match e.on.get_ref().parse::<Key>() {
                Ok(k) => k,
                Err(m) => {
                    diags.push(Diagnostic { file: file.into(), line, message: m });
                    continue;
                }
            };
            let run = e.run.get_ref().as_str();
            let action = if run == "noop" {
                None
            } else if let Some(a) = Action::from_name(run) {
                Some(a)
            } else {
                diags.push(Diagnostic {
                    file: file.into(),
                    line: line_of(text, e.run.span().start),
                    message: format!("unknown action {run:?} for key {key}"),
                });
                continue;
            };
            let desc = e.desc.clone().unwrap_or_else(|| run.replace('_', " "));
            out.push((context, key, action, desc, line));
        }
    }
    out
}

impl Keymap {
    /// Build a keymap from `(file name, text)` layers, later layers overriding earlier ones.
    /// Problems never abort: the offending entry is skipped and reported.
    pub fn from_layers(layers: &[(&str, &str)]) -> (Keymap, Vec<Diagnostic>) {
        let mut diags = Vec::new();
        let mut bindings: Vec<Binding> = Vec::new();
        for (file, text) in layers {
            // Keys bound in this file so far, per scope, to detect conflicts inside one file.
            let mut seen: HashMap<(&'static str, Key), (usize, Option<Action>)> = HashMap::new();
            for (context, key, action, desc, line) in parse_file(file, text, &mut diags) {
                let scope = scope_of(context);
                if let Some((first_line, first_action)) = seen.get(&(scope, key)) {
                    if *first_action != action {
                        let name = |a: &Option<Action>| a.map(|a| a.name()).unwrap_or("noop");
                        diags.push(Diagnostic {
                            file: file.to_string(),
                            line,
                            message: format!(
                                "key {key} is bound to {} here and to {} at line {first_line}; the first binding wins",
                                name(&action),
                                name(first_action)
                            ),
                        });
                    }
                    continue;
                }
                seen.insert((scope, key), (line, action));
                // Override the earlier layers' binding of this key in the same scope.
                bindings.retain(|b| !(scope_of(b.context) == scope && b.key == key));
                if let Some(action) = action {
                    bindings.push(Binding { context, key, action, desc, origin: format!("{file}:{line}") });
                }
            }
        }
        let index = bindings.iter().enumerate().map(|(i, b)| ((scope_of(b.context), b.key), i)).collect();
        (Keymap { bindings, index }, diags)
    }

    /// The preset `name` with the user's file (if it exists) merged over it.
    pub fn load(preset: &str, user_file: &Path) -> (Keymap, Vec<Diagnostic>) {
        let mut extra = Vec::new();
        let (preset_name, preset_text) = match PRESETS.iter().find(|(n, _)| *n == preset) {
            Some(p) => *p,
            None => {
                extra.push(Diagnostic {
                    file: "config.toml".into(),
                    line: 1,
                    message: format!("unknown keymap preset {preset:?} (known: default, vim); using default"),
                });
                PRESETS[0]
            }
        };
        let preset_file = format!("keymaps/{preset_name}.toml");
        let default_file = format!("keymaps/{}.toml", PRESETS[0].0);
        let user_text = match std::fs::read_to_string(user_file) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                extra.push(Diagnostic {
                    file: user_file.display().to_string(),
                    line: 1,
                    message: format!("cannot read: {e}"),
                });
                None
            }
        };
        let user_name = user_file.display().to_string();
        // Every preset but the default is an overlay of the default preset.
        let mut layers: Vec<(&str, &str)> = vec![(&default_file, PRESETS[0].1)];
        if preset_name != PRESETS[0].0 {
            layers.push((&preset_file, preset_text));
        }
        if let Some(t) = &user_text {
            layers.push((&user_name, t));
        }
        let (km, mut diags) = Keymap::from_layers(&layers);
        extra.append(&mut diags);
        (km, extra)
    }

    /// The action bound to `key` in the main screen, or in the help popup when `in_help`.
    pub fn lookup(&self, key: Key, in_help: bool) -> Option<Action> {
        let scope = if in_help { "help" } else { "main" };
        self.index.get(&(scope, key)).map(|&i| self.bindings[i].action)
    }

    /// The action bound to `key` on a research screen (`thresholds`, `disagreements`, `jobs`):
    /// the screen's own bindings first, then the `app` context (quit, help, screen switches).
    pub fn lookup_screen(&self, screen: &str, key: Key) -> Option<Action> {
        let scope = scope_of(screen);
        if let Some(&i) = self.index.get(&(scope, key)) {
            return Some(self.bindings[i].action);
        }
        self.index.get(&("main", key)).map(|&i| &self.bindings[i]).filter(|b| b.context == "app").map(|b| b.action)
    }

    /// Every live binding (help popup, docs).
    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// The keys bound to an action in one context, or in the `app` context (hints on a screen).
    pub fn keys_in(&self, context: &str, action: Action) -> String {
        let keys: Vec<String> = self
            .bindings
            .iter()
            .filter(|b| b.action == action && (b.context == context || b.context == "app"))
            .map(|b| b.key.to_string())
            .collect();
        keys.join("/")
    }

    /// The keys bound to an action (for hints in the status bar), joined by `/`.
    pub fn keys_for(&self, action: Action) -> String {
        let keys: Vec<String> =
            self.bindings.iter().filter(|b| b.action == action).map(|b| b.key.to_string()).collect();
        keys.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys() {
        assert_eq!("j".parse::<Key>().unwrap(), Key::ch('j'));
        assert_eq!("<Space>".parse::<Key>().unwrap(), Key::ch(' '));
        assert_eq!("<C-r>".parse::<Key>().unwrap(), Key::ctrl('r'));
        assert_eq!("<C-R>".parse::<Key>().unwrap(), Key::ctrl('r'));
        assert_eq!("<S-Tab>".parse::<Key>().unwrap(), Key::plain(KeyCode::BackTab));
        assert_eq!("<enter>".parse::<Key>().unwrap(), Key::plain(KeyCode::Enter));
        assert_eq!("<F5>".parse::<Key>().unwrap(), Key::plain(KeyCode::F(5)));
        assert_eq!("<A-x>".parse::<Key>().unwrap(), Key { code: KeyCode::Char('x'), ctrl: false, alt: true });
        assert!("<Ctl-x>".parse::<Key>().is_err());
        assert!("jj".parse::<Key>().is_err());
        assert!("<S-Up>".parse::<Key>().is_err());
        for s in ["j", "Space", "<C-r>", "Enter", "F5", "S-Tab"] {
            let k: Key =
                if s.len() > 1 && !s.starts_with('<') { format!("<{s}>") } else { s.to_string() }.parse().unwrap();
            assert_eq!(k.to_string(), s);
        }
    }

    #[test]
    fn presets_load_cleanly_with_the_issue_defaults() {
        for (name, text) in PRESETS {
            let file = format!("keymaps/{name}.toml");
            let layers: Vec<(&str, &str)> = if name == "default" {
                vec![(&file, text)]
            } else {
                vec![("keymaps/default.toml", PRESETS[0].1), (&file, text)]
            };
            let (km, diags) = Keymap::from_layers(&layers);
            assert!(diags.is_empty(), "{name}: {diags:?}");
            assert_eq!(km.lookup(Key::ch(' '), false), Some(Action::PlayPause), "{name}");
            assert_eq!(km.lookup(Key::ch('j'), false), Some(Action::MoveDown), "{name}");
            assert_eq!(km.lookup(Key::ch('k'), false), Some(Action::MoveUp), "{name}");
            assert_eq!(km.lookup(Key::ch('1'), false), Some(Action::ToggleSpeech), "{name}");
            assert_eq!(km.lookup(Key::ch('3'), false), Some(Action::ToggleNoise), "{name}");
            assert_eq!(km.lookup(Key::plain(KeyCode::Enter), false), Some(Action::CommitNext), "{name}");
            assert_eq!(km.lookup(Key::ch('u'), false), Some(Action::Undo), "{name}");
            assert_eq!(km.lookup(Key::ctrl('r'), false), Some(Action::Redo), "{name}");
            assert_eq!(km.lookup(Key::ch('/'), false), Some(Action::Search), "{name}");
            assert_eq!(km.lookup(Key::ch('?'), false), Some(Action::Help), "{name}");
            assert_eq!(km.lookup(Key::ch('q'), false), Some(Action::Quit), "{name}");
            assert_eq!(km.lookup(Key::plain(KeyCode::Esc), true), Some(Action::CloseHelp), "{name}");
        }
        let (km, _) = Keymap::from_layers(&[("d", PRESETS[0].1)]);
        assert_eq!(km.lookup(Key::ch('s'), false), Some(Action::ToggleSpeech));
        // vim is an overlay: its own keys, the default's elsewhere, and the keys it removes gone.
        let (vim, diags) = Keymap::load("vim", Path::new("/nonexistent/keymap.toml"));
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(vim.lookup(Key::ctrl('d'), false), Some(Action::PageDown));
        assert_eq!(vim.lookup(Key::ch('w'), false), Some(Action::SeekForwardLong));
        assert_eq!(vim.lookup(Key::ch('l'), false), Some(Action::SeekForward));
        assert_eq!(vim.lookup(Key::plain(KeyCode::PageDown), false), None);
        assert_eq!(vim.lookup(Key::ch('1'), false), Some(Action::ToggleSpeech));
        assert_eq!(km.lookup(Key::plain(KeyCode::Down), false), Some(Action::MoveDown));
    }

    #[test]
    fn user_file_overrides_and_unbinds() {
        let user = "[[label]]\non = \"x\"\nrun = \"toggle_speech\"\n\n[[app]]\non = \"q\"\nrun = \"noop\"\n";
        let (km, diags) = Keymap::from_layers(&[("preset", PRESETS[0].1), ("user.toml", user)]);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(km.lookup(Key::ch('x'), false), Some(Action::ToggleSpeech));
        assert_eq!(km.lookup(Key::ch('q'), false), None);
        // The preset's other bindings survive.
        assert_eq!(km.lookup(Key::ch('1'), false), Some(Action::ToggleSpeech));
        let b = km.bindings().iter().find(|b| b.key == Key::ch('x') && b.context == "label").unwrap();
        assert_eq!(b.origin, "user.toml:2");
    }

    #[test]
    fn reports_unknown_actions_bad_keys_and_conflicts_with_lines() {
        let user = "\
[[label]]
on = \"z\"
run = \"toggle_speech\"

[[player]]
on = \"z\"
run = \"play_pause\"

[[list]]
on = \"w\"
run = \"fly_away\"

[[list]]
on = \"<Ctl-w>\"
run = \"move_down\"

[[bogus]]
on = \"y\"
run = \"quit\"
";
        let (km, diags) = Keymap::from_layers(&[("preset", PRESETS[0].1), ("user.toml", user)]);
        let msgs: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
        assert_eq!(diags.len(), 4, "{msgs:#?}");
        assert!(msgs.iter().any(|m| m.starts_with("user.toml:6: key z is bound to play_pause here and to toggle_speech at line 2")), "{msgs:#?}");
        assert!(msgs.iter().any(|m| m.starts_with("user.toml:11: unknown action \"fly_away\"")), "{msgs:#?}");
        assert!(msgs.iter().any(|m| m.starts_with("user.toml:14: invalid key \"<Ctl-w>\"")), "{msgs:#?}");
        assert!(msgs.iter().any(|m| m.starts_with("user.toml:18: unknown context [[bogus]]")), "{msgs:#?}");
        // The first binding of the conflicting key wins; bad entries are skipped.
        assert_eq!(km.lookup(Key::ch('z'), false), Some(Action::ToggleSpeech));
        assert_eq!(km.lookup(Key::ch('w'), false), None);
    }

    #[test]
    fn malformed_toml_is_reported_with_its_line_and_the_preset_still_works() {
        let user = "[[label]]\non = \"x\"\nrun = toggle_speech\n";
        let (km, diags) = Keymap::from_layers(&[("preset", PRESETS[0].1), ("user.toml", user)]);
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].file, "user.toml");
        assert_eq!(diags[0].line, 3);
        assert_eq!(km.lookup(Key::ch('1'), false), Some(Action::ToggleSpeech));
    }

    #[test]
    fn load_reads_the_user_file_and_reports_unknown_presets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keymap.toml");
        std::fs::write(&path, "[[app]]\non = \"Q\"\nrun = \"quit\"\n").unwrap();
        let (km, diags) = Keymap::load("vim", &path);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(km.lookup(Key::ch('Q'), false), Some(Action::Quit));
        let (_, diags) = Keymap::load("emacs", &dir.path().join("missing.toml"));
        assert_eq!(diags.len(), 1);
        assert!(diags[0].message.contains("unknown keymap preset"));
    }
}
