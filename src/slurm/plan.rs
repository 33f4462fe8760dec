//! The plan: the frozen description of a sharded run, written once into its run folder as `plan.json`.
//!
//! It holds everything a shard needs without the workspace database (which shards never open): the ordered
//! segment list, the teacher with its options, weights checksum and run settings, the number of shards, the
//! user dirs to run under, the dams version. Shard `i` of `n` takes the items `i*len/n .. (i+1)*len/n` of the
//! ordered list. The plan's identity is the sha256 of its file's bytes; parts name it, the merge checks it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::jobs::catalog::ScoreJob;

/// The plan file's format version.
pub const PLAN_FORMAT: u32 = 1;
/// The plan's file name in a run folder.
pub const PLAN_FILE: &str = "plan.json";
/// A plan whose shards score segments with a teacher into a teacher run.
pub const KIND_SCORE: &str = "score";
/// A plan whose shards compute a model's audio embeddings into the workspace's embedding cache.
pub const KIND_EMBED: &str = "embed";
/// A plan whose shards cut recordings (one item per raw file) into windows; the merge adds their segments.
pub const KIND_SEGMENT: &str = "segment";

/// How a segmentation plan cuts recordings (`dams segment`'s options).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentSpec {
    pub window: f64,
    pub hop: f64,
    pub min_tail: f64,
    /// The split of the new segment rows.
    pub split: String,
    pub copy_raw: bool,
}

impl SegmentSpec {
    pub fn options(&self) -> Result<crate::audio::segment::SegmentOptions> {
        Ok(crate::audio::segment::SegmentOptions {
            window: self.window,
            hop: self.hop,
            min_tail: self.min_tail,
            split: self.split.parse().map_err(anyhow::Error::msg)?,
            copy_raw: self.copy_raw,
        })
    }
}

/// What a segmentation shard's worker calls its "weights": the segmenter of this dams version (windows cut by
/// another version are refused by the merge, as scores of other weights are).
pub fn segmenter_id() -> String {
    format!("dams-segmenter {}", env!("CARGO_PKG_VERSION"))
}

/// What the teacher was at planning time (the merge creates the teacher run from it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherInfo {
    pub id: String,
    pub version: String,
    /// `sha256:...` of the weights: every shard re-hashes them and the merge refuses a part that differs.
    pub checksum: String,
    /// The run settings (`teachers::score::run_settings`): the same as an unsharded `dams score` would use.
    pub settings: String,
    pub zero_shot: bool,
    pub raw_vocab: Option<String>,
    pub label_source: String,
    pub default_thresholds: Option<[f64; 3]>,
}

/// Slurm resources for the generated scripts (`None`: the cluster's default).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlurmResources {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub time: Option<String>,
    pub mem: Option<String>,
    pub gres: Option<String>,
    pub cpus_per_task: Option<u32>,
    /// `%P` of `--array=0-(N-1)%P`: at most this many shards at once.
    pub max_parallel: Option<usize>,
    /// Further `#SBATCH` lines, verbatim (e.g. `--qos=low`).
    pub extra: Vec<String>,
}

/// One unit of work: a segment (by id) and its data-relative path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub id: i64,
    pub path: String,
}

/// A sharded run's plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format: u32,
    /// What the shards do: [`KIND_SCORE`] or [`KIND_EMBED`].
    pub kind: String,
    /// For [`KIND_EMBED`]: the embedding kind of the cache (`ast-pooled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<String>,
    /// For [`KIND_SEGMENT`]: how to cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<SegmentSpec>,
    pub dams_version: String,
    pub created_at: String,
    /// The workspace (absolute): shards read audio under its `data/`, the merge writes its database.
    pub workspace: PathBuf,
    /// The `dams` binary the scripts run (absolute).
    pub dams_bin: PathBuf,
    /// Environment the scripts export (user dirs, Hugging Face cache...), sorted.
    pub env: BTreeMap<String, String>,
    pub job: ScoreJob,
    pub teacher: TeacherInfo,
    pub shards: usize,
    pub slurm: SlurmResources,
    /// The work, ordered by id: segments (score, embed) or raw files numbered from 0 with their absolute paths
    /// (segment).
    pub items: Vec<Item>,
}

impl Plan {
    /// The items of shard `i`.
    pub fn shard_items(&self, i: usize) -> &[Item] {
        let (lo, hi) = shard_range(self.items.len(), self.shards, i);
        &self.items[lo..hi]
    }

    /// Check what the rest of dams relies on: a known format, 1 ≤ shards ≤ items, items sorted by id, unique.
    pub fn validate(&self) -> Result<()> {
        if self.format != PLAN_FORMAT {
            bail!("plan format {} is not the one this dams reads ({PLAN_FORMAT})", self.format);
        }
        match self.kind.as_str() {
            KIND_SCORE => {}
            KIND_EMBED if self.embedding.is_some() => {}
            KIND_EMBED => bail!("an embedding plan without its embedding kind"),
            KIND_SEGMENT if self.segment.is_some() => {}
            KIND_SEGMENT => bail!("a segmentation plan without its options"),
            k => bail!("plan kind '{k}' is unknown to this dams (it runs '{KIND_SCORE}' and '{KIND_EMBED}' plans)"),
        }
        if self.shards == 0 {
            bail!("a plan needs at least one shard");
        }
        if self.items.windows(2).any(|w| w[0].id >= w[1].id) {
            bail!("the plan's items are not in increasing segment-id order");
        }
        Ok(())
    }
}

/// `[lo, hi)` of shard `i` of `n` over `len` items: contiguous, sizes differ by at most one.
pub fn shard_range(len: usize, n: usize, i: usize) -> (usize, usize) {
    (i * len / n, (i + 1) * len / n)
}

/// A loaded plan and the sha256 of its file (`sha256:<hex>`).
#[derive(Debug, Clone)]
pub struct LoadedPlan {
    pub plan: Plan,
    pub sha256: String,
    /// The run folder (the plan file's folder).
    pub dir: PathBuf,
}

/// Load `plan.json` (a run folder or the file itself).
pub fn load(path: &Path) -> Result<LoadedPlan> {
    let file = if path.is_dir() { path.join(PLAN_FILE) } else { path.to_path_buf() };
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read the plan {}", file.display()))?;
    let plan: Plan =
        serde_json::from_slice(&bytes).with_context(|| format!("{} is not a dams plan", file.display()))?;
    plan.validate().with_context(|| format!("plan {}", file.display()))?;
    let dir = std::path::absolute(&file)?.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(LoadedPlan { plan, sha256: super::sha256_bytes(&bytes), dir })
}

/// Write `plan` as `dir/plan.json` (atomically; refused if the folder already has a plan: a plan is frozen).
pub fn write(dir: &Path, plan: &Plan) -> Result<String> {
    let file = dir.join(PLAN_FILE);
    if file.exists() {
        bail!("{} already exists: a plan is never rewritten (choose another --name)", file.display());
    }
    let mut bytes = serde_json::to_vec(plan)?;
    bytes.push(b'\n');
    super::write_atomic(&file, &bytes)?;
    Ok(super::sha256_bytes(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_item_once_in_order() {
        for len in [0, 1, 5, 143, 1000] {
            for n in 1..=9 {
                let mut next = 0;
                for i in 0..n {
                    let (lo, hi) = shard_range(len, n, i);
                    assert_eq!(lo, next, "len {len} n {n} i {i}");
                    assert!(hi - lo <= len / n + 1);
                    next = hi;
                }
                assert_eq!(next, len);
            }
        }
    }
}
