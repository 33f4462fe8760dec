//! The label writer: every label change of the TUI goes through one writer thread with its own
//! SQLite connection, so a key never waits for the database.
//!
//! - The UI shows a change at once (pending) and hands it to the writer; the writer applies the
//!   changes in the order they were made, each in its own committed transaction, and reports
//!   each commit back (the label is then durable).
//! - A busy database (another process holds the write lock: a long import, `BEGIN IMMEDIATE` in
//!   a sqlite3 shell) is not an error: the writer retries until the change commits. The UI shows
//!   how many changes wait and for how long.
//! - A change the store refuses for good (a segment that was deleted meanwhile) is reported back;
//!   the UI then shows the stored state again. Nothing else is ever written: a key stores exactly
//!   what the screen showed when it was pressed.
//! - Quitting waits until nothing is pending (see [`crate::tui::run`]).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::labels::LabelSet;
use crate::store::{LabelChange, Store, StoreError};

/// One change, in the order the user made it.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Gold { segment_id: i64, labels: Option<LabelSet>, review: bool },
    Note { segment_id: i64, text: String },
    Undo,
    Redo,
}

/// What became of a change.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Committed (durable). Undo/redo carry what they changed (`None`: nothing to undo).
    Committed { seq: u64, change: Option<LabelChange> },
    /// Refused by the store for a reason a retry cannot fix; not written.
    Refused { seq: u64, error: String },
}

/// A change handed to the writer and not yet committed.
#[derive(Debug, Clone)]
pub struct Pending {
    pub seq: u64,
    pub op: Op,
    pub at: Instant,
}

/// Retry pause while the database is busy, after one attempt's polling gave up.
const RETRY_PAUSE: Duration = Duration::from_millis(1);

/// The writer's busy handler: poll for the lock every millisecond for 20 ms, then let the writer
/// loop count a retry. (SQLite's default handler backs off to 25–100 ms sleeps and would miss the
/// short gaps a chunked importer leaves between its transactions.)
fn poll_every_ms(attempt: i32) -> bool {
    std::thread::sleep(Duration::from_millis(1));
    attempt < 20
}

pub struct LabelWriter {
    tx: Option<Sender<(u64, Op)>>,
    rx: Receiver<(Outcome, Duration)>,
    pending: VecDeque<Pending>,
    next_seq: u64,
    /// Failed attempts (busy) of the change the writer is working on.
    retries: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
    /// Time from hand-over to commit of the committed changes (benchmarks).
    pub latencies: Vec<Duration>,
}

fn is_busy(e: &StoreError) -> bool {
    match e {
        StoreError::Sql(rusqlite::Error::SqliteFailure(f, _))
        | StoreError::Open { source: rusqlite::Error::SqliteFailure(f, _), .. } => {
            matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        }
        _ => false,
    }
}

fn apply(
    store: &mut Store,
    annotator_id: i64,
    allow_any_split: bool,
    op: &Op,
) -> Result<Option<LabelChange>, StoreError> {
    match op {
        Op::Gold { segment_id, labels, review } => {
            store.set_gold(*segment_id, annotator_id, *labels, *review, allow_any_split)?;
            Ok(None)
        }
        Op::Note { segment_id, text } => {
            store.set_note(*segment_id, annotator_id, text)?;
            Ok(None)
        }
        Op::Undo => store.undo(annotator_id),
        Op::Redo => store.redo(annotator_id),
    }
}

impl LabelWriter {
    /// Start the writer thread on its own connection to the store at `db`.
    pub fn start(db: &Path, annotator_id: i64, allow_any_split: bool) -> Result<LabelWriter, StoreError> {
        let mut store = Store::open(db)?;
        store.conn_mut().busy_handler(Some(poll_every_ms))?;
        let (tx, req_rx) = mpsc::channel::<(u64, Op)>();
        let (done_tx, rx) = mpsc::channel::<(Outcome, Duration)>();
        let retries = Arc::new(AtomicU64::new(0));
        let r = retries.clone();
        let handle = std::thread::Builder::new()
            .name("dams-label-writer".into())
            .spawn(move || {
                // Ends when the UI drops its sender and every queued change is done.
                while let Ok((seq, op)) = req_rx.recv() {
                    let t0 = Instant::now();
                    r.store(0, Ordering::Relaxed);
                    let outcome = loop {
                        match apply(&mut store, annotator_id, allow_any_split, &op) {
                            Ok(change) => break Outcome::Committed { seq, change },
                            Err(e) if is_busy(&e) => {
                                r.fetch_add(1, Ordering::Relaxed);
                                std::thread::sleep(RETRY_PAUSE);
                            }
                            Err(e) => break Outcome::Refused { seq, error: e.to_string() },
                        }
                    };
                    if done_tx.send((outcome, t0.elapsed())).is_err() {
                        // The UI is gone; keep writing what was queued.
                        continue;
                    }
                }
            })
            .map_err(|e| StoreError::Invalid(format!("cannot start the label writer: {e}")))?;
        Ok(LabelWriter {
            tx: Some(tx),
            rx,
            pending: VecDeque::new(),
            next_seq: 1,
            retries,
            handle: Some(handle),
            latencies: Vec::new(),
        })
    }

    /// Hand a change to the writer; returns its sequence number.
    pub fn submit(&mut self, op: Op) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.push_back(Pending { seq, op: op.clone(), at: Instant::now() });
        if let Some(tx) = &self.tx {
            // The thread only ends when `tx` is dropped, so a send cannot fail while we hold it.
            let _ = tx.send((seq, op));
        }
        seq
    }

    /// Finished changes (non-blocking), in commit order, each with the change it was.
    pub fn poll(&mut self) -> Vec<(Outcome, Op)> {
        let mut out = Vec::new();
        while let Ok((o, took)) = self.rx.try_recv() {
            out.push(self.finish(o, took));
        }
        out
    }

    /// Wait up to `timeout` for the next finished change.
    pub fn wait(&mut self, timeout: Duration) -> Option<(Outcome, Op)> {
        let (o, took) = self.rx.recv_timeout(timeout).ok()?;
        Some(self.finish(o, took))
    }

    fn finish(&mut self, o: Outcome, took: Duration) -> (Outcome, Op) {
        let seq = match &o {
            Outcome::Committed { seq, .. } | Outcome::Refused { seq, .. } => *seq,
        };
        let op = match self.pending.iter().position(|p| p.seq == seq) {
            Some(i) => self.pending.remove(i).map(|p| p.op),
            None => None,
        };
        if matches!(o, Outcome::Committed { .. }) {
            self.latencies.push(took);
        }
        (o, op.unwrap_or(Op::Undo))
    }

    /// Changes not yet committed, oldest first.
    pub fn pending(&self) -> &VecDeque<Pending> {
        &self.pending
    }

    /// How long the oldest pending change has waited, and how many busy retries the current one took.
    pub fn waiting(&self) -> Option<(Duration, u64)> {
        self.pending.front().map(|p| (p.at.elapsed(), self.retries.load(Ordering::Relaxed)))
    }

    /// The newest pending gold change of a segment (what the screen must show for it).
    pub fn pending_gold(&self, segment_id: i64) -> Option<(Option<LabelSet>, bool)> {
        self.pending.iter().rev().find_map(|p| match p.op {
            Op::Gold { segment_id: s, labels, review } if s == segment_id => Some((labels, review)),
            _ => None,
        })
    }

    /// Whether a gold change of `segment_id` newer than `seq` is pending.
    pub fn newer_gold_pending(&self, segment_id: i64, seq: u64) -> bool {
        self.pending.iter().any(|p| p.seq > seq && matches!(p.op, Op::Gold { segment_id: s, .. } if s == segment_id))
    }

    /// Whether an undo or redo is pending (its effect is unknown until it commits).
    pub fn history_pending(&self) -> bool {
        self.pending.iter().any(|p| matches!(p.op, Op::Undo | Op::Redo))
    }
}

impl LabelWriter {
    /// Stop waiting for the writer: it goes on in the background until the process exits.
    pub fn abandon(mut self) {
        self.handle = None;
    }
}

impl Drop for LabelWriter {
    fn drop(&mut self) {
        // Closing the channel lets the thread finish the queue and end; wait for it, so a change
        // handed over is written before the process exits (quitting already waited for them).
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::{LabelSource, Split};
    use crate::store::NewSegment;

    fn store_with(n: usize) -> (tempfile::TempDir, std::path::PathBuf, i64) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("dams.sqlite");
        let mut s = Store::open(&p).unwrap();
        let rows: Vec<_> = (0..n)
            .map(|i| NewSegment {
                segment_path: format!("segments/s{i}.wav"),
                raw_file: String::new(),
                start_time: 0.0,
                end_time: 10.0,
                split: Split::Dev,
                label_source: LabelSource::none(),
                labels: None,
                scores: [None; 3],
                extra: None,
            })
            .collect();
        s.upsert_segments(&rows).unwrap();
        let ann = s.annotator_id("a").unwrap();
        (d, p, ann)
    }

    /// Changes made while another connection holds the write lock are all committed, in order,
    /// once it is released; none is refused.
    #[test]
    fn writes_wait_out_a_held_lock_and_commit_in_order() {
        let (_d, p, ann) = store_with(4);
        let mut w = LabelWriter::start(&p, ann, false).unwrap();
        let blocker = rusqlite::Connection::open(&p).unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        let sp = LabelSet::new(true, false, false);
        let mu = LabelSet::new(false, true, false);
        w.submit(Op::Gold { segment_id: 1, labels: Some(sp), review: false });
        w.submit(Op::Gold { segment_id: 1, labels: Some(LabelSet::new(true, true, false)), review: false });
        w.submit(Op::Gold { segment_id: 2, labels: Some(mu), review: true });
        w.submit(Op::Undo);
        w.submit(Op::Gold { segment_id: 3, labels: Some(LabelSet::default()), review: false });
        std::thread::sleep(Duration::from_millis(400));
        assert!(w.poll().is_empty(), "nothing can commit while the lock is held");
        assert_eq!(w.pending().len(), 5);
        assert!(w.waiting().unwrap().1 > 0, "the writer retried");
        assert_eq!(w.pending_gold(1), Some((Some(LabelSet::new(true, true, false)), false)));
        blocker.execute_batch("COMMIT").unwrap();
        let mut got = Vec::new();
        while got.len() < 5 {
            got.push(w.wait(Duration::from_secs(10)).expect("committed after the lock went"));
        }
        assert!(got.iter().all(|(o, _)| matches!(o, Outcome::Committed { .. })), "{got:?}");
        // The undo undid the last change before it (segment 2's label).
        match &got[3].0 {
            Outcome::Committed { change: Some(ch), .. } => assert_eq!(ch.segment_id, 2),
            other => panic!("{other:?}"),
        }
        assert!(w.pending().is_empty());
        let s = Store::open(&p).unwrap();
        assert_eq!(s.gold(1, ann).unwrap(), (Some(LabelSet::new(true, true, false)), false));
        assert_eq!(s.gold(2, ann).unwrap(), (None, false));
        assert_eq!(s.gold(3, ann).unwrap(), (Some(LabelSet::default()), false));
    }

    #[test]
    fn a_refused_change_is_reported_not_retried() {
        let (_d, p, ann) = store_with(1);
        let mut w = LabelWriter::start(&p, ann, false).unwrap();
        w.submit(Op::Gold { segment_id: 99, labels: Some(LabelSet::default()), review: false });
        match w.wait(Duration::from_secs(10)).unwrap().0 {
            Outcome::Refused { error, .. } => assert!(error.contains("99"), "{error}"),
            other => panic!("{other:?}"),
        }
    }

    /// Dropping the writer (quitting) still writes what was handed over.
    #[test]
    fn drop_finishes_the_queue() {
        let (_d, p, ann) = store_with(3);
        let mut w = LabelWriter::start(&p, ann, false).unwrap();
        for id in 1..=3 {
            w.submit(Op::Gold { segment_id: id, labels: Some(LabelSet::new(false, false, true)), review: false });
        }
        drop(w);
        let s = Store::open(&p).unwrap();
        for id in 1..=3 {
            assert_eq!(s.gold(id, ann).unwrap().0, Some(LabelSet::new(false, false, true)));
        }
    }
}
