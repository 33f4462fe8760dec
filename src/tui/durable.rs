//! The App's side of the label writer ([`super::writer`]): show a change at once as pending,
//! hand it over, and mark it durable (`saved ...`) when the writer reports the commit.

use crate::labels::LabelSet;
use crate::store::StoreError;

use super::app::{App, describe};
use super::writer::{LabelWriter, Op, Outcome};

impl App {
    /// Send label changes through a writer thread (the interactive TUI does; tests and benchmarks
    /// that drive the App directly may write synchronously instead).
    pub fn start_writer(&mut self) -> Result<(), StoreError> {
        let w = LabelWriter::start(self.store.path(), self.annotator_id, self.allow_any_split)?;
        self.writer = Some(w);
        Ok(())
    }

    /// Label changes handed over and not yet committed.
    pub fn writes_pending(&self) -> usize {
        self.writer.as_ref().map_or(0, |w| w.pending().len())
    }

    /// The status-bar text while changes are pending: how many, and how long the oldest waited.
    pub fn write_status(&self) -> Option<String> {
        let w = self.writer.as_ref()?;
        let (waited, retries) = w.waiting()?;
        let n = w.pending().len();
        let s = waited.as_secs_f64();
        Some(if retries > 0 && s >= 0.2 {
            format!(" {n} label change(s) pending, database busy {s:.1} s ")
        } else {
            format!(" {n} label change(s) pending ")
        })
    }

    /// The pending changes, described (for the quit message when the user does not wait).
    pub fn describe_pending(&self) -> Vec<String> {
        let Some(w) = &self.writer else { return Vec::new() };
        w.pending()
            .iter()
            .map(|p| match &p.op {
                Op::Gold { segment_id, labels, review } => format!(
                    "{}: {}{}",
                    self.segment_name(*segment_id),
                    labels.map(describe).unwrap_or_else(|| "no label".into()),
                    if *review { " (needs review)" } else { "" }
                ),
                Op::Note { segment_id, text } => format!("{}: note {text:?}", self.segment_name(*segment_id)),
                Op::Undo => "undo".into(),
                Op::Redo => "redo".into(),
            })
            .collect()
    }

    fn segment_name(&self, id: i64) -> String {
        self.index.by_id(id).map(|r| self.index.path(r).to_string()).unwrap_or_else(|| format!("segment #{id}"))
    }

    /// Show the change at once and hand it to the writer. Refuses (like the store would) gold on a
    /// split that does not allow it, so the screen never shows a label that will not be stored.
    pub(super) fn write_label_async(&mut self, labels: Option<LabelSet>, review: bool) -> bool {
        let Some(c) = &mut self.current else { return false };
        if labels.is_some() && !self.allow_any_split && !c.segment.split.allows_gold_by_default() {
            self.message = format!("error: {}", StoreError::GoldNotAllowed(c.segment.split));
            return false;
        }
        let id = c.segment.id;
        let name = c.segment.file_name().to_string();
        c.gold = labels;
        c.review = review;
        self.index.set_label_state(id, labels, review);
        let what = labels.map(describe).unwrap_or_else(|| "no label".into());
        if let Some(w) = &mut self.writer {
            w.submit(Op::Gold { segment_id: id, labels, review });
        }
        self.message = format!("{name} = {what}{} · writing…", if review { " (needs review)" } else { "" });
        true
    }

    pub(super) fn undo_redo_async(&mut self, undo: bool) {
        if let Some(w) = &mut self.writer {
            w.submit(if undo { Op::Undo } else { Op::Redo });
            self.message = format!("{} · writing…", if undo { "undo" } else { "redo" });
        }
    }

    pub(super) fn save_note_async(&mut self, text: &str) {
        let Some(c) = &mut self.current else { return };
        let id = c.segment.id;
        let t = text.trim();
        c.note = (!t.is_empty()).then(|| text.to_string());
        self.index.set_note_flag(id, !t.is_empty());
        if let Some(w) = &mut self.writer {
            w.submit(Op::Note { segment_id: id, text: text.to_string() });
        }
        self.message = "note · writing…".into();
    }

    /// After loading a segment from the store: show its pending change, if any, instead.
    pub(super) fn overlay_pending(&mut self) {
        let (Some(w), Some(c)) = (&self.writer, &mut self.current) else { return };
        if let Some((labels, review)) = w.pending_gold(c.segment.id) {
            c.gold = labels;
            c.review = review;
        }
    }

    /// Take the writer's reports (non-blocking). Returns true if anything changed.
    pub fn poll_writes(&mut self) -> bool {
        let Some(w) = &mut self.writer else { return false };
        let done = w.poll();
        let changed = !done.is_empty();
        for (o, op) in done {
            self.on_write_done(o, op);
        }
        changed
    }

    fn on_write_done(&mut self, o: Outcome, op: Op) {
        match (o, op) {
            (Outcome::Committed { .. }, Op::Gold { segment_id, labels, review }) => {
                let name = self.segment_name(segment_id);
                let name = name.rsplit('/').next().unwrap_or(&name).to_string();
                self.message = match labels {
                    Some(l) => format!("saved {name} = {}{}", describe(l), if review { " (needs review)" } else { "" }),
                    None => format!("cleared {name}{}", if review { " (needs review)" } else { "" }),
                };
            }
            (Outcome::Committed { seq, change }, op @ (Op::Undo | Op::Redo)) => {
                let undo = op == Op::Undo;
                let Some(ch) = change else {
                    self.message = format!("nothing to {}", if undo { "undo" } else { "redo" });
                    return;
                };
                // A change of that segment made after the undo is newer: the screen keeps it.
                let newer = self.writer.as_ref().is_some_and(|w| w.newer_gold_pending(ch.segment_id, seq));
                if !newer {
                    self.index.set_label_state(ch.segment_id, ch.labels, ch.needs_review);
                    if let Some(c) = &mut self.current
                        && c.segment.id == ch.segment_id
                    {
                        c.gold = ch.labels;
                        c.review = ch.needs_review;
                    }
                }
                let name = self.segment_name(ch.segment_id);
                let what = ch.labels.map(describe).unwrap_or_else(|| "no label".into());
                self.message = format!("{} {name}: now {what}", if undo { "undid" } else { "redid" });
                if self.current_id() != Some(ch.segment_id)
                    && let Some(p) = self.index.view_position(ch.segment_id)
                {
                    self.select(p);
                }
            }
            (Outcome::Committed { .. }, Op::Note { text, .. }) => {
                self.message = if text.trim().is_empty() { "note removed".into() } else { "note saved".into() };
            }
            (Outcome::Refused { error, .. }, op) => {
                // Show what the store holds again (plus any newer pending change).
                if let Op::Gold { segment_id, .. } = op {
                    let stored = self.store.gold(segment_id, self.annotator_id).unwrap_or((None, false));
                    let shown = self.writer.as_ref().and_then(|w| w.pending_gold(segment_id)).unwrap_or(stored);
                    self.index.set_label_state(segment_id, shown.0, shown.1);
                    if let Some(c) = &mut self.current
                        && c.segment.id == segment_id
                    {
                        c.gold = shown.0;
                        c.review = shown.1;
                    }
                }
                self.message = format!("error: not saved: {error}");
            }
        }
    }

    /// Quitting with changes still pending and the user not waiting: stop the writer without
    /// waiting for it and return what was not written.
    pub fn abandon_writes(&mut self) -> Vec<String> {
        let lost = self.describe_pending();
        if let Some(w) = self.writer.take() {
            w.abandon();
        }
        lost
    }
}
