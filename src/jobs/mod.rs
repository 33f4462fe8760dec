//! Background jobs: run on worker threads, report progress (done/total, rate, ETA, phase,
//! free-form metrics such as loss, log lines), can be cancelled, and are recorded in the store
//! (kind, parameters, state, start/end, result, error).
//!
//! The runner knows nothing of the terminal: the TUI polls [`JobRunner::snapshot`] each frame
//! (a cheap clone of small structs behind a mutex) and the CLI draws a progress bar from the same
//! [`JobView`]. Each job opens its own SQLite connection (WAL + busy timeout), so jobs write while
//! the annotator keeps labelling.
//!
//! Crash safety: a job row is `running` while its process lives; [`crate::store::Store::mark_interrupted_jobs`]
//! (called when a workspace is opened) marks rows of dead processes `interrupted`. Resuming is the
//! job's own business and never redoes finished work: scoring skips segments already scored in the
//! run it resumes, training restarts from its last checkpoint.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::Value;

use crate::store::Store;

pub mod catalog;

/// How many log lines a job keeps in memory (the store keeps them all).
const LOG_LINES: usize = 200;
/// Progress is written to the store at most this often.
const PERSIST_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Running,
    Done,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
    pub fn is_finished(self) -> bool {
        self != JobState::Running
    }
}

/// What a job looks like from the outside at one instant.
#[derive(Debug, Clone)]
pub struct JobView {
    pub id: i64,
    pub kind: String,
    pub params: Value,
    pub state: JobState,
    pub phase: String,
    pub done: u64,
    pub total: Option<u64>,
    /// Named metric series (e.g. `loss`, `dev_macro_f1`), newest last.
    pub metrics: Vec<(String, Vec<f64>)>,
    /// The newest log lines (at most 200; the store keeps them all).
    pub log: VecDeque<String>,
    /// How many lines were logged in all (`log` holds the last ones): followers find what they missed.
    pub log_total: u64,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub elapsed: Duration,
    /// Items per second since the job (re)started counting.
    pub rate: f64,
    pub eta: Option<Duration>,
}

impl JobView {
    pub fn fraction(&self) -> Option<f64> {
        self.total.filter(|&t| t > 0).map(|t| (self.done as f64 / t as f64).clamp(0.0, 1.0))
    }
    pub fn metric(&self, name: &str) -> Option<&[f64]> {
        self.metrics.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
}

struct Shared {
    view: JobView,
    started: Instant,
    /// `done` when the rate clock started (resumed jobs begin counting at their resume point).
    base_done: u64,
    last_persist: Option<Instant>,
}

/// Handed to a job function: report progress, check for cancellation.
#[derive(Clone)]
pub struct JobCtx {
    id: i64,
    cancel: Arc<AtomicBool>,
    shared: Arc<Mutex<Shared>>,
    db_path: Option<PathBuf>,
    /// The job's own connection for progress/log rows, opened on first use.
    db: Arc<Mutex<Option<Store>>>,
}

impl JobCtx {
    /// Run `f` on the job's own bookkeeping connection (best effort: bookkeeping never fails a job).
    fn with_db(&self, f: impl FnOnce(&mut Store)) {
        let Some(path) = &self.db_path else { return };
        let mut g = self.db.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Store::open(path).ok();
        }
        if let Some(store) = g.as_mut() {
            f(store);
        }
    }

    pub fn id(&self) -> i64 {
        self.id
    }

    /// True once cancellation was requested; a job checks this between units of work and returns
    /// [`JobError::Cancelled`] (or `Ok` with a partial result).
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Bail out with a cancellation error if cancellation was requested.
    pub fn check_cancel(&self) -> Result<()> {
        if self.is_cancelled() { Err(JobError::Cancelled.into()) } else { Ok(()) }
    }

    /// The database this job should open its own connection to.
    pub fn db_path(&self) -> Option<&std::path::Path> {
        self.db_path.as_deref()
    }

    fn with<R>(&self, f: impl FnOnce(&mut Shared) -> R) -> R {
        let mut g = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// Report `done` of `total` (total may change, e.g. when a resumed job learns what is left).
    pub fn progress(&self, done: u64, total: Option<u64>) {
        self.with(|s| {
            s.view.done = done;
            if total.is_some() {
                s.view.total = total;
            }
            let secs = s.started.elapsed().as_secs_f64();
            let counted = done.saturating_sub(s.base_done);
            s.view.rate = if secs > 0.0 { counted as f64 / secs } else { 0.0 };
            s.view.eta = match (s.view.total, s.view.rate > 0.0) {
                (Some(t), true) => Some(Duration::from_secs_f64(t.saturating_sub(done) as f64 / s.view.rate)),
                _ => None,
            };
        });
        self.persist(false);
    }

    /// Start the rate clock at `done` (for jobs that resume with part of the work already done).
    pub fn resume_from(&self, done: u64) {
        self.with(|s| {
            s.base_done = done;
            s.started = Instant::now();
            s.view.done = done;
        });
    }

    pub fn phase(&self, phase: impl Into<String>) {
        let p = phase.into();
        self.with(|s| s.view.phase = p);
        self.persist(true);
    }

    /// Append a value to a metric series (e.g. the loss after each epoch).
    pub fn metric(&self, name: &str, value: f64) {
        self.with(|s| match s.view.metrics.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => v.push(value),
            None => s.view.metrics.push((name.to_string(), vec![value])),
        });
        self.persist(false);
    }

    pub fn log(&self, line: impl Into<String>) {
        let line = line.into();
        self.with(|s| {
            if s.view.log.len() == LOG_LINES {
                s.view.log.pop_front();
            }
            s.view.log.push_back(line.clone());
            s.view.log_total += 1;
        });
        // Best effort: a log line that cannot be stored is still shown in memory.
        self.with_db(|store| {
            let _ = store.append_job_log(self.id, &line);
        });
    }

    fn persist(&self, force: bool) {
        if self.db_path.is_none() {
            return;
        }
        let snapshot = self.with(|s| {
            let due = force || s.last_persist.is_none_or(|t| t.elapsed() >= PERSIST_EVERY);
            if !due {
                return None;
            }
            s.last_persist = Some(Instant::now());
            let metrics = serde_json::to_string(
                &s.view.metrics.iter().map(|(n, v)| (n.clone(), v.last().copied())).collect::<Vec<_>>(),
            )
            .ok();
            Some((s.view.done, s.view.total, s.view.phase.clone(), metrics))
        });
        if let Some((done, total, phase, metrics)) = snapshot {
            self.with_db(|store| {
                let _ =
                    store.update_job(self.id, done as i64, total.map(|t| t as i64), Some(&phase), metrics.as_deref());
            });
        }
    }
}

/// Errors a job can end with that are not failures.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("cancelled")]
    Cancelled,
}

struct Entry {
    cancel: Arc<AtomicBool>,
    shared: Arc<Mutex<Shared>>,
    thread: Option<JoinHandle<()>>,
}

/// Runs jobs on worker threads and keeps their live views.
pub struct JobRunner {
    db_path: Option<PathBuf>,
    entries: Vec<Entry>,
    next_local_id: i64,
}

impl JobRunner {
    /// A runner that records jobs in the database at `db_path`.
    pub fn new(db_path: impl Into<PathBuf>) -> Self {
        JobRunner { db_path: Some(db_path.into()), entries: Vec::new(), next_local_id: -1 }
    }

    /// A runner that records nothing (tests, one-off tools).
    pub fn in_memory() -> Self {
        JobRunner { db_path: None, entries: Vec::new(), next_local_id: -1 }
    }

    /// The store the runner records its jobs in (`None`: in memory only).
    pub fn db_path(&self) -> Option<&std::path::Path> {
        self.db_path.as_deref()
    }

    /// Start `f` on a worker thread. Returns the job id (the store's id when recorded).
    pub fn spawn<F>(&mut self, kind: &str, params: Value, total: Option<u64>, f: F) -> Result<i64>
    where
        F: FnOnce(&JobCtx) -> Result<Value> + Send + 'static,
    {
        let id = match &self.db_path {
            Some(p) => {
                let mut store = Store::open(p)?;
                store.create_job(kind, &params.to_string(), total.map(|t| t as i64))?
            }
            None => {
                self.next_local_id -= 1;
                self.next_local_id
            }
        };
        let shared = Arc::new(Mutex::new(Shared {
            view: JobView {
                id,
                kind: kind.to_string(),
                params,
                state: JobState::Running,
                phase: "starting".into(),
                done: 0,
                total,
                metrics: Vec::new(),
                log: VecDeque::new(),
                log_total: 0,
                result: None,
                error: None,
                elapsed: Duration::ZERO,
                rate: 0.0,
                eta: None,
            },
            started: Instant::now(),
            base_done: 0,
            last_persist: None,
        }));
        let cancel = Arc::new(AtomicBool::new(false));
        let ctx = JobCtx {
            id,
            cancel: cancel.clone(),
            shared: shared.clone(),
            db_path: self.db_path.clone(),
            db: Arc::new(Mutex::new(None)),
        };
        let thread = std::thread::Builder::new().name(format!("dams-job-{id}")).spawn(move || {
            let t0 = Instant::now();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&ctx)));
            let (state, result, error) = match outcome {
                Ok(Ok(v)) => {
                    let st = if ctx.is_cancelled() { JobState::Cancelled } else { JobState::Done };
                    (st, Some(v), None)
                }
                Ok(Err(e)) if e.downcast_ref::<JobError>().is_some() => (JobState::Cancelled, None, None),
                Ok(Err(e)) => (JobState::Failed, None, Some(format!("{e:#}"))),
                Err(panic) => {
                    let msg = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "job panicked".into());
                    (JobState::Failed, None, Some(format!("internal error: {msg}")))
                }
            };
            ctx.persist(true);
            ctx.with_db(|store| {
                let res = result.as_ref().map(|v| v.to_string());
                let _ = store.finish_job(ctx.id, state.as_str(), res.as_deref(), error.as_deref());
            });
            ctx.with(|s| {
                s.view.state = state;
                s.view.result = result;
                s.view.error = error;
                s.view.elapsed = t0.elapsed();
                s.view.eta = None;
            });
        })?;
        self.entries.push(Entry { cancel, shared, thread: Some(thread) });
        Ok(id)
    }

    /// Ask a job to stop; it stops at its next check.
    pub fn cancel(&self, id: i64) -> bool {
        for e in &self.entries {
            let is = e.shared.lock().map(|s| s.view.id == id).unwrap_or(false);
            if is {
                e.cancel.store(true, Ordering::Relaxed);
                return true;
            }
        }
        false
    }

    /// Current views of all jobs this runner started, newest first.
    pub fn snapshot(&self) -> Vec<JobView> {
        let mut out: Vec<JobView> = self
            .entries
            .iter()
            .map(|e| {
                let s = e.shared.lock().unwrap_or_else(|p| p.into_inner());
                let mut v = s.view.clone();
                if v.state == JobState::Running {
                    v.elapsed = s.started.elapsed();
                }
                v
            })
            .collect();
        out.reverse();
        out
    }

    pub fn view(&self, id: i64) -> Option<JobView> {
        self.snapshot().into_iter().find(|v| v.id == id)
    }

    pub fn any_running(&self) -> bool {
        self.snapshot().iter().any(|v| v.state == JobState::Running)
    }

    /// Wait for a job to finish and return its final view.
    pub fn wait(&mut self, id: i64) -> Option<JobView> {
        for e in &mut self.entries {
            let is = e.shared.lock().map(|s| s.view.id == id).unwrap_or(false);
            if is {
                if let Some(t) = e.thread.take() {
                    let _ = t.join();
                }
                return Some(e.shared.lock().unwrap_or_else(|p| p.into_inner()).view.clone());
            }
        }
        None
    }

    /// Cancel everything and wait (on quit).
    pub fn shutdown(&mut self) {
        for e in &self.entries {
            e.cancel.store(true, Ordering::Relaxed);
        }
        for e in &mut self.entries {
            if let Some(t) = e.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for JobRunner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Format a duration as `1h02m`, `3m05s` or `12s` for progress displays.
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests;
