//! `dams slurm status RUN`: each shard's state from the files alone (complete, partial, missing), what the
//! workspace database says is merged, and the commands that resubmit what is missing.

use std::path::Path;

use anyhow::Result;

use super::part;
use super::plan::{self, LoadedPlan};

/// A shard's state, from its part files.
#[derive(Debug, Clone, PartialEq)]
pub enum ShardState {
    /// Published: `rows` scored, `failed` not scorable.
    Complete {
        rows: u64,
        failed: u64,
    },
    /// Being written (or cut off): `rows` scored so far (`None`: the file is locked right now).
    Partial {
        rows: Option<u64>,
    },
    Missing,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ShardStatus {
    pub shard: usize,
    pub items: usize,
    pub state: ShardState,
    /// Imported into the workspace database (when it could be read).
    pub merged: bool,
}

#[derive(Debug, Clone)]
pub struct Status {
    pub plan: LoadedPlan,
    pub shards: Vec<ShardStatus>,
    /// The teacher run the merge fills, if it has started.
    pub run_id: Option<i64>,
}

impl Status {
    /// Shards without a published part.
    pub fn not_complete(&self) -> Vec<usize> {
        self.shards.iter().filter(|s| !matches!(s.state, ShardState::Complete { .. })).map(|s| s.shard).collect()
    }
    /// `(segments done, segments planned)` over all shards (published or partial).
    pub fn progress(&self) -> (u64, u64) {
        let mut done = 0;
        for s in &self.shards {
            done += match s.state {
                ShardState::Complete { .. } => s.items as u64,
                ShardState::Partial { rows } => rows.unwrap_or(0),
                ShardState::Missing => 0,
            };
        }
        (done, self.plan.plan.items.len() as u64)
    }
    pub fn count(&self, f: impl Fn(&ShardState) -> bool) -> usize {
        self.shards.iter().filter(|s| f(&s.state)).count()
    }
    /// Every shard merged.
    pub fn merged(&self) -> bool {
        self.shards.iter().all(|s| s.merged)
    }
}

/// The status of the run folder `dir`; `store`: the workspace database, to tell what is merged.
pub fn status(dir: &Path, store: Option<&crate::store::Store>) -> Result<Status> {
    let plan = plan::load(dir)?;
    let (run_id, merged) = match store {
        Some(s) => super::merge::merged_parts(s, &plan.sha256)?,
        None => (None, Default::default()),
    };
    let mut shards = Vec::with_capacity(plan.plan.shards);
    for i in 0..plan.plan.shards {
        let items = plan.plan.shard_items(i).len();
        let fin = part::final_path(&plan.dir, i);
        let partial = part::partial_path(&plan.dir, i);
        let state = if fin.exists() {
            match part::open_read(&fin).and_then(|c| part::counts(&c)) {
                Ok((rows, failed)) => ShardState::Complete { rows, failed },
                Err(_) => ShardState::Complete { rows: 0, failed: 0 },
            }
        } else if partial.exists() {
            ShardState::Partial { rows: part::open_read(&partial).and_then(|c| part::items_done(&c)).ok() }
        } else {
            ShardState::Missing
        };
        shards.push(ShardStatus { shard: i, items, state, merged: merged.contains_key(&i) });
    }
    Ok(Status { plan, shards, run_id })
}

/// A sharded run's progress as the TUI's jobs pane shows it: from the part files (and the merge's records).
#[derive(Debug, Clone, PartialEq)]
pub struct RunProgress {
    pub name: String,
    pub teacher: String,
    pub shards: usize,
    pub complete: usize,
    pub partial: usize,
    pub missing: usize,
    pub merged: usize,
    /// Segments scored (published parts count whole, partial parts by their rows).
    pub done: u64,
    pub total: u64,
}

/// Watches the sharded runs of a workspace cheaply enough to poll from a UI thread: each plan is read once (plans
/// never change), published parts are only `stat`ed, and only partial parts are opened (one `count(*)`).
#[derive(Debug, Default)]
pub struct Watch {
    /// Run folder → (name, teacher, shards, items, plan sha256).
    plans: std::collections::HashMap<std::path::PathBuf, (String, String, usize, usize, String)>,
}

impl Watch {
    /// The `limit` newest runs of `ws` (by folder name), newest first.
    pub fn scan(
        &mut self,
        ws: &crate::workspace::Workspace,
        store: Option<&crate::store::Store>,
        limit: usize,
    ) -> Vec<RunProgress> {
        let Ok(rd) = std::fs::read_dir(super::runs_dir(ws)) else { return Vec::new() };
        let mut dirs: Vec<std::path::PathBuf> =
            rd.flatten().map(|e| e.path()).filter(|p| p.join(plan::PLAN_FILE).is_file()).collect();
        dirs.sort();
        dirs.reverse();
        dirs.truncate(limit);
        let mut out = Vec::new();
        for dir in dirs {
            if !self.plans.contains_key(&dir) {
                let Ok(p) = plan::load(&dir) else { continue };
                let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                self.plans.insert(
                    dir.clone(),
                    (name, p.plan.teacher.id.clone(), p.plan.shards, p.plan.items.len(), p.sha256),
                );
            }
            let (name, teacher, shards, items, sha) = self.plans[&dir].clone();
            let merged = store.and_then(|s| super::merge::merged_parts(s, &sha).ok()).map(|m| m.1.len()).unwrap_or(0);
            let mut r = RunProgress {
                name,
                teacher,
                shards,
                complete: 0,
                partial: 0,
                missing: 0,
                merged,
                done: 0,
                total: items as u64,
            };
            for i in 0..shards {
                let (lo, hi) = plan::shard_range(items, shards, i);
                if part::final_path(&dir, i).exists() {
                    r.complete += 1;
                    r.done += (hi - lo) as u64;
                } else {
                    let partial = part::partial_path(&dir, i);
                    if partial.exists() {
                        r.partial += 1;
                        r.done += part::open_read(&partial).and_then(|c| part::items_done(&c)).unwrap_or(0);
                    } else {
                        r.missing += 1;
                    }
                }
            }
            out.push(r);
        }
        out
    }
}
