//! Queries the job forms need.

use super::{Result, Store};

impl Store {
    /// The label sources that have pseudo-labels (each usable as a training source), sorted.
    pub fn pseudo_sources(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn().prepare("SELECT DISTINCT label_source FROM pseudo_runs ORDER BY label_source")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
